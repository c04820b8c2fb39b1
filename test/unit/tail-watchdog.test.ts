/**
 * The etcd log tail's watchdog rule (src/replication/tail-watchdog.ts): a
 * tail that applies nothing while the log is ahead is replaced after the
 * stall period, however many of the checks in between get no answer, and
 * a replacement that failed is tried again at the next check.
 */
import { describe, expect, it } from 'vitest';
import { TailWatchdog } from '../../src/replication/tail-watchdog.js';

const STALL = 2000;
const CHECK = 1000;

/** Runs checks every CHECK ms from 0 with the given answers (null: no answer); the time of the first `true`, or null. */
function firstRetry(w: TailWatchdog, answers: Array<number | null>, applied: number): number | null {
  for (const [i, end] of answers.entries()) if (w.check(end, applied, i * CHECK)) return i * CHECK;
  return null;
}

describe('the tail watchdog', () => {
  it('replaces a tail that applied nothing for the stall period while the log was ahead', () => {
    expect(firstRetry(new TailWatchdog(STALL), [5, 5, 5, 5], 2)).toBe(STALL);
  });

  it('leaves a tail alone while it keeps up, or while the log is not ahead', () => {
    const w = new TailWatchdog(STALL);
    for (let t = 0; t < 10; t++) expect(w.check(t + 1, t, t * CHECK)).toBe(false); // one behind, but applying
    expect(firstRetry(new TailWatchdog(STALL), [2, 2, 2, 2, 2], 2)).toBeNull();
    expect(firstRetry(new TailWatchdog(STALL), [null, null, null, null], 2)).toBeNull(); // no answer: no evidence
  });

  it('checks that get no answer do not restart the stall\'s clock (one etcd member in three cut off)', () => {
    // Answers alternate as a random pick among members, one of them cut off, would give them.
    expect(firstRetry(new TailWatchdog(STALL), [5, null, 5, null, 5, null, 5, null, 5], 2)).toBe(STALL);
    expect(firstRetry(new TailWatchdog(STALL), [5, 5, null, null, null, 5], 2)).toBe(STALL);
  });

  it('a replacement whose reads failed is tried again at the next check', () => {
    const w = new TailWatchdog(STALL);
    expect(firstRetry(w, [5, 5, 5], 2)).toBe(STALL);
    // The new tail's read timed out (no followed()): the next check retries at once, answered or not.
    expect(w.check(null, 2, STALL + 5000 + CHECK)).toBe(true);
    w.followed();
    expect(w.check(5, 2, STALL + 7000)).toBe(false); // a new stall is measured from here
    expect(w.check(5, 2, STALL + 7000 + STALL)).toBe(true);
  });

  it('a batch applied ends the stall', () => {
    const w = new TailWatchdog(STALL);
    expect(w.check(5, 2, 0)).toBe(false);
    expect(w.check(5, 3, 1500)).toBe(false);
    expect(w.check(5, 3, 2500)).toBe(false); // 1000 ms since batch 3
    expect(w.check(5, 3, 3500)).toBe(true);
  });
});
