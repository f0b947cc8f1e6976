import { Socket, connect } from 'node:net';
import { once } from 'node:events';

/** A raw TCP connection that collects everything it receives. */
export class RawConnection {
  private received = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (d) => {
      this.received = Buffer.concat([this.received, d]);
      this.waiters.splice(0).forEach((w) => w());
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiters.splice(0).forEach((w) => w());
    });
    socket.on('error', () => {});
  }

  static async open(address: string): Promise<RawConnection> {
    const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
    const socket = connect(port, host);
    await once(socket, 'connect');
    return new RawConnection(socket);
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Resolves with the next `n` bytes (or fewer if the peer closed), within timeoutMs. */
  async take(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length < n && !this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`received ${this.received.length} of ${n} bytes within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
    const out = this.received.subarray(0, n);
    this.received = this.received.subarray(out.length);
    return out;
  }

  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
