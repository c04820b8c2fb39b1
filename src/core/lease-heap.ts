/**
 * A binary min-heap of (at, stamp, position) triples in typed arrays: the
 * lock table's leases by end time (lock-map.ts); the stamp tells the
 * owner whether an entry is still the lease's latest. Numbers only, so a
 * million leases are three arrays, not the three million small objects a
 * heap of `{ at, item: { lock, token } }` made: on the leader those were
 * most of what the GC marked, and each full GC during a snapshot copy
 * took hundreds of ms on a 2-core machine (issue 5 §6).
 *
 * Entries are never removed early; the owner checks an entry against the
 * table when it reaches the top (lazy deletion). Threading: none; one owner.
 * Ordering: pop() returns entries by `at`, ties in no particular order.
 */
export class LeaseHeap {
  private at = new Float64Array(16);
  private stamp = new Float64Array(16);
  private pos = new Int32Array(16);
  private n = 0;

  get size(): number {
    return this.n;
  }

  clear(): void {
    this.n = 0;
  }

  push(at: number, stamp: number, pos: number): void {
    if (this.n === this.pos.length) this.grow();
    let i = this.n++;
    const { at: A, stamp: T, pos: P } = this;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((A[parent] as number) <= at) break;
      A[i] = A[parent] as number;
      T[i] = T[parent] as number;
      P[i] = P[parent] as number;
      i = parent;
    }
    A[i] = at;
    T[i] = stamp;
    P[i] = pos;
  }

  /** The top entry's fields (the heap must not be empty). */
  topAt(): number {
    return this.at[0] as number;
  }

  topStamp(): number {
    return this.stamp[0] as number;
  }

  topPos(): number {
    return this.pos[0] as number;
  }

  /** Remove the top entry. */
  pop(): void {
    const last = --this.n;
    if (last === 0) return;
    const { at: A, stamp: T, pos: P } = this;
    const at = A[last] as number;
    const stamp = T[last] as number;
    const pos = P[last] as number;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= last) break;
      const r = l + 1;
      const c = r < last && (A[r] as number) < (A[l] as number) ? r : l;
      if ((A[c] as number) >= at) break;
      A[i] = A[c] as number;
      T[i] = T[c] as number;
      P[i] = P[c] as number;
      i = c;
    }
    A[i] = at;
    T[i] = stamp;
    P[i] = pos;
  }

  private grow(): void {
    const cap = 2 * this.pos.length;
    const at = new Float64Array(cap);
    at.set(this.at);
    this.at = at;
    const stamp = new Float64Array(cap);
    stamp.set(this.stamp);
    this.stamp = stamp;
    const pos = new Int32Array(cap);
    pos.set(this.pos);
    this.pos = pos;
  }
}
