/**
 * What a node may ask the sequencer to log for it: the rule the leader
 * applies to every `forward` from another node's link, after the decoder
 * has checked the command's shape (core/command-check.ts).
 *
 * A node acts only for its own clients [LP-4, LP-10]: those whose ids it
 * gave (replica/client-ids.ts), those resumed onto it [LP-16] (as the table says,
 * or by a `resume` this same link forwarded and the table may not show
 * yet: the leader applies the log after it appends), and only with
 * commands a client's connection makes. A `resume` must name the node it
 * comes from. `expire` is the sequencer's own, and `limits` the sequencer
 * stamps itself: neither comes from another node. `revoke` is an
 * operator's, through that node's admin API, which checked the admin
 * token; a node holds the cluster secret and is trusted with it.
 *
 * A `disconnect` of a connection its client has moved on from (a
 * generation below the table's, or of a session the table no longer has)
 * ends nothing: the table ignores it [LP-16]. It passes whichever node
 * sends it: its origin may be sending it again after a failover (the
 * first copy already ended the session), or its client resumed elsewhere
 * since. Refusing it closed the link, the origin sent it again on the
 * next one, and every write of that node waited behind the loop.
 *
 * A forward that breaks the rule is a bug or an attack: the leader closes
 * the link and logs it; nothing of it reaches the log.
 *
 * Pure. Threading: any.
 */
import { homeOf, type ClientId, type Command, type TableState } from '../core/lock-table.js';
import { nodeOfClient } from '../replica/client-ids.js';

/** Why node `from` may not forward `cmd`, or null when it may. `resumed`: targets of resumes this link forwarded. */
export function forwardError(state: TableState, cmd: Command, from: number, resumed: ReadonlySet<ClientId>): string | null {
  const mine = (client: ClientId): boolean => nodeOfClient(client) === from || homeOf(state, client, nodeOfClient) === from || resumed.has(client);
  switch (cmd.op) {
    case 'expire':
    case 'floor':
    case 'limits':
      return `${cmd.op} is the sequencer's own command`;
    case 'revoke':
      return null;
    case 'resume':
      if (cmd.node !== from) return `a resume for node ${cmd.node}, from node ${from}`;
      return nodeOfClient(cmd.client) === from ? null : `a resume by client ${cmd.client}, which is not node ${from}'s`;
    case 'preempt':
    case 'acquire':
      if (cmd.limits !== undefined) return 'limits are the sequencer\'s to stamp';
      return mine(cmd.client) ? null : `client ${cmd.client} is not node ${from}'s`;
    case 'disconnect': {
      const gen = cmd.gen ?? 0;
      const session = state.sessions.get(cmd.client);
      if (gen >= 1 && (session === undefined || gen < session.gen)) return null; // stale: the table ignores it
      return mine(cmd.client) ? null : `client ${cmd.client} is not node ${from}'s`;
    }
    default:
      return mine(cmd.client) ? null : `client ${cmd.client} is not node ${from}'s`;
  }
}
