/**
 * The cluster's key material, in one place (design §10). Everything derives from one cluster
 * secret S (32 random bytes, made by `millpond up` or `millpond init`, kept in a 0600 file that
 * only servers read):
 *
 *   derive(S, label) = HMAC-SHA256(key = S, message = "millpond/v1/" + label)      32 bytes
 *
 *   label                      what it keys
 *   node/<nodeId>              a storage node: registration, heartbeats, data-plane handshake,
 *                              chain-internal operations
 *   capability                 the MAC of capabilities meta hands out and storage checks
 *   token/<uid>/<tokenId>      the secret part of a user's token
 *   curve/server               the cluster's ZeroMQ CURVE server secret key
 *   curve/member               the CURVE client key of cluster daemons (mgmtd, meta, storage)
 *
 * A user's CURVE client secret key is HMAC-SHA256(tokenSecret, "millpond/v1/curve/client").
 * The native core (native/common/auth.*) implements the same derivations; both sides are
 * checked against the vectors in test/fixtures/auth.
 *
 * A token is the string `mpt1.<uid>.<tokenId>.<secret>`: uid decimal, tokenId 16 lowercase hex
 * digits, secret the 32-byte token secret in base64url without padding. Anyone holding S can
 * check a token by deriving its secret; whether the user still exists is meta's users table.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { MillpondError } from '../errors.js';

export const SECRET_BYTES = 32;
const LABEL_PREFIX = 'millpond/v1/';
const TOKEN_PREFIX = 'mpt1';
const TOKEN_ID_RE = /^[0-9a-f]{16}$/;

export function derive(secret: Buffer, label: string): Buffer {
  if (secret.length !== SECRET_BYTES) throw new RangeError(`a cluster secret is ${SECRET_BYTES} bytes`);
  return createHmac('sha256', secret).update(LABEL_PREFIX + label).digest();
}

export const nodeKey = (secret: Buffer, nodeId: number): Buffer => derive(secret, `node/${nodeId}`);
export const capabilityKey = (secret: Buffer): Buffer => derive(secret, 'capability');

export interface Token {
  uid: number;
  tokenId: string;
  secret: Buffer;
}

export function tokenSecret(secret: Buffer, uid: number, tokenId: string): Buffer {
  return derive(secret, `token/${uid}/${tokenId}`);
}

/** A new token for `uid`, minted from the cluster secret. */
export function mintToken(secret: Buffer, uid: number): Token {
  const tokenId = randomBytes(8).toString('hex');
  return { uid, tokenId, secret: tokenSecret(secret, uid, tokenId) };
}

export function formatToken(token: Token): string {
  return `${TOKEN_PREFIX}.${token.uid}.${token.tokenId}.${token.secret.toString('base64url')}`;
}

/** Parses the token string; EAUTH when it is not one (never echoes the secret part). */
export function parseToken(text: string): Token {
  if (typeof text !== 'string') throw new TypeError('a token must be a string');
  const parts = text.trim().split('.');
  if (parts.length !== 4 || parts[0] !== TOKEN_PREFIX) throw new MillpondError('EAUTH', 'not a millpond token (mpt1.<uid>.<id>.<secret>)');
  const uid = Number(parts[1]);
  const secret = Buffer.from(parts[3]!, 'base64url');
  if (!/^\d{1,10}$/.test(parts[1]!) || uid > 0xffffffff || !TOKEN_ID_RE.test(parts[2]!) || secret.length !== SECRET_BYTES) {
    throw new MillpondError('EAUTH', 'malformed millpond token');
  }
  return { uid, tokenId: parts[2]!, secret };
}

/** True when `token`'s secret is the one S gives for its uid and id (constant time). */
export function tokenValid(secret: Buffer, token: Token): boolean {
  return timingSafeEqual(tokenSecret(secret, token.uid, token.tokenId), token.secret);
}

/** Writes `data` to `path` with mode 0600, its directory 0700 (created if absent). */
export function writePrivateFile(path: string, data: string | Buffer): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  chmodSync(dirname(path), 0o700);
  writeFileSync(path, data, { mode: 0o600 });
  chmodSync(path, 0o600);
}

/** Reads the cluster secret (hex) from `path`, or makes one there if `create` and absent. */
export function loadClusterSecret(path: string, create = false): Buffer {
  if (!existsSync(path)) {
    if (!create) throw new MillpondError('EAUTH', `no cluster secret at ${path} (made by millpond up or millpond init)`);
    writePrivateFile(path, randomBytes(SECRET_BYTES).toString('hex') + '\n');
  }
  const secret = Buffer.from(readFileSync(path, 'utf8').trim(), 'hex');
  if (secret.length !== SECRET_BYTES) throw new MillpondError('EAUTH', `${path} does not hold a ${SECRET_BYTES}-byte cluster secret`);
  return secret;
}
