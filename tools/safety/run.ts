/**
 * One safety run: a real cluster (worker threads, TCP) under a
 * --chaos schedule, the harness's clients against it until enough grants or
 * time, then the faults stop, the cluster settles, every node is asked
 * about the leases that must still be held, and the checker decides.
 * Used by test/cluster/safety.test.ts (bounded) and `npm run chaos` (cli.ts).
 */
import { performance } from 'node:perf_hooks';
import { Chaos, parseChaos } from '../../src/host/threads/chaos.js';
import { Cluster } from '../../src/host/threads/cluster.js';
import type { EtcdAccess } from '../../src/replication/etcd-access.js';
import { check, summary, type Report } from './checker.js';
import { Harness, type Counters } from './harness.js';

export const DEFAULT_CHAOS = 'kill-follower@1500ms,kill-leader@4s,delay@2s:5ms,drop-client@700ms';

export interface SafetyOptions {
  /** Stop after this many grants, or this many seconds, whichever first. */
  grants?: number | undefined;
  seconds: number;
  chaos?: string;
  followers?: number;
  clients?: number;
  locks?: number;
  /** Run the cluster on etcd (dlock up --etcd): its client URLs and key prefix. */
  etcd?: { access: EtcdAccess; cluster: string } | null;
  /** Run the cluster on the group protocol (dlock up --replication group). */
  group?: boolean;
  onProgress?: (line: string) => void;
}

export interface SafetyResult {
  report: Report;
  counters: Counters;
  faults: Record<string, number>;
  failovers: number;
  restarts: number;
  leasesChecked: number;
  /** The tables compared at the end: locks in the leader's, over this many nodes, and how many lock names each node was asked to `check`. */
  replicas: { locks: number; nodes: number; checked: number };
  seconds: number;
  /** Every node's and the supervisor's log lines, stamped on the harness's clock (performance.now()). */
  timeline: Array<{ at: number; node: string; text: string }>;
}

