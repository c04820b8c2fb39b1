/**
 * `npm run bench -- --scenario etcd`: dlock across processes on
 * etcd, against etcd itself, on one 3-member etcd in one run, all at the
 * same connection count.
 *
 *   - preempt+release through the dlock nodes (loadgen.ts, `cycle`), against
 *     the etcd3 client's lock recipe (acquire + release) and against a bare
 *     txn pair (create-if-absent, then delete): etcd-load.ts, its own process
 *   - `check` through the dlock nodes, against etcd's linearizable and serializable gets
 *   - failover: from the leader's `dlock node` process being killed (-9) to
 *     the first write answered through another node
 *   - rejoin: a node's process started again under its name, to its ready
 *     line (caught up with the log), after a kill -9 (its old lease must
 *     expire first: the node ttl) and after a clean stop (SIGTERM)
 *
 * The etcd members are the tests' launcher's (test/helpers/etcd.ts): real
 * etcd-server processes on free loopback ports, data in a temp dir.
 * Prints a table; writes bench/results/<date>-etcd.json.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { EtcdCluster, hasEtcd } from '../test/helpers/etcd.js';
import { REDIS_RELEASE_LUA, type LoadResult } from './loadgen.js';
import { startRedis } from './redis.js';
import { clusterStatus } from '../src/status.js';

const CLI = fileURLToPath(new URL('../ui/cli.js', import.meta.url));
const LOADGEN = fileURLToPath(new URL('./loadgen.js', import.meta.url));
const ETCD_LOAD = fileURLToPath(new URL('./etcd-load.js', import.meta.url));
const RESULTS = fileURLToPath(new URL('../../bench/results/', import.meta.url));

export interface EtcdBenchOptions {
  seconds: number;
  warmup: number;
  conns: number;
  /** Failover and rejoin trials. */
  trials: number;
  /** Skip the rejoin after kill -9 (it waits out the node ttl): --smoke. */
  quick?: boolean;
}

interface Node {
  name: string;
  child: ChildProcessWithoutNullStreams;
  port: number;
  /** The last of what it wrote (stdout and stderr), for an error that says why. */
  tail: () => string;
}

/** Each step of the failover and rejoin trials (a start, a stop) fails after this, with the node's output. */
const STEP_LIMIT_MS = 30_000;

function child(args: string[]): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    c.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as LoadResult) : reject(new Error(`${args[0]} exited with ${code}`))));
  });
}

/** Start `dlock node NAME`; resolves at its ready line, with the time it took. */
function startNode(etcd: string[], name: string): Promise<{ node: Node; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    // The nodes run dlock node's default, the group protocol (docs/design.md); DLOCK_BENCH_REPLICATION=etcd: the etcd log engine.
    const replication = process.env['DLOCK_BENCH_REPLICATION'] === 'etcd' ? ['--replication', 'etcd'] : [];
    const c = spawn(process.execPath, [CLI, 'node', '--etcd', etcd.join(','), '--name', name, '--cluster', 'bench', '--quiet', ...replication], { stdio: 'pipe' });
    // If the bench ends without stopping it (a step that failed, a signal), the node goes with it.
    const reap = (): void => void c.kill('SIGKILL');
    process.once('exit', reap);
    c.once('exit', () => process.off('exit', reap));
    let out = '';
    let log = '';
    const tail = (): string => log.slice(-3000);
    const keep = (d: string): void => void (log = (log + d).slice(-8000));
    const timer = setTimeout(() => {
      c.kill('SIGKILL');
      reject(new Error(`dlock node ${name} was not ready within ${STEP_LIMIT_MS} ms:\n${tail()}`));
    }, STEP_LIMIT_MS);
    c.stderr.setEncoding('utf8').on('data', keep);
    c.stdout.setEncoding('utf8').on('data', (d: string) => {
      keep(d);
      if (out === ' ') return;
      out += d;
      const m = /^ready node=\S+ index=\d+ address=[\d.]+:(\d+)/m.exec(out);
      if (m !== null) {
        out = ' ';
        clearTimeout(timer);
        resolve({ node: { name, child: c, port: Number(m[1]), tail }, ms: Math.round(performance.now() - t0) });
      }
    });
    c.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`dlock node ${name} exited with ${code} before it was ready:\n${tail()}`));
    });
  });
}

/** One request on a fresh connection to `port`: the reply line ('' if the connection closed first). */
function ask(port: number, line: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let buf = '';
    let greeted = false;
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const l = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!greeted) {
          greeted = true;
          if (l.startsWith('Error: ')) {
            s.destroy();
            resolve(l);
            return;
          }
          s.write(`${line}\n`);
        } else {
          s.destroy();
          resolve(l);
          return;
        }
      }
    });
    s.on('error', () => resolve(''));
    s.on('close', () => resolve(''));
  });
}

/** A failover that takes longer than this fails the bench (it is seconds: the election key's TTL, then a campaign). */
const FAILOVER_LIMIT_MS = 60_000;

