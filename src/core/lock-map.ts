/**
 * The lock table's storage: each held lock's owner, token and lease end as
 * one row of numbers in a StringMap (string-map.ts says why columns), the
 * FIFO of waiters of the few locks that have any, by name, and two indexes
 * derived from the rows: leases by end time (for the leader's expiry
 * clock) and each client's session locks (for its disconnect [LP-8]).
 *
 * Two faces:
 *  - positions, for apply() in lock-table.ts: find() a lock, read and
 *    change its row in place; no object is made per lock or per command;
 *  - views, for everything else (node, TUI, tests): get() and iteration
 *    give a fresh read-only LockView per lock, so no caller can change the
 *    table behind apply()'s back.
 *
 * Threading: none; one owner (see lock-table.ts). Ordering: iteration is
 * the order locks were granted, as the table's; a position stays valid
 * until the next insert() or the lock's delete() (StringMap).
 */
import type { ClientId, Waiter } from './lock-table.js';
import { LeaseHeap } from './lease-heap.js';
import { StringMap, type JoinedKeys } from './string-map.js';

/** A held lock, as read: a copy, not the table's own. */
export interface LockView {
  readonly owner: ClientId;
  /** Fencing token of the current grant (LP-7). */
  readonly token: number;
  /** Leader-clock ms at which the lease ends, or null for a session lock (LP-8). */
  readonly expiresAt: number | null;
  /** Its waiters in FIFO order (LP-9). */
  readonly waiters: readonly Waiter[];
}

/** Columns of a row: the snapshot's layout too (lock-table.ts, Snapshot). */
const OWNER = 0;
const TOKEN = 1;
/** NaN for a session lock: a Float64Array has no null. */
const EXPIRES = 2;
export const ROW_WIDTH = 3;

const NO_WAITERS: readonly Waiter[] = Object.freeze([]);

/** A client's session locks: positions, some stale (see LockMap's `sessions`), and how many are not. */
interface SessionList {
  ps: number[];
  live: number;
}

export class LockMap implements Iterable<[string, LockView]> {
  private readonly rows = new StringMap(ROW_WIDTH);
  /**
   * Waiters by lock; only locks with at least one waiter have an entry.
   * Mostly held locks; a free lock has waiters only while its head waits
   * for other locks too [LP-22], and a lock held among several holders
   * [LP-20, LP-21] has its queue here as well (no row).
   */
  private readonly queues = new Map<string, Waiter[]>();
  /**
   * Leases by end time, for the leader to expire them (nextLeaseEnd,
   * dueLeases): every lease's (end, stamp, position), plus stale entries
   * of leases renewed or freed since, skipped when they reach the top. An
   * entry is a lease's latest when its stamp is the one in `stamps` at its
   * position (a lease renewed back to an earlier end has two entries with
   * that end; only the stamp tells them apart).
   * Built from the rows when first asked for, so a follower, which never
   * asks until it leads, never keeps one; dropped (to be rebuilt) when
   * positions move or stale entries outnumber the table.
   */
  private readonly leases = new LeaseHeap();
  /** rows.moves when `leases` was built; -1 while it is not. */
  private leasesBuiltAt = -1;
  /** By position: the stamp of its lease's latest heap entry. */
  private stamps = new Float64Array(16);
  private lastStamp = 0;
  /**
   * Each client's session locks, as positions in the rows: a session lock
   * granted appends its position; one released or turned into a lease
   * leaves its position behind, stale (the row no longer says session
   * lock of this client), and only the count goes down; a list is
   * filtered when stale entries outnumber live ones. Positions, not names,
   * so that a million session locks are a million numbers here, not a
   * second table of names: loading a snapshot of them then costs nothing
   * here (the lists are built from the rows when first asked for), where a
   * set of names per client doubled the load. Rebuilt from the rows, in
   * one pass, whenever positions move (rows.moves).
   */
  private readonly sessions = new Map<ClientId, SessionList>();
  /** rows.moves when `sessions` was built; -1 while it is not (after a bulk load). */
  private sessionsBuiltAt = 0;

  get size(): number {
    return this.rows.size;
  }

  // --- positions (apply) ---

  find(lock: string): number {
    return this.rows.find(lock);
  }

  owner(p: number): ClientId {
    return this.rows.num(p, OWNER);
  }

  token(p: number): number {
    return this.rows.num(p, TOKEN);
  }

  expiresAt(p: number): number | null {
    const at = this.rows.num(p, EXPIRES);
    return Number.isNaN(at) ? null : at;
  }

  /** A lease's new end; a session lock given one becomes a lease (never the other way). */
  setExpiresAt(p: number, at: number): void {
    if (Number.isNaN(this.rows.num(p, EXPIRES))) this.sessionGone(this.owner(p));
    this.rows.setNum(p, EXPIRES, at);
    this.noteLease(p, at);
  }

  /** Hold `lock` (absent) for `owner`; its waiters, if any, stay queued (a regrant to the first of them). */
  insert(lock: string, owner: ClientId, token: number, expiresAt: number | null): number {
    const p = this.rows.add(lock);
    this.rows.setNum(p, OWNER, owner);
    this.rows.setNum(p, TOKEN, token);
    this.rows.setNum(p, EXPIRES, expiresAt ?? NaN);
    if (expiresAt !== null) this.noteLease(p, expiresAt);
    else this.sessionAdded(owner, p);
    return p;
  }

