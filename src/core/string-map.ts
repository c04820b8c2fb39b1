/**
 * A string-keyed hash table whose values are rows of numbers in columns:
 * what the lock table keeps per lock (owner, token, lease end), and, with
 * no columns, a set of strings (StringSet). Insertion order, like `Map`.
 *
 * Why not `Map` with an object per value: a follower that restarts loads
 * the leader's table from a snapshot, and issue 5 §6 wants that under 1 s
 * for a million locks.
 *  - A million `Map.set` calls with string keys took 650-1000 ms on our
 *    2-core machines (V8 grows and rehashes its OrderedHashMap in the old
 *    space); this table hashes in JS into an open-addressing index and
 *    `reserve()` sizes it once before a bulk load.
 *  - A million value objects (each with two boxed doubles: tokens and
 *    times are past 2^31) are three million objects for the GC to mark.
 *    On the leader, copying them out for a snapshot took 60 ms when the
 *    heap was quiet and 330-600 ms while the GC was marking them. Here the
 *    numbers sit in one Float64Array, so a snapshot copies them in one
 *    `slice` and the GC never looks inside.
 *
 * Layout: for dense position p (insertion order), `keysAt[p]` (undefined:
 * a hole left by a delete), `hashes[p]`, and `nums[width*p + c]` for column
 * c; `index[slot]` = p + 1, or 0 for an empty slot (linear probing, load
 * <= 1/2). Deletion shifts later entries of the probe run back (Knuth's
 * Algorithm R), so the index holds no tombstones. Holes are squeezed out
 * on an insert once they outnumber the live entries; that moves positions.
 *
 * Positions: a position from find() or add() stays valid until the next
 * add() of a new key (which may compact) or the deletion of its key.
 *
 * Hash flooding: lock names come from untrusted clients, so the hash is
 * seeded from a random value per thread (like V8's own string hash seed); the
 * seed only decides slots, never an observable order, so the lock table
 * stays deterministic (iteration is insertion order). It is not a keyed
 * PRF (SipHash): a client able to time lookups could still hunt for
 * collisions, as with V8's `Map`.
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

const MIN_CAPACITY = 16;
/** Holes are squeezed out once there are more than this many and more holes than live entries. */
const MIN_HOLES_TO_COMPACT = 1024;

export class StringMap {
  private keysAt: Array<string | undefined> = [];
  private hashes = new Int32Array(MIN_CAPACITY);
  /** Row p is nums[width*p, width*p + width). */
  private nums: Float64Array;
  private index = new Int32Array(MIN_CAPACITY);
  private mask = MIN_CAPACITY - 1;
  /** Dense positions in use (live + holes); the arrays may be longer (reserve). */
  private end = 0;
  private live = 0;
  private holes = 0;
  /** Bumped when dense positions move (compaction): live iterators then throw. */
  private shape = 0;

  /** `width`: numbers per key (0 for a set). */
  constructor(
    readonly width: number,
    private readonly seed: number = THREAD_SEED,
  ) {
    if (!Number.isInteger(width) || width < 0) throw new RangeError(`width must be a natural number, got ${width}`);
    this.nums = new Float64Array(width * MIN_CAPACITY);
  }

  get size(): number {
    return this.live;
  }

  /** Make room for `n` entries in all, so that a bulk load rehashes at most once. */
  reserve(n: number): void {
    if (2 * n > this.index.length) this.rehash(capacityFor(n));
    const dense = n + this.holes;
    if (this.hashes.length < dense) this.growPositions(dense);
    // Grown once to its final length rather than push by push (each growth
    // copies the array; at a million entries that shows).
    if (this.keysAt.length < dense) this.keysAt.length = dense;
  }

  /** The position of `key`, or -1. */
  find(key: string): number {
    const slot = this.slotOf(key, hashOf(key, this.seed));
    return slot === -1 ? -1 : (this.index[slot] as number) - 1;
  }

  has(key: string): boolean {
    return this.slotOf(key, hashOf(key, this.seed)) !== -1;
  }

  /** The position of `key`, added (its numbers 0) if absent. */
  add(key: string): number {
    const h = hashOf(key, this.seed);
    const slot = this.slotOf(key, h);
    if (slot !== -1) return (this.index[slot] as number) - 1;
    // A new key: grow or squeeze first (both move slots), then take a free slot.
    if (2 * (this.live + 1) > this.index.length) this.rehash(capacityFor(this.live + 1));
    else if (this.holes >= MIN_HOLES_TO_COMPACT && this.holes > this.live) this.compact();
    const p = this.end++;
    if (p >= this.hashes.length) this.growPositions(p + 1);
    this.keysAt[p] = key;
    (this.hashes as Int32Array)[p] = h;
    // A hole's or a compacted-away row's numbers may be left here.
    for (let c = 0; c < this.width; c++) (this.nums as Float64Array)[this.width * p + c] = 0;
    (this.index as Int32Array)[this.freeSlot(h)] = p + 1;
    this.live++;
    return p;
  }

