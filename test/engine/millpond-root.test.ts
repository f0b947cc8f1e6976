/**
 * A job whose data lives in millpond: inputs put into the cluster, every task of every worker
 * reading and writing millpond:// partitions through the DuckDB extension, results compared
 * with plain DuckDB over the local input.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEmbedded, type Embedded } from '../../src/cli/embedded.js';
import { init, type Session } from '../../src/engine/index.js';
import { openDataRoot } from '../../src/engine/partition/root.js';
import { connect, type FileSystem } from '../../src/fs/index.js';
import { hostname } from 'node:os';
import { listJobs } from '../../src/cluster/jobs.js';
import { MgmtdClient } from '../../src/cluster/mgmtd-client.js';
import { until } from '../cluster/support/processes.js';
import { tempDir } from '../support/tmp.js';
import { bag, plainDuckDb, writeInputs } from './support.js';

describe('engine on a millpond root', () => {
  const t = tempDir('engine-mp');
  let cluster: Embedded;
  let fs: FileSystem;
  let sp: Session;
  let db: Awaited<ReturnType<typeof plainDuckDb>>;
  const local = () => `${t.dir}/events-*.parquet`;

  beforeAll(async () => {
    await writeInputs(t.dir);
    cluster = await startEmbedded({
      dataDir: join(t.dir, 'cluster'), mgmtdListen: 'tcp://127.0.0.1:0', metaListen: 'tcp://127.0.0.1:0',
      host: '127.0.0.1', transport: 'tcp', chainCount: 6, syncWrites: false,
    });
    fs = await connect({ meta: cluster.meta, mgmtd: cluster.mgmtd, transport: 'tcp', token: cluster.adminToken, serverKey: cluster.serverKey });
    await fs.mkdir('/input', { recursive: true });
    for (let i = 0; i < 3; i++) await fs.writeFile(`/input/events-${i}.parquet`, readFileSync(join(t.dir, `events-${i}.parquet`)));
    db = await plainDuckDb();
    sp = await init({
      root: { kind: 'millpond', dir: '/jobs', meta: cluster.meta, mgmtd: cluster.mgmtd, token: cluster.adminToken, serverKey: cluster.serverKey },
      workers: 2, memoryLimitPerTask: '256MB', progress: false,
    });
  }, 90_000);

  afterAll(async () => {
    await sp?.shutdown();
    db?.close();
    fs?.close();
    await cluster?.stop();
    t.cleanup();
  });

  it('shuffles and aggregates partitions in millpond like plain DuckDB on local files', async () => {
    const grouped = sp.partialSql('SELECT k, count(*) AS n, sum(id)::BIGINT AS s FROM {0} GROUP BY k',
      sp.readParquet('millpond:///input/events-*.parquet').repartition(3, { hashBy: 'k' }));
    expect(bag(await grouped.takeAll())).toEqual(bag(await db.rows(
      `SELECT k, count(*) AS n, sum(id)::BIGINT AS s FROM read_parquet('${local()}') GROUP BY k`)));
    // The shuffle's files (one source partition x 3) and the 3 aggregates are in millpond.
    expect((await fs.glob('/jobs/**/*.parquet')).length).toBeGreaterThanOrEqual(3 + 3);
    // The job reported itself to the root's mgmtd (the default): every task done, and where it ran.
    const admin = new MgmtdClient([cluster.mgmtd], { auth: { token: cluster.adminToken, serverKey: cluster.serverKey } });
    try {
      const job = await until(async () => (await listJobs(admin)).find((j) => j.jobId === sp.jobId && j.state === 'done'), 10_000, 'the job reported done');
      expect(job.tasksTotal).toBe(4);
      expect(job.tasks.map((x) => [x.state, x.host])).toEqual(Array(4).fill(['done', hostname()]));
      // Each task's bytes through millpond, measured in the local executor's worker: the shuffle
      // read the whole input (every column of its 3 files), each aggregate its parts. Files this
      // small (5 KB) are mostly footer, which DuckDB reads at each bind (the view, its schema,
      // the copy), and the outputs' footers are read for their row counts: 3.5x here; counted
      // per replica it would be 9x or more.
      const inputBytes = [0, 1, 2].reduce((a, i) => a + readFileSync(join(t.dir, `events-${i}.parquet`)).length, 0);
      const [shuffle, ...aggregates] = job.tasks;
      expect(shuffle!.readBytes).toBeGreaterThanOrEqual(inputBytes);
      expect(shuffle!.readBytes).toBeLessThan(5 * inputBytes);
      for (const x of job.tasks) expect(x.writtenBytes).toBeGreaterThan(0);
      for (const x of aggregates) expect(x.readBytes).toBeGreaterThan(0);
    } finally {
      admin.close();
    }
  });

  it('writeParquet of one whole Parquet file copies its bytes, no decode and encode', async () => {
    // Written with settings DuckDB's own COPY would not reproduce (zstd, 50-row groups, a
    // footer key): only a byte copy keeps them.
    const source = join(t.dir, 'zstd.parquet');
    await db.conn.run(`COPY (SELECT * FROM read_parquet('${local()}') ORDER BY id) TO '${source}'
      (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 50, KV_METADATA {origin: 'millpond-test'})`);
    await fs.writeFile('/input/zstd.parquet', readFileSync(source));
    await sp.readParquet('millpond:///input/zstd.parquet').writeParquet('/output/copied');
    const written = await fs.glob('/output/copied/*.parquet');
    expect(written).toHaveLength(1);
    expect((await fs.readFile(written[0]!)).equals(readFileSync(source))).toBe(true);
    expect(await sp.readParquet('millpond:///output/copied/*.parquet').count()).toBe(600);
    // The user's own file is copied, never linked: the output must not change with it.
    expect((await fs.stat(written[0]!)).ino).not.toBe((await fs.stat('/input/zstd.parquet')).ino);
    expect((await fs.stat('/input/zstd.parquet')).nlink).toBe(1);
  });

  it('writeParquet of computed partitions links their files from the job directory', async () => {
    const sorted = sp.readParquet('millpond:///input/events-*.parquet').repartition(2, { hashBy: 'k' }).partialSort('id');
    await sorted.writeParquet('/output/linked');
    const written = await fs.glob('/output/linked/*.parquet');
    expect(written).toHaveLength(2);
    const jobInodes = new Map<bigint, string>();
    for (const f of await fs.glob('/jobs/**/*.parquet')) jobInodes.set((await fs.stat(f)).ino, f);
    for (const f of written) {
      const st = await fs.stat(f);
      expect(st.nlink).toBe(2);
      expect(jobInodes.has(st.ino)).toBe(true);
    }
    expect(bag(await sp.readParquet('millpond:///output/linked/*.parquet').takeAll()))
      .toEqual(bag(await db.rows(`SELECT * FROM read_parquet('${local()}')`)));
    // The job's files go; the output keeps the data under its own name.
    for (const f of written) await fs.unlink(jobInodes.get((await fs.stat(f)).ino)!);
    for (const f of written) expect((await fs.stat(f)).nlink).toBe(1);
    expect(await sp.readParquet('millpond:///output/linked/*.parquet').count()).toBe(600);
  });

  it('writes its output into millpond', async () => {
    await sp.readParquet('/input/events-*.parquet').filter('v > 100').repartition(2).writeParquet('/output/filtered');
    const written = await fs.glob('/output/filtered/*.parquet');
    expect(written.length).toBeGreaterThanOrEqual(1);
    const back = sp.readParquet('millpond:///output/filtered/*.parquet');
    expect(await back.count()).toBe(Number((await db.rows(`SELECT count(*) AS n FROM read_parquet('${local()}') WHERE v > 100`))[0]!.n));
  });

  it('gives a task\'s claim to exactly one of many racing attempts, on millpond and on local disk', async () => {
    const roots = [
      openDataRoot({ kind: 'millpond', dir: '/claims', meta: cluster.meta, mgmtd: cluster.mgmtd, token: cluster.adminToken, serverKey: cluster.serverKey }),
      openDataRoot({ kind: 'local', dir: join(t.dir, 'claims') }),
    ];
    for (const root of roots) {
      const dir = `${root.dir}/job/node/.completed`;
      for (const location of [`${dir}/0.claim`, `${dir}/1.claim`]) {
        // The directory does not exist yet: every racer also makes it.
        const won = await Promise.all(Array.from({ length: 12 }, (_, attempt) => root.claim(location, String(attempt + 1))));
        expect(won.filter(Boolean)).toHaveLength(1);
        expect(await root.readText(location)).toBe(String(won.indexOf(true) + 1));
        expect(await root.claim(location, '99')).toBe(false);
        // Nothing but the claims themselves is left beside them.
        expect((await root.list(dir)).filter((n) => !/^\d+\.claim$/.test(n))).toEqual([]);
      }
    }
  });
});
