/**
 * The proposals half of the replication seam: this node's writes owed a
 * reply, and when replies may go. A node proposes a write under a request
 * id of its own (Replication.propose); its answer comes from the entry
 * that carries it (the state machine's outcome, derived by the node), or,
 * for a write that made no entry, from answer() here: never both.
 *
 * Contract:
 *  - every proposal is answered once: from its entry, from answer(), or
 *    failed by failOwn / failUncommitted; a reply reflecting seq s is sent
 *    only once commit(s') with s' >= s was called [LP-11];
 *  - request ids rise, and never repeat across this node's runs where the
 *    log can hold a write twice (requestIdsFrom: a block reserved above
 *    every earlier run's; never from a clock);
 *  - threading: the node's thread.
 */
import type { Reply } from '../core/lock-table.js';

export interface Proposals {
  /** This node's clients' writes still owed a reply (waiting acquires too). */
  readonly owed: number;
  /** Everything up to here is committed. */
  readonly commitSeq: number;
  /** Answer this node's proposal `req` without an entry: it changed nothing (reflecting `seq`), or it failed (a string, seq 0). */
  answer(req: number, reply: Reply | string, seq: number): void;
  /** Fail every proposal still owed an answer, except those `keep` names. */
  failOwn(error: string, keep?: (req: number) => boolean): void;
  /** Replies derived from entries past the commit index will never be sent as they are: fail them (ClientConnection.failUncommitted). */
  failUncommitted(readError: string, writeError: string): void;
  /** Everything up to `seq` is committed: replies reflecting it may go. */
  commit(seq: number): void;
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
  /** The next request id nextRequestId() would give (not taken). */
  readonly requestIdsUsed: number;
  /** Request ids from here on are at least `first` (a block the replication reserved); never lowers them. */
  requestIdsFrom(first: number): void;
}
