import { MongoClient } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { serviceUrl, skipReason, uniqueName } from '../../src/index.js';
import { smokeLine } from './smoke.js';

// MongoDB wire (FerretDB here) is not on every machine: skip with the reason printed.
const reason = await skipReason('mongo', 'MongoDB wire');

describe.skipIf(reason !== undefined)('MongoDB wire smoke', () => {
  it('inserts and finds a document in a collection of its own', async () => {
    const url = serviceUrl('mongo');
    const client = new MongoClient(url, { serverSelectionTimeoutMS: 5_000 });
    try {
      await client.connect();
      const database = client.db();
      const build = await database.admin().command({ buildInfo: 1 });
      const collection = database.collection<{ name: string; n: number }>(uniqueName('coll'));
      await collection.insertMany([
        { name: 'a', n: 1 },
        { name: 'b', n: 2 },
      ]);
      const found = await collection.find({ n: { $gt: 1 } }, { projection: { _id: 0 } }).toArray();
      expect(found).toEqual([{ name: 'b', n: 2 }]);
      await collection.drop();
      smokeLine('mongo', String(build.version), url);
    } finally {
      await client.close();
    }
  });
});
