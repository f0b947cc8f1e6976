// The control plane under attack (issue 12, design §10), with real processes and real sockets:
// a meta server and an mgmtd as processes with authentication on, storage daemons holding the
// cluster secret, and attackers holding a user's token, a foreign CURVE key or none. Each
// attack gets a clear code (EACCES/EAUTH), changes nothing, is logged by the server, and the
// server keeps serving everyone else.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { curveKeyPair } from 'zeromq';
import { ClusterAuth } from '../../src/auth/credentials.js';
import { MgmtdClient } from '../../src/cluster/mgmtd-client.js';
import { nodeProof, heartbeatText, registerText } from '../../src/cluster/node-proof.js';
import { MetaClient } from '../../src/meta/meta-client.js';
import { RpcClient } from '../../src/protocol/rpc-client.js';
import { randomBytes } from 'node:crypto';
import { Cluster } from '../cluster/support/cluster.js';
import { run, until, type Proc } from '../cluster/support/processes.js';
import { errorCode } from '../support/error-code.js';

const metaMain = fileURLToPath(new URL('../../src/meta/main.ts', import.meta.url));

const code = (p: Promise<unknown>) => errorCode(p, 'OK');

describe('control plane authentication', () => {
  let cluster: Cluster;
  let meta: Proc;
  let metaEndpoint: string;
  let admin: MetaClient;
  let alice: MetaClient;
  let mallory: MetaClient;
  let aliceToken: string;
  let malloryToken: string;
  const clients: Array<{ disconnect?: () => void; close?: () => void }> = [];

  beforeAll(async () => {
    cluster = await Cluster.start(1, 3);
    meta = run(metaMain, [
      '--backend', 'sqlite', '--db', join(cluster.targetDir(0), '..', 'meta.db'), '--listen', 'tcp://127.0.0.1:0', '--synchronous', 'normal',
      '--secret-file', cluster.keys.secretFile, '--admin-token-file', cluster.keys.adminTokenFile, '--mgmtd', cluster.mgmtdEndpoints.join(','),
    ]);
    metaEndpoint = (await meta.waitFor(/^listening (\S+)$/))[1]!;
    admin = new MetaClient(metaEndpoint, { auth: cluster.keys.admin, timeoutMs: 2_000 });
    aliceToken = (await admin.userAdd({ name: 'alice', uid: 1000, gid: 1000 })).token;
    malloryToken = (await admin.userAdd({ name: 'mallory', uid: 1001, gid: 1001 })).token;
    const serverKey = cluster.keys.admin.serverKey;
    alice = new MetaClient(metaEndpoint, { auth: { token: aliceToken, serverKey }, timeoutMs: 2_000 });
    mallory = new MetaClient(metaEndpoint, { auth: { token: malloryToken, serverKey }, timeoutMs: 2_000, attemptsMax: 1 });
    clients.push(admin, alice, mallory);
    await admin.mkdir('/home/alice', { recursive: true, mode: 0o755 });
    await admin.setattr('/home/alice', { uid: 1000, gid: 1000, mode: 0o700 });
    const { inode, session } = await alice.open('/home/alice/secret', { flags: { write: true, create: true }, mode: 0o600 });
    await alice.close(inode.id, session!, { length: 0 });
  }, 90_000);

  afterAll(async () => {
    for (const c of clients) (c.disconnect ?? c.close)?.call(c);
    await meta?.kill();
    await cluster?.stop();
  });

  it('a request claiming uid 0 with a user token acts as the token user, and is refused', async () => {
    expect((await mallory.whoami()).uid).toBe(1001);
    // The old wire field `user` is ignored; actAs from a non-proxy user is refused.
    const raw = (method: string, params: Record<string, unknown>) => mallory.call(method, { token: malloryToken, user: { uid: 0, gid: 0 }, clientId: mallory.clientId, ...params });
    expect(await code(raw('meta.readdir', { path: '/home/alice' }))).toBe('EACCES');
    expect(await code(raw('meta.setattr', { path: '/home/alice/secret', uid: 1001 }))).toBe('EACCES');
    expect(await code(raw('meta.link', { existing: '/home/alice/secret', to: '/stolen' }))).toBe('EACCES');
    expect(await code(raw('meta.unlink', { path: '/home/alice/secret' }))).toBe('EACCES');
    expect(await code(mallory.as({ uid: 0, gid: 0 }).readdir('/home/alice'))).toBe('EACCES');
    expect(await code(mallory.as({ uid: 1000, gid: 1000 }).unlink('/home/alice/secret'))).toBe('EACCES');
    // Nothing changed: the file is alice's, 0600, one name; /stolen does not exist.
    const st = await alice.stat('/home/alice/secret');
    expect([st.uid, st.mode & 0o777, st.nlink ?? 1]).toEqual([1000, 0o600, 1]);
    expect(await code(admin.stat('/stolen'))).toBe('ENOENT');
    expect((await alice.readdir('/home/alice')).entries.map((e) => e.name)).toEqual(['secret']);
    await until(() => meta.errLines.some((l) => /auth: meta refused meta\.readdir for uid 1001/.test(l)), 5_000, 'the refusal in meta\'s log');
    await until(() => meta.errLines.some((l) => /actAs refused/.test(l)), 5_000, 'the actAs refusal in meta\'s log');
  });

  it('only proxy users (and the admin) act as another identity', async () => {
    const { token } = await admin.userAdd({ name: 'gateway', uid: 2000, gid: 2000, proxy: true });
    const gateway = new MetaClient(metaEndpoint, { auth: { token, serverKey: cluster.keys.admin.serverKey }, timeoutMs: 2_000 });
    clients.push(gateway);
    expect(await code(gateway.readdir('/home/alice'))).toBe('EACCES'); // as itself
    expect((await gateway.as({ uid: 1000, gid: 1000 }).readdir('/home/alice')).entries.map((e) => e.name)).toEqual(['secret']);
    expect(await code(mallory.as({ uid: 1000, gid: 1000 }).readdir('/home/alice'))).toBe('EACCES');
  });

  it('a control request without a CURVE key or with an unknown key gets no service', async () => {
    const plain = new RpcClient(metaEndpoint, { timeoutMs: 1_500, attemptsMax: 1 });
    const stranger = new RpcClient(metaEndpoint, { timeoutMs: 1_500, attemptsMax: 1, curve: { serverKey: cluster.keys.admin.serverKey, ...curveKeyPair() } });
    // A stranger who also knows alice's token string still has no admitted key.
    const strangerMgmtd = new RpcClient(cluster.mgmtdEndpoints[0]!, { timeoutMs: 1_500, attemptsMax: 1, curve: { serverKey: cluster.keys.admin.serverKey, ...curveKeyPair() } });
    clients.push(plain, stranger, strangerMgmtd);
    expect(await code(plain.call('meta.readdir', { token: aliceToken, path: '/home/alice' }))).toBe('EAUTH');
    expect(await code(stranger.call('meta.readdir', { token: aliceToken, path: '/home/alice' }))).toBe('EAUTH');
    expect(await code(strangerMgmtd.call('mgmtd.getRouting', {}))).toBe('EAUTH');
    await until(() => meta.errLines.some((l) => /auth: meta#\d+ refused a connection .*unknown client key/.test(l)), 5_000, 'the ZAP refusal in meta\'s log');
    expect((await alice.readdir('/home/alice')).entries).toHaveLength(1); // others still served
  });

  it('the token of a removed user gets EAUTH, on a live connection and a new one', async () => {
    const { token } = await admin.userAdd({ name: 'bob', uid: 1002, gid: 1002 });
    const bob = new MetaClient(metaEndpoint, { auth: { token, serverKey: cluster.keys.admin.serverKey }, timeoutMs: 1_500, attemptsMax: 1 });
    clients.push(bob);
    await admin.mkdir('/bob', { mode: 0o755 });
    await admin.setattr('/bob', { uid: 1002, gid: 1002 });
    await bob.mkdir('/bob/before');
    await admin.userRemove('bob');
    expect(await code(bob.mkdir('/bob/after'))).toBe('EAUTH');
    const again = new MetaClient(metaEndpoint, { auth: { token, serverKey: cluster.keys.admin.serverKey }, timeoutMs: 1_500, attemptsMax: 1 });
    clients.push(again);
    expect(await code(again.stat('/'))).toBe('EAUTH');
    expect(await code(admin.stat('/bob/after'))).toBe('ENOENT');
    expect((await admin.userList()).map((u) => u.name).sort()).toEqual(['admin', 'alice', 'gateway', 'mallory']);
    // Its routing access at mgmtd ends too (meta tells mgmtd at once).
    const bobMgmtd = new MgmtdClient(cluster.mgmtdEndpoints, { auth: { token, serverKey: cluster.keys.admin.serverKey }, timeoutMs: 1_500, roundsMax: 1 });
    clients.push(bobMgmtd);
    expect(await code(bobMgmtd.getRouting())).toBe('EAUTH');
    await until(() => meta.errLines.some((l) => /belongs to no user/.test(l)), 5_000, 'the refusal in meta\'s log');
  });

  it('user management and chain tables need the admin token', async () => {
    expect(await code(alice.userAdd({ name: 'eve', uid: 0, gid: 0 }))).toBe('EACCES');
    expect(await code(alice.userList())).toBe('EACCES');
    const aliceMgmtd = new MgmtdClient(cluster.mgmtdEndpoints, { auth: { token: aliceToken, serverKey: cluster.keys.admin.serverKey }, timeoutMs: 1_500, roundsMax: 1 });
    clients.push(aliceMgmtd);
    const routing = await aliceMgmtd.getRouting(); // routing: any authenticated caller
    expect('targets' in routing && routing.targets.length).toBe(3);
    expect(await code(aliceMgmtd.createChainTable(7, { chainCount: 1, chainLength: 3 }))).toBe('EACCES');
  });

  it('a fake registerNode and a spoofed syncing-done are refused; the cluster keeps serving', async () => {
    const before = await cluster.routing();
    const t101 = before.targets.find((t) => t.targetId === 101)!;
    // An attacker holding a user's token (admitted by mgmtd for routing) tries to re-home target
    // 101 and to mark targets syncing-done: no proof, a proof under a foreign secret, and a real
    // node's proof for a target it does not own.
    const attacker = new MgmtdClient(cluster.mgmtdEndpoints, { auth: { token: malloryToken, serverKey: cluster.keys.admin.serverKey }, timeoutMs: 1_500, roundsMax: 1 });
    clients.push(attacker);
    const fake = { nodeId: 1, kind: 'storage', controlAddress: 'tcp://10.255.255.1:1', targets: [{ targetId: 101, dataAddress: '10.255.255.1:1' }] };
    expect(await code(attacker.call('mgmtd.registerNode', fake))).toBe('EAUTH');
    const foreign = randomBytes(32);
    expect(await code(attacker.call('mgmtd.registerNode', { ...fake, proof: nodeProof(foreign, 1, registerText(fake)) }))).toBe('EAUTH');
    const hb = { nodeId: 1, appliedVersion: before.version, targets: [{ targetId: 101, localState: 'syncing-done', syncedStateVersion: t101.stateVersion }] };
    expect(await code(attacker.call('mgmtd.heartbeat', hb))).toBe('EAUTH');
    expect(await code(attacker.call('mgmtd.heartbeat', { ...hb, proof: nodeProof(foreign, 1, heartbeatText(hb)) }))).toBe('EAUTH');
    // Even node 2's own key cannot take node 1's target (a target stays with its node).
    const node2 = new MgmtdClient(cluster.mgmtdEndpoints, { cluster: new ClusterAuth(cluster.keys.cluster.secret), timeoutMs: 1_500, roundsMax: 1 });
    clients.push(node2);
    expect(await code(node2.registerNode(2, 'storage', 'tcp://10.255.255.1:1', [{ targetId: 101, dataAddress: '10.255.255.1:1' }]))).toBe('EACCES');
    // Nothing changed: 101 is node 1's at its address and serving; chunks still write.
    const after = await cluster.routing();
    expect(after.targets.find((t) => t.targetId === 101)).toMatchObject({ nodeId: 1, dataAddress: t101.dataAddress, state: 'serving' });
    const { Writer } = await import('../cluster/support/cluster.js');
    const writer = new Writer(cluster, 6, 2);
    writer.start();
    try {
      await writer.waitAcks(6, 20_000);
    } finally {
      await writer.stop();
      writer.close();
    }
    expect(writer.errors).toEqual([]);
    await until(() => cluster.mgmtd[0]!.errLines.some((l) => /auth: mgmtd refused mgmtd\.registerNode for node 1: EAUTH/.test(l)), 5_000, 'the refusal in mgmtd\'s log');
    await until(() => cluster.mgmtd[0]!.errLines.some((l) => /auth: mgmtd refused mgmtd\.heartbeat for node 1: EAUTH/.test(l)), 5_000, 'the heartbeat refusal in mgmtd\'s log');
  }, 60_000);
});
