/**
 * fs-api: the FileSystem API's own writes and reads of one large file (--size-mib, default
 * 2048) on an embedded cluster: handle writes in 64 MiB pieces, writeFile of 1 GiB, a write
 * stream; readFile of 1 GiB, readAt in 1 GiB, 64 MiB and 1 MiB pieces, a read stream, and
 * readBatch of 256 scattered MiB. Every read starts cold (page cache dropped).
 *
 * --baseline DIR: the same passes against another checkout in the same run, alternating with
 * this one (--rounds each, default 3), and the ratio of the medians (this / baseline) per
 * operation. The baseline is a worktree of the commit to compare with, built:
 *   git worktree add /tmp/baseline COMMIT && ln -s "$PWD/node_modules" /tmp/baseline/ &&
 *   (cd /tmp/baseline && npm run build:native)
 * Each pass runs in its own process (bench/fs-api-run.ts), so the two versions' addons and
 * caches never meet.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { benchDir, fmtGBps, intOption, machineNote, makeWorkDir, median, printJson, printTable, round3 } from './lib.js';

const execFileAsync = promisify(execFile);

type Figures = Record<string, number>;

async function pass(root: string, sizeMiB: number): Promise<Figures> {
  const work = await makeWorkDir('fs-api');
  try {
    const { stdout } = await execFileAsync(process.execPath, [
      '--import', 'tsx', join(benchDir, 'fs-api-run.ts'), '--root', root, '--size-mib', String(sizeMiB), '--data-dir', work.dir,
    ], { maxBuffer: 1 << 20 });
    return JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as Figures;
  } finally {
    work.cleanup();
  }
}

export async function fsApiBench(options: Map<string, string>): Promise<void> {
  const sizeMiB = intOption(options, 'size-mib', 2048, 1024);
  const rounds = intOption(options, 'rounds', 3);
  const baseline = options.get('baseline');
  const here = join(benchDir, '..');
  const runs: { here: Figures[]; baseline: Figures[] } = { here: [], baseline: [] };
  for (let r = 0; r < rounds; r++) {
    // Alternating, and each side first in every other round: the disk's speed drifts by the minute.
    const order = r % 2 === 0 ? ['here', 'baseline'] as const : ['baseline', 'here'] as const;
    for (const side of order) {
      if (side === 'baseline' && !baseline) continue;
      runs[side].push(await pass(side === 'here' ? here : baseline!, sizeMiB));
    }
  }
  const ops = Object.keys(runs.here[0]);
  const figures: Record<string, number> = { size_mib: sizeMiB, rounds };
  const rows = [['operation', 'this tree', ...(baseline ? ['baseline', 'ratio'] : [])]];
  let worst = Infinity;
  for (const op of ops) {
    const mine = median(runs.here.map((f) => f[op]));
    figures[`${op}_GBps`] = round3(mine);
    const row = [op, fmtGBps(mine)];
    if (baseline) {
      const theirs = median(runs.baseline.map((f) => f[op]));
      const ratio = mine / theirs;
      worst = Math.min(worst, ratio);
      figures[`${op}_baseline_GBps`] = round3(theirs);
      figures[`${op}_ratio`] = round3(ratio);
      row.push(fmtGBps(theirs), ratio.toFixed(3));
    }
    rows.push(row);
  }
  printTable(`fs-api: a ${sizeMiB} MiB file through the FileSystem API, median of ${rounds} passes${baseline ? ` each, alternating with ${baseline}` : ''} (${machineNote()})`, rows);
  for (const op of ops) {
    console.log(`${op} per pass: ${runs.here.map((f) => f[op].toFixed(3)).join(' ')}${baseline ? `; baseline ${runs.baseline.map((f) => f[op].toFixed(3)).join(' ')}` : ''}`);
  }
  if (baseline) {
    figures.worst_ratio = round3(worst);
    console.log(`worst ratio (this / baseline) over the operations: ${figures.worst_ratio}`);
  }
  printJson('fs-api', figures);
}
