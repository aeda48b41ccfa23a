import { isReachable, serviceUrl } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { BackendUnavailableError } from '../../src/index.js';
import { createPgPool } from '../../src/pg.js';
import { waitFor } from './helpers/wait.js';

const url = serviceUrl('postgres');
const skip = (await isReachable('postgres')) ? undefined : `skipped: no Postgres at ${url}`;
if (skip) console.log(skip);

const deadReplica = 'postgres://noa:noa@127.0.0.1:1/noa'; // nothing listens on port 1
/** A statement the classifier sends to the primary (a write function), answering the server's port. */
const writing = "SELECT set_config('noa.test', '1', false), inet_server_port() AS port";

// README "Replica lag and health" and the routing table: with no replica in rotation reads go to
// the primary (`replicaFallback: 'primary'`) or fail with BackendUnavailableError (`'error'`);
// `{ target: 'replica' }` is obeyed for reads only.
describe.skipIf(skip !== undefined)(
  'replicaFallback and the replica hint, with the only replica down (shared Postgres)',
  () => {
    it.each(['primary', 'error'] as const)('replicaFallback %s', async (replicaFallback) => {
      const db = createPgPool({
        primary: url,
        replicas: [deadReplica],
        replicaFallback,
        healthCheckIntervalMs: 20,
      });
      try {
        await waitFor(() => db.health().replicas[0]!.healthy === false);
        const read = db.query<{ n: number }>('SELECT 1 AS n');
        if (replicaFallback === 'primary') expect((await read).rows[0]!.n).toBe(1);
        else await expect(read).rejects.toBeInstanceOf(BackendUnavailableError);
        // A write asked to run on a replica runs on the primary all the same.
        const write = await db.query<{ port: number }>(writing, [], { target: 'replica' });
        expect(Number(write.rows[0]!.port)).toBe(Number(new URL(url).port || 5432));
        expect(db.route(writing)).toMatchObject({ target: 'primary' });
      } finally {
        await db.close();
      }
    });
  },
);
