/**
 * `@noa/connection-pool/mongo`: MongoDB through the `mongodb` driver's own pool. Its
 * declarations import `mongodb`'s types; the main entry imports no driver.
 */
export {
  createMongoPool,
  MongoPool,
  type MongoPoolHealth,
  type MongoPoolOptions,
  mongoPoolOptionsSchema,
} from './mongo-pool.js';
