/**
 * The safety run across processes: three `dlock node`
 * processes on a 3-member etcd, the harness's clients against them, and
 * faults a machine room has, as Jepsen injects them:
 *  - a node's process killed (-9) and started again under its name, the
 *    leader's too (`kill-leader`, `kill-node`);
 *  - where this machine can make hosts (root, `ip netns`), a host cut off
 *    by setting its link down, its etcd member with it, then joined again
 *    (`partition`);
 *  - a process paused (SIGSTOP, then SIGCONT), the leader's or any node's,
 *    in turn for longer than the election lease and for longer than the
 *    node ttl (`pause-leader`, `pause-node`);
 *  - with libfaketime, wall clocks moved (each node reads its clock from a
 *    file, test/helpers/faketime.ts): a running node's clock stepped to
 *    90 s behind, 90 s ahead or back to true (`clock-step`), a node killed
 *    and restarted with its clock stepped (`clock-restart`), and the
 *    leader's clock run at ×1.5 or ×0.7 (`clock-rate`; libfaketime also
 *    stretches the process's sleeps at ×0.7, so its timers fire late).
 *    Monotonic clocks run true: that is dlock's stated assumption.
 * The harness's workload has leases (`ttl`, `renew`) throughout, so they
 * run while clocks move. Then the faults stop, every node
 * serves again, the nodes' lock tables are compared (each node's view, as
 * `dlock tui --etcd` reads it, src/observe.ts), every lease that must
 * still be held is asked of every node, and the checker decides.
 *
 * Faults come one at a time, each once every node serves again; on the
 * group protocol also once the stored configuration has every node as a
 * member. Otherwise a fault could take the last member of a configuration
 * that had shrunk to one (its primary removes secondaries whose leases
 * lapse, as under a pause), which without data dirs loses the group until
 * an operator's --reseed (docs/design.md, "Tokens, and the loss of every
 * member"); the protocol simulation spares that member for the same reason.
 *
 * Used by `npm run chaos -- --procs` (cli.ts) and test/etcd/safety-procs.test.ts.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { readClusterSecret, viewOnce } from '../../src/observe.js';
import { parseMember } from '../../src/replication/etcd-members.js';
import { clusterStatus } from '../../src/status.js';
import type { EtcdAccess } from '../../src/replication/etcd-access.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdCluster } from '../../test/helpers/etcd.js';
import { LIBFAKETIME, movableClock, moveClock } from '../../test/helpers/faketime.js';
import { canMakeHosts, Hosts } from '../../test/helpers/netns.js';
import { check } from './checker.js';
import { Harness } from './harness.js';
import { ANCHORS, tableDiffs, tableRow, type SafetyResult } from './run.js';

/** The built CLI: beside this file when it runs built (npm run chaos), under dist/ when vitest runs the source. */
/** DLOCK_TEST_CLI: another build's CLI (run the same faults against the build before a change). */
const CLI = process.env['DLOCK_TEST_CLI'] ?? fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../ui/cli.js' : '../../dist/ui/cli.js', import.meta.url));

export type ProcFault = 'kill-leader' | 'kill-node' | 'partition' | 'pause-leader' | 'pause-node' | 'clock-step' | 'clock-restart' | 'clock-rate' | 'kill-all';

/** Every fault, in the order `npm run chaos -- --procs` injects them. */
export const ALL_PROC_FAULTS: ProcFault[] = ['kill-leader', 'pause-leader', 'clock-step', 'partition', 'clock-restart', 'pause-node', 'clock-rate', 'kill-node'];

/** The nodes' etcd election lease (DEFAULT_ELECTION_TTL_S) and node ttl here: pauses outlast each in turn. */
const ELECTION_TTL_MS = 2000;
const DEFAULT_NODE_TTL_S = 5;

