/**
 * Meta's side of authentication (design §10): which CURVE client keys its ZAP handler admits
 * (the keys of the tokens in the users table), and which user a request's token names.
 *
 * Contract: identify() accepts a token only when its secret derives from the cluster secret
 * AND its id is listed for an existing user with that uid (EAUTH otherwise). A verified token
 * is trusted for authLimits.tokenCacheMs without reading the users table again, so a user
 * removed on another meta server loses access within that time (at once on this one).
 */
import { keyPairOf, curveClientSecret } from '../auth/curve.js';
import type { ClusterAuth } from '../auth/credentials.js';
import { parseToken, tokenSecret, tokenValid } from '../auth/keys.js';
import { MillpondError } from '../errors.js';
import { authLimits } from '../limits.js';
import type { KvBackend } from '../kv/kv.js';
import { identityOf, listUsers, userOfToken, type Identity } from './users.js';

export interface TokenRef {
  uid: number;
  tokenId: string;
}

export class Authenticator {
  private readonly cache = new Map<string, { identity: Identity; untilMs: number }>();
  private admitted = new Set<string>();
  private tokenList: TokenRef[] = [];
  /** Public key per tokenId: an X25519 derivation is worth keeping. */
  private readonly keyOfToken = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners: Array<() => void> = [];

  constructor(private readonly kv: KvBackend, readonly cluster: ClusterAuth) {}

  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh().catch(() => {}), authLimits.usersRefreshMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Called after every refresh of the users table (meta then tells mgmtd). */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** The ZAP policy: cluster daemons and holders of listed tokens. */
  admit = (clientKey: string): boolean => clientKey === this.cluster.member.publicKey || this.admitted.has(clientKey);

  get tokens(): TokenRef[] {
    return this.tokenList;
  }

  /** Re-reads the users table: the admitted keys, and no cached identity outlives a change. */
  async refresh(): Promise<void> {
    const users = await this.kv.read((tx) => listUsers(tx));
    const admitted = new Set<string>();
    const list: TokenRef[] = [];
    const live = new Set<string>();
    for (const user of users) {
      for (const tokenId of user.tokenIds) {
        let key = this.keyOfToken.get(tokenId);
        if (!key) {
          key = keyPairOf(curveClientSecret(tokenSecret(this.cluster.secret, user.uid, tokenId))).publicKey;
          this.keyOfToken.set(tokenId, key);
        }
        admitted.add(key);
        live.add(tokenId);
        list.push({ uid: user.uid, tokenId });
      }
    }
    for (const id of this.keyOfToken.keys()) if (!live.has(id)) this.keyOfToken.delete(id);
    const changed = list.length !== this.tokenList.length || list.some((t, i) => t.tokenId !== this.tokenList[i]!.tokenId);
    this.admitted = admitted;
    this.tokenList = list;
    if (changed) this.cache.clear();
    for (const l of this.listeners) l();
  }

  /** The identity `token` names; EAUTH when it is not a valid token of an existing user. */
  async identify(token: unknown): Promise<Identity> {
    if (typeof token !== 'string') throw new MillpondError('EAUTH', 'the request carries no token');
    const now = Date.now();
    const hit = this.cache.get(token);
    if (hit && hit.untilMs > now) return hit.identity;
    const parsed = parseToken(token);
    if (!tokenValid(this.cluster.secret, parsed)) throw new MillpondError('EAUTH', `token ${parsed.tokenId} of uid ${parsed.uid} was not made by this cluster`);
    const user = await this.kv.read((tx) => userOfToken(tx, parsed.tokenId));
    if (!user || user.uid !== parsed.uid || !user.tokenIds.includes(parsed.tokenId)) {
      throw new MillpondError('EAUTH', `token ${parsed.tokenId} of uid ${parsed.uid} belongs to no user (removed?)`);
    }
    const identity = identityOf(user, parsed.tokenId);
    if (this.cache.size >= authLimits.tokenCacheEntriesMax) this.cache.clear();
    this.cache.set(token, { identity, untilMs: now + authLimits.tokenCacheMs });
    return identity;
  }
}
