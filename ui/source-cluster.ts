/**
 * The view's source for `dlock up` (ui/source.ts): the one-process cluster,
 * started here, owned by the view (kill, restart, add), with the chaos
 * schedule of --chaos. Stats and lock maps come over each worker's control
 * channel (comlink, with deadlines: Cluster).
 */
import type { Chaos } from '../src/host/threads/chaos.js';
import { Cluster } from '../src/host/threads/cluster.js';
import type { NodeEvent } from '../src/host/threads/control.js';
import type { LockRow, NodeStats } from '../src/node/node.js';
import { clusterOptions, startAdmin, startChaos, type UpOptions } from '../src/host/threads/up.js';
import type { Server } from 'node:http';
import type { SourceControl, SourceNode, ViewSource } from './source.js';

export class ClusterSource implements ViewSource {
  readonly starting = ' Starting the cluster…';
  readonly quitTitle = 'Quit (stop the cluster)';
  private cluster: Cluster | null = null;
  private chaos: Chaos | null = null;
  private admin: Server | null = null;
  readonly control: SourceControl;

  constructor(private readonly opts: UpOptions) {
    const c = (): Cluster => {
      if (this.cluster === null) throw new Error('the cluster has not started');
      return this.cluster;
    };
    this.control = {
      addFollower: () => c().addFollower(),
      kill: (name) => (c().nodes.some((n) => n.name === name) ? c().kill(name) : Promise.reject(new Error(`${name} is not running`))),
      restart: (name) => (c().nodes.some((n) => n.name === name) ? c().restart(name) : Promise.reject(new Error(`${name} is not running`))),
    };
  }

  async start(onEvent: (ev: NodeEvent) => void): Promise<string> {
    this.cluster = await Cluster.start(clusterOptions(this.opts, onEvent));
    const admin = await startAdmin(this.cluster, this.opts);
    this.admin = admin?.server ?? null;
    this.chaos = startChaos(this.cluster, this.opts);
    return `${this.cluster.readyLine()}${admin === null ? '' : ` http=${admin.address}`}`;
  }

  nodes(): SourceNode[] {
    return this.cluster?.nodes ?? [];
  }

  async poll(live: (name: string) => boolean, limit: number): Promise<{ stats: NodeStats[]; locks: Array<[string, LockRow[]]> }> {
    const c = this.cluster;
    if (c === null) return { stats: [], locks: [] };
    // Every live node, the promoted leader too (it froze when only `up` was polled).
    const up = c.nodes.filter((n) => live(n.name));
    const stats = await Promise.all(up.map((n) => c.stats(n.name).catch(() => null)));
    const locks = await Promise.all(up.map(async (n) => [n.name, await c.locks(n.name, limit).catch(() => null)] as const));
    return { stats: stats.filter((s) => s !== null), locks: locks.filter((l): l is [string, LockRow[]] => l[1] !== null) };
  }

  async close(): Promise<void> {
    await this.chaos?.stop();
    this.admin?.close();
    await this.cluster?.close();
  }
}
