/**
 * When to follow the etcd log again (EtcdReplication's tail watchdog),
 * as a pure rule: no clock, no timer, no etcd. Its owner asks etcd where
 * the log ends every check period and tells `check` what it learnt; a
 * `true` answer means: drop the tail and follow the log again from what is
 * applied. `followed()` says the new tail is in place.
 *
 * The rule: the log has been ahead of this node for `stallMs` (monotonic,
 * as the owner measures it) with no batch applied meanwhile.
 *
 * - A check that got no answer teaches nothing: it neither starts nor
 *   ends a stall. (The etcd3 client sends each call to a member picked at
 *   random; behind a partition one member in three never answers. Had a
 *   failed check ended the stall, the stall's clock would start again so
 *   often that a stalled tail waited tens of seconds to be replaced.)
 * - A stall that is measured stays measured until a batch is applied or a
 *   new tail is in place: a new tail whose reads failed (it too picked the
 *   cut-off member) is tried again at the next check, not after another
 *   `stallMs`.
 */
export class TailWatchdog {
  private behind: { batch: number; since: number } | null = null;

  constructor(private readonly stallMs: number) {}

  /**
   * One check: `end`, the log's last batch as etcd says (null: no answer);
   * `applied`, the last batch this node applied; `now`, monotonic ms.
   * True: follow the log again now.
   */
  check(end: number | null, applied: number, now: number): boolean {
    if (end !== null && end <= applied) {
      this.behind = null;
      return false;
    }
    if (this.behind === null || this.behind.batch !== applied) {
      // A batch was applied since the stall began (or none began): measure afresh, if etcd said the log is ahead.
      this.behind = end === null ? null : { batch: applied, since: now };
      return false;
    }
    return now - this.behind.since >= this.stallMs;
  }

  /** A new tail is in place: whatever stall there was is over. */
  followed(): void {
    this.behind = null;
  }
}