  /** Column `c` of the row at position `p`. */
  num(p: number, c: number): number {
    return this.nums[this.width * p + c] as number;
  }

  setNum(p: number, c: number, x: number): void {
    this.nums[this.width * p + c] = x;
  }

  /** The key at a live position. */
  keyAt(p: number): string {
    return this.keysAt[p] as string;
  }

  delete(key: string): boolean {
    let i = this.slotOf(key, hashOf(key, this.seed));
    if (i === -1) return false;
    const { index, mask, hashes } = this;
    const p = (index[i] as number) - 1;
    this.keysAt[p] = undefined;
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
   * Append `keys` (none of them present) with their rows `nums` (width
   * numbers per key, in order): a snapshot's bulk load. Throws on a key
   * already present, having added the keys before it.
   */
  load(keys: readonly string[], nums: Float64Array): void {
    const n = keys.length;
    if (nums.length !== this.width * n) throw new RangeError(`${n} keys need ${this.width * n} numbers, got ${nums.length}`);
    this.reserve(this.live + n);
    const from = this.end;
    const { keysAt, hashes, index, mask, seed } = this;
    for (let k = 0; k < n; k++) {
      const key = keys[k] as string;
      const h = hashOf(key, seed);
      let i = h & mask;
      for (let e = index[i] as number; e !== 0; e = index[i] as number) {
        if (hashes[e - 1] === h && keysAt[e - 1] === key) throw new RangeError(`key ${JSON.stringify(key)} loaded twice`);
        i = (i + 1) & mask;
      }
      const p = this.end++;
      keysAt[p] = key;
      hashes[p] = h;
      index[i] = p + 1;
      this.live++;
    }
    this.nums.set(nums, this.width * from);
  }

  /**
   * Like Map#forEach (key, position; `this` = thisArg), in insertion order.
   * For a hot walk pass one module-level function and the walk's state as
   * thisArg: a new closure per walk is a new call target each time, and V8
   * may then throw away the optimized loop.
   */
  forEach<T = undefined>(fn: (this: T, key: string, p: number) => void, thisArg?: T): void {
    const shape = this.shape;
    const { keysAt } = this;
    for (let p = 0; p < this.end; p++) {
      const k = keysAt[p];
      if (k !== undefined) fn.call(thisArg as T, k, p);
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

  /** The rows in insertion order (keyArray's order), as a new array: one bulk copy when there are no holes. */
  numArray(): Float64Array {
    const w = this.width;
    if (this.holes === 0) return this.nums.slice(0, w * this.end);
    const out = new Float64Array(w * this.live);
    let q = 0;
    for (let p = 0; p < this.end; p++) {
      if (this.keysAt[p] === undefined) continue;
      out.set(this.nums.subarray(w * p, w * p + w), w * q);
      q++;
    }
    return out;
  }

  /** For live positions `ps`: their indexes in keyArray() (how many live keys come before each). */
  ranksOf(ps: readonly number[]): number[] {
    if (this.holes === 0) return [...ps];
    const order = ps.map((p, k) => [p, k] as const).sort((a, b) => a[0] - b[0]);
    const out = new Array<number>(ps.length);
    let rank = 0;
    let p = 0;
    for (const [target, k] of order) {
      for (; p < target; p++) if (this.keysAt[p] !== undefined) rank++;
      out[k] = rank;
    }
    return out;
  }

  *keys(): IterableIterator<string> {
    const shape = this.shape;
    for (let p = 0; ; p++) {
      // Checked before the end: a compaction also shortens the arrays.
      if (this.shape !== shape) throw new Error('StringMap: a key was inserted while iterating');
      if (p >= this.end) return;
      const k = this.keysAt[p];
      if (k !== undefined) yield k;
    }
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

  /** Grow the per-position typed arrays (hashes, nums) to hold `n` positions. */
  private growPositions(n: number): void {
    let cap = this.hashes.length;
    while (cap < n) cap *= 2;
    const hashes = new Int32Array(cap);
    hashes.set(this.hashes.subarray(0, this.end));
    this.hashes = hashes;
    if (this.width === 0) return;
    const nums = new Float64Array(this.width * cap);
    nums.set(this.nums.subarray(0, this.width * this.end));
    this.nums = nums;
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
    const { keysAt, hashes, nums, width: w } = this;
    let q = 0;
    for (let p = 0; p < this.end; p++) {
      if (keysAt[p] === undefined) continue;
      keysAt[q] = keysAt[p];
      hashes[q] = hashes[p] as number;
      if (w > 0) nums.copyWithin(w * q, w * p, w * p + w);
      q++;
    }
    keysAt.length = q;
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

/** A set of strings on StringMap (no columns): the subset of `Set` the lock table uses. */
export class StringSet implements Iterable<string> {
  private readonly map = new StringMap(0);

  get size(): number {
    return this.map.size;
  }

  add(key: string): this {
    this.map.add(key);
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
