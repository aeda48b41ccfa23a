import type { Cluster, Redis } from 'ioredis';

/**
 * `client` with each EVALSHA call shown to `observe(sha, firstKey, reply)` as it is sent (a Proxy:
 * every other property is the client's own). How the long-run tests and `bench/many-run-settle.ts`
 * count the extension's and the writes' script calls without a server-side monitor; `reply` lets
 * an observer count the calls still in flight.
 */
export function observingEvalsha<C extends Redis | Cluster>(
  client: C,
  observe: (sha: string, firstKey: string, reply: Promise<unknown>) => void,
): C {
  return new Proxy(client, {
    get(target, property) {
      const value = Reflect.get(target, property);
      if (typeof value !== 'function') return value;
      if (property !== 'evalsha') return value.bind(target);
      return (...args: unknown[]) => {
        const reply = (value as (...all: unknown[]) => Promise<unknown>).apply(target, args);
        observe(String(args[0]), String(args[2]), reply);
        return reply;
      };
    },
  });
}
