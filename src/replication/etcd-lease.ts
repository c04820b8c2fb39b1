/**
 * Keeping an etcd lease alive, the way dlock needs it (issue 13): for a
 * node's liveness (etcd-members.ts) and for its election key
 * (etcd-election.ts).
 *
 * Not the etcd3 client's keepalive: that renews over one gRPC stream bound
 * to one member, and its channels to a member cut off by a partition hang
 * (no RST) until gRPC's keepalive and reconnect backoff give up, seconds
 * to minutes. Healthy nodes on the majority side of a partition
 * fail-stopped for want of a renewal while two members of three answered
 * (seen across network namespaces, on every other cut). Here each renewal
 * goes to every member at once, over etcd's HTTP gateway
 * (POST /v3/lease/keepalive, the same LeaseKeepAlive RPC, which members
 * forward to their leader), each request with its own deadline and the
 * require-leader header; one answer is enough. One round every sixth of
 * the TTL, and one every BURST_MS while the last confirmed renewal is
 * late.
 *
 * `renewedFrom()` is when the last round that etcd confirmed was *sent*:
 * etcd received it after that, so the lease lives at least TTL past it (a
 * lower bound that needs no clock agreement with etcd, only similar rates).
 *
 * Threading: the thread that made it. Callbacks run on it.
 */

/** While renewals are late, a round goes out this often, ms. */
const BURST_MS = 250;

interface KeepAliveReply {
  result?: { TTL?: string; ID?: string };
  error?: { message?: string };
}

export class LeaseKeeper {
  private renewed: number;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private inFlight = 0;

  /**
   * Start renewing lease `id` of `ttlS` seconds through the etcd members at
   * `endpoints` (client URLs). `grantedAt`: when its grant was sent.
   * `onLost` is told once if etcd says the lease no longer exists.
   */
  constructor(
    private readonly endpoints: string[],
    private readonly id: string,
    ttlS: number,
    grantedAt: number,
    private readonly onLost: (why: string) => void,
  ) {
    this.renewed = grantedAt;
    const everyMs = (ttlS * 1000) / 6;
    let ticks = 0;
    const roundEvery = Math.max(1, Math.round(everyMs / BURST_MS));
    this.timer = setInterval(() => {
      ticks++;
      const late = Date.now() - this.renewed > everyMs * 1.5;
      if (late || ticks % roundEvery === 0) this.round(everyMs);
    }, Math.min(everyMs, BURST_MS));
    this.timer.unref();
  }

  /** When the last renewal that etcd confirmed was sent (the grant, at first). */
  renewedFrom(): number {
    return this.renewed;
  }

  private round(deadlineMs: number): void {
    if (this.stopped || this.inFlight > this.endpoints.length * 4) return;
    const sent = Date.now();
    for (const url of this.endpoints) {
      this.inFlight++;
      fetch(`${url.replace(/\/+$/, '')}/v3/lease/keepalive`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'Grpc-Metadata-hasleader': 'true' },
        body: JSON.stringify({ ID: this.id }),
        signal: AbortSignal.timeout(Math.ceil(deadlineMs)),
      })
        .then(async (r) => {
          if (!r.ok) return; // no leader there, or it is shutting down: another member answers
          const body = (await r.json()) as KeepAliveReply;
          const ttl = Number(body.result?.TTL ?? 0);
          if (ttl > 0) this.renewed = Math.max(this.renewed, sent);
          else if (body.result !== undefined && !this.stopped) {
            // Answered by the leader: the lease is gone (expired or revoked). No renewal can help.
            this.stop();
            this.onLost(`etcd lease ${this.id} has expired or was revoked`);
          }
        })
        .catch((err: unknown) => void err) // unreachable, cut off, too slow: the other members, or the next round
        .finally(() => this.inFlight--);
    }
  }

  /** Stop renewing (the lease then expires on its own, as a crashed process's would, unless revoked). */
  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
