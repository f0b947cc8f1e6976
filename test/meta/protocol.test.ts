// The control-plane codec: byte fixtures (shared with the future C++ codec), envelope checks.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeReply, decodeRequest, encodeReply, encodeRequest, peekRequestId, type Reply, type Request } from '../../src/protocol/envelope.js';
import { pack } from '../../src/protocol/codec.js';
import { protocolLimits } from '../../src/limits.js';
import { fixtures, mgmtdFixtures, toJson } from './support/fixtures.js';

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
