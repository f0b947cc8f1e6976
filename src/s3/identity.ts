/**
 * Who the gateway is to meta, in one place. An S3 request signed with an access key acts as
 * the key's owner: today's meta protocol takes the user {uid, gid, gids} a request names, so
 * actingAs() passes the owner's. When meta authenticates callers by token (design §10), the
 * gateway becomes a "proxy" user sending actAs: {uid, gid, gids}: that switch is this file.
 * The gateway's own calls (reading access keys, sweeping expired uploads, making /.s3) go as
 * the admin.
 */
import type { RoutingClient } from '../cluster/routing-client.js';
import { MillpondError } from '../errors.js';
import type { FileClient } from '../fs/file-data.js';
import { FileSystem } from '../fs/file-system.js';
import { s3Limits } from '../limits.js';
import type { MetaClient } from '../meta/meta-client.js';
import type { AccessKey, User } from '../protocol/meta-types.js';
import { S3Error } from './errors.js';

const GATEWAY_USER: User = { uid: 0, gid: 0 };

export class Identities {
  private readonly keys = new Map<string, { key: AccessKey; atMs: number }>();

  constructor(
    private readonly meta: MetaClient,
    private readonly routing: RoutingClient,
    private readonly files: FileClient,
    private readonly keyCacheMs: number = s3Limits.accessKeyCacheMs,
  ) {}

  /** The filesystem as the owner of an access key. */
  actingAs(owner: User): FileSystem {
    return new FileSystem(this.meta, this.meta.as(owner), this.routing, this.files);
  }

  /** The filesystem as the gateway itself. */
  gateway(): FileSystem {
    return this.actingAs(GATEWAY_USER);
  }

  /** The access key `id` with its secret (cached keyCacheMs); InvalidAccessKeyId if unknown. */
  async accessKey(id: string): Promise<AccessKey> {
    const cached = this.keys.get(id);
    if (cached && Date.now() - cached.atMs < this.keyCacheMs) return cached.key;
    let key: AccessKey;
    try {
      key = await this.meta.as(GATEWAY_USER).accessKeyGet(id);
    } catch (err) {
      if (err instanceof MillpondError && (err.code === 'ENOENT' || err.code === 'EINVAL')) {
        throw new S3Error('InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.', { AWSAccessKeyId: id.slice(0, 128) });
      }
      throw err;
    }
    if (this.keys.size >= s3Limits.accessKeyCacheEntriesMax) this.keys.clear();
    this.keys.set(id, { key, atMs: Date.now() });
    return key;
  }
}
