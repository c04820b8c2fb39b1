/**
 * Log time: the clock leases and acquire timeouts run on, and the `now`
 * the lock table applies every entry at (core/lock-table.ts).
 *
 * It is not a wall clock. A node's log time is the latest log time it has
 * applied (the table's `at`, the stamp of the entry, or of the snapshot it
 * loaded) plus the monotonic time since it applied it. The sequencer stamps
 * each entry with its log time (stamp()), so log time goes on from the last
 * entry's, whichever node sequences, and no node's wall clock, or the
 * offset between two nodes' wall clocks, enters a lease or a wait.
 *
 * The rule that keeps leases whole (no clock offset can shorten one):
 * every node applies an entry after it was stamped, so its log time is at
 * most the stamping node's at the same instant. A new leader therefore
 * counts every lease from no later than the old one would have: a lease
 * ends no sooner than `ttl` after the entry that set it, as real time goes
 * (Chubby's new master extends every lease in the same spirit). A failover
 * can only lengthen leases, by the time between the last entry and the
 * takeover. Only the rate of nodes' monotonic clocks matters: a lease of
 * `ttl` lasts at least `ttl` × (the slowest rate ÷ the fastest), which for
 * quartz clocks (tens of ppm) is `ttl` less a few µs a second.
 *
 * What a user must keep true: no node's monotonic clock runs faster than
 * another's by more than that. Wall clocks may be stepped or skewed at will.
 *
 * Threading: the node's thread.
 */

export class LogClock {
  /** The latest log time observed, and the monotonic time it was observed at. */
  private at = 0;
  private mono = performance.now();

  /**
   * A log time this node has applied (an entry's, a loaded table's): log
   * time goes on from it, unless this clock is ahead already (it never
   * goes back: the sequencer stamps an entry before it applies it).
   */
  observe(at: number): void {
    if (at <= this.at) return; // at most what it observed: at most now (no clock read: this runs for every entry)
    const now = this.now();
    if (at <= now) return;
    this.at = at;
    this.mono = performance.now();
  }

  /** This node's log time now, ms (fractional). */
  now(): number {
    return this.at + (performance.now() - this.mono);
  }

  /** A stamp for the next entry: log time now, whole ms, never below the last one observed. */
  stamp(): number {
    return Math.max(this.at, Math.floor(this.now()));
  }
}
