/**
 * Scripted moments the simulation (pacifica.test.ts) reaches rarely, each
 * found by a review of the core and each failing before its fix:
 *  - a learner's addition stored by the manager while its answer was lost:
 *    the learner counts as a secondary until a newer configuration is
 *    known, so the primary cannot write past the learner's takeover;
 *  - two refusals in flight and a compaction: a follower keeps entries it
 *    acknowledged (a snapshot is loaded only by one that lacks its entry);
 *  - a former primary with a divergent tail rejoins (a join from a follower
 *    already followed is ignored, a refusal resends from the commit).
 */
import { describe, expect, it } from 'vitest';
import type { GroupConfig } from '../../src/config/config.js';
import { Group, type Message, type Timing } from '../../src/replication/pacifica.js';

const T: Timing = { leaseMs: 1000, graceMs: 1500, heartbeatMs: 200 };


/** A tiny manual harness: one real clock, every node's clock equal to it. */
class H {
  now = 0;
  stored: GroupConfig;
  nodes = new Map<string, Group<string>>();
  inbox: Array<Message<string>> = [];
  pendingProposal = new Map<string, { expected: GroupConfig; next: GroupConfig }>();
  cut = new Set<string>();
  /** `minSecondaries`: each node's floor (Group's constructor), 0 by default. */
  constructor(ids: string[], c: GroupConfig, minSecondaries = 0) {
    this.stored = c;
    for (const id of ids) {
      const g = new Group<string>(id, T, false, minSecondaries);
      g.learnConfig(c, 0);
      this.nodes.set(id, g);
    }
  }
  g(id: string): Group<string> {
    return this.nodes.get(id) as Group<string>;
  }
  /** Collect what a node wants done. */
  pump(id: string): void {
    const r = this.g(id).ready();
    for (const m of r.messages) if (!this.cut.has(`${m.from}|${m.to}`) && !this.cut.has(`${m.to}|${m.from}`)) this.inbox.push(m);
    if (r.propose) this.pendingProposal.set(id, r.propose);
  }
  /** Deliver everything in flight (repeatedly) to nodes not in `hold`. */
  deliverAll(hold: string[] = []): void {
    for (let i = 0; i < 20 && this.inbox.length > 0; i++) {
      const box = this.inbox;
      this.inbox = [];
      for (const m of box) {
        if (hold.includes(m.to)) { this.inbox.push(m); continue; }
        this.g(m.to).receive(m, this.now);
        this.pump(m.to);
      }
      if (box.every((m) => hold.includes(m.to))) break;
    }
  }
  /** The manager decides a node's proposal; `answer` false: the decision is made but the answer lost (host: proposalSettled(null)). */
  decide(id: string, answer: boolean): boolean {
    const p = this.pendingProposal.get(id);
    if (!p) return false;
    this.pendingProposal.delete(id);
    const won = JSON.stringify(p.expected) === JSON.stringify(this.stored);
    if (won) this.stored = p.next;
    this.g(id).proposalSettled(answer ? this.stored : null, this.now);
    this.pump(id);
    return won;
  }
  tell(id: string): void {
    this.g(id).learnConfig(this.stored, this.now);
    this.pump(id);
  }
  tick(id: string): void {
    this.g(id).tick(this.now);
    this.pump(id);
  }
}

