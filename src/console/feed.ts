/**
 * The console's live view: gathers the cluster view every consoleLimits.viewIntervalMs (one
 * gather at a time, each bounded by viewTimeoutMs) and pushes it to the server-sent-event
 * streams. At most consoleLimits.sseClientsMax streams; a stream whose unsent bytes exceed
 * sseBacklogBytesMax (a stalled browser) is ended rather than buffered without bound.
 */
import type { ServerResponse } from 'node:http';
import type { ClusterView } from '../cluster/cluster-view.js';
import { MillpondError } from '../errors.js';
import { consoleLimits } from '../limits.js';

/** What the feed holds: the last view, or why the last gather failed (with its code). */
export type FeedState = { view: ClusterView; error?: undefined } | { view?: ClusterView; error: { code: string; message: string } };

export class ViewFeed {
  private readonly clients = new Set<ServerResponse>();
  private last: FeedState | undefined;
  private timer: NodeJS.Timeout | undefined;
  private gathering: Promise<FeedState> | undefined;
  private stopped = false;

  constructor(private readonly gather: () => Promise<ClusterView>) {}

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      void this.refresh().finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, consoleLimits.viewIntervalMs);
      });
    };
    tick();
  }

  /** The newest state (gathers once if none yet). */
  async current(): Promise<FeedState> {
    return this.last ?? this.refresh();
  }

  get streams(): number {
    return this.clients.size;
  }

  /** Adds an SSE stream; EBUSY when sseClientsMax are open. Sends the last state at once. */
  subscribe(res: ServerResponse): void {
    if (this.clients.size >= consoleLimits.sseClientsMax) throw new MillpondError('EBUSY', `the console serves at most ${consoleLimits.sseClientsMax} live streams`);
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write(`retry: ${consoleLimits.viewIntervalMs * 2}\n\n`);
    this.clients.add(res);
    res.on('close', () => this.clients.delete(res));
    if (this.last) this.send(res, this.last);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const res of this.clients) res.end();
    this.clients.clear();
  }

  private refresh(): Promise<FeedState> {
    this.gathering ??= (async (): Promise<FeedState> => {
      let timeout: NodeJS.Timeout | undefined;
      try {
        const view = await Promise.race([
          this.gather(),
          new Promise<never>((_, reject) => {
            timeout = setTimeout(() => reject(new MillpondError('ETIMEDOUT', `no cluster view within ${consoleLimits.viewTimeoutMs} ms`)), consoleLimits.viewTimeoutMs);
          }),
        ]);
        return { view };
      } catch (err) {
        return { view: this.last?.view, error: { code: (err as MillpondError).code ?? 'EIO', message: (err as Error).message } };
      } finally {
        clearTimeout(timeout);
      }
    })().then((state) => {
      this.last = state;
      this.gathering = undefined;
      for (const res of this.clients) this.send(res, state);
      return state;
    });
    return this.gathering;
  }

  private send(res: ServerResponse, state: FeedState): void {
    if (res.writableLength > consoleLimits.sseBacklogBytesMax) {
      this.clients.delete(res);
      res.destroy();
      return;
    }
    res.write(`event: view\ndata: ${JSON.stringify(state)}\n\n`);
  }
}
