/**
 * The TS client of the meta service. Mutations carry this client's random clientId, and a
 * timed-out request is resent under the same requestId, so a mutation whose reply was lost
 * (server killed, network cut) is applied exactly once. While it has write sessions open, it
 * says it lives every sessionHeartbeatMs; the meta service ends the sessions of clients that
 * stop (MetaService.pruneSessions). A heartbeat names the open sessions and learns which the
 * service ended (this client was quiet: paused, or cut off from meta) and the service's session
 * timeout; checkSession() lets a writer refuse to acknowledge a write under an ended session.
 * Given several meta servers, it fails over between them (FailoverRpc).
 */
import { randomBytes } from 'node:crypto';
import { clientCurve, type ClientAuth } from '../auth/credentials.js';
import { MillpondError } from '../errors.js';
import { metaLimits } from '../limits.js';
import { CLIENT_ID_BYTES } from '../protocol/meta.js';
import { FailoverRpc } from '../protocol/failover-rpc.js';
import type { RpcClientOptions } from '../protocol/rpc-client.js';
import type { Params } from '../protocol/envelope.js';
import type { UserRecord } from './users.js';
import type { AccessKey, DirLayout, Garbage, Inode, ObjectAttrs, OpenFlags, OpenResult, ReaddirResult, User } from '../protocol/meta-types.js';

export interface MetaClientOptions extends Omit<RpcClientOptions, 'curve'> {
  /**
   * The token (and the cluster's server key) this client presents: meta checks every request as
   * the token's user. Without it the client speaks to an unauthenticated server only.
   */
  auth?: ClientAuth;
  /**
   * With auth: the identity a proxy user (or the admin) acts for (`actAs`); others get EACCES.
   * Without auth: the identity sent (default root).
   */
  user?: User;
  /** How often to heartbeat while sessions are open (default metaLimits.sessionHeartbeatMs). */
  sessionHeartbeatMs?: number;
}

export class MetaClient {
  readonly clientId = randomBytes(CLIENT_ID_BYTES);
  private readonly rpc: FailoverRpc;
  private readonly user: User | undefined;
  private readonly token: string | undefined;
  private readonly heartbeatMs: number;
  /** Open write sessions by id: their inode. */
  private readonly sessions = new Map<string, bigint>();
  /** Sessions the service said it ended. */
  private readonly ended = new Set<string>();
  /**
   * Until this time (local clock) every open session not in `ended` is known to live: the
   * send time of the last heartbeat (or open) that confirmed them plus half the service's
   * session timeout (the other half absorbs clock rate differences and the reply's travel).
   */
  private leaseUntilMs = 0;
  private heartbeat: NodeJS.Timeout | undefined;

  /**
   * `endpoints`: one meta server, or several over one database ("tcp://a:1,tcp://b:2" or a
   * list): a call that gets no reply moves on to the next (FailoverRpc).
   */
  constructor(endpoints: string | string[], options: MetaClientOptions = {}) {
    this.rpc = new FailoverRpc(endpoints, { ...options, curve: options.auth ? clientCurve(options.auth) : undefined });
    this.token = options.auth?.token;
    this.user = options.user ?? (this.token ? undefined : { uid: 0, gid: 0 });
    this.heartbeatMs = options.sessionHeartbeatMs ?? metaLimits.sessionHeartbeatMs;
    if (!Number.isSafeInteger(this.heartbeatMs) || this.heartbeatMs < 1 || this.heartbeatMs > 3_600_000) {
      throw new RangeError('sessionHeartbeatMs must be an integer in [1, 3600000]');
    }
  }

  /** The same connection acting as another user (a proxy user's or the admin's token). */
  as(user: User | undefined): MetaClientView {
    return new MetaClientView(this, user);
  }

  private get view(): MetaClientView {
    return new MetaClientView(this, this.user);
  }

