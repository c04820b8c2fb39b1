/**
 * Resource limits (issue 6 §2): what one client may cost a node, so that
 * no client starves another or grows a node's memory without bound
 * [LP-13, LP-14]. Every limit has a default here, a `dlock up` flag, and a
 * clear `Error: …` (or a logged close) when hit.
 *
 * Threading: plain data, copied into every worker.
 */
export interface Limits {
  /** Client connections per node; one more is told so and closed (--max-clients). */
  maxClients: number;
  /** Locks one client may hold (session locks and leases) (--max-locks-per-client). */
  maxLocksPerClient: number;
  /** Clients waiting in `acquire` on one lock (--max-waiters). */
  maxWaitersPerLock: number;
  /** A partial line with no more bytes for this long closes the connection (--line-timeout ms). */
  lineTimeoutMs: number;
  /** A client that has not read its replies for this long is dropped (--slow-client-timeout ms). */
  slowClientMs: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = {
  maxClients: 10_000,
  maxLocksPerClient: 100_000,
  maxWaitersPerLock: 1_000,
  lineTimeoutMs: 30_000,
  slowClientMs: 30_000,
};

/** Messages, one place, so tests and the README quote the same words. */
export const tooManyClients = (max: number): string => `too many connections to this node (limit ${max}); try another node or later`;
export { tooManyLocks, tooManyWaiters } from '../core/lock-table.js';
export const LINE_TIMEOUT = 'incomplete line timed out';
