/**
 * Client library against client library: dlock's TypeScript client and
 * live-mutex's (the Node lock broker), the same loop in one process each:
 * N clients, each `acquire` its own key then `release` it, as fast as the
 * replies come. Counts cycles (one acquire + one release) and the latency of
 * each cycle (hdr-histogram-js, µs). Prints one JSON line.
 *
 *   node dist/bench/libs.js --system dlock --ports 9001 --conns 16 --seconds 3
 *   node dist/bench/libs.js --system live-mutex --ports 6970 --conns 16 --seconds 3
 *   node dist/bench/libs.js --broker     (live-mutex's broker, its own process; prints `ready PORT`)
 */
import * as hdr from 'hdr-histogram-js';
import lm from 'live-mutex';
import { connect } from '../src/client/client.js';
import { onFreePort } from './free-port.js';

export interface LibResult {
  system: 'dlock' | 'live-mutex';
  conns: number;
  cycles: number;
  seconds: number;
  cyclesPerSec: number;
  p50us: number;
  p99us: number;
  p999us: number;
}

const argv = process.argv.slice(2);
const arg = (name: string, def?: string): string => {
  const i = argv.indexOf(`--${name}`);
  const v = i === -1 ? def : argv[i + 1];
  if (v === undefined) throw new Error(`libs: --${name} is required`);
  return v;
};

type Cycle = (key: string) => Promise<void>;

async function clients(system: 'dlock' | 'live-mutex', ports: number[], n: number): Promise<{ cycles: Cycle[]; close: () => void }> {
  const cycles: Cycle[] = [];
  const closers: Array<() => void> = [];
  for (let i = 0; i < n; i++) {
    const port = ports[i % ports.length] as number;
    if (system === 'dlock') {
      const c = await connect({ port });
      cycles.push(async (key) => {
        const got = await c.acquire(key);
        if (!got.ok) throw new Error(`dlock: acquire ${key} failed`);
        await c.release(key);
      });
      closers.push(() => c.destroy());
    } else {
      const c = new lm.Client({ port, host: '127.0.0.1', noDelay: true });
      await c.ensure();
      cycles.push(async (key) => {
        const { id } = await c.acquire(key);
        await c.release(key, { id });
      });
      closers.push(() => c.close());
    }
  }
  return { cycles, close: () => closers.forEach((f) => f()) };
}

async function run(): Promise<LibResult> {
  // live-mutex adds a process 'exit' listener per client; 16+ clients is not a leak.
  process.setMaxListeners(0);
  const system = arg('system') as 'dlock' | 'live-mutex';
  const ports = arg('ports').split(',').map(Number);
  const conns = Number(arg('conns', '16'));
  const warmupMs = Number(arg('warmup', '1')) * 1000;
  const durationMs = Number(arg('seconds', '3')) * 1000;
  const { cycles, close } = await clients(system, ports, conns);
  const hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  let measuring = false;
  let running = true;
  let count = 0;
  const loops = cycles.map(async (cycle, i) => {
    const key = `lib-${i}`;
    while (running) {
      const t0 = process.hrtime.bigint();
      await cycle(key);
      if (measuring) {
        count++;
        hist.recordValue(Math.max(1, Number((process.hrtime.bigint() - t0) / 1000n)));
      }
    }
  });
  await new Promise((r) => setTimeout(r, warmupMs));
  measuring = true;
  const start = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, durationMs));
  measuring = false;
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  running = false;
  await Promise.all(loops);
  close();
  const result: LibResult = {
    system,
    conns,
    cycles: count,
    seconds,
    cyclesPerSec: Math.round(count / seconds),
    p50us: hist.getValueAtPercentile(50),
    p99us: hist.getValueAtPercentile(99),
    p999us: hist.getValueAtPercentile(99.9),
  };
  hist.destroy();
  return result;
}

if (argv.includes('--broker')) {
  // live-mutex cannot listen on port 0 (it reads 0 as "use 6970"). When its
  // port is taken it swallows the error and exits 0 (seen under CI load),
  // so each try is awaited here and a refusal means the next free port.
  const { port } = await onFreePort('live-mutex broker', async (port) => {
    const broker = new lm.Broker({ port, host: '127.0.0.1', noDelay: true });
    broker.emitter.on('warning', () => {}); // its chatter is not ours to print
    try {
      return await broker.ensure();
    } catch (err: unknown) {
      process.stderr.write(`live-mutex broker: cannot listen on ${port}: ${String(err)}\n`);
      return null;
    }
  });
  process.stdout.write(`ready ${port}\n`);
  process.once('SIGTERM', () => process.exit(0));
} else {
  const r = await run();
  process.stdout.write(`${JSON.stringify(r)}\n`);
  process.exit(0); // live-mutex clients keep timers alive
}
