/**
 * `npm run bench`: dlock's throughput and latency, with Redis beside it in
 * the same run, on the same machine, driven by the same load generator (its
 * own process), so the ratios hold on a noisy machine.
 *
 *   npm run bench                      headline scenarios (about a minute)
 *   npm run bench -- --full            the whole matrix, follower scaling, 1M-lock memory
 *   npm run bench -- --scenario NAME   cases whose name contains NAME
 *   npm run bench -- --seconds N       measured window per case (default 3)
 *   npm run bench -- --smoke           every default case for a moment (npm test)
 *   npm run bench -- --scenario failover   (or resync) only the fault benches (faults.ts)
 *   npm run bench -- --scenario watch  a release heard by a watcher (LP-19), against an etcd watch
 *   npm run bench -- --scenario etcd   dlock nodes on a 3-member etcd against etcd's own
 *                                      lock recipe, txn pairs and gets; failover, rejoin (etcd.ts)
 *   npm run bench -- --cli PATH        bench another build's dist/ui/cli.js (the previous
 *                                      build, side by side: run both, alternately)
 *   npm run bench -- --profile DIR     also run dlock under --cpu-prof: keep one
 *                                      .cpuprofile per thread in DIR (open them in
 *                                      Chrome DevTools or speedscope for flame graphs)
 *                                      and print each thread's hottest functions
 *
 * Every case also reports the server's CPU time per request (dlock's whole
 * process, all threads; or redis-server's), from /proc.
 *
 * Writes bench/results/<date>.json and bench/results/<date>.svg (headline
 * pairs, dlock vs Redis). Client library against client library: dlock's
 * TypeScript client and live-mutex's, each against its own server, in
 * bench/libs.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { cpuDuring, summarizeProfiles, type CpuTimes } from './cpu.js';
import { fillLocks } from './fill.js';
import type { FaultResult } from './faults.js';
import type { LibResult } from './libs.js';
import { REDIS_RELEASE_LUA, type LoadResult, type Scenario } from './loadgen.js';
import { startRedis, type Redis } from './redis.js';

// Stopped by a signal (a test's time limit, Ctrl+C): exit through 'exit',
// where the etcd members and dlock node processes it started are killed,
// instead of leaving them running.
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => process.exit(signal === 'SIGTERM' ? 143 : 130));

const argv0 = process.argv.slice(2);
const cliAt = argv0.indexOf('--cli');
/** The dlock build under test: this one, or `--cli PATH` (another build's dist/ui/cli.js, or dist/src/cli.js before it moved). */
const CLI = cliAt === -1 ? fileURLToPath(new URL('../ui/cli.js', import.meta.url)) : (argv0[cliAt + 1] as string);
const LOADGEN = fileURLToPath(new URL('./loadgen.js', import.meta.url));
const LIBS = fileURLToPath(new URL('./libs.js', import.meta.url));
const FAULTS = fileURLToPath(new URL('./faults.js', import.meta.url));
const RESULTS = fileURLToPath(new URL('../../bench/results/', import.meta.url));

const argv = process.argv.slice(2);
const flag = (name: string): boolean => argv.includes(`--${name}`);
const value = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i === -1 ? undefined : argv[i + 1];
};
const smoke = flag('smoke');
const full = flag('full');
const only = value('scenario');
const seconds = smoke ? 0.3 : Number(value('seconds') ?? '3');
const warmup = smoke ? 0.1 : Math.min(1, seconds / 3);
const profileDir = value('profile');

interface Case {
  name: string;
  scenario: Scenario;
  /** Where the connections go ('redis-replicated': the Redis with two replicas). */
  via: 'followers' | 'leader' | 'redis' | 'redis-replicated';
  conns: number;
  depth: number;
  /** Cluster size for dlock cases. */
  followers: number;
  /** The Redis case this one is compared with (ratio column). */
  vs?: string;
  headline?: boolean;
}

