/**
 * `dlock status --etcd URL…`: a cluster on etcd as etcd sees it:
 * each node's name, index, client address, role, applied seq and liveness,
 * who leads, and where the log ends. Read-only; it never joins.
 *
 * Liveness is etcd's, checked: a node is live while its lease is
 * (etcd-members.ts), and `down` when its key is there but nothing accepts
 * at its link address (a process killed shows at once, not when its lease
 * ends; a paused one still accepts, and shows once its lease ends).
 * A node's role and applied seq are what it last published (once a second);
 * the leader is the election's. A cluster on the group protocol
 * (`--replication group`) has no election and no log in etcd: its
 * configuration (config/etcd.ts) says who is the primary and who the
 * secondaries, by member id (the run a node's live key names); a live
 * node in neither is a learner.
 */
import { Etcd3 } from 'etcd3';
import { connect } from 'node:net';
import { ConfigError, decodeConfig, type GroupConfig } from './config/config.js';
import { etcd3Options, type EtcdAccess } from './replication/etcd-access.js';
import { parseMember, type MemberInfo } from './replication/etcd-members.js';
import { parseLeaderInfo } from './replication/etcd-election.js';

export interface ClusterStatus {
  cluster: string;
  leader: string | null;
  /** The last seq in the log (0: empty), from its last batch. */
  logSeq: number;
  /**
   * `live`: its key is in etcd (until its lease ends, the node ttl, after
   * the process dies). `answers`: something accepts at its link address
   * now (null: not probed, no live key); a killed process is seen at once.
   */
  nodes: Array<{ name: string; index: number; live: boolean; answers: boolean | null; address: string; link: string; role: 'leader' | 'follower' | 'learner' | null; applied: number | null; admin: string | null }>;
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
        answers: null,
        address: m?.address ?? '-',
        link: m?.link ?? '-',
        role: m === undefined ? null : name === leader ? 'leader' : 'follower',
        applied: m?.applied ?? null,
        admin: m?.admin ?? null,
      };
    });
    // Nodes of `dlock up --etcd` have their indexes by name, not from names/.
    for (const m of byName.values()) {
      if (!nodes.some((n) => n.name === m.name)) nodes.push({ name: m.name, index: m.index, live: true, answers: null, address: m.address, link: m.link, role: m.name === leader ? 'leader' : 'follower', applied: m.applied ?? null, admin: m.admin ?? null });
    }
    nodes.sort((a, b) => a.index - b.index);
    // Liveness as it is: a live key outlives a killed process by up to the node ttl; its link port does not.
    await Promise.all(nodes.map(async (n) => (n.answers = n.live && n.link !== '-' ? await accepts(n.link, PROBE_MS) : null)));
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

/** How long a probe of a node's link address waits for the connection, ms. */
const PROBE_MS = 1000;

/** Whether something accepts a TCP connection at `address` (HOST:PORT) within `ms`. */
function accepts(address: string, ms: number): Promise<boolean> {
  const at = address.lastIndexOf(':');
  return new Promise((resolve) => {
    const socket = connect({ host: address.slice(0, at), port: Number(address.slice(at + 1)) });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(ms, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export function formatStatus(s: ClusterStatus): string {
  const g = s.group;
  const head =
    g === undefined
      ? `cluster ${s.cluster}: ${s.leader === null ? 'no leader' : `leader ${s.leader}${s.nodes.find((n) => n.name === s.leader)?.answers === false ? ' (down: nothing answers at its link address; etcd names it until its lease ends, then another is elected; writes wait meanwhile)' : ''}`}; the log ends at seq ${s.logSeq}`
      : g.config === null
        ? `cluster ${s.cluster} (group protocol): ${g.problem ?? 'no configuration'}`
        : `cluster ${s.cluster} (group protocol): configuration ${g.config.version}, primary ${g.config.primary}, secondaries ${g.config.secondaries.join(', ') || 'none'}${s.nodes.some((n) => n.name === s.leader && n.live) ? '' : ' (the primary is not live in etcd)'}`;
  const rows = [['NAME', 'INDEX', 'ADDRESS', 'LINK', 'ROLE', 'APPLIED', 'LIVE']];
  // `down`: its key is still in etcd, but nothing accepts at its link address (killed, or its host cut off).
  for (const n of s.nodes) rows.push([n.name, String(n.index), n.address || '-', n.link, n.role ?? '-', n.applied === null ? '-' : String(n.applied), !n.live ? 'no' : n.answers === false ? 'down' : 'yes']);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] as string).length)));
  return [head, ...rows.map((r) => r.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd())].join('\n');
}

/**
 * Where a client can connect: the client addresses of the nodes that are
 * live and answer, the leader first (`dlock client --etcd`, `dlock lock
 * --etcd`). Every address was checked when read (parseMember).
 */
export function clientAddresses(s: ClusterStatus): Array<{ host: string; port: number }> {
  const usable = s.nodes.filter((n) => n.live && n.answers !== false && n.address !== '' && n.address !== '-');
  return leaderFirst(s, usable).map((n) => hostPort(n.address));
}

/** The admin APIs (`--http-port`) the live nodes advertise, the leader's first: for `dlock admin --etcd`. */
export function adminAddresses(s: ClusterStatus): Array<{ host: string; port: number }> {
  const usable = s.nodes.filter((n) => n.live && n.answers !== false && n.admin !== null);
  return leaderFirst(s, usable).map((n) => hostPort(n.admin as string));
}

function leaderFirst<T extends { name: string; index: number }>(s: ClusterStatus, nodes: T[]): T[] {
  return [...nodes].sort((a, b) => Number(b.name === s.leader) - Number(a.name === s.leader) || a.index - b.index);
}

function hostPort(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at), port: Number(address.slice(at + 1)) };
}
