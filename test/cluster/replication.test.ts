/**
 * Replication between a leader and followers in one thread over the
 * in-memory transport (same codec as the MessagePort link), with one side
 * scripted by the test to produce gaps, duplicates and held-back commits.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createState, snapshot, apply } from '../../src/core/lock-table.js';
import type { Frame } from '../../src/codec/frame.js';
import { newIdCounter } from '../../src/replica/client-ids.js';
import { SNAPSHOT_PART } from '../../src/replication/port-primary.js';
import { backupNode, primaryNode, type PortNode } from '../helpers/port-node.js';
import { ERR_SESSION_ENDED } from '../../src/node/replica-node.js';
import { fillLocks } from '../../bench/fill.js';
import { DEFAULT_LIMITS } from '../../src/server/limits.js';
import { NodeLog } from '../../src/replica/node-log.js';
import { MemoryTransport } from '../../src/transport/transport-memory.js';
import { eventually, LineClient } from '../helpers/line-client.js';

const closers: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

function log(into: string[]): NodeLog {
  return new NodeLog((lines) => into.push(...lines.map((l) => l.text)), true, 1);
}

/** A follower whose leader is the test: returns the follower and the leader's end of the link. */
async function scriptedFollower(leaderWaitMs?: number): Promise<{ f: PortNode; link: MemoryTransport; got: Frame[]; lines: string[]; port: number }> {
  const [leaderEnd, followerEnd] = MemoryTransport.pair();
  const got: Frame[] = [];
  leaderEnd.onFrames((frames) => got.push(...frames));
  leaderEnd.onClose(() => {});
  const lines: string[] = [];
  const f = backupNode({ name: 'follower-1', index: 1, log: log(lines), idCounter: newIdCounter() }, followerEnd, 'test', leaderWaitMs);
  f.replication.backup.start();
  await eventually(() => got.some((x) => x.type === 'hello'), 'hello');
  leaderEnd.send({ v: 1, type: 'snapshot', seq: 0, part: 0, parts: 1, state: snapshot(createState()) });
  await f.replication.backup.firstSync;
  const port = await f.listen('127.0.0.1', 0);
  closers.push(() => f.close());
  return { f, link: leaderEnd, got, lines, port };
}

/** The first forward frame (of `op`, if given) the follower sent, once it has. */
async function forwarded(got: Frame[], op?: string): Promise<Extract<Frame, { type: 'forward' }>> {
  const find = (): Extract<Frame, { type: 'forward' }> | undefined => got.find((x): x is Extract<Frame, { type: 'forward' }> => x.type === 'forward' && (op === undefined || x.cmd.op === op));
  await eventually(() => find() !== undefined, `a forward${op === undefined ? '' : ` of ${op}`}`);
  return find() as Extract<Frame, { type: 'forward' }>;
}

/** A primary whose one follower is the test: it said hello as `name` and has its snapshot. */
async function scriptedLeader(name: string): Promise<{ leader: PortNode; followerEnd: MemoryTransport; got: Frame[]; lines: string[] }> {
  const lines: string[] = [];
  const leader = primaryNode({ name: 'leader', index: 0, log: log(lines), idCounter: newIdCounter() });
  closers.push(() => leader.close());
  const [leaderEnd, followerEnd] = MemoryTransport.pair();
  leader.replication.primary.attachFollower(leaderEnd);
  const got: Frame[] = [];
  followerEnd.onFrames((frames) => got.push(...frames));
  followerEnd.onClose(() => {});
  followerEnd.send({ v: 1, type: 'hello', node: name, incarnation: 'x', seq: null });
  await eventually(() => got.some((x) => x.type === 'snapshot'), 'snapshot');
  return { leader, followerEnd, got, lines };
}