const dl = (scenario: Scenario, via: 'followers' | 'leader', conns: number, depth: number, followers = 2): Case => {
  const what = { check: 'check', 'sync-check': 'sync+check (2 requests per fresh read)', 'check-busy': 'check of locks being written', cycle: 'preempt+release', shared: 'shared preempt+release, one lock [LP-20]', semaphore: 'semaphore preempt+release, one lock [LP-21]', all3: 'preempt+release of 3 locks at once [LP-22]', contended: 'contended preempt', handoff: 'handoff', 'redis-get': '', 'redis-cycle': '', 'redis-cycle-wait': '' }[scenario];
  const name = scenario === 'handoff' ? `handoff, ${conns - 1} waiters, via followers` : `${what} via ${via}${followers === 2 ? '' : ` (${followers} followers)`}, c${conns} d${depth}`;
  return { name, scenario, via, conns, depth, followers };
};
const rd = (scenario: 'redis-get' | 'redis-cycle', conns: number, depth: number): Case => ({
  name: `redis ${scenario === 'redis-get' ? 'GET' : 'SET NX PX + Lua release'}, c${conns} d${depth}`,
  scenario,
  via: 'redis',
  conns,
  depth,
  followers: 0,
});
const pair = (d: Case, r: Case, headline = false): Case[] => [{ ...d, vs: r.name, headline }, r];
/** Replicas of the Redis that WAITs: as many as dlock's default followers. */
const REDIS_REPLICAS = 2;
/** dlock's replicated write against Redis's: each answers once every replica has the write. */
const REDIS_WAIT: Case = { name: `redis SET NX PX + release, each + WAIT ${REDIS_REPLICAS}, c50 d1`, scenario: 'redis-cycle-wait', via: 'redis-replicated', conns: 50, depth: 1, followers: 0 };
const WAIT_PARTNER = 'preempt+release via followers, c50 d1';

/** What --scenario matches to pick the client-library comparison. */
const LIBS_CASE = 'client library live-mutex';

/** Fault benches, each in its own process (faults.ts). */
const FAULT_CASES: Array<{ name: string; what: 'failover' | 'resync'; locks: number; trials: number; kind?: 'session' }> = smoke
  ? [
      { name: 'failover, empty table', what: 'failover', locks: 0, trials: 1 },
      { name: 'resync, 1000 locks', what: 'resync', locks: 1000, trials: 1 },
    ]
  : [
      { name: 'failover, empty table', what: 'failover', locks: 0, trials: 5 },
      { name: 'failover, 100k leases', what: 'failover', locks: 100_000, trials: 5 },
      { name: 'resync, 100k leases', what: 'resync', locks: 100_000, trials: 3 },
      { name: 'resync, 1M leases', what: 'resync', locks: 1_000_000, trials: 3 },
      { name: 'resync, 1M session locks', what: 'resync', locks: 1_000_000, trials: 3, kind: 'session' },
    ];

let cases: Case[] = [
  ...pair(dl('check', 'followers', 50, 1), rd('redis-get', 50, 1), true),
  dl('sync-check', 'followers', 50, 1),
  ...pair(dl('cycle', 'followers', 50, 1), rd('redis-cycle', 50, 1), true),
  REDIS_WAIT,
  dl('shared', 'followers', 50, 1),
  dl('semaphore', 'followers', 50, 1),
  dl('all3', 'followers', 50, 1),
  ...pair(dl('check', 'followers', 50, 16), rd('redis-get', 50, 16), true),
  dl('check', 'leader', 50, 1),
  dl('check-busy', 'followers', 50, 1),
  dl('check-busy', 'leader', 50, 1),
  dl('cycle', 'leader', 50, 1),
  dl('contended', 'followers', 16, 1),
  dl('handoff', 'followers', 17, 1),
];
if (full) {
  for (const conns of [1, 16, 64]) {
    for (const depth of [1, 16]) {
      cases.push(...pair(dl('check', 'followers', conns, depth), rd('redis-get', conns, depth)));
      cases.push(dl('check', 'leader', conns, depth));
      cases.push(...pair(dl('cycle', 'followers', conns, depth), rd('redis-cycle', conns, depth)));
      cases.push(dl('cycle', 'leader', conns, depth));
      cases.push(dl('contended', 'followers', conns, depth));
    }
  }
  for (const followers of [0, 1, 4]) {
    const via = followers === 0 ? 'leader' : 'followers';
    cases.push(dl('check', via, 50, 1, followers), dl('cycle', via, 50, 1, followers));
  }
}
// One run per name, in first-seen order.
cases = cases.filter((c, i) => cases.findIndex((x) => x.name === c.name) === i);
// dlock across processes on a 3-member etcd, against etcd itself (bench/etcd.ts): its own run.
// A release heard by a watcher, against etcd's watch (bench/watch.ts): its own run.
if (only === 'watch') {
  const { runWatchBench } = await import('./watch.js');
  await runWatchBench(smoke ? 20 : 500);
  process.exit(0);
}
if (only === 'etcd') {
  const { runEtcdBench } = await import('./etcd.js');
  // A smoke run measures 1 s here, not 0.3: etcd's lock recipe takes over
  // 100 ms a pair, and on a loaded 2-core machine a 0.3 s window saw none end.
  const ok = await runEtcdBench({ seconds: smoke ? 1 : seconds, warmup, conns: 50, trials: smoke ? 1 : 3, quick: smoke });
  process.exit(ok ? 0 : 1);
}

