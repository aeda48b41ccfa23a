import type { QueueProvider } from '../../src/index.js';

/**
 * The same provider (same backend, same connection), except that its cancel messages never
 * reach a worker: `onCancel` registers nothing, as if the worker's subscriber connection was
 * down when the cancel was published. Everything else is delegated to `provider` untouched.
 */
export function dropCancelMessages(provider: QueueProvider): QueueProvider {
  return new Proxy(provider, {
    get(target, property) {
      if (property === 'onCancel') return async () => () => {};
      const value: unknown = Reflect.get(target, property, target);
      // Bound to the real provider: its methods use private fields.
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
