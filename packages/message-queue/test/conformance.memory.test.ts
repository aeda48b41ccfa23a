import { MemoryProvider } from '../src/index.js';
import { describeQueueConformance } from './conformance/queue-conformance.js';

describeQueueConformance({ name: 'memory', create: async () => new MemoryProvider() });
