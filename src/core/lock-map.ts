/**
 * The lock table's storage: each held lock's owner, token and lease end as
 * one row of numbers in a StringMap (string-map.ts says why columns), and
 * the FIFO of waiters of the few locks that have any, by name.
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
import { StringMap } from './string-map.js';

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

export class LockMap implements Iterable<[string, LockView]> {
  private readonly rows = new StringMap(ROW_WIDTH);
  /** Waiters by lock; only held locks with at least one waiter have an entry. */
  private readonly queues = new Map<string, Waiter[]>();

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

  setExpiresAt(p: number, at: number | null): void {
    this.rows.setNum(p, EXPIRES, at ?? NaN);
  }

  /** Hold `lock` (absent) for `owner`; its waiters, if any, stay queued (a regrant to the first of them). */
  insert(lock: string, owner: ClientId, token: number, expiresAt: number | null): number {
    const p = this.rows.add(lock);
    this.rows.setNum(p, OWNER, owner);
    this.rows.setNum(p, TOKEN, token);
    this.rows.setNum(p, EXPIRES, expiresAt ?? NaN);
    return p;
  }

  /** Free `lock`; its queue is left for the caller to hand over (lock-table.ts free()). */
  delete(lock: string): boolean {
    return this.rows.delete(lock);
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
    for (const lock of this.rows.keys()) yield [lock, this.view(lock, this.rows.find(lock))];
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

  /** Every lock's name and row, in table order: two bulk copies (StringMap). */
  columns(): { names: string[]; nums: Float64Array } {
    return { names: this.rows.keyArray(), nums: this.rows.numArray() };
  }

  /** The queues, each with its lock's index in columns() order, ascending. */
  queuesByIndex(): Array<[number, readonly Waiter[]]> {
    const locks = [...this.queues.keys()];
    const ranks = this.rows.ranksOf(locks.map((l) => this.rows.find(l)));
    return locks.map((l, k) => [ranks[k] as number, this.queues.get(l) as Waiter[]] as [number, Waiter[]]).sort((a, b) => a[0] - b[0]);
  }

  /** Add locks (none held yet) with their rows in columns() layout: a snapshot's bulk load. */
  load(names: readonly string[], nums: Float64Array): void {
    this.rows.load(names, nums);
  }

  reserve(n: number): void {
    this.rows.reserve(n);
  }
}
