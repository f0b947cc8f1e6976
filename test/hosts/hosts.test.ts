/**
 * The test hosts themselves: separate network stacks that reach each other over the bridge,
 * and the faults tests inflict on them (kill, pause, partition by link or by silent drop).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostsAvailable, TestHosts } from './support/hosts.js';

// A TCP echo server on port 7000 of a host, and a one-shot client with a deadline; both print
// one line, so the test reads what happened on the other network stack.
const SERVER = `require('net').createServer((s) => s.pipe(s)).listen(7000, () => console.log('up'))`;
const CLIENT = `const s = require('net').connect(7000, process.argv[1]);
s.setTimeout(1500, () => { console.log('timeout'); process.exit(0); });
s.on('error', (e) => { console.log(e.code); process.exit(0); });
s.on('connect', () => s.write('ping')); s.on('data', (d) => { console.log('echo ' + d); process.exit(0); });`;

describe.skipIf(!hostsAvailable())('test hosts', () => {
  let hosts: TestHosts;
  beforeAll(() => {
    hosts = TestHosts.create(3, 201);
  });
  afterAll(async () => {
    await hosts?.destroy();
  });

  async function probe(from: number, to: string): Promise<string> {
    const p = hosts.spawn(from, process.execPath, ['-e', CLIENT, to]);
    const [line] = await p.waitFor(/^(echo ping|timeout|E[A-Z]+)$/, 10_000);
    return line;
  }

  it('gives each host its own address and loopback, and joins them on the bridge', async () => {
    const server = hosts.spawn(1, process.execPath, ['-e', SERVER]);
    await server.waitFor(/^up$/);
    expect(await probe(2, hosts.ip(1))).toBe('echo ping');
    // Host 2's loopback is its own: nothing listens on 7000 there.
    expect(await probe(2, '127.0.0.1')).toBe('ECONNREFUSED');
  });

  it('partitions a host silently (drop) or by its link (down), and heals it', async () => {
    hosts.partition(1, 'drop');
    expect(await probe(2, hosts.ip(1))).toBe('timeout');
    hosts.heal(1);
    expect(await probe(2, hosts.ip(1))).toBe('echo ping');
    hosts.partition(1, 'down');
    expect(await probe(3, hosts.ip(1))).not.toBe('echo ping');
    hosts.heal(1);
    expect(await probe(3, hosts.ip(1))).toBe('echo ping');
  });

  it('pauses and resumes a host, and kills it', async () => {
    hosts.pause(1);
    expect(await probe(2, hosts.ip(1))).toBe('timeout');
    hosts.resume(1);
    expect(await probe(2, hosts.ip(1))).toBe('echo ping');
    await hosts.kill(1);
    expect(await probe(2, hosts.ip(1))).toBe('ECONNREFUSED');
  });
});