if (only !== undefined) {
  const picked = cases.filter((c) => c.name.includes(only));
  const partners = picked.flatMap((c) => cases.filter((x) => x.name === c.vs || (c.name === WAIT_PARTNER && x === REDIS_WAIT)));
  cases = cases.filter((c) => picked.includes(c) || partners.includes(c));
  if (cases.length === 0 && !'memory'.includes(only) && !LIBS_CASE.includes(only) && !FAULT_CASES.some((f) => f.name.includes(only))) {
    process.stderr.write(`bench: no scenario matches "${only}"\n`);
    process.exit(2);
  }
}

// ---- processes ----

interface ClusterProc {
  pid: number;
  leader: number;
  followers: number[];
  stop: () => Promise<void>;
}

function startCluster(followers: number): Promise<ClusterProc> {
  return new Promise((resolve, reject) => {
    const prof = profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profileDir];
    // The memory bench fills a million locks from one connection: above the default per-client limit.
    const child: ChildProcess = spawn(process.execPath, [...prof, CLI, 'up', '--quiet', '--no-tui', '--port', '0', '--followers', String(followers), '--max-locks-per-client', '10000000'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      if (out.length < 1 << 16) out += d;
      const m = /^ready (.*)$/m.exec(out);
      if (m === null || out === '') return;
      out = ' '; // resolve once, keep draining
      const ports = (m[1] as string).split(' ').map((p) => [p.split('=')[0] as string, Number(p.split(':').pop())] as const);
      resolve({
        pid: child.pid as number,
        leader: ports.find(([n]) => n === 'leader')?.[1] as number,
        followers: ports.filter(([n]) => n !== 'leader').map(([, p]) => p),
        stop: () =>
          new Promise((done) => {
            child.once('exit', () => done());
            child.kill('SIGTERM');
          }),
      });
    });
    child.once('exit', (code) => reject(new Error(`dlock up exited with ${code} before it was ready`)));
  });
}

function load(ports: number[], c: Case, sha?: string): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const args = [LOADGEN, '--ports', ports.join(','), '--scenario', c.scenario, '--conns', String(c.conns), '--depth', String(c.depth), '--seconds', String(seconds), '--warmup', String(warmup), '--replicas', String(REDIS_REPLICAS)];
    if (sha !== undefined) args.push('--sha', sha);
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as LoadResult) : reject(new Error(`loadgen exited with ${code}`))));
  });
}

const rssOf = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;

/** RSS of the whole dlock process (leader + 2 followers) holding `n` locks. */
async function memory(n: number): Promise<{ locks: number; rssBefore: number; rssAfter: number; bytesPerLock: number }> {
  const cluster = await startCluster(2);
  try {
    const rssBefore = rssOf(cluster.pid);
    const conn = await fillLocks(cluster.leader, n); // kept open: these are its session locks
    // every follower has them once the leader has answered (commit = all acks)
    const rssAfter = rssOf(cluster.pid);
    conn.destroy();
    return { locks: n, rssBefore, rssAfter, bytesPerLock: Math.round((rssAfter - rssBefore) / n) };
  } finally {
    await cluster.stop();
  }
}

// ---- run ----