async function leaderOf(nodes: Node[]): Promise<Node> {
  const until = performance.now() + FAILOVER_LIMIT_MS;
  for (;;) {
    for (const n of nodes) if ((await ask(n.port, 'whoami')).endsWith(' role: leader')) return n;
    if (performance.now() > until) throw new Error(`no node says it leads within ${FAILOVER_LIMIT_MS} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Until every node is a member of the group (none a learner still catching
 * up), as `dlock status` shows it: a trial measures the failover of a whole
 * group. Killing the primary while the others are learners would be losing
 * every member, which without --data-dir waits for --reseed
 * (docs/across-hosts.md). On the etcd engine every live node is a follower
 * or the leader at once.
 */
async function whole(etcd: EtcdCluster, count: number): Promise<void> {
  const until = performance.now() + FAILOVER_LIMIT_MS;
  for (;;) {
    const s = await clusterStatus(etcd.access, 'bench');
    if (s.nodes.filter((n) => n.live && (n.role === 'leader' || n.role === 'follower')).length >= count) return;
    if (performance.now() > until) throw new Error(`the group did not take back all ${count} nodes within ${FAILOVER_LIMIT_MS} ms: ${JSON.stringify(s.nodes.map((n) => [n.name, n.role]))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Stop a node with `signal`; one that has not exited within STEP_LIMIT_MS is an error (and is killed). */
const kill = (n: Node, signal: NodeJS.Signals): Promise<void> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      n.child.kill('SIGKILL');
      reject(new Error(`dlock node ${n.name} did not exit within ${STEP_LIMIT_MS} ms of ${signal}:\n${n.tail()}`));
    }, STEP_LIMIT_MS);
    n.child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    n.child.kill(signal);
  });

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[Math.floor((s.length - 1) / 2)] as number);
};

