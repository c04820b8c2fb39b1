/**
 * ReadIndex (src/server/read-index.ts): what a read waits for so that it
 * shows committed state only [LP-11]. Checked against the naive rule: a
 * read of a lock waits for the latest change to it above the commit index,
 * and after a snapshot load for the snapshot's seq until that is committed.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReadIndex } from '../../src/server/read-index.js';

const LOCKS = ['a', 'b', 'c', 'd'];

describe('ReadIndex [LP-11]', () => {
  it('a read waits for the latest uncommitted change to its lock, and only for that', () => {
    const r = new ReadIndex();
    r.note(1, [{ kind: 'set', lock: 'a', owner: 1, token: 1, expiresAt: null }]);
    r.note(2, [{ kind: 'del', lock: 'a' }, { kind: 'set', lock: 'b', owner: 2, token: 2, expiresAt: null }]);
    expect(r.seqFor('a', 0)).toBe(2);
    expect(r.seqFor('b', 0)).toBe(2);
    expect(r.seqFor('c', 0)).toBe(0);
    r.committed(1);
    expect(r.seqFor('a', 1)).toBe(2); // its change at 2 is not committed yet
    r.committed(2);
    expect([r.seqFor('a', 2), r.seqFor('b', 2), r.size]).toEqual([0, 0, 0]);
  });

  it('after a snapshot load every read waits for the snapshot seq until it is committed', () => {
    const r = new ReadIndex();
    r.loaded(10);
    expect(r.seqFor('any', 3)).toBe(10);
    r.note(11, [{ kind: 'del', lock: 'x' }]);
    expect(r.seqFor('x', 3)).toBe(11);
    expect(r.seqFor('any', 10)).toBe(0);
  });

  it('matches the naive rule over random notes and commits', () => {
    const step = fc.oneof(
      fc.record({ note: fc.subarray(LOCKS, { minLength: 1 }) }),
      fc.record({ commit: fc.nat(3) }), // advance the commit index by up to 3
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 200 }), (steps) => {
        const r = new ReadIndex();
        const changes: Array<[string, number]> = [];
        let seq = 0;
        let commit = 0;
        for (const s of steps) {
          if ('note' in s) {
            seq++;
            r.note(seq, s.note.map((lock) => ({ kind: 'del', lock }) as const));
            for (const lock of s.note) changes.push([lock, seq]);
          } else {
            commit = Math.min(seq, commit + s.commit);
            r.committed(commit);
          }
          for (const lock of LOCKS) {
            const naive = Math.max(0, ...changes.filter(([l, q]) => l === lock && q > commit).map(([, q]) => q));
            expect(r.seqFor(lock, commit)).toBe(naive);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
