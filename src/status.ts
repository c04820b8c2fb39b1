/**
 * `dlock status --etcd URL…`: a cluster on etcd as etcd sees it:
 * each node's name, index, client address, role, applied seq and liveness,
 * who leads, and where the log ends. Read-only; it never joins.
 *
 * Liveness is etcd's: a node is live while its lease is (etcd-members.ts).
 * A node's role and applied seq are what it last published (once a second);
 * the leader is the election's. A cluster on the group protocol
 * (`--replication group`) has no election and no log in etcd: its
 * configuration (config/etcd.ts) says who is the primary and who the
 * secondaries, by member id (the run a node's live key names); a live
 * node in neither is a learner.
 */
import { Etcd3 } from 'etcd3';
import { ConfigError, decodeConfig, type GroupConfig } from './config/config.js';
import { etcd3Options, type EtcdAccess } from './replication/etcd-access.js';
import { parseMember, type MemberInfo } from './replication/etcd-members.js';
import { parseLeaderInfo } from './replication/etcd-election.js';

export interface ClusterStatus {
  cluster: string;
  leader: string | null;
  /** The last seq in the log (0: empty), from its last batch. */
  logSeq: number;
  nodes: Array<{ name: string; index: number; live: boolean; address: string; link: string; role: 'leader' | 'follower' | 'learner' | null; applied: number | null }>;
  /** The group protocol's configuration, where the cluster runs it; `problem`: what is wrong with a stored one that does not parse. */
  group?: { config: GroupConfig | null; problem: string | null };
}

/** `etcd`: how to reach it (URLs, TLS, auth); the reads need only read access to /dlock/<cluster>/. */
export async function clusterStatus(etcd: EtcdAccess, cluster: string): Promise<ClusterStatus> {
  const client = new Etcd3({ ...etcd3Options(etcd), dialTimeout: 3000 });
  try {
    const ns = client.namespace(`/dlock/${cluster}/`);
    const [names, live, leaderValue, last, configText] = await Promise.all([
      ns.getAll().prefix('names/').strings(),
      ns.getAll().prefix('live/').strings(),
      // The election's leader: the oldest key under election/ (etcd-election.ts).
      ns.getAll().prefix('election/').sort('Create', 'Ascend').limit(1).strings().then((kv) => Object.values(kv)[0]),
      ns.getAll().prefix('log/').sort('Key', 'Descend').limit(1).strings(),
      ns.get('config').string(),
    ]);
    // Checked, as every byte from etcd: a value that is not a leader's names nobody.
    const leader = parseLeaderInfo(leaderValue)?.name ?? null;
    const lastBatch = Object.values(last)[0];
    const logSeq = lastBatch === undefined ? 0 : Number(/"seq":(\d+)/.exec(lastBatch.split('\n').at(-1) ?? '')?.[1] ?? 0);
    const byName = new Map<string, MemberInfo>();
    for (const v of Object.values(live)) {
      const m = parseMember(v);
      if (m !== null) byName.set(m.name, m); // a live key that is not a member's shows no node
    }
    const nodes: ClusterStatus['nodes'] = Object.entries(names).map(([key, index]) => {
      const name = key.slice(key.lastIndexOf('names/') + 'names/'.length);
      const m = byName.get(name);
      return {
        name,
        index: Number(index),
        live: m !== undefined,
        address: m?.address ?? '-',
        link: m?.link ?? '-',
        role: m === undefined ? null : name === leader ? 'leader' : 'follower',
        applied: m?.applied ?? null,
      };
    });
    // Nodes of `dlock up --etcd` have their indexes by name, not from names/.
    for (const m of byName.values()) {
      if (!nodes.some((n) => n.name === m.name)) nodes.push({ name: m.name, index: m.index, live: true, address: m.address, link: m.link, role: m.name === leader ? 'leader' : 'follower', applied: m.applied ?? null });
    }
    nodes.sort((a, b) => a.index - b.index);
    if (configText === null) return { cluster, leader, logSeq, nodes };
    // The group protocol: roles from the configuration, by the run each live key names.
    let config: GroupConfig | null = null;
    let problem: string | null = null;
    try {
      config = decodeConfig(configText, `/dlock/${cluster}/config`);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problem = err.message;
    }
    const runOf = (name: string): string | undefined => byName.get(name)?.member;
    for (const n of nodes) {
      const run = runOf(n.name);
      n.role = !n.live || config === null ? null : run === config.primary ? 'leader' : run !== undefined && config.secondaries.includes(run) ? 'follower' : 'learner';
    }
    const primaryName = config === null ? null : (nodes.find((n) => runOf(n.name) === config.primary)?.name ?? config.primary);
    return { cluster, leader: primaryName, logSeq, nodes, group: { config, problem } };
  } finally {
    client.close();
  }
}

export function formatStatus(s: ClusterStatus): string {
  const g = s.group;
  const head =
    g === undefined
      ? `cluster ${s.cluster}: ${s.leader === null ? 'no leader' : `leader ${s.leader}`}; the log ends at seq ${s.logSeq}`
      : g.config === null
        ? `cluster ${s.cluster} (group protocol): ${g.problem ?? 'no configuration'}`
        : `cluster ${s.cluster} (group protocol): configuration ${g.config.version}, primary ${g.config.primary}, secondaries ${g.config.secondaries.join(', ') || 'none'}${s.nodes.some((n) => n.name === s.leader && n.live) ? '' : ' (the primary is not live in etcd)'}`;
  const rows = [['NAME', 'INDEX', 'ADDRESS', 'LINK', 'ROLE', 'APPLIED', 'LIVE']];
  for (const n of s.nodes) rows.push([n.name, String(n.index), n.address || '-', n.link, n.role ?? '-', n.applied === null ? '-' : String(n.applied), n.live ? 'yes' : 'no']);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] as string).length)));
  return [head, ...rows.map((r) => r.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd())].join('\n');
}
