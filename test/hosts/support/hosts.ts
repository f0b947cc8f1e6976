/**
 * Test hosts for vitest: a set of network namespaces on a bridge (scripts/hosts.sh), processes
 * started inside them, and the faults a host can suffer: killed, paused, partitioned. A set is
 * removed by `destroy()`, and also when the test process exits or at the next run's sweep, so a
 * failed test leaves nothing behind.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { childLines, type ChildLines } from '../../support/lines.js';

const script = fileURLToPath(new URL('../../../scripts/hosts.sh', import.meta.url));

function hostsSh(...args: string[]): string {
  return execFileSync('bash', [script, ...args], { encoding: 'utf8', env: { ...process.env, HOSTS_OWNER_PID: String(process.pid) } });
}

/** True where network namespaces can be made (root, iproute2): the hosts suites need it. */
export function hostsAvailable(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface HostProc extends ChildLines {
  host: number;
  child: ChildProcess;
  exited: Promise<unknown>;
}

const live = new Set<TestHosts>();
process.once('exit', () => {
  for (const hosts of live) hosts.destroySync();
});

export class TestHosts {
  private readonly procs: HostProc[] = [];

  private constructor(readonly prefix: string, readonly ips: string[], readonly gatewayIp: string) {}

  /**
   * `count` hosts h1..hN (ips[i-1] is host i's address). `subnet` picks 10.<subnet>.0.0/24;
   * suites that may run at the same time use different subnets.
   */
  static create(count: number, subnet: number): TestHosts {
    hostsSh('sweep');
    const prefix = `t${subnet}${(process.pid % 1000).toString(36)}`.slice(0, 6);
    hostsSh('down', prefix);
    const out = hostsSh('up', prefix, String(count), String(subnet));
    const ips = out.trim().split('\n').map((line) => line.split(' ')[1]!);
    const hosts = new TestHosts(prefix, ips, `10.${subnet}.0.254`);
    live.add(hosts);
    return hosts;
  }

  ip(host: number): string {
    const ip = this.ips[host - 1];
    if (ip === undefined) throw new RangeError(`no host ${host}`);
    return ip;
  }

  /** Starts `command args` inside `host`; stdout is kept line by line for waitFor. */
  spawn(host: number, command: string, args: string[], env: NodeJS.ProcessEnv = {}): HostProc {
    this.ip(host);
    const child = spawn('ip', ['netns', 'exec', `${this.prefix}-h${host}`, command, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    const exited = once(child, 'exit');
    const proc: HostProc = { host, child, exited, ...childLines(child, `[h${host}] `) };
    this.procs.push(proc);
    return proc;
  }

  /** The host dies: every process in it gets SIGKILL. Resolves when they have exited. */
  async kill(host: number): Promise<void> {
    hostsSh('kill', this.prefix, String(host));
    await Promise.all(this.procs.filter((p) => p.host === host).map((p) => p.exited));
  }

  pause(host: number): void {
    hostsSh('pause', this.prefix, String(host));
  }

  resume(host: number): void {
    hostsSh('resume', this.prefix, String(host));
  }

  /** 'down': the link goes down; 'drop': every packet is dropped silently (gray failure). */
  partition(host: number, mode: 'down' | 'drop'): void {
    hostsSh('partition', this.prefix, String(host), mode);
  }

  heal(host: number): void {
    hostsSh('heal', this.prefix, String(host));
  }

  async destroy(): Promise<void> {
    this.destroySync();
    await Promise.all(this.procs.map((p) => p.exited));
  }

  destroySync(): void {
    if (!live.delete(this)) return;
    hostsSh('down', this.prefix);
  }
}
