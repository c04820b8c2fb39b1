/**
 * The safety checker. First the checker itself, on histories
 * made by hand, so we know it finds each kind of violation (a checker that
 * cannot fail proves nothing); then a bounded run of the real harness: many
 * TCP clients against a cluster of worker threads under a --chaos schedule
 * that kills followers and the leader, delays link frames and drops
 * clients, until at least 10k grants, with shared holds, semaphores and
 * several locks at once among them [LP-20, LP-21, LP-22]. `npm run chaos`
 * runs the same for as long as asked.
 */
import { describe, expect, it } from 'vitest';
import { check, summary, type History, type Hold } from '../../tools/safety/checker.js';
import { around, runSafety } from '../../tools/safety/run.js';
import { expectEveryKind } from '../helpers/safety-expect.js';

const hold = (lock: string, client: number, token: number, start: number, end: number, how: Hold['how'] = 'release', lease = false): Hold => ({ lock, client, token, start, end, how, lease });
const history = (holds: Hold[], more: Partial<History> = {}): History => ({ holds, lost: [], hangs: [], ...more });

describe('the checker', () => {
  it('passes a clean history: back-to-back holds with rising tokens', () => {
    const r = check(history([hold('a', 1, 10, 0, 5), hold('a', 2, 11, 5, 9), hold('b', 1, 12, 1, 3)]));
    expect(r.violations).toBe(0);
    expect(r.grants).toBe(3);
  });

  it('finds two holders of one lock at once [LP-5]', () => {
    const r = check(history([hold('a', 1, 10, 0, 5), hold('a', 2, 11, 4, 9)]));
    expect(r.overlaps).toHaveLength(1);
    expect(r.violations).toBe(1);
    expect(summary(r)).toMatch(/overlap: a client 1 token 10 .* a client 2 token 11/);
  });

  it('finds an overlap with a hold that is not the next one', () => {
    const r = check(history([hold('a', 1, 10, 0, 100), hold('a', 2, 11, 10, 20), hold('a', 3, 12, 30, 40)]));
    expect(r.overlaps).toHaveLength(2);
  });

  it('allows a session lock cut by a fault to overlap its successor, but never a lease', () => {
    const session = check(history([hold('a', 1, 10, 0, 5, 'cut'), hold('a', 2, 11, 4.5, 9)]));
    expect(session.violations).toBe(0);
    expect(session.sessionCuts).toBe(1);
    const lease = check(history([hold('a', 1, 10, 0, 5, 'cut', true), hold('a', 2, 11, 4.5, 9)]));
    expect(lease.overlaps).toHaveLength(1);
  });

  it('finds tokens that do not increase along a lock, and tokens issued twice [LP-7]', () => {
    const order = check(history([hold('a', 1, 11, 0, 5), hold('a', 2, 10, 6, 9)]));
    expect(order.tokenOrder).toHaveLength(1);
    const twice = check(history([hold('a', 1, 10, 0, 5), hold('b', 2, 10, 6, 9)]));
    expect(twice.repeatedTokens).toEqual([10]);
  });

  it('a lease granted earlier whose grant reached its client after its own deadline was never held: not out of order', () => {
    // Token 9 was issued before 11, but its reply arrived at 20, when its lease (sent at 1, ttl 4) had ended at 5.
    const late = check(history([hold('a', 1, 11, 6, 9), hold('a', 2, 9, 20, 5, 'deadline', true)]));
    expect(late.tokenOrder).toHaveLength(0);
    expect(late.violations).toBe(0);
    // One that was held (its deadline after its arrival) still counts.
    const held = check(history([hold('a', 1, 11, 6, 9), hold('a', 2, 9, 20, 25, 'deadline', true)]));
    expect(held.tokenOrder).toHaveLength(1);
  });

  it('nor does such a grant overlap the holder after it (seen across processes: the grant arrived while the next holder held)', () => {
    // Token 9's reply arrived at 7, inside token 11's hold, but its lease had ended at 5.
    const late = check(history([hold('a', 1, 11, 6, 9), hold('a', 2, 9, 7, 5, 'deadline', true)]));
    expect(late.overlaps).toHaveLength(0);
    expect(late.violations).toBe(0);
  });

  it('a session grant that reached a client whose connection a fault then cut may carry an older token: not out of order; an uncut one is', () => {
    // Seen across processes: token 3468's reply was sent just before its
    // node's host was cut off and arrived 8 s later, when the link was back,
    // after token 4319 had been granted and released; the connection closed
    // at once (the node had stopped). The session had ended on the server.
    const late = check(history([hold('s20', 1, 4319, 17683.6, 17684.6), hold('s20', 2, 3468, 17726.2, 17727.1, 'cut')]));
    expect(late.tokenOrder).toHaveLength(0);
    expect(late.lateSessionGrants).toBe(1);
    expect(late.violations).toBe(0);
    expect(summary(late)).toMatch(/below a later token \(a reply delayed across a cut; not a violation\): 1/);
    // Not cut, or a lease: still a violation.
    expect(check(history([hold('s20', 1, 4319, 0, 1), hold('s20', 2, 3468, 2, 3, 'release')])).tokenOrder).toHaveLength(1);
    expect(check(history([hold('s20', 1, 4319, 0, 1), hold('s20', 2, 3468, 2, 3, 'cut', true)])).tokenOrder).toHaveLength(1);
  });

  it('counts replicas that disagree at the end as violations', () => {
    const r = check(history([], { diverged: ['follower-1 lacks "a owner=1 token=10 waiters=" that leader has'] }));
    expect(r.violations).toBe(1);
    expect(summary(r)).toMatch(/replicas diverged 1/);
  });

  it('counts a fresh read that did not show a lease held meanwhile as a violation [LP-17, LP-18]', () => {
    const h = hold('a', 1, 10, 0, 50, 'release', true);
    const r = check(history([h], { staleReads: [{ hold: h, reply: 'CheckLock:Lock:1 token=9' }], freshReads: { made: 3, judged: 2 } }));
    expect(r.violations).toBe(1);
    expect(summary(r)).toMatch(/stale fresh reads 1 \(of 2 judged, 3 made\)[^]*stale fresh read: a client 1 token 10 .*: CheckLock:Lock:1 token=9/);
  });

  it('counts a watch answered other than by a committed change as a violation [LP-19]', () => {
    const h = hold('a', 1, 10, 0, 50, 'release', true);
    const r = check(history([h], { earlyWatches: [{ hold: h, reply: 'WatchLock:Free', why: 'answered @20.0, before the hold ended' }], watches: { made: 2, judged: 1 } }));
    expect(r.violations).toBe(1);
    expect(summary(r)).toMatch(/early watches 1 \(of 1 judged, 2 made\)[^]*early watch: a client 1 token 10 .*: WatchLock:Free \(answered @20\.0, before the hold ended\)/);
  });

  it('[LP-20] shared holds overlap one another, never a hold alone; the summary counts each kind', () => {
    const shared = (client: number, token: number, start: number, end: number): Hold => ({ ...hold('r', client, token, start, end), shared: true });
    const ok = check(history([shared(1, 10, 0, 5), shared(2, 11, 1, 6), shared(3, 12, 2, 4), hold('r', 4, 13, 6, 8)]));
    expect(ok.violations).toBe(0);
    expect(ok.kinds).toMatchObject({ alone: 1, shared: 3, sharedPeak: 3 });
    expect(summary(ok)).toMatch(/grants by kind: alone 1, shared 3 \(LP-20; up to 3 at once\), semaphore 0/);
    const writer = check(history([shared(1, 10, 0, 5), hold('r', 2, 11, 4, 9)]));
    expect(writer.overlaps).toHaveLength(1);
    expect(summary(writer)).toMatch(/overlap: r client 1 token 10 .* shared \/ r client 2 token 11/);
    const reader = check(history([hold('r', 2, 10, 0, 5), shared(1, 11, 4, 9)]));
    expect(reader.overlaps).toHaveLength(1);
  });

  it('[LP-21] at most limit holds of a semaphore at once; a cut session hold that makes the difference is counted apart', () => {
    const sem = (client: number, token: number, start: number, end: number, how: Hold['how'] = 'release'): Hold => ({ ...hold('m', client, token, start, end, how), limit: 2 });
    const ok = check(history([sem(1, 10, 0, 5), sem(2, 11, 1, 6), sem(3, 12, 5, 8)]));
    expect(ok.violations).toBe(0);
    expect(ok.kinds.atLimit).toBe(2);
    const three = check(history([sem(1, 10, 0, 5), sem(2, 11, 1, 6), sem(3, 12, 4, 8)]));
    expect(three.overLimit).toHaveLength(1);
    expect(three.violations).toBe(1);
    expect(summary(three)).toMatch(/over limit 1[^]*over limit: m limit=2 held by 3 at once/);
    const cut = check(history([sem(1, 10, 0, 5, 'cut'), sem(2, 11, 1, 6), sem(3, 12, 4, 8)]));
    expect(cut.violations).toBe(0);
    expect(cut.sessionCuts).toBe(1);
    // Another mode, or another limit, on a semaphore's lock overlaps it.
    expect(check(history([sem(1, 10, 0, 5), hold('m', 2, 11, 1, 6)])).overlaps).toHaveLength(1);
    expect(check(history([sem(1, 10, 0, 5), { ...hold('m', 2, 11, 1, 6), limit: 3 }])).overlaps).toHaveLength(1);
  });

  it('[LP-22] a grant of several is one grant, one token, and a hold alone of each of its locks', () => {
    const both: Hold = { ...hold('a', 1, 10, 0, 5), locks: ['a', 'b'] };
    const ok = check(history([both, hold('b', 2, 11, 5, 9), hold('a', 3, 12, 6, 7)]));
    expect(ok.violations).toBe(0);
    expect(ok.repeatedTokens).toEqual([]);
    expect(ok.kinds).toMatchObject({ alone: 2, several: 1, severalLocks: 2 });
    const onB = check(history([both, hold('b', 2, 11, 4, 9)]));
    expect(onB.overlaps).toHaveLength(1);
    expect(summary(onB)).toMatch(/overlap: a\+b client 1 token 10/);
    // Its token along each of its locks, like any other grant's.
    expect(check(history([hold('b', 2, 9, 0, 1), { ...both, start: 2 }])).violations).toBe(0);
    expect(check(history([hold('b', 2, 11, 0, 1), { ...both, start: 2 }])).tokenOrder).toHaveLength(1);
  });

  it('[LP-7] token order along a lock of several holders: holds among others may arrive in either order, a hold alone may not', () => {
    const shared = (client: number, token: number, start: number, end: number): Hold => ({ ...hold('r', client, token, start, end), shared: true });
    // 10 granted first, 11 received first: both shared, not a violation.
    expect(check(history([shared(2, 11, 0, 5), shared(1, 10, 1, 5)])).tokenOrder).toEqual([]);
    // A hold alone received after them must be above both.
    expect(check(history([shared(2, 11, 0, 5), shared(1, 10, 1, 5), hold('r', 3, 12, 6, 7)])).tokenOrder).toEqual([]);
    expect(check(history([shared(2, 12, 0, 5), shared(1, 10, 1, 5), hold('r', 3, 11, 6, 7)])).tokenOrder).toHaveLength(1);
    // And a shared hold received after a hold alone, above it.
    expect(check(history([hold('r', 3, 11, 0, 1), shared(1, 10, 2, 5)])).tokenOrder).toHaveLength(1);
  });

  it('[LP-7] across locks: a grant asked for after another was received carries a larger token; one asked for before may not', () => {
    const a: Hold = { ...hold('a', 1, 20, 10, 15), sent: 9 };
    const after: Hold = { ...hold('b', 2, 19, 12, 13), sent: 11 };
    const r = check(history([a, after]));
    expect(r.tokensBehind).toHaveLength(1);
    expect(r.violations).toBe(1);
    expect(summary(r)).toMatch(/tokens behind an earlier grant 1[^]*token behind: a client 1 token 20 .* received before b client 2 token 19 .* was sent \(@11\.0\)/);
    // Sent before a's grant came back: granted in either order.
    expect(check(history([a, { ...after, sent: 9.5 }])).violations).toBe(0);
  });

  it('[LP-22] counts a partial grant after a refusal of several, and a refusal the workload rules out, as violations', () => {
    const r = check(history([], {
      partialGrants: [{ client: 7, request: 'preempt s1 s2', refusal: 'PreemptLock Failed owner=3 lock=s2', reply: 'check s1 via 9002: CheckLock:Lock:7 token=40', at: 5 }],
      partialReads: { made: 4, judged: 3 },
      refusals: [{ client: 8, request: 'preempt m0 limit=2', reply: 'Error: m0 is held with limit=2', at: 6 }],
    }));
    expect(r.violations).toBe(2);
    expect(summary(r)).toMatch(/partial grants 1 \(of 3 judged, 4 made\), refusals ruled out 1[^]*partial grant: client 7 preempt s1 s2 .*CheckLock:Lock:7 token=40\n {2}refusal ruled out: client 8 preempt m0 limit=2 .*: Error: m0 is held with limit=2/);
  });

  it('counts lost grants and hangs as violations', () => {
    const h = hold('a', 1, 10, 0, 5);
    const r = check(history([h], { lost: [{ hold: h, why: 'gone' }], hangs: [{ client: 2, request: 'acquire a', waitedMs: 10_000, at: 1 }] }));
    expect(r.violations).toBe(2);
    expect(summary(r)).toMatch(/lost: a client 1 token 10 .*: gone\n {2}hang: client 2 acquire a \(10000 ms\)/);
  });
});

