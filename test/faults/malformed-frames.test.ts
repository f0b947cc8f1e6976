// Malformed, truncated and oversized frames sent to a DataServer get an error reply (where
// a reply can be framed) and lose their connection; the server keeps serving everyone else.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChunkClient, ChunkStore, DataServer, crc32c } from '../../src/index.js';
import { readFileSync } from 'node:fs';
import {
  HEADER_BYTES, LIST_REPLY_FIXTURE, OPCODE, READ_FLAGS, STATUS, blockCrcs, decodeHeader, decodeListReply, encodeHeader, fixturePayload,
  listReply, listRequest, readRequest, statRequest, writeRequest, writeRequestWithBlockCrcs,
} from '../support/frames.js';
import { RawConnection } from '../support/raw-socket.js';
import { tempDir } from '../support/tmp.js';

describe('DataServer under bad input', () => {
  const t = tempDir('frames');
  let store: ChunkStore;
  let server: DataServer;
  let client: ChunkClient;
  const chunk = { inode: 5n, index: 0 };

  beforeAll(async () => {
    store = await ChunkStore.open(t.dir);
    server = await DataServer.start(store, { transport: 'tcp', frameTimeoutMs: 300 });
    client = new ChunkClient({ transport: 'tcp' });
    await client.write(server.address, chunk, 0, Buffer.from('still here'));
  });
  afterAll(async () => {
    client.close();
    await server.stop();
    store.close();
    t.cleanup();
  });

  async function stillServes() {
    const { data } = await client.read(server.address, chunk, 0, 10);
    expect(data.toString()).toBe('still here');
  }

  async function expectRejected(bytes: Buffer, status: number) {
    const raw = await RawConnection.open(server.address);
    raw.send(bytes);
    const reply = decodeHeader(await raw.take(HEADER_BYTES));
    expect(reply.status).toBe(status);
    expect(reply.flags & 1).toBe(1);
    const message = await raw.take(reply.metaBytes);
    expect(message.length).toBeGreaterThan(0);
    expect(await raw.waitClosed()).toBe(true);
    await stillServes();
    return message.toString();
  }

  it('answers garbage with EPROTO and closes that connection only', async () => {
    const message = await expectRejected(Buffer.from('GET / HTTP/1.1\r\nHost: example\r\nAccept: */*\r\n\r\n'), STATUS.protocol);
    expect(message).toMatch(/magic/);
  });

  it('answers a header with a bad checksum, version or opcode with EPROTO', async () => {
    const good = encodeHeader({ opcode: OPCODE.ping, requestId: 1n, metaBytes: 0, dataBytes: 0 });
    const badCrc = Buffer.from(good);
    badCrc[29] ^= 0xff;
    await expectRejected(badCrc, STATUS.protocol);
    await expectRejected(encodeHeader({ version: 9, opcode: OPCODE.ping, requestId: 2n, metaBytes: 0, dataBytes: 0 }), STATUS.protocol);
    await expectRejected(encodeHeader({ opcode: 200, requestId: 3n, metaBytes: 0, dataBytes: 0 }), STATUS.protocol);
    await expectRejected(encodeHeader({ opcode: OPCODE.ping, flags: 1, requestId: 4n, metaBytes: 0, dataBytes: 0 }), STATUS.protocol);
  });

  it('answers oversized meta or data with EMSGSIZE before reading it', async () => {
    await expectRejected(encodeHeader({ opcode: OPCODE.write, requestId: 5n, metaBytes: 1 << 30, dataBytes: 0 }), STATUS.tooLarge);
    await expectRejected(encodeHeader({ opcode: OPCODE.write, requestId: 6n, metaBytes: 64, dataBytes: 0x7fff_ffff }), STATUS.tooLarge);
  });

  it('drops a connection whose frame stalls half-way, after frameTimeoutMs', async () => {
    const raw = await RawConnection.open(server.address);
    const frame = statRequest(7n, 5n, 0);
    raw.send(frame.subarray(0, 20)); // a truncated header
    await stillServes();
    expect(await raw.waitClosed(3000)).toBe(true);
    const stalledBody = await RawConnection.open(server.address);
    stalledBody.send(frame.subarray(0, HEADER_BYTES + 4)); // whole header, truncated meta
    expect(await stalledBody.waitClosed(3000)).toBe(true);
    await stillServes();
  });

  it('answers a malformed meta section with EPROTO and keeps the connection', async () => {
    const raw = await RawConnection.open(server.address);
    const shortMeta = Buffer.alloc(5);
    raw.send(Buffer.concat([encodeHeader({ opcode: OPCODE.stat, requestId: 8n, metaBytes: 5, dataBytes: 0 }), shortMeta]));
    const reply = decodeHeader(await raw.take(HEADER_BYTES));
    expect(reply.status).toBe(STATUS.protocol);
    await raw.take(reply.metaBytes);
    raw.send(statRequest(9n, 5n, 0)); // framing is intact, so the connection serves on
    const next = decodeHeader(await raw.take(HEADER_BYTES));
    expect(next).toMatchObject({ requestId: 9n, status: STATUS.ok });
    raw.destroy();
  });

  it('refuses a write whose payload checksum is wrong, storing nothing', async () => {
    const raw = await RawConnection.open(server.address);
    const payload = Buffer.from('damaged in transit');
    raw.send(writeRequest(10n, 6n, 0, payload, crc32c(payload) ^ 1));
    const reply = decodeHeader(await raw.take(HEADER_BYTES));
    expect(reply.status).toBe(STATUS.corrupt);
    await raw.take(reply.metaBytes);
    await expect(client.stat(server.address, { inode: 6n, index: 0 })).rejects.toMatchObject({ code: 'ENOENT' });
    raw.send(writeRequest(11n, 6n, 0, payload, crc32c(payload)));
    expect(decodeHeader(await raw.take(HEADER_BYTES))).toMatchObject({ requestId: 11n, status: STATUS.ok });
    raw.destroy();
    expect(server.stats().transports.tcp.protocolErrors).toBeGreaterThan(0);
  });

  it('encodes block-CRC writes and reads as the native encoder does (test/fixtures/dataplane)', () => {
    const fixture = (name: string) => readFileSync(new URL(`../fixtures/dataplane/${name}`, import.meta.url));
    expect(writeRequestWithBlockCrcs(42n, 0x0102030405060708n, 9, 4096, fixturePayload(5000)))
      .toEqual(fixture('write-request-block-crcs.bin'));
    expect(readRequest(43n, 0x0102030405060708n, 9, 8192, 1 << 20, READ_FLAGS.blockCrcs))
      .toEqual(fixture('read-request-block-crcs.bin'));
  });

  it('encodes a list reply as the native encoder does, each entry with its chain tag (test/fixtures/dataplane)', () => {
    const fixture = readFileSync(new URL('../fixtures/dataplane/list-reply.bin', import.meta.url));
    expect(listReply(44n, LIST_REPLY_FIXTURE)).toEqual(fixture);
    expect(decodeListReply(fixture.subarray(HEADER_BYTES))).toEqual(LIST_REPLY_FIXTURE);
  });

  it('lists over the wire the chain each chunk was written for (0: a write that named none)', async () => {
    // The server is on chain 12 as its only replica (head and tail): a chain write commits here.
    server.setChain(12, { chainVersion: 3, head: true });
    const tagged = { inode: 0x77n, index: 1 };
    await client.write(server.address, tagged, 0, Buffer.from('on chain 12'), { chain: { chainId: 12, chainVersion: 3, clientId: 1, requestId: 1 } });
    await client.write(server.address, { inode: 0x77n, index: 2 }, 0, Buffer.from('direct'));
    const raw = await RawConnection.open(server.address);
    raw.send(listRequest(15n, 10, { inode: 0x77n, index: 0 }));
    const reply = decodeHeader(await raw.take(HEADER_BYTES));
    expect(reply).toMatchObject({ requestId: 15n, status: STATUS.ok, dataBytes: 0 });
    const entries = decodeListReply(await raw.take(reply.metaBytes));
    raw.destroy();
    expect(entries.map((e) => [e.inode, e.index, e.chainId, e.length])).toEqual([[0x77n, 1, 12, 11], [0x77n, 2, 0, 6]]);
    // The native client decodes the same field, and the store lists it too.
    expect((await client.list(server.address, { after: { inode: 0x77n, index: 0 } })).map((e) => e.chainId)).toEqual([12, 0]);
    expect((await store.list({ after: { inode: 0x77n, index: 0 } })).map((e) => e.chainId)).toEqual([12, 0]);
    server.removeChain(12);
  });

  it('refuses a block-CRC write with a byte flipped after its CRCs were made, then reads back with the stored CRCs', async () => {
    const raw = await RawConnection.open(server.address);
    const payload = fixturePayload(10_000);
    const damaged = Buffer.from(payload);
    damaged[4096 + 7] ^= 0x01; // block 1
    raw.send(writeRequestWithBlockCrcs(12n, 7n, 0, 0, damaged, blockCrcs(payload), crc32c(payload)));
    let reply = decodeHeader(await raw.take(HEADER_BYTES));
    expect(reply.status).toBe(STATUS.corrupt);
    expect((await raw.take(reply.metaBytes)).toString()).toMatch(/checksum mismatch in block 1/);
    await expect(client.stat(server.address, { inode: 7n, index: 0 })).rejects.toMatchObject({ code: 'ENOENT' });
    raw.send(writeRequestWithBlockCrcs(13n, 7n, 0, 0, payload));
    reply = decodeHeader(await raw.take(HEADER_BYTES));
    expect(reply).toMatchObject({ requestId: 13n, status: STATUS.ok });
    await raw.take(reply.metaBytes);
    // An aligned read asks for the stored CRCs: ChunkMeta (24 bytes), count, one per block.
    raw.send(readRequest(14n, 7n, 0, 4096, 1 << 20, READ_FLAGS.blockCrcs));
    reply = decodeHeader(await raw.take(HEADER_BYTES));
    expect(reply).toMatchObject({ requestId: 14n, status: STATUS.ok, dataBytes: payload.length - 4096 });
    const meta = await raw.take(reply.metaBytes);
    expect(meta.readUInt32LE(24)).toBe(2);
    expect([meta.readUInt32LE(28), meta.readUInt32LE(32)]).toEqual(blockCrcs(payload.subarray(4096)));
    expect(await raw.take(reply.dataBytes)).toEqual(payload.subarray(4096));
    raw.destroy();
  });
});
