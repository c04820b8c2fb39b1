/**
 * A closed-loop load generator over raw TCP, meant to run in its own process
 * (never in the broker's): N connections, each keeping D requests in flight,
 * a warm-up, then a fixed measured window. Latency per request goes into an
 * HDR histogram (hdr-histogram-js), in microseconds.
 *
 *   node dist/bench/loadgen.js --ports 9002,9003 --scenario check --conns 50 --depth 1 --seconds 5
 *
 * Prints one JSON line (LoadResult) on stdout.
 *
 * Scenarios, dlock's line protocol:
 *   check      `check bench-<i>` on a lock nobody holds
 *   check-busy the read path's cost under writes: even
 *              connections `preempt`/`release` bench-<i> as in cycle, each odd
 *              one `check`s its neighbour's lock, which is always changing;
 *              only the checks are counted and timed (a check of a lock
 *              with an uncommitted change waits for its commit)
 *   cycle      `preempt bench-<i>` / `release bench-<i>`, each connection its own lock
 *   shared     [LP-20] `preempt bench-rw shared` / `release bench-rw`: every
 *              connection holds one lock shared with all the others, as cycle
 *   semaphore  [LP-21] `preempt bench-sem limit=10000` / `release bench-sem`: one
 *              semaphore every connection holds a place of, never full
 *   all3       [LP-22] `preempt bench-<i>-a bench-<i>-b bench-<i>-c` / `release` of
 *              the three: each connection its own three locks, all or nothing
 *   contended  every connection preempts one shared lock, releasing when it wins
 *   handoff    every connection `acquire`s one lock and releases it on grant; the
 *              latency recorded is from a `release` being sent to the next grant
 *              arriving (one process, one clock), and ops are grants
 * and Redis (inline commands; every reply used here is one RESP line):
 *   redis-get    `GET bench-<i>` on a missing key (`$-1`), against `check`
 *   redis-cycle  `SET bench-<i> <token> NX PX 30000` / `EVALSHA <sha> 1 bench-<i> <token>`
 *                (compare-and-delete), against preempt/release
 *   redis-cycle-wait  the same, each write followed by `WAIT <replicas> 0`, against a
 *                Redis with replicas: answered once every replica has it, as dlock
 *                answers a write once every follower has it; the WAITs are not counted
 * Requests are counted, not cycles (except handoff: grants).
 */
import { connect, type Socket } from 'node:net';
import * as hdr from 'hdr-histogram-js';

export type Scenario = 'check' | 'sync-check' | 'check-busy' | 'cycle' | 'shared' | 'semaphore' | 'all3' | 'contended' | 'handoff' | 'redis-get' | 'redis-cycle' | 'redis-cycle-wait';

/** The Lua compare-and-delete every Redis lock recipe releases with. */
export const REDIS_RELEASE_LUA = 'if redis.call("get",KEYS[1]) == ARGV[1] then return redis.call("del",KEYS[1]) else return 0 end';

export interface LoadOptions {
  host: string;
  ports: number[];
  scenario: Scenario;
  conns: number;
  depth: number;
  warmupMs: number;
  durationMs: number;
  /** redis-cycle: SHA1 of REDIS_RELEASE_LUA, loaded by the caller. */
  sha?: string;
  /** redis-cycle-wait: how many replicas WAIT waits for. */
  replicas?: number;
}

export interface LoadResult {
  scenario: Scenario;
  conns: number;
  depth: number;
  requests: number;
  seconds: number;
  opsPerSec: number;
  p50us: number;
  p99us: number;
  p999us: number;
  errors: number;
}

/** handoff: when the current holder sent its release (µs, this process's clock). */
let handoffReleasedAt = 0;

class Conn {
  private buf = '';
  private greeted = false;
  private step = 0;
  private readonly sentAt: number[] = [];
  /** Per request sent: whether its reply counts (a WAIT's does not). */
  private readonly counted: boolean[] = [];
  private won = false;
  /** Redis: the next line is the payload of a bulk reply, not a reply. */
  private skipLine = false;
  readonly socket: Socket;

  constructor(
    private readonly id: number,
    port: number,
    host: string,
    private readonly opts: LoadOptions,
    private readonly onReply: (latencyUs: number, line: string) => void,
    private readonly running: () => boolean,
  ) {
    this.socket = connect({ port, host });
    this.socket.setNoDelay(true);
    if (opts.scenario.startsWith('redis')) {
      // Redis sends no greeting: start when connected.
      this.greeted = true;
      this.socket.once('connect', () => this.send(this.opts.depth));
    }
    this.socket.setEncoding('latin1');
    this.socket.on('data', (d: string) => this.onData(d));
  }

