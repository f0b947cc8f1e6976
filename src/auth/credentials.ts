/**
 * Who is who on the control plane (design §10):
 *   - a client presents a token (`mpt1.<uid>.<id>.<secret>`) and knows the cluster's CURVE
 *     server public key; it connects with the CURVE key pair derived from its token and sends
 *     the token in every request's params (inside the CURVE-encrypted channel), so the server
 *     binds each request to the user the token names;
 *   - a daemon holds the cluster secret S (a 0600 file named by --secret-file); it serves with
 *     the curve/server key and connects to other daemons with the curve/member key.
 * Where a client finds its token and the server key: explicit values, then MILLPOND_TOKEN /
 * MILLPOND_TOKEN_FILE / MILLPOND_SERVER_KEY, then the data directory of `millpond up`
 * (<dataDir>/keys/admin.token and <dataDir>/cluster.json).
 */
import { createHmac } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MillpondError } from '../errors.js';
import type { ClientCurve } from '../protocol/rpc-client.js';
import { isCurveKey, memberKeyPair, serverKeyPair, tokenKeyPair, type CurveKeyPair } from './curve.js';
import { derive, loadClusterSecret, parseToken, type Token } from './keys.js';

/** What a client presents. */
export interface ClientAuth {
  token: string;
  /** The cluster's CURVE server public key (Z85, 40 characters; cluster.json `serverKey`). */
  serverKey: string;
}

export const KEYS_DIR = 'keys';
export const SECRET_FILE = 'cluster.secret';
export const ADMIN_TOKEN_FILE = 'admin.token';

export function checkClientAuth(auth: ClientAuth): Token {
  if (typeof auth !== 'object' || auth === null) throw new TypeError('auth must be { token, serverKey }');
  if (!isCurveKey(auth.serverKey)) throw new MillpondError('EAUTH', 'serverKey must be the cluster\'s CURVE server public key (40 Z85 characters, cluster.json "serverKey")');
  return parseToken(auth.token);
}

/** The CURVE options of a client socket presenting `auth`. */
export function clientCurve(auth: ClientAuth): ClientCurve {
  checkClientAuth(auth);
  return { serverKey: auth.serverKey, ...tokenKeyPair(auth.token) };
}

/** Reads a token file (the token on its first line). */
export function readTokenFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new MillpondError('EAUTH', `cannot read token file ${path}: ${(err as Error).message}`);
  }
  const token = text.trim().split('\n')[0]!.trim();
  parseToken(token);
  return token;
}

/**
 * Finds a client's credentials: explicit values, then the environment, then `dataDir` (the
 * cluster `millpond up` made). Undefined when no token is found anywhere (the caller then
 * connects without authentication, which an authenticated cluster refuses with EAUTH).
 */
export function findClientAuth(o: { token?: string; tokenFile?: string; serverKey?: string; dataDir?: string; env?: NodeJS.ProcessEnv } = {}): ClientAuth | undefined {
  const env = o.env ?? process.env;
  const dataToken = o.dataDir ? join(o.dataDir, KEYS_DIR, ADMIN_TOKEN_FILE) : undefined;
  const token = o.token
    ?? (o.tokenFile ? readTokenFile(o.tokenFile) : undefined)
    ?? (env.MILLPOND_TOKEN ? env.MILLPOND_TOKEN.trim() : undefined)
    ?? (env.MILLPOND_TOKEN_FILE ? readTokenFile(env.MILLPOND_TOKEN_FILE) : undefined)
    ?? (dataToken && existsSync(dataToken) ? readTokenFile(dataToken) : undefined);
  if (token === undefined) return undefined;
  let serverKey = o.serverKey ?? env.MILLPOND_SERVER_KEY;
  if (!serverKey && o.dataDir && existsSync(join(o.dataDir, 'cluster.json'))) {
    const cluster = JSON.parse(readFileSync(join(o.dataDir, 'cluster.json'), 'utf8')) as { serverKey?: unknown };
    if (typeof cluster.serverKey === 'string') serverKey = cluster.serverKey;
  }
  if (!serverKey) throw new MillpondError('EAUTH', 'a token but no server key: set MILLPOND_SERVER_KEY or serverKey (cluster.json "serverKey")');
  const auth = { token, serverKey };
  checkClientAuth(auth);
  return auth;
}

/** The keys a daemon derives from the cluster secret. */
export class ClusterAuth {
  readonly server: CurveKeyPair;
  readonly member: CurveKeyPair;
  /** HMAC key of proofs only cluster daemons can make (mgmtd.setClientTokens). */
  private readonly memberMac: Buffer;

  constructor(readonly secret: Buffer) {
    this.server = serverKeyPair(secret);
    this.member = memberKeyPair(secret);
    this.memberMac = derive(secret, 'curve/member');
  }

  static load(secretFile: string): ClusterAuth {
    return new ClusterAuth(loadClusterSecret(secretFile));
  }

  /** CURVE options of a daemon's client socket to another daemon. */
  get memberCurve(): ClientCurve {
    return { serverKey: this.server.publicKey, ...this.member };
  }

  /** CURVE options of a client socket presenting `token` to this cluster. */
  tokenCurve(token: string): ClientCurve {
    return clientCurve({ token, serverKey: this.server.publicKey });
  }

  memberProof(text: string): Buffer {
    return createHmac('sha256', this.memberMac).update(text).digest();
  }
}
