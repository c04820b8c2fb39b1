/**
 * Fault benches, each in its own process, started by run.ts;
 * prints one JSON object on stdout. The cluster runs in this process, as
 * `dlock up` runs it, so the bench can kill a node's worker the way chaos
 * and the TUI do.
 *
 *   --what failover --trials K --locks N
 *     N leases held (they survive failover), then K times: kill the leader
 *     and at once send a write on a client of each follower; the time from
 *     the kill to that write's success reply, on the follower that is still
 *     a follower afterwards (the other is promoted). This is what a client
 *     sees: the dead leader noticed, a follower promoted and the other
 *     relinked, the held write re-sent and answered.
 *   --what resync --trials K --locks N [--kind lease|session]
 *     N locks held (leases, or session locks of one connection to the
 *     leader, which lives through a follower's restart), then K times:
 *     kill a follower; the time from the kill to
 *     its replacement on the same port serving a correct `check` (worker
 *     started, snapshot of N locks sent by the leader, decoded and loaded,
 *     port bound), and the slowest answer a client of the leader writing
 *     one request at a time got meanwhile (a follower loading a snapshot
 *     does not hold writes back: replication/port-primary.ts).
 */
import { connect as dlockConnect } from '../src/client/client.js';
import { performance } from 'node:perf_hooks';
import { Cluster } from '../src/host/threads/cluster.js';
import { fillLocks } from './fill.js';

export interface FaultResult {
  what: 'failover' | 'resync';
  locks: number;
  /** What the N locks are: leases, or session locks (resync only). */
  kind: 'lease' | 'session';
  /** Client-observed ms per trial (see above). */
  ms: number[];
  medianMs: number;
  maxMs: number;
  /** The supervisor's own figure per trial: failover detect to promoted, or restart start to serving. */
  supervisorMs: number[];
  /** Resync: the slowest write answered by the leader during each trial, ms. */
  writeStallMs: number[];
}

const argv = process.argv.slice(2);
const value = (name: string, def: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i === -1 ? def : (argv[i + 1] ?? def);
};
const what = value('what', 'failover');
const trials = Number(value('trials', '5'));
const locks = Number(value('locks', '0'));
const kind = value('kind', 'lease');
if (kind !== 'lease' && kind !== 'session') throw new Error(`--kind must be lease or session, got ${kind}`);
// Session locks end with the leader's connections at a failover [LP-8]: only a resync keeps them.
if (kind === 'session' && what === 'failover') throw new Error('--kind session is for --what resync only');
if (what !== 'failover' && what !== 'resync') throw new Error(`--what must be failover or resync, got ${what}`);

/** The project's client: raw() sends one line and resolves with its reply line. */
const open = (port: number) => dlockConnect({ port });

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : (s[(s.length - 1) >> 1] as number);
};

/** Resolve when `cond` holds, checked on every cluster event and every 5 ms. */
async function until(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const supervisor: number[] = [];
const cluster = await Cluster.start({
  followers: 2,
  port: 0,
  host: '127.0.0.1',
  logRequests: false,
  limits: { maxLocksPerClient: Math.max(locks, 1) }, // one connection fills the table
  onEvent: (ev) => {
    if (ev.type !== 'log' || ev.node !== 'cluster') return;
    for (const l of ev.lines) {
      const m = / promoted to leader in (\d+) ms| restarted on \S+ in (\d+) ms/.exec(l.text);
      if (m !== null) supervisor.push(Number(m[1] ?? m[2]));
    }
  },
});
const ms: number[] = [];
const stalls: number[] = [];
try {
  const leaderPort = (): number => cluster.nodes.find((n) => n.role === 'leader')?.port as number;
  // Leases (on the leader) survive a failover and a follower restart alike;
  // session locks of a connection to the leader, a follower's restart.
  const filler = await fillLocks(leaderPort(), locks, kind === 'lease' ? { prefix: 'f', ttlMs: 3_600_000 } : { prefix: 'f' });
  for (let t = 0; t < trials; t++) {
    await until(() => cluster.settled && cluster.nodes.length === 3, 'the cluster to settle');
    if (what === 'failover') {
      const followers = cluster.nodes.filter((n) => n.role === 'follower');
      const clients = await Promise.all(followers.map((f) => open(f.port)));
      const leader = cluster.nodes.find((n) => n.role === 'leader')?.name as string;
      const t0 = performance.now();
      const killed = cluster.kill(leader);
      const answered = await Promise.all(
        clients.map(async (c, i) => {
          const reply = await c.raw(`preempt trial${t}-${i}`);
          if (!reply.startsWith('PreemptLock Success')) throw new Error(`write during failover answered "${reply}"`);
          return performance.now() - t0;
        }),
      );
      await killed;
      await until(() => cluster.settled, 'the failover to finish');
      // The client whose node stayed a follower wrote *through a follower*.
      const stayed = followers.findIndex((f) => cluster.nodes.find((n) => n.name === f.name)?.role === 'follower');
      ms.push(answered[stayed === -1 ? 0 : stayed] as number);
      for (const c of clients) c.destroy();
    } else {
      const f = cluster.nodes.filter((n) => n.role === 'follower').at(-1);
      if (f === undefined) throw new Error('no follower');
      // Meanwhile a client of the leader writes one request at a time: its
      // slowest answer is how long the resync held writes up.
      const writer = await open(leaderPort());
      let writing = true;
      let slowest = 0;
      const writes = (async (): Promise<void> => {
        for (let k = 0; writing; k++) {
          const w0 = performance.now();
          const reply = await writer.raw(k % 2 === 0 ? `preempt w${t}` : `release w${t}`);
          if (!/Success/.test(reply)) throw new Error(`a write during the resync answered "${reply}"`);
          slowest = Math.max(slowest, performance.now() - w0);
        }
      })();
      const t0 = performance.now();
      await cluster.kill(f.name);
      // Settled once the new worker has its snapshot and listens (its handshake).
      await until(() => cluster.settled, 'the restart');
      const c = await open(f.port);
      const reply = await c.raw(`check f${locks - 1}`);
      ms.push(performance.now() - t0);
      c.destroy();
      // Until the new follower counts and has caught up, then stop.
      await new Promise((r) => setTimeout(r, 100));
      writing = false;
      await writes;
      writer.destroy();
      stalls.push(Math.round(slowest * 10) / 10);
      if (locks > 0 && !reply.startsWith('CheckLock:Lock:')) throw new Error(`the restarted follower answered "${reply}"`);
    }
  }
  filler.destroy();
} finally {
  await cluster.close();
}
const result: FaultResult = { what, locks, kind, ms: ms.map((x) => Math.round(x * 10) / 10), medianMs: Math.round(median(ms) * 10) / 10, maxMs: Math.round(Math.max(...ms) * 10) / 10, supervisorMs: supervisor, writeStallMs: stalls };
process.stdout.write(`${JSON.stringify(result)}\n`);