const redis: Redis | null = await startRedis();
if (redis === null) process.stderr.write('bench: redis-server is not installed (apt-get install redis-server); running dlock alone, no ratios\n');
const sha = redis === null ? undefined : await redis.load(REDIS_RELEASE_LUA);
// The replicated Redis only when a case needs it (the script loaded there too: EVALSHA is per server).
const redisRepl: Redis | null = redis !== null && cases.includes(REDIS_WAIT) ? await startRedis(REDIS_REPLICAS) : null;
const shaRepl = redisRepl === null ? undefined : await redisRepl.load(REDIS_RELEASE_LUA);

const rows: Array<{ c: Case; r: LoadResult; cpu: CpuTimes | null }> = [];
const todo = cases.filter((c) => (c.via !== 'redis' || redis !== null) && (c.via !== 'redis-replicated' || redisRepl !== null));
const clusters = new Map<number, ClusterProc>();
try {
  for (const [i, c] of todo.entries()) {
    process.stderr.write(`[${i + 1}/${todo.length}] ${c.name} (${seconds}s)…\n`);
    let ports: number[];
    let pid: number;
    if (c.via === 'redis' || c.via === 'redis-replicated') {
      const r = (c.via === 'redis' ? redis : redisRepl) as Redis;
      ports = [r.port];
      pid = r.pid; // the primary's CPU: the replicas' is not counted
    } else {
      let cl = clusters.get(c.followers);
      if (cl === undefined) {
        for (const [n, other] of clusters) {
          await other.stop();
          clusters.delete(n);
        }
        cl = await startCluster(c.followers);
        clusters.set(c.followers, cl);
      }
      ports = c.via === 'leader' ? [cl.leader] : cl.followers;
      pid = cl.pid;
    }
    const { result, cores } = await cpuDuring(pid, () => load(ports, c, c.via === 'redis-replicated' ? shaRepl : sha));
    rows.push({ c, r: result, cpu: cores });
  }
} finally {
  for (const cl of clusters.values()) await cl.stop();
  await redis?.stop();
  await redisRepl?.stop();
}

// ---- client libraries: dlock vs live-mutex ----

function libRun(args: string[]): Promise<LibResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [LIBS, ...args, '--seconds', String(seconds), '--warmup', String(warmup)], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as LibResult) : reject(new Error(`libs exited with ${code}`))));
  });
}

async function liveMutexBroker(): Promise<{ port: number; stop: () => void }> {
  const child = spawn(process.execPath, [LIBS, '--broker'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /^ready (\d+)$/m.exec(out);
      if (m !== null) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`live-mutex broker exited with ${code} before it was ready\n${err}`)));
  });
  return { port, stop: () => child.kill('SIGTERM') };
}

const libs: Array<LibResult & { label: string }> = [];
if (only === undefined || LIBS_CASE.includes(only)) {
  const conns = 16;
  // dlock as deployed (2 followers, every write replicated), and like for like
  // with live-mutex's single unreplicated broker (no followers).
  for (const followers of [2, 0]) {
    process.stderr.write(`client libraries: ${conns} clients acquire+release, dlock with ${followers} followers…\n`);
    const cl = await startCluster(followers);
    try {
      const r = await libRun(['--system', 'dlock', '--ports', String(cl.leader), '--conns', String(conns)]);
      libs.push({ ...r, label: `dlock, leader + ${followers} followers` });
    } finally {
      await cl.stop();
    }
  }
  process.stderr.write(`client libraries: ${conns} clients acquire+release, live-mutex…\n`);
  const broker = await liveMutexBroker();
  try {
    libs.push({ ...(await libRun(['--system', 'live-mutex', '--ports', String(broker.port), '--conns', String(conns)])), label: 'live-mutex' });
  } finally {
    broker.stop();
  }
}

// ---- faults: failover and resync times ----

function faultRun(f: (typeof FAULT_CASES)[number]): Promise<FaultResult> {
  return new Promise((resolve, reject) => {
    const args = [FAULTS, '--what', f.what, '--locks', String(f.locks), '--trials', String(f.trials), '--kind', f.kind ?? 'lease'];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as FaultResult) : reject(new Error(`faults.js ${f.name} exited with ${code}`))));
  });
}

