/**
 * Keeping an etcd lease alive, the way dlock needs it (issue 13): for a
 * node's liveness (etcd-members.ts) and for its election key
 * (etcd-election.ts).
 *
 * Not the etcd3 client's keepalive loop: that one renews every third of
 * the TTL over one stream, bound to one member. When that member dies,
 * loses its Raft leader or is cut off by a partition (no RST: the stream
 * just hangs), a renewal can be missing for the whole TTL, and a healthy
 * node lost its lease when one etcd member of three went. Here, a renewal
 * goes out every sixth of the TTL, each on a new stream (on whichever
 * member the client picks), several in flight when some hang, and one that
 * fails fast (a member down, "no leader") is tried again within
 * RENEW_RETRY_MS.
 *
 * `renewedFrom()` is when the last renewal that etcd confirmed was *sent*:
 * etcd received it after that, so the lease lives at least TTL past it (a
 * lower bound that needs no clock agreement with etcd, only similar rates).
 *
 * Threading: the thread that made it. Callbacks run on it.
 */
import type { Lease } from 'etcd3';

/** Renewals in flight at most (one that hangs on a dead member must not stop the next). */
const MAX_RENEWALS_IN_FLIGHT = 3;
/** A renewal that failed is tried again after this long, ms. */
const RENEW_RETRY_MS = 100;

export class LeaseKeeper {
  private renewed: number;
  private inFlight = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  /**
   * Start renewing `lease` (granted, made with autoKeepAlive: false) of
   * `ttlS` seconds. `grantedAt`: when its grant was sent. `onLost` is told
   * once if etcd says the lease no longer exists (renewing cannot help).
   */
  constructor(
    private readonly lease: Lease,
    ttlS: number,
    grantedAt: number,
    private readonly onLost: (why: string) => void,
  ) {
    this.renewed = grantedAt;
    const everyMs = (ttlS * 1000) / 6;
    this.timer = setInterval(() => this.renew(everyMs), everyMs);
    this.timer.unref();
  }

  /** When the last renewal that etcd confirmed was sent (the grant, at first). */
  renewedFrom(): number {
    return this.renewed;
  }

  private renew(everyMs: number): void {
    if (this.inFlight >= MAX_RENEWALS_IN_FLIGHT || this.stopped) return;
    this.inFlight++;
    const sent = Date.now();
    // A renewal that hangs stops counting as in flight after a period, so
    // later ones go out; if it is answered after all, it still counts.
    let counted = true;
    const settle = (): void => {
      if (!counted) return;
      counted = false;
      this.inFlight--;
    };
    const late = setTimeout(settle, everyMs);
    this.lease
      .keepaliveOnce()
      .then(
        () => {
          this.renewed = Math.max(this.renewed, sent);
        },
        (err: Error) => {
          if (this.stopped) return;
          if (err.name === 'EtcdLeaseInvalidError') {
            this.stop();
            this.onLost(`etcd lease lost: ${err.message}`);
          } else {
            setTimeout(() => this.renew(everyMs), RENEW_RETRY_MS).unref();
          }
        },
      )
      .finally(() => {
        clearTimeout(late);
        settle();
      });
  }

  /** Stop renewing (the lease then expires on its own, as a crashed process's would, unless revoked). */
  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
