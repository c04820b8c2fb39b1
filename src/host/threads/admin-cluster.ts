/**
 * The admin API's view of the one-process cluster (`dlock up`): asks the
 * node workers through their control calls (each with a deadline), and
 * merges their metrics, each series labelled with its node, with the
 * supervisor's own (failovers, restarts).
 *
 * Threading: the main thread.
 */
import { AggregatorRegistry, Gauge, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { Cluster } from './cluster.js';
import { LOCKS_MAX, UnavailableError, type AdminSource, type ClientRow } from '../../admin/admin-http.js';

export class ClusterAdmin implements AdminSource {
  private readonly own = new Registry();

  constructor(private readonly cluster: Cluster) {
    const counts = cluster.counts;
    new Gauge({ name: 'dlock_failovers_total', help: 'Failovers since start: a follower made leader.', registers: [this.own], collect() { this.set(counts.failovers); } });
    new Gauge({ name: 'dlock_node_restarts_total', help: 'Node workers restarted after they died, since start.', registers: [this.own], collect() { this.set(counts.restarts); } });
  }

  /** The node that sequences, by its stats (on etcd: the elected one). */
  private async leaderName(): Promise<string | null> {
    const roles = await this.cluster.roles();
    return roles.find((r) => r.role === 'leader')?.name ?? null;
  }

  async health(): Promise<{ ok: boolean; reason: string; nodes: Array<{ name: string; role: string; up: boolean }> }> {
    const roles = await this.cluster.roles();
    const nodes = roles.map((r) => ({ name: r.name, role: r.role ?? 'unknown', up: r.role !== null }));
    const down = nodes.filter((n) => !n.up).map((n) => n.name);
    if (!this.cluster.settled || down.length > 0) return { ok: false, reason: down.length > 0 ? `not answering: ${down.join(', ')}` : 'a node is starting, restarting or failing over', nodes };
    if (!nodes.some((n) => n.role === 'leader')) return { ok: false, reason: 'no leader', nodes };
    return { ok: true, reason: 'every node has its state and a leader leads', nodes };
  }

  async metrics(): Promise<{ contentType: string; text: string }> {
    const names = this.cluster.nodes.map((n) => n.name);
    const perNode = await Promise.all(names.map((n) => this.cluster.metricsOf(n).catch(() => null)));
    const got = perNode.filter((m): m is unknown[] => m !== null) as Array<Array<MetricObjectWithValues<MetricValue<string>>>>;
    const merged = Registry.merge([AggregatorRegistry.aggregate(got), this.own]);
    return { contentType: merged.contentType, text: await merged.metrics() };
  }

  async locks() {
    const leader = await this.leaderName();
    if (leader === null) throw new UnavailableError('no leader to list the locks of');
    return this.cluster.locks(leader, LOCKS_MAX);
  }

  async clients(): Promise<ClientRow[]> {
    const names = this.cluster.nodes.map((n) => n.name);
    const lists = await Promise.all(names.map(async (node) => (await this.cluster.clientsOf(node).catch(() => [])).map((c) => ({ node, ...c }))));
    return lists.flat();
  }

  async revoke(lock: string): Promise<{ owner: number | null; token: number | null } | string> {
    const leader = await this.leaderName();
    if (leader === null) return 'no leader: nothing can be revoked now';
    return this.cluster.revoke(leader, lock);
  }
}