describe('follower replication', () => {
  it('applies entries in order and acknowledges the last one', async () => {
    const { f, link, got } = await scriptedFollower();
    link.send({ v: 1, type: 'entry', seq: 1, at: 1000, cmd: { op: 'preempt', client: 10001, lock: 'a', ttl: null }, from: 0, req: 0 });
    link.send({ v: 1, type: 'entry', seq: 2, at: 1001, cmd: { op: 'preempt', client: 10001, lock: 'b', ttl: 5000 }, from: 0, req: 0 });
    await eventually(() => got.some((x) => x.type === 'ack' && x.seq === 2), 'ack 2');
    expect(f.applied).toBe(2);
    expect(f.lockMap().map((r) => [r.lock, r.owner, r.token])).toEqual([
      ['a', 10001, 1],
      ['b', 10001, 2],
    ]);
  });

  it('notices a gap, drops entries until a fresh snapshot, then carries on', async () => {
    const { f, link, got, lines } = await scriptedFollower();
    link.send({ v: 1, type: 'entry', seq: 1, at: 1, cmd: { op: 'preempt', client: 10001, lock: 'a', ttl: null }, from: 0, req: 0 });
    link.send({ v: 1, type: 'entry', seq: 3, at: 3, cmd: { op: 'preempt', client: 10001, lock: 'c', ttl: null }, from: 0, req: 0 }); // seq 2 is missing
    await eventually(() => got.filter((x) => x.type === 'hello').length === 2, 'a second hello (resync)');
    expect(lines.some((l) => /^replication gap: expected seq 2, got 3; resyncing$/.test(l))).toBe(true);
    expect(f.applied).toBe(1);
    // entries that arrive before the snapshot are not applied
    link.send({ v: 1, type: 'entry', seq: 2, at: 2, cmd: { op: 'preempt', client: 10001, lock: 'b', ttl: null }, from: 0, req: 0 });
    const leaderState = createState();
    apply(leaderState, { op: 'preempt', client: 10001, lock: 'a', ttl: null }, 1);
    apply(leaderState, { op: 'preempt', client: 10001, lock: 'b', ttl: null }, 2);
    apply(leaderState, { op: 'preempt', client: 10001, lock: 'c', ttl: null }, 3);
    link.send({ v: 1, type: 'snapshot', seq: 3, part: 0, parts: 1, state: snapshot(leaderState) });
    link.send({ v: 1, type: 'entry', seq: 4, at: 4, cmd: { op: 'release', client: 10001, lock: 'a' }, from: 0, req: 0 });
    await eventually(() => f.applied === 4, 'seq 4 applied');
    expect(f.lockMap().map((r) => r.lock)).toEqual(['b', 'c']);
  });

  it('treats a duplicate entry as a gap too', async () => {
    const { f, link, got } = await scriptedFollower();
    link.send({ v: 1, type: 'entry', seq: 1, at: 1, cmd: { op: 'preempt', client: 10001, lock: 'a', ttl: null }, from: 0, req: 0 });
    link.send({ v: 1, type: 'entry', seq: 1, at: 1, cmd: { op: 'preempt', client: 10001, lock: 'a', ttl: null }, from: 0, req: 0 });
    await eventually(() => got.filter((x) => x.type === 'hello').length === 2, 'resync after a duplicate');
    expect(f.applied).toBe(1);
  });

  it('forwards a write with a request id; the entry naming it gives the reply, sent once the commit covers it', async () => {
    const { link, got, port } = await scriptedFollower();
    const c = await LineClient.open(port);
    closers.push(() => c.close());
    c.write('preempt w\n');
    await eventually(() => got.some((x) => x.type === 'forward'), 'the forward');
    const fwd = got.find((x) => x.type === 'forward');
    if (fwd?.type !== 'forward') throw new Error('no forward');
    expect(fwd.req).toBeGreaterThan(0);
    expect(fwd.cmd).toEqual({ op: 'preempt', client: c.id, lock: 'w', ttl: null });
    // the leader applies it as seq 1, naming this follower's request, and
    // sends no reply frame: the follower's own apply() gives the reply; not committed yet
    link.send({ v: 1, type: 'entry', seq: 1, at: 5, cmd: fwd.cmd, from: 1, req: fwd.req });
    await eventually(() => got.some((x) => x.type === 'ack' && x.seq === 1), 'ack 1');
    // a round trip on the same connection would be stuck behind it, so ask on another
    const other = await LineClient.open(port);
    closers.push(() => other.close());
    const third = await LineClient.open(port);
    closers.push(() => third.close());
    other.write('check w\n');
    // [LP-11] no dirty reads: `w` is applied here but not
    // committed, so its check waits; a check of a lock no pending entry
    // touched, sent after it on another connection, is answered at once.
    expect(await third.ask('check elsewhere')).toBe('CheckLock:Free');
    expect(other.pending).toEqual([]);
    expect(c.pending).toEqual([]); // nor the write: not committed
    link.send({ v: 1, type: 'commit', seq: 1 });
    expect(await c.next()).toBe(`PreemptLock Success owner=${c.id} token=1`);
    expect(await other.next()).toBe(`CheckLock:Lock:${c.id} token=1`);
  });

  it('no leader in time: replies waiting for a commit that will not come are answered with errors [LP-2, LP-11]', async () => {
    const { link, got, port } = await scriptedFollower(300);
    const c = await LineClient.open(port);
    const r = await LineClient.open(port);
    closers.push(() => c.close(), () => r.close());
    c.write('preempt nl\n');
    await eventually(() => got.some((x) => x.type === 'forward'), 'the forward');
    const fwd = got.find((x) => x.type === 'forward');
    if (fwd?.type !== 'forward') throw new Error('no forward');
    link.send({ v: 1, type: 'entry', seq: 1, at: 5, cmd: fwd.cmd, from: 1, req: fwd.req }); // applied here, never committed
    await eventually(() => got.some((x) => x.type === 'ack' && x.seq === 1), 'ack 1');
    r.write('check nl\n');
    link.close(); // the leader is gone, and no new one comes within 300 ms
    expect(await c.next()).toBe('Error: leader link lost before the reply; the request may or may not have been applied');
    expect(await r.next()).toBe("Error: leader lost before this lock's latest change was committed; it may or may not stand");
    expect(await r.ask('check elsewhere')).toBe('CheckLock:Free'); // reads of committed state go on
  });

  it('takes a reply frame for a write no entry carried (it changed nothing)', async () => {
    const { link, got, port } = await scriptedFollower();
    const c = await LineClient.open(port);
    closers.push(() => c.close());
    c.write('release nothing-held\n');
    await eventually(() => got.some((x) => x.type === 'forward'), 'the forward');
    const fwd = got.find((x) => x.type === 'forward');
    if (fwd?.type !== 'forward') throw new Error('no forward');
    // an entry naming another follower's request with the same id does not answer it
    link.send({ v: 1, type: 'entry', seq: 1, at: 5, cmd: { op: 'preempt', client: 30001, lock: 'q', ttl: null }, from: 2, req: fwd.req });
    link.send({ v: 1, type: 'commit', seq: 1 });
    await eventually(() => got.some((x) => x.type === 'ack' && x.seq === 1), 'ack 1');
    expect(c.pending).toEqual([]);
    link.send({ v: 1, type: 'reply', req: fwd.req, seq: 1, reply: { op: 'release', ok: false, owner: null } });
    expect(await c.next()).toBe('ReleaseLock Failed owner=none');
  });

  it('derives a waiting acquire\'s grant and another\'s timeout from the entries that cause them [LP-9]', async () => {
    const { link, got, port } = await scriptedFollower();
    const a = await LineClient.open(port);
    const b = await LineClient.open(port);
    closers.push(() => a.close(), () => b.close());
    a.write('acquire busy\n');
    b.write('acquire busy timeout=100\n');
    await eventually(() => got.filter((x) => x.type === 'forward').length === 2, 'both forwards');
    const [fa, fb] = got.filter((x) => x.type === 'forward');
    if (fa?.type !== 'forward' || fb?.type !== 'forward') throw new Error('no forwards');
    const holder = { op: 'preempt', client: 10001, lock: 'busy', ttl: null } as const;
    link.send({ v: 1, type: 'entry', seq: 1, at: 1, cmd: holder, from: 0, req: 0 });
    link.send({ v: 1, type: 'entry', seq: 2, at: 2, cmd: fa.cmd, from: 1, req: fa.req }); // a waits
    link.send({ v: 1, type: 'entry', seq: 3, at: 3, cmd: fb.cmd, from: 1, req: fb.req }); // b waits
    link.send({ v: 1, type: 'entry', seq: 4, at: 103, cmd: { op: 'timeout', client: b.id, lock: 'busy' }, from: 0, req: 0 });
    link.send({ v: 1, type: 'entry', seq: 5, at: 200, cmd: { op: 'release', client: 10001, lock: 'busy' }, from: 0, req: 0 });
    link.send({ v: 1, type: 'commit', seq: 5 });
    expect(await b.next()).toBe('AcquireLock Timeout owner=10001');
    expect(await a.next()).toBe(`AcquireLock Success owner=${a.id} token=2`);
  });

  it('a disconnect the cluster commits for a client still connected here answers its waiting acquire with an error and closes it [LP-8]', async () => {
    // The leader ends the sessions of clients it takes for gone (a node's
    // earlier run leaving, seen late): the table releases their session
    // locks and withdraws their waits. A connection still open here must
    // not wait for ever (chaos --procs saw an acquire unanswered for 28 s),
    // nor go on as if it held its session locks.
    const { link, got, port, lines } = await scriptedFollower();
    const a = await LineClient.open(port);
    const other = await LineClient.open(port);
    closers.push(() => a.close(), () => other.close());
    a.write('acquire busy\n');
    const fa = await forwarded(got);
    link.send({ v: 1, type: 'entry', seq: 1, at: 1, cmd: { op: 'preempt', client: 10001, lock: 'busy', ttl: null }, from: 0, req: 0 });
    link.send({ v: 1, type: 'entry', seq: 2, at: 2, cmd: fa.cmd, from: 1, req: fa.req }); // a waits
    link.send({ v: 1, type: 'entry', seq: 3, at: 3, cmd: { op: 'disconnect', client: a.id }, from: 0, req: 0 });
    link.send({ v: 1, type: 'commit', seq: 3 });
    expect(await a.next()).toBe(`Error: ${ERR_SESSION_ENDED}`);
    await a.waitClosed(5000);
    await eventually(() => lines.some((l) => l.includes(`client ${a.id}'s session was ended by the cluster`)), 'the log line (logs are batched)');
    // Only that client: the other connection is served as before.
    expect(await other.ask('check busy')).toBe('CheckLock:Lock:10001 token=1');
  });

  it('a connection with a session stamps its writes with its generation; one without does not [LP-16]', async () => {
    // The table refuses a stamped write from a generation its client has
    // moved on from (resumed elsewhere; lock-table.test.ts).
    const { link, got, port } = await scriptedFollower();
    const a = await LineClient.open(port);
    const b = await LineClient.open(port);
    closers.push(() => a.close(), () => b.close());
    a.write('session\n');
    const fs = await forwarded(got, 'session');
    link.send({ v: 1, type: 'entry', seq: 1, at: 1, cmd: fs.cmd, from: 1, req: fs.req });
    link.send({ v: 1, type: 'commit', seq: 1 });
    expect(await a.next()).toMatch(new RegExp(`^Session client_id=${a.id} secret=\\S+$`));
    a.write('preempt stamped\n');
    b.write('preempt plain\n');
    await eventually(() => got.filter((x) => x.type === 'forward' && x.cmd.op === 'preempt').length === 2, 'both preempts forwarded');
    const cmds = got.flatMap((x) => (x.type === 'forward' && x.cmd.op === 'preempt' ? [x.cmd] : []));
    expect(cmds.find((c) => c.client === a.id)).toMatchObject({ lock: 'stamped', gen: 0 });
    expect(cmds.find((c) => c.client === b.id)).not.toHaveProperty('gen');
  });

  it('fails in-flight writes with a named error when a gap resets the stream (a skipped entry may have carried the result)', async () => {
    const { link, got, port } = await scriptedFollower();
    const c = await LineClient.open(port);
    closers.push(() => c.close());
    c.write('preempt g\n');
    await eventually(() => got.some((x) => x.type === 'forward'), 'the forward');
    link.send({ v: 1, type: 'entry', seq: 2, at: 5, cmd: { op: 'preempt', client: 30001, lock: 'q', ttl: null }, from: 0, req: 0 });
    expect(await c.next()).toBe('Error: replication stream reset before the reply; the request may or may not have been applied');
  });

  it('holds writes for a new leader when the link is lost, then fails them with named errors if none comes', async () => {
    const { link, got, lines, port } = await scriptedFollower(150);
    const c = await LineClient.open(port);
    const held = await LineClient.open(port);
    const reader = await LineClient.open(port);
    closers.push(() => c.close(), () => held.close(), () => reader.close());
    c.write('preempt z\n');
    await eventually(() => got.some((x) => x.type === 'forward'), 'the forward');
    link.close();
    await eventually(() => lines.some((l) => /^leader link closed: .*holding 1 write\(s\) for up to 150 ms/.test(l)), 'the link loss noticed');
    held.write('preempt z3\n'); // made while there is no leader: queued, never sent
    expect(await reader.ask('check z2')).toBe('CheckLock:Free'); // reads still served from the replica
    expect(await c.next()).toBe('Error: leader link lost before the reply; the request may or may not have been applied');
    expect(await held.next()).toBe('Error: leader unavailable; the request was not applied');
    expect(await c.ask('preempt z2')).toBe('Error: leader unavailable; the request was not applied');
    expect(got.filter((x) => x.type === 'forward')).toHaveLength(1);
  });

  it('on a new leader\'s link, resumes from its own seq, derives what the new log holds and re-sends only the rest, in order (each write applied once)', async () => {
    const { f, link, got, port } = await scriptedFollower();
    const c = await LineClient.open(port);
    closers.push(() => c.close());
    c.write('preempt b\npreempt c\n');
    await eventually(() => got.filter((x) => x.type === 'forward').length === 2, 'two forwards');
    const [fb, fc] = got.filter((x) => x.type === 'forward');
    if (fb?.type !== 'forward' || fc?.type !== 'forward') throw new Error('no forwards');
    link.send({ v: 1, type: 'entry', seq: 1, at: 1, cmd: { op: 'preempt', client: 10001, lock: 'a', ttl: null }, from: 0, req: 0 });
    await eventually(() => got.some((x) => x.type === 'ack' && x.seq === 1), 'ack 1');
    link.close(); // the leader dies having applied b (seq 2) but not c; this follower saw neither
    const [newLeader, followerEnd] = MemoryTransport.pair();
    const got2: Frame[] = [];
    newLeader.onFrames((frames) => got2.push(...frames));
    newLeader.onClose(() => {});
    f.replication.backup.relink(followerEnd);
    await eventually(() => got2.some((x) => x.type === 'hello'), 'hello to the new leader');
    expect(got2.find((x) => x.type === 'hello')).toMatchObject({ node: 'follower-1', seq: 1 });
    newLeader.send({ v: 1, type: 'resume', seq: 1, to: 2 });
    newLeader.send({ v: 1, type: 'entry', seq: 2, at: 2, cmd: fb.cmd, from: 1, req: fb.req });
    await eventually(() => got2.some((x) => x.type === 'forward'), 're-sent forward');
    expect(got2.filter((x) => x.type === 'forward')).toEqual([{ v: 1, type: 'forward', req: fc.req, cmd: fc.cmd }]);
    newLeader.send({ v: 1, type: 'entry', seq: 3, at: 3, cmd: fc.cmd, from: 1, req: fc.req });
    newLeader.send({ v: 1, type: 'commit', seq: 3 });
    expect(await c.next()).toBe(`PreemptLock Success owner=${c.id} token=2`);
    expect(await c.next()).toBe(`PreemptLock Success owner=${c.id} token=3`);
    expect(c.pending).toEqual([]);
  });
});

