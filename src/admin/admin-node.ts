/**
 * The admin API's view of one `dlock node` process (on etcd):
 * the node serving now, which is null while it rejoins after a fail-stop
 * (then /health answers 503 with the reason, and the rest fail).
 *
 * Its metrics are the node's (counters restart with each run, as a
 * restarted process's would) and the process's own: elections won and
 * rejoins.
 *
 * Locks come from this node's replica (committed entries of etcd's log);
 * clients are this node's own; a revoke is this node's proposal, answered
 * once committed, as a client's write is [LP-11].
 *
 * Threading: the process's main thread, the node's.
 */
import { AggregatorRegistry, Gauge, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { LockRow } from '../node/node.js';
import type { ReplicaNode } from '../node/replica-node.js';
import { LOCKS_MAX, UnavailableError, type AdminSource, type ClientRow } from './admin-http.js';

/** What the process counts across its node's runs (host/process/node-main.ts, group-node-main.ts). */
export interface NodeCounts {
  /** Times this process's node became the leader: won the election on etcd, or took over as the group's primary. */
  elections: number;
  /** Times it lost its etcd lease and registered again (the etcd engine: stopped serving and rejoined as a new run). */
  rejoins: number;
}

/** A node the admin API can serve: either engine's (EtcdNode, GroupNode). */
export type AdminNode = ReplicaNode & { health(): { ok: boolean; reason: string } };

export class NodeAdmin implements AdminSource {
  private readonly own = new Registry();

  constructor(
    private readonly name: string,
    /** The node serving now; null while it rejoins. */
    private readonly current: () => AdminNode | null,
    counts: NodeCounts,
  ) {
    const labels = { node: name };
    new Gauge({ name: 'dlock_leader_elections_total', help: 'Times this node became the leader (won the election on etcd, or took over as the group\'s primary), since the process started (a takeover after a failover among them).', labelNames: ['node'], registers: [this.own], collect() { this.set(labels, counts.elections); } });
    new Gauge({ name: 'dlock_node_rejoins_total', help: 'Times this node lost its etcd lease and registered again (on the etcd engine it stops serving meanwhile), since the process started.', labelNames: ['node'], registers: [this.own], collect() { this.set(labels, counts.rejoins); } });
  }

  private node(): AdminNode {
    const n = this.current();
    if (n === null) throw new UnavailableError(`${this.name} is not serving: it rejoins the cluster once etcd answers`);
    return n;
  }

  health(): Promise<{ ok: boolean; reason: string; nodes: Array<{ name: string; role: string; up: boolean }> }> {
    const n = this.current();
    if (n === null) return Promise.resolve({ ok: false, reason: 'stopped (lost etcd): rejoining the cluster once etcd answers', nodes: [{ name: this.name, role: 'none', up: false }] });
    const h = n.health();
    return Promise.resolve({ ...h, nodes: [{ name: this.name, role: h.ok ? n.role : 'none', up: h.ok }] });
  }

  async metrics(): Promise<{ contentType: string; text: string }> {
    const json = this.node().metrics.json() as unknown as Array<MetricObjectWithValues<MetricValue<string>>>;
    const registry = Registry.merge([AggregatorRegistry.aggregate([json]), this.own]);
    return { contentType: registry.contentType, text: await registry.metrics() };
  }

  locks(): Promise<LockRow[]> {
    return Promise.resolve(this.node().lockMap(LOCKS_MAX));
  }

  clients(): Promise<ClientRow[]> {
    return Promise.resolve(this.node().clientList().map((c) => ({ node: this.name, ...c })));
  }

  async revoke(lock: string): Promise<{ owner: number | null; token: number | null } | string> {
    const n = this.current();
    if (n === null) return `Error: ${this.name} is not serving: it rejoins the cluster once etcd answers; retry or use another node`;
    const r = await n.admin({ op: 'revoke', lock });
    if (typeof r === 'string') return r;
    if (r.op !== 'revoke') throw new Error(`revoke answered ${r.op}`);
    return { owner: r.owner, token: r.token };
  }
}