  stat(path: string) { return this.view.stat(path); }
  readdir(path: string, options?: { after?: string; limit?: number; plus?: boolean }) { return this.view.readdir(path, options); }
  mkdir(path: string, options?: { mode?: number; recursive?: boolean }) { return this.view.mkdir(path, options); }
  open(path: string, options?: { flags?: OpenFlags; mode?: number }) { return this.view.open(path, options); }
  close(inode: bigint, session: string, options?: { length?: number; object?: ObjectAttrs }) { return this.view.close(inode, session, options); }
  unlink(path: string) { return this.view.unlink(path); }
  rmdir(path: string) { return this.view.rmdir(path); }
  /** `noReplace`: EEXIST when `to` exists, atomically with the move (RENAME_NOREPLACE). */
  rename(from: string, to: string, options?: { noReplace?: boolean }) { return this.view.rename(from, to, options); }
  link(existing: string, to: string) { return this.view.link(existing, to); }
  symlink(target: string, path: string) { return this.view.symlink(target, path); }
  readlink(path: string) { return this.view.readlink(path); }
  truncate(path: string, length: number) { return this.view.truncate(path, length); }
  setattr(path: string, attrs: { mode?: number; uid?: number; gid?: number; mtimeMs?: number }) { return this.view.setattr(path, attrs); }
  setLayout(path: string, layout: Partial<DirLayout>) { return this.view.setLayout(path, layout); }
  takeGarbage(limit: number) { return this.view.takeGarbage(limit); }
  ackGarbage(inodes: bigint[]) { return this.view.ackGarbage(inodes); }
  accessKeyAdd(owner: User) { return this.view.accessKeyAdd(owner); }
  accessKeyGet(accessKeyId: string) { return this.view.accessKeyGet(accessKeyId); }
  accessKeyList(uid?: number) { return this.view.accessKeyList(uid); }
  accessKeyRemove(accessKeyId: string) { return this.view.accessKeyRemove(accessKeyId); }

  /** Who the server says this client is (its token's user). */
  whoami() { return this.rpc.call('meta.whoami', this.identify(undefined, {})) as Promise<{ name: string; uid: number; gid: number; gids: number[]; admin: boolean; proxy: boolean }>; }
  /** Admin: adds a user and returns its first token (shown once). */
  userAdd(user: { name: string; uid: number; gid: number; groups?: number[]; proxy?: boolean }) {
    return this.rpc.call('meta.userAdd', this.identify(undefined, { ...user }), { retry: false }) as Promise<{ user: UserRecord; token: string }>;
  }
  userList() { return this.rpc.call('meta.userList', this.identify(undefined, {})) as Promise<UserRecord[]>; }
  async userRemove(name: string) { await this.rpc.call('meta.userRemove', this.identify(undefined, { name })); }
  userToken(name: string) { return this.rpc.call('meta.userToken', this.identify(undefined, { name }), { retry: false }) as Promise<{ token: string }>; }

  /** The request's identity params: the token (and actAs), or the trusted user without auth. */
  identify(user: User | undefined, params: Params): Params {
    if (this.token) return user ? { token: this.token, actAs: user, ...params } : { token: this.token, ...params };
    return { user: user ?? { uid: 0, gid: 0 }, ...params };
  }

  /** REQUIRES: only for MetaClientView. */
  call(method: string, params: Params): Promise<unknown> {
    return this.rpc.call(method, params);
  }

  /** REQUIRES: only for MetaClientView: a write session opened at `sentMs` (before the request went). */
  addSession(inode: bigint, session: string, sentMs: number, sessionTimeoutMs: number | undefined): void {
    // The open confirms only its own session: with others open (maybe ended while this client
    // was quiet), the lease waits for a heartbeat that names them all.
    const alone = [...this.sessions.keys()].every((s) => this.ended.has(s));
    this.sessions.set(session, inode);
    if (alone && sessionTimeoutMs !== undefined) this.leaseUntilMs = Math.max(this.leaseUntilMs, sentMs + Math.floor(sessionTimeoutMs / 2));
    if (!this.heartbeat) {
      this.heartbeat = setInterval(() => void this.beat().catch(() => {}), this.heartbeatMs); // the next beat retries
      this.heartbeat.unref();
    }
  }

  /** REQUIRES: only for MetaClientView: a write session was closed (or found ended). */
  removeSession(session: string): void {
    this.sessions.delete(session);
    this.ended.delete(session);
    if (this.sessions.size === 0) {
      clearInterval(this.heartbeat);
      this.heartbeat = undefined;
    }
  }

  /**
   * Resolves when `session` is known to live (a recent heartbeat confirmed it, or one sent now
   * does); rejects with EBADF when the service ended it. A writer calls this before
   * acknowledging a write: bytes written under an ended session are never published.
   */
  async checkSession(session: string): Promise<void> {
    if (!this.ended.has(session) && Date.now() >= this.leaseUntilMs) await this.beat();
    if (this.ended.has(session)) {
      throw new MillpondError('EBADF', `write session ${session} was ended by the meta service (this client was quiet past its session timeout)`);
    }
  }

