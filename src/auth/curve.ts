/**
 * ZeroMQ CURVE keys of the cluster (design §10), derived from the cluster secret S or a token
 * (src/auth/keys.ts): the server key pair from S (label curve/server), the member key pair of
 * cluster daemons from S (label curve/member), a user's client key pair from its token secret
 * (HMAC-SHA256(tokenSecret, "millpond/v1/curve/client")). Keys are X25519; ZeroMQ takes them in
 * Z85 text (40 characters for 32 bytes). The server public key is public (cluster.json holds
 * it); the secret keys never leave the process that derived them.
 */
import { createHmac, createPrivateKey, createPublicKey } from 'node:crypto';
import { derive, parseToken, SECRET_BYTES } from './keys.js';

export interface CurveKeyPair {
  /** Z85, 40 characters. */
  publicKey: string;
  secretKey: string;
}

const Z85_CHARS = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';
const Z85_INDEX = new Map([...Z85_CHARS].map((c, i) => [c, i]));

/** Z85 (ZeroMQ RFC 32) of `data`, whose length is a multiple of 4. */
export function z85Encode(data: Buffer): string {
  if (data.length % 4 !== 0) throw new RangeError('z85 encodes whole 4-byte words');
  let out = '';
  for (let at = 0; at < data.length; at += 4) {
    let value = data.readUInt32BE(at);
    const chars: string[] = [];
    for (let i = 0; i < 5; i++) {
      chars.push(Z85_CHARS[value % 85]!);
      value = Math.floor(value / 85);
    }
    out += chars.reverse().join('');
  }
  return out;
}

export function z85Decode(text: string): Buffer {
  if (text.length % 5 !== 0) throw new RangeError('z85 text is whole 5-character groups');
  const out = Buffer.alloc((text.length / 5) * 4);
  for (let at = 0; at < text.length; at += 5) {
    let value = 0;
    for (let i = 0; i < 5; i++) {
      const digit = Z85_INDEX.get(text[at + i]!);
      if (digit === undefined) throw new RangeError('not z85 text');
      value = value * 85 + digit;
    }
    if (value > 0xffffffff) throw new RangeError('not z85 text');
    out.writeUInt32BE(value, (at / 5) * 4);
  }
  return out;
}

// PKCS#8 DER of an X25519 private key is this prefix then the 32 key bytes (RFC 8410).
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** The X25519 public key of a 32-byte secret (clamped as libsodium's crypto_scalarmult_base). */
export function x25519Public(secretKey: Buffer): Buffer {
  if (secretKey.length !== 32) throw new RangeError('an X25519 secret key is 32 bytes');
  const key = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, secretKey]), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
  return spki.subarray(spki.length - 32);
}

export function keyPairOf(secretKey: Buffer): CurveKeyPair {
  return { publicKey: z85Encode(x25519Public(secretKey)), secretKey: z85Encode(secretKey) };
}

export const serverKeyPair = (clusterSecret: Buffer): CurveKeyPair => keyPairOf(derive(clusterSecret, 'curve/server'));
export const memberKeyPair = (clusterSecret: Buffer): CurveKeyPair => keyPairOf(derive(clusterSecret, 'curve/member'));

/** The CURVE client secret key of a token secret (32 bytes). */
export function curveClientSecret(tokenSecret: Buffer): Buffer {
  if (tokenSecret.length !== SECRET_BYTES) throw new RangeError(`a token secret is ${SECRET_BYTES} bytes`);
  return createHmac('sha256', tokenSecret).update('millpond/v1/curve/client').digest();
}

/** The CURVE client key pair a token's holder connects with. */
export const tokenKeyPair = (token: string): CurveKeyPair => keyPairOf(curveClientSecret(parseToken(token).secret));

/** True when `text` is a Z85 CURVE key (40 characters). */
export function isCurveKey(text: unknown): text is string {
  if (typeof text !== 'string' || text.length !== 40) return false;
  try {
    z85Decode(text);
    return true;
  } catch {
    return false;
  }
}
