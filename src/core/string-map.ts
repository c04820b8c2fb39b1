/**
 * A string-keyed hash map (and set) for the lock table: the subset of `Map`
 * the table uses, in insertion order like `Map`, built on typed arrays.
 *
 * Why not `Map`: a follower that restarts loads the leader's table from a
 * snapshot, and issue 5 §6 wants that under 1 s for a million locks. A
 * million `Map.set` calls with string keys took 650-1000 ms on our 2-core
 * machines (V8 grows and rehashes its OrderedHashMap in the old space),
 * which alone spent the budget. This table hashes in JS into an
 * open-addressing index (an Int32Array, linear probing, load <= 1/2) and
 * keeps keys and values in dense arrays; loading 1M names into it took
 * 280-400 ms on the same machine, and `reserve()` sizes the index once
 * before a bulk load.
 *
 * Layout: `keys[p]`, `vals[p]`, `hashes[p]` for dense position p (insertion
 * order; a deleted entry leaves a hole, `keys[p] === undefined`), and
 * `index[slot]` = p + 1, or 0 for an empty slot. Deletion shifts later
 * entries of the probe run back (Knuth's Algorithm R), so the index holds
 * no tombstones. Holes are squeezed out on an insert once they outnumber
 * the live entries.
 *
 * Hash flooding: lock names come from untrusted clients, so the hash is
 * seeded from a random value per thread (like V8's own string hash seed); the
 * seed only decides slots, never an observable order, so the lock table
 * stays deterministic (iteration is insertion order). It is not a keyed
 * PRF (SipHash): a client able to time lookups could still hunt for
 * collisions, as with V8's `Map`.
 *
 * Lazy values (setLazy): a bulk load can leave a value unbuilt, as row
 * `row` of a shared source, and it is built on first read. A follower
 * loading a million locks then makes no million entry objects (nor the two
 * boxed doubles each of them holds); it builds the few it is asked about.
 *
 * Threading: none; one owner. Ordering: iteration is insertion order.
 * Deleting during iteration is allowed (the iterator skips the hole);
 * inserting a new key during iteration is not, and the iterator throws if
 * the dense arrays were compacted under it.
 */

import { getRandomValues } from 'node:crypto';

/**
 * One seed per thread, drawn once (like V8's per-isolate hash seed): maps
 * are made often (a session set per client), and a draw from the OS each
 * time was seen to cost more than the lock table's whole work.
 */
const THREAD_SEED = getRandomValues(new Int32Array(1))[0] as number;

