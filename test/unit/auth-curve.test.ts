// CURVE keys in TS (src/auth/curve.ts) equal libzmq's: Z85 both ways, X25519 public keys of the
// same secrets, and a token's client key as the shared vectors say.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { curveKeyPair } from 'zeromq';
import { curveClientSecret, isCurveKey, keyPairOf, z85Decode, z85Encode } from '../../src/auth/curve.js';
import { parseToken } from '../../src/auth/keys.js';

const vectors = JSON.parse(readFileSync(new URL('../fixtures/auth/vectors.json', import.meta.url), 'utf8')) as { token: string; curveClientSecretHex: string };

describe('CURVE keys', () => {
  it('derive the public key libzmq derives, in the same Z85', () => {
    for (let i = 0; i < 20; i++) {
      const zmq = curveKeyPair();
      expect(keyPairOf(z85Decode(zmq.secretKey))).toEqual({ publicKey: zmq.publicKey, secretKey: zmq.secretKey });
    }
    // ZeroMQ RFC 32's example.
    expect(z85Encode(Buffer.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]))).toBe('HelloWorld');
  });

  it("give a token's client secret as the shared vectors say", () => {
    expect(curveClientSecret(parseToken(vectors.token).secret).toString('hex')).toBe(vectors.curveClientSecretHex);
  });

  it('refuse what is not a key', () => {
    expect(isCurveKey('x'.repeat(40))).toBe(true);
    expect(isCurveKey('x'.repeat(39))).toBe(false);
    expect(isCurveKey('"'.repeat(40))).toBe(false);
    expect(() => z85Encode(Buffer.alloc(3))).toThrow(RangeError);
  });
});