describe('leader replication', () => {
  it('holds its own client\'s reply until every follower that has its snapshot acknowledged the entry', async () => {
    const lines: string[] = [];
    const leader = primaryNode({ name: 'leader', index: 0, log: log(lines), idCounter: newIdCounter() });
    closers.push(() => leader.close());
    const [leaderEnd, followerEnd] = MemoryTransport.pair();
    leader.replication.primary.attachFollower(leaderEnd);
    const got: Frame[] = [];
    followerEnd.onFrames((frames) => got.push(...frames));
    followerEnd.onClose(() => {});
    followerEnd.send({ v: 1, type: 'hello', node: 'follower-1', incarnation: 'x', seq: null });
    await eventually(() => got.some((x) => x.type === 'snapshot'), 'snapshot');
    const port = await leader.listen('127.0.0.1', 0);
    const c = await LineClient.open(port);
    closers.push(() => c.close());
    // Still loading its snapshot, it holds nothing back (a learner) ...
    expect(await c.ask('preempt early')).toBe(`PreemptLock Success owner=${c.id} token=1`);
    // ... and from its acknowledgement of the snapshot on, it does.
    followerEnd.send({ v: 1, type: 'ack', seq: 0 });
    await eventually(() => lines.some((l) => l === 'follower-1 has its snapshot; it counts toward commits from seq 0'), 'counted');
    got.length = 0;
    c.write('preempt h\nping\n');
    await eventually(() => got.some((x) => x.type === 'entry'), 'the entry');
    expect(got.find((x) => x.type === 'entry')).toMatchObject({ seq: 2, cmd: { op: 'preempt', lock: 'h' } });
    expect(c.pending).toEqual([]);
    followerEnd.send({ v: 1, type: 'ack', seq: 2 });
    expect(await c.next()).toBe(`PreemptLock Success owner=${c.id} token=2`);
    expect(await c.next()).toBe('PONG');
    await eventually(() => got.some((x) => x.type === 'commit' && x.seq === 2), 'commit 2 to the follower');
    // a follower that goes away no longer holds commits back
    followerEnd.close();
    await eventually(() => lines.some((l) => /follower-1 link closed/.test(l)), 'link loss noticed');
    expect(await c.ask('preempt h2')).toBe(`PreemptLock Success owner=${c.id} token=3`);
  });

  it('an admin revoke is answered only once its entry is committed, as a client\'s write is [LP-11]', async () => {
    const { leader, followerEnd, got, lines } = await scriptedLeader('follower-1');
    followerEnd.send({ v: 1, type: 'ack', seq: 0 });
    await eventually(() => lines.some((l) => l === 'follower-1 has its snapshot; it counts toward commits from seq 0'), 'counted');
    const port = await leader.listen('127.0.0.1', 0);
    const c = await LineClient.open(port);
    closers.push(() => c.close());
    c.write('preempt held\n');
    await eventually(() => got.some((x) => x.type === 'entry' && x.seq === 1), 'the preempt entry');
    followerEnd.send({ v: 1, type: 'ack', seq: 1 });
    expect(await c.next()).toBe(`PreemptLock Success owner=${c.id} token=1`);
    let answered: unknown = null;
    const revoked = leader.admin({ op: 'revoke', lock: 'held' }).then((r) => (answered = r));
    await eventually(() => got.some((x) => x.type === 'entry' && x.seq === 2), 'the revoke entry');
    expect(got.find((x) => x.type === 'entry' && x.seq === 2)).toMatchObject({ cmd: { op: 'revoke', lock: 'held' } });
    // Logged and applied on the leader, not yet on every follower: not answered.
    await new Promise((resolve) => setImmediate(resolve));
    expect(answered).toBeNull();
    followerEnd.send({ v: 1, type: 'ack', seq: 2 });
    await revoked;
    expect(answered).toEqual({ op: 'revoke', owner: c.id, token: 1 });
  });

  it('names a forwarded write\'s origin in its entry instead of sending a reply frame; a write that changes nothing gets a reply frame', async () => {
    const { followerEnd, got } = await scriptedLeader('follower-2');
    followerEnd.send({ v: 1, type: 'forward', req: 7, cmd: { op: 'preempt', client: 30001, lock: 'k', ttl: null } });
    followerEnd.send({ v: 1, type: 'forward', req: 8, cmd: { op: 'preempt', client: 30002, lock: 'k', ttl: null } });
    await eventually(() => got.some((x) => x.type === 'reply'), 'the reply frame');
    expect(got.filter((x) => x.type === 'entry')).toEqual([
      { v: 1, type: 'entry', seq: 1, at: expect.any(Number), cmd: { op: 'preempt', client: 30001, lock: 'k', ttl: null }, from: 2, req: 7 },
    ]);
    expect(got.filter((x) => x.type === 'reply')).toEqual([{ v: 1, type: 'reply', req: 8, seq: 1, reply: { op: 'preempt', ok: false, owner: 30001 } }]);
  });
});