describe('a learner whose addition the manager may have stored (no answer came)', () => {
  it('from a primary alone: it counts as a secondary, so the primary stops before the learner, added, takes over, and commits nothing without it', () => {
    // The first node of a cluster: GroupHost.start() stores {1, itself, []}.
    const h = new H(['p', 'l'], { version: 1, primary: 'p', secondaries: [] });
    // l is a learner in v1 (not a member).
    h.now = 10;
    h.g('p').propose('w1', h.now); // alone: commits at once
    h.pump('p');
    h.g('l').join();
    h.pump('l');
    h.deliverAll(); // join -> prepare (no match) -> ack(false)
    h.now = 200;
    h.tick('p'); // heartbeat from seq 1
    h.deliverAll();
    expect(h.g('l').lastSeq).toBe(1);
    h.now = 210;
    h.tick('p'); // l holds everything: p proposes {2, p, [l]}
    expect(h.pendingProposal.get('p')?.next).toEqual({ version: 2, primary: 'p', secondaries: ['l'] });
    // The etcd txn commits, but p's connection drops: the promise rejects -> proposalSettled(null).
    expect(h.decide('p', false)).toBe(true);
    h.tell('l'); // l's watch works: l is a secondary of v2
    expect(h.g('l').role).toBe('secondary');
    // p's link to l and to the manager are down (p cannot read or propose).
    h.cut.add('p|l');
    h.inbox = [];
    // p writes: it is still the lone primary of v1, needing no lease.
    h.now = 230;
    expect(h.g('p').canWrite(h.now)).toBe(true);
    h.g('p').propose('w2', h.now);
    h.pump('p');
    // l's grace runs out: it proposes {3, l, []} and wins.
    h.now = 200 + T.graceMs + 10;
    h.tick('l');
    h.tick('p'); // p may re-propose the add; the manager is unreachable for it
    if (h.pendingProposal.has('p')) h.pendingProposal.delete('p'), h.g('p').proposalSettled(null, h.now), h.pump('p');
    expect(h.decide('l', true)).toBe(true);
    expect(h.g('l').role).toBe('primary');
    h.g('l').propose('x2', h.now);
    h.pump('l');
    // Only l writes: p's lease from l, maybe added, ran out before l's grace did.
    expect(['p', 'l'].filter((id) => h.g(id).canWrite(h.now))).toEqual(['l']);
    // p never committed w2 (l, maybe a secondary, never held it): no seq committed twice.
    expect(h.g('p').commitSeq).toBe(1);
    expect(h.g('l').commitSeq).toBe(2);
    // And long after, p still does not take writes.
    h.now += 60_000;
    h.tick('p');
    if (h.pendingProposal.has('p')) h.pendingProposal.delete('p'), h.g('p').proposalSettled(null, h.now), h.pump('p');
    expect(h.g('p').canWrite(h.now)).toBe(false);
  });

  it('with a third member: never two writers, and nothing committed is replaced', () => {
    const h = new H(['p', 't', 'l'], { version: 1, primary: 'p', secondaries: ['t'] });
    h.now = 0;
    h.tick('p');
    h.deliverAll();
    h.g('l').join();
    h.pump('l');
    h.deliverAll();
    h.now = 20;
    h.tick('p');
    expect(h.pendingProposal.get('p')?.next.secondaries).toEqual(['t', 'l']);
    expect(h.decide('p', false)).toBe(true); // stored, answer lost
    h.tell('l'); // l: secondary of v2. t's watch lags (it learns v2 late).
    h.cut.add('p|l');
    // p keeps heartbeating t in v1; t acks; p writes w1, which needs l's ack too (l may have been added).
    for (h.now = 100; h.now <= 1600; h.now += 100) {
      h.tick('p');
      if (h.pendingProposal.has('p')) h.pendingProposal.delete('p'), h.g('p').proposalSettled(null, h.now), h.pump('p');
      if (h.now === 300) { h.g('p').propose('w1', h.now); h.g('p').flush(h.now); h.pump('p'); }
      h.deliverAll();
    }
    expect(h.g('p').commitSeq).toBe(0);
    // l's grace from its last prepare (t=0) is long over: it takes over with {3, l, [t]}.
    h.tick('l');
    expect(h.decide('l', true)).toBe(true);
    h.tell('t'); // t learns v3 now
    h.deliverAll(); // l's prepare to t; t acks: l holds t's lease
    h.now += 10;
    h.tick('l');
    h.deliverAll();
    expect(['p', 'l'].filter((id) => h.g(id).canWrite(h.now)).length).toBeLessThanOrEqual(1);
    // p could not commit w1 without l (maybe added): nothing committed is replaced when l writes.
    expect(h.g('p').commitSeq).toBe(0);
    h.g('l').propose('x1', h.now);
    h.g('l').flush(h.now);
    h.pump('l');
    h.deliverAll();
    h.now += 300;
    h.tick('l');
    h.deliverAll();
    expect(h.g('l').commitSeq).toBeGreaterThanOrEqual(1);
  });
});


