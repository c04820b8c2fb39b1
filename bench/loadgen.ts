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
 * Scenarios (dlock line protocol):
 *   check      `check bench-<i>` on a lock nobody holds
 *   cycle      `preempt bench-<i>` / `release bench-<i>`, each connection its own lock
 *   contended  every connection preempts one shared lock, releasing when it wins
 * Requests are counted, not cycles.
 */
import { connect, type Socket } from 'node:net';
import * as hdr from 'hdr-histogram-js';

export type Scenario = 'check' | 'cycle' | 'contended';

export interface LoadOptions {
  host: string;
  ports: number[];
  scenario: Scenario;
  conns: number;
  depth: number;
  warmupMs: number;
  durationMs: number;
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

class Conn {
  private buf = '';
  private greeted = false;
  private step = 0;
  private readonly sentAt: number[] = [];
  private won = false;
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
    this.socket.setEncoding('latin1');
    this.socket.on('data', (d: string) => this.onData(d));
  }

  private next(): string {
    const lock = `bench-${this.id}`;
    switch (this.opts.scenario) {
      case 'check':
        return `check ${lock}\n`;
      case 'cycle':
        return this.step++ % 2 === 0 ? `preempt ${lock}\n` : `release ${lock}\n`;
      case 'contended':
        return this.won ? 'release bench-shared\n' : 'preempt bench-shared\n';
    }
  }

  private send(n: number): void {
    let out = '';
    const now = Number(process.hrtime.bigint() / 1000n);
    for (let i = 0; i < n; i++) {
      out += this.next();
      this.sentAt.push(now);
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
      const sent = this.sentAt.shift() ?? 0;
      if (this.opts.scenario === 'contended') this.won = line.startsWith('PreemptLock Success') || (this.won && !line.startsWith('ReleaseLock'));
      this.onReply(Number(process.hrtime.bigint() / 1000n) - sent, line);
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
    requests++;
    if (line.startsWith('Error')) errors++;
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
  });
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
