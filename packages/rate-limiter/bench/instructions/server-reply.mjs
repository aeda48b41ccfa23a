// Sends EVALSHA of server-reply.lua <calls> times, one at a time: `node server-reply.mjs <port> <mode> <distinct> <calls>` (see server-reply.sh).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { Redis } = require('ioredis');
const [port, mode, distinct, calls] = process.argv.slice(2);
const r = new Redis(Number(port));
const sha = await r.script('LOAD', readFileSync(new URL('./server-reply.lua', import.meta.url), 'utf8'));
for (let i = 0; i < Number(calls); i++) await r.evalsha(sha, 0, mode, distinct);
r.disconnect();