describe('a floor on the group\'s size (--min-secondaries)', () => {
  /** p primary of {p, a, b}; both secondaries fall silent, p removes them: what may it then do? */
  function alone(floor: number): H {
    const h = new H(['p', 'a', 'b'], { version: 1, primary: 'p', secondaries: ['a', 'b'] }, floor);
    h.now = 10;
    h.tick('p');
    h.deliverAll(); // prepares, acks: p holds a lease from each
    expect(h.g('p').canWrite(h.now)).toBe(true);
    h.g('p').propose('w1', h.now);
    h.g('p').flush(h.now); // the host flushes once per turn
    h.pump('p');
    h.deliverAll();
    expect(h.g('p').commitSeq).toBe(1);
    // a and b stop answering (crashed, paused): a write appended just before their leases lapse reaches neither.
    h.cut.add('p|a').add('p|b');
    h.now = 10 + T.leaseMs - 5;
    h.g('p').propose('w-late', h.now);
    h.g('p').flush(h.now);
    h.pump('p');
    h.deliverAll();
    expect(h.g('p').commitSeq).toBe(1);
    // Their leases lapse and p asks to remove them.
    h.now = 10 + T.leaseMs + 10;
    h.tick('p');
    expect(h.g('p').canWrite(h.now)).toBe(false);
    expect(h.pendingProposal.get('p')?.next).toEqual({ version: 2, primary: 'p', secondaries: [] });
    expect(h.decide('p', true)).toBe(true);
    return h;
  }

  it('0 (the default): a primary whose secondaries were removed writes alone', () => {
    const h = alone(0);
    expect(h.g('p').canWrite(h.now)).toBe(true);
    expect(h.g('p').commitSeq).toBe(2); // w-late, committed by p alone once the others were removed
    h.g('p').propose('w3', h.now);
    h.g('p').flush(h.now);
    h.pump('p');
    expect(h.g('p').commitSeq).toBe(3); // acknowledged by p alone: lost if p is lost before the others are back
  });

  it('1: that primary takes no write while it is alone, still answers reads, and writes again once a secondary is back', () => {
    const h = alone(1);
    expect(h.g('p').belowFloor).toBe(true);
    expect(h.g('p').canWrite(h.now)).toBe(false);
    expect(() => h.g('p').propose('w2', h.now)).toThrow(/the configuration holds 0 secondaries, fewer than the 1 writes need/);
    expect(h.g('p').canRead(h.now)).toBe(true); // it holds every committed entry
    expect(h.g('p').commitSeq).toBe(1); // w-late, held by p alone, is not committed
    // a comes back and joins as a learner; p adds it once it holds the log.
    h.cut.delete('p|a');
    h.g('a').learnConfig(h.stored, h.now);
    h.g('a').join();
    h.pump('a');
    h.deliverAll();
    h.now += T.heartbeatMs;
    h.tick('p');
    h.deliverAll();
    h.now += 10;
    h.tick('p');
    expect(h.pendingProposal.get('p')?.next).toEqual({ version: 3, primary: 'p', secondaries: ['a'] });
    expect(h.decide('p', true)).toBe(true);
    h.tell('a');
    h.now += T.heartbeatMs;
    h.tick('p');
    h.deliverAll();
    expect(h.g('p').belowFloor).toBe(false);
    expect(h.g('p').canWrite(h.now)).toBe(true);
    expect(h.g('p').commitSeq).toBe(2); // w-late, committed once a holds it
    h.g('p').propose('w3', h.now);
    h.g('p').flush(h.now);
    h.pump('p');
    h.deliverAll();
    expect(h.g('p').commitSeq).toBe(3); // committed with a, not alone
  });
});

