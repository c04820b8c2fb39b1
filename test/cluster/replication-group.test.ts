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
import { afterEach, describe, expect, it, vi } from 'vitest';
import { decodeFrame, encodeFrame, type Frame } from '../../src/codec/frame.js';
import { reseed, ReseedRefusedError, type ConfigManager, type GroupConfig, type ProposeResult } from '../../src/config/config.js';
import { ConfigStore, MemoryConfig } from '../../src/config/memory.js';
import { floorOf, REFRESH_AT } from '../../src/core/token-space.js';
import { newIdCounter } from '../../src/replica/client-ids.js';
import { NodeLog } from '../../src/replica/node-log.js';
import { ERR_READ_WINDOW, GroupNode } from '../../src/host/node-group.js';
import { ERR_NOT_MEMBER, GroupReplication } from '../../src/replication/replication-group.js';
import { ClientPool, eventually } from '../helpers/line-client.js';

const TIMING = { leaseMs: 400, graceMs: 600, heartbeatMs: 50 };

/**
 * A configuration manager a node reaches only while its gate is open, as
 * a process paused by SIGSTOP reaches etcd: its calls wait, and what the
 * watch reports waits, until the gate opens.
 */
class Gate {
  open = true;
  private readonly waiting: Array<() => void> = [];
  async pass(): Promise<void> {
    while (!this.open) await new Promise<void>((r) => this.waiting.push(r));
  }
  set(open: boolean): void {
    this.open = open;
    if (open) for (const w of this.waiting.splice(0)) w();
  }
}

