/**
 * How late a frame arrived, on a link between two nodes whose clocks are
 * not compared: each side's monotonic clock has an origin of its own.
 *
 * Frames that may be late (a forwarded `acquire` whose timeout runs while
 * it crosses the link) carry `t`, the sender's monotonic ms when it was
 * sent, and so do frames that flow anyway (hello, ack, ping): every one is
 * a sample of `arrival − t` = the link's delay then + the constant offset
 * between the two clocks. The smallest sample is the fastest crossing (+
 * the offset); a frame's lateness is its own sample less that smallest:
 * the time it spent queued or delayed beyond the link's best. No wall
 * clock, no offset estimate: the offset cancels out. Lateness is an
 * underestimate by at most the link's fastest crossing (a fraction of a
 * millisecond on a LAN), so a wait is never cut short by it.
 *
 * The smallest sample is kept per window (WINDOW_MS, two windows: the
 * current and the last), so a drift of the clocks' rates, tens of ppm,
 * does not accumulate.
 *
 * Threading: the link's thread.
 */

/** How long a smallest sample stands, ms (it is replaced by the smallest of the next window). */
const WINDOW_MS = 60_000;

export class DelayFloor {
  private current = Infinity;
  private last = Infinity;
  private windowStart = performance.now();

  /** A frame sent at `t` (the sender's monotonic ms) arrived now. */
  sample(t: number): void {
    const now = performance.now();
    if (now - this.windowStart >= WINDOW_MS) {
      this.last = this.current;
      this.current = Infinity;
      this.windowStart = now;
    }
    const d = now - t;
    if (d < this.current) this.current = d;
  }

  /** How much later than the link's fastest crossing a frame sent at `t` arrived, ms (0 before any sample). Sample it first. */
  lateness(t: number): number {
    const floor = Math.min(this.current, this.last);
    return floor === Infinity ? 0 : Math.max(0, performance.now() - t - floor);
  }
}
