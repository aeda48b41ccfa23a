import { createRequire } from 'node:module';
import { MongoNetworkError, MongoServerError, MongoServerSelectionError } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { AuthenticationFailedError, BackendUnavailableError, type NoaError } from '../src/index.js';
import { createMongoPool } from '../src/mongo.js';

// The driver's errors as the driver makes them (mongodb 7.9): the handshake's saslStart /
// saslContinue reply with `ok: 0` becomes a MongoServerError; a server selection that times out
// gets the TopologyDescription, whose `error` is that of a server whose handshake failed. The
// topology classes are not exported from the package root, so they are loaded from the driver's files.
const require = createRequire(import.meta.url);
const { TopologyDescription } = require('mongodb/lib/sdam/topology_description.js') as {
  TopologyDescription: new (
    type: string,
    servers: Map<string, unknown>,
  ) => {
    error: unknown;
  };
};
const { ServerDescription } = require('mongodb/lib/sdam/server_description.js') as {
  ServerDescription: new (address: string, hello: undefined, options: { error: unknown }) => unknown;
};

/** The server's reply to a SCRAM conversation with a wrong password (MongoDB 4.4 – 8). */
const authReply = { ok: 0, errmsg: 'Authentication failed.', code: 18, codeName: 'AuthenticationFailed' };

/** A timed-out server selection of a single server whose last error is `error`. */
function selectionError(error: unknown): MongoServerSelectionError {
  const address = '127.0.0.1:27017';
  const description = new TopologyDescription(
    'Single',
    new Map([[address, new ServerDescription(address, undefined, { error })]]),
  );
  expect(description.error).toBe(error);
  return new MongoServerSelectionError('Server selection timed out after 200 ms', description as never);
}

/** What `run()` rejects with when the driver throws `error`. */
async function runFailure(error: unknown): Promise<unknown> {
  const pool = createMongoPool({ url: 'mongodb://noa:secret@127.0.0.1:1/noa', name: 'mauth' });
  try {
    return await pool
      .run(async () => {
        throw error;
      })
      .then(
        () => {
          throw new Error('resolved');
        },
        (failure: unknown) => failure,
      );
  } finally {
    await pool.close();
  }
}

function expectAuthFailed(failure: unknown, serverError: unknown): void {
  expect(failure).toBeInstanceOf(AuthenticationFailedError);
  expect(failure).not.toBeInstanceOf(BackendUnavailableError);
  const typed = failure as AuthenticationFailedError;
  expect(typed.code).toBe('NOA_POOL_AUTH_FAILED');
  expect(typed.message).toBe('mauth: authentication failed (Authentication failed.)');
  // The server's refusal is the cause (whatever wrapped it), never the password.
  expect(typed.cause).toBe(serverError);
  expect(JSON.stringify(typed)).not.toContain('secret');
}

describe('MongoPool: refused credentials are AuthenticationFailedError (NOA_POOL_AUTH_FAILED)', () => {
  it('the MongoServerError of the handshake (code 18)', async () => {
    const refused = new MongoServerError(authReply);
    expect(refused.code).toBe(18);
    expectAuthFailed(await runFailure(refused), refused);
  });

  it('a MongoServerSelectionError timed out on a server whose handshake was refused', async () => {
    const refused = new MongoServerError(authReply);
    const selection = selectionError(refused);
    // The driver copies the code and keeps the refusal as cause.
    expect(selection.code).toBe(18);
    expect(selection.cause).toBe(refused);
    expectAuthFailed(await runFailure(selection), refused);
  });

  it('a MongoNetworkError wrapping it', async () => {
    const refused = new MongoServerError(authReply);
    expectAuthFailed(
      await runFailure(new MongoNetworkError('connection 1 closed', { cause: refused })),
      refused,
    );
  });

  it('by codeName alone', async () => {
    const refused = new MongoServerError({
      ok: 0,
      errmsg: 'Authentication failed.',
      codeName: 'AuthenticationFailed',
    });
    expectAuthFailed(await runFailure(refused), refused);
  });

  it('other failures keep their mapping: an unreachable server, a server error', async () => {
    const refusedConnect = new MongoNetworkError('connect ECONNREFUSED 127.0.0.1:1');
    const unreachable = await runFailure(selectionError(refusedConnect));
    expect(unreachable).toBeInstanceOf(BackendUnavailableError);
    const duplicate = new MongoServerError({ ok: 0, errmsg: 'E11000 duplicate key', code: 11000 });
    expect(await runFailure(duplicate)).toBe(duplicate);
  });
});

describe('MongoPool health().error', () => {
  it('carries the cause chain, as the SQL pools do', async () => {
    const mongo = createMongoPool({ url: 'mongodb://127.0.0.1:1/noa', serverSelectionTimeoutMs: 200 });
    try {
      const health = await mongo.health();
      expect(health.errorCode).toBe('NOA_POOL_BACKEND_UNAVAILABLE');
      // Ours, then the driver's server selection error, then the socket's refusal under it.
      expect(health.error).toMatch(
        /^BackendUnavailableError: mongo: backend unavailable: caused by MongoServerSelectionError: /,
      );
      expect(health.error).toContain('ECONNREFUSED');
      // connect() rejects with the same typed error, the driver's as cause.
      const failure = await mongo.connect().catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(BackendUnavailableError);
      expect((failure as NoaError).cause).toBeInstanceOf(MongoServerSelectionError);
    } finally {
      await mongo.close();
    }
    const closed = await mongo.health();
    expect(closed.error).toBe('PoolClosedError: mongo is closed');
  });
});
