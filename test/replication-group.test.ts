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
import { reseed, ReseedRefusedError } from '../src/config/config.js';
import { ConfigStore, MemoryConfig } from '../src/config/memory.js';
import { REFRESH_AT, SPACE } from '../src/core/token-space.js';
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

async function start(net: Net, store: ConfigStore, name: string, index: number, run = 1, compactEvery?: number): Promise<{ node: GroupNode; port: number; lines: string[] }> {
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
      ...(compactEvery === undefined ? {} : { compactEvery }),
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

  it('[LP-7] tokens lie in the configuration version\'s space: above every earlier version\'s after a failover, a move to the next version before a space runs out, and after every member is lost', async () => {
    const net = new Net();
    const store = new ConfigStore();
    const a = await start(net, store, 'a', 0);
    const b = await start(net, store, 'b', 1);
    await eventually(() => a.node.replication.host.canWrite() && (store.value?.secondaries.length ?? 0) === 1, 'b added', 5000);
    const tokenOf = async (port: number, cmd: string): Promise<number> => {
      const cl = await pool.open(port);
      const r = await cl.ask(cmd, 10_000);
      const t = Number(/^PreemptLock Success owner=\d+ token=(\d+)$/.exec(r)?.[1]);
      expect(Number.isSafeInteger(t), r).toBe(true);
      return t;
    };
    const v1 = (store.value?.version ?? 0);
    const t1 = await tokenOf(b.port, 'preempt t1 ttl=60000');
    expect(t1).toBeGreaterThanOrEqual(v1 * SPACE);
    expect(t1).toBeLessThan((v1 + 1) * SPACE);
    // Past half of the space, the primary has the same members stored under the next version, and tokens move to its space.
    a.node.state.nextToken = store.value!.version * SPACE + REFRESH_AT;
    const members = [store.value!.primary, ...store.value!.secondaries];
    const tPast = await tokenOf(b.port, 'preempt past-half');
    await eventually(() => (store.value?.version ?? 0) > v1 + 0 && store.value!.primary === 'a.1', 'the next version stored', 5000);
    expect([store.value!.primary, ...store.value!.secondaries]).toEqual(members);
    const v2 = store.value!.version;
    await eventually(async () => (await tokenOf(b.port, `preempt in-v2-${performance.now()}`)) >= v2 * SPACE, 'a token in the next space', 5000);
    expect(tPast).toBeLessThan(v2 * SPACE);
    // A failover: the new primary's tokens are in its version's space.
    net.nodes.delete('a.1');
    await a.node.close();
    await eventually(() => b.node.replication.leads && b.node.replication.host.canWrite(), 'b takes over', 5000);
    const v3 = store.value!.version;
    const t3 = await tokenOf(b.port, 'preempt after-failover');
    expect(t3).toBeGreaterThanOrEqual(v3 * SPACE);
    // Every member lost (no data dir): nothing comes back on its own; a reseed starts a new group whose tokens are above every earlier one.
    await expect(reseed(new MemoryConfig(store), 'a.2', new Set(['b.1']))).rejects.toThrow(ReseedRefusedError);
    net.nodes.delete('b.1');
    await b.node.close();
    const { after } = await reseed(new MemoryConfig(store), 'a.2', new Set());
    expect(after).toEqual({ version: v3 + 1, primary: 'a.2', secondaries: [] });
    const a2 = await start(net, store, 'a', 0, 2);
    await eventually(() => a2.node.replication.leads && a2.node.replication.host.canWrite(), 'a.2 leads the new group', 5000);
    const c = await pool.open(a2.port);
    expect(await c.ask('check t1')).toBe('CheckLock:Free'); // lost with every member
    const t4 = await tokenOf(a2.port, 'preempt t1');
    expect(t4).toBeGreaterThan(t3);
    expect(t4).toBeGreaterThanOrEqual(after.version * SPACE);
  }, 30_000);

  it('a node that left the configuration and catches up from a snapshot closes its clients, answering their waits: the cluster ended their sessions meanwhile [LP-8, LP-2]', async () => {
    const net = new Net();
    const store = new ConfigStore();
    const a = await start(net, store, 'a', 0, 1, 5);
    const b = await start(net, store, 'b', 1, 1, 5);
    const c = await start(net, store, 'c', 2, 1, 5);
    await eventually(() => a.node.replication.host.canWrite() && (store.value?.secondaries.length ?? 0) === 2 && c.node.replication.readable, 'b and c added', 5000);
    const ca = await pool.open(a.port);
    expect(await ca.ask('preempt held')).toMatch(/^PreemptLock Success/);
    const cc = await pool.open(c.port);
    const waiting = cc.ask('acquire held timeout=20000', 30_000);
    await eventually(async () => (await ca.ask('check held')).startsWith(`CheckLock:Lock:${ca.id} `) && a.node.state.waiting.has(cc.id) && c.node.state.waiting.has(cc.id), 'c\'s client waiting, on a and on c', 5000);
    // c cut off: a removes it, ending its clients' sessions, and writes on past its compaction point.
    net.cut.add('c.1');
    await eventually(() => !(store.value?.secondaries ?? []).includes('c.1'), 'c removed', 5000);
    await eventually(() => !a.node.state.waiting.has(cc.id), 'c\'s client\'s wait withdrawn by the primary', 5000);
    for (let i = 0; i < 20; i++) expect(await ca.ask(`preempt filler-${i}`, 5000)).toMatch(/^PreemptLock Success/);
    net.cut.delete('c.1');
    // c catches up from a snapshot: the wait is answered and the connection closes.
    expect(await waiting).toMatch(/^Error: this client's session was ended by the cluster/);
    await eventually(() => c.lines.some((l) => /caught up from a\.1's snapshot/.test(l)), 'the snapshot install', 5000);
    await eventually(() => cc.ended, 'the connection closed', 5000);
  }, 30_000);
});