const faults: Array<FaultResult & { name: string }> = [];
for (const f of FAULT_CASES) {
  if (only !== undefined && !f.name.includes(only)) continue;
  process.stderr.write(`${f.name}: ${f.trials} trial(s)…\n`);
  faults.push({ ...(await faultRun(f)), name: f.name });
}

const mem: Array<Awaited<ReturnType<typeof memory>>> = [];
if (only === undefined || 'memory'.includes(only)) {
  for (const n of smoke ? [2000] : full ? [100_000, 1_000_000] : [100_000]) {
    process.stderr.write(`memory: ${n} locks held, leader + 2 followers…\n`);
    mem.push(await memory(n));
  }
}

// ---- report ----

const byName = new Map(rows.map((x) => [x.c.name, x.r]));
const ratio = (c: Case, r: LoadResult): string => {
  const other = c.vs === undefined ? undefined : byName.get(c.vs);
  return other === undefined || other.opsPerSec === 0 ? '' : (r.opsPerSec / other.opsPerSec).toFixed(2);
};
/** Server CPU (user + system, all threads) per request, in µs. */
const cpuPerReq = (cpu: CpuTimes | null, r: LoadResult): number | null => (cpu === null || r.opsPerSec === 0 ? null : Math.round((((cpu.user + cpu.sys) * 1e6) / r.opsPerSec) * 10) / 10);
const W = 52;
const pad = (x: string | number, n: number): string => String(x).padStart(n);
let table = `${'scenario'.padEnd(W)}${pad('ops/s', 10)}${pad('p50 µs', 9)}${pad('p99 µs', 9)}${pad('p99.9 µs', 10)}${pad('errors', 8)}${pad('÷redis', 8)}${pad('cpu µs/req', 12)}\n`;
for (const { c, r, cpu } of rows) table += `${c.name.padEnd(W)}${pad(r.opsPerSec, 10)}${pad(r.p50us, 9)}${pad(r.p99us, 9)}${pad(r.p999us, 10)}${pad(r.errors, 8)}${pad(ratio(c, r), 8)}${pad(cpuPerReq(cpu, r)?.toFixed(1) ?? '', 12)}\n`;
for (const l of libs) {
  const base = libs.find((x) => x.system === 'live-mutex');
  const vs = l.system === 'dlock' && base !== undefined && base.cyclesPerSec > 0 ? ` (${(l.cyclesPerSec / base.cyclesPerSec).toFixed(2)}x live-mutex)` : '';
  table += `client library ${l.label}, ${l.conns} clients: ${l.cyclesPerSec} acquire+release cycles/s, p50 ${l.p50us} µs, p99 ${l.p99us} µs${vs}\n`;
}
for (const m of mem) table += `memory: ${m.locks} locks, leader + 2 followers: RSS ${(m.rssBefore / 2 ** 20).toFixed(0)} MiB -> ${(m.rssAfter / 2 ** 20).toFixed(0)} MiB, ${m.bytesPerLock} bytes per lock\n`;
for (const f of faults) table += `${f.name}: median ${f.medianMs} ms, max ${f.maxMs} ms over ${f.ms.length} trial(s) [${f.ms.join(', ')}]; supervisor's own figure ${f.supervisorMs.join(', ')} ms${f.writeStallMs.length > 0 ? `; slowest write on the leader meanwhile ${f.writeStallMs.join(', ')} ms` : ''}\n`;
const waitRow = byName.get(REDIS_WAIT.name);
const dlRow = byName.get(WAIT_PARTNER);
if (waitRow !== undefined && dlRow !== undefined && waitRow.opsPerSec > 0) {
  table += `replicated writes, each answered once every replica has it: dlock ${WAIT_PARTNER} ${dlRow.opsPerSec} req/s vs Redis + ${REDIS_REPLICAS} replicas with WAIT ${waitRow.opsPerSec} req/s: ${(dlRow.opsPerSec / waitRow.opsPerSec).toFixed(2)}x\n`;
}
table += `handoff latencies are from a release being sent to the next waiter's grant; ops/s there are grants/s\n`;
table += `failover: from killing the leader's worker to a write sent at that moment through a follower being answered; resync: from killing a follower's worker to its replacement answering a check\n`;
table += `cpu µs/req: the server process's CPU time (user + system, every thread) per request, over the load generator's run\n`;
process.stdout.write(table);

