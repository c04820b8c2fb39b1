/**
 * The sequencer's duties, written once for every replication engine: the
 * commands a primary must log because time passed (a lease's end [LP-10],
 * an acquire's timeout [LP-9]) or because a node left (its clients'
 * sessions end [LP-8]). Duties own no timer and do no I/O: as etcd-io/raft's
 * `Ready` hands out what to send, `due(now)` hands out what to log. The
 * engine keeps one timer for `nextDue()`, logs what `due()` returns in
 * that order, and tells the duties what it applied (`applied`), so that a
 * wait it logged gets its deadline.
 *
 * Contracts:
 *  - time: every `now` and every deadline is log time (the replica's
 *    LogClock, the clock the table's lease ends and wait deadlines are on);
 *  - role: duties hand out nothing until `takeOver()` and after `stop()`
 *    (a secondary's table changes only by what its primary logged);
 *  - once: a lease end is handed out once (`expire` for its grant's token)
 *    until that entry is applied or the duties stop, and each wait's
 *    deadline once (`timeout`); the table ignores an expire or timeout
 *    that no longer applies (renewed, released, granted since), so a late
 *    one changes nothing;
 *  - order: within one `due()`, lease ends in end order, then timeouts in
 *    deadline order.
 *
 * Pure: no clock, no timers, no I/O. Threading: the node's thread.
 */
import { clientsOf, deadlineOf, disconnectOf, dueLeases, homeOf, nextLeaseEnd, resetLeaseClock, sessionHolders, type ClientId, type Command, type Outcome, type TableState } from '../core/lock-table.js';
import { DeadlineHeap } from '../core/deadline-heap.js';

/** A waiting acquire's end, as its `timeout` command names it. */
interface Wait {
  client: ClientId;
  lock: string;
  deadline: number;
}

export class Duties {
  private readonly waits = new DeadlineHeap<Wait>();
  /** Leases whose `expire` was handed out and not yet applied, by token and lock (one grant of several locks has one token [LP-22]). */
  private readonly expiring = new Set<string>();
  private running = false;

  /** `table`: the replica's table, as applied so far (read, never changed). */
  constructor(private readonly table: () => TableState) {}

  /** Waits whose deadline is kept (for a node's count of what it holds per client). */
  get size(): number {
    return this.waits.size;
  }

  /** This node now sequences: every wait the table holds gets its deadline (a new primary keeps its predecessor's). */
  takeOver(): void {
    this.stop();
    this.running = true;
    resetLeaseClock(this.table()); // every hold's lease end from the table as it is
    for (const [lock, waiters] of this.table().locks.queueEntries()) {
      // A waiter for several locks is in each of their queues, and waits, as its `timeout` names it, on the first [LP-22].
      for (const w of waiters) if (w.deadline !== null && (w.locks?.[0] ?? lock) === lock) this.waits.add(w.deadline, { client: w.client, lock, deadline: w.deadline });
    }
  }

  /** No longer the sequencer: nothing kept. */
  stop(): void {
    this.running = false;
    this.waits.clear();
    this.expiring.clear();
  }

  /** A log entry was applied, with its log time `at` and the table's outcome. Returns the deadline of a wait it began, if it keeps one (an engine re-arms its timer when that is sooner). */
  applied(cmd: Command, out: Outcome, at: number): number | null {
    if (cmd.op === 'expire') this.expiring.delete(`${cmd.token} ${cmd.lock}`);
    if (!this.running || out.waits === null || cmd.op !== 'acquire') return null;
    const deadline = deadlineOf(cmd, at);
    if (deadline !== null) this.waits.add(deadline, { ...out.waits, deadline });
    return deadline;
  }

  /** When something is next due (log time); Infinity when nothing is. */
  nextDue(): number {
    if (!this.running) return Infinity;
    return Math.min(nextLeaseEnd(this.table()), this.waits.nextAt());
  }

  /** The commands due at `now`, to log in this order (see the contract). */
  due(now: number): Command[] {
    if (!this.running) return [];
    const out: Command[] = [];
    for (const [lock, token] of dueLeases(this.table(), now)) {
      const key = `${token} ${lock}`;
      if (this.expiring.has(key)) continue;
      this.expiring.add(key);
      out.push({ op: 'expire', lock, token });
    }
    for (let w = this.waits.popDue(now); w !== undefined; w = this.waits.popDue(now)) out.push({ op: 'timeout', client: w.client, lock: w.lock, deadline: w.deadline });
    return out;
  }

  /** The nodes whose clients hold a session lock, wait, or have an open resumable session: those a departed node's sweep must consider [LP-8]. */
  nodesServing(nodeOf: (c: ClientId) => number): Set<number> {
    const state = this.table();
    const homes = new Set<number>();
    for (const c of sessionHolders(state)) homes.add(homeOf(state, c, nodeOf));
    for (const c of state.waiting.keys()) homes.add(homeOf(state, c, nodeOf));
    for (const [c, s] of state.sessions) if (s.open) homes.add(homeOf(state, c, nodeOf));
    return homes;
  }

  /** Node `index` left the cluster: the disconnect of each client it served that holds a session lock or waits [LP-8]. */
  sessionsEndedBy(index: number, nodeOf: (c: ClientId) => number): Command[] {
    const state = this.table();
    return clientsOf(state, index, nodeOf).map((client) => disconnectOf(state, client));
  }
}
