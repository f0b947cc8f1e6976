/**
 * A file writer and a reader through the filesystem client, for tests of operations that must
 * keep I/O going: files of assorted sizes written one after another (each kept once its write
 * returned), and random reads of them compared byte for byte meanwhile.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import type { FileSystem } from '../../../src/fs/index.js';

export class FileWriter {
  readonly files = new Map<string, Buffer>();
  readonly errors: string[] = [];
  reads = 0;
  private stopped = false;
  private loops: Promise<void>[] = [];

  /** `pauseMs` between writes and between reads: steady I/O that leaves the 2-core CI room for the operations. */
  constructor(private readonly fs: FileSystem, private readonly filesMax = 400, private readonly pauseMs = 20) {}

  start(): void {
    this.loops = [this.write(), this.read()];
  }

  /** Files written so far (the writer keeps the last `filesMax`, unlinking older ones). */
  written = 0;

  private async write(): Promise<void> {
    for (let i = 0; !this.stopped; i++) {
      const data = randomBytes(16 * 1024 * (1 + (i % 12)) + (i % 7) * 1000);
      try {
        await this.fs.writeFile(`/data/f${i}`, data);
        this.files.set(`/data/f${i}`, data);
        this.written++;
        await new Promise((resolve) => setTimeout(resolve, this.pauseMs));
        if (this.files.size > this.filesMax) {
          const oldest = this.files.keys().next().value!;
          this.files.delete(oldest);
          await this.fs.unlink(oldest);
        }
      } catch (err) {
        this.errors.push(`write f${i}: ${(err as Error).message}`);
        return;
      }
    }
  }

  private async read(): Promise<void> {
    while (!this.stopped) {
      const names = [...this.files.keys()];
      if (names.length === 0) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      const name = names[Math.floor(Math.random() * names.length)]!;
      const want = this.files.get(name)!;
      try {
        const got = await this.fs.readFile(name);
        if (!got.equals(want)) this.errors.push(`read ${name}: content differs`);
        this.reads++;
        await new Promise((resolve) => setTimeout(resolve, this.pauseMs));
      } catch (err) {
        // Unlinked by the writer meanwhile: not an error.
        if (this.files.has(name)) this.errors.push(`read ${name}: ${(err as Error).message}`);
      }
    }
  }

  async verifyAll(): Promise<void> {
    for (const [name, data] of this.files) expect((await this.fs.readFile(name)).equals(data), name).toBe(true);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }
}

