import type { BusMessage } from './bus-message.js';
import type { CacheEngine } from './cache-engine.js';
import { clearL1, expireL1 } from './invalidation.js';

/**
 * Applies an invalidation from another instance to this one's L1, supersedes the factory runs
 * it reaches, wakes the lease waiters of its keys, then tells the observers (`onInvalidation`,
 * the `invalidation` event).
 */
export function applyBusMessage(engine: CacheEngine, message: BusMessage): void {
  switch (message.t) {
    case 'set':
    case 'del': {
      // A message of an older release has no ids; a malformed list is taken as none.
      const ids =
        message.t === 'set' && Array.isArray(message.v) && message.v.length === message.k.length
          ? message.v
          : undefined;
      for (let index = 0; index < message.k.length; index += 1) {
        const key = message.k[index]!;
        const value = ids?.[index];
        const writeId = Number.isSafeInteger(value) ? (value as number) : undefined;
        // A late message of the write L1 already holds (read from L2 before the message came)
        // announces nothing newer: the copy stays, saving the next read a trip to L2. Ids are
        // only ever equal or not (see `WriteIds`): any other write, or a copy or message
        // without an id, drops it. The fill guard, the runs and the waiters hear of the write
        // all the same: a read in flight may still answer with an older value.
        if (writeId === undefined || engine.l1.peek(key)?.writeId !== writeId) engine.l1.delete(key);
        engine.fills.changedKey(key, writeId);
        engine.runs.supersedeKey(key, writeId);
        engine.wakeups.wake(key);
      }
      break;
    }
    case 'rel': {
      const failed = new Set(Array.isArray(message.f) ? message.f : []);
      for (const key of message.k) engine.wakeups.wake(key, failed.has(key));
      break;
    }
    case 'tag':
      engine.runs.supersedeTags(message.k);
      engine.fills.changedTags(message.k);
      for (const tag of message.k) {
        for (const key of [...(engine.tagIndex.get(tag) ?? [])]) engine.l1.delete(key);
        engine.tagIndex.delete(tag);
      }
      break;
    case 'clear':
      for (const prefix of message.k) {
        clearL1(engine, prefix);
        engine.runs.supersedePrefix(prefix);
        // A root clear deleted the shared structures list (`RedisTier.clearPrefix`): writing
        // on with the old one would make values that instances reading the new list miss.
        if (prefix === '') engine.structures?.distrust();
      }
      break;
    case 'exp': {
      const now = engine.clock.now();
      for (const key of message.k) {
        expireL1(engine, key, now);
        engine.fills.changedKey(key);
        engine.runs.supersedeKey(key);
      }
      break;
    }
    case 'exptag': {
      const now = engine.clock.now();
      engine.runs.supersedeTags(message.k);
      engine.fills.changedTags(message.k);
      for (const tag of message.k) {
        for (const key of [...(engine.tagIndex.get(tag) ?? [])]) expireL1(engine, key, now, message.k);
      }
      break;
    }
    default:
      // A kind from a newer release: ignored, neither applied nor reported as applied.
      return;
  }
  for (const listener of engine.busListeners) {
    // Run from ioredis's 'message' event: a throw here would be an uncaught exception.
    try {
      listener(message);
    } catch (error) {
      engine.logger.warn('an onInvalidation listener threw', { error: String(error) });
    }
  }
  const received = engine.listeners.invalidation;
  if (received) engine.events.emit('invalidation', received, message);
}