describe('a snapshot never takes entries a follower acknowledged', () => {
  it('one lost prepare, two refusals in flight, then a compaction: the follower keeps the entries it acknowledged', () => {
    const v1: GroupConfig = { version: 1, primary: 'p', secondaries: ['s'] };
    const p = new Group<string>('p', T), s = new Group<string>('s', T);
    p.learnConfig(v1, 0); s.learnConfig(v1, 0);
    const toS: Message<string>[] = [], toP: Message<string>[] = [];
    const out = (g: Group<string>) => { const r = g.ready(); for (const m of r.messages) (m.to === 's' ? toS : toP).push(m); return r; };
    const applied: Record<string, string[]> = { p: [], s: [] };
    const outP = () => { const r = out(p); for (const e of r.committed) applied['p']![e.seq - 1] = e.data; return r; };
    const deliverS = (now: number) => { while (toS.length) { const m = toS.shift()!; if (m.type === 'snapshot') s.installSnapshot(m, now); s.receive(m, now); } const r = out(s); for (const e of r.committed) applied['s']![e.seq - 1] = e.data; };
    const deliverOneP = (now: number) => { const m = toP.shift()!; p.receive(m, now); outP(); };
    outP(); deliverS(0); deliverOneP(1); // heartbeat, ack: p holds s's lease
    expect(p.canWrite(2)).toBe(true);
    p.propose('w1', 10); p.flush(10); outP(); toS.length = 0; // prepare A lost (a link reconnect)
    p.propose('w2', 11); p.flush(11); outP(); deliverS(11); // B1 rejected: ack(false, 0) in flight
    p.propose('w3', 12); p.flush(12); outP(); deliverS(12); // B2 rejected: ack(false, 0) in flight, behind it
    deliverOneP(13); // the first rejection: nextSeq[s] = 1
    for (let i = 4; i <= 20; i++) p.propose(`w${i}`, 14);
    p.flush(14); outP(); deliverS(14); // D: entries 1..20 from prevSeq 0; s acks ok 20 (behind the second rejection)
    deliverOneP(15); // the second rejection: nextSeq[s] = 1 again
    deliverOneP(15); // ok 20: matched[s] = 20, commit 20
    while (toP.length > 0) deliverOneP(15); // the rest in flight, in order (refusals may come after the ok)
    expect(p.commitSeq).toBe(20);
    outP();
    p.compact(10); // the host keeps a snapshot at 10 (applied is 20)
    p.propose('w21', 16); p.flush(16); outP();
    // A snapshot at 10, if one is sent at all, is loaded only by a follower that lacks entry 10: s keeps 11..20.
    const snap = toS.find((m) => m.type === 'snapshot');
    if (snap !== undefined && snap.type === 'snapshot') expect(s.installSnapshot(snap, 16)).toBe(false);
    deliverS(16);
    expect(s.lastSeq).toBeGreaterThanOrEqual(20);
    // p dies now. s takes over after its grace: primary alone, it commits its log and writes.
    toS.length = 0;
    s.tick(16 + T.graceMs);
    const r = s.ready();
    expect(r.propose?.next).toEqual({ version: 2, primary: 's', secondaries: [] });
    s.proposalSettled(r.propose!.next, 1600);
    s.propose('x', 1600);
    s.ready();
    // What p committed is s's: seq 11 is w11, and x comes after everything.
    expect(applied['s']![10] ?? s.commitSeq >= 11).toBeTruthy();
    expect(s.lastSeq).toBeGreaterThan(20);
  });
});


