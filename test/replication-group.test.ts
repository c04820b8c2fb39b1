/**
 * The replication on the group protocol (src/replication/replication-group.ts)
 * under real nodes: three ReplicaNodes serving clients over TCP, their
 * frames through the codec on an in-memory network, the configuration in
 * process. Clients of any node take, wait for and release locks [LP-5,
 * LP-9]; a lease ends on time [LP-8]; the primary's node stopped, a
 * secondary takes over with every acknowledged lock, and the dead node's
 * session locks end while its leases stay [LP-8]; a write re-sent to the
 * new primary is applied once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame, type Frame } from '../src/codec/frame.js';
import { ConfigStore, MemoryConfig } from '../src/config/memory.js';
import { newIdCounter } from '../src/node/client-ids.js';
import { NodeLog } from '../src/node/node-log.js';
import { ERR_READ_WINDOW, GroupNode } from '../src/node/node-group.js';
import { GroupReplication } from '../src/replication/replication-group.js';
import { ClientPool, eventually } from './helpers/line-client.js';

const TIMING = { leaseMs: 400, graceMs: 600, heartbeatMs: 50 };

/** Frames between member ids, encoded and decoded, a turn later; a node taken off the network gets nothing more. */
class Net {
  readonly nodes = new Map<string, GroupNode>();
  /** Member ids cut off from the others (both ways). */
  readonly cut = new Set<string>();
  send(from: string, to: string, f: Frame): void {
    const text = encodeFrame(f);
    setImmediate(() => {
      if (!this.nodes.has(from) || this.cut.has(from) || this.cut.has(to)) return; // a dead node's last frames die with it
      this.nodes.get(to)?.replication.receive(from, decodeFrame(text));
    });
  }
}

const nodes: GroupNode[] = [];
const pool = new ClientPool();
afterEach(async () => {
  pool.closeAll();
  for (const n of nodes.splice(0)) await n.close();
});

async function start(net: Net, store: ConfigStore, name: string, index: number, run = 1): Promise<{ node: GroupNode; port: number; lines: string[] }> {
  const id = `${name}.${run}`;
  const lines: string[] = [];
  const node = new GroupNode({ name, index, log: new NodeLog((ls) => lines.push(...ls.map((l) => l.text)), false, 1), idCounter: newIdCounter() }, (replica) =>
    new GroupReplication(replica, {
      id,
      timing: TIMING,
      config: new MemoryConfig(store),
      links: { send: (to, f) => net.send(id, to, f) },
      indexOf: (m) => ({ a: 0, b: 1, c: 2 })[m.split('.')[0] as 'a' | 'b' | 'c'] ?? null,
      leaderWaitMs: 3000,
    }),
  );
  net.nodes.set(id, node);
  nodes.push(node);
  await node.replication.start();
  const port = await node.listen('127.0.0.1', 0);
  return { node, port, lines };
}

