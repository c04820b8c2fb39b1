/**
 * What a read must wait for so that it shows committed state only [LP-11].
 *
 * A node's table is applied state: on the leader, writes not yet on every
 * voter; on a follower, entries the leader has not yet committed. A
 * failover can still lose those. So each lock that an entry above the
 * commit index changed is listed with the seq of its latest change, and a
 * read of it waits (as a write's reply does) for the commit index to reach
 * that seq, by when what it shows is committed. A read of any other lock is
 * answered at once: a lock nobody is writing this instant costs its reader
 * nothing more. This is Raft's read index (Ongaro's thesis §6.4, etcd's
 * linearizable reads) narrowed to the lock a read shows: it waits for the
 * writes that touch that lock, not for every write in flight.
 *
 * Threading: the node's thread. Ordering: `note` is called in seq order,
 * `committed` with a rising commit index.
 */
import type { LockChange } from '../core/lock-table.js';

export class ReadIndex {
  private readonly latest = new Map<string, number>();
  /** [lock, seq] pairs in seq order from `head`, so a commit drops what it covers from the front: O(1) a change. */
  private order: Array<string | number> = [];
  private head = 0;
  /**
   * A state loaded from a snapshot is the leader's applied state at the
   * snapshot's seq, with no record of which locks were uncommitted then:
   * until the commit index reaches that seq, every read waits for it.
   */
  private floor = 0;

  /** The seq a read of `lock` must wait for the commit index to reach (0: none). */
  seqFor(lock: string, commit: number): number {
    const s = this.latest.get(lock) ?? 0;
    return this.floor > commit && this.floor > s ? this.floor : s;
  }

  /** The entry at `seq`, above the commit index, made these changes. */
  note(seq: number, changes: readonly LockChange[]): void {
    for (const c of changes) {
      this.latest.set(c.lock, seq);
      this.order.push(c.lock, seq);
    }
  }

  /** The commit index reached `commit`: locks changed at or below it are committed. */
  committed(commit: number): void {
    const order = this.order;
    let h = this.head;
    while (h < order.length && (order[h + 1] as number) <= commit) {
      const lock = order[h] as string;
      if (this.latest.get(lock) === order[h + 1]) this.latest.delete(lock);
      h += 2;
    }
    if (h === order.length) {
      this.order = [];
      this.head = 0;
    } else if (h > 4096 && h * 2 > order.length) {
      this.order = order.slice(h);
      this.head = 0;
    } else {
      this.head = h;
    }
  }

  /** The state was replaced by a snapshot at `seq`. */
  loaded(seq: number): void {
    this.latest.clear();
    this.order = [];
    this.head = 0;
    this.floor = seq;
  }

  /** Locks listed (for stats and tests). */
  get size(): number {
    return this.latest.size;
  }
}
