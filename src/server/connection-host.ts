/**
 * What a client connection (connection.ts) needs from the node it is on:
 * the server's one seam to the layers above it. Implemented by NodeBase
 * (node/node.ts): ReplicaNode and EtcdNode. Nothing under src/server
 * imports a node, a replication engine or a host.
 *
 * Ordering: `submit` calls from one connection are applied by the leader in
 * call order. `resolve` for a ticket is called exactly once (possibly
 * synchronously inside `submit`), with the sequence number its reply
 * reflects; the connection then waits for `commitSeq` to reach it.
 * Threading: all on the node's thread.
 */
import type { ClientId, Command } from '../core/lock-table.js';
import type { Request } from '../protocol/request.js';
import type { AuthGate, AuthThrottle } from './auth.js';
import type { Limits } from './limits.js';
import type { ClientConnection, Ticket } from './connection.js';
import type { NodeMetrics } from './metrics.js';

/** Where a connection logs (replica/node-log.ts's NodeLog is one). */
export interface ConnectionLog {
  /** Log every request and reply. */
  readonly requests: boolean;
  line(kind: 'info' | 'conn' | 'req' | 'reply' | 'repl' | 'warn' | 'error', text: string): void;
}

export interface ConnectionHost {
  readonly name: string;
  /** This node's index: where a resumed client now lives [LP-16]. */
  readonly index: number;
  /** This node sequences writes (it leads); greetings say so when the name does not. */
  readonly leads: boolean;
  readonly log: ConnectionLog;
  /** Prometheus metrics (metrics.ts): each reply is counted and timed. */
  readonly metrics: NodeMetrics;
  /** Requests received (well-formed or not), for ops/s in views. */
  readonly counters: { requests: number };
  /** Resource limits. */
  readonly limits: Limits;
  /** The token clients must give first [LP-15], or null when none is needed. */
  readonly auth: AuthGate | null;
  /**
   * Failed `auth` and `resume` per source address, across every connection
   * of this node [LP-15, LP-16]: a blocked source is refused without a check.
   */
  readonly authThrottle: AuthThrottle;
  /** Replies reflecting sequence numbers up to this may be sent. */
  readonly commitSeq: number;
  /** Answer a read from this node's replica [LP-11]. */
  read(req: Extract<Request, { verb: 'check' | 'validate' }>): string;
  /** The commit index a read of `lock` must wait for before its reply may leave: no dirty reads [LP-11]. */
  readSeq(lock: string): number;
  /** Run a write; the answer arrives through `conn.resolve(ticket, …)`. */
  submit(conn: ClientConnection, ticket: Ticket, cmd: Command): void;
  /**
   * End `client`'s wait for `lock` now (it half-closed: LP-9), as its
   * deadline would: the acquire is answered through its own ticket, as a
   * timeout, unless it was granted first. Ordered after the client's
   * earlier writes.
   */
  endWait(client: ClientId, lock: string): void;
  /** [LP-19] Register `conn`'s watch; its answer arrives through `conn.resolveWatch(ticket, …)`, now if the lock is not in the state it names. */
  watch(conn: ClientConnection, ticket: Ticket, req: Extract<Request, { verb: 'watch' }>): void;
  /** [LP-2, LP-19] `conn`'s watch, if any, is answered as a timeout now (its client half-closed, or the node is stopping). */
  endWatch(conn: ClientConnection): void;
  /** Call `conn.flush()` when `commitSeq` next advances. */
  awaitCommit(conn: ClientConnection): void;
  /** The connection closed [LP-8]. */
  closed(conn: ClientConnection): void;
  /** The connection is client `conn.id` now, no longer `from` (a resume, LP-16). */
  renamed(conn: ClientConnection, from: ClientId): void;
}
