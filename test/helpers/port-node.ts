/**
 * Nodes of the in-process primary/backup, made in the test's own thread
 * (workers/node-worker.ts makes them the same way, one per worker).
 */
import type { NodeOptions } from '../../src/node/node.js';
import { ReplicaNode } from '../../src/node/replica-node.js';
import { PortReplication } from '../../src/replication/replication-port.js';
import type { Transport } from '../../src/transport/transport.js';

export type PortNode = ReplicaNode & { readonly replication: PortReplication };

/** A node whose replication is the primary. */
export function primaryNode(opts: NodeOptions): PortNode {
  return new ReplicaNode(opts, (replica) => new PortReplication(replica, { primary: true })) as PortNode;
}

/** A node whose replication is a backup on `link` (not started: call `.replication.backup.start()`). */
export function backupNode(opts: NodeOptions, link: Transport, incarnation = 'test', leaderWaitMs?: number): PortNode {
  return new ReplicaNode(opts, (replica) => new PortReplication(replica, { primary: false, link, incarnation, ...(leaderWaitMs === undefined ? {} : { leaderWaitMs }) })) as PortNode;
}
