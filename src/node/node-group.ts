/**
 * A role-less node on the group protocol (replication/replication-group.ts):
 * a ReplicaNode whose reads are refused while its replica may be staler
 * than the protocol's bound [LP-11]: a secondary that has no read window
 * from its primary (pacifica.ts: a lease after a time the primary's lease
 * from it cannot predate), a learner, or a primary without every lease.
 *
 * Threading: the node's thread.
 */
import type { Request } from '../protocol/request.js';
import type { GroupReplication } from '../replication/replication-group.js';
import { ReplicaNode } from './replica-node.js';

export const ERR_READ_WINDOW = "this node cannot show that its replica is recent (no word from its primary within the lease): read through another node or retry";

export class GroupNode extends ReplicaNode {
  declare readonly replication: GroupReplication;

  override read(req: Extract<Request, { verb: 'check' | 'validate' }>): string {
    if (!this.replication.readable) return `Error: ${ERR_READ_WINDOW}`;
    return super.read(req);
  }
}
