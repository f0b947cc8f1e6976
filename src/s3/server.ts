/**
 * The S3 gateway (design §12): S3's REST API over the filesystem, on Node's http server.
 *
 * Why node:http and no framework: the gateway's work is streaming bodies with backpressure
 * (which http gives directly on IncomingMessage/ServerResponse), its routing is S3's (method,
 * bucket, key and a few query subresources, not path patterns), and every response body is
 * either S3 XML or object bytes. A framework's router, body parsers and middleware would sit
 * in the data path and buy nothing here.
 *
 * A request: a request id; bucket and key from the path (path-style) or the Host header
 * (virtual-host style: <bucket>.<domain>); its SigV4 signature checked against the access
 * key's secret; then the operation, acting as the key's owner (identity.ts) so S3 requests
 * get the permissions that user has through the FileSystem API.
 */
import { meterS3Request, s3OperationName } from '../metrics/services.js';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RoutingClient } from '../cluster/routing-client.js';
import { FileClient } from '../fs/file-data.js';
import { s3Limits } from '../limits.js';
import { MetaClient } from '../meta/meta-client.js';
import { findClientAuth, type ClientAuth } from '../auth/credentials.js';
import type { TransportChoice } from '../native/binding.js';
import * as buckets from './bucket-ops.js';
import { fromMillpond, S3Error } from './errors.js';
import type { GatewayConfig, S3Request } from './http.js';
import { Identities } from './identity.js';
import * as multipart from './multipart-ops.js';
import { sweepUploads } from './multipart.js';
import * as objects from './object-ops.js';
import { GATEWAY_DIR, UPLOADS_DIR } from './paths.js';
import { decodeComponent, parseClaim, queryPairs, verifyRequest } from './sigv4.js';
import { errorDocument } from './xml.js';

export interface GatewayOptions {
  meta: string;
  mgmtd: string | string[];
  /** host:port to listen on; port 0 picks a free one. */
  listen: string;
  transport?: TransportChoice;
  region?: string;
  /** Hosts under which <bucket>.<domain> is virtual-host-style addressing (default: localhost). */
  domains?: string[];
  /** Uploads not completed within this are removed (default s3Limits.uploadExpiryMsDefault). */
  uploadExpiryMs?: number;
  sweepIntervalMs?: number;
  putObjectBytesMax?: number;
  partBytesMax?: number;
  /** How long an access key is cached: a removed key still works this long (default s3Limits.accessKeyCacheMs, at most it). */
  accessKeyCacheMs?: number;
  /**
   * The gateway's credentials (design §10): a proxy user's token (or the admin's), so meta
   * lets it act as each access key's owner. Without it, MILLPOND_TOKEN(_FILE) and
   * MILLPOND_SERVER_KEY.
   */
  auth?: ClientAuth;
  log?: (line: string) => void;
}

type Operation = (s: S3Request) => Promise<void>;

/** The operation for a request, from its method, bucket, key and subresources. */
function route(method: string, bucket: string, key: string, q: Map<string, string>, hasCopySource: boolean): Operation {
  if (bucket === '') {
    if (method === 'GET') return buckets.listBuckets;
    throw new S3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.');
  }
  const unsupported = ['acl', 'policy', 'cors', 'lifecycle', 'tagging', 'website', 'replication', 'encryption', 'logging', 'notification', 'object-lock', 'retention', 'legal-hold', 'torrent', 'versions', 'requestPayment', 'accelerate', 'analytics', 'inventory', 'metrics', 'ownershipControls', 'publicAccessBlock', 'restore', 'select', 'attributes'];
  if (unsupported.some((name) => q.has(name))) throw new S3Error('NotImplemented', 'A header or subresource you provided implies functionality that is not implemented');
  if (key === '') {
    if (q.has('versioning') && method === 'GET') return async (s) => buckets.getVersioning(s);
    switch (method) {
      case 'GET':
        if (q.has('location')) return buckets.getBucketLocation;
        if (q.has('uploads')) return multipart.listMultipartUploads;
        return buckets.listObjects;
      case 'HEAD': return buckets.headBucket;
      case 'PUT': return buckets.createBucket;
      case 'DELETE': return buckets.deleteBucket;
      case 'POST': if (q.has('delete')) return buckets.deleteObjects; break;
    }
    throw new S3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.');
  }
  switch (method) {
    case 'GET': return q.has('uploadId') ? multipart.listPartsHandler : (s) => objects.getObject(s, false);
    case 'HEAD': return (s) => objects.getObject(s, true);
    case 'PUT':
      if (q.has('uploadId') || q.has('partNumber')) return multipart.uploadPartHandler;
      return hasCopySource ? objects.copyObject : objects.putObject;
    case 'DELETE': return q.has('uploadId') ? multipart.abortMultipartUpload : objects.deleteObject;
    case 'POST':
      if (q.has('uploads')) return multipart.createMultipartUpload;
      if (q.has('uploadId')) return multipart.completeMultipartUpload;
      break;
  }
  throw new S3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.');
}

