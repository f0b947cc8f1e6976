// The control-plane codec: byte fixtures (shared with the future C++ codec), envelope checks.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeReply, decodeRequest, encodeReply, encodeRequest, PackedResult, peekRequestId, type Reply, type Request } from '../../src/protocol/envelope.js';
import { pack } from '../../src/protocol/codec.js';
import { protocolLimits } from '../../src/limits.js';
import { nodeProofValid, heartbeatText, registerText } from '../../src/cluster/node-proof.js';
import { decodeCreateChainTable, decodeHeartbeat, decodeRegister } from '../../src/protocol/mgmtd.js';
import { fixtureSecret, fixtures, heartbeat, mgmtdFixtures, register, toJson } from './support/fixtures.js';

const dir = new URL('../fixtures/protocol/', import.meta.url);
// MILLPOND_UPDATE_FIXTURES=1 rewrites the files (review the diff: a change breaks other codecs).
const update = process.env.MILLPOND_UPDATE_FIXTURES === '1';

describe('protocol fixtures', () => {
  for (const fixture of [...fixtures, ...mgmtdFixtures]) {
    it(fixture.name, () => {
      const bytes = fixture.kind === 'request' ? encodeRequest(fixture.message as Request) : encodeReply(fixture.message as Reply);
      const bin = new URL(`${fixture.name}.bin`, dir);
      const json = new URL(`${fixture.name}.json`, dir);
      const description = { description: fixture.description, kind: fixture.kind, message: toJson(fixture.message), hex: bytes.toString('hex') };
      if (update || !existsSync(bin)) {
        mkdirSync(dir, { recursive: true });
        writeFileSync(bin, bytes);
        writeFileSync(json, `${JSON.stringify(description, null, 2)}\n`);
      }
      expect(bytes.equals(readFileSync(bin)), `${fixture.name}.bin differs from the codec's bytes`).toBe(true);
      expect(JSON.parse(readFileSync(json, 'utf8'))).toEqual(description);
      const decoded = fixture.kind === 'request' ? decodeRequest(readFileSync(bin)) : decodeReply(readFileSync(bin));
      expect(decoded).toEqual(fixture.message);
      expect(peekRequestId(bytes)).toBe((fixture.message as Request).requestId);
    });
  }
});

describe('mgmtd fixtures through mgmtd\'s decoders', () => {
  const params = (name: string) => decodeRequest(readFileSync(new URL(`${name}.bin`, dir))).params;

  it('registerNode: the node, its targets and a proof valid under the secret', () => {
    const p = params('mgmtd-register-node-request');
    expect(decodeRegister(p)).toEqual({ node: { nodeId: 7, kind: 'storage', controlAddress: 'tcp://10.1.0.3:7001' }, targets: register.targets });
    expect(nodeProofValid(fixtureSecret, 7, registerText({ ...decodeRegister(p).node, targets: decodeRegister(p).targets }), p.proof)).toBe(true);
    expect(nodeProofValid(Buffer.alloc(32, 0x5d), 7, registerText(register), p.proof)).toBe(false);
  });

  it('heartbeat: targets with space and resync progress, the counters, a valid proof', () => {
    const p = params('mgmtd-heartbeat-request');
    const decoded = decodeHeartbeat(p);
    expect(decoded).toEqual({
      nodeId: 7, appliedVersion: 42,
      targets: [
        { targetId: 101, localState: 'uptodate', syncedStateVersion: undefined, capacityBytes: 8_589_934_592_000, freeBytes: 4_294_967_296_000, chunks: 1_000_000, resync: undefined },
        { targetId: 102, localState: 'online', syncedStateVersion: 41, capacityBytes: undefined, freeBytes: undefined, chunks: undefined, resync: heartbeat.targets[1]!.resync },
      ],
      counters: { dataReadBytes: 6_000_000_000, dataWrittenBytes: 12_345, pid: 4242 },
    });
    expect(nodeProofValid(fixtureSecret, 7, heartbeatText(decoded), p.proof)).toBe(true);
  });

  it('createChainTable: explicit chains', () => {
    expect(decodeCreateChainTable(params('mgmtd-create-chain-table-request'))).toEqual({
      tableId: 2, chains: [{ chainId: 10, targets: [101, 201, 301] }, { chainId: 11, targets: [201, 301, 101] }],
    });
  });
});

describe('envelope', () => {
  const reject = (frame: Buffer) => {
    try {
      decodeRequest(frame);
    } catch (err) {
      const e = err as { code: string; requestId: number };
      return [e.code, e.requestId];
    }
    return ['decoded'];
  };

  it('a packed result makes the very bytes of the reply it stands for', () => {
    const inode = { id: 2n ** 40n + 7n, type: 'file', mode: 0o644, uid: 1000, gid: 1000, length: 2 ** 33, ctimeMs: 1_764_900_000_000, mtimeMs: 1_764_900_000_001, layout: { chunkSizeBytes: 4 << 20, stripeSize: 4, chainTableId: 1, chainTableVersion: 2, chains: [3, 4] }, parent: 1n };
    for (const [requestId, result] of [[1, inode], [2 ** 40, inode], [7, 'text'], [9, null]] as const) {
      const packed = encodeReply({ requestId, ok: true, result: new PackedResult(pack(result)) });
      expect(packed).toEqual(encodeReply({ requestId, ok: true, result }));
      expect(decodeReply(packed)).toEqual({ requestId, ok: true, result });
    }
  });

  it('rejects malformed requests with EPROTO/EMSGSIZE and the requestId when readable', () => {
    expect(reject(Buffer.from('not msgpack at all'))).toEqual(['EPROTO', 0]);
    expect(reject(Buffer.alloc(0))).toEqual(['EPROTO', 0]);
    const good = encodeRequest({ requestId: 77, method: 'meta.stat', params: { path: '/' } });
    expect(reject(good.subarray(0, good.length - 3))).toEqual(['EPROTO', 77]); // truncated
    expect(reject(pack([2, 5, 'meta.stat', {}]))).toEqual(['EPROTO', 5]); // version
    expect(reject(pack([1, 5, 'meta.stat']))).toEqual(['EPROTO', 5]); // 3 elements
    expect(reject(pack([1, -5, 'meta.stat', {}]))).toEqual(['EPROTO', 0]);
    expect(reject(pack([1, 0, 'meta.stat', {}]))).toEqual(['EPROTO', 0]);
    expect(reject(pack([1, 6, 42, {}]))).toEqual(['EPROTO', 6]);
    expect(reject(pack([1, 6, 'x'.repeat(100), {}]))).toEqual(['EPROTO', 6]);
    expect(reject(pack([1, 6, 'meta.stat', [1, 2]]))).toEqual(['EPROTO', 6]);
    expect(reject(pack({ version: 1 }))).toEqual(['EPROTO', 0]);
    expect(reject(Buffer.concat([good, good]))).toEqual(['EPROTO', 77]);
    const big = encodeRequest({ requestId: 99, method: 'meta.stat', params: { path: 'x'.repeat(protocolLimits.messageBytesMax) } });
    expect(reject(big)).toEqual(['EMSGSIZE', 99]);
    expect(reject(big.subarray(0, 12))).toEqual(['EMSGSIZE', 99].map((v, i) => (i === 0 ? 'EPROTO' : v)));
  });

  it('maps unknown error codes in replies to EPROTO', () => {
    const reply = decodeReply(pack([1, 3, false, { code: 'EWHATEVER', message: 'm' }]));
    expect(reply).toMatchObject({ ok: false, error: { code: 'EPROTO' } });
  });
});