/** The log lines around the first violation, to explain it. */
export function around(r: SafetyResult, beforeMs = 1500, afterMs = 300): string[] {
  const rep = r.report;
  const second = rep.overlaps[0]?.b ?? rep.tokenOrder[0]?.b ?? rep.overLimit[0]?.holds[1] ?? rep.tokensBehind[0]?.b;
  const first = rep.overlaps[0]?.a ?? rep.tokenOrder[0]?.a ?? rep.overLimit[0]?.holds[0] ?? rep.tokensBehind[0]?.a ?? rep.lost[0]?.hold ?? rep.staleReads[0]?.hold ?? rep.earlyWatches[0]?.hold;
  if (first === undefined) {
    // A hang, a partial grant [LP-22] or a refusal ruled out: everything the nodes logged from its request on, about its client or not.
    const at = rep.hangs[0]?.at ?? rep.partialGrants[0]?.at ?? rep.refusals[0]?.at;
    if (at === undefined) return [];
    const until = at + (rep.hangs[0]?.waitedMs ?? 2000);
    return r.timeline.filter((l) => l.at >= at - beforeMs && l.at <= until).map((l) => `  @${l.at.toFixed(1)} ${l.node}: ${l.text}`);
  }
  const to = Math.max(second?.start ?? first.end, first.end === Infinity ? first.start : first.end) + afterMs;
  // Per-request lines only about the locks or their holders; everything else (faults, failovers) in full.
  const names = [...(first.locks ?? [first.lock]), ...(second?.locks ?? (second === undefined ? [] : [second.lock]))].map((l) => l.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const about = new RegExp(`\\b(${[...names, first.client, second?.client ?? first.client].join('|')})\\b`);
  return r.timeline
    .filter((l) => l.at >= Math.min(first.start, second?.start ?? first.start) - beforeMs && l.at <= to)
    .filter((l) => !/^(Request|Response|broadcast|Connect from|Disconnect)/.test(l.text) || about.test(l.text)).map((l) => `  @${l.at.toFixed(1)} ${l.node}: ${l.text}`);
}

export async function runSafety(o: SafetyOptions): Promise<SafetyResult> {
  let failovers = 0;
  let restarts = 0;
  let started = false;
  const timeline: SafetyResult['timeline'] = [];
  // Log lines carry Date.now(); the harness uses performance.now().
  const skew = Date.now() - performance.now();
  const cluster = await Cluster.start({
    followers: o.followers ?? 2,
    port: 0,
    host: '127.0.0.1',
    // SAFETY_LOG=1: every request and change in the timeline, to explain a violation.
    logRequests: process.env.SAFETY_LOG === '1',
    etcd: o.etcd ?? null,
    group: o.group ?? false,
    onEvent: (ev) => {
      if (ev.type !== 'log') return;
      for (const l of ev.lines) timeline.push({ at: l.t - skew, node: ev.node, text: l.text });
      // On etcd a failover is a node's election after the first.
      for (const l of ev.lines) if (/^elected leader;/.test(l.text) && started) failovers++;
      // On the group protocol, a node taking over as primary.
      for (const l of ev.lines) if (/^now the primary: /.test(l.text) && started) failovers++;
      if (ev.node !== 'cluster') return;
      for (const l of ev.lines) {
        if (/ promoted to leader in /.test(l.text)) failovers++;
        // A node brought back: restarted under its name, or a new one started in place of a dead leader.
        if (/ restarted on | started on \S+ to replace /.test(l.text)) restarts++;
      }
    },
  });
  started = true;
  const chaos = new Chaos(cluster, parseChaos(o.chaos ?? DEFAULT_CHAOS), (text) => cluster.notice('warn', text));
  const t0 = performance.now();
  /** The supervisor's and nodes' last log lines but the per-connection ones, to explain a run that could not finish. */
  const lastLines = (): string =>
    timeline
      .filter((l) => !/^(Connect from|Disconnect client_id)/.test(l.text))
      .slice(-40)
      .map((l) => `  @${l.at.toFixed(1)} ${l.node}: ${l.text}`)
      .join('\n');
  const elapsed = (): number => (performance.now() - t0) / 1000;
  // Ports of every node as it is now: after a failover the new ones are there too.
  const ports = (): number[] => cluster.nodes.map((n) => n.port);
  const harness: Harness = new Harness({
    ports,
    clients: o.clients ?? 24,
    locks: o.locks ?? 24,
    stop: (): boolean => elapsed() >= o.seconds || (o.grants !== undefined && harness.counters.grants >= o.grants),
  });
  const progress = setInterval(() => {
    const c = harness.counters;
    o.onProgress?.(`${elapsed().toFixed(0)}s: ${c.grants} grants, ${c.releases} releases, ${c.cuts} cut by faults, ${harness.history.hangs.length + harness.history.lost.length} problems; faults ${JSON.stringify(chaos.counts)}; failovers ${failovers}`);
  }, 1000);
  try {
    await harness.plant(ANCHORS, (o.seconds + 300) * 1000);
    chaos.start();
    await harness.run();
    await chaos.stop();
    // Let restarts and failovers finish before the final check.
    const deadline = performance.now() + 30_000;
    while (!cluster.settled) {
      if (performance.now() > deadline) throw new Error(`the cluster did not settle within 30 s after the faults stopped; the last log lines:\n${lastLines()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // Replicas first: on etcd a node answers once a write is in etcd, and
    // another node may apply it a few ms later (LP-11 asks read-your-writes
    // of the node that answered, not of every node at once). A lease must
    // then be on every node once they have caught up; one that is still
    // missing after that was lost.
    const replicas = await replicasAgree(cluster, harness);
    const leasesChecked = await harness.finalCheck(ports()).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; the last log lines:\n${lastLines()}`);
    });
    harness.history.diverged = replicas.diffs;
    return { report: check(harness.history), counters: harness.counters, faults: { ...chaos.counts }, failovers, restarts, leasesChecked, replicas: { locks: replicas.locks, nodes: replicas.nodes, checked: replicas.checked }, seconds: elapsed(), timeline };
  } finally {
    clearInterval(progress);
    await chaos.stop();
    await cluster.close();
  }
}

/** Leases taken before the run that must outlive it (Harness.plant). */
export const ANCHORS = 8;

