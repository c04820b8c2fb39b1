/**
 * The sequencer's duties (src/replica/duties.ts), pure: what a primary
 * must log because time passed [LP-9, LP-10] or a node left [LP-8],
 * handed out once each, in order, only while this node sequences.
 */
import { describe, expect, it } from 'vitest';
import { apply, createState, type Command, type TableState } from '../../src/core/lock-table.js';
import { Duties } from '../../src/replica/duties.js';

const A = 10001; // node 1's clients (client-ids: index * 10000 + n)
const B = 20001; // node 2's
const nodeOf = (c: number): number => Math.floor(c / 10000);

/** Apply `cmd` at log time `at`, and tell the duties, as an engine does. */
function step(s: TableState, d: Duties, cmd: Command, at: number): void {
  d.applied(cmd, apply(s, cmd, at), at);
}

describe('duties', () => {
  it('[LP-10] a lease end is handed out once as an expire, until that entry is applied; [LP-9] a wait ends at its deadline as a timeout, in order', () => {
    const s = createState();
    const d = new Duties(() => s);
    d.takeOver();
    step(s, d, { op: 'preempt', client: A, lock: 'lease', ttl: 100 }, 1000);
    step(s, d, { op: 'preempt', client: A, lock: 'held', ttl: null }, 1000);
    step(s, d, { op: 'acquire', client: B, lock: 'held', ttl: null, timeout: 50 }, 1010);
    expect(d.nextDue()).toBe(1060);
    expect(d.due(1059)).toEqual([]);
    expect(d.due(1060)).toEqual([{ op: 'timeout', client: B, lock: 'held', deadline: 1060 }]);
    expect(d.nextDue()).toBe(1100);
    const expire: Command = { op: 'expire', lock: 'lease', token: 1 };
    expect(d.due(1100)).toEqual([expire]);
    expect(d.due(1200)).toEqual([]); // in flight: not again
    step(s, d, expire, 1100);
    expect(s.locks.find('lease')).toBe(-1);
    expect(d.nextDue()).toBe(Infinity);
  });

  it('[LP-22] a lease on several locks, one token for all, ends on each of them; [LP-20] holds of one lock end each by its own token', () => {
    const s = createState();
    const d = new Duties(() => s);
    d.takeOver();
    step(s, d, { op: 'preempt', client: A, lock: 'x', ttl: 100, locks: ['x', 'y', 'z'] }, 1000);
    step(s, d, { op: 'preempt', client: A, lock: 'r', ttl: 50, shared: true }, 1000);
    step(s, d, { op: 'preempt', client: B, lock: 'r', ttl: 80, shared: true }, 1000);
    const due = d.due(1100);
    // every lease end once, in end order: r's first hold (50), r's second (80), then the three locks of one grant (100), in no set order
    expect(due.slice(0, 2)).toEqual([
      { op: 'expire', lock: 'r', token: 2 },
      { op: 'expire', lock: 'r', token: 3 },
    ]);
    expect(due.slice(2).map((c) => (c.op === 'expire' ? `${c.lock}:${c.token}` : '')).sort()).toEqual(['x:1', 'y:1', 'z:1']);
    expect(d.due(1200)).toEqual([]); // in flight: not again
    for (const cmd of due) step(s, d, cmd, 1100);
    for (const l of ['x', 'y', 'z', 'r']) expect(s.locks.find(l) === -1 && !s.groups.has(l)).toBe(true);
    expect(d.nextDue()).toBe(Infinity);
  });

  it('hands out nothing before takeOver and after stop; a new sequencer keeps the waits the table holds', () => {
    const s = createState();
    const d = new Duties(() => s);
    step(s, d, { op: 'preempt', client: A, lock: 'held', ttl: 20 }, 1000);
    step(s, d, { op: 'acquire', client: B, lock: 'held', ttl: null, timeout: 50 }, 1000);
    expect(d.nextDue()).toBe(Infinity);
    expect(d.due(5000)).toEqual([]);
    d.takeOver(); // the wait's deadline is in the table [LP-9]
    expect(d.size).toBe(1);
    expect(d.due(5000)).toEqual([
      { op: 'expire', lock: 'held', token: 1 },
      { op: 'timeout', client: B, lock: 'held', deadline: 1050 },
    ]);
    d.stop();
    expect(d.nextDue()).toBe(Infinity);
    expect(d.due(9000)).toEqual([]);
  });

  it('[LP-8] a departed node: the disconnects of its clients with session locks or waits; the nodes whose clients would need one', () => {
    const s = createState();
    const d = new Duties(() => s);
    d.takeOver();
    step(s, d, { op: 'preempt', client: A, lock: 'session', ttl: null }, 1);
    step(s, d, { op: 'preempt', client: A + 1, lock: 'lease-only', ttl: 1000 }, 1);
    step(s, d, { op: 'acquire', client: B, lock: 'session', ttl: null, timeout: null }, 1);
    expect([...d.nodesServing(nodeOf)].sort()).toEqual([1, 2]);
    expect(d.sessionsEndedBy(1, nodeOf)).toEqual([{ op: 'disconnect', client: A }]);
    expect(d.sessionsEndedBy(2, nodeOf)).toEqual([{ op: 'disconnect', client: B }]);
    expect(d.sessionsEndedBy(3, nodeOf)).toEqual([]);
  });
});
