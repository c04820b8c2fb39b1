/**
 * The state-machine half of the replication seam (hashicorp/raft's FSM):
 * a node's replica of the lock table, changed only by committed entries,
 * through the pure table (core/lock-table.ts), in log order.
 *
 * Contract (what a replication must keep, and may rely on):
 *  - ordering: applyEntry and skip take seq = this.seq + 1, each seq once;
 *    anything else throws (ReplicaOrderError): the replication broke its
 *    ordering guarantee, and the replica is no longer a copy of the log;
 *  - determinism: applying the same entries to the same state gives every
 *    node the same table and the same outcomes; the entry's `at` is the
 *    table's `now` (a log time, never this node's clock);
 *  - snapshots: `state` as of `seq` is a snapshot (taken by copying, the
 *    caller's job); load(state, seq) replaces the table with one;
 *  - threading: the node's thread.
 */
import type { Command, Outcome, TableState } from '../core/lock-table.js';

/** One committed command, as every node applies it. */
export interface LogEntry {
  /** Position in the log: 1, 2, 3, … with no gaps. */
  seq: number;
  /** The sequencer's log time when it stamped the entry (replica/log-clock.ts; not a wall clock): the lock table's `now`. */
  at: number;
  cmd: Command;
  /** Node index of the origin, and its request id (0: no reply owed). */
  from: number;
  req: number;
}

export interface StateMachine {
  /** The table, read by a sequencer deciding what to log (limits, lease ends, sessions), and by snapshots; changed only through the calls below. */
  readonly state: TableState;
  /** Sequence number of the last entry applied. */
  readonly seq: number;
  /** Apply the next committed entry (seq = this.seq + 1); the node answers its own clients from the outcome (Proposals). */
  applyEntry(e: LogEntry): Outcome;
  /**
   * Primary/backup only: apply `cmd` as the primary, before it is logged.
   * If it changed the table it takes the next seq and `logged` is called
   * with it, to log the entry; only then are replies derived, since a reply
   * can make a connection submit its next pipelined write at once, whose
   * entry must follow this one. A write that changed nothing keeps the seq
   * and its origin is answered at the current one. `from`, `req`: the
   * origin node's index (-1: none that derives replies) and request id.
   */
  execute(cmd: Command, at: number, from: number, req: number, logged: (seq: number, out: Outcome) => void): Outcome;
  /** The next entry (seq = this.seq + 1) is a duplicate the replication filtered out: it takes its seq and changes nothing. */
  skip(seq: number): void;
  /** The table is now `state`, as of `seq` (a snapshot, a restore). */
  load(state: TableState, seq: number): void;
}
