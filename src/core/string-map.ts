/**
 * A string-keyed hash table whose values are rows of numbers in columns:
 * what the lock table keeps per lock (owner, token, lease end); with no
 * columns, a set of strings. Insertion order, like `Map`.
 * The keys themselves are not kept as JS strings but as UTF-16 code units
 * in one Uint16Array (the arena).
 *
 * Why, all for one goal (a follower restarted with a million locks
 * serves again within a second; it loads the leader's table from a
 * snapshot, which the leader copies out first):
 *  - `Map.set` with string keys: a million took 650-1000 ms on our 2-core
 *    machines (V8 grows and rehashes its OrderedHashMap in the old space).
 *    Here the hash is computed in JS into an open-addressing index that
 *    `reserve()` sizes once before a bulk load.
 *  - An object per value, each with two boxed doubles (tokens and times
 *    are past 2^31): three million objects for the GC to mark, and a copy
 *    that walks them one by one. Here the numbers are rows of one
 *    Float64Array, copied out with one `slice`.
 *  - A JS string per key: a million strings to split out of a snapshot,
 *    scavenge, promote and mark, on every node. A snapshot copy's large
 *    allocations were seen to set off a full GC of the leader's heap that
 *    took 100-450 ms, nearly all of it marking these strings. Here a
 *    snapshot's names (joined by LF) load by one pass over their
 *    characters into the arena, and leave it the same way, with no string
 *    per key in between; a key becomes a string again only when asked for
 *    (keys(), keyAt()).
 *
 * Layout: for dense position p (insertion order), `meta[3p]` = hash,
 * `meta[3p+1]` = where its characters start in the arena, `meta[3p+2]` =
 * its length, or -1 for a hole left by a delete; the arena holds each key
 * followed by LF, so a table without holes is already its keys joined by
 * LF. `nums[width*p + c]` is column c of the row. `index[2*slot]` = p + 1,
 * or 0 for an empty slot, and `index[2*slot+1]` = its hash, so that a probe
 * compares hashes without reaching into `meta` (at a million keys a read
 * there is a cache miss; reading each key's row in the index sweep took a
 * million-key settle from 53-90 ms to 109-153). Linear probing, load <=
 * 1/2. Deletion shifts later entries of the probe run back (Knuth's
 * Algorithm R), so the index holds no tombstones. Holes, and their
 * characters in the arena, are squeezed out on an insert once they
 * outnumber the live entries; that moves positions. Bulk-loaded keys
 * wait outside the index until the next lookup (settle).
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

import { Buffer } from 'node:buffer';
import { getRandomValues } from 'node:crypto';

/**
 * One seed per thread, drawn once (like V8's per-isolate hash seed): when
 * every client had a map of its own session locks, a draw from the OS per
 * map was seen to cost more than the lock table's whole work.
 */
const THREAD_SEED = getRandomValues(new Int32Array(1))[0] as number;

const FNV_PRIME = 0x01000193;
const FNV_BASIS = 0x811c9dc5;
const LF = 10;

/** murmur3's fmix32, so every bit of the slot depends on every unit. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** FNV-1a over UTF-16 code units from a seeded basis, then mix(). load() computes the same over arena units. */
function hashOf(s: string, seed: number): number {
  let h = seed ^ FNV_BASIS;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME);
  return mix(h);
}

/** Arena units [from, to) as a string (exact for any code units, lone surrogates too). */
function decode(chars: Uint16Array, from: number, to: number): string {
  if (to - from <= 64) return String.fromCharCode.apply(null, chars.subarray(from, to) as unknown as number[]);
  return Buffer.from(chars.buffer, chars.byteOffset + 2 * from, 2 * (to - from)).toString('utf16le');
}

/** Units [0, to) of an arena with no unit above 0xFF, as a one-byte string. */
function decodeNarrow(chars: Uint16Array, to: number): string {
  const bytes = Buffer.allocUnsafe(to);
  for (let i = 0; i < to; i++) bytes[i] = chars[i] as number;
  return bytes.toString('latin1');
}

