/**
 * The node-link port of `dlock node`, attacked as the security audit did,
 * with three processes on a real etcd member:
 *
 *  - the audit's frames, with the clients' auth token (which a client
 *    holds): the link never takes that token, so nothing they carry reaches
 *    any node; no node dies, none loses a lock, `resume` with an injected
 *    secret fails, and a restart is a restart;
 *  - a peer that holds the cluster secret (any insider with etcd access,
 *    where the secret is kept) is still only the node it registered as:
 *    a hello that claims another node's index, a forward for another
 *    node's client, an `expire`, an observer's hello: each closes the link
 *    and is logged, and changes nothing;
 *  - entries written into etcd's log by hand (a batch that does not decode,
 *    an entry whose command is not one): every node skips them alike and
 *    keeps serving, a restarted node replays past them, and the leader
 *    whose append they refused gives up its election key, so writes go on.
 */
import { Etcd3 } from 'etcd3';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeFrame, type Frame, type LinkRole } from '../../src/codec/frame.js';
import { linkProof, newNonce } from '../../src/transport/link-auth.js';
import { dumpOnFailure, startNode, type ReadyNode } from '../helpers/dlock-process.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { ClientPool, eventually, type LineClient } from '../helpers/line-client.js';

const TOK = 'the-clients-token';
const CLUSTER = 'linksec';

/** A node of this test: a started `dlock node` and its name. */
type Node = ReadyNode & { name: string };

/** Write `lines` to the link port at `port` as one chunk; resolve with what came back once the node closed it (or after `ms`). */
function send(port: number, lines: string[], ms = 3000): Promise<{ got: string; closedByNode: boolean }> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    let got = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ got, closedByNode: false });
    }, ms);
    s.setEncoding('utf8').on('data', (d: string) => (got += d));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ got, closedByNode: true });
    });
    s.write(lines.map((l) => `${l}\n`).join(''));
  });
}

/** A link handshake done right with `secret` as `role`, then `frames`; resolves once the node closes the link (or after `ms`). */
function asPeer(port: number, secret: string, role: LinkRole, frames: Frame[], ms = 3000): Promise<{ welcomed: boolean; closedByNode: boolean }> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    let buf = '';
    let welcomed = false;
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ welcomed, closedByNode: false });
    }, ms);
    s.on('error', () => {});
    s.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
        const f = JSON.parse(buf.slice(0, nl)) as { type: string; nonce?: string };
        buf = buf.slice(nl + 1);
        if (f.type === 'challenge') {
          const nonce = newNonce();
          s.write(`${encodeFrame({ v: 1, type: 'auth', role, nonce, proof: linkProof(secret, 'connector', role, f.nonce as string, nonce) })}\n`);
        } else if (f.type === 'welcome') {
          welcomed = true;
          s.write(frames.map((x) => `${encodeFrame(x)}\n`).join(''));
        }
      }
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ welcomed, closedByNode: true });
    });
  });
}