class GatedConfig implements ConfigManager {
  constructor(
    private readonly inner: MemoryConfig,
    private readonly gate: Gate,
  ) {}
  async current(): Promise<GroupConfig | null> {
    await this.gate.pass();
    return this.inner.current();
  }
  async propose(expected: GroupConfig | null, next: GroupConfig): Promise<ProposeResult> {
    await this.gate.pass();
    return this.inner.propose(expected, next);
  }
  watch(onChange: (c: GroupConfig) => void, onError: (err: Error) => void): () => void {
    return this.inner.watch((c) => void this.gate.pass().then(() => onChange(c)), onError);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Frames between member ids, encoded and decoded, a turn later; a node taken off the network gets nothing more. */
class Net {
  readonly nodes = new Map<string, GroupNode>();
  readonly gates = new Map<string, Gate>();
  /** Member ids cut off from the others (both ways). */
  readonly cut = new Set<string>();
  /** Member ids whose frames out wait on the link until released (a link that stalls, then delivers in order). */
  private readonly stalled = new Map<string, Array<() => void>>();
  /** Member ids paused (SIGSTOP): they send nothing; frames to them wait in their sockets, as does the manager. */
  private readonly frozen = new Map<string, Array<() => void>>();
  /** Pause the sender right after it sends a frame this says yes to. */
  freezeAfter: ((from: string, f: Frame) => boolean) | null = null;

  send(from: string, to: string, f: Frame): void {
    if (this.frozen.has(from)) return; // a stopped process sends nothing
    const text = encodeFrame(f);
    const deliver = (): void => {
      if (!this.nodes.has(from) || this.cut.has(from) || this.cut.has(to)) return; // a dead node's last frames die with it
      const inbox = this.frozen.get(to);
      if (inbox !== undefined) inbox.push(() => this.nodes.get(to)?.replication.receive(from, decodeFrame(text)));
      else this.nodes.get(to)?.replication.receive(from, decodeFrame(text));
    };
    const queue = this.stalled.get(from);
    if (queue !== undefined) queue.push(deliver);
    else setImmediate(deliver);
    if (this.freezeAfter?.(from, f) === true) {
      this.freezeAfter = null;
      this.freeze(from);
    }
  }

  stall(id: string): void {
    this.stalled.set(id, []);
  }

  /** The stalled link delivers what it held, in order, now. */
  unstall(id: string): void {
    const queue = this.stalled.get(id) ?? [];
    this.stalled.delete(id);
    for (const d of queue) d();
  }

  freeze(id: string): void {
    this.frozen.set(id, []);
    this.gates.get(id)?.set(false);
  }

  /** Resumed (SIGCONT): it reads the frames that waited first, then hears from the manager. */
  thaw(id: string): void {
    const inbox = this.frozen.get(id) ?? [];
    this.frozen.delete(id);
    for (const d of inbox) d();
    this.gates.get(id)?.set(true);
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
  const gate = new Gate();
  net.gates.set(id, gate);
  const lines: string[] = [];
  const node = new GroupNode({ name, index, log: new NodeLog((ls) => lines.push(...ls.map((l) => l.text)), false, 1), idCounter: newIdCounter() }, (replica) =>
    new GroupReplication(replica, {
      id,
      timing: TIMING,
      config: new GatedConfig(new MemoryConfig(store), gate),
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

type Started = Awaited<ReturnType<typeof start>>;

/** Node a the primary and b its secondary, reading: where most cases start. */
async function pair(): Promise<{ net: Net; store: ConfigStore; a: Started; b: Started }> {
  const net = new Net();
  const store = new ConfigStore();
  const a = await start(net, store, 'a', 0);
  const b = await start(net, store, 'b', 1);
  await eventually(() => a.node.replication.host.canWrite() && (store.value?.secondaries.length ?? 0) === 1 && b.node.replication.readable, 'b added and reading', 5000);
  return { net, store, a, b };
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
    const { net, store, a, b } = await pair();
    const cb = await pool.open(b.port);
    expect(await cb.ask('check r')).toBe('CheckLock:Free');
    net.cut.add('b.1');
    const t0 = performance.now();
    await eventually(async () => (await cb.ask('check r')) === `Error: ${ERR_READ_WINDOW}`, 'reads refused', 3000, 20);
    expect(performance.now() - t0).toBeLessThan(TIMING.leaseMs + 300);
    // a removes b once its lease lapses, and writes without it: b must not have read past that.
    const ca = await pool.open(a.port);
    await eventually(async () => (await ca.ask('preempt r', 5000)).startsWith('PreemptLock Success'), 'a writes alone', 5000, 50);
    // Out of the configuration, b closed its clients (their sessions were ended); a new one reads nothing either.
    await eventually(() => cb.ended, 'b closes its clients once it knows it is out', 5000);
    const cb2 = await pool.open(b.port);
    expect(await cb2.ask('check r')).toBe(`Error: ${ERR_READ_WINDOW}`);
    net.cut.delete('b.1');
    await eventually(async () => (await cb2.ask('check r')).startsWith(`CheckLock:Lock:${ca.id} `), 'b rejoined and reads the write', 10_000, 50);
  }, 30_000);

  it('[LP-7] tokens lie in the configuration version\'s space: above every earlier version\'s after a failover, a move to the next version before a space runs out, and after every member is lost', async () => {
    const { net, store, a, b } = await pair();
    const tokenOf = async (port: number, cmd: string): Promise<number> => {
      const cl = await pool.open(port);
      const r = await cl.ask(cmd, 10_000);
      const t = Number(/^PreemptLock Success owner=\d+ token=(\d+)$/.exec(r)?.[1]);
      expect(Number.isSafeInteger(t), r).toBe(true);
      return t;
    };
    const v1 = (store.value?.version ?? 0);
    const t1 = await tokenOf(b.port, 'preempt t1 ttl=60000');
    // a took over in version 1 and went on into v1 (b added): it kept counting from 1's floor, below v1's bound.
    expect(t1).toBeGreaterThanOrEqual(floorOf(1));
    expect(t1).toBeLessThan(floorOf(v1 + 1));
    // Past half of the space, the primary has the same members stored under the next version, and tokens move to its space.
    a.node.state.nextToken = floorOf(store.value!.version) + REFRESH_AT;
    const members = [store.value!.primary, ...store.value!.secondaries];
    const tPast = await tokenOf(b.port, 'preempt past-half');
    await eventually(() => (store.value?.version ?? 0) > v1 + 0 && store.value!.primary === 'a.1', 'the next version stored', 5000);
    expect([store.value!.primary, ...store.value!.secondaries]).toEqual(members);
    const v2 = store.value!.version;
    await eventually(async () => (await tokenOf(b.port, `preempt in-v2-${performance.now()}`)) >= floorOf(v2), 'a token in the next space', 5000);
    expect(tPast).toBeLessThan(floorOf(v2));
    // A failover: the new primary's tokens are in its version's space.
    net.nodes.delete('a.1');
    await a.node.close();
    await eventually(() => b.node.replication.leads && b.node.replication.host.canWrite(), 'b takes over', 5000);
    const v3 = store.value!.version;
    const t3 = await tokenOf(b.port, 'preempt after-failover');
    expect(t3).toBeGreaterThanOrEqual(floorOf(v3));
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
    expect(t4).toBeGreaterThanOrEqual(floorOf(after.version));
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

  it('a primary paused past its leases commits on waking with its secondary\'s last ack, but does not show the grant: the secondary took over and ended its clients\' sessions meanwhile [LP-8, LP-5, LP-7]', async () => {
    const { net, store, a, b } = await pair();
    const ca = await pool.open(a.port);
    // a stops right after it sends the grant's entry: b's ack waits in a's socket.
    net.freezeAfter = (from, f) => from === 'a.1' && f.type === 'prepare' && f.entries.some((e) => e.cmd.op === 'preempt' && e.cmd.lock === 'paused');
    const reply = ca.ask('preempt paused', 20_000);
    await eventually(() => b.node.replication.leads && b.node.replication.readable, 'b takes over', 5000);
    // b holds the entry (it acked it) and ended a's clients' sessions: another client takes the lock.
    const cb = await pool.open(b.port);
    let later = '';
    await eventually(async () => (later = await cb.ask('preempt paused', 5000)).startsWith('PreemptLock Success'), 'b\'s client takes the lock', 5000, 50);
    net.thaw('a.1');
    const got = await reply;
    expect(got, `a showed a grant of a session the cluster had ended, below ${later}`).not.toMatch(/^PreemptLock Success/);
    expect(got).toMatch(/^Error: .*may or may not have been applied/);
    await eventually(() => ca.ended, 'a closes its client: its session was ended', 5000);
  }, 30_000);

  it('a write that reaches the primary as its lease from a secondary lapses is held, never thrown; it commits once the secondary is removed', async () => {
    const { net, a } = await pair();
    const host = a.node.replication.host;
    // b's acks stop, and a cannot reach its manager: a's lease from b lapses while b is still in the configuration.
    net.stall('b.1');
    net.gates.get('a.1')?.set(false);
    await eventually(() => !host.group.canWrite(performance.now()), "a's lease from b lapsed", 5000);
    // The race, made to happen: a check before the append that read the clock just before the lease ended.
    const raced = vi.spyOn(host, 'canWrite').mockReturnValue(true);
    try {
      const ca = await pool.open(a.port);
      const reply = ca.ask('preempt raced', 20_000);
      const held = (): number => (a.node.replication as unknown as { held: unknown[] }).held.length;
      await eventually(() => held() === 1, 'the write held until a may write again', 5000);
      net.gates.get('a.1')?.set(true); // a removes b and goes on alone
      expect(await reply).toMatch(new RegExp(`^PreemptLock Success owner=${ca.id} token=\\d+$`));
    } finally {
      raced.mockRestore();
    }
  }, 30_000);

  it('a forward that a removed node sent before it knew is not applied: its clients\' sessions were ended [LP-8, LP-16]', async () => {
    const { net, store, a, b } = await pair();
    const cb = await pool.open(b.port);
    expect(await cb.ask('session')).toMatch(/^Session /);
    // b's link to a stalls: its forward of the lease, and its acks, wait on the link; a removes b.
    net.stall('b.1');
    const reply = cb.ask('preempt late ttl=60000', 20_000);
    await eventually(() => store.value !== null && !store.value.secondaries.includes('b.1'), 'a removes b', 5000);
    const got = await reply;
    expect(got).not.toMatch(/^PreemptLock Success/);
    net.unstall('b.1');
    // Applied after the end of its session, the lease would be held by a client that can never resume it.
    const ca = await pool.open(a.port);
    expect(await ca.ask('preempt marker', 5000)).toMatch(/^PreemptLock Success/);
    expect(await ca.ask('check late')).toBe('CheckLock:Free');
    await eventually(() => a.lines.some((l) => /a forward from b\.1, which is not in configuration \d+/.test(l)), 'a says why it dropped the forward', 5000);
  }, 30_000);

  it('a node outside the configuration takes no writes, with the reason, and serves again once it is added [LP-2]', async () => {
    const { net, store, a, b } = await pair();
    net.cut.add('b.1');
    await eventually(() => store.value !== null && !store.value.secondaries.includes('b.1'), 'a removes b', 5000);
    const cb = await pool.open(b.port);
    expect(await cb.ask('preempt outside', 5000)).toBe(`Error: ${ERR_NOT_MEMBER}`);
    net.cut.delete('b.1');
    await eventually(async () => (await cb.ask('preempt outside', 5000)).startsWith('PreemptLock Success'), 'b back in, writing', 10_000, 50);
  }, 30_000);
});
