/**
 * Resource limits: what one client may cost a node, so that
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
  /**
   * Locks the whole cluster may hold, sessions and leases (--max-locks): a
   * write that would make one more is refused with a named error before
   * the table's memory or etcd's store fills (lock-table.ts writeRefusal).
   */
  maxLocks: number;
  /** A partial line with no more bytes for this long closes the connection (--line-timeout ms). */
  lineTimeoutMs: number;
  /** A client that has not read its replies for this long is dropped (--slow-client-timeout ms). */
  slowClientMs: number;
  /**
   * With an auth token: a connection not authenticated this long after its
   * greeting is told so and closed, freeing its --max-clients slot
   * [LP-14, LP-15] (--auth-timeout ms).
   */
  authTimeoutMs: number;
  /** Client connections per source address, as ZooKeeper's maxClientCnxns; one more is refused as --max-clients refuses (--max-clients-per-source). */
  maxClientsPerSource: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = {
  maxClients: 10_000,
  maxLocksPerClient: 100_000,
  maxWaitersPerLock: 1_000,
  // Twice the million locks the memory bench holds; at about 200 bytes a
  // lock in etcd's snapshots and log, well inside etcd's 2 GiB quota.
  maxLocks: 2_000_000,
  lineTimeoutMs: 30_000,
  slowClientMs: 30_000,
  authTimeoutMs: 5_000,
  maxClientsPerSource: 2_000,
};

/** Messages, one place, so tests and the README quote the same words. */
export const tooManyClients = (max: number): string => `too many connections to this node (limit ${max}); try another node or later`;
export { tooManyLocks, tooManyLocksInCluster, tooManyWaiters } from '../core/lock-table.js';
export const LINE_TIMEOUT = 'incomplete line timed out';
export const tooManyFromSource = (source: string, max: number): string => `too many connections from ${source} (limit ${max} per source address); close one first`;
export const authTimedOut = (ms: number): string => `authentication timed out: no successful auth within ${ms} ms; closing`;
export const authBlocked = (retryMs: number): string => `too many failed auth attempts from this address; retry in ${Math.max(1, Math.ceil(retryMs / 1000))} s`;
