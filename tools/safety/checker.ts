/**
 * The safety checker: given every hold interval the clients
 * observed, decide whether the cluster kept its promises. Pure: no I/O.
 *
 * A hold starts when its client receives the grant and ends at the earliest
 * of: the client sending `release`, its lease deadline (counted from when
 * it *sent* the grant or the last successful renew, so never later than the
 * server's), and, for a session lock, the client seeing its connection
 * close. Times are one process's monotonic clock (ms).
 *
 * Violations:
 *  - overlap [LP-5]: two holds of one lock overlap in time. One exception
 *    is not a violation: a session lock whose connection was cut by a fault
 *    (chaos) ends on the server before its client can see the close, so the
 *    next holder may start a moment before; those are counted as
 *    `sessionCuts`, and a lease never gets that allowance;
 *  - token order [LP-7]: a lock's grants, in time order, do not carry
 *    strictly increasing tokens, or a token repeats across locks. One
 *    exception again: a session lock whose connection a fault cut may have
 *    been granted, and ended with its session on the server, long before
 *    its grant reached the client (a reply sent just before a host was cut
 *    off arrives when the link is back, after TCP's retransmission
 *    backoff: 8 s late was seen); its token is then below later ones. Its
 *    client sees the connection close at once; a fenced resource refuses
 *    the old token (what fencing is for). Counted as `lateSessionGrants`;
 *    a lease never gets that allowance (it has the deadline rule below);
 *  - lost [LP-5, LP-8]: a grant the client was told of is gone while it
 *    should still hold (found by the final check, or a release/renew by
 *    the owner on a live connection that fails before its lease deadline);
 *  - hang: a request with neither an answer nor a closed connection;
 *  - diverged: once quiet, the nodes' lock tables (owner, token, waiters of
 *    every lock) do not agree: a replica has a gap or a duplicate;
 *  - early watch [LP-19]: a watch naming a lease's grant (`watch <lock>
 *    token=<t>`, on another connection) answered with that grant, or with
 *    another state before the hold ended: not a committed change;
 *  - stale read [LP-17, LP-18]: while a client held a lease, another
 *    connection (any node) sent `sync` then `check` of its lock, and the
 *    check, answered before the lease's deadline, did not show that grant
 *    (its owner and token) with the value it was granted with.
 */

export interface Hold {
  lock: string;
  client: number;
  token: number;
  start: number;
  end: number;
  /** How it ended: released, lease deadline, connection cut by a fault, or still held at the end. */
  how: 'release' | 'deadline' | 'cut' | 'held';
  lease: boolean;
  /** What happened, for reports (request, node port, renews, how it ended). */
  trail?: string[];
}

export interface History {
  holds: Hold[];
  /** Holds found gone while their client should still have had them. */
  lost: Array<{ hold: Hold; why: string }>;
  /** `at`: when the request was sent (the harness's clock), to find what the nodes logged then. */
  hangs: Array<{ client: number; request: string; waitedMs: number; at: number }>;
  /** How the replicas disagreed at the end, if they did. */
  diverged?: string[];
  /** Fresh reads (`sync` then `check` on another connection, during a lease) that did not show the lease. */
  staleReads?: Array<{ hold: Hold; reply: string }>;
  /** Fresh reads made, and those judged (answered before the lease's deadline). */
  freshReads?: { made: number; judged: number };
  /** Watches of a lease's grant answered other than by a committed change (see above). */
  earlyWatches?: Array<{ hold: Hold; reply: string; why: string }>;
  /** Watches made, and those answered with a state (judged). */
  watches?: { made: number; judged: number };
}

export interface Report {
  grants: number;
  leases: number;
  overlaps: Array<{ a: Hold; b: Hold }>;
  sessionCuts: number;
  lateSessionGrants: number;
  tokenOrder: Array<{ lock: string; a: Hold; b: Hold }>;
  repeatedTokens: number[];
  lost: History['lost'];
  hangs: History['hangs'];
  diverged: string[];
  staleReads: NonNullable<History['staleReads']>;
  freshReads: NonNullable<History['freshReads']>;
  earlyWatches: NonNullable<History['earlyWatches']>;
  watches: NonNullable<History['watches']>;
  violations: number;
}

