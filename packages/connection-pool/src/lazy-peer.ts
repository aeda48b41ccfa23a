import { DriverNotInstalledError } from './errors.js';

/**
 * How each optional driver package is imported. A table rather than inline imports so that
 * tests can point one at a module that does not exist, to see what a user without it sees.
 */
export const peerImports = {
  pg: (): Promise<unknown> => import('pg'),
  mysql2: (): Promise<unknown> => import('mysql2/promise'),
  ioredis: (): Promise<unknown> => import('ioredis'),
  mongodb: (): Promise<unknown> => import('mongodb'),
};

/** The optional peer dependencies (`npm install <name>`). */
export type PeerName = keyof typeof peerImports;

/** Module-not-found codes of ESM `import()` and of CommonJS `require`. */
const notFoundCodes = new Set(['ERR_MODULE_NOT_FOUND', 'MODULE_NOT_FOUND']);

/**
 * Memoizes the dynamic import of an optional peer dependency (loaded on first use, once),
 * unwrapping the CommonJS `default` export when there is one. A package that cannot be found
 * rejects with `DriverNotInstalledError` (the import error as its `cause`), and is looked for
 * again at the next call.
 */
export function lazyPeer<M>(name: PeerName): () => Promise<M> {
  let loaded: Promise<M> | undefined;
  return () => {
    loaded ??= peerImports[name]().then(
      (module) => ((module as { default?: M }).default ?? module) as M,
      (error: unknown) => {
        loaded = undefined;
        const code = (error as { code?: unknown } | null)?.code;
        throw typeof code === 'string' && notFoundCodes.has(code)
          ? new DriverNotInstalledError(name, error)
          : error;
      },
    );
    return loaded;
  };
}
