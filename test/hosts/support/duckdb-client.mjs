// DuckDB with the millpond extension on a test host (the native client):
//   node duckdb-client.mjs EXTENSION META_LIST MGMTD_LIST PATH
// writes 100,000 rows to millpond://PATH, reads them back, prints "rows <count> <sum>".
// Token: MILLPOND_TOKEN_FILE and MILLPOND_SERVER_KEY.
import { DuckDBInstance } from '@duckdb/node-api';

const [extension, meta, mgmtd, path] = process.argv.slice(2);
const db = await DuckDBInstance.create(':memory:', { allow_unsigned_extensions: 'true' });
const conn = await db.connect();
await conn.run(`LOAD '${extension}'`);
await conn.run(`SET millpond_meta = '${meta}'`);
await conn.run(`SET millpond_mgmtd = '${mgmtd}'`);
await conn.run(`SET millpond_transport = 'tcp'`);
await conn.run(`COPY (SELECT range AS i FROM range(100000)) TO 'millpond://${path}' (FORMAT parquet)`);
const [[n, s]] = (await conn.runAndReadAll(`SELECT count(*)::BIGINT, sum(i)::BIGINT FROM read_parquet('millpond://${path}')`)).getRows();
console.log(`rows ${n} ${s}`);
conn.closeSync();
