// A real embedded cluster (mgmtd, meta on SQLite, three storage daemons, chains of three) in
// this process, an S3 gateway on a free port, and S3 clients with keys from meta.
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { startEmbedded, type Embedded } from '../../src/cli/embedded.js';
import { connect, type FileSystem } from '../../src/fs/index.js';
import { MetaClient } from '../../src/meta/meta-client.js';
import type { AccessKey, User } from '../../src/protocol/meta-types.js';
import { S3Gateway, type GatewayOptions } from '../../src/s3/index.js';
import { tempDir } from '../support/tmp.js';

export interface S3Setup {
  dir: string;
  cluster: Embedded;
  gateway: S3Gateway;
  meta: MetaClient;
  admin: AccessKey;
  fs: FileSystem;
  client(key?: Pick<AccessKey, 'accessKeyId' | 'secretAccessKey'>, extra?: Partial<S3ClientConfig>): S3Client;
  keyFor(user: User): Promise<AccessKey>;
  stop(): Promise<void>;
}

export async function startS3(options: Partial<GatewayOptions> = {}): Promise<S3Setup> {
  const t = tempDir('s3');
  const cluster = await startEmbedded({
    dataDir: t.dir, mgmtdListen: 'tcp://127.0.0.1:0', metaListen: 'tcp://127.0.0.1:0', host: '127.0.0.1',
    transport: 'tcp', chainCount: 6, syncWrites: false,
  });
  const auth = { token: cluster.adminToken, serverKey: cluster.serverKey };
  const gateway = await S3Gateway.start({ meta: cluster.meta, mgmtd: [cluster.mgmtd], listen: '127.0.0.1:0', transport: 'tcp', auth, ...options });
  const meta = new MetaClient(cluster.meta, { auth });
  const admin = await meta.accessKeyAdd({ uid: 0, gid: 0 });
  const fs = await connect({ meta: cluster.meta, mgmtd: [cluster.mgmtd], transport: 'tcp', ...auth });
  const clients: S3Client[] = [];
  return {
    dir: t.dir, cluster, gateway, meta, admin, fs,
    client(key = admin, extra = {}) {
      const c = new S3Client({
        endpoint: gateway.endpoint, region: 'us-east-1', forcePathStyle: true,
        credentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey }, maxAttempts: 1, ...extra,
      });
      clients.push(c);
      return c;
    },
    keyFor: (user) => meta.accessKeyAdd(user),
    async stop() {
      for (const c of clients) c.destroy();
      fs.close();
      meta.disconnect();
      await gateway.close();
      await cluster.stop();
      t.cleanup();
    },
  };
}

/** Deterministic bytes of any length (a counter pattern with a seed), so mismatches show where. */
export function pattern(length: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= length; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out.writeUInt32LE(x, i);
  }
  for (let i = length - (length % 4); i < length; i++) out[i] = i & 0xff;
  return out;
}