describe('primary sequencing', () => {
  it('logs the entry that grants a waiting acquire before the writes the grant lets in after it [LP-9]', async () => {
    // A waiting acquire holds back its connection's later lines [LP-9];
    // the grant's reply lets the next one in within the same call, so its
    // entry must not overtake the grant's (the fuzz test found it: a
    // backup saw seq 17 before 16 and resynced, failing writes).
    const { leader, got } = await scriptedLeader('follower-1');
    const port = await leader.listen('127.0.0.1', 0);
    const [holder, waiter] = [await LineClient.open(port), await LineClient.open(port)];
    closers.push(() => holder.close(), () => waiter.close());
    expect(await holder.ask('preempt x')).toMatch(/^PreemptLock Success/);
    waiter.write('acquire x\npreempt y\n');
    await eventually(() => got.filter((x) => x.type === 'entry').length === 2, 'the acquire waits');
    expect(await holder.ask('release x')).toMatch(/^ReleaseLock Success/);
    expect(await waiter.next()).toMatch(/^AcquireLock Success/);
    expect(await waiter.next()).toMatch(/^PreemptLock Success/);
    await eventually(() => got.filter((x) => x.type === 'entry').length === 4, 'four entries');
    expect(got.flatMap((x) => (x.type === 'entry' ? [`${x.seq} ${x.cmd.op}`] : []))).toEqual(['1 preempt', '2 acquire', '3 release', '4 preempt']);
  });
});

