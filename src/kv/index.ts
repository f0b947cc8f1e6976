/**
 * The transactional KV backends that meta and mgmtd keep their state in (design §7): one
 * interface (kv.ts) and its SQLite and PostgreSQL implementations. Nothing here knows what the
 * keys mean; it imports no service.
 */
export { backoff, type KvBackend, type KvTx, type KvPair } from './kv.js';
export { SqliteKv, type SqliteKvOptions } from './sqlite-kv.js';
export { PostgresKv, type PostgresKvOptions } from './postgres-kv.js';
