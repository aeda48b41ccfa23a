// Reading one check reply on the client, for counting instructions under valgrind (see
// reply.sh): `node reply.mjs <shape> <calls>` feeds <calls> replies of one shape to the RESP reader
// of the ioredis this package resolves (ioredis 6's decoder, or ioredis 5's redis-parser), turns
// them to strings as ioredis does for a command with `replyEncoding: 'utf8'`, and reads the
// numbers as the store does. Shapes: array (check.lua's one-key reply before: nine integers),
// string (its reply now: one bulk string of them; parsed by the built package's `replyValues`, so
// run `pnpm build` first), rlf (RateLimiterRedis's reply: two integers), batch-array and
// batch-string (a standalone call of 32 one-cost keys, as the 64-in-flight bench sends: the
// header, then 7 numbers per key, 226 in all, as integers or as one string).
import { createRequire } from 'node:module';
import path from 'node:path';
import { replyValues } from '../../dist/stores/lua-script.js';

const [shape = 'string', calls = '100000'] = process.argv.slice(2);
const require = createRequire(import.meta.url);
const ioredisDir = path.dirname(require.resolve('ioredis/package.json'));
const { convertBufferToString } = require(`${ioredisDir}/built/utils/index.js`);
let reply;
let feed;
if (require('ioredis/package.json').version.startsWith('5')) {
  const Parser = require(require.resolve('redis-parser', { paths: [ioredisDir] }));
  // As ioredis 5 makes it (DataHandler): Buffers back, converted per command.
  const parser = new Parser({
    stringNumbers: false,
    returnBuffers: true,
    returnReply: (value) => {
      reply = value;
    },
    returnError() {},
    returnFatalError() {},
  });
  feed = (chunk) => parser.execute(chunk);
} else {
  const { Decoder } = require(`${ioredisDir}/built/resp/decoder.js`);
  // ioredis 6's default mapping for the types these replies use (DataHandler's legacyTypeMapping).
  const decoder = new Decoder({
    getTypeMapping: () => ({ 36: Buffer, 43: Buffer }),
    onReply: (value) => {
      reply = value;
    },
    onErrorReply() {},
    onPush() {},
  });
  feed = (chunk) => decoder.write(chunk);
}
const batchKeys = 32;
const values = shape.startsWith('batch')
  ? [
      1765040000123,
      1,
      ...Array.from({ length: batchKeys }, (_, key) => [0, 1, 999999876 - key, 59877, 0, 0, 0]).flat(),
    ]
  : [1765040000123, 1, 0, 1, 999999876, 59877, 0, 0, 0];
const text = values.join(' ');
const chunk = Buffer.from(
  shape === 'array' || shape === 'batch-array'
    ? `*${values.length}\r\n${values.map((value) => `:${value}\r\n`).join('')}`
    : shape === 'rlf'
      ? '*2\r\n:5\r\n:60000\r\n'
      : `$${text.length}\r\n${text}\r\n`,
);
let sink = 0;
for (let index = 0; index < Number(calls); index += 1) {
  feed(chunk);
  const converted = convertBufferToString(reply, 'utf8');
  const numbers = typeof converted === 'string' ? replyValues(converted) : converted;
  sink += numbers.length;
}
if (sink !== Number(calls) * (shape === 'rlf' ? 2 : values.length))
  throw new Error(`unexpected replies (${sink})`);