export interface ProcsOptions {
  seconds: number;
  grants?: number | undefined;
  /** Faults in turn, one at a time: the next waits until every node serves again, then `gapMs`. */
  faults?: ProcFault[];
  gapMs?: number;
  /** Go on past `seconds` and `grants` until every fault in `faults` has run once (at most 3 × `seconds`). */
  untilEachFault?: boolean;
  /** How long a host stays cut off, ms. */
  partitionMs?: number;
  /** The nodes' etcd lease, s (--node-ttl): shorter than the default so a killed node is back sooner. */
  nodeTtlS?: number;
  clients?: number;
  locks?: number;
  /** The nodes' --replication: the group protocol (docs/design.md; the default) or the log in etcd. */
  replication?: 'etcd' | 'group';
  /** With the group protocol: each node keeps its log in a data dir of its own, kept across its restarts ('kill-all' needs it). */
  dataDir?: boolean;
  onProgress?: (line: string) => void;
}

interface ProcNode {
  name: string;
  host: string;
  port: number;
  netns: string | undefined;
  proc: ChildProcessWithoutNullStreams | null;
  link: string;
  out: string;
  /** Its wall clock's spec file (libfaketime), or null when clocks are not moved. */
  clock: string | null;
}

/** The first line a new connection gets: a greeting means the node serves. */
function serves(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    let buf = '';
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 2000);
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      if (buf.includes('\n')) done(buf.startsWith('client_id: '));
    });
    s.on('error', () => done(false));
    s.on('close', () => done(false));
  });
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The group protocol: whether `members` live nodes are members (primary or
 * secondary) of the stored configuration, as `dlock status` reads it: by
 * the run each live key names, so a killed run still named there does not
 * count.
 */
async function configHas(access: EtcdAccess, members: number): Promise<boolean> {
  const s = await clusterStatus(access, 'chaos');
  return s.nodes.filter((n) => n.live && (n.role === 'leader' || n.role === 'follower')).length >= members;
}

/** Every live node's link address, by name, from its live key in etcd. */
/** Each live node's link, as etcd lists it, and the cluster secret the harness observes them with (kept in etcd: the nodes have no --cluster-secret-file). */
async function etcdLinks(endpoints: string[]): Promise<{ links: Map<string, string>; secret: string }> {
  const client = new Etcd3({ hosts: endpoints });
  try {
    const live = await client.namespace('/dlock/chaos/').getAll().prefix('live/').strings();
    const members = Object.values(live).map((v) => parseMember(v)).filter((m) => m !== null);
    return { links: new Map(members.map((m) => [m.name, m.link])), secret: await readClusterSecret(client, 'chaos') };
  } finally {
    client.close();
  }
}