/**
 * One row of a node's lock table, as compared across nodes: owner and
 * token (of a lock with several holders, the newest's), every holder and
 * the limit [LP-20, LP-21], the value [LP-18], whether it is leased (not
 * the time left: each node's clock reads its own), and the waiters.
 */
export const tableRow = (r: { lock: string; owner: number; token: number; ttlLeft?: number | null; waiters: number[]; value?: string; holders?: number[]; limit?: number | null }): string =>
  `${r.lock} owner=${r.owner} token=${r.token}${r.holders === undefined ? '' : ` holders=${r.holders.join(',')} limit=${r.limit ?? 'shared'}`}${r.ttlLeft === undefined ? '' : r.ttlLeft === null ? ' session' : ' lease'}${r.value === undefined ? '' : ` value=${r.value}`} waiters=${r.waiters.join(',')}`;

/** How every table differs from the leader's (none when they agree). */
export function tableDiffs(tables: Array<{ name: string; rows: string[] }>, leader: { name: string; rows: string[] }): string[] {
  const diffs: string[] = [];
  const theirs = new Set(leader.rows);
  for (const t of tables) {
    if (t === leader) continue;
    const mine = new Set(t.rows);
    for (const r of leader.rows) if (!mine.has(r)) diffs.push(`${t.name} lacks "${r}" that ${leader.name} has`);
    for (const r of t.rows) if (!theirs.has(r)) diffs.push(`${t.name} has "${r}" that ${leader.name} does not`);
  }
  return diffs;
}

/** The summary `npm run chaos` prints; `extra`: the run's own line about faults. */
export function report(r: SafetyResult, faults: string): string {
  const c = r.counters;
  return (
    [
      `${r.seconds.toFixed(1)} s, ${c.requests} requests, ${c.connects} connections`,
      summary(r.report),
      `releases ${c.releases}, renews ${c.renews}, client disconnects ${c.disconnects}, holds cut by faults ${c.cuts}, resumed after a break (LP-16) ${c.resumes}, error replies ${c.errors}`,
      faults,
      `leases checked on every node at the end: ${r.leasesChecked}; lock tables compared: ${r.replicas.locks} locks on ${r.replicas.nodes} nodes, and their check of all ${r.replicas.checked} lock names the run used`,
      ...(r.report.violations === 0 ? [] : ['log around the first violation:', ...around(r)]),
      r.report.violations === 0 ? 'OK: no violations' : `FAILED: ${r.report.violations} violations`,
    ].join('\n') + '\n'
  );
}

/**
 * Once clients are gone, every node's table must become the leader's: the
 * same rows (tableRow: owner, token, holders, limit, value, waiters) for
 * every lock, and the same `check` of every lock the run used (mode and
 * owners [LP-20, LP-21], value [LP-18], or Free; Harness.checkReplies).
 * Leases may still expire while the tables are read, so this asks until
 * they agree, for up to 5 s; a replica with a gap or a duplicate never
 * does. Returns the differences still seen at the end (none when they agree).
 */
async function replicasAgree(cluster: Cluster, harness: Harness): Promise<{ diffs: string[]; locks: number; nodes: number; checked: number }> {
  const deadline = performance.now() + 5000;
  const checked = harness.lockNames().length;
  for (;;) {
    const tables = await Promise.all(
      cluster.nodes.map(async (n) => {
        const rows = (await cluster.locks(n.name, 100_000)).map(tableRow);
        const checks = (await harness.checkReplies(n.port)).map((c) => `check ${c}`);
        return { name: n.name, rows: [...rows, ...checks], locks: rows.length };
      }),
    );
    const roles = await cluster.roles();
    const leader = tables.find((t) => roles.find((n) => n.name === t.name)?.role === 'leader');
    if (leader === undefined) return { diffs: ['no leader at the end'], locks: 0, nodes: tables.length, checked };
    const diffs = tableDiffs(tables, leader);
    if (diffs.length === 0 || performance.now() > deadline) return { diffs, locks: leader.locks, nodes: tables.length, checked };
    await new Promise((r) => setTimeout(r, 100));
  }
}
