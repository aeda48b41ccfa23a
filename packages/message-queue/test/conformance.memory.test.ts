import { MemoryProvider } from '../src/index.js';
import { describeQueueConformance } from './conformance/queue-conformance.js';

describeQueueConformance({
  name: 'memory',
  capabilities: MemoryProvider.capabilities,
  create: async () => new MemoryProvider(),
});
