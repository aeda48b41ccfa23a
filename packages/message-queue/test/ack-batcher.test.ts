import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AckBatcher, type AckChannel } from '../src/providers/ack-batcher.js';

/** A channel that behaves like the broker: tags are outstanding until acked or nacked once. */
class FakeChannel implements AckChannel<number> {
  readonly outstanding = new Set<number>();
  readonly acked: number[] = [];
  readonly nacked: number[] = [];
  frames = 0;

  deliver(tag: number): number {
    this.outstanding.add(tag);
    return tag;
  }

  ack(tag: number, allUpTo = false): void {
    this.frames += 1;
    // RabbitMQ closes the channel on an unknown tag (PRECONDITION_FAILED).
    if (!this.outstanding.has(tag)) throw new Error(`unknown delivery tag ${tag}`);
    for (const outstanding of [...this.outstanding]) {
      if (outstanding === tag || (allUpTo && outstanding < tag)) {
        this.outstanding.delete(outstanding);
        this.acked.push(outstanding);
      }
    }
  }

  nack(tag: number): void {
    this.frames += 1;
    if (!this.outstanding.has(tag)) throw new Error(`unknown delivery tag ${tag}`);
    this.outstanding.delete(tag);
    this.nacked.push(tag);
  }
}

function setup() {
  const channel = new FakeChannel();
  const flushes: (() => void)[] = [];
  const batcher = new AckBatcher<number>(channel, (flush) => flushes.push(flush));
  const runFlushes = () => {
    for (const flush of flushes.splice(0)) flush();
  };
  return { channel, batcher, runFlushes };
}

describe('AckBatcher', () => {
  it('acknowledges a run of completed deliveries with one multiple frame per tick', () => {
    const { channel, batcher, runFlushes } = setup();
    const deliveries = [1, 2, 3, 4, 5].map((tag) => batcher.track(channel.deliver(tag)));
    for (const delivery of deliveries) batcher.ack(delivery);
    expect(channel.frames).toBe(0);
    runFlushes();
    expect(channel.frames).toBe(1);
    expect(channel.acked.sort()).toEqual([1, 2, 3, 4, 5]);
    expect(batcher.unsettled).toBe(0);
  });

  it('never covers a running delivery: completions behind it are acked one by one', () => {
    const { channel, batcher, runFlushes } = setup();
    const [first, second, third, fourth] = [1, 2, 3, 4].map((tag) => batcher.track(channel.deliver(tag)));
    batcher.ack(first!);
    batcher.ack(third!);
    batcher.ack(fourth!);
    runFlushes();
    expect(channel.outstanding).toEqual(new Set([2]));
    batcher.ack(second!);
    runFlushes();
    expect(channel.outstanding.size).toBe(0);
  });

  it('nacks at once and leaves the rest of the window consistent', () => {
    const { channel, batcher, runFlushes } = setup();
    const [first, second, third] = [1, 2, 3].map((tag) => batcher.track(channel.deliver(tag)));
    batcher.nack(second!, true);
    expect(channel.nacked).toEqual([2]);
    batcher.ack(first!);
    batcher.ack(third!);
    runFlushes();
    expect(channel.acked.sort()).toEqual([1, 3]);
    expect(batcher.unsettled).toBe(0);
  });

  it('property: every delivery is settled exactly once, acks cover only completed ones', () => {
    const operation = fc.record({ index: fc.nat(199), kind: fc.constantFrom('ack', 'nack', 'flush') });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 200 }), fc.array(operation, { maxLength: 400 }), (count, ops) => {
        const { channel, batcher, runFlushes } = setup();
        const deliveries = Array.from({ length: count }, (_, index) =>
          batcher.track(channel.deliver(index + 1)),
        );
        const completed = new Set<number>();
        const rejected = new Set<number>();
        for (const op of ops) {
          const delivery = deliveries[op.index % count]!;
          if (op.kind === 'flush') runFlushes();
          else if (op.kind === 'ack') {
            if (!rejected.has(delivery.message)) completed.add(delivery.message);
            batcher.ack(delivery);
          } else {
            if (!completed.has(delivery.message)) rejected.add(delivery.message);
            batcher.nack(delivery, true);
          }
          // Nothing acked that did not complete (a running job stays unacknowledged).
          for (const tag of channel.acked) expect(completed.has(tag)).toBe(true);
        }
        runFlushes();
        expect(new Set(channel.acked)).toEqual(completed);
        expect(new Set(channel.nacked)).toEqual(rejected);
        expect(channel.acked.length + channel.nacked.length).toBe(completed.size + rejected.size);
        expect(batcher.unsettled).toBe(count - completed.size - rejected.size);
      }),
    );
  });
});