  /** Free the lock at position p; its queue is left for the caller to hand over (lock-table.ts free()). */
  deleteAt(p: number): void {
    if (Number.isNaN(this.rows.num(p, EXPIRES))) this.sessionGone(this.owner(p));
    this.rows.deleteAt(p);
  }

  waiters(lock: string): readonly Waiter[] {
    return this.queues.get(lock) ?? NO_WAITERS;
  }

  enqueue(lock: string, w: Waiter): void {
    const q = this.queues.get(lock);
    if (q === undefined) this.queues.set(lock, [w]);
    else q.push(w);
  }

  /** The first waiter of `lock`, taken off its queue. */
  dequeue(lock: string): Waiter | undefined {
    const q = this.queues.get(lock);
    if (q === undefined) return undefined;
    const w = q.shift();
    if (q.length === 0) this.queues.delete(lock);
    return w;
  }

  /** Take `client` off `lock`'s queue. */
  withdraw(lock: string, client: ClientId): void {
    const q = this.queues.get(lock);
    if (q === undefined) return;
    const rest = q.filter((w) => w.client !== client);
    if (rest.length === 0) this.queues.delete(lock);
    else this.queues.set(lock, rest);
  }

  // --- leases by end time (the leader's expiry clock) ---

  /** When the first lease ends (leader-clock ms), or Infinity when none is held. */
  nextLeaseEnd(): number {
    this.cleanLeases();
    return this.leases.size === 0 ? Infinity : this.leases.topAt();
  }

  /** The leases ending at or before `now`, by end time, as [lock, token], taken off the heap. */
  dueLeases(now: number): Array<[string, number]> {
    const due: Array<[string, number]> = [];
    for (this.cleanLeases(); this.leases.size > 0 && this.leases.topAt() <= now; this.cleanLeases()) {
      const p = this.leases.topPos();
      due.push([this.rows.keyAt(p), this.rows.num(p, TOKEN)]);
      this.leases.pop();
    }
    return due;
  }

  /** How many of the locks are leases (a pass over the rows). */
  leaseCount(): number {
    const { rows } = this;
    let n = 0;
    for (let p = 0; p < rows.extent; p++) if (rows.isLive(p) && !Number.isNaN(rows.num(p, EXPIRES))) n++;
    return n;
  }

  private noteLease(p: number, at: number): void {
    if (this.leasesBuiltAt === -1) return;
    if (this.leasesBuiltAt !== this.rows.moves || this.leases.size > 2 * this.rows.size + 1024) {
      this.leasesBuiltAt = -1; // positions moved, or mostly stale entries: rebuilt when next asked for
      this.leases.clear();
      return;
    }
    this.pushLease(p, at);
  }

  private pushLease(p: number, at: number): void {
    if (p >= this.stamps.length) {
      let cap = this.stamps.length;
      while (cap <= p) cap *= 2;
      const stamps = new Float64Array(cap);
      stamps.set(this.stamps);
      this.stamps = stamps;
    }
    const stamp = ++this.lastStamp;
    this.stamps[p] = stamp;
    this.leases.push(at, stamp, p);
  }

  /** Build the heap if it is not, then drop stale entries off its top. */
  private cleanLeases(): void {
    const { rows, leases } = this;
    if (this.leasesBuiltAt !== rows.moves) {
      leases.clear();
      for (let p = 0; p < rows.extent; p++) {
        const at = rows.num(p, EXPIRES);
        if (rows.isLive(p) && !Number.isNaN(at)) this.pushLease(p, at);
      }
      this.leasesBuiltAt = rows.moves;
    }
    // Stale: the lock was freed (a hole) or the lease renewed (a later stamp).
    while (leases.size > 0) {
      const p = leases.topPos();
      if (rows.isLive(p) && this.stamps[p] === leases.topStamp() && rows.num(p, EXPIRES) === leases.topAt()) return;
      leases.pop();
    }
  }

  // --- each client's session locks ---

  /** How many session locks `client` holds. */
  sessionCount(client: ClientId): number {
    this.buildSessions();
    return this.sessions.get(client)?.live ?? 0;
  }

  /** How many clients hold session locks. */
  sessionOwnerCount(): number {
    this.buildSessions();
    return this.sessions.size;
  }

  /** The clients that hold session locks (no order promised). */
  sessionOwners(): ClientId[] {
    this.buildSessions();
    return [...this.sessions.keys()];
  }

  /** The names of `client`'s session locks (no order promised). */
  sessionLocks(client: ClientId): string[] {
    this.buildSessions();
    const list = this.sessions.get(client);
    if (list === undefined) return [];
    const names: string[] = [];
    for (const p of list.ps) if (this.isSessionOf(p, client)) names.push(this.rows.keyAt(p));
    return names;
  }

