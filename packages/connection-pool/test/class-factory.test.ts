import { describe, expect, it } from 'vitest';
import { Pool } from '../src/index.js';

interface Connection {
  id: number;
  pings: number;
}

/**
 * A factory written as a class whose methods use `this`, the shape generic-pool's users pass
 * (coopernurse/node-pool#183: `createPool(new BadResourceFactory(), …)`): every method must be
 * called on the factory, `validate`, `abort`, `ref` and `unref` as much as `create` and `destroy`.
 */
class CountingFactory {
  readonly opened: number[] = [];
  readonly closed: number[] = [];
  readonly refs: string[] = [];
  #nextId = 0;

  async create(): Promise<Connection> {
    this.#nextId += 1;
    this.opened.push(this.#nextId);
    return { id: this.#nextId, pings: 0 };
  }

  async destroy(connection: Connection): Promise<void> {
    this.closed.push(connection.id);
  }

  async validate(connection: Connection): Promise<boolean> {
    connection.pings += 1;
    return this.opened.includes(connection.id);
  }

  abort(connection: Connection): void {
    this.closed.push(-connection.id);
  }

  unref(connection: Connection): void {
    this.refs.push(`unref ${connection.id}`);
  }

  ref(connection: Connection): void {
    this.refs.push(`ref ${connection.id}`);
  }
}

describe('Pool with a class-based factory', () => {
  it('validateOnBorrow calls validate on the factory: a healthy idle connection is lent again', async () => {
    const factory = new CountingFactory();
    const pool = new Pool(factory, { max: 2, validateOnBorrow: true, allowExitOnIdle: true });
    const first = await pool.acquire();
    pool.release(first);
    const second = await pool.acquire();
    expect(second).toBe(first);
    expect(second.pings).toBe(1);
    expect(factory.opened).toEqual([1]);
    expect(factory.closed).toEqual([]);
    expect(factory.refs).toContain('unref 1');
    expect(factory.refs).toContain('ref 1');
    pool.release(second);
    await pool.close();
  });

  it('close() aborts a connection still lent through the factory', async () => {
    const factory = new CountingFactory();
    const pool = new Pool(factory, { max: 1, closeTimeoutMs: 1 });
    await pool.acquire();
    const report = await pool.close();
    expect(report.unreleased).toHaveLength(1);
    expect(factory.closed).toEqual([-1, 1]);
  });
});
