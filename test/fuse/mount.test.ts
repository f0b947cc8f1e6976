// The FUSE mount, for real: a cluster of processes, millpond-fuse mounted with the kernel's
// FUSE, and POSIX tools, other uids (setpriv), DuckDB and the FileSystem API on it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { connect, type FileSystem } from '../../src/fs/index.js';
import { MetaClient } from '../../src/meta/meta-client.js';
import { testKeys } from '../support/auth.js';
import { until } from '../cluster/support/processes.js';
import { FuseCluster, mounted, sh, shResult, skipFuse } from './support.js';

const MiB = 1 << 20;
const CAPACITY_BYTES = 256 * MiB; // per target: the ENOSPC test fills it
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe.skipIf(skipFuse)('millpond mount', () => {
  let c: FuseCluster;
  let mnt: string;
  let fs: FileSystem;
  let src: string; // local files to copy in

  beforeAll(async () => {
    c = await FuseCluster.start(CAPACITY_BYTES);
    chmodSync(c.tmp.dir, 0o755); // other uids reach the mount point
    mnt = await c.mount('mnt');
    fs = await connect({ meta: c.meta, mgmtd: c.mgmtd, transport: 'tcp', token: c.adminToken, serverKey: c.serverKey });
    src = join(c.tmp.dir, 'src');
    mkdirSync(join(src, 'a/b/c'), { recursive: true });
    for (let i = 0; i < 40; i++) writeFileSync(join(src, `a/b/f${i}.bin`), randomBytes(1 + i * 7919));
    writeFileSync(join(src, 'a/b/c/big.bin'), randomBytes(9 * MiB + 12345)); // several chunks, a short tail
    writeFileSync(join(src, 'a/empty'), '');
    for (let d = 0; d < 5; d++) {
      for (let e = 0; e < 4; e++) {
        mkdirSync(join(src, `tree/d${d}/e${e}`), { recursive: true });
        for (let f = 0; f < 5; f++) writeFileSync(join(src, `tree/d${d}/e${e}/f${f}`), `${d}.${e}.${f}\n`);
      }
    }
  }, 120_000);

  afterAll(async () => {
    fs?.close();
    await c?.stop();
  }, 60_000);

  it('cp -r, sha256sum, find, mv, ln, ln -s, chmod, rm -r behave as on a local disk', async () => {
    await sh(`cp -r ${src}/a ${mnt}/cp`);
    const sums = async (dir: string) => sh(`cd ${dir} && find . -type f | sort | xargs sha256sum`);
    expect(await sums(`${mnt}/cp`)).toBe(await sums(`${src}/a`));
    expect(await sh(`cd ${mnt}/cp && find . | sort`)).toBe(await sh(`cd ${src}/a && find . | sort`));
    expect((await sh(`stat -c %s ${mnt}/cp/b/c/big.bin`)).trim()).toBe(String(9 * MiB + 12345));

    await sh(`mv ${mnt}/cp/b ${mnt}/moved && mv ${mnt}/moved/f1.bin ${mnt}/moved/c/f1-renamed.bin`);
    expect(await sh(`sha256sum < ${mnt}/moved/c/f1-renamed.bin`)).toBe(await sh(`sha256sum < ${src}/a/b/f1.bin`));
    expect((await shResult(`ls ${mnt}/cp/b`)).code).not.toBe(0);
    // A moved directory's children are reached by their new path (the node table follows).
    expect(await sh(`sha256sum < ${mnt}/moved/c/big.bin`)).toBe(await sh(`sha256sum < ${src}/a/b/c/big.bin`));

    await sh(`ln ${mnt}/moved/f2.bin ${mnt}/hard && ln -s moved/f3.bin ${mnt}/soft`);
    expect((await sh(`stat -c '%h %i' ${mnt}/hard`)).trim()).toBe((await sh(`stat -c '%h %i' ${mnt}/moved/f2.bin`)).trim());
    expect((await sh(`stat -c %h ${mnt}/hard`)).trim()).toBe('2');
    expect((await sh(`readlink ${mnt}/soft`)).trim()).toBe('moved/f3.bin');
    expect((await sh(`stat -c %F ${mnt}/soft`)).trim()).toBe('symbolic link');
    expect(await sh(`sha256sum < ${mnt}/soft`)).toBe(await sh(`sha256sum < ${src}/a/b/f3.bin`));
    await sh(`rm ${mnt}/moved/f2.bin`);
    expect(await sh(`sha256sum < ${mnt}/hard`)).toBe(await sh(`sha256sum < ${src}/a/b/f2.bin`));

    await sh(`chmod 640 ${mnt}/hard && chmod 750 ${mnt}/moved`);
    expect((await sh(`stat -c %a ${mnt}/hard ${mnt}/moved`)).split('\n').slice(0, 2)).toEqual(['640', '750']);
    await sh(`touch -d '2021-02-03 04:05:06' ${mnt}/hard`);
    expect((await sh(`stat -c %Y ${mnt}/hard`)).trim()).toBe(String(Date.UTC(2021, 1, 3, 4, 5, 6) / 1000));

    await sh(`rm -r ${mnt}/moved ${mnt}/cp ${mnt}/hard ${mnt}/soft`);
    expect((await sh(`ls -A ${mnt}`)).trim()).toBe('');
  }, 90_000);

  it('tar x, rsync -a (times and modes kept; a second run copies nothing) and git work inside', async () => {
    await sh(`tar -C ${src} -cf ${c.tmp.dir}/a.tar a && mkdir ${mnt}/tar && tar -C ${mnt}/tar -xf ${c.tmp.dir}/a.tar`);
    expect((await shResult(`diff -r ${src}/a ${mnt}/tar/a`)).code).toBe(0);

    await sh(`chmod 604 ${src}/a/b/f5.bin && touch -d '2019-05-06 07:08:09' ${src}/a/b/f5.bin`);
    await sh(`rsync -a ${src}/a/ ${mnt}/rsync/`);
    expect((await shResult(`diff -r ${src}/a ${mnt}/rsync`)).code).toBe(0);
    expect((await sh(`stat -c '%a %Y' ${mnt}/rsync/b/f5.bin`)).trim()).toBe((await sh(`stat -c '%a %Y' ${src}/a/b/f5.bin`)).trim());
    const again = await sh(`rsync -a --itemize-changes ${src}/a/ ${mnt}/rsync/`);
    expect(again.split('\n').filter((l) => l.startsWith('>f'))).toEqual([]); // sizes and times matched

    const git = `git -c user.name=t -c user.email=t@example.com -c init.defaultBranch=main`;
    await sh(`mkdir ${mnt}/repo && cd ${mnt}/repo && ${git} init -q && cp -r ${src}/a . && ${git} add -A && ${git} commit -qm first`);
    await sh(`cd ${mnt}/repo && echo more >> a/empty && ${git} commit -qam second`);
    expect((await sh(`cd ${mnt}/repo && ${git} log --oneline | wc -l`)).trim()).toBe('2');
    expect((await sh(`cd ${mnt}/repo && ${git} status --porcelain`)).trim()).toBe('');
    await sh(`cd ${mnt}/repo && ${git} fsck --strict --no-progress`);
  }, 120_000);

  it('several writers in parallel: every file reads back byte-exact, through the mount and the API', async () => {
    const n = 6;
    const files = Array.from({ length: n }, (_, i) => randomBytes(3 * MiB + i * 4097));
    files.forEach((b, i) => writeFileSync(join(c.tmp.dir, `par${i}`), b));
    await sh(`mkdir ${mnt}/par`);
    await Promise.all(files.map((_, i) => sh(`dd if=${c.tmp.dir}/par${i} of=${mnt}/par/f${i} bs=1M status=none`)));
    for (let i = 0; i < n; i++) {
      expect((await sh(`sha256sum < ${mnt}/par/f${i}`)).split(' ')[0]).toBe(sha(files[i]!));
      expect((await fs.readFile(`/par/f${i}`)).equals(files[i]!)).toBe(true);
    }
  }, 60_000);

  it('parallel finds over one tree list it whole, repeatedly (readdir and lookup on many request threads)', async () => {
    await sh(`mkdir ${mnt}/walk && for i in 1 2 3 4; do cp -r ${src}/tree ${mnt}/walk/t$i; done`);
    const expected = await sh(`cd ${mnt}/walk && find . | sort`);
    expect(expected).toBe(await sh(`mkdir ${c.tmp.dir}/walk && for i in 1 2 3 4; do cp -r ${src}/tree ${c.tmp.dir}/walk/t$i; done; cd ${c.tmp.dir}/walk && find . | sort`));
    expect(expected.split('\n').length).toBeGreaterThan(4 * 125);
    for (let round = 0; round < 3; round++) {
      const listings = await Promise.all(Array.from({ length: 8 }, () => sh(`cd ${mnt}/walk && find . | sort`)));
      for (const l of listings) expect(l).toBe(expected);
    }
    expect(mounted(mnt)).toBe(true);
  }, 60_000);

  it('close-to-open with the FileSystem API and DuckDB, both ways', async () => {
    // API → mount.
    const data = randomBytes(5 * MiB + 77);
    await fs.mkdir('/xchg', { recursive: true });
    await fs.writeFile('/xchg/from-api.bin', data);
    expect((await sh(`sha256sum < ${mnt}/xchg/from-api.bin`)).split(' ')[0]).toBe(sha(data));
    // Mount → API: visible once close(2) returned (the release after it is asynchronous).
    const back = randomBytes(2 * MiB + 5);
    writeFileSync(join(c.tmp.dir, 'back.bin'), back);
    await sh(`cp ${c.tmp.dir}/back.bin ${mnt}/xchg/from-mount.bin`);
    expect((await fs.readFile('/xchg/from-mount.bin')).equals(back)).toBe(true);
    // Overwritten through the API, read again through the mount after the caches' timeouts.
    const second = randomBytes(MiB + 3);
    await fs.writeFile('/xchg/from-mount.bin', second);
    await until(async () => (await sh(`sha256sum < ${mnt}/xchg/from-mount.bin`)).split(' ')[0] === sha(second), 5_000, 'the new contents');

    // DuckDB reads Parquet by its path in the mount, and writes it there.
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    try {
      const local = join(c.tmp.dir, 't.parquet');
      await conn.run(`COPY (SELECT i, i * 3 AS j, 'row' || i AS s FROM range(200000) t(i)) TO '${local}' (FORMAT parquet, ROW_GROUP_SIZE 20000)`);
      await sh(`cp ${local} ${mnt}/xchg/t.parquet`);
      const read = async (path: string) => (await conn.runAndReadAll(`SELECT count(*)::BIGINT, sum(j)::BIGINT, max(s) FROM read_parquet('${path}')`)).getRowsJS()[0];
      expect(await read(`${mnt}/xchg/t.parquet`)).toEqual([200000n, 3n * 199999n * 200000n / 2n, 'row99999']);
      await conn.run(`COPY (SELECT * FROM read_parquet('${mnt}/xchg/t.parquet') WHERE i % 2 = 0) TO '${mnt}/xchg/even.parquet' (FORMAT parquet)`);
      expect(await read(`${mnt}/xchg/even.parquet`)).toEqual([100000n, 3n * 2n * (99999n * 100000n / 2n), 'row99998']);
      // The bytes DuckDB wrote through the mount are the ones the API reads.
      expect(sha(await fs.readFile('/xchg/even.parquet'))).toBe(sha(readFileSync(`${mnt}/xchg/even.parquet`)));
      expect(sha(await fs.readFile('/xchg/t.parquet'))).toBe(sha(readFileSync(local)));
    } finally {
      conn.closeSync();
      db.closeSync();
    }
  }, 60_000);

  it('each request acts as its caller: a 0600 file of one uid is refused to another', async () => {
    await sh(`mkdir -m 1777 ${mnt}/shared`);
    const as = (uid: number, cmd: string) => shResult(`setpriv --reuid ${uid} --regid ${uid} --clear-groups bash -c '${cmd}'`);
    expect((await as(1000, `umask 077; echo secret > ${mnt}/shared/mine && cat ${mnt}/shared/mine`)).stdout).toBe('secret\n');
    expect((await sh(`stat -c '%u %g %a' ${mnt}/shared/mine`)).trim()).toBe('1000 1000 600');
    const other = await as(1001, `cat ${mnt}/shared/mine`);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/Permission denied/);
    expect((await as(1001, `echo x >> ${mnt}/shared/mine`)).stderr).toMatch(/Permission denied/);
    expect((await as(1001, `chmod 666 ${mnt}/shared/mine`)).stderr).toMatch(/Operation not permitted/);
    // Group bits: uid 1001 in group 1000 (a supplementary group) may read a 0640 file.
    await as(1000, `chmod 640 ${mnt}/shared/mine`);
    const grouped = await shResult(`setpriv --reuid 1001 --regid 1001 --groups 1000 cat ${mnt}/shared/mine`);
    expect(grouped.stdout).toBe('secret\n');
    // access(2) answers as meta would.
    expect((await as(1001, `test -r ${mnt}/shared/mine && echo r || echo no`)).stdout).toBe('no\n');
    expect((await as(1000, `test -w ${mnt}/shared/mine && echo w || echo no`)).stdout).toBe('w\n');
  }, 30_000);

  it('errors are POSIX errnos', async () => {
    await sh(`mkdir -p ${mnt}/err/full && touch ${mnt}/err/full/f ${mnt}/err/file`);
    const script = `
import errno, os, sys
m = sys.argv[1]
def code(fn):
    try:
        fn()
        return 'ok'
    except OSError as e:
        return errno.errorcode[e.errno]
print(code(lambda: os.open(m + '/err/missing', os.O_RDONLY)))
print(code(lambda: os.mkdir(m + '/err/full')))
print(code(lambda: os.open(m + '/err/file', os.O_CREAT | os.O_EXCL | os.O_WRONLY)))
print(code(lambda: os.rmdir(m + '/err/full')))
print(code(lambda: os.open(m + '/err/full', os.O_WRONLY)))
print(code(lambda: os.open(m + '/err/file/x', os.O_RDONLY)))
print(code(lambda: os.open(m + '/err/' + 'n' * 256, os.O_CREAT | os.O_WRONLY)))
print(code(lambda: os.unlink(m + '/err/full')))
print(code(lambda: os.rmdir(m + '/err/file')))
`;
    writeFileSync(join(c.tmp.dir, 'errs.py'), script);
    const out = (await sh(`/usr/bin/python3 ${c.tmp.dir}/errs.py ${mnt}`)).trim().split('\n');
    expect(out).toEqual(['ENOENT', 'EEXIST', 'EEXIST', 'ENOTEMPTY', 'EISDIR', 'ENOTDIR', 'ENAMETOOLONG', 'EISDIR', 'ENOTDIR']);
    const denied = await shResult(`setpriv --reuid 1000 --regid 1000 --clear-groups /usr/bin/python3 -c "import os; os.open('${mnt}/err/new', os.O_CREAT | os.O_WRONLY)"`);
    expect(denied.stderr).toMatch(/PermissionError: \[Errno 13\]/);
    // rename(2) with RENAME_NOREPLACE (mv --no-clobber) leaves both names.
    await sh(`echo a > ${mnt}/err/a && echo b > ${mnt}/err/b && mv --no-clobber ${mnt}/err/a ${mnt}/err/b || true`);
    expect((await sh(`cat ${mnt}/err/a ${mnt}/err/b`))).toBe('a\nb\n');
  }, 30_000);

  it('a plain user\'s token acts only as that user, whoever the caller; --as-user needs a proxy token', async () => {
    const admin = new MetaClient(c.meta, { auth: c.keys.admin });
    let alice: string;
    try {
      alice = (await admin.userAdd({ name: 'alice', uid: 2001, gid: 2001 })).token;
    } finally {
      admin.disconnect();
    }
    // Through the admin's mount (root acts as root): alice's directory, another uid's 0600 file.
    await sh(`mkdir ${mnt}/alice && chown 2001:2001 ${mnt}/alice`);
    await sh(`echo secret > ${mnt}/carol-only && chown 3001:3001 ${mnt}/carol-only && chmod 600 ${mnt}/carol-only`);

    const plain = await c.mount('plain', [], alice);
    // root writes through alice's mount: the file is alice's.
    await sh(`echo mine > ${plain}/alice/by-root`);
    expect((await sh(`stat -c '%u:%g' ${mnt}/alice/by-root`)).trim()).toBe('2001:2001');
    expect((await fs.stat('/alice/by-root')).uid).toBe(2001);
    // root is refused what alice may not do: read another uid's 0600 file, write in "/".
    const read = await shResult(`cat ${plain}/carol-only`);
    expect(read.code).not.toBe(0);
    expect(read.stderr).toMatch(/Permission denied/);
    const create = await shResult(`touch ${plain}/in-root`);
    expect(create.code).not.toBe(0);
    expect(create.stderr).toMatch(/Permission denied/);
    expect(await sh(`cat ${mnt}/carol-only`)).toBe('secret\n'); // the admin's mount still reads it

    const asUser = await c.tryMount('plain-as', ['--as-user', '0:0'], alice);
    expect(asUser.code).not.toBe(0);
    expect(asUser.out).toMatch(/EAUTH: --as-user needs a proxy user's or the admin's token/);
  }, 60_000);

  it('RENAME_NOREPLACE is atomic: two mounts racing renames onto one name, exactly one wins each round', async () => {
    // Two mounts (two kernels' worth of dentry caches and locks): within one mount the kernel
    // serializes renames in a directory, so only the daemon's check can decide across mounts.
    const second = await c.mount('race', ['--direct-io']);
    const rounds = 24;
    await sh(`mkdir -p ${mnt}/race`);
    for (let i = 0; i < rounds; i++) await sh(`echo a${i} > ${mnt}/race/a${i} && echo b${i} > ${mnt}/race/b${i}`);
    const script = `
import ctypes, errno, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
m1, m2, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
def rn(src, dst, out, key, barrier):
    barrier.wait()
    r = libc.renameat2(-100, src.encode(), -100, dst.encode(), 1)  # AT_FDCWD, RENAME_NOREPLACE
    out[key] = 'ok' if r == 0 else errno.errorcode[ctypes.get_errno()]
for i in range(rounds):
    out, barrier = {}, threading.Barrier(2)
    ts = [threading.Thread(target=rn, args=(f'{m1}/race/a{i}', f'{m1}/race/t{i}', out, 'a', barrier)),
          threading.Thread(target=rn, args=(f'{m2}/race/b{i}', f'{m2}/race/t{i}', out, 'b', barrier))]
    for t in ts: t.start()
    for t in ts: t.join()
    print(out['a'], out['b'])
`;
    writeFileSync(join(c.tmp.dir, 'race.py'), script);
    try {
      const lines = (await sh(`/usr/bin/python3 ${c.tmp.dir}/race.py ${mnt} ${second} ${rounds}`)).trim().split('\n');
      expect(lines).toHaveLength(rounds);
      for (let i = 0; i < rounds; i++) {
        const [a, b] = lines[i]!.split(' ');
        expect([a, b].sort(), `round ${i}`).toEqual(['EEXIST', 'ok']);
        const winner = a === 'ok' ? 'a' : 'b';
        const loser = a === 'ok' ? 'b' : 'a';
        // The name holds the winner's bytes; the loser's file is still at its old name.
        expect((await fs.readFile(`/race/t${i}`)).toString()).toBe(`${winner}${i}\n`);
        expect((await fs.readFile(`/race/${loser}${i}`)).toString()).toBe(`${loser}${i}\n`);
      }
      // The FileSystem API's rename takes the same flag.
      await fs.writeFile('/race/x', Buffer.from('x'));
      await fs.writeFile('/race/y', Buffer.from('y'));
      await expect(fs.rename('/race/x', '/race/y', { noReplace: true })).rejects.toMatchObject({ code: 'EEXIST' });
      expect((await fs.readFile('/race/y')).toString()).toBe('y');
      await fs.rename('/race/x', '/race/z', { noReplace: true });
      expect((await fs.readFile('/race/z')).toString()).toBe('x');
    } finally {
      process.kill(c.daemonPid(second), 'SIGTERM');
      await until(() => !mounted(second), 10_000, 'the race mount to go');
    }
  }, 90_000);

  it('a mount with a token of another cluster, or none, fails at once with EAUTH instead of hanging', async () => {
    const other = testKeys();
    try {
      // The RPC client's socket monitor sees the CURVE handshake refused: EAUTH at once, not
      // after the probe's 3 attempts of 3 s (which a dead meta still takes).
      let started = Date.now();
      const wrong = await c.tryMount('wrong-token', [], other.adminToken);
      const wrongMs = Date.now() - started;
      expect(wrong.code).not.toBe(0);
      expect(wrong.out).toMatch(/EAUTH: meta\.whoami: tcp:\S+ refused this client's credentials \(ZAP status 400\)/);
      expect(wrong.out).not.toMatch(/ETIMEDOUT|no reply/);
      started = Date.now();
      const none = await c.tryMount('no-token', [], null);
      const noneMs = Date.now() - started;
      expect(none.code).not.toBe(0);
      expect(none.out).toMatch(/EAUTH: meta\.stat: tcp:\S+ failed the security handshake \(it requires a token and this client has none/);
      expect(none.out).not.toMatch(/ETIMEDOUT|no reply/);
      expect(wrongMs).toBeLessThan(6_000);
      expect(noneMs).toBeLessThan(6_000);
      expect(mounted(wrong.dir) || mounted(none.dir)).toBe(false);
      // Not a token at all: refused before any connection.
      const garbage = await c.tryMount('garbage-token', [], 'mpt1.not-a-token');
      expect(garbage.code).not.toBe(0);
      expect(garbage.out).toMatch(/bad credentials: EAUTH/);
    } finally {
      other.cleanup();
    }
  }, 60_000);

  it('millpond mount finds the token like every CLI command and keeps it out of argv; a proxy user acts for each caller', async () => {
    const admin = new MetaClient(c.meta, { auth: c.keys.admin });
    let proxy: string;
    try {
      proxy = (await admin.userAdd({ name: 'fuse-proxy', uid: 900, gid: 900, proxy: true })).token;
    } finally {
      admin.disconnect();
    }
    const dir = join(c.tmp.dir, 'cli');
    mkdirSync(dir);
    const emptyDataDir = mkdtempSync(join(c.tmp.dir, 'data-'));
    const tokenFile = c.tokenFile('cli', proxy);
    const out = await sh(`node dist/cli/main.js mount ${dir} --data-dir ${emptyDataDir} --meta ${c.meta} --mgmtd ${c.mgmtd.join(',')} ` +
      `--transport tcp --allow-other --log ${c.tmp.dir}/cli.log --token-file ${tokenFile} --server-key '${c.serverKey}'`, { cwd: process.cwd() });
    const pid = Number(out.trim().split('\n').pop());
    c.mounts.push(dir);
    c.pids.set(dir, pid);
    expect(mounted(dir)).toBe(true);
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).not.toContain(proxy.split('.')[3]!);
    // The proxy's token acts as each caller: a file uid 4242 makes is 4242's.
    await sh(`mkdir ${dir}/proxied && chmod 1777 ${dir}/proxied`);
    await sh(`setpriv --reuid=4242 --regid=4242 --clear-groups bash -c 'echo x > ${dir}/proxied/by-4242'`);
    expect((await sh(`stat -c '%u:%g' ${mnt}/proxied/by-4242`)).trim()).toBe('4242:4242');
    const refused = await shResult(`setpriv --reuid=4243 --regid=4243 --clear-groups bash -c 'echo y > ${dir}/proxied/by-4242'`);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/Permission denied/);
  }, 60_000);

  it('a storage daemon SIGKILLed during cp: the copy completes or fails cleanly; what closed reads back intact', async () => {
    const before = randomBytes(6 * MiB);
    writeFileSync(join(c.tmp.dir, 'before'), before);
    await sh(`cp ${c.tmp.dir}/before ${mnt}/before`);
    const big = randomBytes(48 * MiB);
    writeFileSync(join(c.tmp.dir, 'big'), big);
    const copying = shResult(`cp ${c.tmp.dir}/big ${mnt}/big`);
    await new Promise((r) => setTimeout(r, 150));
    await c.storage.get(3)!.kill();
    const result = await copying;
    if (result.code === 0) {
      expect((await sh(`sha256sum < ${mnt}/big`)).split(' ')[0]).toBe(sha(big));
    } else {
      expect(result.stderr).toMatch(/cp: .*(Input\/output error|No space|Timer expired|Connection timed out)/);
    }
    expect((await sh(`sha256sum < ${mnt}/before`)).split(' ')[0]).toBe(sha(before));
    expect((await fs.readFile('/before')).equals(before)).toBe(true);
  }, 90_000);

  it('SIGTERM unmounts cleanly; a SIGKILLed daemon leaves a mount that millpond umount clears', async () => {
    // A second mount of the same cluster, with --direct-io (no page cache: every read and write
    // reaches the daemon): what one mount wrote, the other reads.
    const other = await c.mount('other', ['--direct-io']);
    const direct = randomBytes(3 * MiB + 11);
    writeFileSync(join(c.tmp.dir, 'direct'), direct);
    await sh(`dd if=${c.tmp.dir}/direct of=${other}/direct bs=1M status=none`);
    expect((await sh(`sha256sum < ${mnt}/direct`)).split(' ')[0]).toBe(sha(direct));
    expect((await sh(`dd if=${other}/direct bs=1M status=none | sha256sum`)).split(' ')[0]).toBe(sha(direct));
    expect((await sh(`sha256sum < ${other}/before`)).split(' ')[0]).toBe((await sh(`sha256sum < ${mnt}/before`)).split(' ')[0]);
    process.kill(c.daemonPid(other), 'SIGTERM');
    await until(() => !mounted(other), 10_000, 'the mount to go');

    const third = await c.mount('third');
    process.kill(c.daemonPid(third), 'SIGKILL');
    await until(async () => (await shResult(`stat ${third}`)).stderr.includes('Transport endpoint is not connected'), 10_000, 'ENOTCONN');
    await sh(`node dist/cli/main.js umount ${third}`, { cwd: process.cwd() });
    expect(mounted(third)).toBe(false);
  }, 60_000);
  it('statfs reports the chains\' capacity from mgmtd; writes past it fail with ENOSPC and lose nothing', async () => {
    const df = (await sh(`stat -f -c '%S %b %a' ${mnt}`)).trim().split(' ').map(Number);
    const [block, blocks, avail] = df as [number, number, number];
    // Three targets of CAPACITY_BYTES, every byte on three of them: CAPACITY_BYTES in all.
    expect(block * blocks).toBe(CAPACITY_BYTES);
    expect(block * avail).toBeLessThanOrEqual(CAPACITY_BYTES);

    const kept = randomBytes(4 * MiB);
    writeFileSync(join(c.tmp.dir, 'kept'), kept);
    await sh(`cp ${c.tmp.dir}/kept ${mnt}/kept`);
    const full = await shResult(`dd if=/dev/urandom of=${mnt}/too-big bs=1M count=${(CAPACITY_BYTES / MiB) + 64} status=none`);
    expect(full.code).not.toBe(0);
    expect(full.stderr).toMatch(/No space left on device/);
    expect((await sh(`sha256sum < ${mnt}/kept`)).split(' ')[0]).toBe(sha(kept));
    await sh(`rm -f ${mnt}/too-big`);
  }, 90_000);
});