export function check(h: History): Report {
  const byLock = new Map<string, Hold[]>();
  for (const x of h.holds) {
    let list = byLock.get(x.lock);
    if (list === undefined) byLock.set(x.lock, (list = []));
    list.push(x);
  }
  const overlaps: Report['overlaps'] = [];
  const tokenOrder: Report['tokenOrder'] = [];
  let sessionCuts = 0;
  let lateSessionGrants = 0;
  const cutSession = (x: Hold): boolean => x.how === 'cut' && !x.lease;
  for (const [lock, list] of byLock) {
    list.sort((a, b) => a.start - b.start || a.token - b.token);
    // Only grants that were held at all count, for overlaps and token
    // order: a lease whose grant reached its client after its own deadline
    // (a reply held up by a partition, or by an append that etcd took
    // seconds to take, the entry stamped before) never was, and its token,
    // issued earlier, may be below one issued since (seen in the run across
    // processes: not a violation of LP-5 or LP-7, which are about what the
    // cluster grants, and its client knows the lease is over).
    const held = list.filter((x) => x.end > x.start);
    // Every pair that overlaps: compare each hold with the ones that start before it ends.
    for (let i = 0; i < held.length; i++) {
      const a = held[i] as Hold;
      for (let j = i + 1; j < held.length; j++) {
        const b = held[j] as Hold;
        if (b.start >= a.end) break;
        if (a.how === 'cut' && !a.lease) sessionCuts++;
        else overlaps.push({ a, b });
      }
    }
    // Token order, in the order grants were received.
    for (let i = 0; i + 1 < held.length; i++) {
      const a = held[i] as Hold;
      const next = held[i + 1] as Hold;
      if (next.token > a.token) continue;
      if (cutSession(a) || cutSession(next)) lateSessionGrants++;
      else tokenOrder.push({ lock, a, b: next });
    }
  }
  const seen = new Set<number>();
  const repeated: number[] = [];
  for (const x of h.holds) {
    if (seen.has(x.token)) repeated.push(x.token);
    seen.add(x.token);
  }
  return {
    grants: h.holds.length,
    leases: h.holds.filter((x) => x.lease).length,
    overlaps,
    sessionCuts,
    lateSessionGrants,
    tokenOrder,
    repeatedTokens: repeated,
    lost: h.lost,
    hangs: h.hangs,
    diverged: h.diverged ?? [],
    staleReads: h.staleReads ?? [],
    freshReads: h.freshReads ?? { made: 0, judged: 0 },
    earlyWatches: h.earlyWatches ?? [],
    watches: h.watches ?? { made: 0, judged: 0 },
    violations: overlaps.length + tokenOrder.length + repeated.length + h.lost.length + h.hangs.length + (h.diverged?.length ?? 0) + (h.staleReads?.length ?? 0) + (h.earlyWatches?.length ?? 0),
  };
}

export function summary(r: Report): string {
  const lines = [
    `grants ${r.grants} (${r.leases} leases)`,
    `violations ${r.violations}: overlaps ${r.overlaps.length}, token order ${r.tokenOrder.length}, repeated tokens ${r.repeatedTokens.length}, lost ${r.lost.length}, hangs ${r.hangs.length}, replicas diverged ${r.diverged.length}, stale fresh reads ${r.staleReads.length} (of ${r.freshReads.judged} judged, ${r.freshReads.made} made), early watches ${r.earlyWatches.length} (of ${r.watches.judged} judged, ${r.watches.made} made)`,
    `session locks cut by faults (their next holder may start before the client sees the close; not a violation): ${r.sessionCuts}`,
    `session grants that reached a client whose connection a fault then cut, below a later token (a reply delayed across a cut; not a violation): ${r.lateSessionGrants}`,
  ];
  const show = (x: Hold): string => `${x.lock} client ${x.client} token ${x.token} [${x.start.toFixed(1)}, ${x.end.toFixed(1)}] ${x.how}${x.lease ? ' lease' : ''}${x.trail === undefined ? '' : ` (${x.trail.join('; ')})`}`;
  for (const o of r.overlaps.slice(0, 5)) lines.push(`  overlap: ${show(o.a)} / ${show(o.b)}`);
  for (const o of r.tokenOrder.slice(0, 5)) lines.push(`  token order: ${show(o.a)} then ${show(o.b)}`);
  for (const l of r.lost.slice(0, 5)) lines.push(`  lost: ${show(l.hold)}: ${l.why}`);
  for (const x of r.hangs.slice(0, 5)) lines.push(`  hang: client ${x.client} ${x.request} (${x.waitedMs} ms)`);
  for (const x of r.diverged.slice(0, 5)) lines.push(`  diverged: ${x}`);
  for (const x of r.staleReads.slice(0, 5)) lines.push(`  stale fresh read: ${show(x.hold)}: ${x.reply}`);
  for (const x of r.earlyWatches.slice(0, 5)) lines.push(`  early watch: ${show(x.hold)}: ${x.reply} (${x.why})`);
  return lines.join('\n');
}
