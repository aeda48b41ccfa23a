import type { Cache } from '../../src/index.js';

/** How long a barrier may take before the test says the bus lost it (not a time assertion: a hang guard). */
const barrierGiveUpMs = 30_000;

/**
 * Waits until `to` has applied every bus message `from` sent so far: `from` deletes the key
 * `barrier` and `to`'s `onInvalidation` sees that delete, which the bus delivers after the
 * messages before it (one outbox and connection per instance). The model tests' barrier.
 */
export async function settleBus(from: Cache, to: Cache, barrier: string): Promise<void> {
  let stop = () => {};
  const heard = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`bus barrier ${barrier} never reached the other instance`)),
      barrierGiveUpMs,
    );
    const unsubscribe = to.onInvalidation((message) => {
      if (message.t === 'del' && message.k.includes(barrier)) resolve();
    });
    stop = () => {
      clearTimeout(timer);
      unsubscribe();
    };
  });
  try {
    await from.delete(barrier);
    await heard;
  } finally {
    stop();
  }
}
