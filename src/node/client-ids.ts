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
 * node's worker that restarts keeps counting instead of reusing ids.
 * Threading: Atomics make concurrent allocation safe, though only one thread
 * (the node's worker) allocates from a given counter.
 */
export const MAX_NODE_INDEX = 98;

export function clientIdFor(nodeIndex: number, k: number): number {
  if (!Number.isInteger(nodeIndex) || nodeIndex < 0 || nodeIndex > MAX_NODE_INDEX) {
    throw new RangeError(`node index must be 0..${MAX_NODE_INDEX}, got ${nodeIndex}`);
  }
  if (!Number.isSafeInteger(k) || k < 1) throw new RangeError(`client ordinal must be >= 1, got ${k}`);
  return k <= 9999 ? (nodeIndex + 1) * 10000 + k : k * 1000 + (nodeIndex + 1);
}

/** The node index a client id was given by (inverse of clientIdFor). */
export function nodeOfClient(id: number): number {
  return id < 1_000_000 ? Math.floor(id / 10000) - 1 : (id % 1000) - 1;
}

export function newIdCounter(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4));
}

export class ClientIdAllocator {
  constructor(
    readonly nodeIndex: number,
    private readonly counter: Int32Array,
  ) {}

  next(): number {
    return clientIdFor(this.nodeIndex, Atomics.add(this.counter, 0, 1) + 1);
  }
}
