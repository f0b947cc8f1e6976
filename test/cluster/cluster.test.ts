// A cluster of real processes on loopback: mgmtd, three storage daemons (one target each),
// one chain table of 4 chains of length 3, a client writing continuously.
import { afterEach, describe, expect, it } from 'vitest';
import { Dealer } from 'zeromq';
import { closeSync, openSync, writeSync } from 'node:fs';
import { ChunkClient } from '../../src/chunk/chunk-client.js';
import { RpcClient } from '../../src/protocol/rpc-client.js';
import { committedChunkFiles, contentOffset } from '../support/chunk-files.js';
import { pack } from '../../src/protocol/codec.js';
import { decodeReply, encodeRequest } from '../../src/protocol/envelope.js';
import { chunkPattern, generationOf } from '../support/pattern.js';
import { Cluster, partialContent, Writer } from './support/cluster.js';
import { sleep, until } from './support/processes.js';

describe('cluster', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /**
   * Every acknowledged write reads back intact: a whole chunk at the acked generation or a
   * later one; a partially written chunk (once the writer stopped) exactly as written.
   */
  async function verifyAcked(writer: Writer, stopped: boolean): Promise<void> {
    for (const [index, generation] of writer.acked) {
      const { data } = await writer.routing.readChunk(Writer.chainOf(index), { inode: 1n, index }, 0, 1 << 20);
      if (writer.isPartial(index)) {
        if (stopped) expect(data.equals(partialContent(index, generation)), `chunk ${index}`).toBe(true);
        continue;
      }
      expect(generationOf(index, data), `chunk ${index}`).toBeGreaterThanOrEqual(generation);
    }
  }

  /** Every replica of every chunk: same committed version and content as the chain's tail. */
  async function verifyReplicas(cluster: Cluster, writer: Writer): Promise<void> {
    const r = await cluster.routing();
    const client = new ChunkClient({ transport: 'tcp', credentials: cluster.dataCredentials });
    try {
      for (const [index] of writer.acked) {
        const chain = r.chains.find((c) => c.chainId === Writer.chainOf(index))!;
        const addresses = chain.targets.map((id) => r.targets.find((t) => t.targetId === id)!.dataAddress);
        const copies = await Promise.all(addresses.map((a) => client.read(a, { inode: 1n, index }, 0, 1 << 20)));
        for (const c of copies) {
          expect(c.meta.commitVersion, `chunk ${index}`).toBe(copies[0]!.meta.commitVersion);
          expect(c.data.equals(copies[0]!.data), `chunk ${index}`).toBe(true);
          if (!writer.isPartial(index)) expect(generationOf(index, c.data)).toBeGreaterThanOrEqual(writer.acked.get(index)!);
        }
      }
    } finally {
      client.close();
    }
  }

  it('SIGKILL of a storage daemon mid-stream: acknowledged writes survive, reads go on, the daemon resyncs and serves again', async () => {
    const cluster = await Cluster.start(1);
    cleanups.push(() => cluster.stop());
    const writer = new Writer(cluster, 24, 3, true);
    cleanups.push(() => writer.close());
    writer.start();
    cleanups.push(() => writer.stop());
    await writer.waitAcks(60, 20_000);

    const killedAtMs = Date.now();
    await cluster.storage.get(2)!.kill();
    await cluster.waitStates({ 102: 'offline' }, 10_000);
    const ackedAtOffline = writer.acks;
    // Reads keep working while it is down, and writes go on without it.
    await verifyAcked(writer, false);
    await writer.waitAcks(60, 20_000);
    const chain = (await cluster.routing()).chains[0]!;
    expect(chain.targets.at(-1)).toBe(102);

    await cluster.startNode(2);
    await cluster.waitStates({ 102: 'serving' }, 20_000);
    const downMs = Date.now() - killedAtMs;
    await writer.waitAcks(30, 20_000);
    await writer.stop();
    expect(writer.errors).toEqual([]);
    expect(writer.acks).toBeGreaterThan(ackedAtOffline);
    await verifyAcked(writer, true);
    await verifyReplicas(cluster, writer);
    const status = await cluster.admin.status();
    expect(status.routing!.targets.map((t) => t.state)).toEqual(['serving', 'serving', 'serving']);
    console.log(`storage kill: ${writer.acks} acks, back to serving ${downMs} ms after the kill`);
  });

  it('SIGKILL and immediate restart of a storage daemon (before mgmtd notices): it resyncs and serves again', async () => {
    const cluster = await Cluster.start(1);
    cleanups.push(() => cluster.stop());
    const writer = new Writer(cluster, 24, 3, true);
    cleanups.push(() => writer.close());
    writer.start();
    cleanups.push(() => writer.stop());
    await writer.waitAcks(40, 20_000);
    const before = (await cluster.routing()).targets.find((t) => t.targetId === 101)!.stateVersion;
    await cluster.storage.get(1)!.kill();
    await cluster.startNode(1);
    // Never seen offline (it re-registered within the heartbeat timeout), yet it resynced.
    const r = await cluster.waitStates({ 101: 'serving' }, 20_000).then(async () => {
      await until(async () => (await cluster.routing()).targets.find((t) => t.targetId === 101)!.stateVersion > before + 1, 10_000, 'a new serving round');
      return cluster.routing();
    });
    expect(r.targets.find((t) => t.targetId === 101)!.state).toBe('serving');
    await writer.waitAcks(30, 20_000);
    await writer.stop();
    expect(writer.errors).toEqual([]);
    await verifyAcked(writer, true);
    await verifyReplicas(cluster, writer);
  });

  it('SIGKILL of the mgmtd primary: the standby takes over within the lease, writes go on, failures are still handled', async () => {
    const cluster = await Cluster.start(2);
    cleanups.push(() => cluster.stop());
    const writer = new Writer(cluster);
    cleanups.push(() => writer.close());
    writer.start();
    cleanups.push(() => writer.stop());
    await writer.waitAcks(30, 20_000);

    const killedAtMs = Date.now();
    writer.resetGap();
    await cluster.mgmtd[0]!.kill();
    await cluster.mgmtd[1]!.waitFor(/^primary$/, 10_000);
    const takeoverMs = Date.now() - killedAtMs;
    await writer.waitAcks(30, 20_000);
    const gapMs = writer.maxGapMs;
    // Daemons heartbeat to the new primary and every target serves.
    await sleep(1_000);
    await cluster.waitStates({ 101: 'serving', 102: 'serving', 103: 'serving' }, 10_000);

    // The new primary handles a storage failure end to end.
    await cluster.storage.get(3)!.kill();
    await cluster.waitStates({ 103: 'offline' }, 10_000);
    await writer.waitAcks(30, 20_000);
    await cluster.startNode(3);
    await cluster.waitStates({ 103: 'serving' }, 20_000);
    await writer.waitAcks(20, 20_000);
    await writer.stop();
    expect(writer.errors).toEqual([]);
    await verifyAcked(writer, true);
    await verifyReplicas(cluster, writer);
    console.log(`mgmtd kill: takeover after ${takeoverMs} ms, longest pause between acks meanwhile ${gapMs} ms, ${writer.acks} acks`);
  });

  it('malformed messages to mgmtd and storage control endpoints get clear errors; both serve on', async () => {
    const cluster = await Cluster.start(1);
    cleanups.push(() => cluster.stop());
    const storageControl = (await cluster.storage.get(1)!.waitFor(/^listening (\S+)$/))[1]!;
    for (const endpoint of [cluster.mgmtdEndpoints[0]!, storageControl]) {
      // As a cluster member (authentication is on; a stranger gets no service at all).
      const { serverKey, publicKey, secretKey } = cluster.keys.cluster.memberCurve;
      const raw = new Dealer({ linger: 0, receiveTimeout: 3_000, curveServerKey: serverKey, curvePublicKey: publicKey, curveSecretKey: secretKey });
      raw.connect(endpoint);
      const exchange = async (frame: Buffer | Buffer[]) => {
        await raw.send(frame);
        const [reply] = await raw.receive();
        return decodeReply(reply!);
      };
      for (const bad of [Buffer.from('garbage'), Buffer.alloc(0), pack([1, 3, 'storage.scrub', { targetId: 'x' }]), pack([1, 4, 'nosuch', {}])]) {
        const reply = await exchange(bad);
        expect(reply.ok).toBe(false);
        expect(!reply.ok && reply.error.code).toBe('EPROTO');
      }
      const method = endpoint === storageControl ? 'storage.status' : 'mgmtd.status';
      const ok = await exchange(encodeRequest({ requestId: 9, method, params: {} }));
      expect(ok.ok).toBe(true);
      raw.close();
    }
    // The cluster still writes and reads.
    const writer = new Writer(cluster, 3, 1);
    cleanups.push(() => writer.close());
    await writer.routing.writeChunk(1, { inode: 1n, index: 0 }, 0, chunkPattern(0, 1), { replace: true });
    expect(generationOf(0, (await writer.routing.readChunk(1, { inode: 1n, index: 0 }, 0, 1 << 20)).data)).toBe(1);
  });
});

