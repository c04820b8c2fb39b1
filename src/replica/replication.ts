/**
 * The replication seam: what a role-less node
 * needs from whatever decides the order of writes, and what that gives the
 * node in return.
 *
 *   node -> replication   propose(command, origin): a write of this node's
 *                         client, or a disconnect / end of wait (req 0)
 *   replication -> node   the Replica interface below, in two halves:
 *                         the state machine (state-machine.ts: committed
 *                         entries to apply, snapshots) and the proposals
 *                         (proposals.ts: answers for proposals that have
 *                         no entry of their own, the commit index)
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
 *  - replication-group.ts: the group protocol (pacifica.ts, PacificA's
 *    primary/backup with its configuration kept by a manager), the
 *    default of `dlock node` and `dlock up --replication group`: the
 *    primary sends each write to every secondary of the configuration and
 *    commits once all hold it; every node applies committed entries.
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
import type { Command } from '../core/lock-table.js';
import type { Limits } from '../server/limits.js';
import type { LogClock } from './log-clock.js';
import type { NodeLog } from './node-log.js';
import type { Proposals } from './proposals.js';
import type { StateMachine } from './state-machine.js';

/** What a replication drives: a node's replica and the clients it answers (node/replica-node.ts). */
export interface Replica extends StateMachine, Proposals {
  readonly name: string;
  /** This node's index: the `from` of its own proposals and the node part of its client ids [LP-4]. */
  readonly index: number;
  readonly log: NodeLog;
  readonly limits: Limits;
  /** Log time (replica/log-clock.ts): a sequencer stamps entries with it and runs its lease and wait timers on it. */
  readonly clock: LogClock;
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
