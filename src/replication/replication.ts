/**
 * The replication seam: what a role-less node
 * needs from whatever decides the order of writes, and what that gives the
 * node in return.
 *
 *   node -> replication   propose(command, origin): a write of this node's
 *                         client, or a disconnect / end of wait (req 0)
 *   replication -> node   the Replica interface below: committed entries
 *                         to apply, answers for proposals that have no
 *                         entry of their own, snapshots, the commit index
 *
 * Every node is role-less (node/replica-node.ts): it applies entries to its
 * replica through the pure lock table (core/lock-table.ts) with the entry's
 * time, and answers its own clients from them, whichever node sequences.
 * "Leader" is a role inside a replication: the one that orders writes.
 *
 * Implementations:
 *  - replication-port.ts: the in-process primary/backup over MessagePorts
 *    (the one-process `dlock up`). The primary applies a write first and
 *    logs it only if it changed the table (passive replication); backups
 *    apply the entries it sends. Failover makes a backup the primary in
 *    place: no state is handed over, the node keeps its table, its
 *    connections and its proposals, which it sends to itself instead.
 *  - replication-etcd.ts: leadership by etcd's election, the log under the
 *    cluster's key prefix (etcd-log.ts), each append guarded by the
 *    leader's election key; every node, the leader too, applies the log as
 *    etcd orders it. Every proposal is appended, and its entry answers it;
 *    a write re-sent after failover may be in the log twice, so the
 *    replication skips duplicates by origin and request id (exactly once).
 *
 * Guarantees every implementation gives:
 *  - ordering: entries reach Replica.applyEntry / execute in log order,
 *    each once, with gap-free, rising `seq`; every node sees the same
 *    sequence. A proposal's origin hears its result once: from its entry,
 *    or from Replica.answer, never both;
 *  - durability: Replica.commit(s) is called only once the log holds
 *    everything up to s durably (in-process: on every counting replica and
 *    the data dir; etcd: on a quorum), and replies wait for it, so no reply
 *    shows state a failover could lose [LP-11];
 *  - fencing: a node that has stopped sequencing (deposed, partitioned)
 *    cannot get another entry committed;
 *  - threading: used from the one thread that made it; every Replica call
 *    is made on that thread.
 */
import type { Command, Outcome, Reply, TableState } from '../core/lock-table.js';
import type { Limits } from '../server/limits.js';
import type { NodeLog } from '../node/node-log.js';
import type { LogClock } from '../node/log-clock.js';

/** One committed command, as every node applies it. */
export interface LogEntry {
  /** Position in the log: 1, 2, 3, … with no gaps. */
  seq: number;
  /** The sequencer's log time when it stamped the entry (node/log-clock.ts; not a wall clock): the lock table's `now`. */
  at: number;
  cmd: Command;
  /** Node index of the origin, and its request id (0: no reply owed). */
  from: number;
  req: number;
}

/** What a replication drives: a node's replica and the clients it answers (node/replica-node.ts). */
export interface Replica {
  readonly name: string;
  /** This node's index: the `from` of its own proposals and the node part of its client ids [LP-4]. */
  readonly index: number;
  readonly log: NodeLog;
  readonly limits: Limits;
  /** The table, read by a sequencer deciding what to log (limits, lease ends, sessions); changed only through the calls below. */
  readonly state: TableState;
  /** Sequence number of the last entry applied. */
  readonly seq: number;
  readonly commitSeq: number;
  /** This node's clients' writes still owed a reply (waiting acquires too). */
  readonly owed: number;
  /** Apply the next committed entry (seq = this.seq + 1), answering this node's clients from it. */
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
  /** Answer this node's proposal `req` without an entry: it changed nothing (reflecting `seq`), or it failed (a string, seq 0). */
  answer(req: number, reply: Reply | string, seq: number): void;
  /** Fail every proposal still owed an answer, except those `keep` names. */
  failOwn(error: string, keep?: (req: number) => boolean): void;
  /** Replies derived from entries past the commit index will never be sent as they are: fail them (ClientConnection.failUncommitted). */
  failUncommitted(readError: string, writeError: string): void;
  /** The next entry (seq = this.seq + 1) is a duplicate the replication filtered out: it takes its seq and changes nothing. */
  skip(seq: number): void;
  /** The table is now `state`, as of `seq` (a snapshot, a restore). */
  load(state: TableState, seq: number): void;
  /**
   * The cluster ended the sessions of this node's clients while this node
   * could not follow (it left the configuration; it may catch up from a
   * snapshot, past the entries that ended them) [LP-8]: every connection
   * is closed, its waiting acquire answered with an error, what it read
   * answered first. `why` is logged.
   */
  endSessions(why: string): void;
  /** A new request id of this node, above every earlier one (for proposals owed no reply too, where the replication needs ids on every proposal). */
  nextRequestId(): number;
  /** Log time (node/log-clock.ts): a sequencer stamps entries with it and runs its lease and wait timers on it. */
  readonly clock: LogClock;
  /** The next request id nextRequestId() would give (not taken). */
  readonly requestIdsUsed: number;
  /** Request ids from here on are at least `first` (a block the replication reserved); never lowers them. */
  requestIdsFrom(first: number): void;
  /** Everything up to `seq` is committed: replies reflecting it may go. */
  commit(seq: number): void;
}

/** A replication, as the node sees it (see the file comment for the guarantees). */
export interface Replication {
  /** This node sequences writes now. */
  readonly leads: boolean;
  /** Propose a write of this node, as its request `req` (0: no reply owed). */
  propose(cmd: Command, req: number): void;
  /** Per-client entries the replication keeps (held proposals, links): for NodeStats.clientEntries. */
  clientEntries(): number;
  /** Leader only: each follower's acknowledged sequence number, for views. */
  followerAcks(): Record<string, number> | undefined;
  /** Stop: timers, links. The node closes its clients itself. */
  close(): Promise<void>;
}