describe('scrubbing', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('finds a chunk whose checksum fails and repairs it from a replica', async () => {
    const cluster = await Cluster.start(1);
    cleanups.push(() => cluster.stop());
    const writer = new Writer(cluster, 6, 1);
    cleanups.push(() => writer.close());
    for (let index = 0; index < 6; index++) {
      await writer.routing.writeChunk(Writer.chainOf(index), { inode: 1n, index }, 0, chunkPattern(index, 1), { replace: true });
    }
    // Flip bytes in the content of every committed chunk file of target 101.
    const files = committedChunkFiles(cluster.targetDir(101));
    expect(files.length).toBe(6);
    for (const file of files) {
      const fd = openSync(file, 'r+');
      writeSync(fd, Buffer.from('rot'), 0, 3, contentOffset(256 * 1024) + 1000);
      closeSync(fd);
    }
    const direct = new ChunkClient({ transport: 'tcp', credentials: cluster.dataCredentials });
    cleanups.push(() => direct.close());
    const address = cluster.storage.get(1)!.data.get(101)!;
    await expect(direct.read(address, { inode: 1n, index: 0 }, 0, 1 << 20)).rejects.toMatchObject({ code: 'ECHUNK_CORRUPT' });

    const control = new RpcClient((await cluster.storage.get(1)!.waitFor(/^listening (\S+)$/))[1]!, { timeoutMs: 20_000, attemptsMax: 1, curve: cluster.keys.cluster.memberCurve });
    cleanups.push(() => control.close());
    const result = await control.call('storage.scrub', {}) as { targets: Array<Record<string, number>> };
    expect(result.targets).toEqual([{ checked: 6, corrupt: 6, repaired: 6, unrepaired: 0 }]);
    for (let index = 0; index < 6; index++) {
      const { data } = await direct.read(address, { inode: 1n, index }, 0, 1 << 20);
      expect(generationOf(index, data)).toBe(1);
    }
    const again = await control.call('storage.scrub', {}) as { targets: Array<Record<string, number>> };
    expect(again.targets).toEqual([{ checked: 6, corrupt: 0, repaired: 0, unrepaired: 0 }]);
  });
});
