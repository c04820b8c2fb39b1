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
 * A secured etcd (etcd-access.ts): over https, with the CA and the client
 * certificate (etcd-gateway.ts). No auth token is sent: etcd does not
 * check auth on LeaseKeepAlive (tested on etcd 3.4 in
 * test/etcd-secure.test.ts: renewals without a token, and with a bogus
 * one, keep a lease granted by a user alive). A lease ID is itself the
 * capability to renew it, and leaving the token out keeps renewals free of
 * token expiry and of the authenticate round trip.
 *
 * Threading: the thread that made it. Callbacks run on it.
 */

import type { EtcdAccess } from './etcd-access.js';
import { gatewayPost } from './etcd-gateway.js';

/** While renewals are late, a round goes out this often, ms. */
const BURST_MS = 250;

/** A streaming RPC's answer through the gateway: `result`, or `error` (a unary RPC's error has `message` at the top). */
interface KeepAliveReply {
  result?: { TTL?: string; ID?: string };
  error?: { message?: string } | string;
  message?: string;
}

export class LeaseKeeper {
  private renewed: number;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private inFlight = 0;
  /** Why the last renewal that failed did (for the message when renewals stop being confirmed). */
  private failure: string | null = null;

  /**
   * Start renewing lease `id` of `ttlS` seconds through the etcd members
   * `access` names. `grantedAt`: when its grant was sent.
   * `onLost` is told once if etcd says the lease no longer exists.
   */
  constructor(
    private readonly access: EtcdAccess,
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

  /** Why the last renewal that failed since the last confirmed one failed (an error, or etcd's answer); null: none has. */
  lastFailure(): string | null {
    return this.failure;
  }

  private round(deadlineMs: number): void {
    const endpoints = this.access.endpoints;
    if (this.stopped || this.inFlight > endpoints.length * 4) return;
    const sent = Date.now();
    for (const url of endpoints) {
      this.inFlight++;
      gatewayPost(this.access, url, '/v3/lease/keepalive', { ID: this.id }, deadlineMs, { 'Grpc-Metadata-hasleader': 'true' })
        .then((r) => {
          const body = r.body as KeepAliveReply | null;
          if (r.status < 200 || r.status > 299 || body === null) {
            // No leader there, or it is shutting down: another member answers.
            const why = body?.message ?? (typeof body?.error === 'object' ? body.error.message : body?.error);
            this.failure = `${url}: HTTP ${r.status}${why === undefined ? '' : ` ${why}`}`;
            return;
          }
          const ttl = Number(body.result?.TTL ?? 0);
          if (body.result === undefined) this.failure = `${url}: ${JSON.stringify(body.error ?? body).slice(0, 200)}`; // a stream's error, sent with status 200
          if (ttl > 0) {
            this.renewed = Math.max(this.renewed, sent);
            this.failure = null; // what failed before this renewal no longer explains a late one
          }
          else if (body.result !== undefined && !this.stopped) {
            // Answered by the leader: the lease is gone (expired or revoked). No renewal can help.
            this.stop();
            this.onLost(`etcd lease ${this.id} has expired or was revoked`);
          }
        })
        .catch((err: unknown) => {
          // Unreachable, cut off, too slow, TLS refused: the other members, or the next round.
          this.failure = `${url}: ${(err as Error).message}`;
        })
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

/** `keeper`'s last renewal failure as the end of a message ('; the last renewal failed: …'), or ''. */
export function lastFailure(keeper: LeaseKeeper | null): string {
  const f = keeper?.lastFailure() ?? null;
  return f === null ? '' : `; the last renewal failed: ${f}`;
}
