/**
 * The view's source for `dlock tui --etcd` (ui/source.ts): nodes that run
 * as their own processes on etcd, watched, not owned. Membership comes from
 * etcd; each node's stats, lock map and log lines come from its views, on
 * its authenticated link port (src/observe.ts). Nothing here can kill or
 * restart a node: those are other hosts' processes.
 */
import type { NodeEvent } from '../src/host/threads/control.js';
import type { LockRow, NodeStats } from '../src/node/node.js';
import type { LogKind } from '../src/replica/node-log.js';
import { ClusterObserver, type ObservedNode, type ObserverAuth } from '../src/observe.js';
import { describeEtcd, type EtcdAccess } from '../src/replication/etcd-access.js';
import type { SourceNode, ViewSource } from './source.js';

export interface EtcdSourceOptions {
  /** How to reach etcd (URLs, TLS, auth). */
  etcd: EtcdAccess;
  cluster: string;
  /** What views are asked with (src/observe.ts): the cluster secret or the nodes' admin token; null: the secret kept in etcd. */
  observer: { secret: string | null; tls: ObserverAuth['tls'] };
}

const KINDS = new Set<string>(['info', 'conn', 'req', 'reply', 'repl', 'warn', 'error']);

function hostPort(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at), port: Number(address.slice(at + 1)) };
}

export class EtcdSource implements ViewSource {
  readonly starting = ' Reading the cluster from etcd…';
  readonly quitTitle = 'Quit (the nodes keep running)';
  readonly control = null;
  private observer: ClusterObserver | null = null;
  /** The node that last reported leading, for the log of changes of leader. */
  private leader: string | null = null;

  constructor(private readonly opts: EtcdSourceOptions) {}

  async start(onEvent: (ev: NodeEvent) => void): Promise<string> {
    const note = (level: 'info' | 'warn' | 'error', text: string): void => onEvent({ type: 'log', node: 'cluster', lines: [{ t: Date.now(), kind: level, text }] });
    const observer = new ClusterObserver(this.opts.etcd, this.opts.cluster, this.opts.observer, 200, {
      joined: (n: ObservedNode) => {
        onEvent({ type: 'state', node: n.name, state: 'up', address: n.address });
        note('info', `${n.name} is live${n.address === '' ? '' : ` at ${n.address}`}`);
      },
      moved: (n: ObservedNode) => onEvent({ type: 'state', node: n.name, state: 'up', address: n.address }),
      left: (name) => {
        onEvent({ type: 'state', node: name, state: 'gone', address: null });
        note('warn', `${name} left the cluster (its etcd lease ended)`);
      },
      unreachable: (n, why) => {
        onEvent({ type: 'state', node: n.name, state: 'down', address: n.address });
        note('warn', `${n.name} is down: ${why} (etcd lists it until its lease ends, within the node ttl)`);
        if (this.leader === n.name) {
          this.leader = null;
          note('warn', `no leader can be shown to take writes: ${n.name} led and is down`);
        }
      },
      back: (n) => {
        onEvent({ type: 'state', node: n.name, state: 'up', address: n.address });
        note('info', `${n.name} answers again`);
      },
      view: (n, v) => {
        // Each change of leader, as the nodes report it.
        if (v.stats['leads'] === true && this.leader !== n.name) {
          note('warn', this.leader === null ? `leader: ${n.name}` : `leader: ${n.name} (was ${this.leader})`);
          this.leader = n.name;
        } else if (v.stats['leads'] !== true && this.leader === n.name) this.leader = null;
        if (v.log.length > 0) onEvent({ type: 'log', node: n.name, lines: v.log.map((l) => ({ t: l.t, kind: (KINDS.has(l.kind) ? l.kind : 'info') as LogKind, text: l.text })) });
      },
      etcd: (error) => note(error === null ? 'info' : 'error', error === null ? 'etcd answers again' : `cannot read the cluster from etcd: ${error}`),
    });
    this.observer = observer;
    await observer.start();
    return `attached to cluster ${this.opts.cluster} on etcd at ${describeEtcd(this.opts.etcd)}: ${observer.nodes.size} live node(s)`;
  }

  nodes(): SourceNode[] {
    return [...(this.observer?.nodes.values() ?? [])].map((n) => ({ name: n.name, ...hostPort(n.address), role: n.view?.stats['leads'] === true ? 'leader' : 'follower' }));
  }

  poll(live: (name: string) => boolean): Promise<{ stats: NodeStats[]; locks: Array<[string, LockRow[]]> }> {
    const seen = [...(this.observer?.nodes.values() ?? [])].filter((n) => n.view !== null && n.linked && live(n.name));
    return Promise.resolve({
      stats: seen.map((n) => n.view?.stats as unknown as NodeStats),
      locks: seen.map((n) => [n.name, n.view?.locks ?? []] as [string, LockRow[]]),
    });
  }

  close(): Promise<void> {
    this.observer?.close();
    return Promise.resolve();
  }
}
