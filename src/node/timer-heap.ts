/**
 * Deadlines on one Node timer: a binary min-heap of (at, item) with a single
 * setTimeout armed for the earliest. The leader keeps one per waiting
 * acquire (its timeout); a Timeout object each would cost more. Lease ends
 * are not kept here but in the table (core/lease-heap.ts), as numbers.
 *
 * Entries are never removed early: the handler checks whether the deadline
 * still matters (the lock table ignores stale expire/timeout commands).
 * Threading: single thread. Ordering: due items fire in deadline order.
 */
interface Slot<T> {
  at: number;
  item: T;
}

export class TimerHeap<T> {
  private heap: Slot<T>[] = [];
  private timer: NodeJS.Timeout | null = null;
  private armedFor = Infinity;

  constructor(
    private readonly onDue: (item: T, now: number) => void,
    private readonly clock: () => number = () => performance.now(),
  ) {}

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
    if (at < this.armedFor) this.arm();
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.armedFor = Infinity;
    this.heap = [];
  }

  private pop(): Slot<T> {
    const h = this.heap;
    const top = h[0] as Slot<T>;
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
    return top;
  }

  private arm(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const first = this.heap[0];
    if (first === undefined) {
      this.armedFor = Infinity;
      return;
    }
    this.armedFor = first.at;
    this.timer = setTimeout(this.fire, Math.max(0, Math.ceil(first.at - this.clock())));
  }

  private readonly fire = (): void => {
    this.timer = null;
    this.armedFor = Infinity;
    const now = this.clock();
    while (this.heap.length > 0 && (this.heap[0] as Slot<T>).at <= now) {
      const slot = this.pop();
      this.onDue(slot.item, now);
    }
    this.arm();
  };
}