const MIN_CAPACITY = 16;
/** Holes are squeezed out once there are more than this many and more holes than live entries. */
const MIN_HOLES_TO_COMPACT = 1024;

/** A table's keys joined by LF, in order, and where each starts: key i is names.slice(offsets[i], offsets[i + 1] - 1). */
export interface JoinedKeys {
  names: string;
  /** count + 1 offsets; the last is names.length + 1. */
  offsets: Int32Array;
}

export class StringMap {
  /** Per position: hash, arena start, length (-1: a hole). */
  private meta = new Int32Array(3 * MIN_CAPACITY);
  /** Row p is nums[width*p, width*p + width). */
  private nums: Float64Array;
  /** Every key's code units, each followed by LF, in position order. */
  private chars = new Uint16Array(4 * MIN_CAPACITY);
  /** Arena units in use (live keys and holes' leftovers). */
  private used = 0;
  /** Whether any key has a unit above 0xFF: if not, joinedKeys() makes a one-byte string (half the size to encode, copy and parse). */
  private wide = false;
  /** [p + 1, hash] per slot (see Layout). */
  private index = new Int32Array(2 * MIN_CAPACITY);
  private mask = MIN_CAPACITY - 1;
  /** Dense positions in use (live + holes); the arrays may be longer (reserve). */
  private end = 0;
  /**
   * Positions below this are in the index; [indexed, end) were bulk-added
   * and wait for the first lookup (settle), so that a snapshot loaded in
   * parts is indexed in one sweep at the end rather than one per part.
   */
  private indexed = 0;
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

  /** Positions in use, live or holes: every live position is below it. */
  get extent(): number {
    return this.end;
  }

  /** Changes whenever positions move (a compaction): a position kept from before is then meaningless. */
  get moves(): number {
    return this.shape;
  }

  /** Whether position p (below extent) holds a key rather than a hole. */
  isLive(p: number): boolean {
    return (this.meta[3 * p + 2] as number) >= 0;
  }

  /**
   * Make room for `n` entries in all, so that a bulk load rehashes at most
   * once, and for `chars` more key characters (each key's length + 1).
   */
  reserve(n: number, chars = 0): void {
    if (2 * n > this.mask + 1) this.rehash(capacityFor(n));
    const dense = n + this.holes;
    if (3 * dense > this.meta.length) this.growPositions(dense);
    if (chars > 0) this.reserveChars(this.used + chars, true);
  }

  /** The position of `key`, or -1. */
  find(key: string): number {
    const slot = this.slotOf(key, hashOf(key, this.seed));
    return slot === -1 ? -1 : (this.index[2 * slot] as number) - 1;
  }

  has(key: string): boolean {
    return this.slotOf(key, hashOf(key, this.seed)) !== -1;
  }

  /** The position of `key`, added (its numbers 0) if absent. */
  add(key: string): number {
    const h = hashOf(key, this.seed);
    const slot = this.slotOf(key, h);
    if (slot !== -1) return (this.index[2 * slot] as number) - 1;
    const p = this.append(h, key.length);
    const { chars } = this;
    const start = this.used - key.length - 1;
    let any = 0;
    for (let i = 0; i < key.length; i++) {
      const c = key.charCodeAt(i);
      chars[start + i] = c;
      any |= c;
    }
    if (any > 0xff) this.wide = true;
    return p;
  }

  /** Column `c` of the row at position `p`. */
  num(p: number, c: number): number {
    return this.nums[this.width * p + c] as number;
  }

  setNum(p: number, c: number, x: number): void {
    this.nums[this.width * p + c] = x;
  }

  /** The key at a live position, as a string. */
  keyAt(p: number): string {
    const start = this.meta[3 * p + 1] as number;
    return decode(this.chars, start, start + (this.meta[3 * p + 2] as number));
  }

