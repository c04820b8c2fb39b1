/**
 * Client ids [LP-4].
 *
 * Node n (leader 0, follower i is i) gives its k-th client:
 *   k <= 9999:  (n+1)·10000 + k        leader 10001…, follower-1 20001…
 *   k >= 10000: k·1000 + (n+1)          e.g. the leader's 10000th: 10000001
 * The first range ends below 1,000,000 for n <= 98, the second starts at
 * 10,000,001, and within it the last three digits name the node, so ids
 * never collide between nodes or ranges (documented in the README).
 *
 * The counter k lives in a SharedArrayBuffer owned by the main thread, so a
 * node's worker that restarts keeps counting instead of reusing ids. It is
 * a 64-bit integer (BigInt64Array): it never wraps, and every id made from
 * it is a safe integer (ClientIdAllocator checks), past 2^31 as below it.
 * Threading: Atomics make concurrent allocation safe, though only one thread
 * (the node's worker) allocates from a given counter.
 */
export const MAX_NODE_INDEX = 98;

export function clientIdFor(nodeIndex: number, k: number): number {
  if (!Number.isInteger(nodeIndex) || nodeIndex < 0 || nodeIndex > MAX_NODE_INDEX) {
    throw new RangeError(`node index must be 0..${MAX_NODE_INDEX}, got ${nodeIndex}`);
  }
  if (!Number.isSafeInteger(k) || k < 1) throw new RangeError(`client ordinal must be >= 1, got ${k}`);
  const id = k <= 9999 ? (nodeIndex + 1) * 10000 + k : k * 1000 + (nodeIndex + 1);
  if (!Number.isSafeInteger(id)) throw new RangeError(`client ordinal ${k} makes an id past 2^53`);
  return id;
}

/** The node index a client id was given by (inverse of clientIdFor). */
export function nodeOfClient(id: number): number {
  return id < 1_000_000 ? Math.floor(id / 10000) - 1 : (id % 1000) - 1;
}

/**
 * A node's client ordinal counter: slot 0, the ordinals handed out so far
 * (the next is one more); slot 1, the most it may hand out (0: no limit),
 * the end of what is reserved where ids must outlive a crash (etcd).
 */
export type IdCounter = BigInt64Array;

export function newIdCounter(): IdCounter {
  return new BigInt64Array(new SharedArrayBuffer(16));
}

/** Allow ordinals up to `limit` (a reservation's end); only ever raised. */
export function setOrdinalLimit(counter: IdCounter, limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`client ordinal limit must be a whole number >= 1, got ${limit}`);
  const now = Number(Atomics.load(counter, 1));
  if (limit > now) Atomics.store(counter, 1, BigInt(limit));
}

/** The ordinals a counter has handed out, as a Number (exact: below 2^53, see clientIdFor). */
export function ordinalsUsed(counter: IdCounter): number {
  return Number(Atomics.load(counter, 0));
}

/** Start a counter at `used` ordinals (a reservation's start; before any client connects). */
export function setOrdinalsUsed(counter: IdCounter, used: number): void {
  if (!Number.isSafeInteger(used) || used < 0) throw new RangeError(`client ordinal counter must start at a whole number >= 0, got ${used}`);
  Atomics.store(counter, 0, BigInt(used));
}

export class ClientIdAllocator {
  constructor(
    readonly nodeIndex: number,
    private readonly counter: IdCounter,
  ) {}

  /** The next client id, or null when the reservation is used up (the replication is reserving more: refuse, and the client retries). */
  next(): number | null {
    const limit = Atomics.load(this.counter, 1);
    if (limit !== 0n && Atomics.load(this.counter, 0) >= limit) return null;
    return clientIdFor(this.nodeIndex, Number(Atomics.add(this.counter, 0, 1n)) + 1);
  }
}