export async function runSafetyProcs(o: ProcsOptions): Promise<SafetyResult> {
  const schedule = o.faults ?? ['kill-leader', 'kill-node'];
  const partitions = canMakeHosts && schedule.includes('partition');
  // Clocks move only where libfaketime is installed; otherwise those faults are skipped (and counted as such).
  const dataRoot = o.dataDir === true ? mkdtempSync(join(tmpdir(), 'dlock-chaos-data-')) : null;
  const clockDir = LIBFAKETIME !== null && schedule.some((f) => f.startsWith('clock-')) ? mkdtempSync(join(tmpdir(), 'dlock-chaos-clocks-')) : null;
  const nodeTtlS = o.nodeTtlS ?? DEFAULT_NODE_TTL_S;
  const pauses = [ELECTION_TTL_MS + 1000, nodeTtlS * 1000 + 2000];
  const hosts = partitions ? new Hosts(`dlc${process.pid % 1000}`, `10.232.${process.pid % 200}`).make(3) : null;
  const timeline: SafetyResult['timeline'] = [];
  const faults: Record<string, number> = {};
  let failovers = 0;
  let restarts = 0;
  let etcd: EtcdCluster | null = null;
  const nodes: ProcNode[] = [];
  try {
    etcd = await EtcdCluster.start(3, hosts === null ? '127.0.0.1' : hosts.hosts);
    const endpoints = etcd.endpoints.join(',');
    for (let i = 0; i < 3; i++) {
      const h = hosts?.hosts[i];
      nodes.push({ name: `p${i}`, host: h?.addr ?? '127.0.0.1', port: h === undefined ? 0 : 9301 + i, netns: h?.ns, proc: null, link: '', out: '', clock: clockDir === null ? null : join(clockDir, `p${i}`) });
    }
    const quiet = process.env.SAFETY_LOG === '1' ? [] : ['--quiet'];
    const spawnNode = (n: ProcNode): Promise<void> => {
      const args = [CLI, 'node', '--etcd', endpoints, '--name', n.name, '--cluster', 'chaos', '--host', n.host, '--port', String(n.port), ...(o.replication === 'etcd' ? ['--replication', 'etcd', '--first-token', '1'] : ['--replication', 'group']), ...(dataRoot === null ? [] : ['--data-dir', join(dataRoot, n.name)]), '--node-ttl', String(nodeTtlS), ...quiet, ...(n.netns === undefined ? [] : ['--insecure'])];
      const env = n.clock === null ? process.env : movableClock(n.clock);
      const proc = n.netns === undefined ? spawn(process.execPath, args, { stdio: 'pipe', env }) : spawn('ip', ['netns', 'exec', n.netns, process.execPath, ...args], { stdio: 'pipe', env });
      n.proc = proc;
      n.out = '';
      let partial = '';
      const onData = (d: string): void => {
        if (n.out.length < 1 << 16) n.out += d;
        partial += d;
        const lines = partial.split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines) {
          // Timed on arrival, on this process's monotonic clock: the node's
          // own stamp is its wall clock, which these faults move.
          const m = /^\S+ +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (.*)$/.exec(l);
          const text = m === null ? l : (m[1] as string);
          timeline.push({ at: performance.now(), node: n.name, text });
          if (/^(elected leader;|now the primary: )/.test(text)) failovers++; // the etcd engine, the group protocol
        }
      };
      proc.stdout.setEncoding('utf8').on('data', onData);
      proc.stderr.setEncoding('utf8').on('data', onData);
      return new Promise((resolve, reject) => {
        const check = setInterval(() => {
          const m = /^ready node=\S+ index=\d+ address=[\d.]+:(\d+) link=(\S+)/m.exec(n.out);
          if (m !== null) {
            clearInterval(check);
            n.port = Number(m[1]);
            n.link = m[2] as string;
            resolve();
          } else if (proc.exitCode !== null) {
            clearInterval(check);
            reject(new Error(`dlock node ${n.name} exited with ${proc.exitCode}:\n${n.out.slice(-2000)}`));
          }
        }, 20);
      });
    };
    for (const n of nodes) await spawnNode(n);
    failovers = 0; // the first election is not a failover

    const allServe = async (): Promise<boolean> => (await Promise.all(nodes.map((n) => serves(n.host, n.port)))).every(Boolean);
    const whole = async (): Promise<boolean> => {
      if (o.replication === 'etcd' || etcd === null) return true;
      return configHas(etcd.access, nodes.length);
    };
    const settle = async (ms: number): Promise<void> => {
      const deadline = performance.now() + ms;
      while (!((await allServe()) && (await whole()))) {
        if (performance.now() > deadline) throw new Error(`the nodes did not all serve within ${ms} ms; the last log lines:\n${lastLines()}`);
        await pause(200);
      }
    };
    /** The last lines of each node (and of the fault schedule): one quiet node is not hidden by the others' chatter. */
    const lastLines = (): string =>
      [...nodes.map((n) => n.name), 'chaos']
        .flatMap((name) => [
          `  --- ${name}${nodes.find((n) => n.name === name)?.proc?.exitCode != null ? ' (exited)' : ''}:`,
          ...timeline
            .filter((l) => l.node === name)
            .slice(-15)
            .map((l) => `  @${l.at.toFixed(1)} ${l.node}: ${l.text}`),
        ])
        .join('\n');
    const leader = async (): Promise<ProcNode | undefined> => {
      for (const n of nodes) {
        const me = await new Promise<string>((resolve) => {
          const s = connect({ host: n.host, port: n.port });
          let buf = '';
          s.setEncoding('utf8');
          s.on('data', (d: string) => {
            buf += d;
            if (buf.split('\n').length > 2) {
              s.destroy();
              resolve(buf.split('\n')[1] as string);
            } else if (buf.endsWith('\n') && buf.split('\n').length === 2) s.write('whoami\n');
          });
          s.on('error', () => resolve(''));
          s.setTimeout(2000, () => {
            s.destroy();
            resolve('');
          });
        });
        if (me.endsWith(' role: leader')) return n;
      }
      return undefined;
    };
    const killOnly = async (n: ProcNode): Promise<void> => {
      const p = n.proc;
      if (p === null) return;
      await new Promise<void>((resolve) => {
        p.once('exit', () => resolve());
        // In a namespace, `ip netns exec` execs node itself: this is its pid.
        p.kill('SIGKILL');
      });
      timeline.push({ at: performance.now(), node: 'chaos', text: `killed ${n.name} (-9)` });
      restarts++;
    };
    const kill = async (n: ProcNode): Promise<void> => {
      await killOnly(n);
      await spawnNode(n);
    };

    const t0 = performance.now();
    const elapsed = (): number => (performance.now() - t0) / 1000;
    const ports = (): number[] => nodes.map((n) => n.port);
    const byPort = new Map<number, string>();
    const harness: Harness = new Harness({
      ports,
      hostOf: (port) => byPort.get(port) ?? nodes.find((n) => n.port === port)?.host ?? '127.0.0.1',
      clients: o.clients ?? 24,
      locks: o.locks ?? 24,
      // A client whose node's host is cut off gets nothing for the cut's
      // length, and TCP's retransmission backoff adds as long again after
      // the link is back: an answer that late is the network's, not a hang.
      // A paused node answers when it runs again: that long is the pause's, not a hang.
      hangMs: (hosts === null ? 10_000 : 10_000 + 3 * (o.partitionMs ?? 6000)) + (schedule.some((f) => f.startsWith('pause-')) ? Math.max(...pauses) : 0),
      stop: (): boolean => {
        const enough = elapsed() >= o.seconds || (o.grants !== undefined && harness.counters.grants >= o.grants);
        if (o.untilEachFault !== true) return enough;
        return (enough && (chaosOver || schedule.every((f) => (faults[f] ?? 0) > 0))) || elapsed() >= 3 * o.seconds;
      },
    });
    for (const n of nodes) byPort.set(n.port, n.host);
    // Leases that must outlive every fault (checked on every node at the end).
    await harness.plant(ANCHORS, (3 * o.seconds + 600) * 1000);
    let stopped = false;
    let chaosOver = false;
    const chaos = (async (): Promise<void> => {
      for (let k = 0; !stopped; k++) {
        await pause(o.gapMs ?? 2000);
        if (stopped) return;
        await settle(120_000);
        if (stopped) return;
        const f = schedule[k % schedule.length] as ProcFault;
        faults[f] = (faults[f] ?? 0) + 1;
        if (f === 'kill-leader') {
          const l = await leader();
          if (l !== undefined) await kill(l);
        } else if (f === 'kill-node') {
          await kill(nodes[Math.floor(Math.random() * nodes.length)] as ProcNode);
        } else if (f === 'kill-all') {
          // Every member at once: with data dirs the group must come back with everything it acknowledged.
          await Promise.all(nodes.map(killOnly));
          await Promise.all(nodes.map(spawnNode));
        } else if (f === 'pause-leader' || f === 'pause-node') {
          const n = f === 'pause-leader' ? await leader() : (nodes[Math.floor(Math.random() * nodes.length)] as ProcNode);
          const ms = pauses[(faults[f] ?? 0) % pauses.length] as number;
          if (n?.proc?.kill('SIGSTOP') === true) {
            timeline.push({ at: performance.now(), node: 'chaos', text: `paused ${n.name} (SIGSTOP) for ${ms} ms` });
            await pause(ms);
            n.proc.kill('SIGCONT');
            timeline.push({ at: performance.now(), node: 'chaos', text: `continued ${n.name} (SIGCONT)` });
          }
        } else if (f.startsWith('clock-')) {
          if (clockDir === null) {
            faults[`${f} (skipped: no libfaketime)`] = (faults[`${f} (skipped: no libfaketime)`] ?? 0) + 1;
            continue;
          }
          const n = f === 'clock-rate' ? await leader() : (nodes[Math.floor(Math.random() * nodes.length)] as ProcNode);
          if (n?.clock == null) continue;
          const k = faults[f] ?? 0;
          const spec = f === 'clock-rate' ? (k % 2 === 1 ? '+0 x1.5' : '+0 x0.7') : (['-90s', '+90s', '+0'][k % 3] as string);
          moveClock(n.clock, spec);
          timeline.push({ at: performance.now(), node: 'chaos', text: `${n.name}'s wall clock now ${spec}${f === 'clock-restart' ? ', and it is restarted' : ''}` });
          if (f === 'clock-restart') await kill(n);
        } else if (hosts !== null) {
          const i = Math.floor(Math.random() * nodes.length);
          timeline.push({ at: performance.now(), node: 'chaos', text: `cut ${nodes[i]?.name}'s host off for ${o.partitionMs ?? 6000} ms` });
          hosts.link(i, false);
          await pause(o.partitionMs ?? 6000);
          hosts.link(i, true);
          timeline.push({ at: performance.now(), node: 'chaos', text: `${nodes[i]?.name}'s host joined again` });
        }
      }
    })().finally(() => (chaosOver = true));
    const progress = setInterval(() => {
      const c = harness.counters;
      o.onProgress?.(`${elapsed().toFixed(0)}s: ${c.grants} grants, ${c.releases} releases, ${c.cuts} cut by faults, ${harness.history.hangs.length + harness.history.lost.length} problems; faults ${JSON.stringify(faults)}; failovers ${failovers}`);
    }, 1000);
    try {
      await harness.run();
    } finally {
      stopped = true;
      clearInterval(progress);
    }
    await chaos;
    hosts?.hosts.forEach((_h, i) => hosts.link(i, true));
    await settle(120_000);
    // Replicas: every node's table (tableRow: owner, token, holders, limit,
    // value, waiters of every lock) and its `check` of every lock the run
    // used (Harness.checkReplies) must become the leader's.
    const deadline = performance.now() + 10_000;
    let diffs: string[] = [];
    let locks = 0;
    // Each node's link as etcd lists it now: a node that rejoined after a fail-stop links on a new port.
    const live = await etcdLinks(etcd.endpoints);
    for (;;) {
      const views = await Promise.all(nodes.map(async (n) => ({ n, v: await viewOnce(live.links.get(n.name) ?? n.link, { secret: live.secret, tls: null }, 1_000_000) })));
      const rows = await Promise.all(views.map(async ({ n, v }) => ({ name: n.name, leads: v.stats['leads'] === true, locks: v.locks.length, rows: [...v.locks.map(tableRow), ...(await harness.checkReplies(n.port)).map((c) => `check ${c}`)] })));
      const lead = rows.find((r) => r.leads) ?? rows[0];
      diffs = lead === undefined ? ['no node answered'] : tableDiffs(rows, lead);
      locks = lead?.locks ?? 0;
      if (diffs.length === 0 || performance.now() > deadline) break;
      await pause(200);
    }
    const leasesChecked = await harness.finalCheck(ports()).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; the last log lines:\n${lastLines()}`);
    });
    harness.history.diverged = diffs;
    return { report: check(harness.history), counters: harness.counters, faults, failovers, restarts, leasesChecked, replicas: { locks, nodes: nodes.length, checked: harness.lockNames().length }, seconds: elapsed(), timeline };
  } finally {
    for (const n of nodes) n.proc?.kill('SIGKILL');
    await etcd?.stop();
    hosts?.remove();
    if (clockDir !== null) rmSync(clockDir, { recursive: true, force: true });
    if (dataRoot !== null) rmSync(dataRoot, { recursive: true, force: true });
  }
}
