// The native file client (inside the DuckDB extension) on an embedded cluster (authentication
// on): with `SET millpond_token` it authenticates to meta and to the data servers and sends the
// capabilities meta hands out; without a token, or with one from another secret, it is refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatToken, mintToken } from '../../src/auth/keys.js';
import { startEmbedded, type Embedded } from '../../src/cli/embedded.js';
import { tempDir } from '../support/tmp.js';

const extension = fileURLToPath(new URL('../../build/duckdb-ext/millpond.duckdb_extension', import.meta.url));
const rows = async (conn: DuckDBConnection, sql: string) => (await conn.runAndReadAll(sql)).getRows();

describe('DuckDB extension on an authenticated cluster', () => {
  const t = tempDir('duckdb-auth');
  let cluster: Embedded;
  const conns: DuckDBConnection[] = [];

  // A fresh DuckDB per token: the extension keeps one client per (cluster, token).
  async function open(token: string | undefined): Promise<DuckDBConnection> {
    const db = await DuckDBInstance.create(':memory:', { allow_unsigned_extensions: 'true' });
    const conn = await db.connect();
    conns.push(conn);
    await rows(conn, `LOAD '${extension}'`);
    await rows(conn, `SET millpond_meta = '${cluster.meta}'`);
    await rows(conn, `SET millpond_mgmtd = '${cluster.mgmtd}'`);
    await rows(conn, `SET millpond_transport = 'tcp'`);
    if (token) await rows(conn, `SET millpond_token = '${token}'`);
    await rows(conn, `SET millpond_server_key = '${cluster.serverKey}'`);
    return conn;
  }

  beforeAll(async () => {
    cluster = await startEmbedded({
      dataDir: join(t.dir, 'cluster'), mgmtdListen: 'tcp://127.0.0.1:0', metaListen: 'tcp://127.0.0.1:0',
      host: '127.0.0.1', transport: 'tcp', chainCount: 6, syncWrites: false,
    });
  }, 60_000);

  afterAll(async () => {
    for (const c of conns) c.closeSync();
    await cluster?.stop();
    t.cleanup();
  });

  it('writes and reads millpond:// with a token, and is refused without a good one', async () => {
    const conn = await open(cluster.adminToken); // storage serves it only with meta's capabilities
    await rows(conn, `COPY (SELECT range AS i FROM range(100000)) TO 'millpond:///a.parquet' (FORMAT parquet)`);
    expect(await rows(conn, `SELECT count(*), sum(i) FROM read_parquet('millpond:///a.parquet')`)).toEqual([[100000n, 4999950000n]]);

    const none = await open(undefined);
    await expect(rows(none, `SELECT count(*) FROM read_parquet('millpond:///a.parquet')`)).rejects.toThrow(/EAUTH/);
    const forged = await open(formatToken(mintToken(randomBytes(32), 0)));
    await expect(rows(forged, `SELECT count(*) FROM read_parquet('millpond:///a.parquet')`)).rejects.toThrow(/EAUTH/);
    await expect(rows(forged, `COPY (SELECT 1 AS x) TO 'millpond:///b.parquet' (FORMAT parquet)`)).rejects.toThrow(/EAUTH/);
  }, 60_000);
});
