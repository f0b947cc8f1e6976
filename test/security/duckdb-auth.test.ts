// The native file client (inside the DuckDB extension) on an embedded cluster (authentication
// on): with `SET millpond_token` it authenticates to meta and to the data servers and sends the
// capabilities meta hands out (a client without a token, or with a foreign one, gets no service
// from meta's CURVE endpoint at all: test/security/control-plane.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
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

  it('writes and reads millpond:// with a token: the data servers serve it with the capabilities meta handed out', async () => {
    const conn = await open(cluster.adminToken); // storage serves it only with meta's capabilities
    await rows(conn, `COPY (SELECT range AS i FROM range(100000)) TO 'millpond:///a.parquet' (FORMAT parquet)`);
    expect(await rows(conn, `SELECT count(*), sum(i) FROM read_parquet('millpond:///a.parquet')`)).toEqual([[100000n, 4999950000n]]);

  }, 60_000);
});
