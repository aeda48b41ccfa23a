import type { RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMysqlPool, type MysqlPool } from '../../src/mysql.js';
import {
  type PrivateMariadbReplication,
  privateMariadbSkipReason,
  startPrivateMariadbReplication,
} from './helpers/private-mariadb.js';
import { waitFor as waitUntil } from './helpers/wait.js';

const skip = privateMariadbSkipReason();
if (skip) console.log(skip);

// MariaDB replication restarts take longer to settle than the default wait.
const waitFor = (check: () => boolean | Promise<boolean>) => waitUntil(check, 20_000);

describe.skipIf(skip !== undefined)('MysqlPool on a private MariaDB primary + replica', () => {
  let servers: PrivateMariadbReplication;
  let pool: MysqlPool;

  beforeAll(async () => {
    servers = await startPrivateMariadbReplication();
    pool = createMysqlPool({
      primary: `${servers.primaryUrl}mysql`,
      replicas: [`${servers.replicaUrl}mysql`],
      healthCheckIntervalMs: 100,
      maxReplicaLagMs: 1_000,
      readYourWritesMs: 0,
    });
    await pool.query('CREATE DATABASE app');
    await pool.query('CREATE TABLE app.events (id int AUTO_INCREMENT PRIMARY KEY, at datetime NOT NULL)');
    await waitFor(async () => {
      const [rows] = await pool.query<RowDataPacket[]>(
        "SELECT @@server_id AS id, (SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'app' AND table_name = 'events') AS n",
      );
      return rows[0]!.id === 2 && Number(rows[0]!.n) === 1;
    });
  });

  afterAll(async () => {
    await pool?.close();
    await servers?.destroy();
  });

  const serverOf = async (sql: string) => {
    const [rows] = await pool.query<RowDataPacket[]>(sql);
    return rows[0]!.id === 2 ? 'replica' : 'primary';
  };

  it('reads from the replica, writes and locking reads on the primary', async () => {
    await pool.query('INSERT INTO app.events (at) VALUES (NOW())');
    expect(await serverOf('SELECT @@server_id AS id')).toBe('replica');
    expect(await serverOf('SELECT @@server_id AS id FROM app.events LIMIT 1 FOR UPDATE')).toBe('primary');
    expect(await serverOf('SELECT LAST_INSERT_ID() AS l, @@server_id AS id')).toBe('primary');
  });

  it('takes the replica out while its SQL thread is stopped (Seconds_Behind_Master NULL)', async () => {
    await servers.onReplica('STOP SLAVE SQL_THREAD');
    try {
      await waitFor(() => pool.health().replicas[0]!.reason === 'lag');
      expect(pool.health().replicas[0]!.lagMs).toBe(Number.POSITIVE_INFINITY);
      expect(await serverOf('SELECT @@server_id AS id')).toBe('primary');
    } finally {
      await servers.onReplica('START SLAVE SQL_THREAD');
    }
    await waitFor(() => pool.health().replicas[0]!.healthy);
    expect(await serverOf('SELECT @@server_id AS id')).toBe('replica');
  });

  it('takes a delayed replica out while it is behind, and back once it caught up', async () => {
    await servers.onReplica('STOP SLAVE');
    await servers.onReplica('CHANGE MASTER TO MASTER_DELAY = 3');
    await servers.onReplica('START SLAVE');
    try {
      // Restarting replication reports NULL lag for a moment: start from a caught-up replica.
      await waitFor(() => pool.health().replicas[0]!.healthy && pool.health().replicas[0]!.lagMs === 0);
      await pool.query('INSERT INTO app.events (at) VALUES (NOW())');
      await waitFor(() => {
        const replica = pool.health().replicas[0]!;
        return replica.reason === 'lag' && Number.isFinite(replica.lagMs);
      });
      expect(pool.health().replicas[0]!.lagMs).toBeGreaterThan(1_000);
      expect(await serverOf('SELECT @@server_id AS id')).toBe('primary');
      await waitFor(() => pool.health().replicas[0]!.healthy);
      expect(await serverOf('SELECT @@server_id AS id')).toBe('replica');
    } finally {
      await servers.onReplica('STOP SLAVE');
      await servers.onReplica('CHANGE MASTER TO MASTER_DELAY = 0');
      await servers.onReplica('START SLAVE');
    }
  });
});