  /** One heartbeat naming the open sessions (at most metaLimits.heartbeatSessionsMax per call). */
  private async beat(): Promise<void> {
    const open = [...this.sessions].filter(([s]) => !this.ended.has(s));
    const sentMs = Date.now(); // of the first batch: the lease holds from the oldest confirmation
    for (let i = 0; i === 0 || i < open.length; i += metaLimits.heartbeatSessionsMax) {
      const batch = open.slice(i, i + metaLimits.heartbeatSessionsMax);
      const reply = (await this.rpc.call('meta.heartbeat', {
        ...this.identify(this.user, {}), clientId: this.clientId, sessions: batch.map(([session, inode]) => ({ inode, session })),
      })) as { ended?: string[]; sessionTimeoutMs?: number } | null;
      for (const s of reply?.ended ?? []) if (this.sessions.has(s)) this.ended.add(s);
      // A service without session checks (older) replies nil: no lease, so every check asks.
      if (reply?.sessionTimeoutMs !== undefined && i + batch.length >= open.length) {
        this.leaseUntilMs = Math.max(this.leaseUntilMs, sentMs + Math.floor(reply.sessionTimeoutMs / 2));
      }
    }
  }

  disconnect(): void {
    clearInterval(this.heartbeat);
    this.rpc.close();
  }
}


export class MetaClientView {
  constructor(private readonly client: MetaClient, private readonly user: User | undefined) {}

  private read(method: string, params: Params) {
    return this.client.call(method, this.client.identify(this.user, params));
  }

  private mutate(method: string, params: Params) {
    return this.client.call(method, this.client.identify(this.user, { clientId: this.client.clientId, ...params }));
  }

  async stat(path: string) { return (await this.read('meta.stat', { path })) as Inode; }
  async readdir(path: string, options: { after?: string; limit?: number; plus?: boolean } = {}) { return (await this.read('meta.readdir', { path, ...options })) as ReaddirResult; }
  async mkdir(path: string, options: { mode?: number; recursive?: boolean } = {}) { return (await this.mutate('meta.mkdir', { path, ...options })) as Inode; }
  async open(path: string, options: { flags?: OpenFlags; mode?: number } = {}) {
    const sentMs = Date.now();
    const result = (await this.mutate('meta.open', { path, ...options })) as OpenResult & { session?: string | null; sessionTimeoutMs?: number | null };
    if (result.session === null || result.session === undefined) delete result.session;
    else this.client.addSession(result.inode.id, result.session, sentMs, result.sessionTimeoutMs ?? undefined);
    const capability = (result as { capability?: Uint8Array | null }).capability;
    if (capability === null || capability === undefined) delete result.capability;
    else result.capability = Buffer.from(capability);
    return result as OpenResult;
  }
  async close(inode: bigint, session: string, options: { length?: number; object?: ObjectAttrs } = {}) {
    try {
      return (await this.mutate('meta.close', { inode, session, ...options })) as Inode;
    } finally {
      this.client.removeSession(session);
    }
  }
  /** Rejects with EBADF when the service ended `session` (see MetaClient.checkSession). */
  checkSession(session: string): Promise<void> {
    return this.client.checkSession(session);
  }
  async unlink(path: string) { await this.mutate('meta.unlink', { path }); }
  async rmdir(path: string) { await this.mutate('meta.rmdir', { path }); }
  async rename(from: string, to: string, options: { noReplace?: boolean } = {}) { await this.mutate('meta.rename', { from, to, ...(options.noReplace ? { noReplace: true } : {}) }); }
  async link(existing: string, to: string) { return (await this.mutate('meta.link', { existing, to })) as Inode; }
  async symlink(target: string, path: string) { return (await this.mutate('meta.symlink', { target, path })) as Inode; }
  async readlink(path: string) { return ((await this.read('meta.readlink', { path })) as { target: string }).target; }
  async truncate(path: string, length: number) { return (await this.mutate('meta.truncate', { path, length })) as Inode; }
  async setattr(path: string, attrs: { mode?: number; uid?: number; gid?: number; mtimeMs?: number }) { return (await this.mutate('meta.setattr', { path, ...attrs })) as Inode; }
  async setLayout(path: string, layout: Partial<DirLayout>) { return (await this.mutate('meta.setLayout', { path, layout })) as Inode; }
  async takeGarbage(limit: number) { return (await this.read('meta.takeGarbage', { limit })) as Garbage[]; }
  async ackGarbage(inodes: bigint[]) { await this.mutate('meta.ackGarbage', { inodes }); }
  async accessKeyAdd(owner: User) { return (await this.read('meta.accessKeyAdd', { owner })) as AccessKey; }
  async accessKeyGet(accessKeyId: string) { return (await this.read('meta.accessKeyGet', { accessKeyId })) as AccessKey; }
  async accessKeyList(uid?: number) { return (await this.read('meta.accessKeyList', uid === undefined ? {} : { uid })) as Omit<AccessKey, 'secretAccessKey'>[]; }
  async accessKeyRemove(accessKeyId: string) { await this.read('meta.accessKeyRemove', { accessKeyId }); }
}
