/**
 * Deadlines as a binary min-heap of (at, item), with no timer: the owner
 * asks when the next one is (`nextAt`) and takes those due (`popDue`).
 * Entries are never removed early: whoever acts on one checks whether it
 * still matters. Ordering: equal deadlines come out in no set order.
 * Pure; threading: single thread.
 */
interface Slot<T> {
  at: number;
  item: T;
}

export class DeadlineHeap<T> {
  private heap: Array<Slot<T>> = [];

  get size(): number {
    return this.heap.length;
  }

  add(at: number, item: T): void {
    const h = this.heap;
    const slot = { at, item };
    h.push(slot);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if ((h[p] as Slot<T>).at <= at) break;
      h[i] = h[p] as Slot<T>;
      i = p;
    }
    h[i] = slot;
  }

  /** The earliest deadline; Infinity when there is none. */
  nextAt(): number {
    return this.heap[0]?.at ?? Infinity;
  }

  /** The earliest item and its deadline, left in place; undefined when empty. */
  peek(): { at: number; item: T } | undefined {
    return this.heap[0];
  }

  /** The earliest item whose deadline is at or before `now`, taken off; undefined when none is due. */
  popDue(now: number): T | undefined {
    const h = this.heap;
    const top = h[0];
    if (top === undefined || top.at > now) return undefined;
    const last = h.pop() as Slot<T>;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c = r < h.length && (h[r] as Slot<T>).at < (h[l] as Slot<T>).at ? r : l;
        if ((h[c] as Slot<T>).at >= last.at) break;
        h[i] = h[c] as Slot<T>;
        i = c;
      }
      h[i] = last;
    }
    return top.item;
  }

  clear(): void {
    this.heap = [];
  }
}
