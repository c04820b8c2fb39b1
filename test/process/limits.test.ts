/**
 * Resource limits on a real cluster over TCP, each limit set
 * low so the test reaches it: connections per node, locks per client,
 * waiters per lock, a line that never ends, a client that never reads; and
 * a thousand connections that never read while a bystander keeps working,
 * with the node's memory bounded [LP-13, LP-14].
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cluster } from '../../src/host/threads/cluster.js';
import { tooManyClients, tooManyLocks, tooManyLocksInCluster, tooManyWaiters } from '../../src/server/limits.js';
import { up } from '../helpers/dlock-process.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { eventually, LineClient } from '../helpers/line-client.js';

let t: TestCluster;
let cluster: Cluster;
let logs: string[];
const port = (name: string): number => t.port(name);
const MAX_CLIENTS = 1100;

beforeAll(async () => {
  t = await startCluster(1, 0, {
    logRequests: false,
    limits: { maxClients: MAX_CLIENTS, maxLocksPerClient: 3, maxWaitersPerLock: 2, lineTimeoutMs: 400, slowClientMs: 1500 },
  });
  ({ cluster, all: logs } = t);
});
afterAll(async () => {
  await cluster.close();
});

describe('limits', () => {
  it('locks per client, on the leader and through a follower: a clear error, and nothing else changes', async () => {
    for (const node of ['leader', 'follower-1']) {
      const c = await LineClient.open(port(node));
      for (let i = 0; i < 3; i++) expect(await c.ask(`preempt lim-${node}-${i}${i === 0 ? ' ttl=60000' : ''}`)).toMatch(/^PreemptLock Success/);
      expect(await c.ask(`preempt lim-${node}-3`)).toBe(`Error: ${tooManyLocks(3)}`);
      expect(await c.ask(`acquire lim-${node}-3 timeout=100`)).toBe(`Error: ${tooManyLocks(3)}`);
      expect(await c.ask(`check lim-${node}-3`)).toBe('CheckLock:Free');
      expect(await c.ask(`preempt lim-${node}-1`)).toMatch(/^PreemptLock Success/); // its own: nothing new
      expect(await c.ask(`release lim-${node}-2`)).toBe('ReleaseLock Success');
      expect(await c.ask(`preempt lim-${node}-3`)).toMatch(/^PreemptLock Success/);
      c.close();
    }
  });

  it('waiters per lock: the third is refused; a no-wait acquire is not a waiter', async () => {
    const owner = await LineClient.open(port('follower-1'));
    expect(await owner.ask('preempt lim-w')).toMatch(/^PreemptLock Success/);
    const waiters = await Promise.all([1, 2].map(() => LineClient.open(port('leader'))));
    for (const w of waiters) w.write('acquire lim-w timeout=60000\n');
    await eventually(async () => (await cluster.locks('leader')).find((r) => r.lock === 'lim-w')?.waiters.length === 2, 'two waiters');
    const third = await LineClient.open(port('follower-1'));
    expect(await third.ask('acquire lim-w timeout=60000')).toBe(`Error: ${tooManyWaiters(2)}`);
    expect(await third.ask('acquire lim-w timeout=0')).toBe(`AcquireLock Timeout owner=${owner.id}`);
    expect(await owner.ask('release lim-w')).toBe('ReleaseLock Success');
    expect(await (waiters[0] as LineClient).next()).toMatch(/^AcquireLock Success/);
    for (const c of [owner, third, ...waiters]) c.close();
  });

  it('a line that does not end within --line-timeout closes the connection, even trickled a byte at a time', async () => {
    const c = await LineClient.open(port('follower-1'));
    expect(await c.ask('preempt lim-line')).toMatch(/^PreemptLock Success/);
    c.write('ping\npree');
    expect(await c.next()).toBe('PONG');
    expect(await c.next(3000)).toBe('Error: incomplete line timed out');
    await c.waitClosed();
    const d = await LineClient.open(port('leader'));
    // [LP-8] its session lock went with it (once its node's disconnect reached the leader, a moment after the close)
    await eventually(async () => (await d.ask('check lim-line')) === 'CheckLock:Free', 'the session lock released');
    const slow = await LineClient.open(port('leader'));
    const t0 = performance.now();
    const drip = setInterval(() => slow.write('a'), 50);
    try {
      expect(await slow.next(3000)).toBe('Error: incomplete line timed out');
      await slow.waitClosed();
    } finally {
      clearInterval(drip);
    }
    expect(performance.now() - t0).toBeLessThan(2500); // from the line's first byte, not from the last
    d.close();
  });

  it('a client that reads nothing is paused, then dropped after --slow-client-timeout; its locks are released', async () => {
    const s = await rawClient(port('follower-1'));
    s.write('preempt lim-slow\n');
    // ~60 MB of replies it will never read: more than loopback's kernel
    // buffers take (they grow to tens of MB), so the node's writes stall.
    s.write('help\n'.repeat(200_000));
    await eventually(() => logs.some((l) => /^follower-1: client \d+ \(127\.0\.0\.1:\d+\) read none of its replies for 1500 ms \(\d+ bytes waiting\); dropping it$/.test(l)), 'the drop', 10_000);
    const c = await LineClient.open(port('leader'));
    await eventually(async () => (await c.ask('check lim-slow')) === 'CheckLock:Free', 'its lock released');
    c.close();
    s.destroy();
  });

  it('a client that says quit and goes on sending is closed all the same: no half-open socket is left behind', async () => {
    const before = (await cluster.stats('follower-1')).clients;
    const text = await new Promise<string>((resolve, reject) => {
      const s = connect({ port: port('follower-1'), host: '127.0.0.1' });
      let got = '';
      s.setEncoding('utf8').on('data', (d: string) => (got += d));
      s.once('data', () => s.write(`ping\nquit\n${'ping\n'.repeat(200_000)}`)); // ~1 MB the node will never parse
      s.on('close', () => resolve(got));
      s.on('error', reject);
    });
    expect(text).toMatch(/^client_id: \d+ node: follower-1\nPONG\nBye\n$/);
    // The node read the rest (and dropped it) to see the client's FIN, so the connection is gone.
    await eventually(async () => (await cluster.stats('follower-1')).clients === before, 'the connection closed on the node');
  });

  it('max clients per node: one more is told why and closed, with no id; a freed place is taken again', async () => {
    const probe = await LineClient.open(port('follower-1'));
    probe.close();
    await eventually(async () => (await cluster.stats('follower-1')).clients === 0, 'the probe gone');
    const before = 0;
    const held = await Promise.all(Array.from({ length: MAX_CLIENTS }, () => rawClient(port('follower-1'))));
    const extra = await rawOpen(port('follower-1'));
    expect(extra).toBe(`Error: ${tooManyClients(MAX_CLIENTS)}\n`);
    await eventually(() => logs.some((l) => /^follower-1: refused \d+ connection\(s\): 1100 clients, the limit \(--max-clients\)$/.test(l)), 'the log line');
    (held.pop() as Socket).destroy();
    await eventually(async () => (await cluster.stats('follower-1')).clients < MAX_CLIENTS, 'a place freed');
    const again = await LineClient.open(port('follower-1'));
    // [LP-4] ids are given in order; the refused connection took none.
    expect(again.id).toBe(probe.id + MAX_CLIENTS + 1);
    expect(await again.ask('ping')).toBe('PONG');
    again.close();
    for (const s of held) s.destroy();
    await eventually(async () => (await cluster.stats('follower-1')).clients === before, 'all gone');
  });

  it('1000 connections that never read: the node stays responsive to a bystander, its memory stays bounded, and nothing leaks when they go', async () => {
    const node = 'leader';
    const bystander = await LineClient.open(port(node));
    expect(await bystander.ask('preempt lim-by')).toMatch(/^PreemptLock Success/);
    const base = await cluster.stats(node);
    const followerBase = await cluster.stats('follower-1');
    const readers = await Promise.all(Array.from({ length: 1000 }, () => rawClient(port(node))));
    // Each asks for replies it never reads: 200 help replies (~60 KB) each,
    // which loopback's kernel buffers absorb, and 20 of them 50,000 (~13 MB),
    // which they cannot: the node must pause those [LP-13] and not make
    // replies it cannot send.
    for (const [i, s] of readers.entries()) s.write('help\n'.repeat(i < 20 ? 50_000 : 200));
    expect((await cluster.stats(node)).clients).toBe(base.clients + 1000);
    let peakHeap = 0;
    let peakBuffered = 0;
    let requests = -1;
    let rounds = 0;
    // Until the node has taken all it will take (reading pauses once a client owes too much).
    for (const deadline = performance.now() + 60_000; performance.now() < deadline; rounds++) {
      // The bystander is served all along [LP-14].
      expect(await bystander.ask('check lim-by', 5000)).toMatch(new RegExp(`^CheckLock:Lock:${bystander.id} token=\\d+$`));
      const s = await cluster.stats(node);
      peakHeap = Math.max(peakHeap, s.heapUsed);
      peakBuffered = Math.max(peakBuffered, s.bufferedBytes);
      const taken = s.requests - rounds; // not counting the bystander's
      if (taken === requests && rounds > 5) break;
      requests = taken;
      await new Promise((r) => setTimeout(r, 200)); // a sampling interval, not a wait for a condition
    }
    // Had it parsed every request and made every reply, the 20 alone would
    // hold 20 x 50,000 x ~300 bytes = ~300 MB. It parses at most HIGH_WATER
    // (256) requests ahead of a client's reading and makes replies only as
    // its socket takes them (LP-13), so each holds a bounded few hundred KB.
    expect(peakHeap - base.heapUsed).toBeLessThan(64 * 2 ** 20);
    expect(peakBuffered).toBeLessThan(1000 * 256 * 1024);
    process.stdout.write(`limits: 1000 non-readers, ${requests - base.requests} requests taken in ${rounds} samples: heap ${(base.heapUsed / 2 ** 20).toFixed(0)} -> peak ${(peakHeap / 2 ** 20).toFixed(0)} MiB, peak buffered in the node ${(peakBuffered / 2 ** 20).toFixed(1)} MiB\n`);
    // Gone when they close: nothing of them is left.
    for (const s of readers) s.destroy();
    await eventually(async () => (await cluster.stats(node)).clients === base.clients, 'the non-readers gone', 20_000);
    const after = await cluster.stats(node);
    expect(after.owedReplies).toBe(0);
    expect(after.bufferedBytes).toBe(0);
    expect(after.waiters).toBe(0);
    // Thousands of connects and disconnects, some holding or waiting: nothing left over.
    for (let round = 0; round < 6; round++) {
      const cs = await Promise.all(Array.from({ length: 500 }, () => LineClient.open(port(round % 2 === 0 ? 'leader' : 'follower-1'))));
      await Promise.all(cs.map((c, i) => c.ask(i % 3 === 0 ? `preempt churn-${i}` : i % 3 === 1 ? `acquire lim-by timeout=0` : 'ping')));
      for (const c of cs) c.close();
    }
    await eventually(async () => (await cluster.stats('leader')).clients === base.clients && (await cluster.stats('follower-1')).clients === 0, 'every churned connection gone', 10_000);
    // Their session locks go with them (released through the leader, so a moment after the close).
    await eventually(async () => (await cluster.stats('leader')).locks === base.locks, 'the churned locks released', 10_000);
    // And every per-client entry on both nodes (sessions, waits, lock counts, in-flight forwards):
    // a leak shows here without waiting for a GC.
    await eventually(
      async () => (await cluster.stats('leader')).clientEntries === base.clientEntries && (await cluster.stats('follower-1')).clientEntries === followerBase.clientEntries,
      'per-client entries back to where they were',
      10_000,
    );
    expect((await cluster.stats('leader')).waiters).toBe(0);
    expect(await bystander.ask('ping')).toBe('PONG');
    bystander.close();
  }, 120_000);
});

/** A TCP client that reads nothing after the greeting (its data is ignored). */
function rawClient(p: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port: p, host: '127.0.0.1' });
    s.once('data', () => {
      s.pause(); // read nothing more: the kernel buffers fill, then the node's write() returns false
      resolve(s);
    });
    s.on('error', reject);
  });
}

