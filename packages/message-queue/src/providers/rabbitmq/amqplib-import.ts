import type * as Amqplib from 'amqplib';
import { DriverNotInstalledError } from '../../errors.js';

/**
 * How amqplib is imported: a table rather than an inline `import()`, so that a test can point it
 * at a module that does not exist, to see what a user without amqplib sees.
 */
export const amqplibImport = {
  load: (): Promise<unknown> => import('amqplib'),
};

/** Module-not-found codes of ESM `import()` and of CommonJS `require`. */
const notFoundCodes = new Set(['ERR_MODULE_NOT_FOUND', 'MODULE_NOT_FOUND']);

/**
 * amqplib, imported on first use (an optional peer dependency). A package that cannot be found
 * rejects with {@link DriverNotInstalledError} (`npm install amqplib`, the import error as its
 * `cause`); nothing is remembered, so the next call looks again.
 */
export async function loadAmqplib(): Promise<typeof Amqplib> {
  let module: typeof Amqplib & { default?: typeof Amqplib };
  try {
    module = (await amqplibImport.load()) as typeof Amqplib & { default?: typeof Amqplib };
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && notFoundCodes.has(code))
      throw new DriverNotInstalledError('amqplib', error);
    throw error;
  }
  return module.default ?? module;
}
