/**
 * The cluster in one process: the main thread starts the leader worker and
 * N follower workers, gives each follower a MessageChannel to the leader,
 * and supervises them (topology of issue 2 §3).
 *
 * Start order: leader listens first; then each follower is linked (the
 * leader's end of its channel is handed over with a control call), started,
 * and listens once it holds the leader's snapshot. `start()` resolves when
 * every node listens.
 *
 * Threading: main thread. Events from nodes (`NodeEvent`) are delivered on
 * the main thread, per node in order.
 */
import { existsSync } from 'node:fs';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { transfer } from './comlink.js';
import type { NodeControl, NodeEvent, NodeWorkerData } from './control.js';
import { MAX_NODE_INDEX, newIdCounter } from './node/client-ids.js';
import type { LockRow, NodeStats } from './node/node.js';
import { WorkerHandle, type WorkerExit } from './worker-handle.js';

export interface ClusterOptions {
  followers: number;
  /** Base port [LP-1]: leader here, follower i at base+i; 0 picks free ports. */
  port: number;
  host: string;
  /** Log every request and reply (default true). */
  logRequests?: boolean;
  /** Node events (log batches), and supervisor notices as node `cluster`. */
  onEvent?: (ev: NodeEvent) => void;
  /** Deadline for each control call, ms. */
  callTimeoutMs?: number;
}

export interface NodeInfo {
  name: string;
  role: 'leader' | 'follower';
  index: number;
  host: string;
  port: number;
}

/** A node name per LP-3. */
export const nodeName = (index: number): string => (index === 0 ? 'leader' : `follower-${index}`);

/** The compiled worker entry; from sources (tests) use the build next to them. */
export function workerFile(): URL {
  const here = import.meta.url;
  const url = here.endsWith('.ts') ? new URL('../dist/workers/node-worker.js', here) : new URL('../workers/node-worker.js', here);
  if (!existsSync(url)) throw new Error(`worker entry ${url.pathname} is missing; run \`npm run build\` first`);
  return url;
}

interface Member {
  info: NodeInfo;
  handle: WorkerHandle<NodeControl>;
  events: MessagePort;
}

export class Cluster {
  private readonly members: Member[] = [];
  private closing = false;

  private constructor(private readonly opts: Required<ClusterOptions>) {}

  static async start(options: ClusterOptions): Promise<Cluster> {
    if (!Number.isInteger(options.followers) || options.followers < 0 || options.followers > MAX_NODE_INDEX) {
      throw new RangeError(`followers must be a whole number from 0 to ${MAX_NODE_INDEX}, got ${options.followers}`);
    }
    if (!Number.isInteger(options.port) || options.port < 0 || options.port + options.followers > 65535) {
      throw new RangeError(`port must leave room for ${options.followers + 1} ports below 65536, got ${options.port}`);
    }
    const cluster = new Cluster({ logRequests: true, onEvent: () => {}, callTimeoutMs: 10_000, ...options });
    try {
      const leader = await cluster.startNode(0, undefined);
      for (let i = 1; i <= options.followers; i++) {
        const { port1, port2 } = new MessageChannel();
        await leader.handle.call('link follower', (r) => r.attachFollower(transfer(port1, [port1])), cluster.opts.callTimeoutMs);
        await cluster.startNode(i, port2);
      }
    } catch (err) {
      await cluster.close();
      throw err;
    }
    return cluster;
  }

  private async startNode(index: number, link: MessagePort | undefined): Promise<Member> {
    const name = nodeName(index);
    const { port1: events, port2: eventsRemote } = new MessageChannel();
    events.on('message', (ev: NodeEvent) => this.opts.onEvent(ev));
    const port = this.opts.port === 0 ? 0 : this.opts.port + index;
    const data: NodeWorkerData = {
      role: index === 0 ? 'leader' : 'follower',
      name,
      index,
      host: this.opts.host,
      port,
      idCounter: newIdCounter(),
      events: eventsRemote,
      logRequests: this.opts.logRequests,
      ...(link === undefined ? {} : { link }),
    };
    const transferList = link === undefined ? [eventsRemote] : [eventsRemote, link];
    const handle = new WorkerHandle<NodeControl>(name, workerFile(), { workerData: data, transferList }, (exit) => this.onExit(name, exit));
    const member: Member = { info: { name, role: data.role, index, host: this.opts.host, port }, handle, events };
    this.members.push(member);
    this.opts.onEvent({ type: 'state', node: name, state: 'starting', address: null });
    const bound = await handle.call('start', (r) => r.start(), this.opts.callTimeoutMs);
    member.info.port = bound.port;
    this.opts.onEvent({ type: 'state', node: name, state: 'up', address: `${this.opts.host}:${bound.port}` });
    return member;
  }

  /** Start one more follower, linked to the leader, on the next port (or a free one). */
  async addFollower(): Promise<NodeInfo> {
    const leader = this.members[0];
    if (leader === undefined || leader.handle.exit !== null) throw new Error('no leader to link a new follower to');
    const index = Math.max(...this.members.map((m) => m.info.index)) + 1;
    if (index > MAX_NODE_INDEX) throw new RangeError(`at most ${MAX_NODE_INDEX} followers`);
    const { port1, port2 } = new MessageChannel();
    await leader.handle.call('link follower', (r) => r.attachFollower(transfer(port1, [port1])), this.opts.callTimeoutMs);
    const m = await this.startNode(index, port2);
    return { ...m.info };
  }

  private onExit(name: string, exit: WorkerExit): void {
    if (this.closing) return;
    this.opts.onEvent({ type: 'state', node: name, state: 'down', address: null });
    const why = exit.error === null ? `exit code ${exit.code}` : exit.error.message;
    this.opts.onEvent({ type: 'log', node: 'cluster', lines: [{ t: Date.now(), kind: 'error', text: `${name} stopped unexpectedly: ${why}` }] });
  }

  get nodes(): NodeInfo[] {
    return this.members.map((m) => ({ ...m.info }));
  }

  /** `ready leader=HOST:PORT follower-1=HOST:PORT …` */
  readyLine(): string {
    return `ready ${this.members.map((m) => `${m.info.name}=${m.info.host}:${m.info.port}`).join(' ')}`;
  }

  private member(name: string): Member {
    const m = this.members.find((x) => x.info.name === name);
    if (m === undefined) throw new Error(`no node named ${name}`);
    return m;
  }

  stats(name: string): Promise<NodeStats> {
    return this.member(name).handle.call('stats', (r) => r.stats(), this.opts.callTimeoutMs);
  }

  locks(name: string, limit?: number): Promise<LockRow[]> {
    return this.member(name).handle.call('locks', (r) => r.locks(limit), this.opts.callTimeoutMs);
  }

  /**
   * End a node's worker at once, as a crash would (tests; chaos and the
   * TUI's kill action build on it). The supervisor logs it as unexpected.
   */
  async kill(name: string): Promise<void> {
    await this.member(name).handle.terminate();
  }

  /** Stop every node: followers first, so the leader's link loss is not logged as a fault. */
  async close(): Promise<void> {
    this.closing = true;
    const order = [...this.members].reverse();
    for (const m of order) {
      try {
        await m.handle.call('shutdown', (r) => r.shutdown(), this.opts.callTimeoutMs);
      } catch (err) {
        // Already gone or wedged: terminate() below ends it either way.
        this.opts.onEvent({ type: 'log', node: 'cluster', lines: [{ t: Date.now(), kind: 'warn', text: `${m.info.name}: ${(err as Error).message}` }] });
      }
    }
    await Promise.all(order.map((m) => m.handle.terminate()));
    for (const m of order) m.events.close();
  }
}
