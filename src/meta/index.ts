export type { KvBackend, KvTx, KvPair } from '../kv/kv.js';
export { SqliteKv, type SqliteKvOptions } from '../kv/sqlite-kv.js';
export { PostgresKv, type PostgresKvOptions } from '../kv/postgres-kv.js';
export { MetaService, type MetaServiceOptions, type Dedup } from './meta-service.js';
export { MetaServer } from './meta-server.js';
export { MetaClient, MetaClientView, type MetaClientOptions } from './meta-client.js';
export type * from '../protocol/meta-types.js';
