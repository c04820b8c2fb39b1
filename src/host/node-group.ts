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
import { ReplicaNode } from '../node/replica-node.js';

export const ERR_READ_WINDOW = "this node cannot show that its replica is recent (no word from its primary within the lease): read through another node or retry";

export class GroupNode extends ReplicaNode {
  declare readonly replication: GroupReplication;

  /** Whether this node serves (the admin API's /health), and why not: its role in the configuration and the protocol's leases. */
  health(): { ok: boolean; reason: string } {
    const host = this.replication.host;
    const c = host.group.current;
    if (c === null) return { ok: false, reason: 'starting: no configuration known yet' };
    const role = host.group.role;
    if (role === 'primary') {
      return host.canWrite()
        ? { ok: true, reason: `the primary of configuration ${c.version}, with a lease from every secondary (seq ${this.applied})` }
        : { ok: false, reason: `the primary of configuration ${c.version}, without a lease from every secondary: writes wait until one is removed` };
    }
    if (role === 'learner') return { ok: false, reason: `catching up to join configuration ${c.version} (primary ${c.primary})` };
    return this.replication.readable
      ? { ok: true, reason: `a secondary of configuration ${c.version}; primary ${c.primary} leads (seq ${this.applied})` }
      : { ok: false, reason: `a secondary of configuration ${c.version} with no word from its primary ${c.primary} within the lease: no leader can be shown to take writes` };
  }

  override read(req: Extract<Request, { verb: 'check' | 'validate' }>): string {
    if (!this.replication.readable) return `Error: ${ERR_READ_WINDOW}`;
    return super.read(req);
  }
}