describe('rejoining with a divergent tail', () => {
  it('a former primary whose uncommitted tail diverges catches up and is added while it keeps sending join', () => {
    let stored: GroupConfig = { version: 1, primary: 'p', secondaries: ['s'] };
    const p = new Group<string>('p', T), s = new Group<string>('s', T);
    const nodes: Record<string, Group<string>> = { p, s };
    let inbox: Array<Message<string>> = [];
    let linkUp = true;
    const proposals: Record<string, { expected: GroupConfig; next: GroupConfig } | undefined> = {};
    const pump = (id: string) => {
      const r = nodes[id]!.ready();
      if (linkUp) inbox.push(...r.messages);
      if (r.propose) proposals[id] = r.propose;
    };
    const deliver = (now: number) => {
      for (let i = 0; i < 10 && inbox.length; i++) {
        const b = inbox; inbox = [];
        for (const m of b) { nodes[m.to]!.receive(m, now); pump(m.to); }
      }
    };
    p.learnConfig(stored, 0); s.learnConfig(stored, 0); pump('p'); pump('s'); deliver(0);
    // p writes 10 entries the link loses (p cannot commit them: s lacks them).
    linkUp = false;
    for (let i = 0; i < 10; i++) { p.propose(`p${i}`, 10); p.flush(10); pump('p'); }
    inbox = [];
    // p is cut from the manager too (its removal of s never lands); s takes over after its grace.
    let now = 0;
    for (now = 100; now <= 1800; now += 100) {
      p.tick(now); pump('p'); if (proposals['p']) { proposals['p'] = undefined; p.proposalSettled(null, now); }
      s.tick(now); pump('s');
      if (proposals['s']) { const q = proposals['s']; proposals['s'] = undefined; if (JSON.stringify(q.expected) === JSON.stringify(stored)) stored = q.next; s.proposalSettled(stored, now); pump('s'); }
      inbox = [];
    }
    expect(s.role).toBe('primary');
    for (let i = 0; i < 10; i++) { s.propose(`s${i}`, now); pump('s'); }
    inbox = [];
    // Heal: p learns it is a learner and joins like GroupHost (every 4 heartbeats); nothing new is written.
    linkUp = true;
    p.learnConfig(stored, now); pump('p');
    let lastJoin = -Infinity;
    const start = now;
    for (; now < start + 60_000; now += 100) {
      s.tick(now); pump('s'); if (proposals['s']) { const q = proposals['s']; proposals['s'] = undefined; if (JSON.stringify(q.expected) === JSON.stringify(stored)) stored = q.next; s.proposalSettled(stored, now); p.learnConfig(stored, now); pump('s'); }
      p.tick(now);
      if (p.role === 'learner' && now - lastJoin >= 4 * T.heartbeatMs) { lastJoin = now; p.join(); }
      pump('p');
      deliver(now);
    }
    expect(stored.secondaries).toContain('p');
  });
});

describe('a commit reaches the followers at once', () => {
  it('after the ack that completes a commit, the turn\'s flush sends the new commit index to every follower, with no write or heartbeat after it', () => {
    const h = new H(['p', 's1', 's2'], { version: 1, primary: 'p', secondaries: ['s1', 's2'] });
    h.now = 10;
    h.tick('p');
    h.deliverAll(); // leases from both secondaries
    h.now = 20;
    expect(h.g('p').canWrite(h.now)).toBe(true);
    h.g('p').propose('w1', h.now);
    h.g('p').flush(h.now);
    h.pump('p');
    // The same instant: no tick (no heartbeat) and no later write; the host flushes once per turn.
    h.deliverAll();
    expect(h.g('p').commitSeq).toBe(1);
    h.g('p').flush(h.now);
    h.pump('p');
    h.deliverAll();
    // Role-less nodes answer their own clients from what they applied: both know w1 is committed.
    expect(h.g('s1').commitSeq).toBe(1);
    expect(h.g('s2').commitSeq).toBe(1);
  });
});

describe('acks of prepares that tell nothing new', () => {
  it('a commit sent on right after an ack is not acknowledged; the next heartbeat is, and the lease moves on', () => {
    const h = new H(['p', 's1'], { version: 1, primary: 'p', secondaries: ['s1'] });
    h.now = 10;
    h.tick('p');
    h.deliverAll();
    h.now = 20;
    h.g('p').propose('w1', h.now);
    h.g('p').flush(h.now);
    h.pump('p');
    h.deliverAll(); // prepare(w1) -> ack -> committed at p
    h.g('p').flush(h.now); // the commit, sent on
    const commitOnly = h.g('p').ready().messages;
    expect(commitOnly.map((m) => m.type)).toEqual(['prepare']);
    h.g('s1').receive(commitOnly[0] as Message<string>, h.now);
    expect(h.g('s1').commitSeq).toBe(1);
    expect(h.g('s1').ready().messages).toEqual([]); // no ack: nothing new, and its last ack was just now
    // A heartbeat later: acknowledged, so the primary's lease from s1 rests on it.
    h.now = 20 + T.heartbeatMs + 1;
    h.g('p').tick(h.now);
    const beat = h.g('p').ready().messages;
    expect(beat.map((m) => m.type)).toEqual(['prepare']);
    h.g('s1').receive(beat[0] as Message<string>, h.now);
    const acks = h.g('s1').ready().messages;
    expect(acks.map((m) => m.type)).toEqual(['ack']);
    // With that ack the primary can write until a lease after the heartbeat's send time.
    h.g('p').receive(acks[0] as Message<string>, h.now);
    expect(h.g('p').canWrite(h.now + T.leaseMs - 1)).toBe(true);
  });
});
