import path from 'node:path';
import { runBench } from '@noa/testkit/bench';

// Side-by-side cases: ours and the named anchor, same inputs, same service, one run.
await runBench('@noa/rate-limiter', path.dirname(new URL(import.meta.url).pathname), []);
