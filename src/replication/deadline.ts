/**
 * A deadline on a call to etcd. The etcd3 client's own (gRPC deadlines)
 * does not do: its retries reuse the deadline and fail at once, and a call
 * on a channel to a member behind a partition waits for TCP, minutes. So
 * the caller stops waiting after `ms`; the call may still complete, and
 * nobody is waiting for it then (its rejection is consumed here).
 *
 * Threading: any. Ordering: none.
 */
export class EtcdDeadlineError extends Error {
  override readonly name = 'EtcdDeadlineError';
  readonly code = 'ERR_ETCD_DEADLINE';
}

/**
 * How long a stopping node waits for etcd to take its goodbye (unused client
 * ids handed back, its live key deleted, its election key resigned): etcd
 * may be down, and a stop must not wait on it. What is not done then ends
 * on its own (the keys with their leases, within the node ttl).
 */
export const GOODBYE_MS = 1000;

export function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new EtcdDeadlineError(`${what}: etcd did not answer within ${ms} ms`)), ms);
  });
  p.catch((err: unknown) => void err);
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