/** Headline pairs as bars; each pair on its own scale, since the ratio is the point. */
function svg(): string {
  const pairs = rows.filter(({ c }) => c.headline === true && c.vs !== undefined && byName.has(c.vs));
  const barW = 560;
  const rowH = 78;
  const h = 48 + pairs.length * rowH;
  const bar = (y: number, v: number, max: number, color: string, label: string, unit = 'ops/s'): string => {
    const w = Math.max(2, Math.round((v / max) * barW));
    return `<rect x="20" y="${y}" width="${w}" height="18" fill="${color}"/><text x="${28 + w}" y="${y + 14}" font-size="12">${v.toLocaleString('en-US')} ${unit} ${label}</text>`;
  };
  const body = pairs
    .map(({ c, r }, i) => {
      const y = 44 + i * rowH;
      const other = byName.get(c.vs as string) as LoadResult;
      const max = Math.max(r.opsPerSec, other.opsPerSec, 1);
      const title = c.name.replace(/, c(\d+) d(\d+)$/, ', $1 connections, depth $2');
      return `<text x="20" y="${y}" font-size="13" font-weight="bold">${title}: ${ratio(c, r)}× Redis</text>${bar(y + 8, r.opsPerSec, max, '#2f6fdb', 'dlock')}${bar(y + 30, other.opsPerSec, max, '#d9534f', `Redis ${redis?.version ?? ''}`)}`;
    })
    .join('\n');
  // Client library against client library: every dlock variant and live-mutex on one scale.
  const base = libs.find((l) => l.system === 'live-mutex');
  let libBody = '';
  let libH = 0;
  if (base !== undefined && libs.length > 1) {
    const y0 = 44 + pairs.length * rowH;
    const max = Math.max(...libs.map((l) => l.cyclesPerSec), 1);
    libBody = `<text x="20" y="${y0}" font-size="13" font-weight="bold">client libraries, ${base.conns} clients, acquire+release cycles</text>`;
    libs.forEach((l, i) => {
      const y = y0 + 8 + i * 22;
      const color = l.system === 'live-mutex' ? '#d9534f' : '#2f6fdb';
      const vs = l.system === 'dlock' ? ` (${(l.cyclesPerSec / Math.max(1, base.cyclesPerSec)).toFixed(2)}× live-mutex)` : '';
      libBody += bar(y, l.cyclesPerSec, max, color, `${l.label}${vs}`, 'cycles/s');
    });
    libH = 30 + libs.length * 22;
  }
  const H = h + libH;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="1040" height="${H}" font-family="sans-serif">
<rect width="1040" height="${H}" fill="white"/>
<text x="20" y="22" font-size="15" font-weight="bold">dlock vs Redis and live-mutex: same load, same machine (${cpus().length} cores), one run</text>
${body}
${libBody}
</svg>
`;
}

if (!smoke) {
  mkdirSync(RESULTS, { recursive: true });
  const stamp = new Date().toISOString().slice(0, 19).replace(/:/g, '-');
  const json = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? '?', node: process.version },
    redis: redis === null ? null : redis.version,
    seconds,
    cases: rows.map(({ c, r, cpu }) => ({ ...c, ...r, ratioVsRedis: ratio(c, r) === '' ? null : Number(ratio(c, r)), serverCpuCores: cpu, serverCpuUsPerRequest: cpuPerReq(cpu, r) })),
    clientLibraries: libs,
    faults,
    memory: mem,
  };
  writeFileSync(`${RESULTS}${stamp}.json`, `${JSON.stringify(json, null, 2)}\n`);
  if (redis !== null) writeFileSync(`${RESULTS}${stamp}.svg`, svg());
  process.stderr.write(`bench: wrote bench/results/${stamp}.json${redis === null ? '' : ' and .svg'}\n`);
}
if (profileDir !== undefined) {
  process.stdout.write(`\nCPU profiles of dlock's threads (self time; files in ${profileDir}: thread 0 is the main thread, then the leader, follower-1, follower-2, …):\n`);
  process.stdout.write(summarizeProfiles(profileDir));
}
if (rows.some(({ r }) => r.requests === 0 || r.errors > 0)) {
  process.stderr.write('bench: a scenario completed no request or got errors\n');
  process.exitCode = 1;
}
