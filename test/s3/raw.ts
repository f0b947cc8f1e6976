// Hand-made requests signed by the AWS SDK's own SigV4 signer (@smithy/signature-v4), for what
// the S3 client never sends: malformed XML, signed aws-chunked bodies, tampered signatures.
import { createHash, createHmac } from 'node:crypto';
import { request } from 'node:http';
import { HttpRequest } from '@smithy/core/protocols';
import { SignatureV4 } from '@smithy/signature-v4';

class NodeSha256 {
  private readonly h;
  constructor(secret?: string | Uint8Array) {
    this.h = secret ? createHmac('sha256', secret) : createHash('sha256');
  }
  update(data: string | Uint8Array): void { this.h.update(data); }
  async digest(): Promise<Uint8Array> { return new Uint8Array(this.h.digest()); }
}

export interface RawKey { accessKeyId: string; secretAccessKey: string }

export interface RawResponse { status: number; headers: Record<string, string | string[] | undefined>; body: string }

export function signer(key: RawKey): SignatureV4 {
  return new SignatureV4({ credentials: key, region: 'us-east-1', service: 's3', sha256: NodeSha256, uriEscapePath: false });
}

export function send(port: number, method: string, path: string, headers: Record<string, string>, body?: Buffer | string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      const pieces: Buffer[] = [];
      res.on('data', (d: Buffer) => pieces.push(d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(pieces).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A request signed as the SDK signs one (payload hashed unless `payloadHash` says otherwise). */
export async function signedRequest(port: number, key: RawKey, o: {
  method: string; path: string; query?: Record<string, string>; headers?: Record<string, string>; body?: Buffer | string; payloadHash?: string; date?: Date;
}): Promise<RawResponse> {
  const body = o.body ?? '';
  const hash = o.payloadHash ?? createHash('sha256').update(body).digest('hex');
  const req = new HttpRequest({
    method: o.method, protocol: 'http:', hostname: '127.0.0.1', port, path: o.path, query: o.query ?? {},
    headers: { host: `127.0.0.1:${port}`, 'x-amz-content-sha256': hash, ...o.headers },
  });
  const signed = await signer(key).sign(req, { signingDate: o.date });
  const qs = Object.entries(o.query ?? {}).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
  return send(port, o.method, qs ? `${o.path}?${qs}` : o.path, signed.headers as Record<string, string>, body);
}

/**
 * A PUT with a STREAMING-AWS4-HMAC-SHA256-PAYLOAD body (as the AWS SDKs for Java and Go send):
 * each chunk signed over the previous signature, per AWS's "Signature Calculations for the
 * Authorization Header: Transferring Payload in Multiple Chunks". `tamper` flips a byte of
 * chunk `tamper` after signing.
 */
export async function chunkedPut(port: number, key: RawKey, path: string, data: Buffer, chunkBytes: number, tamper?: number): Promise<RawResponse> {
  const date = new Date();
  const chunks: Buffer[] = [];
  for (let at = 0; at < data.length; at += chunkBytes) chunks.push(data.subarray(at, at + chunkBytes));
  chunks.push(Buffer.alloc(0));
  const sigLen = 64;
  const framed = chunks.reduce((n, c) => n + c.length.toString(16).length + ';chunk-signature='.length + sigLen + 4 + c.length, 0);
  const req = new HttpRequest({
    method: 'PUT', protocol: 'http:', hostname: '127.0.0.1', port, path, query: {},
    headers: {
      host: `127.0.0.1:${port}`, 'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', 'content-encoding': 'aws-chunked',
      'x-amz-decoded-content-length': String(data.length), 'content-length': String(framed),
    },
  });
  const s = signer(key);
  const signed = await s.sign(req, { signingDate: date });
  let previous = /Signature=([0-9a-f]{64})/.exec(String(signed.headers.authorization))![1]!;
  const amzDate = String(signed.headers['x-amz-date']);
  const scope = `${amzDate.slice(0, 8)}/us-east-1/s3/aws4_request`;
  const empty = createHash('sha256').digest('hex');
  const out: Buffer[] = [];
  for (const [i, c] of chunks.entries()) {
    const toSign = ['AWS4-HMAC-SHA256-PAYLOAD', amzDate, scope, previous, empty, createHash('sha256').update(c).digest('hex')].join('\n');
    // The SDK's signer HMACs a string with the signing key of the date, region and service.
    const sig = await s.sign(toSign, { signingDate: date });
    previous = sig;
    let bytes = c;
    if (tamper === i && bytes.length > 0) {
      bytes = Buffer.from(bytes);
      bytes[0] ^= 0xff;
    }
    out.push(Buffer.from(`${c.length.toString(16)};chunk-signature=${sig}\r\n`), bytes, Buffer.from('\r\n'));
  }
  return send(port, 'PUT', path, signed.headers as Record<string, string>, Buffer.concat(out));
}
