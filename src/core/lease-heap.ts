/**
 * A binary min-heap of (at, stamp, position) triples in typed arrays: the
 * lock table's leases by end time (lock-map.ts); the stamp tells the
 * owner whether an entry is still the lease's latest. Numbers only, so a
 * million leases are three arrays, not the three million small objects a
 * heap of `{ at, item: { lock, token } }` made: on the leader those were
 * most of what the GC marked, and each full GC during a snapshot copy
 * took hundreds of ms on a 2-core machine.
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
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((this.at[parent] as number) <= at) break;
      this.move(parent, i);
      i = parent;
    }
    this.place(i, at, stamp, pos);
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
    const A = this.at;
    const at = A[last] as number;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= last) break;
      const r = l + 1;
      const c = r < last && (A[r] as number) < (A[l] as number) ? r : l;
      if ((A[c] as number) >= at) break;
      this.move(c, i);
      i = c;
    }
    this.place(i, at, this.stamp[last] as number, this.pos[last] as number);
  }

  /** Entry `from` into slot `to`. */
  private move(from: number, to: number): void {
    this.at[to] = this.at[from] as number;
    this.stamp[to] = this.stamp[from] as number;
    this.pos[to] = this.pos[from] as number;
  }

  private place(i: number, at: number, stamp: number, pos: number): void {
    this.at[i] = at;
    this.stamp[i] = stamp;
    this.pos[i] = pos;
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
