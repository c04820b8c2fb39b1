/**
 * The one Node timer an engine keeps for its sequencer's duties
 * (replica/duties.ts): armed for `nextDue()`, it hands what is due then to
 * `log`, in order, and arms again for the next. `arm()` is a no-op while
 * it is armed for the same time, so an engine may call it after every
 * batch it applies, and `armBy(at)` is one comparison on the request path.
 *
 * Time: `now()` is log time, the clock the duties' deadlines are on.
 * Threading: the node's thread. The timer is unref'd: the node's sockets
 * and ports keep its thread alive, never a pending duty.
 */
import type { Command } from '../core/lock-table.js';
import type { Duties } from '../replica/duties.js';

export class DutyTimer {
  private timer: NodeJS.Timeout | null = null;
  private armedFor = Infinity;

  constructor(
    private readonly duties: Duties,
    private readonly now: () => number,
    private readonly log: (cmd: Command) => void,
  ) {}

  /** Arm for the next duty (none: no timer). */
  arm(): void {
    const next = this.duties.nextDue();
    if (next === this.armedFor) return;
    this.cancel();
    this.armedFor = next;
    if (next === Infinity) return;
    this.timer = setTimeout(this.fire, Math.max(0, Math.ceil(next - this.now())));
    this.timer.unref();
  }

  /** Something is now due at `at`: arm again if that is sooner than the timer. */
  armBy(at: number): void {
    if (at < this.armedFor) this.arm();
  }

  cancel(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.armedFor = Infinity;
  }

  private readonly fire = (): void => {
    this.timer = null;
    this.armedFor = Infinity;
    for (const cmd of this.duties.due(this.now())) this.log(cmd);
    this.arm();
  };
}