  delete(key: string): boolean {
    const i = this.slotOf(key, hashOf(key, this.seed));
    if (i === -1) return false;
    this.removeSlot(i);
    return true;
  }

  /**
   * Delete the key at live position p: found by its stored hash and
   * position, so the key is neither hashed nor compared again (the lock
   * table frees a lock it has just found).
   */
  deleteAt(p: number): void {
    if (this.indexed !== this.end) this.settle();
    const { index, mask } = this;
    let i = (this.meta[3 * p] as number) & mask;
    for (let e = index[2 * i] as number; e !== p + 1; e = index[2 * i] as number) {
      if (e === 0) throw new RangeError(`StringMap.deleteAt: position ${p} holds no key`);
      i = (i + 1) & mask;
    }
    this.removeSlot(i);
  }

  /** Empty index slot i and make its position a hole. */
  private removeSlot(i: number): void {
    const { index, mask, meta } = this;
    const p = (index[2 * i] as number) - 1;
    meta[3 * p + 2] = -1;
    this.live--;
    this.holes++;
    // Backward-shift deletion: move later entries of this probe run into the
    // gap unless their home slot lies cyclically in (gap, their slot].
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const e = index[2 * j] as number;
      if (e === 0) break;
      const h = index[2 * j + 1] as number;
      const home = h & mask;
      const stays = i <= j ? i < home && home <= j : i < home || home <= j;
      if (stays) continue;
      index[2 * i] = e;
      index[2 * i + 1] = h;
      i = j;
    }
    index[2 * i] = 0;
  }

  /**
   * Append `count` keys, given joined by LF (so none may hold an LF, and
   * none may be present already), with their rows `nums` (width numbers per
   * key, in order): a snapshot's bulk load. One pass over the characters,
   * straight into the arena with no string per key; the keys join the
   * index in one sweep at the next lookup (settle), however many loads
   * come before it. Returns the position of the first key; the others
   * follow it. Throws on a count that does not match, and (here or at
   * that lookup) on a key already present or loaded twice; the map is
   * then unusable, to be thrown away (a snapshot that does this is
   * corrupt, and whatever loads it gives up on it).
   */
  load(names: string, count: number, nums: Float64Array): number {
    if (nums.length !== this.width * count) throw new RangeError(`${count} keys need ${this.width * count} numbers, got ${nums.length}`);
    if (count === 0) {
      if (names !== '') throw new RangeError('0 keys expected in the names, found some');
      return this.end;
    }
    this.reserve(this.live + count);
    this.reserveChars(this.used + names.length + 1);
    const from = this.end;
    const { chars, meta, seed } = this;
    let used = this.used;
    let p = this.end;
    let start = used;
    let h = seed ^ FNV_BASIS;
    let any = 0;
    // One more turn than there are characters: the end of the string ends the last key.
    for (let i = 0; i <= names.length; i++) {
      const c = i < names.length ? names.charCodeAt(i) : LF;
      chars[used++] = c;
      any |= c;
      if (c !== LF) {
        h = Math.imul(h ^ c, FNV_PRIME);
        continue;
      }
      if (p - from === count) throw new RangeError(`more than ${count} keys in the names`);
      meta[3 * p] = mix(h);
      meta[3 * p + 1] = start;
      meta[3 * p + 2] = used - 1 - start;
      p++;
      start = used;
      h = seed ^ FNV_BASIS;
    }
    if (p - from !== count) throw new RangeError(`${count} keys expected in the names, found ${p - from}`);
    if (any > 0xff) this.wide = true;
    this.used = used;
    this.addPending(from, p);
    this.nums.set(nums, this.width * from);
    return from;
  }

  /** Make bulk-added positions [from, to) live; they join the index at the next lookup (settle). */
  private addPending(from: number, to: number): void {
    this.end = to;
    this.live += to - from;
  }

  /**
   * Index the bulk-added positions, all in one sweep: in the order they
   * came, each insert would start at a random slot of an index of tens of
   * MB, a cache and TLB miss apiece (per 50k-key part into a million-key
   * index, 12-16 ms; sorted per part, 7-11 ms; a million sorted at once,
   * 35-70 ms in all). Any lookup does this first; call it to choose when.
   */
  settle(): void {
    if (this.indexed === this.end) return;
    this.sweep(this.indexed, this.end, true);
    this.indexed = this.end;
  }

  /**
   * Insert the live positions of [from, to) into the index in slot order,
   * roughly (a counting sort on the slot's top bits). `check`: throw on a key
   * already there (a bulk load's keys come from outside this map).
   */
  private sweep(from: number, to: number, check: boolean): void {
    const { meta, index, mask, chars } = this;
    // Buckets of 2^13 slots (64 KB of index): inserts within one hit the
    // cache, and with at most 2^8 buckets for a 2M-slot index the scatter
    // below writes to few enough places at once to stay in cache too (a
    // finer sort, 2^16 buckets, missed the cache on every write of a
    // million-key scatter: 170-740 ms under load against 35-70 alone).
    const slotBits = 31 - Math.clz32(mask + 1);
    const bits = Math.max(0, slotBits - 13);
    const shift = slotBits - bits;
    // counts[b + 1]: keys whose slot falls in bucket b; then, summed, where bucket b starts in `order`.
    const counts = new Int32Array((1 << bits) + 1);
    let n = 0;
    for (let p = from; p < to; p++) {
      if ((meta[3 * p + 2] as number) < 0) continue;
      const b = (((meta[3 * p] as number) & mask) >>> shift) + 1;
      counts[b] = (counts[b] as number) + 1;
      n++;
    }
    for (let b = 0; b < 1 << bits; b++) counts[b + 1] = (counts[b + 1] as number) + (counts[b] as number);
    // [position, hash] pairs by bucket: the sweep then reads them in order
    // rather than each hash from meta, at random.
    const order = new Int32Array(2 * n);
    for (let p = from; p < to; p++) {
      if ((meta[3 * p + 2] as number) < 0) continue;
      const h = meta[3 * p] as number;
      const b = (h & mask) >>> shift;
      const at = counts[b] as number;
      order[2 * at] = p;
      order[2 * at + 1] = h;
      counts[b] = at + 1;
    }
    for (let k = 0; k < n; k++) {
      const p = order[2 * k] as number;
      const h = order[2 * k + 1] as number;
      let s = h & mask;
      if (check) {
        for (let e = index[2 * s] as number; e !== 0; e = index[2 * s] as number) {
          // p's own row is read only on a hash match: in slot order the
          // rows come at random, and a read of each would miss the cache.
          if (index[2 * s + 1] === h) {
            const m = 3 * (e - 1);
            const start = meta[3 * p + 1] as number;
            const len = meta[3 * p + 2] as number;
            if (meta[m + 2] === len && sameUnits(chars, meta[m + 1] as number, start, len)) {
              throw new RangeError(`key ${JSON.stringify(decode(chars, start, start + len))} loaded twice`);
            }
          }
          s = (s + 1) & mask;
        }
      } else {
        while (index[2 * s] !== 0) s = (s + 1) & mask;
      }
      index[2 * s] = p + 1;
      index[2 * s + 1] = h;
    }
  }

  /** The keys in insertion order, joined (see JoinedKeys): one decode of the arena when there are no holes. */
  joinedKeys(): JoinedKeys {
    const { meta, live } = this;
    const offsets = new Int32Array(live + 1);
    let chars = this.chars;
    let used = this.used;
    if (this.holes === 0) {
      for (let p = 0; p < this.end; p++) offsets[p] = meta[3 * p + 1] as number;
    } else {
      // Only the live keys' characters, in order, copied run by run of live
      // positions (a set() per key would make a view object per key).
      let n = 0;
      for (let p = 0; p < this.end; p++) if ((meta[3 * p + 2] as number) >= 0) n += (meta[3 * p + 2] as number) + 1;
      chars = new Uint16Array(n);
      used = 0;
      let q = 0;
      this.eachRun((from, to) => {
        const start = meta[3 * from + 1] as number;
        const stop = (meta[3 * (to - 1) + 1] as number) + (meta[3 * (to - 1) + 2] as number) + 1;
        for (let p = from; p < to; p++) offsets[q++] = used + (meta[3 * p + 1] as number) - start;
        chars.set(this.chars.subarray(start, stop), used);
        used += stop - start;
      });
    }
    offsets[live] = used;
    return { names: live === 0 ? '' : this.wide ? decode(chars, 0, used - 1) : decodeNarrow(chars, used - 1), offsets };
  }

  /** The rows in insertion order (joinedKeys()'s order), as a new array: one bulk copy when there are no holes, else one per run. */
  numArray(): Float64Array {
    const w = this.width;
    if (this.holes === 0) return this.nums.slice(0, w * this.end);
    const out = new Float64Array(w * this.live);
    let q = 0;
    this.eachRun((from, to) => {
      out.set(this.nums.subarray(w * from, w * to), w * q);
      q += to - from;
    });
    return out;
  }

  /**
   * Each maximal run [from, to) of live positions, in order. Within a run
   * the arena holds the keys back to back (a key's characters follow the
   * one before it), so a run copies in one piece.
   */
  private eachRun(fn: (from: number, to: number) => void): void {
    const { meta } = this;
    let p = 0;
    while (p < this.end) {
      while (p < this.end && (meta[3 * p + 2] as number) < 0) p++;
      const from = p;
      while (p < this.end && (meta[3 * p + 2] as number) >= 0) p++;
      if (p > from) fn(from, p);
    }
  }

  /** For live positions `ps`: their indexes in insertion order among the live keys. */
  ranksOf(ps: readonly number[]): number[] {
    if (this.holes === 0) return [...ps];
    const order = ps.map((p, k) => [p, k] as const).sort((a, b) => a[0] - b[0]);
    const out = new Array<number>(ps.length);
    let rank = 0;
    let p = 0;
    for (const [target, k] of order) {
      for (; p < target; p++) if ((this.meta[3 * p + 2] as number) >= 0) rank++;
      out[k] = rank;
    }
    return out;
  }

  /** Each live position in insertion order. */
  *positions(): IterableIterator<number> {
    const shape = this.shape;
    for (let p = 0; ; p++) {
      // Checked before the end: a compaction also shortens the arrays.
      if (this.shape !== shape) throw new Error('StringMap: a key was inserted while iterating');
      if (p >= this.end) return;
      if ((this.meta[3 * p + 2] as number) >= 0) yield p;
    }
  }

  *keys(): IterableIterator<string> {
    for (const p of this.positions()) yield this.keyAt(p);
  }

  /** A new key at the end (the caller writes its `len` characters before the LF): its position. */
  private append(h: number, len: number): number {
    // Grow or squeeze first (both move slots), then take a free slot.
    if (2 * (this.live + 1) > this.mask + 1) this.rehash(capacityFor(this.live + 1));
    else if (this.holes >= MIN_HOLES_TO_COMPACT && this.holes > this.live) this.compact();
    const p = this.end++;
    if (3 * p + 3 > this.meta.length) this.growPositions(p + 1);
    this.reserveChars(this.used + len + 1);
    const { meta, nums, width } = this;
    meta[3 * p] = h;
    meta[3 * p + 1] = this.used;
    meta[3 * p + 2] = len;
    this.used += len + 1;
    this.chars[this.used - 1] = LF;
    // A hole's or a compacted-away row's numbers may be left here.
    for (let c = 0; c < width; c++) nums[width * p + c] = 0;
    const slot = this.freeSlot(h);
    this.index[2 * slot] = p + 1;
    this.index[2 * slot + 1] = h;
    this.indexed = this.end; // settled by the slotOf() before this
    this.live++;
    return p;
  }

  /** The index slot holding `key` (its dense position is index[2 * slot] - 1), or -1. */
  private slotOf(key: string, h: number): number {
    if (this.indexed !== this.end) this.settle();
    const { index, mask, meta, chars } = this;
    const len = key.length;
    let i = h & mask;
    for (let e = index[2 * i] as number; e !== 0; e = index[2 * i] as number) {
      const m = 3 * (e - 1);
      if (index[2 * i + 1] === h && meta[m + 2] === len) {
        const start = meta[m + 1] as number;
        let k = 0;
        while (k < len && chars[start + k] === key.charCodeAt(k)) k++;
        if (k === len) return i;
      }
      i = (i + 1) & mask;
    }
    return -1;
  }

  /** The first empty slot of `h`'s probe run (the key is known absent). */
  private freeSlot(h: number): number {
    let i = h & this.mask;
    while (this.index[2 * i] !== 0) i = (i + 1) & this.mask;
    return i;
  }

  /** Grow the per-position arrays (meta, nums) to hold `n` positions. */
  private growPositions(n: number): void {
    let cap = this.meta.length / 3;
    while (cap < n) cap *= 2;
    const meta = new Int32Array(3 * cap);
    meta.set(this.meta.subarray(0, 3 * this.end));
    this.meta = meta;
    if (this.width === 0) return;
    const nums = new Float64Array(this.width * cap);
    nums.set(this.nums.subarray(0, this.width * this.end));
    this.nums = nums;
  }

  /** Room for `n` arena units; `exact`: no more (a reserve() for a known load), else doubled. */
  private reserveChars(n: number, exact = false): void {
    if (n <= this.chars.length) return;
    let cap = this.chars.length;
    while (cap < n) cap *= 2;
    if (exact) cap = n;
    const chars = new Uint16Array(cap);
    chars.set(this.chars.subarray(0, this.used));
    this.chars = chars;
  }

  /** A new index of `capacity` slots (a power of two) over the dense arrays. */
  private rehash(capacity: number): void {
    this.index = new Int32Array(2 * capacity);
    // Touch every page of the new index now: the OS maps them on first
    // write, and a bulk load's keys come in at the first lookup (settle),
    // where a follower has nothing to overlap the faults with; a reserve()
    // before the load is where it still waits for the parts that follow.
    this.index.fill(0);
    this.mask = capacity - 1;
    this.sweep(0, this.indexed, false); // pending positions stay pending
  }

  /** Squeeze the holes (and their characters) out of the dense arrays, keeping order, and reindex. */
  private compact(): void {
    const { meta, nums, chars, width: w } = this;
    let q = 0;
    let used = 0;
    for (let p = 0; p < this.end; p++) {
      const len = meta[3 * p + 2] as number;
      if (len < 0) continue;
      const start = meta[3 * p + 1] as number;
      // Moves only ever go left (q <= p, used <= start), so copyWithin is safe.
      chars.copyWithin(used, start, start + len + 1);
      meta[3 * q] = meta[3 * p] as number;
      meta[3 * q + 1] = used;
      meta[3 * q + 2] = len;
      if (w > 0) nums.copyWithin(w * q, w * p, w * p + w);
      used += len + 1;
      q++;
    }
    this.end = q;
    this.indexed = q; // only ever from append(), on a settled map
    this.used = used;
    this.holes = 0;
    this.shape++;
    // Shrink the index too when most of the table went (load 1/4 after).
    this.rehash(Math.min(this.mask + 1, capacityFor(2 * q)));
  }
}

/** Units [a, a + len) and [b, b + len) of one array are equal. */
function sameUnits(units: Uint16Array, a: number, b: number, len: number): boolean {
  for (let k = 0; k < len; k++) if (units[a + k] !== units[b + k]) return false;
  return true;
}

/** The smallest power of two that holds `n` entries at load <= 1/2. */
function capacityFor(n: number): number {
  let cap = MIN_CAPACITY;
  while (cap < 2 * n) cap *= 2;
  return cap;
}