describe('a bounded chaos run', () => {
  it('at least 10k grants under follower and leader kills, link delays and dropped clients: no violations', async () => {
    const r = await runSafety({ grants: 10_000, seconds: 90, followers: 2, clients: 24, locks: 24 });
    // Print what happened, so a CI log shows the faults that were survived.
    process.stdout.write(`safety: ${r.seconds.toFixed(1)} s, faults ${JSON.stringify(r.faults)}, failovers ${r.failovers}, restarts ${r.restarts}\n${summary(r.report)}\n`);
    expect(r.report.violations, [summary(r.report), ...around(r)].join('\n')).toBe(0);
    expect(r.report.grants).toBeGreaterThanOrEqual(10_000);
    expect(r.counters.resumes).toBeGreaterThan(0); // clients came back for their leases [LP-16]
    expectEveryKind(r); // shared holds, semaphores, several locks [LP-20, LP-21, LP-22]
    // The faults happened: otherwise this proves nothing about them.
    expect(r.failovers).toBeGreaterThanOrEqual(1);
    expect(r.restarts).toBeGreaterThanOrEqual(1);
    expect(r.faults['drop-client'] ?? 0).toBeGreaterThanOrEqual(1);
    expect(r.counters.renews).toBeGreaterThan(0);
    expect(r.replicas.nodes).toBe(3); // a leader and 2 followers again after every fault
  }, 150_000);
});
