/**
 * plan-rewrites: what the engine's plan rewrites save, each against the same job without the
 * rewrite in the same run, on the embedded cluster (millpond root, chains of 3).
 *   npm run bench -- plan-rewrites [--rows 2400000] [--rounds 3]
 * Rows of events (user_id, ts, cents, kind, session: two random UUIDs as text, most bytes), in
 * 8 Parquet files in millpond; 2 workers.
 * - pruning: a GROUP BY over `repartition(8, { hashBy: 'user_id' })`, the shuffle pruned to the
 *   three columns the SQL names, against the shuffle computed first by itself (whole: a result's
 *   rows are not pruned) and then the same SQL over it (`prune_ratio` = pruned / whole time).
 * - fusion: filter → map → partialSql run as one query per partition, against each step
 *   computed first (a computed step is not fused) (`fuse_ratio` = fused / stepwise time).
 * Each figure is the best of `rounds`, the two forms alternating, each run in a job of its own.
 */
import { DuckDBInstance } from '@duckdb/node-api';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startEmbedded } from '../src/cli/embedded.js';
import { init, type Session } from '../src/engine/index.js';
import { connect } from '../src/fs/index.js';
import { intOption, machineNote, makeWorkDir, nowMs, printJson, printTable, round3 } from './lib.js';

const FILES = 8;
const BY_USER = 'SELECT user_id, count(*) AS events, sum(cents)::BIGINT AS cents, max(ts) AS last_ts FROM {0} GROUP BY user_id';
const BY_KIND = 'SELECT kind, count(*) AS n, sum(w) AS s FROM {0} GROUP BY kind';

export async function planRewritesBench(options: Map<string, string>): Promise<void> {
  const rows = intOption(options, 'rows', 2_400_000);
  const rounds = intOption(options, 'rounds', 3);
  const work = await makeWorkDir('plan-rewrites');
  const cluster = await startEmbedded({
    dataDir: join(work.dir, 'cluster'), mgmtdListen: 'tcp://127.0.0.1:0', metaListen: 'tcp://127.0.0.1:0',
    host: '127.0.0.1', transport: 'tcp', chainCount: 12, syncWrites: false,
  });
  const fs = await connect({ meta: cluster.meta, mgmtd: [cluster.mgmtd], transport: 'tcp', token: cluster.adminToken, serverKey: cluster.serverKey });
  let job = 0;
  const session = () => init({
    root: { kind: 'millpond', dir: '/jobs', meta: cluster.meta, mgmtd: cluster.mgmtd, token: cluster.adminToken, serverKey: cluster.serverKey },
    jobId: `job-${job++}`, workers: 2, progress: false,
  });
  const timed = async (run: (sp: Session) => Promise<unknown>): Promise<number> => {
    const sp = await session();
    try {
      const started = nowMs();
      await run(sp);
      return nowMs() - started;
    } finally {
      await sp.shutdown();
    }
  };
  try {
    const duck = await DuckDBInstance.create(':memory:');
    const conn = await duck.connect();
    const perFile = Math.ceil(rows / FILES);
    await fs.mkdir('/events', { recursive: true });
    for (let f = 0; f < FILES; f++) {
      const local = join(work.dir, `events-${f}.parquet`);
      await conn.run(`COPY (SELECT (hash(i) % 100000)::BIGINT AS user_id, (1700000000000 + i * 7)::BIGINT AS ts,
          (hash(i * 31) % 100000)::BIGINT AS cents, ['view', 'click', 'buy', 'share'][(i % 4)::INT + 1] AS kind,
          gen_random_uuid()::VARCHAR || gen_random_uuid()::VARCHAR AS session
        FROM range(${f * perFile}, ${(f + 1) * perFile}) t(i)) TO '${local}' (FORMAT parquet)`);
      await fs.writeFile(`/events/events-${f}.parquet`, readFileSync(local));
    }
    conn.closeSync();
    duck.closeSync();
    const bytes = readdirSync(work.dir).filter((n) => n.endsWith('.parquet')).reduce((a, n) => a + readFileSync(join(work.dir, n)).length, 0);

    const events = (sp: Session) => sp.readParquet('millpond:///events/*.parquet').repartition(2);
    const best = { pruned: Infinity, whole: Infinity, fused: Infinity, stepwise: Infinity };
    for (let r = 0; r < rounds; r++) {
      best.pruned = Math.min(best.pruned, await timed((sp) => sp.partialSql(BY_USER, events(sp).repartition(8, { hashBy: 'user_id' })).compute()));
      best.whole = Math.min(best.whole, await timed(async (sp) => {
        const shuffled = events(sp).repartition(8, { hashBy: 'user_id' });
        await shuffled.compute();
        await sp.partialSql(BY_USER, shuffled).compute();
      }));
      best.fused = Math.min(best.fused, await timed((sp) => sp.partialSql(BY_KIND, events(sp).filter("kind <> 'view'").map('kind, cents * 2 AS w')).compute()));
      best.stepwise = Math.min(best.stepwise, await timed(async (sp) => {
        const filtered = events(sp).filter("kind <> 'view'");
        await filtered.compute();
        const mapped = filtered.map('kind, cents * 2 AS w');
        await mapped.compute();
        await sp.partialSql(BY_KIND, mapped).compute();
      }));
    }
    const figures = {
      rows: perFile * FILES, input_MiB: round3(bytes / 2 ** 20), rounds,
      pruned_s: round3(best.pruned / 1000), whole_s: round3(best.whole / 1000), prune_ratio: round3(best.pruned / best.whole),
      fused_s: round3(best.fused / 1000), stepwise_s: round3(best.stepwise / 1000), fuse_ratio: round3(best.fused / best.stepwise),
    };
    printTable(`plan-rewrites: ${figures.rows.toLocaleString('en-US')} rows, ${figures.input_MiB} MiB of Parquet in millpond, 2 workers, best of ${rounds} (${machineNote()})`, [
      ['job', 'rewritten s', 'baseline s', 'ratio'],
      ['GROUP BY over a hash shuffle (pruned / whole shuffle)', String(figures.pruned_s), String(figures.whole_s), String(figures.prune_ratio)],
      ['filter -> map -> GROUP BY (fused / step by step)', String(figures.fused_s), String(figures.stepwise_s), String(figures.fuse_ratio)],
    ]);
    printJson('plan-rewrites', figures);
  } finally {
    fs.close();
    await cluster.stop();
    work.cleanup();
  }
}
