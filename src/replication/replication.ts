/**
 * The replication seam (issue 13, design point 1): what a role-less node
 * needs from whatever decides the order of writes.
 *
 *   propose(command, origin)   a write, from this node's client or a forward
 *   committed entries          every node, the sequencer too, applies these
 *                              to its replica through the pure lock table
 *                              (core/lock-table.ts) with the entry's time,
 *                              and answers its own clients from them
 *
 * Implementations:
 *  - the in-process primary/backup over MessagePorts: today node-leader.ts
 *    and node-follower.ts, which still split the roles into two classes;
 *    moving them behind this interface (replication-port.ts) is the next
 *    step of issue 13;
 *  - etcd (replication-etcd.ts): leadership by etcd's election, the log
 *    under the cluster's key prefix, each append guarded by the leader's
 *    election key, so a deposed leader cannot append. Its first part,
 *    EtcdLog, is there: campaign, guarded group-commit appends, and the
 *    ordered tail of the log from any revision.
 *
 * Guarantees every implementation gives:
 *  - ordering: committed entries are delivered in log order, each once,
 *    with gap-free, rising `seq`; every node sees the same sequence;
 *  - durability: an entry is delivered as committed only once the log
 *    holds it durably (in-process: on every counting replica; etcd: in
 *    etcd's Raft log, on a quorum), so a reply derived from it never shows
 *    state a failover could lose [LP-11];
 *  - fencing: a node that has stopped sequencing (deposed, partitioned)
 *    cannot get another entry committed;
 *  - threading: used from the one thread that made it; handlers run there.
 */
import type { Command } from '../core/lock-table.js';

/** One committed command, as every node applies it. */
export interface LogEntry {
  /** Position in the log: 1, 2, 3, … with no gaps. */
  seq: number;
  /** The sequencer's clock when it appended the entry (ms since the epoch): the lock table's `now`. */
  at: number;
  cmd: Command;
  /** Node index of the origin (0: the sequencer's own, or none), and its request id (0: no reply owed). */
  from: number;
  req: number;
}

/** Where a proposal came from, so that its origin can tell its reply when the entry commits. */
export interface Origin {
  from: number;
  req: number;
}

export interface Replication {
  /** Propose a write. It commits (an entry naming `origin`) or the origin is told it failed; never both. */
  propose(cmd: Command, origin: Origin): void;
  /** Committed entries, in order. Set once, before `start`. */
  onCommitted(handler: (entries: readonly LogEntry[]) => void): void;
  /** This node began (true) or stopped (false) sequencing writes. */
  onRole(handler: (leads: boolean) => void): void;
  close(): Promise<void>;
}