export async function runEtcdBench(o: EtcdBenchOptions): Promise<boolean> {
  if (!hasEtcd) {
    process.stderr.write('bench etcd: etcd-server is not installed (apt-get install etcd-server)\n');
    return false;
  }
  const etcd = await EtcdCluster.start(3);
  const nodes: Node[] = [];
  try {
    for (const name of ['b1', 'b2', 'b3']) nodes.push((await startNode(etcd.endpoints, name)).node);
    const ports = (): string => nodes.map((n) => n.port).join(',');
    const common = ['--conns', String(o.conns), '--seconds', String(o.seconds), '--warmup', String(o.warmup)];
    process.stderr.write('bench etcd: dlock preempt+release through the nodes…\n');
    const dlockCycle = await child([LOADGEN, '--ports', ports(), '--scenario', 'cycle', '--depth', '1', ...common]);
    // Redis with 2 replicas, each write followed by WAIT 2 (answered once every replica has it, as a dlock write is): the yardstick.
    const redis = await startRedis(2);
    let redisWait: LoadResult | null = null;
    if (redis !== null) {
      try {
        process.stderr.write('bench etcd: redis + 2 replicas, each write + WAIT 2…\n');
        const sha = await redis.load(REDIS_RELEASE_LUA);
        redisWait = await child([LOADGEN, '--ports', String(redis.port), '--scenario', 'redis-cycle-wait', '--depth', '1', '--replicas', '2', '--sha', sha, ...common]);
      } finally {
        await redis.stop();
      }
    }
    process.stderr.write('bench etcd: etcd lock recipe…\n');
    const etcdLock = await child([ETCD_LOAD, '--hosts', etcd.endpoints.join(','), '--mode', 'lock', ...common]);
    process.stderr.write('bench etcd: bare txn pairs…\n');
    const etcdTxn = await child([ETCD_LOAD, '--hosts', etcd.endpoints.join(','), '--mode', 'txn', ...common]);
    process.stderr.write('bench etcd: dlock check through the nodes…\n');
    const dlockCheck = await child([LOADGEN, '--ports', ports(), '--scenario', 'check', '--depth', '1', ...common]);
    process.stderr.write('bench etcd: etcd linearizable get…\n');
    const etcdGet = await child([ETCD_LOAD, '--hosts', etcd.endpoints.join(','), '--mode', 'get', ...common]);
    const etcdSget = await child([ETCD_LOAD, '--hosts', etcd.endpoints.join(','), '--mode', 'sget', ...common]);

    const failovers: number[] = [];
    const rejoinsAfterKill: number[] = [];
    const rejoinsAfterStop: number[] = [];
    for (let t = 0; t < o.trials; t++) {
      process.stderr.write(`bench etcd: failover and rejoin, trial ${t + 1} of ${o.trials}…\n`);
      await whole(etcd, nodes.length);
      const lead = await leaderOf(nodes);
      const other = nodes.find((n) => n !== lead) as Node;
      const t0 = performance.now();
      await kill(lead, 'SIGKILL');
      // Asked again every 10 ms: a tight loop of connections would take the
      // CPU the surviving nodes need to elect a leader on a 2-core machine.
      for (let k = 0; ; k++) {
        const r = await ask(other.port, `preempt failover-${t}-${k}`);
        if (r.startsWith('PreemptLock Success')) break;
        if (performance.now() - t0 > FAILOVER_LIMIT_MS) throw new Error(`no write answered through ${other.name} within ${FAILOVER_LIMIT_MS} ms of the leader's kill; the last answer: ${JSON.stringify(r)}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      failovers.push(Math.round(performance.now() - t0));
      nodes.splice(nodes.indexOf(lead), 1);
      if (o.quick !== true) {
        const back = await startNode(etcd.endpoints, lead.name);
        rejoinsAfterKill.push(back.ms);
        nodes.push(back.node);
      }
      // A clean stop (the lease revoked as it leaves), then a start.
      await whole(etcd, nodes.length);
      const follower = nodes.find((n) => n !== other) as Node;
      await kill(follower, 'SIGTERM');
      nodes.splice(nodes.indexOf(follower), 1);
      const again = await startNode(etcd.endpoints, follower.name);
      rejoinsAfterStop.push(again.ms);
      nodes.push(again.node);
    }

    const pairs = (r: LoadResult): number => Math.round(r.opsPerSec / 2); // loadgen counts preempt and release apart
    const rows: Array<[string, string, string, string]> = [
      ['dlock preempt+release through the nodes (pairs/s)', String(pairs(dlockCycle)), `${dlockCycle.p50us}/${dlockCycle.p99us} per request`, ''],
      ...(redisWait === null ? [] : [['redis + 2 replicas, SET NX + release, each + WAIT 2 (pairs/s)', String(pairs(redisWait)), `${redisWait.p50us}/${redisWait.p99us} per request`, (pairs(dlockCycle) / Math.max(1, pairs(redisWait))).toFixed(1)] as [string, string, string, string]]),
      ['etcd lock recipe, acquire+release (pairs/s)', String(etcdLock.opsPerSec), `${etcdLock.p50us}/${etcdLock.p99us} per pair`, (pairs(dlockCycle) / Math.max(1, etcdLock.opsPerSec)).toFixed(1)],
      ['etcd bare txn create-if-absent + delete (pairs/s)', String(etcdTxn.opsPerSec), `${etcdTxn.p50us}/${etcdTxn.p99us} per pair`, (pairs(dlockCycle) / Math.max(1, etcdTxn.opsPerSec)).toFixed(1)],
      ['dlock check through the nodes (reads/s)', String(dlockCheck.opsPerSec), `${dlockCheck.p50us}/${dlockCheck.p99us}`, ''],
      ['etcd linearizable get (reads/s)', String(etcdGet.opsPerSec), `${etcdGet.p50us}/${etcdGet.p99us}`, (dlockCheck.opsPerSec / Math.max(1, etcdGet.opsPerSec)).toFixed(1)],
      ['etcd serializable get (reads/s)', String(etcdSget.opsPerSec), `${etcdSget.p50us}/${etcdSget.p99us}`, (dlockCheck.opsPerSec / Math.max(1, etcdSget.opsPerSec)).toFixed(1)],
    ];
    let table = `${'case'.padEnd(52)}${'ops/s'.padStart(10)}  ${'p50/p99 µs'.padEnd(26)}dlock ÷ it\n`;
    for (const [a, b, c, d] of rows) table += `${a.padEnd(52)}${b.padStart(10)}  ${c.padEnd(26)}${d}\n`;
    const errors = [dlockCycle, etcdLock, etcdTxn, dlockCheck, etcdGet, etcdSget, ...(redisWait === null ? [] : [redisWait])].reduce((n, r) => n + r.errors, 0);
    table += `errors: ${errors}; ${o.conns} connections each, ${o.seconds} s measured, one 3-member etcd 3.4 on loopback\n`;
    table += `failover (leader's process killed -9 → first write answered via another node): median ${median(failovers)} ms of ${failovers.join(', ')} ms\n`;
    table += rejoinsAfterKill.length === 0 ? 'rejoin after kill -9: not measured (--smoke)\n' : `rejoin after kill -9 (start → ready, caught up; waits for its old lease, the node ttl): median ${median(rejoinsAfterKill)} ms of ${rejoinsAfterKill.join(', ')} ms\n`;
    table += `rejoin after a clean stop (SIGTERM, then start → ready): median ${median(rejoinsAfterStop)} ms of ${rejoinsAfterStop.join(', ')} ms\n`;
    process.stdout.write(table);
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    mkdirSync(RESULTS, { recursive: true });
    writeFileSync(`${RESULTS}${stamp}-etcd.json`, `${JSON.stringify({ conns: o.conns, seconds: o.seconds, dlockCycle, etcdLock, etcdTxn, dlockCheck, etcdGet, etcdSget, redisWait, failovers, rejoinsAfterKill, rejoinsAfterStop }, null, 2)}\n`);
    return errors === 0 && dlockCycle.requests > 0;
  } finally {
    for (const n of nodes) if (n.child.exitCode === null) n.child.kill('SIGKILL');
    await etcd.stop();
  }
}