describe('snapshot in parts', () => {
  /** A leader on a real port holding `n` locks (one client fills the table: above the default per-client limit), and a client of it. */
  async function bigLeader(n: number, fill: { prefix: string; ttlMs?: number }): Promise<{ leader: PortNode; leaderLines: string[]; c: LineClient }> {
    const leaderLines: string[] = [];
    const leader = primaryNode({ name: 'leader', index: 0, log: log(leaderLines), idCounter: newIdCounter(), limits: { ...DEFAULT_LIMITS, maxLocksPerClient: 1_000_000 } });
    closers.push(() => leader.close());
    const port = await leader.listen('127.0.0.1', 0);
    const filler = await fillLocks(port, n, fill);
    closers.push(() => void filler.destroy());
    const c = await LineClient.open(port);
    closers.push(() => c.close());
    return { leader, leaderLines, c };
  }

  /** A new follower-1 linked to `leader` in memory, started. */
  function joinFollower(leader: PortNode): { f: PortNode; lines: string[] } {
    const [leaderEnd, followerEnd] = MemoryTransport.pair();
    leader.replication.primary.attachFollower(leaderEnd, 'follower-1');
    const lines: string[] = [];
    const f = backupNode({ name: 'follower-1', index: 1, log: log(lines), idCounter: newIdCounter() }, followerEnd);
    closers.push(() => f.close());
    f.replication.backup.start();
    return { f, lines };
  }

  const rows = (n: PortNode): string[] => n.lockMap(1_000_000).map((r) => `${r.lock} ${r.owner} ${r.token} ${r.ttlLeft === null ? 's' : 'l'}`);

  it('a follower joining a leader with more locks than one part loads every part, and the writes made meanwhile follow it', async () => {
    const { leader, leaderLines, c } = await bigLeader(2 * SNAPSHOT_PART + 10, { prefix: 'p' });
    const { f, lines } = joinFollower(leader);
    // Writes while the parts go out: held by the leader, answered once the follower has them.
    c.write('preempt during-1\npreempt during-2 ttl=60000\nrelease during-1\n');
    await f.replication.backup.firstSync;
    expect(await c.next()).toMatch(/^PreemptLock Success/);
    expect(await c.next()).toMatch(/^PreemptLock Success/);
    expect(await c.next()).toBe('ReleaseLock Success');
    await eventually(() => lines.some((l) => /^snapshot at seq \d+: \d+ locks \(3 parts, loaded in \d+ ms\)$/.test(l)), 'the follower logged the parts');
    await eventually(() => leaderLines.some((l) => /^follower-1 linked; snapshot at seq \d+ \(\d+ locks in 3 parts, copied in \d+ ms\)$/.test(l)), 'the leader logged the parts');
    await eventually(() => f.applied === leader.applied, 'the follower caught up');
    expect(rows(f)).toEqual(rows(leader));
    expect(rows(f)).toHaveLength(2 * SNAPSHOT_PART + 11); // the filler's, and during-2
  }, 60_000);

  it('a follower back after its link closed gets the snapshot copied at the close, then the entries since, with no gap', async () => {
    const { leader, leaderLines, c } = await bigLeader(SNAPSHOT_PART + 10, { prefix: 'q', ttlMs: 600_000 });
    const first = joinFollower(leader);
    await first.f.replication.backup.firstSync;
    await first.f.close(); // its worker died: the leader copies the table for the next one
    await eventually(() => leaderLines.some((l) => /^follower-1 link closed/.test(l)), 'the close noticed');
    // Written after the copy: they must reach the new follower as entries after it.
    expect(await c.ask('preempt after-close-1')).toMatch(/^PreemptLock Success/);
    expect(await c.ask('release q0')).toMatch(/^ReleaseLock Failed/); // not its lock: changes nothing
    expect(await c.ask('preempt after-close-2 ttl=60000')).toMatch(/^PreemptLock Success/);
    const second = joinFollower(leader);
    await second.f.replication.backup.firstSync;
    await eventually(() => leaderLines.some((l) => /^follower-1 linked; snapshot at seq \d+ \(\d+ locks in 2 parts, copied in \d+ ms when a link closed, then 2 entries\)$/.test(l)), 'the copy made at the close was sent');
    await eventually(() => second.f.applied === leader.applied, 'the follower caught up');
    expect(rows(second.f)).toEqual(rows(leader));
    expect(rows(second.f)).toHaveLength(SNAPSHOT_PART + 12);
  }, 60_000);
});