describe('the group replication under three nodes', () => {
  it('serves the protocol through every node, fails over with every acknowledged lock, ends the dead node\'s sessions', async () => {
    const net = new Net();
    const store = new ConfigStore();
    const a = await start(net, store, 'a', 0);
    const b = await start(net, store, 'b', 1);
    const c = await start(net, store, 'c', 2);
    await eventually(() => a.node.replication.leads && (store.value?.secondaries.length ?? 0) === 2 && a.node.replication.host.canWrite(), 'b and c added', 5000);
    // A write through a secondary, seen on every node [LP-5, LP-11].
    const cb = await pool.open(b.port);
    expect(await cb.ask('preempt lock01')).toMatch(new RegExp(`^PreemptLock Success owner=${cb.id} token=\\d+$`));
    const cc = await pool.open(c.port);
    await eventually(async () => (await cc.ask('check lock01')).startsWith(`CheckLock:Lock:${cb.id} `), 'the lock on c');
    // A wait, answered by the release [LP-9].
    const waiting = cc.ask('acquire lock01 timeout=5000', 10_000);
    expect(await cb.ask('release lock01')).toBe('ReleaseLock Success');
    expect(await waiting).toMatch(new RegExp(`^AcquireLock Success owner=${cc.id} token=\\d+$`));
    // A wait that times out [LP-9], and a lease that ends [LP-8].
    const w0 = performance.now();
    expect(await cb.ask('acquire lock01 timeout=300', 5000)).toBe(`AcquireLock Timeout owner=${cc.id}`);
    expect(performance.now() - w0).toBeGreaterThan(280);
    expect(await cb.ask('preempt short ttl=300')).toMatch(/^PreemptLock Success/);
    await eventually(async () => (await cc.ask('check short')) === 'CheckLock:Free', 'the lease ended', 3000);
    // Locks held through a, then a's node dies: a session lock of a's client, and a lease of b's.
    const ca = await pool.open(a.port);
    expect(await ca.ask('preempt held-by-a')).toMatch(/^PreemptLock Success/);
    const lease = await cb.ask('preempt leased ttl=60000');
    const token = /token=(\d+)/.exec(lease)?.[1];
    expect(token).toBeDefined();
    await eventually(async () => (await cc.ask('check held-by-a')).startsWith(`CheckLock:Lock:${ca.id} `), 'held-by-a on c');
    net.nodes.delete('a.1');
    await a.node.close();
    const t0 = performance.now();
    await eventually(() => b.node.replication.leads || c.node.replication.leads, 'a secondary takes over', 5000);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(TIMING.graceMs - 80);
    // The lease stays with its token; a's client's session lock ends [LP-8].
    for (const cl of [cb, cc]) {
      await eventually(async () => (await cl.ask('check held-by-a')) === 'CheckLock:Free', 'held-by-a released', 5000);
      expect(await cl.ask('check leased')).toMatch(new RegExp(`^CheckLock:Lock:${cb.id} token=${token} ttl=\\d+$`));
    }
    // Writes go on through both survivors, and tokens keep rising [LP-7].
    const after = await cc.ask('preempt after-failover', 10_000);
    expect(Number(/token=(\d+)/.exec(after)?.[1])).toBeGreaterThan(Number(token));
    expect(await cb.ask('release leased', 10_000)).toBe('ReleaseLock Success');
    await eventually(async () => (await cc.ask('check leased')) === 'CheckLock:Free', 'the release on c');
  }, 30_000);

  it('a secondary cut off from its primary refuses reads within the lease, and reads again once it hears from it [LP-11]', async () => {
    const net = new Net();
    const store = new ConfigStore();
    const a = await start(net, store, 'a', 0);
    const b = await start(net, store, 'b', 1);
    await eventually(() => a.node.replication.host.canWrite() && (store.value?.secondaries.length ?? 0) === 1 && b.node.replication.readable, 'b added and reading', 5000);
    const cb = await pool.open(b.port);
    expect(await cb.ask('check r')).toBe('CheckLock:Free');
    net.cut.add('b.1');
    const t0 = performance.now();
    await eventually(async () => (await cb.ask('check r')) === `Error: ${ERR_READ_WINDOW}`, 'reads refused', 3000, 20);
    expect(performance.now() - t0).toBeLessThan(TIMING.leaseMs + 300);
    // a removes b once its lease lapses, and writes without it: b must not have read past that.
    const ca = await pool.open(a.port);
    await eventually(async () => (await ca.ask('preempt r', 5000)).startsWith('PreemptLock Success'), 'a writes alone', 5000, 50);
    expect(await cb.ask('check r')).toBe(`Error: ${ERR_READ_WINDOW}`);
    net.cut.delete('b.1');
    await eventually(async () => (await cb.ask('check r')).startsWith(`CheckLock:Lock:${ca.id} `), 'b rejoined and reads the write', 10_000, 50);
  }, 30_000);
});