  private next(): string {
    const lock = `bench-${this.id}`;
    switch (this.opts.scenario) {
      case 'check':
        return `check ${lock}\n`;
      case 'sync-check':
        // [LP-17] a fresh read: each check after a sync (two requests, counted as two)
        return this.step++ % 2 === 0 ? 'sync\n' : `check ${lock}\n`;
      case 'check-busy':
        if (this.id % 2 === 1) return `check bench-${this.id - 1}\n`;
        return this.step++ % 2 === 0 ? `preempt ${lock}\n` : `release ${lock}\n`;
      case 'cycle':
        return this.step++ % 2 === 0 ? `preempt ${lock}\n` : `release ${lock}\n`;
      case 'shared':
        return this.step++ % 2 === 0 ? 'preempt bench-rw shared\n' : 'release bench-rw\n';
      case 'semaphore':
        return this.step++ % 2 === 0 ? 'preempt bench-sem limit=10000\n' : 'release bench-sem\n';
      case 'all3':
        return `${this.step++ % 2 === 0 ? 'preempt' : 'release'} ${lock}-a ${lock}-b ${lock}-c\n`;
      case 'contended':
        return this.won ? 'release bench-shared\n' : 'preempt bench-shared\n';
      case 'handoff':
        if (this.won) {
          handoffReleasedAt = Number(process.hrtime.bigint() / 1000n);
          return 'release bench-handoff\n';
        }
        return 'acquire bench-handoff\n';
      case 'redis-get':
        return `GET get-${this.id}\r\n`; // keys no other scenario sets: always the miss, like `check` of a free lock
      case 'redis-cycle':
        return this.step++ % 2 === 0 ? `SET ${lock} t${this.id} NX PX 30000\r\n` : `EVALSHA ${this.opts.sha ?? ''} 1 ${lock} t${this.id}\r\n`;
      case 'redis-cycle-wait': {
        const s = this.step++ % 4;
        if (s % 2 === 1) return `WAIT ${this.opts.replicas ?? 0} 0\r\n`;
        return s === 0 ? `SET ${lock} t${this.id} NX PX 30000\r\n` : `EVALSHA ${this.opts.sha ?? ''} 1 ${lock} t${this.id}\r\n`;
      }
    }
  }

  private send(n: number): void {
    let out = '';
    const now = Number(process.hrtime.bigint() / 1000n);
    for (let i = 0; i < n; i++) {
      const line = this.next();
      out += line;
      this.sentAt.push(now);
      this.counted.push(!line.startsWith('WAIT'));
    }
    this.socket.write(out);
  }

  private onData(d: string): void {
    this.buf += d;
    let start = 0;
    let replies = 0;
    let nl: number;
    while ((nl = this.buf.indexOf('\n', start)) !== -1) {
      const line = this.buf.slice(start, nl);
      start = nl + 1;
      if (!this.greeted) {
        this.greeted = true;
        this.send(this.opts.depth);
        continue;
      }
      if (this.skipLine) {
        this.skipLine = false;
        continue;
      }
      // RESP bulk string `$<n>` with n >= 0: its payload follows on the next line.
      if (line.charCodeAt(0) === 36 /* $ */ && line.charCodeAt(1) !== 45 /* - */) this.skipLine = true;
      const sent = this.sentAt.shift() ?? 0;
      const counts = this.counted.shift() ?? true;
      const now = Number(process.hrtime.bigint() / 1000n);
      if (this.opts.scenario === 'contended') this.won = line.startsWith('PreemptLock Success') || (this.won && !line.startsWith('ReleaseLock'));
      if (this.opts.scenario === 'handoff') {
        const granted = line.startsWith('AcquireLock Success');
        this.won = granted;
        // A grant right after someone's release: that gap is the handoff.
        if (granted && handoffReleasedAt > 0) this.onReply(now - handoffReleasedAt, line);
      } else if (counts) {
        this.onReply(now - sent, line);
      }
      replies++;
    }
    this.buf = this.buf.slice(start);
    if (replies > 0 && this.running()) this.send(replies);
  }
}

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  let measuring = false;
  let running = true;
  let requests = 0;
  let errors = 0;
  const onReply = (us: number, line: string): void => {
    if (!measuring) return;
    if (opts.scenario === 'check-busy' && !line.startsWith('CheckLock')) return; // the writers only make the load
    requests++;
    if (line.startsWith('Error') || line.startsWith('-')) errors++; // dlock `Error: …`, Redis `-ERR …`
    hist.recordValue(Math.max(1, us));
  };
  const conns = Array.from({ length: opts.conns }, (_, i) => new Conn(i, opts.ports[i % opts.ports.length] as number, opts.host, opts, onReply, () => running));
  await new Promise((r) => setTimeout(r, opts.warmupMs));
  measuring = true;
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, opts.durationMs));
  measuring = false;
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  running = false;
  for (const c of conns) c.socket.destroy();
  const result: LoadResult = {
    scenario: opts.scenario,
    conns: opts.conns,
    depth: opts.depth,
    requests,
    seconds,
    opsPerSec: Math.round(requests / seconds),
    p50us: hist.getValueAtPercentile(50),
    p99us: hist.getValueAtPercentile(99),
    p999us: hist.getValueAtPercentile(99.9),
    errors,
  };
  hist.destroy();
  return result;
}

function arg(name: string, def?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i === -1 ? def : process.argv[i + 1];
  if (v === undefined) throw new Error(`loadgen: --${name} is required`);
  return v;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await runLoad({
    host: arg('host', '127.0.0.1'),
    ports: arg('ports').split(',').map(Number),
    scenario: arg('scenario', 'check') as Scenario,
    conns: Number(arg('conns', '50')),
    depth: Number(arg('depth', '1')),
    warmupMs: Number(arg('warmup', '0.5')) * 1000,
    durationMs: Number(arg('seconds', '3')) * 1000,
    sha: arg('sha', ''),
    replicas: Number(arg('replicas', '0')),
  });
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