describe.skipIf(!hasEtcd)('the node-link port under attack', () => {
  let etcd: EtcdCluster;
  let kv: Etcd3;
  const nodes: Node[] = [];
  dumpOnFailure(() => nodes);
  const pool = new ClientPool();

  async function start(name: string): Promise<Node> {
    const n = { name, ...(await startNode(['--replication', 'etcd', '--etcd', etcd.endpoints.join(','), '--name', name, '--cluster', CLUSTER, '--first-token', '1', '--auth-token', TOK, '--node-ttl', '4'])) };
    const at = nodes.findIndex((x) => x.name === name);
    if (at === -1) nodes.push(n);
    else nodes[at] = n;
    return n;
  }

  const alive = (n: Node): boolean => n.proc.child.exitCode === null && n.proc.child.signalCode === null;

  async function open(n: Node): Promise<LineClient> {
    const c = await pool.open(n.port);
    expect(await c.ask(`auth ${TOK}`)).toBe('Auth Success');
    return c;
  }

  /** The node whose greeting says it leads. */
  async function leader(): Promise<Node> {
    let found: Node | undefined;
    await eventually(async () => {
      for (const n of nodes.filter(alive)) {
        const c = await open(n);
        const me = await c.ask('whoami');
        c.close();
        if (/ role: leader$/.test(me)) found = n;
      }
      return found !== undefined;
    }, 'a leader', 20_000, 100);
    return found as Node;
  }

  /** Every node answers a write and a read through it (each its own lock). */
  async function allServe(tag: string): Promise<void> {
    for (const n of nodes) {
      const c = await open(n);
      expect(await c.ask(`preempt ${tag}-${n.name}`)).toMatch(/^PreemptLock Success owner=\d+ token=\d+$/);
      expect(await c.ask(`release ${tag}-${n.name}`)).toBe('ReleaseLock Success');
      c.close();
    }
  }

  beforeAll(async () => {
    etcd = await EtcdCluster.start(1);
    kv = new Etcd3({ hosts: etcd.endpoints });
    for (const name of ['n1', 'n2', 'n3']) await start(name);
  }, 90_000);
  afterAll(async () => {
    pool.closeAll();
    kv?.close();
    for (const n of nodes) if (alive(n)) n.proc.child.kill('SIGKILL');
    await etcd?.stop();
  });

  it("the audit's frames with the clients' token reach no node: none dies, no lock moves, no secret is planted", async () => {
    const lead = await leader();
    const [n1, n2] = nodes as [Node, Node];
    const victim = await open(n2);
    expect(await victim.ask('preempt victim-lock ttl=600000')).toMatch(new RegExp(`^PreemptLock Success owner=${victim.id} token=\\d+$`));
    const admin = await open(n1);
    expect(await admin.ask('preempt admin-lock')).toMatch(/^PreemptLock Success/);
    const auth = JSON.stringify({ v: 1, type: 'auth', token: TOK });
    const hello = '{"v":1,"type":"hello","node":"x","incarnation":"2","seq":null}';
    const hash = '5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8'; // sha256("password")
    for (const cmd of [{ op: 'bogus' }, { op: 'release', client: victim.id, lock: 'victim-lock' }, { op: 'session', client: 30005, hash }, { op: 'revoke', lock: 'admin-lock' }]) {
      for (const n of nodes) {
        const r = await send(n.link, [auth, hello, JSON.stringify({ v: 1, type: 'forward', req: 0, cmd })]);
        expect(r.closedByNode).toBe(true);
        expect(r.got).not.toMatch(/"type":"welcome"/);
      }
    }
    expect(nodes.every(alive)).toBe(true);
    // Nothing moved: the victim's lease and the session lock are where they were, on every node.
    for (const n of nodes) {
      const c = await open(n);
      expect(await c.ask('check victim-lock')).toMatch(new RegExp(`^CheckLock:Lock:${victim.id} token=\\d+ ttl=\\d+$`));
      expect(await c.ask('check admin-lock')).toMatch(new RegExp(`^CheckLock:Lock:${admin.id} `));
      expect(await c.ask('resume 30005 password')).toBe('Resume Failed');
      c.close();
    }
    await allServe('after-audit');
    await eventually(() => /node link from 127\.0\.0\.1 refused: bad frame: malformed auth frame/.test(lead.proc.out()), 'the refusal logged');
    // A restart is a restart: nothing in the log stops it.
    const n3 = nodes[2] as Node;
    n3.proc.child.kill('SIGKILL');
    await n3.proc.exit;
    await start('n3');
    await allServe('after-restart');
  }, 60_000);

  it('nothing is held before the handshake: a big frame closes the socket at once, a trickle is cut at the deadline, and 32 waiting connections are the most', async () => {
    const lead = await leader();
    const open = (): Promise<Socket> =>
      new Promise((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port: lead.link });
        s.on('error', () => {});
        // Reading, so that a reset is seen even when nothing is left to send
        // (a paused socket that wrote everything never polls and never learns).
        s.resume();
        s.once('connect', () => resolve(s));
        s.once('close', () => reject(new Error('closed before it connected')));
      });
    // Each wait is bounded and named: a hang says which step it was (seen once under a full run's load).
    const closed = (s: Socket, what: string): Promise<number> =>
      new Promise((resolve, reject) => {
        if (s.destroyed) return resolve(0);
        const timer = setTimeout(() => reject(new Error(`${what}: still open after 15 s`)), 15_000);
        s.once('close', () => {
          clearTimeout(timer);
          resolve(performance.now());
        });
      });
    // A 2 MiB line before auth: the old link read up to 64 MiB, and parsed it, before asking for auth.
    const big = await open();
    const t0 = performance.now();
    big.write(Buffer.alloc(2 * 1024 * 1024, 0x61));
    expect((await closed(big, 'the 2 MiB line')) - t0).toBeLessThan(2000);
    // One byte a second kept a link open for as long as it went on: now the whole handshake has 5 s.
    const slow = await open();
    const t1 = performance.now();
    const drip = setInterval(() => slow.write('{'), 1000);
    try {
      expect((await closed(slow, 'the trickle')) - t1).toBeLessThan(7000);
    } finally {
      clearInterval(drip);
    }
    // 32 connections waiting in the handshake: the 33rd is dropped at once.
    const waiting = await Promise.all(Array.from({ length: 32 }, open));
    const over = await open().catch(() => null);
    if (over !== null) expect((await closed(over, 'the 33rd waiting connection')) - performance.now()).toBeLessThan(1000);
    expect(waiting.every((w) => !w.destroyed)).toBe(true);
    for (const w of waiting) w.destroy();
    // (What is logged, a line per source per 10 s, is transport-tcp.test.ts's.)
    await allServe('after-flood');
  }, 60_000);

  it('a peer with the cluster secret is only the node it registered as, and sends only what its role may', async () => {
    const lead = await leader();
    const follower = nodes.find((n) => n !== lead) as Node;
    const secret = await kv.namespace(`/dlock/${CLUSTER}/`).get('secret').string();
    expect(secret).not.toBeNull();
    expect(secret).not.toBe(TOK);
    const names = await kv.namespace(`/dlock/${CLUSTER}/`).getAll().prefix('names/').strings();
    const indexOf = (name: string): number => Number(names[`/dlock/${CLUSTER}/names/${name}`] ?? names[`names/${name}`]);
    const owner = await open(lead);
    expect(await owner.ask('preempt leader-client-lock ttl=600000')).toMatch(/^PreemptLock Success/);
    const fIndex = indexOf(follower.name);
    const lIndex = indexOf(lead.name);
    const oIndex = indexOf((nodes.find((n) => n !== lead && n !== follower) as Node).name);
    const hello = (name: string, index: number): Frame => ({ v: 1, type: 'hello', node: name, incarnation: String(index), seq: null });
    const cases: Array<[string, LinkRole, Frame[], RegExp]> = [
      ['a hello with the leader\'s own index', 'node', [hello(follower.name, lIndex)], new RegExp(`hello from ${follower.name} claims this node's own index ${lIndex}`)],
      ['a hello with another follower\'s index', 'node', [hello(follower.name, oIndex)], new RegExp(`hello from ${follower.name} claims index ${oIndex}, but ${follower.name} registered index ${fIndex}`)],
      ['a hello from a name that never registered', 'node', [hello('intruder', 7)], /hello from intruder, which is not a node of this cluster/],
      ['a release of another node\'s client', 'node', [hello(follower.name, fIndex), { v: 1, type: 'forward', req: 1, cmd: { op: 'release', client: owner.id, lock: 'leader-client-lock' } }], new RegExp(`forwarded release: client ${owner.id} is not node ${fIndex}'s`)],
      ['an expire', 'node', [hello(follower.name, fIndex), { v: 1, type: 'forward', req: 1, cmd: { op: 'expire', lock: 'leader-client-lock', token: 1 } }], /forwarded expire: expire is the sequencer's own command/],
      ['a forward before hello', 'node', [{ v: 1, type: 'forward', req: 1, cmd: { op: 'revoke', lock: 'leader-client-lock' } }], /forward frame before hello/],
      ['an observer\'s hello', 'observer', [hello(follower.name, fIndex)], /an observer sent a hello frame/],
    ];
    for (const [what, role, frames, logged] of cases) {
      const r = await asPeer(lead.link, secret as string, role, frames);
      expect(r.welcomed, what).toBe(true);
      expect(r.closedByNode, what).toBe(true);
      await eventually(() => logged.test(lead.proc.out()), `the leader logs: ${what}`);
    }
    const c = await open(follower);
    await eventually(async () => (await c.ask('check leader-client-lock')).startsWith(`CheckLock:Lock:${owner.id} `), 'the lock still held');
    expect(nodes.every(alive)).toBe(true);
    expect(await owner.ask('release leader-client-lock')).toBe('ReleaseLock Success');
  }, 60_000);

  /** The log's end in etcd: its last batch number and last seq, as a new leader reads them. */
  async function logEnd(): Promise<{ batch: number; seq: number }> {
    const top = await kv.namespace(`/dlock/${CLUSTER}/`).getAll().prefix('log/').sort('Key', 'Descend').limit(1).exec();
    const kvs = top.kvs[0];
    if (kvs === undefined) return { batch: 0, seq: 0 };
    return { batch: Number(kvs.key.toString().slice(-16)), seq: Math.max(...kvs.value.toString().split('\n').map((l) => (JSON.parse(l) as { seq: number }).seq)) };
  }
  const batchKey = (n: number): string => `log/${String(n).padStart(16, '0')}`;

  /**
   * Write batches into the log's next keys by hand, as the leader would
   * append them (a txn on each key's absence: a batch the leader appended
   * meanwhile is never overwritten; then read the end again). `make` gets
   * the log's end and gives the batch values.
   */
  async function inject(make: (end: { batch: number; seq: number }) => string[]): Promise<{ batch: number; seq: number }> {
    const ns = kv.namespace(`/dlock/${CLUSTER}/`);
    for (;;) {
      const end = await logEnd();
      const values = make(end);
      let txn = ns.if(batchKey(end.batch + 1), 'Create', '==', 0);
      for (let i = 2; i <= values.length; i++) txn = txn.and(batchKey(end.batch + i), 'Create', '==', 0);
      const r = await txn.then(...values.map((v, i) => ns.put(batchKey(end.batch + 1 + i)).value(v))).commit();
      if (r.succeeded) return end;
    }
  }

  it('a leader whose append was refused (its batch key taken by hand) gives up its election key, so a leader is elected and writes go on', async () => {
    const lead = await leader();
    const c = await open(lead);
    expect(await c.ask('preempt before-refusal')).toMatch(/^PreemptLock Success/);
    // A well-formed entry that changes nothing, in the batch key the leader appends to next.
    await inject((end) => [JSON.stringify({ v: 1, type: 'entry', seq: end.seq + 1, at: Date.now(), cmd: { op: 'revoke', lock: 'nothing-here' }, from: 0, req: 0 })]);
    const t0 = performance.now();
    expect(await c.ask('preempt after-refusal')).toMatch(/^PreemptLock Success/);
    expect(performance.now() - t0).toBeLessThan(8000);
    await eventually(() => /no longer the leader: append refused/.test(lead.proc.out()), 'the leader says it stepped down');
    await allServe('after-refusal');
  }, 60_000);

  it("entries written into etcd's log by hand are skipped alike; the leader whose append they refused resigns, and writes go on", async () => {
    const lead = await leader();
    const c = await open(lead);
    expect(await c.ask('preempt before-injection')).toMatch(/^PreemptLock Success/);
    // The next batch keys taken by hand: a batch that does not decode, then one whose entry is no command.
    const { seq: lastSeq } = await inject((end) => ['this is not a batch', JSON.stringify({ v: 1, type: 'entry', seq: end.seq + 1, at: Date.now(), cmd: { op: 'bogus' }, from: 0, req: 0 })]);
    // The leader's next append is refused (the key is taken): it steps down,
    // gives up its election key, and a leader (it, or another) goes on
    // after the injected batches.
    const t0 = performance.now();
    expect(await c.ask('preempt after-injection ttl=600000')).toMatch(/^PreemptLock Success/);
    expect(performance.now() - t0).toBeLessThan(8000);
    for (const n of nodes) await eventually(() => new RegExp(`log entry ${lastSeq + 1} skipped: not a command the lock table can apply \\(unknown op "bogus"\\)`).test(n.proc.out()), `${n.name} skips the entry`);
    for (const n of nodes) expect(n.proc.out()).toMatch(/does not decode: .*skipped \(no leader wrote it\)/);
    await eventually(() => /no longer the leader: append refused/.test(lead.proc.out()), 'the leader says it stepped down');
    expect(nodes.every(alive)).toBe(true);
    await allServe('after-injection');
    // A node restarted reads the log (or a snapshot) past them.
    const n2 = nodes[1] as Node;
    n2.proc.child.kill('SIGKILL');
    await n2.proc.exit;
    await start('n2');
    await allServe('after-replay');
    const d = await open(nodes[1] as Node);
    await eventually(async () => (await d.ask('check after-injection')).startsWith('CheckLock:Lock:'), 'the write after the injection, on the restarted node');
  }, 90_000);
});