  /** Whether live position p is a session lock of `client`: what makes a list entry not stale. */
  private isSessionOf(p: number, client: ClientId): boolean {
    return this.rows.isLive(p) && this.rows.num(p, OWNER) === client && Number.isNaN(this.rows.num(p, EXPIRES));
  }

  private sessionAdded(owner: ClientId, p: number): void {
    if (this.sessionsBuiltAt !== this.rows.moves) return; // rebuilt from the rows when next asked for
    const list = this.sessions.get(owner);
    if (list === undefined) {
      this.sessions.set(owner, { ps: [p], live: 1 });
      return;
    }
    list.ps.push(p);
    list.live++;
    // Mostly stale (a client that takes and releases locks one at a time): keep the live ones.
    if (list.ps.length > 2 * list.live + 16) list.ps = list.ps.filter((q) => this.isSessionOf(q, owner));
  }

  /** One of `owner`'s session locks is going (released, or made a lease); called before its row changes. */
  private sessionGone(owner: ClientId): void {
    if (this.sessionsBuiltAt !== this.rows.moves) return;
    const list = this.sessions.get(owner);
    if (list === undefined) return;
    if (--list.live === 0) this.sessions.delete(owner);
  }

  /** Build the lists from the rows, in one pass, if positions moved or a bulk load came since. */
  private buildSessions(): void {
    const { rows } = this;
    if (this.sessionsBuiltAt === rows.moves) return;
    this.sessions.clear();
    let owner = NaN;
    let list: SessionList | undefined;
    for (let p = 0; p < rows.extent; p++) {
      if (!rows.isLive(p) || !Number.isNaN(rows.num(p, EXPIRES))) continue;
      const o = rows.num(p, OWNER);
      // A client's locks tend to sit together: one Map lookup per run.
      if (o !== owner) {
        owner = o;
        list = this.sessions.get(o);
        if (list === undefined) {
          list = { ps: [], live: 0 };
          this.sessions.set(o, list);
        }
      }
      (list as SessionList).ps.push(p);
      (list as SessionList).live++;
    }
    this.sessionsBuiltAt = rows.moves;
  }

  // --- views ---

  get(lock: string): LockView | undefined {
    const p = this.rows.find(lock);
    return p === -1 ? undefined : this.view(lock, p);
  }

  has(lock: string): boolean {
    return this.rows.has(lock);
  }

  keys(): IterableIterator<string> {
    return this.rows.keys();
  }

  *entries(): IterableIterator<[string, LockView]> {
    for (const p of this.rows.positions()) {
      const lock = this.rows.keyAt(p);
      yield [lock, this.view(lock, p)];
    }
  }

  *values(): IterableIterator<LockView> {
    for (const [, v] of this.entries()) yield v;
  }

  [Symbol.iterator](): IterableIterator<[string, LockView]> {
    return this.entries();
  }

  private view(lock: string, p: number): LockView {
    return { owner: this.owner(p), token: this.token(p), expiresAt: this.expiresAt(p), waiters: [...this.waiters(lock)] };
  }

  // --- snapshots ---

  /** Every lock's name (joined) and row, in table order: two bulk copies (StringMap). */
  columns(): JoinedKeys & { nums: Float64Array } {
    return { ...this.rows.joinedKeys(), nums: this.rows.numArray() };
  }

  /** Each held lock's index in columns() order. */
  indexesOf(locks: readonly string[]): number[] {
    return this.rows.ranksOf(locks.map((l) => this.rows.find(l)));
  }

  /** The queues of locks held alone, each with its lock's index in columns() order, ascending. */
  queuesByIndex(): Array<[number, readonly Waiter[]]> {
    const locks = [...this.queues.keys()].filter((l) => this.rows.find(l) !== -1);
    const ranks = this.indexesOf(locks);
    return locks.map((l, k) => [ranks[k] as number, this.queues.get(l) as Waiter[]] as [number, Waiter[]]).sort((a, b) => a[0] - b[0]);
  }

  /**
   * Add `count` locks (none held yet; names joined by LF) with their rows
   * in columns() layout: a snapshot's bulk load. Returns the position of
   * the first; the others follow it.
   */
  load(names: string, count: number, nums: Float64Array): number {
    // Their leases and session locks join the indexes when next asked for.
    this.leasesBuiltAt = -1;
    this.leases.clear();
    this.sessionsBuiltAt = -1;
    return this.rows.load(names, count, nums);
  }

  /** The queues of locks not held alone (free, or held among several), by name ascending. */
  queuesOffRows(): Array<[string, readonly Waiter[]]> {
    return [...this.queues].filter(([l]) => this.rows.find(l) === -1).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  /** Every queue of waiters, by lock (no order promised). */
  queueEntries(): IterableIterator<[string, readonly Waiter[]]> {
    return this.queues.entries();
  }

  /** The name of the lock at position p. */
  nameAt(p: number): string {
    return this.rows.keyAt(p);
  }



  /** Index the locks bulk-loaded since the last lookup now (StringMap#settle) rather than at the next lookup. */
  settle(): void {
    this.rows.settle();
  }

  /** Room for `n` locks in all and `chars` more name characters (StringMap#reserve). */
  reserve(n: number, chars = 0): void {
    this.rows.reserve(n, chars);
  }
}
