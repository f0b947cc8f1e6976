// Real S3 clients against `millpond up` (a process, its gateway on a free port): Debian's AWS
// CLI (s3 cp/sync/ls/rm, s3api multipart), rclone (copy, sync, check) and s3cmd, byte-exact
// round trips from 0 bytes to several chunks, a 1 GiB multipart upload streamed from a pipe,
// and Parquet crossing between S3 clients and the engine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { init, type Session } from '../../src/engine/index.js';
import { connect, type FileSystem } from '../../src/fs/index.js';
import { plainDuckDb } from '../engine/support.js';
import { waitForLine } from '../support/child.js';
import { tempDir } from '../support/tmp.js';
import { pattern } from './support.js';

const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const exec = promisify(execFile);
const MiB = 1 << 20;
// Debian's packages (awscli, rclone, s3cmd), not whatever else is first on the PATH.
const AWS = '/usr/bin/aws';
const RCLONE = '/usr/bin/rclone';
const S3CMD = '/usr/bin/s3cmd';
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

describe('S3 gateway with the AWS CLI, rclone and s3cmd', () => {
  const t = tempDir('s3-tools');
  const dataDir = join(t.dir, 'data');
  let up: ChildProcess;
  let endpoint = '';
  let key = { accessKeyId: '', secretAccessKey: '' };
  let env: NodeJS.ProcessEnv;
  let fs: FileSystem;
  const sizes = [0, 1, 4096, MiB + 1, 9 * MiB + 7, 21 * MiB + 3]; // the last two: multipart in the CLIs, several 4 MiB chunks

  const aws = async (...args: string[]) => (await exec(AWS, ['--endpoint-url', endpoint, ...args, ...(args[0] === 's3' && ['cp', 'sync', 'rm', 'mv'].includes(args[1]!) ? ['--only-show-errors'] : [])], { env, maxBuffer: 64 * MiB })).stdout;
  const rclone = async (...args: string[]) => (await exec(RCLONE, ['--config', join(t.dir, 'rclone.conf'), ...args], { env, maxBuffer: 64 * MiB })).stdout;
  const s3cmd = async (...args: string[]) => (await exec(S3CMD, ['-c', join(t.dir, 's3cmd.cfg'), ...args], { env, maxBuffer: 64 * MiB })).stdout;

  beforeAll(async () => {
    up = spawn(process.execPath, ['--import', 'tsx', main, 'up', '--data-dir', dataDir, '--no-sync', '--s3', '127.0.0.1:0',
      '--mgmtd', 'tcp://127.0.0.1:0', '--meta', 'tcp://127.0.0.1:0', '--transport', 'tcp'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const m = await waitForLine(up, /^s3: (http:\/\/[\d.]+:\d+) access key (MPAK[A-Z0-9]+) \(admin; its secret is in (.+)\)$/, 60_000);
    endpoint = m![1]!;
    const file = m![3]!;
    expect(statSync(file).mode & 0o777).toBe(0o600);
    key = JSON.parse(readFileSync(file, 'utf8')) as typeof key;
    expect(key.accessKeyId).toBe(m![2]);
    const port = endpoint.split(':').at(-1);
    env = {
      PATH: process.env.PATH, HOME: t.dir, AWS_ACCESS_KEY_ID: key.accessKeyId, AWS_SECRET_ACCESS_KEY: key.secretAccessKey,
      AWS_DEFAULT_REGION: 'us-east-1', AWS_CONFIG_FILE: join(t.dir, 'aws-config'), AWS_SHARED_CREDENTIALS_FILE: join(t.dir, 'aws-credentials'),
      AWS_PAGER: '',
    };
    writeFileSync(join(t.dir, 'aws-config'), '[default]\ns3 =\n    addressing_style = path\n');
    writeFileSync(join(t.dir, 'rclone.conf'), `[mp]\ntype = s3\nprovider = Other\naccess_key_id = ${key.accessKeyId}\nsecret_access_key = ${key.secretAccessKey}\nendpoint = ${endpoint}\nregion = us-east-1\n`);
    writeFileSync(join(t.dir, 's3cmd.cfg'), `[default]\naccess_key = ${key.accessKeyId}\nsecret_key = ${key.secretAccessKey}\nhost_base = 127.0.0.1:${port}\nhost_bucket = 127.0.0.1:${port}\nuse_https = False\nsignature_v2 = False\nbucket_location = us-east-1\nmultipart_chunk_size_mb = 5\n`);
    const cluster = JSON.parse(readFileSync(join(dataDir, 'cluster.json'), 'utf8')) as { meta: string; mgmtd: string[]; s3: string; serverKey: string };
    expect(cluster.s3).toBe(endpoint);
    fs = await connect({ meta: cluster.meta, mgmtd: cluster.mgmtd, transport: 'tcp', tokenFile: join(dataDir, 'keys', 'admin.token'), serverKey: cluster.serverKey });
    const local = join(t.dir, 'files');
    mkdirSync(join(local, 'sub'), { recursive: true });
    for (const size of sizes) writeFileSync(join(local, size > MiB ? `sub/f${size}` : `f${size}`), pattern(size, size + 7));
  }, 90_000);

  afterAll(async () => {
    fs?.close();
    if (up && up.exitCode === null && up.signalCode === null) {
      up.kill('SIGINT'); // up stops its gateway and cluster cleanly
      const timer = setTimeout(() => up.kill('SIGKILL'), 20_000);
      await once(up, 'exit');
      clearTimeout(timer);
    }
    t.cleanup();
  }, 30_000);

  const localFile = (size: number) => join(t.dir, 'files', size > MiB ? `sub/f${size}` : `f${size}`);

  it('aws s3: mb, cp both ways, sync, ls, rm', async () => {
    await aws('s3', 'mb', 's3://tools');
    for (const size of [0, MiB + 1, 21 * MiB + 3]) { // sync below moves every size
      await aws('s3', 'cp', localFile(size), `s3://tools/cp/f${size}`);
      expect((await fs.readFile(`/tools/cp/f${size}`)).equals(readFileSync(localFile(size)))).toBe(true);
      await aws('s3', 'cp', `s3://tools/cp/f${size}`, join(t.dir, `back${size}`));
      expect(readFileSync(join(t.dir, `back${size}`)).equals(readFileSync(localFile(size)))).toBe(true);
    }
    await aws('s3', 'sync', join(t.dir, 'files'), 's3://tools/synced');
    const ls = await aws('s3', 'ls', '--recursive', 's3://tools/synced/');
    for (const size of sizes) expect(ls).toMatch(new RegExp(`\\s${size} synced/${size > MiB ? 'sub/' : ''}f${size}$`, 'm'));
    expect(await aws('s3', 'sync', join(t.dir, 'files'), 's3://tools/synced')).toBe(''); // nothing changed: nothing copied
    mkdirSync(join(t.dir, 'down'));
    await aws('s3', 'sync', 's3://tools/synced', join(t.dir, 'down'));
    for (const size of sizes) {
      const rel = size > MiB ? `sub/f${size}` : `f${size}`;
      expect(readFileSync(join(t.dir, 'down', rel)).equals(readFileSync(localFile(size)))).toBe(true);
    }
    await aws('s3', 'rm', '--recursive', 's3://tools/synced');
    expect(await aws('s3', 'ls', 's3://tools/')).not.toContain('synced');
    expect((await fs.readdir('/tools')).includes('synced')).toBe(false);
  }, 180_000);

  it('aws s3api: a multipart upload part by part', async () => {
    const data = readFileSync(localFile(21 * MiB + 3));
    const parts = [data.subarray(0, 8 * MiB), data.subarray(8 * MiB, 16 * MiB), data.subarray(16 * MiB)];
    const { UploadId } = JSON.parse(await aws('s3api', 'create-multipart-upload', '--bucket', 'tools', '--key', 'api/mp.bin')) as { UploadId: string };
    const etags: string[] = [];
    for (const [i, p] of parts.entries()) {
      writeFileSync(join(t.dir, `part${i}`), p);
      const out = JSON.parse(await aws('s3api', 'upload-part', '--bucket', 'tools', '--key', 'api/mp.bin', '--upload-id', UploadId, '--part-number', String(i + 1), '--body', join(t.dir, `part${i}`))) as { ETag: string };
      expect(out.ETag).toBe(`"${md5(p)}"`);
      etags.push(out.ETag);
    }
    const listed = JSON.parse(await aws('s3api', 'list-parts', '--bucket', 'tools', '--key', 'api/mp.bin', '--upload-id', UploadId)) as { Parts: Array<{ PartNumber: number; Size: number }> };
    expect(listed.Parts.map((p) => p.Size)).toEqual(parts.map((p) => p.length));
    const uploads = JSON.parse(await aws('s3api', 'list-multipart-uploads', '--bucket', 'tools')) as { Uploads: Array<{ UploadId: string }> };
    expect(uploads.Uploads.map((u) => u.UploadId)).toContain(UploadId);
    writeFileSync(join(t.dir, 'parts.json'), JSON.stringify({ Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) }));
    const done = JSON.parse(await aws('s3api', 'complete-multipart-upload', '--bucket', 'tools', '--key', 'api/mp.bin', '--upload-id', UploadId, '--multipart-upload', `file://${join(t.dir, 'parts.json')}`)) as { ETag: string };
    expect(done.ETag).toMatch(/-3"$/);
    expect((await fs.readFile('/tools/api/mp.bin')).equals(data)).toBe(true);
    const head = JSON.parse(await aws('s3api', 'head-object', '--bucket', 'tools', '--key', 'api/mp.bin')) as { ContentLength: number; ETag: string };
    expect(head).toMatchObject({ ContentLength: data.length, ETag: done.ETag });
    // Abort leaves nothing.
    const aborted = JSON.parse(await aws('s3api', 'create-multipart-upload', '--bucket', 'tools', '--key', 'api/gone.bin')) as { UploadId: string };
    await aws('s3api', 'abort-multipart-upload', '--bucket', 'tools', '--key', 'api/gone.bin', '--upload-id', aborted.UploadId);
    expect((await fs.readdir('/tools/api')).sort()).toEqual(['mp.bin']);
  }, 120_000);

  it('rclone: copy, sync, check', async () => {
    await rclone('copy', join(t.dir, 'files'), 'mp:tools/rc');
    await rclone('check', join(t.dir, 'files'), 'mp:tools/rc'); // sizes and MD5s (from ETags, or rclone's own metadata for multipart)
    for (const size of sizes) {
      const rel = size > MiB ? `sub/f${size}` : `f${size}`;
      expect((await fs.readFile(`/tools/rc/${rel}`)).equals(readFileSync(localFile(size)))).toBe(true);
    }
    writeFileSync(join(t.dir, 'files', 'extra'), 'extra');
    await rclone('sync', join(t.dir, 'files'), 'mp:tools/rc');
    await rclone('check', join(t.dir, 'files'), 'mp:tools/rc');
    mkdirSync(join(t.dir, 'rc-back'));
    await rclone('copy', 'mp:tools/rc', join(t.dir, 'rc-back'));
    await rclone('check', join(t.dir, 'files'), join(t.dir, 'rc-back'));
    // A remote file changed through the FileSystem API is found by check.
    await fs.writeFile('/tools/rc/f4096', pattern(4097, 99));
    await expect(rclone('check', join(t.dir, 'files'), 'mp:tools/rc')).rejects.toThrow();
  }, 180_000);

  it('s3cmd: put, get, ls, del', async () => {
    for (const size of sizes) {
      await s3cmd('put', localFile(size), `s3://tools/s3cmd/f${size}`);
      await s3cmd('get', '--force', `s3://tools/s3cmd/f${size}`, join(t.dir, `s3cmd-back${size}`));
      expect(readFileSync(join(t.dir, `s3cmd-back${size}`)).equals(readFileSync(localFile(size)))).toBe(true);
    }
    const ls = await s3cmd('ls', 's3://tools/s3cmd/');
    expect(ls.trim().split('\n')).toHaveLength(sizes.length);
    expect(await s3cmd('ls')).toContain('s3://tools');
    await s3cmd('del', `s3://tools/s3cmd/f${sizes[0]}`);
    expect((await s3cmd('ls', 's3://tools/s3cmd/')).trim().split('\n')).toHaveLength(sizes.length - 1);
  }, 180_000);

  it('the engine reads Parquet that aws s3 cp put, and aws s3 cp gets what writeParquet wrote', async () => {
    const db = await plainDuckDb();
    const input = join(t.dir, 'in.parquet');
    await db.conn.run(`COPY (SELECT i::BIGINT AS k, (i * 3)::BIGINT AS v FROM range(50000) t(i)) TO '${input}' (FORMAT parquet)`);
    await aws('s3', 'cp', input, 's3://tools/pq/in.parquet');
    const cluster = JSON.parse(readFileSync(join(dataDir, 'cluster.json'), 'utf8')) as { meta: string; mgmtd: string[]; serverKey: string };
    const token = readFileSync(join(dataDir, 'keys', 'admin.token'), 'utf8').trim();
    let sp: Session | undefined;
    try {
      sp = await init({ root: { kind: 'millpond', dir: '/jobs', meta: cluster.meta, mgmtd: cluster.mgmtd.join(','), token, serverKey: cluster.serverKey }, workers: 1, memoryLimitPerTask: '256MB', progress: false });
      const rows = await sp.partialSql('SELECT count(*)::BIGINT AS n, sum(v)::BIGINT AS s FROM {0}', sp.readParquet('millpond:///tools/pq/in.parquet')).takeAll();
      expect(rows).toEqual([{ n: 50000n, s: 3n * (49999n * 50000n / 2n) }]);
      await sp.readParquet('millpond:///tools/pq/in.parquet').filter('k % 2 = 0').repartition(2).writeParquet('/tools/pq/out');
    } finally {
      await sp?.shutdown();
    }
    mkdirSync(join(t.dir, 'pq-back'));
    await aws('s3', 'cp', '--recursive', 's3://tools/pq/out', join(t.dir, 'pq-back'));
    const files = readdirSync(join(t.dir, 'pq-back')).filter((f) => f.endsWith('.parquet'));
    expect(files.length).toBeGreaterThanOrEqual(1);
    const back = (await db.conn.runAndReadAll(`SELECT count(*)::BIGINT AS n, bool_and(k % 2 = 0) AS even FROM read_parquet('${join(t.dir, 'pq-back')}/*.parquet')`)).getRowObjectsJS();
    expect(back).toEqual([{ n: 25000n, even: true }]);
    db.close();
  }, 120_000);

  it('a 1 GiB multipart upload streamed from a pipe, read back streamed', async () => {
    // Generated data (a counter through openssl's AES-CTR) through `aws s3 cp -`: no file of it anywhere.
    const gen = `head -c ${1 << 30} /dev/zero | openssl enc -aes-128-ctr -nosalt -pass pass:millpond -pbkdf2 2>/dev/null`;
    const { stdout: sent } = await exec('bash', ['-o', 'pipefail', '-c', `${gen} | tee >(md5sum > ${t.dir}/sent.md5) | ${AWS} --endpoint-url ${endpoint} s3 cp - s3://tools/big/1gib.bin --expected-size ${1 << 30} && sleep 1 && cat ${t.dir}/sent.md5`], { env, maxBuffer: MiB });
    expect((await fs.stat('/tools/big/1gib.bin')).size).toBe(1 << 30);
    const head = JSON.parse(await aws('s3api', 'head-object', '--bucket', 'tools', '--key', 'big/1gib.bin')) as { ETag: string };
    expect(head.ETag).toMatch(/-\d+"$/);
    const { stdout: got } = await exec('bash', ['-o', 'pipefail', '-c', `${AWS} --endpoint-url ${endpoint} s3 cp s3://tools/big/1gib.bin - | md5sum`], { env, maxBuffer: MiB });
    expect(got.split(' ')[0]).toBe(sent.trim().split(' ')[0]);
    expect(got.split(' ')[0]).toMatch(/^[0-9a-f]{32}$/);
    await aws('s3', 'rm', 's3://tools/big/1gib.bin');
  }, 300_000);
});