/** FNV-1a over UTF-16 code units from a seeded basis, then murmur3's fmix32 so every bit of the slot depends on every unit. */
function hashOf(s: string, seed: number): number {
  let h = seed ^ 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** Where a lazy value comes from: a shared source that builds row `row`'s value on demand. */
export interface LazyRows<V> {
  build(row: number): V;
}

const MIN_CAPACITY = 16;
/** Holes are squeezed out once there are more than this many and more holes than live entries. */
const MIN_HOLES_TO_COMPACT = 1024;

export class StringMap<V> implements Iterable<[string, V]> {
  private readonly seed: number;
  private keysAt: Array<string | undefined> = [];
  /** The value, or for a lazy one (rows[p] > 0) its LazyRows source. */
  private valsAt: Array<V | LazyRows<V> | undefined> = [];
  private hashes = new Int32Array(MIN_CAPACITY);
  /** Row + 1 of a lazy value at p in its source; 0 once built (or never lazy). */
  private rows = new Int32Array(MIN_CAPACITY);
  private index = new Int32Array(MIN_CAPACITY);
  private mask = MIN_CAPACITY - 1;
  /** Dense positions in use (live + holes); the arrays may be longer (reserve). */
  private end = 0;
  private live = 0;
  private holes = 0;
  /** Bumped when dense positions move (compaction): live iterators then throw. */
  private shape = 0;

  /**
   * `valueless`: a set's map (StringSet) stores no values and no rows, and
   * reads every value as `true`: 12 bytes a key less, which at a million
   * session locks is 12 MB on every node.
   */
  constructor(
    seed: number = THREAD_SEED,
    private readonly valueless = false,
  ) {
    this.seed = seed;
  }

  get size(): number {
    return this.live;
  }

  /** Make room for `n` entries in all, so that a bulk load rehashes at most once. */
  reserve(n: number): void {
    if (2 * n > this.index.length) this.rehash(capacityFor(n));
    const dense = n + this.holes;
    if (this.hashes.length < dense) this.growPositions(dense);
    // Grown once to their final length rather than push by push (each
    // growth copies the array; at a million entries that shows).
    if (this.keysAt.length < dense) {
      this.keysAt.length = dense;
      if (!this.valueless) this.valsAt.length = dense;
    }
  }

  get(key: string): V | undefined {
    const slot = this.slotOf(key, hashOf(key, this.seed));
    return slot === -1 ? undefined : this.valueAt((this.index[slot] as number) - 1);
  }

  has(key: string): boolean {
    return this.slotOf(key, hashOf(key, this.seed)) !== -1;
  }

  set(key: string, value: V): this {
    this.put(key, value, 0);
    return this;
  }

  /** Set `key` to row `row` of `source`, built when first read (see LazyRows). */
  setLazy(key: string, source: LazyRows<V>, row: number): this {
    this.put(key, source, row + 1);
    return this;
  }

  private put(key: string, value: V | LazyRows<V>, row1: number): void {
    const h = hashOf(key, this.seed);
    const slot = this.slotOf(key, h);
    if (slot !== -1) {
      if (this.valueless) return;
      const p = (this.index[slot] as number) - 1;
      this.valsAt[p] = value;
      this.rows[p] = row1;
      return;
    }
    // A new key: grow or squeeze first (both move slots), then take a free slot.
    if (2 * (this.live + 1) > this.index.length) this.rehash(capacityFor(this.live + 1));
    else if (this.holes >= MIN_HOLES_TO_COMPACT && this.holes > this.live) this.compact();
    const p = this.end++;
    if (p >= this.hashes.length) this.growPositions(p + 1);
    this.keysAt[p] = key;
    (this.hashes as Int32Array)[p] = h;
    if (!this.valueless) {
      this.valsAt[p] = value;
      (this.rows as Int32Array)[p] = row1;
    }
    (this.index as Int32Array)[this.freeSlot(h)] = p + 1;
    this.live++;
  }

  /** The value at dense position p, built now if it was lazy. */
  private valueAt(p: number): V {
    if (this.valueless) return true as V;
    const row1 = this.rows[p] as number;
    if (row1 === 0) return this.valsAt[p] as V;
    const v = (this.valsAt[p] as LazyRows<V>).build(row1 - 1);
    this.valsAt[p] = v;
    this.rows[p] = 0;
    return v;
  }

  delete(key: string): boolean {
    let i = this.slotOf(key, hashOf(key, this.seed));
    if (i === -1) return false;
    const { index, mask, hashes } = this;
    const p = (index[i] as number) - 1;
    this.keysAt[p] = undefined;
    if (!this.valueless) {
      this.valsAt[p] = undefined;
      this.rows[p] = 0;
    }
    this.live--;
    this.holes++;
    // Backward-shift deletion: move later entries of this probe run into the
    // gap unless their home slot lies cyclically in (gap, their slot].
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const e = index[j] as number;
      if (e === 0) break;
      const home = (hashes[e - 1] as number) & mask;
      const stays = i <= j ? i < home && home <= j : i < home || home <= j;
      if (stays) continue;
      index[i] = e;
      i = j;
    }
    index[i] = 0;
    return true;
  }

  /**
   * Like Map#forEach (value, key; `this` = thisArg), in insertion order; the
   * fastest way through. For a hot walk pass one module-level function and
   * the walk's state as thisArg: a new closure per walk is a new call target
   * each time, and V8 then throws away the optimized loop (seen: a
   * snapshot copy of 1M locks went from 60 to 600 ms on its second run).
   */
  forEach<T = undefined>(fn: (this: T, value: V, key: string) => void, thisArg?: T): void {
    const shape = this.shape;
    const { keysAt } = this;
    for (let p = 0; p < this.end; p++) {
      const k = keysAt[p];
      if (k !== undefined) fn.call(thisArg as T, this.valueAt(p), k);
      if (this.shape !== shape) throw new Error('StringMap: a key was inserted while iterating');
    }
  }

  /** The keys in insertion order, as a new array: one bulk copy when there are no holes. */
  keyArray(): string[] {
    if (this.holes === 0) return this.keysAt.slice(0, this.end) as string[];
    const out = new Array<string>(this.live);
    let q = 0;
    for (let p = 0; p < this.end; p++) {
      const k = this.keysAt[p];
      if (k !== undefined) out[q++] = k;
    }
    return out;
  }

  *entries(): IterableIterator<[string, V]> {
    const shape = this.shape;
    for (let p = 0; ; p++) {
      // Checked before the end: a compaction also shortens the arrays.
      if (this.shape !== shape) throw new Error('StringMap: a key was inserted while iterating');
      if (p >= this.end) return;
      const k = this.keysAt[p];
      if (k !== undefined) yield [k, this.valueAt(p)];
    }
  }

  *keys(): IterableIterator<string> {
    for (const [k] of this.entries()) yield k;
  }

  *values(): IterableIterator<V> {
    for (const [, v] of this.entries()) yield v;
  }

  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.entries();
  }

  /** The index slot holding `key` (its dense position is index[slot] - 1), or -1. */
  private slotOf(key: string, h: number): number {
    const { index, mask, hashes, keysAt } = this;
    let i = h & mask;
    for (let e = index[i] as number; e !== 0; e = index[i] as number) {
      const p = e - 1;
      if (hashes[p] === h && keysAt[p] === key) return i;
      i = (i + 1) & mask;
    }
    return -1;
  }

  /** The first empty slot of `h`'s probe run (the key is known absent). */
  private freeSlot(h: number): number {
    let i = h & this.mask;
    while (this.index[i] !== 0) i = (i + 1) & this.mask;
    return i;
  }

  /** Grow the per-position typed arrays (hashes, rows) to hold `n` positions. */
  private growPositions(n: number): void {
    let cap = this.hashes.length;
    while (cap < n) cap *= 2;
    const hashes = new Int32Array(cap);
    hashes.set(this.hashes.subarray(0, this.end));
    this.hashes = hashes;
    if (this.valueless) return;
    const rows = new Int32Array(cap);
    rows.set(this.rows.subarray(0, this.end));
    this.rows = rows;
  }

  /** A new index of `capacity` slots (a power of two) over the dense arrays. */
  private rehash(capacity: number): void {
    const index = new Int32Array(capacity);
    const mask = capacity - 1;
    const { keysAt, hashes } = this;
    for (let p = 0; p < this.end; p++) {
      if (keysAt[p] === undefined) continue;
      let i = (hashes[p] as number) & mask;
      while (index[i] !== 0) i = (i + 1) & mask;
      index[i] = p + 1;
    }
    this.index = index;
    this.mask = mask;
  }

  /** Squeeze the holes out of the dense arrays, keeping order, and reindex. */
  private compact(): void {
    const { keysAt, valsAt, hashes, rows } = this;
    let q = 0;
    for (let p = 0; p < this.end; p++) {
      if (keysAt[p] === undefined) continue;
      keysAt[q] = keysAt[p];
      hashes[q] = hashes[p] as number;
      if (!this.valueless) {
        valsAt[q] = valsAt[p];
        rows[q] = rows[p] as number;
      }
      q++;
    }
    keysAt.length = q;
    if (!this.valueless) valsAt.length = q;
    this.end = q;
    this.holes = 0;
    this.shape++;
    // Shrink the index too when most of the table went (load 1/4 after).
    this.rehash(Math.min(this.index.length, capacityFor(2 * q)));
  }
}

/** The smallest power of two that holds `n` entries at load <= 1/2. */
function capacityFor(n: number): number {
  let cap = MIN_CAPACITY;
  while (cap < 2 * n) cap *= 2;
  return cap;
}

/** A set of strings on StringMap: the subset of `Set` the lock table uses. */
export class StringSet implements Iterable<string> {
  private readonly map = new StringMap<true>(undefined, true);

  get size(): number {
    return this.map.size;
  }

  add(key: string): this {
    this.map.set(key, true);
    return this;
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  delete(key: string): boolean {
    return this.map.delete(key);
  }

  [Symbol.iterator](): IterableIterator<string> {
    return this.map.keys();
  }
}
