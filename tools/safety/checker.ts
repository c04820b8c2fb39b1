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
 * Kinds of hold: a lock held alone (one lock, or each lock of a grant of
 * several [LP-22]: one grant, one token, a hold alone of every lock it
 * names), a shared hold [LP-20], or one of a semaphore's holds [LP-21].
 *
 * Violations:
 *  - overlap [LP-5, LP-20, LP-21, LP-22]: two holds of one lock overlap in
 *    time, unless both are shared or both are holds of one semaphore (same
 *    limit): a hold alone overlaps no other hold of its lock, a shared one
 *    only shared ones. One exception is not a violation: a session lock
 *    whose connection was cut by a fault (chaos) ends on the server before
 *    its client can see the close, so the next holder may start a moment
 *    before; those are counted as `sessionCuts`, and a lease never gets
 *    that allowance;
 *  - over limit [LP-21]: more holds of a semaphore at one instant than its
 *    limit. A cut session hold is left out of the count (its client's
 *    interval may outlast the server's, see above); one that makes the
 *    difference is counted in `sessionCuts`;
 *  - token order [LP-7]: along a lock, in the order grants were received,
 *    a hold alone carries a token above every earlier hold's, and any
 *    hold a token above every earlier hold alone's (exclusion puts their
 *    grants in that order; two holds among several may be granted in one
 *    order and received in the other). One exception again: a session lock
 *    whose connection a fault cut may have
 *    been granted, and ended with its session on the server, long before
 *    its grant reached the client (a reply sent just before a host was cut
 *    off arrives when the link is back, after TCP's retransmission
 *    backoff: 8 s late was seen); its token is then below later ones. Its
 *    client sees the connection close at once; a fenced resource refuses
 *    the old token (what fencing is for). Counted as `lateSessionGrants`;
 *    a lease never gets that allowance (it has the deadline rule below);
 *  - token below an earlier grant [LP-7], across every lock: a grant whose
 *    request was sent after another grant's reply was received was granted
 *    after it, so its token is larger (no allowance: this needs no
 *    exclusion, only the two clients' clocks, which are one);
 *  - repeated token [LP-7]: two grants with one token (a grant of several
 *    is one grant);
 *  - lost [LP-5, LP-8]: a grant the client was told of is gone while it
 *    should still hold (found by the final check, or a release/renew by
 *    the owner on a live connection that fails before its lease deadline);
 *  - hang: a request with neither an answer nor a closed connection;
 *  - diverged: once quiet, the nodes' lock tables (owner, token, holders,
 *    limit, value, waiters of every lock) and their `check` of every lock
 *    the run used do not agree: a replica has a gap or a duplicate;
 *  - early watch [LP-19]: a watch naming a lease's grant (`watch <lock>
 *    token=<t>`, on another connection) answered with that grant, or with
 *    another state before the hold ended: not a committed change;
 *  - stale read [LP-17, LP-18, LP-20, LP-21, LP-22]: while a client held a
 *    lease, another connection (any node) sent `sync` then `check` of its
 *    locks, and a check, answered before the lease's deadline, did not show
 *    that grant: held alone, its owner and token (of a grant of several,
 *    on every one of its locks) with the value it was granted with; held
 *    among several, that mode and limit with the client among the owners
 *    and `validate` of its token Valid;
 *  - partial grant [LP-22]: after a request for several locks was refused,
 *    `sync` then `check` of them showed its client holding one;
 *  - refusal ruled out [LP-20, LP-21, LP-22]: an error only a disagreeing
 *    limit or mode could cause, though every request on a lock names the
 *    same limit and no client asks for what it holds; or a refusal of
 *    several that does not name one of them (` lock=<name>`).
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
  /** [LP-20] A shared hold. */
  shared?: true;
  /** [LP-21] One of a semaphore's holds, of this limit. */
  limit?: number;
  /** [LP-22] A grant of several locks (`lock` is the first): one grant, one token, a hold alone of each. */
  locks?: string[];
  /** When its request was sent (the harness's clock), for token order across grants [LP-7]; absent: not judged so. */
  sent?: number;
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
  /** [LP-22] Refusals of several locks after which a fresh read showed the client holding one; `at`: the request's sending. */
  partialGrants?: Array<{ client: number; request: string; refusal: string; reply: string; at: number }>;
  /** Those fresh reads after a refusal: made, and judged (answered). */
  partialReads?: { made: number; judged: number };
  /** Replies the workload rules out (see above); `at`: the request's sending. */
  refusals?: Array<{ client: number; request: string; reply: string; at: number }>;
}

export interface Report {
  grants: number;
  leases: number;
  /** Grants by kind: held alone (one lock), shared [LP-20], of a semaphore [LP-21], of several locks [LP-22] (and how many lock holds those gave). */
  kinds: { alone: number; shared: number; semaphore: number; several: number; severalLocks: number; sharedPeak: number; atLimit: number };
  overlaps: Array<{ lock: string; a: Hold; b: Hold }>;
  /** [LP-21] A semaphore held by more than its limit at once: the holds then. */
  overLimit: Array<{ lock: string; limit: number; holds: Hold[] }>;
  sessionCuts: number;
  lateSessionGrants: number;
  tokenOrder: Array<{ lock: string; a: Hold; b: Hold }>;
  /** [LP-7] b was sent after a's grant was received, and its token is not larger. */
  tokensBehind: Array<{ a: Hold; b: Hold }>;
  repeatedTokens: number[];
  lost: History['lost'];
  hangs: History['hangs'];
  diverged: string[];
  staleReads: NonNullable<History['staleReads']>;
  freshReads: NonNullable<History['freshReads']>;
  earlyWatches: NonNullable<History['earlyWatches']>;
  watches: NonNullable<History['watches']>;
  partialGrants: NonNullable<History['partialGrants']>;
  partialReads: NonNullable<History['partialReads']>;
  refusals: NonNullable<History['refusals']>;
  violations: number;
}

/** [LP-20, LP-21] Whether two holds of one lock may overlap: both shared, or both of one semaphore (then counted against its limit). */
const together = (a: Hold, b: Hold): boolean => (a.shared === true && b.shared === true) || (a.limit !== undefined && a.limit === b.limit);
const alone = (x: Hold): boolean => x.shared !== true && x.limit === undefined;

export function check(h: History): Report {
  const byLock = new Map<string, Hold[]>();
  for (const x of h.holds) {
    // [LP-22] a grant of several is a hold alone of each of its locks
    for (const lock of x.locks ?? [x.lock]) {
      let list = byLock.get(lock);
      if (list === undefined) byLock.set(lock, (list = []));
      list.push(x);
    }
  }
  const overlaps: Report['overlaps'] = [];
  const overLimit: Report['overLimit'] = [];
  const tokenOrder: Report['tokenOrder'] = [];
  let sessionCuts = 0;
  let lateSessionGrants = 0;
  let sharedPeak = 0;
  let atLimit = 0;
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
        if (together(a, b)) continue; // [LP-20, LP-21] counted below for a semaphore
        if (cutSession(a)) sessionCuts++;
        else overlaps.push({ lock, a, b });
      }
    }
    // [LP-21] At most `limit` holds of a semaphore at once: the most at one
    // instant is at some hold's start, so count the holds active at each.
    // The same count of shared holds, for the report: how many at once the run saw.
    let active: Hold[] = [];
    for (const b of held) {
      if (alone(b)) continue;
      active = active.filter((a) => a.end > b.start);
      active.push(b);
      if (b.limit === undefined) {
        sharedPeak = Math.max(sharedPeak, active.filter((a) => a.shared === true).length);
        continue;
      }
      const sure = active.filter((a) => a.limit === b.limit && !cutSession(a));
      if (sure.length > b.limit) overLimit.push({ lock, limit: b.limit, holds: sure });
      else if (active.filter((a) => a.limit === b.limit).length > b.limit) sessionCuts++;
      else if (sure.length === b.limit) atLimit++;
    }
    // Token order, in the order grants were received: a hold alone above
    // every earlier hold, any hold above every earlier hold alone (see the
    // header). Earlier cut session holds are not compared (their grant may
    // have reached them late); a later one below is a late session grant.
    let top: Hold | null = null;
    let topAlone: Hold | null = null;
    for (const b of held) {
      const a = alone(b) ? top : topAlone;
      if (a !== null && a.token >= b.token) {
        if (cutSession(b)) lateSessionGrants++;
        else tokenOrder.push({ lock, a, b });
      }
      if (cutSession(b)) continue;
      if (top === null || b.token > top.token) top = b;
      if (alone(b) && (topAlone === null || b.token > topAlone.token)) topAlone = b;
    }
  }
  // [LP-7] Across every lock: a request sent after a grant's reply was
  // received is granted after it, so with a larger token. Sweep requests
  // by sending time, with the largest token among grants received before.
  const tokensBehind: Report['tokensBehind'] = [];
  const byStart = [...h.holds].sort((a, b) => a.start - b.start);
  const bySent = h.holds.filter((x) => x.sent !== undefined).sort((a, b) => (a.sent as number) - (b.sent as number));
  let k = 0;
  let before: Hold | null = null;
  for (const b of bySent) {
    for (; k < byStart.length && (byStart[k] as Hold).start < (b.sent as number); k++) {
      const x = byStart[k] as Hold;
      if (before === null || x.token > before.token) before = x;
    }
    if (before !== null && before !== b && before.token >= b.token) tokensBehind.push({ a: before, b });
  }
  const seen = new Set<number>();
  const repeated: number[] = [];
  for (const x of h.holds) {
    if (seen.has(x.token)) repeated.push(x.token);
    seen.add(x.token);
  }
  const several = h.holds.filter((x) => x.locks !== undefined);
  const kinds = {
    alone: h.holds.filter((x) => alone(x) && x.locks === undefined).length,
    shared: h.holds.filter((x) => x.shared === true).length,
    semaphore: h.holds.filter((x) => x.limit !== undefined).length,
    several: several.length,
    severalLocks: several.reduce((n, x) => n + (x.locks?.length ?? 0), 0),
    sharedPeak,
    atLimit,
  };
  const partialGrants = h.partialGrants ?? [];
  const refusals = h.refusals ?? [];
  return {
    grants: h.holds.length,
    leases: h.holds.filter((x) => x.lease).length,
    kinds,
    overlaps,
    overLimit,
    sessionCuts,
    lateSessionGrants,
    tokenOrder,
    tokensBehind,
    repeatedTokens: repeated,
    lost: h.lost,
    hangs: h.hangs,
    diverged: h.diverged ?? [],
    staleReads: h.staleReads ?? [],
    freshReads: h.freshReads ?? { made: 0, judged: 0 },
    earlyWatches: h.earlyWatches ?? [],
    watches: h.watches ?? { made: 0, judged: 0 },
    partialGrants,
    partialReads: h.partialReads ?? { made: 0, judged: 0 },
    refusals,
    violations:
      overlaps.length + overLimit.length + tokenOrder.length + tokensBehind.length + repeated.length + h.lost.length + h.hangs.length + (h.diverged?.length ?? 0) + (h.staleReads?.length ?? 0) + (h.earlyWatches?.length ?? 0) + partialGrants.length + refusals.length,
  };
}

export function summary(r: Report): string {
  const k = r.kinds;
  const lines = [
    `grants ${r.grants} (${r.leases} leases)`,
    `grants by kind: alone ${k.alone}, shared ${k.shared} (LP-20; up to ${k.sharedPeak} at once), semaphore ${k.semaphore} (LP-21; a grant that filled its semaphore ${k.atLimit} times), several ${k.several} (LP-22, ${k.severalLocks} locks)`,
    `violations ${r.violations}: overlaps ${r.overlaps.length}, token order ${r.tokenOrder.length}, repeated tokens ${r.repeatedTokens.length}, lost ${r.lost.length}, hangs ${r.hangs.length}, replicas diverged ${r.diverged.length}, stale fresh reads ${r.staleReads.length} (of ${r.freshReads.judged} judged, ${r.freshReads.made} made), early watches ${r.earlyWatches.length} (of ${r.watches.judged} judged, ${r.watches.made} made), over limit ${r.overLimit.length}, tokens behind an earlier grant ${r.tokensBehind.length}, partial grants ${r.partialGrants.length} (of ${r.partialReads.judged} judged, ${r.partialReads.made} made), refusals ruled out ${r.refusals.length}`,
    `session locks cut by faults (their next holder may start before the client sees the close; not a violation): ${r.sessionCuts}`,
    `session grants that reached a client whose connection a fault then cut, below a later token (a reply delayed across a cut; not a violation): ${r.lateSessionGrants}`,
  ];
  const kind = (x: Hold): string => (x.shared === true ? ' shared' : x.limit !== undefined ? ` limit=${x.limit}` : '');
  const show = (x: Hold): string => `${x.locks?.join('+') ?? x.lock} client ${x.client} token ${x.token} [${x.start.toFixed(1)}, ${x.end.toFixed(1)}] ${x.how}${x.lease ? ' lease' : ''}${kind(x)}${x.trail === undefined ? '' : ` (${x.trail.join('; ')})`}`;
  for (const o of r.overlaps.slice(0, 5)) lines.push(`  overlap: ${show(o.a)} / ${show(o.b)}`);
  for (const o of r.tokenOrder.slice(0, 5)) lines.push(`  token order: ${show(o.a)} then ${show(o.b)}`);
  for (const l of r.lost.slice(0, 5)) lines.push(`  lost: ${show(l.hold)}: ${l.why}`);
  for (const x of r.hangs.slice(0, 5)) lines.push(`  hang: client ${x.client} ${x.request} (${x.waitedMs} ms)`);
  for (const x of r.diverged.slice(0, 5)) lines.push(`  diverged: ${x}`);
  for (const x of r.staleReads.slice(0, 5)) lines.push(`  stale fresh read: ${show(x.hold)}: ${x.reply}`);
  for (const x of r.earlyWatches.slice(0, 5)) lines.push(`  early watch: ${show(x.hold)}: ${x.reply} (${x.why})`);
  for (const x of r.overLimit.slice(0, 5)) lines.push(`  over limit: ${x.lock} limit=${x.limit} held by ${x.holds.length} at once: ${x.holds.map(show).join(' / ')}`);
  for (const x of r.tokensBehind.slice(0, 5)) lines.push(`  token behind: ${show(x.a)} received before ${show(x.b)} was sent (@${x.b.sent?.toFixed(1)})`);
  for (const x of r.partialGrants.slice(0, 5)) lines.push(`  partial grant: client ${x.client} ${x.request} (sent @${x.at.toFixed(1)}) answered "${x.refusal}", then ${x.reply}`);
  for (const x of r.refusals.slice(0, 5)) lines.push(`  refusal ruled out: client ${x.client} ${x.request} (sent @${x.at.toFixed(1)}): ${x.reply}`);
  return lines.join('\n');
}