/** Everything a node sends before it closes. */
function rawOpen(p: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ port: p, host: '127.0.0.1' });
    let text = '';
    s.setEncoding('utf8').on('data', (d: string) => (text += d));
    s.on('close', () => resolve(text));
    s.on('error', reject);
  });
}

describe('the cluster-wide lock cap (--max-locks)', () => {
  it('dlock up --max-locks 2: leases left by clients that went count; one more, through any node, is refused with the named error', async () => {
    const { proc, ports } = await up(['--no-tui', '--quiet', '--max-locks', '2']);
    try {
      for (const [i, name] of ['leader', 'follower-1'].entries()) {
        const c = await LineClient.open(ports[name] as number);
        expect(await c.ask(`preempt cap-${i} ttl=600000`)).toMatch(/^PreemptLock Success/);
        c.close();
      }
      for (const name of ['leader', 'follower-1', 'follower-2']) {
        const c = await LineClient.open(ports[name] as number);
        expect(await c.ask('preempt cap-more')).toBe(`Error: ${tooManyLocksInCluster(2)}`);
        expect(await c.ask('preempt cap-0')).toMatch(/^PreemptLock Failed owner=/); // a held lock: not a new one, no refusal
        c.close();
      }
    } finally {
      proc.child.kill('SIGTERM');
      await proc.exit;
    }
  });
});
