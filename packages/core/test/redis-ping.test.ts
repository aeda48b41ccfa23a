import { describe, expect, it } from 'vitest';
import { pingRedis, RedisNotConnectedError, type RedisPingNode } from '../src/index.js';

// Which nodes pingRedis asks and when it settles, over nodes whose PING the test settles itself
// (the Cluster and single-node cases against real servers are in the cache's and the rate
// limiter's integration tests).
function node(status = 'ready') {
  let answer!: () => void;
  let fail!: (error: Error) => void;
  let pings = 0;
  const ping = () => {
    pings += 1;
    return new Promise<unknown>((resolve, reject) => {
      answer = () => resolve('PONG');
      fail = reject;
    });
  };
  return {
    node: { status, ping } satisfies RedisPingNode,
    answer: () => answer(),
    fail: (error: Error) => fail(error),
    pings: () => pings,
  };
}

function cluster(masters: ReturnType<typeof node>[]) {
  return {
    isCluster: true,
    status: 'ready',
    ping: () => Promise.reject(new Error('a keyless PING asks one master at random')),
    nodes: () => masters.map((master) => master.node),
  };
}

const settled = async (promise: Promise<unknown>) => {
  let state = 'pending';
  promise.then(
    () => (state = 'resolved'),
    () => (state = 'rejected'),
  );
  for (let turn = 0; turn < 5; turn += 1) await Promise.resolve();
  return state;
};

describe('pingRedis on a Cluster', () => {
  it("masters 'all' (default) waits for every master", async () => {
    const masters = [node(), node(), node()];
    const ping = pingRedis(cluster(masters));
    masters[0]!.answer();
    masters[1]!.answer();
    expect(await settled(ping)).toBe('pending');
    masters[2]!.answer();
    expect(await settled(ping)).toBe('resolved');
  });

  it("masters 'any' resolves on the first answer while another master stays silent", async () => {
    const masters = [node(), node(), node()];
    const ping = pingRedis(cluster(masters), { masters: 'any' });
    expect(masters.map((master) => master.pings())).toEqual([1, 1, 1]);
    masters[0]!.fail(new Error('frozen'));
    expect(await settled(ping)).toBe('pending');
    masters[2]!.answer();
    expect(await settled(ping)).toBe('resolved');
  });

  it("masters 'any' rejects with the first failure once every master failed, a down one without a PING", async () => {
    const masters = [node('reconnecting'), node(), node()];
    const ping = pingRedis(cluster(masters), { masters: 'any' });
    expect(masters.map((master) => master.pings())).toEqual([0, 1, 1]);
    masters[1]!.fail(new Error('LOADING'));
    masters[2]!.fail(new Error('timeout'));
    await expect(ping).rejects.toBeInstanceOf(RedisNotConnectedError);
  });
});
