// millpond:// inside DuckDB (@duckdb/node-api 1.4.4-r.4) on the embedded default cluster:
// COPY ... TO writes Parquet into millpond, read_parquet reads it back with globs, and the
// answers equal plain DuckDB's on a local file.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEmbedded, type Embedded } from '../../src/cli/embedded.js';
import { MetaClient } from '../../src/meta/meta-client.js';
import { connect } from '../../src/fs/index.js';
import { tempDir } from '../support/tmp.js';

const extension = fileURLToPath(new URL('../../build/duckdb-ext/millpond.duckdb_extension', import.meta.url));

async function open(): Promise<DuckDBConnection> {
  const db = await DuckDBInstance.create(':memory:', { allow_unsigned_extensions: 'true' });
  return db.connect();
}

const rows = async (conn: DuckDBConnection, sql: string) => (await conn.runAndReadAll(sql)).getRows();

describe('DuckDB extension', () => {
  const t = tempDir('duckdb');
  let cluster: Embedded;
  let conn: DuckDBConnection;

  beforeAll(async () => {
    expect(existsSync(extension), `${extension} (built by npm install)`).toBe(true);
    cluster = await startEmbedded({
      dataDir: join(t.dir, 'cluster'), mgmtdListen: 'tcp://127.0.0.1:0', metaListen: 'tcp://127.0.0.1:0',
      host: '127.0.0.1', transport: 'tcp', chainCount: 6, syncWrites: false,
    });
    conn = await open();
    await rows(conn, `LOAD '${extension}'`);
    await rows(conn, `SET millpond_meta = '${cluster.meta}'`);
    await rows(conn, `SET millpond_mgmtd = '${cluster.mgmtd}'`);
    // Authentication is on: the admin token `up` wrote, and the cluster's server key.
    await rows(conn, `SET millpond_token_file = '${join(t.dir, 'cluster', 'keys', 'admin.token')}'`);
    await rows(conn, `SET millpond_server_key = '${cluster.serverKey}'`);
  }, 60_000);

  afterAll(async () => {
    conn?.closeSync();
    await cluster?.stop();
    t.cleanup();
  });

  it('presents its token: a user reads what the user may, is refused the rest; a malformed token gets EAUTH', async () => {
    await rows(conn, `COPY (SELECT 42 AS answer) TO 'millpond:///private.parquet' (FORMAT parquet)`);
    await rows(conn, `COPY (SELECT 7 AS answer) TO 'millpond:///shared.parquet' (FORMAT parquet)`);
    const admin = new MetaClient(cluster.meta, { auth: { token: cluster.adminToken, serverKey: cluster.serverKey } });
    try {
      await admin.setattr('/private.parquet', { mode: 0o600 });
      await admin.setattr('/shared.parquet', { mode: 0o644 });
      const { token } = await admin.userAdd({ name: 'duck', uid: 1500, gid: 1500 });
      const user = await open();
      await rows(user, `LOAD '${extension}'`);
      await rows(user, `SET millpond_meta = '${cluster.meta}'`);
      await rows(user, `SET millpond_mgmtd = '${cluster.mgmtd}'`);
      await rows(user, `SET millpond_token = '${token}'`);
      await rows(user, `SET millpond_server_key = '${cluster.serverKey}'`);
      expect(await rows(user, `SELECT answer FROM read_parquet('millpond:///shared.parquet')`)).toEqual([[7]]);
      await expect(rows(user, `SELECT answer FROM read_parquet('millpond:///private.parquet')`)).rejects.toThrow(/EACCES/);
      await expect(rows(user, `COPY (SELECT 1) TO 'millpond:///owned-by-root/x.parquet' (FORMAT parquet)`)).rejects.toThrow(/EACCES|ENOENT/);
      user.closeSync();
      // A malformed token is refused before anything is sent.
      const bad = await open();
      await rows(bad, `LOAD '${extension}'`);
      await rows(bad, `SET millpond_meta = '${cluster.meta}'`);
      await rows(bad, `SET millpond_mgmtd = '${cluster.mgmtd}'`);
      await rows(bad, `SET millpond_token = 'mpt1.0.0000000000000000.forged'`);
      await rows(bad, `SET millpond_server_key = '${cluster.serverKey}'`);
      await expect(rows(bad, `SELECT * FROM read_parquet('millpond:///shared.parquet')`)).rejects.toThrow(/EAUTH/);
      bad.closeSync();
    } finally {
      admin.disconnect();
    }
  }, 60_000);

  it('writes Parquet with COPY and reads it back like a local file', async () => {
    const table = `SELECT range AS id, range % 97 AS k, 'name-' || range AS name, range * 0.5 AS x FROM range(300000)`;
    await rows(conn, `COPY (${table}) TO 'millpond:///t.parquet' (FORMAT parquet, ROW_GROUP_SIZE 50000)`);
    const local = join(t.dir, 't.parquet');
    await rows(conn, `COPY (${table}) TO '${local}' (FORMAT parquet, ROW_GROUP_SIZE 50000)`);
    const query = (path: string) => `SELECT k, count(*) AS n, sum(id) AS s, max(name) AS m, avg(x) AS a
      FROM read_parquet('${path}') WHERE id % 3 = 0 GROUP BY k ORDER BY k`;
    const remote = await rows(conn, query('millpond:///t.parquet'));
    expect(remote.length).toBe(97);
    expect(remote).toEqual(await rows(conn, query(local)));
  });

  it('globs with *, ** and ?, writes hive partitions and overwrites files', async () => {
    await rows(conn, `COPY (SELECT range % 4 AS part, range AS v FROM range(1000)) TO 'millpond:///parts' (FORMAT parquet, PARTITION_BY (part))`);
    const files = (await rows(conn, `SELECT file FROM glob('millpond:///parts/**/*.parquet') ORDER BY file`)).map((r) => String(r[0]));
    // millpond://a and millpond:///a name the same file; DuckDB rejoins glob results its own way.
    expect(files.map((f) => f.replace(/^millpond:\/+/, '/'))).toEqual([0, 1, 2, 3].map((p) => `/parts/part=${p}/data_0.parquet`));
    for (const f of files) expect(await rows(conn, `SELECT count(*) FROM read_parquet('${f}')`)).toEqual([[250n]]);
    expect(await rows(conn, `SELECT count(*) FROM glob('millpond:///parts/part=?/*')`)).toEqual([[4n]]);
    expect(await rows(conn, `SELECT part, count(*), sum(v) FROM read_parquet('millpond:///parts/*/*.parquet', hive_partitioning = true) GROUP BY part ORDER BY part`))
      .toEqual([[0n, 250n, 124500n], [1n, 250n, 124750n], [2n, 250n, 125000n], [3n, 250n, 125250n]]);
    await rows(conn, `COPY (SELECT 42 AS answer) TO 'millpond:///t.parquet' (FORMAT parquet)`);
    expect(await rows(conn, `SELECT * FROM read_parquet('millpond:///t.parquet')`)).toEqual([[42]]);
  });

  it('millpond_metrics() counts the bytes its queries read and wrote through millpond', async () => {
    // A CSV of known size written by the JS client (not through the extension), read whole.
    const fs = await connect({ meta: cluster.meta, mgmtd: cluster.mgmtd, transport: 'tcp', token: cluster.adminToken, serverKey: cluster.serverKey });
    try {
      const csv = 'id,name\n' + Array.from({ length: 60_000 }, (_, i) => `${i},name-${i}`).join('\n') + '\n';
      await fs.writeFile('/metrics-in.csv', csv);
      const inputBytes = Buffer.byteLength(csv);
      const metrics = async () => {
        const [row] = (await conn.runAndReadAll('SELECT read_bytes, written_bytes, chunk_reads, chunk_writes FROM millpond_metrics()')).getRowObjectsJS();
        return { read: Number(row!.read_bytes), written: Number(row!.written_bytes), chunkReads: Number(row!.chunk_reads), chunkWrites: Number(row!.chunk_writes) };
      };
      const before = await metrics();
      expect(await rows(conn, `SELECT count(*), sum(id) FROM read_csv('millpond:///metrics-in.csv')`)).toEqual([[60_000n, 1_799_970_000n]]);
      const afterRead = await metrics();
      expect(afterRead.read - before.read).toBeGreaterThanOrEqual(inputBytes);
      expect(afterRead.read - before.read).toBeLessThan(3 * inputBytes);
      expect(afterRead.chunkReads).toBeGreaterThan(before.chunkReads);
      expect(afterRead.written).toBe(before.written);

      await rows(conn, `COPY (SELECT range AS v, 'w-' || range AS s FROM range(100000)) TO 'millpond:///metrics-out.parquet' (FORMAT parquet)`);
      const afterWrite = await metrics();
      const outputBytes = (await fs.stat('/metrics-out.parquet')).size;
      expect(outputBytes).toBeGreaterThan(100_000);
      expect(afterWrite.written - afterRead.written).toBeGreaterThanOrEqual(outputBytes);
      expect(afterWrite.written - afterRead.written).toBeLessThan(3 * outputBytes);
      expect(afterWrite.chunkWrites).toBeGreaterThan(afterRead.chunkWrites);
    } finally {
      fs.close();
    }
  });

  it('caches Parquet footers', async () => {
    expect(await rows(conn, `SELECT current_setting('parquet_metadata_cache')`)).toEqual([[true]]);
  });

  it('reports a missing path and a missing cluster clearly', async () => {
    await expect(rows(conn, `SELECT * FROM read_parquet('millpond:///missing.parquet')`)).rejects.toThrow(/missing\.parquet/);
    const bare = await open();
    await rows(bare, `LOAD '${extension}'`);
    const saved = [process.env.MILLPOND_META, process.env.MILLPOND_MGMTD];
    delete process.env.MILLPOND_META;
    delete process.env.MILLPOND_MGMTD;
    try {
      await expect(rows(bare, `SELECT * FROM read_parquet('millpond:///t.parquet')`)).rejects.toThrow(/millpond_meta/);
    } finally {
      [process.env.MILLPOND_META, process.env.MILLPOND_MGMTD] = saved;
      bare.closeSync();
    }
  });

  it('refuses to load into a DuckDB of another version, saying so', async () => {
    const other = join(t.dir, 'millpond.duckdb_extension');
    copyFileSync(extension, other);
    const bytes = readFileSync(other);
    const at = bytes.lastIndexOf(Buffer.from('v1.4.4'));
    expect(at).toBeGreaterThan(bytes.length - 534);
    bytes.write('v1.4.3', at, 'ascii');
    writeFileSync(other, bytes);
    const fresh = await open();
    await expect(rows(fresh, `LOAD '${other}'`)).rejects.toThrow(/v1\.4\.3/);
    fresh.closeSync();
  });
});