export class S3Gateway {
  private readonly server: Server;
  private sweeper: NodeJS.Timeout | undefined;
  /** The upload id the last sweep stopped after (undefined: the next starts from the first). */
  private sweepAfter: string | undefined;
  private readonly config: GatewayConfig;
  private readonly domains: string[];

  private constructor(
    private readonly options: GatewayOptions,
    private readonly meta: MetaClient,
    private readonly routing: RoutingClient,
    private readonly files: FileClient,
    private readonly identities: Identities,
  ) {
    this.config = {
      region: options.region ?? 'us-east-1',
      putObjectBytesMax: options.putObjectBytesMax ?? s3Limits.putObjectBytesMax,
      partBytesMax: options.partBytesMax ?? s3Limits.partBytesMax,
    };
    this.domains = (options.domains ?? ['localhost']).map((d) => d.toLowerCase());
    this.server = createServer({ headersTimeout: s3Limits.headersTimeoutMs, keepAliveTimeout: s3Limits.keepAliveTimeoutMs, requestTimeout: 0 }, (req, res) => {
      void this.handle(req, res);
    });
    this.server.maxConnections = s3Limits.connectionsMax;
  }

  /** Connects to the cluster, makes /.s3, listens, and starts the sweeper of expired uploads. */
  static async start(options: GatewayOptions): Promise<S3Gateway> {
    const auth = options.auth ?? findClientAuth();
    const meta = new MetaClient(options.meta, { auth });
    // The data plane authenticates the gateway's token; each user's chunk requests carry the
    // capability meta handed out when it opened the file as that user.
    const routing = new RoutingClient({ mgmtd: options.mgmtd, auth });
    let files: FileClient | undefined;
    try {
      await routing.refresh();
      // No native read-ahead: every read of the gateway (readTo, copies) keeps its own window
      // of chunk reads ahead of the socket, into buffers it reuses; a second window below it
      // would read each chunk into a prefetch buffer and copy it again.
      files = new FileClient({ mgmtd: options.mgmtd, auth, transport: options.transport, io: { readAheadBytes: 0 } });
      const cacheMs = options.accessKeyCacheMs ?? s3Limits.accessKeyCacheMs;
      if (!Number.isSafeInteger(cacheMs) || cacheMs < 0 || cacheMs > s3Limits.accessKeyCacheMs) throw new RangeError(`accessKeyCacheMs must be in [0, ${s3Limits.accessKeyCacheMs}]`);
      const identities = new Identities(meta, routing, files, cacheMs);
      const fs = identities.gateway();
      await fs.mkdir(GATEWAY_DIR, { recursive: true, mode: 0o755 });
      // Every user's uploads start here (as /tmp: anyone may create, files are theirs).
      await fs.mkdir(UPLOADS_DIR, { recursive: true, mode: 0o777 });
      const gateway = new S3Gateway(options, meta, routing, files, identities);
      const at = options.listen.lastIndexOf(':');
      const host = options.listen.slice(0, at).replace(/^\[|\]$/g, '');
      const port = Number(options.listen.slice(at + 1));
      if (at < 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError(`listen must be host:port, not ${options.listen}`);
      await new Promise<void>((resolve, reject) => {
        gateway.server.once('error', reject);
        gateway.server.listen(port, host, () => { gateway.server.off('error', reject); resolve(); });
      });
      const interval = options.sweepIntervalMs ?? s3Limits.sweepIntervalMs;
      gateway.sweeper = setInterval(() => void gateway.sweep().catch(() => {}), interval);
      gateway.sweeper.unref();
      return gateway;
    } catch (err) {
      files?.close();
      routing.close();
      meta.disconnect();
      throw err;
    }
  }

  /** http://host:port */
  get endpoint(): string {
    const a = this.server.address() as AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `http://${host}:${a.port}`;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /**
   * Removes multipart uploads past their expiry (with their hidden data files) among the next
   * s3Limits.uploadsListedMax uploads, going on where the last sweep stopped; returns how many.
   */
  async sweep(nowMs = Date.now()): Promise<number> {
    const { removed, next } = await sweepUploads(this.identities.gateway(), this.options.uploadExpiryMs ?? s3Limits.uploadExpiryMsDefault, nowMs, this.sweepAfter);
    this.sweepAfter = next;
    return removed;
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    this.files.close();
    this.routing.close();
    this.meta.disconnect();
  }

  /** bucket and raw key path from the Host header (virtual-host style) or the path. */
  private address(req: IncomingMessage, rawPath: string): { bucket: string; key: string } {
    const host = (req.headers.host ?? '').toLowerCase().replace(/:\d+$/, '');
    for (const domain of this.domains) {
      if (host.endsWith(`.${domain}`)) {
        return { bucket: host.slice(0, -domain.length - 1), key: decodeComponent(rawPath.slice(1)) };
      }
    }
    const path = rawPath.slice(1);
    const slash = path.indexOf('/');
    if (slash < 0) return { bucket: decodeComponent(path), key: '' };
    return { bucket: decodeComponent(path.slice(0, slash)), key: decodeComponent(path.slice(slash + 1)) };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomBytes(8).toString('hex').toUpperCase();
    res.setHeader('x-amz-request-id', requestId);
    res.setHeader('x-amz-id-2', requestId);
    res.setHeader('Server', 'millpond');
    let opName = 'unrouted';
    meterS3Request(req, res, () => opName);
    const url = req.url ?? '/';
    const qAt = url.indexOf('?');
    const rawPath = qAt < 0 ? url : url.slice(0, qAt);
    let bucket = '';
    let key = '';
    try {
      const pairs = queryPairs(qAt < 0 ? '' : url.slice(qAt + 1));
      ({ bucket, key } = this.address(req, rawPath));
      const claim = parseClaim(req, pairs, Date.now());
      if (!claim) throw new S3Error('AccessDenied', 'Anonymous access is not allowed: sign requests with an access key (millpond user key add)');
      const accessKey = await this.identities.accessKey(claim.accessKeyId);
      const signature = verifyRequest(req, rawPath, pairs, claim, accessKey.secretAccessKey);
      const user = { uid: accessKey.uid, gid: accessKey.gid, ...(accessKey.gids ? { gids: accessKey.gids } : {}) };
      const query = new Map(pairs);
      opName = s3OperationName(req.method ?? 'GET', bucket, key, query);
      const operation = route(req.method ?? 'GET', bucket, key, query, req.headers['x-amz-copy-source'] !== undefined);
      await operation({ req, res, requestId, bucket, key, query, user, fs: this.identities.actingAs(user), signature, config: this.config });
    } catch (err) {
      this.fail(req, res, requestId, bucket, key, err);
    }
  }

  private fail(req: IncomingMessage, res: ServerResponse, requestId: string, bucket: string, key: string, err: unknown): void {
    const e = err instanceof S3Error ? err : fromMillpond(err);
    if (e.status >= 500) this.options.log?.(`s3: ${req.method} ${req.url}: ${err instanceof Error ? err.stack : String(err)}`);
    if (res.headersSent) {
      res.destroy(); // mid-body: the client sees a short read, never a wrong byte
      return;
    }
    const resource = bucket ? `/${bucket}${key ? `/${key}` : ''}` : '/';
    const headers: Record<string, string | number> = {};
    if (e.code === 'InvalidRange' && e.extra.ActualObjectSize) headers['Content-Range'] = `bytes */${e.extra.ActualObjectSize}`;
    if (!req.complete) headers.Connection = 'close'; // the body was not read: this connection cannot carry another request
    if (req.method === 'HEAD' || e.status === 304) {
      res.writeHead(e.status, { ...headers, 'Content-Length': 0 });
      res.end();
    } else {
      const body = errorDocument(e.code, e.message, requestId, { ...e.extra, Resource: resource, ...(bucket ? { BucketName: bucket } : {}) });
      res.writeHead(e.status, { ...headers, 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    }
    if (!req.complete) {
      req.resume(); // let the client finish sending into the void, then the socket closes
    }
  }
}

