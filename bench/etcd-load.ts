/**
 * etcd's side of `npm run bench -- --scenario etcd`, in its own process (as
 * loadgen.ts is for dlock): N workers, each one operation at a time, a
 * warm-up, then a measured window; latency per operation in an HDR
 * histogram, µs. One etcd3 client (its gRPC channels are shared, as an
 * application's would be).
 *
 *   node dist/bench/etcd-load.js --hosts URL,URL --mode lock --conns 50 --seconds 3
 *
 * Modes:
 *   lock   the etcd3 client's lock recipe: `lock(name).acquire()` then
 *          `release()`, each worker its own lock (a lease, a put, a wait
 *          for older keys, a delete, a revoke: what etcd users run)
 *   txn    a bare pair: a txn creating the key if absent, then a delete,
 *          each worker its own key (the least a lock on etcd can cost)
 *   get    a linearizable get of a missing key (etcd's read that cannot
 *          be stale, against dlock's `check` from a local replica)
 *   sget   a serializable get (served by the member the client reached,
 *          possibly stale, as dlock's `check` from a replica is)
 * Counts operations (a lock or txn pair is one), prints one JSON line
 * shaped as loadgen's LoadResult.
 */
import { Etcd3 } from 'etcd3';
import * as hdr from 'hdr-histogram-js';
import type { LoadResult } from './loadgen.js';

type Mode = 'lock' | 'txn' | 'get' | 'sget';

function arg(name: string, def?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i === -1 ? def : process.argv[i + 1];
  if (v === undefined) throw new Error(`etcd-load: --${name} is required`);
  return v;
}

async function main(): Promise<void> {
  const hosts = arg('hosts').split(',');
  const mode = arg('mode') as Mode;
  const conns = Number(arg('conns', '50'));
  const warmupMs = Number(arg('warmup', '0.5')) * 1000;
  const durationMs = Number(arg('seconds', '3')) * 1000;
  const client = new Etcd3({ hosts });
  const ns = client.namespace(`/bench-${process.pid}/`);
  const hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  let measuring = false;
  let running = true;
  let ops = 0;
  let errors = 0;
  const one = async (i: number): Promise<void> => {
    const key = `k-${i}`;
    if (mode === 'lock') {
      const lock = ns.lock(key).ttl(30);
      await lock.acquire();
      await lock.release();
    } else if (mode === 'txn') {
      await ns.if(key, 'Create', '==', 0).then(ns.put(key).value('1')).commit();
      await ns.delete().key(key).exec();
    } else {
      await ns.get(key).serializable(mode === 'sget').exec();
    }
  };
  const worker = async (i: number): Promise<void> => {
    while (running) {
      const t = process.hrtime.bigint();
      try {
        await one(i);
        if (measuring) {
          ops++;
          hist.recordValue(Math.max(1, Number((process.hrtime.bigint() - t) / 1000n)));
        }
      } catch (err) {
        if (measuring) errors++;
        void err;
      }
    }
  };
  const workers = Array.from({ length: conns }, (_v, i) => worker(i));
  await new Promise((resolve) => setTimeout(resolve, warmupMs));
  measuring = true;
  const t0 = process.hrtime.bigint();
  await new Promise((resolve) => setTimeout(resolve, durationMs));
  measuring = false;
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  running = false;
  // Not awaited: a worker may be inside an acquire that waits out a lease
  // (30 s); the window is over, so this process just ends (below).
  void workers;
  const result: LoadResult = {
    scenario: 'cycle',
    conns,
    depth: 1,
    requests: ops,
    seconds,
    opsPerSec: Math.round(ops / seconds),
    p50us: hist.getValueAtPercentile(50),
    p99us: hist.getValueAtPercentile(99),
    p999us: hist.getValueAtPercentile(99.9),
    errors,
  };
  hist.destroy();
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
}

await main();
