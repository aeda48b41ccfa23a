import { MemoryStore } from '../src/index.js';
import { storeConformanceSuite } from './conformance/store-suite.js';

storeConformanceSuite('memory', { create: async () => new MemoryStore() });
