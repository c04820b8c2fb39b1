/**
 * The last entries of the log, kept by every node so that a follower whose
 * link breaks (above all at leader failover) can resume from its
 * own sequence number with the entries it lacks instead of a full snapshot,
 * and so derive the results of its in-flight writes from them (codec.ts).
 *
 * Holds up to `capacity` consecutive entries ending at `last`. Items are
 * frames or their encoded text, whatever the node has at hand; a Transport
 * sends either. Threading: the owning node's thread.
 */
import type { Frame, Wire } from '../codec/frame.js';

export const RING_CAPACITY = 16_384;

export class EntryRing {
  private readonly items: Array<Frame | Wire | undefined>;
  /** Sequence number of the newest entry held (or of the state, when empty). */
  private last = 0;
  private count = 0;

  constructor(private readonly capacity = RING_CAPACITY) {
    this.items = new Array<Frame | Wire | undefined>(capacity);
  }

  /** The state is now at `seq` without entries (a snapshot): start over from there. */
  reset(seq: number): void {
    this.last = seq;
    this.count = 0;
  }

  /** Append entry `seq`, which must follow the newest (the log has no gaps). */
  push(seq: number, item: Frame | Wire): void {
    if (seq !== this.last + 1) this.count = 0; // not contiguous: keep only this one
    this.items[seq % this.capacity] = item;
    this.last = seq;
    this.count = Math.min(this.count + 1, this.capacity);
  }

  /** Entries after `seq` up to the newest, in order; null when they are not all held. */
  after(seq: number): Array<Frame | Wire> | null {
    if (seq > this.last || seq < this.last - this.count) return null;
    const out: Array<Frame | Wire> = [];
    for (let s = seq + 1; s <= this.last; s++) out.push(this.items[s % this.capacity] as Frame | Wire);
    return out;
  }
}
