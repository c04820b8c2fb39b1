/**
 * `npm run bench -- --scenario watch`: how soon a watcher hears of a
 * release [LP-19], side by side with etcd, in one run.
 *
 *  - dlock: `dlock up --followers 2`; a holder on follower-1 takes a lock,
 *    a watcher on follower-2 sends `watch <lock> token=<t>`, then the holder
 *    sends `release`. Measured: from the release being sent to the
 *    watcher's `WatchLock:Free` (committed on the watcher's node).
 *  - etcd: a 3-member etcd on loopback; a key put, a watch on it (the
 *    etcd3 client), then a delete. Measured: from the delete being sent to
 *    the watch's delete event.
 *
 * One at a time (latency, not throughput): ROUNDS rounds each, p50 and p99.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as hdr from 'hdr-histogram-js';
import { EtcdCluster, hasEtcd } from '../test/helpers/etcd.js';
import { LineClient } from '../test/helpers/line-client.js';

const CLI = fileURLToPath(new URL('../ui/cli.js', import.meta.url));

function summary(h: hdr.Histogram): { p50: number; p99: number } {
  return { p50: h.getValueAtPercentile(50) / 1000, p99: h.getValueAtPercentile(99) / 1000 };
}

async function dlockRounds(rounds: number): Promise<{ p50: number; p99: number }> {
  const child = spawn(process.execPath, [CLI, 'up', '--quiet', '--no-tui', '--port', '0', '--followers', '2'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const ports = await new Promise<Record<string, number>>((resolve, reject) => {
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        const m = /^ready (.*)$/m.exec(out);
        if (m !== null) resolve(Object.fromEntries((m[1] as string).split(' ').map((p) => [p.split('=')[0] as string, Number(p.split(':').pop())])));
      });
      child.once('exit', (code) => reject(new Error(`dlock up exited with ${code}`)));
    });
    const holder = await LineClient.open(ports['follower-1'] as number);
    const watcher = await LineClient.open(ports['follower-2'] as number);
    const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
    for (let i = 0; i < rounds; i++) {
      const grant = await holder.ask(`preempt watched-${i % 8}`);
      const token = /token=(\d+)/.exec(grant)?.[1];
      if (token === undefined) throw new Error(`not granted: ${grant}`);
      const heard = watcher.ask(`watch watched-${i % 8} token=${token}`);
      const t0 = process.hrtime.bigint();
      const released = holder.ask(`release watched-${i % 8}`);
      const line = await heard;
      const us = Number((process.hrtime.bigint() - t0) / 1000n);
      if (line !== 'WatchLock:Free') throw new Error(`watch answered ${line}`);
      await released;
      if (i >= rounds / 10) h.recordValue(Math.max(1, us)); // the first tenth warms up
    }
    holder.close();
    watcher.close();
    return summary(h);
  } finally {
    child.kill('SIGTERM');
  }
}

async function etcdRounds(rounds: number): Promise<{ p50: number; p99: number }> {
  const etcd = await EtcdCluster.start(3);
  const { Etcd3 } = await import('etcd3');
  const client = new Etcd3({ hosts: etcd.endpoints });
  try {
    const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
    for (let i = 0; i < rounds; i++) {
      const key = `watched-${i % 8}`;
      await client.put(key).value('holder');
      const w = await client.watch().key(key).create();
      const deleted = new Promise<void>((resolve) => w.once('delete', () => resolve()));
      const t0 = process.hrtime.bigint();
      const sent = client.delete().key(key).exec();
      await deleted;
      const us = Number((process.hrtime.bigint() - t0) / 1000n);
      await sent;
      await w.cancel();
      if (i >= rounds / 10) h.recordValue(Math.max(1, us));
    }
    return summary(h);
  } finally {
    client.close();
    await etcd.stop();
  }
}

export async function runWatchBench(rounds: number): Promise<void> {
  const d = await dlockRounds(rounds);
  process.stdout.write(`release -> watcher's reply, dlock up (through followers): p50 ${d.p50.toFixed(2)} ms, p99 ${d.p99.toFixed(2)} ms over ${rounds} rounds\n`);
  if (!hasEtcd) {
    process.stdout.write('etcd: not installed (apt-get install etcd-server); its row is skipped\n');
    return;
  }
  const e = await etcdRounds(rounds);
  process.stdout.write(`delete -> watch event, etcd (3 members, the etcd3 client): p50 ${e.p50.toFixed(2)} ms, p99 ${e.p99.toFixed(2)} ms over ${rounds} rounds\n`);
  process.stdout.write(`ratio (etcd / dlock), p50: ${(e.p50 / d.p50).toFixed(1)}x, p99: ${(e.p99 / d.p99).toFixed(1)}x\n`);
}
