import { ConfigError } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { redisUp, sharedRedisCaches } from './helpers.js';

const { open } = sharedRedisCaches('ill-formed-keys');

/** What a call resolved to, or the error it rejected (or threw) with. */
async function outcome(call: () => Promise<unknown>): Promise<unknown> {
  try {
    return await call();
  } catch (error) {
    return error;
  }
}

/** The fields of the `ConfigError` `value` is, or `value` itself for a failing expectation. */
function refusedFields(value: unknown): unknown {
  return value instanceof ConfigError ? value.fields : value;
}

// Redis keys, tag set names and bus messages are UTF-8: a lone surrogate (half of an emoji cut by
// `slice`) becomes U+FFFD on the way, so 'x\uD800' and 'x\uD801' would name one Redis key.
describe.skipIf(!redisUp)('keys and tags that are not well-formed UTF-16', () => {
  it('a key with a lone surrogate never reads another key’s value: it is refused, naming the key', async () => {
    const writer = await open({ bus: false });
    const reader = await open({ bus: false });
    const written = await outcome(() => writer.set('x\uD800', 'first'));
    // Another key, the same bytes in Redis: before, it read 'first' from L2.
    const read = await outcome(() => reader.get('x\uD801'));
    expect(read).not.toBe('first');
    expect(refusedFields(written)).toEqual(['key']);
    expect(refusedFields(read)).toEqual(['key']);
    expect(refusedFields(await outcome(() => reader.getOrSet('x\uDC00', () => 'mine')))).toEqual(['key']);
    expect(refusedFields(await outcome(() => reader.getMany(['ok', 'x\uD800'])))).toEqual(['keys.1']);
    expect(refusedFields(await outcome(() => reader.delete('x\uD800')))).toEqual(['key']);
    expect(refusedFields(await outcome(() => writer.setMany([{ key: 'y\uD800', value: 1 }])))).toEqual([
      '0.key',
    ]);
    // A namespace's keys reach Redis the same way, and so does its name.
    expect(refusedFields(await outcome(() => writer.namespace('ns').set('z\uD800', 1)))).toEqual(['key']);
    expect(refusedFields(await outcome(async () => writer.namespace('n\uD800')))).toEqual(['name']);
  });

  it('a tag with a lone surrogate is refused, naming the tag: its deleteByTag left the value in Redis', async () => {
    const writer = await open({ bus: false });
    const other = await open({ bus: false });
    const tagged = await outcome(() => writer.set('tagged', 'stale', { tags: ['t\uD800'] }));
    const deleted = await outcome(() => writer.deleteByTag('t\uD800'));
    // Before, the value stayed in Redis: its tags decode as 't\uFFFD', not the tag deleted.
    expect(await other.get('tagged')).toBeUndefined();
    expect(refusedFields(tagged)).toEqual(['tags.0']);
    expect(refusedFields(deleted)).toEqual(['tags.0']);
    expect(refusedFields(await outcome(() => other.expireByTag(['ok', 't\uDFFF'])))).toEqual(['tags.1']);
    const fromFactory = await outcome(() =>
      writer.getOrSet('by-factory', (ctx) => {
        ctx.setOptions({ tags: ['t\uD800'] });
        return 1;
      }),
    );
    expect(refusedFields(fromFactory)).toEqual(['tags.0']);
  });

  it('well-formed keys outside the BMP (emoji: surrogate pairs) stay distinct in Redis', async () => {
    const writer = await open({ bus: false });
    const reader = await open({ bus: false });
    await writer.set('user:😀', 'grin', { tags: ['😀'] });
    await writer.set('user:😁', 'beam', { tags: ['😁'] });
    expect(await reader.getMany(['user:😀', 'user:😁'])).toEqual(['grin', 'beam']);
    expect(await reader.deleteByTag('😁')).toBe(1);
    expect(await reader.get('user:😀')).toBe('grin');
  });
});
