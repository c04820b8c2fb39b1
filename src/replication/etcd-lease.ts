/**
 * Keeping an etcd lease alive, the way dlock needs it: for a
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
 * `renewedFrom()` is when the last round that etcd confirmed was *sent*, on
 * this process's monotonic clock (performance.now): etcd received it after
 * that, so the lease lives at least TTL past it (a lower bound that needs
 * no clock agreement with etcd, only similar rates; a wall clock stepped
 * back or forward changes nothing here).
 *
 * A secured etcd (etcd-access.ts): over https, with the CA and the client
 * certificate (etcd-gateway.ts). No auth token is sent: etcd does not
 * check auth on LeaseKeepAlive (tested on etcd 3.4 in
 * test/etcd/etcd-secure.test.ts: renewals without a token, and with a bogus
 * one, keep a lease granted by a user alive). A lease ID is itself the
 * capability to renew it, and leaving the token out keeps renewals free of
 * token expiry and of the authenticate round trip.
 *
 * One etcd set-up refuses the gateway: client certificates required
 * (--client-cert-auth) and user auth enabled. etcd 3.4 then answers every
 * gateway call that comes with a certificate naming a CommonName with a 400
 * ("CommonName of client sending a request against gateway will be ignored
 * …"), since it cannot pass that name on as the user. With a client
 * certificate and a user both given, a keeper renews over gRPC instead
 * (GrpcRenewer): the same fan-out, one
 * etcd client per member, each renewal a LeaseKeepAlive stream of one
 * request with its own deadline, so a member cut off by a partition holds
 * nothing up either.
 *
 * Threading: the thread that made it. Callbacks run on it.
 */

import type { Etcd3 } from 'etcd3';
import type { EtcdAccess } from './etcd-access.js';
import { nodeEtcdClient } from './etcd-client.js';
import { gatewayPost } from './etcd-gateway.js';

/** What one renewal through one member came to: etcd's TTL for the lease (0: it is gone), or why it failed. */
type Renewal = { ttl: number } | { failure: string };


/**
 * Renewals over gRPC, one etcd client per member (made on first use,
 * closed by close()): each renewal opens a LeaseKeepAlive stream, writes
 * one request and ends it at the first answer or at its deadline.
 */
class GrpcRenewer {
  private readonly clients = new Map<string, Etcd3>();

  constructor(private readonly access: EtcdAccess) {}

  renew(url: string, id: string, deadlineMs: number): Promise<Renewal> {
    let client = this.clients.get(url);
    if (client === undefined) {
      client = nodeEtcdClient({ ...this.access, endpoints: [url] });
      this.clients.set(url, client);
    }
    const c = client;
    return new Promise<Renewal>((resolve) => {
      let done = false;
      let end: (() => void) | null = null;
      const finish = (r: Renewal): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        end?.();
        resolve(r);
      };
      const timer = setTimeout(() => finish({ failure: `${url}: no answer over gRPC within ${Math.round(deadlineMs)} ms` }), deadlineMs);
      c.leaseClient.leaseKeepAlive().then(
        (stream) => {
          end = () => stream.end();
          if (done) {
            stream.end();
            return;
          }
          stream.on('data', (r: { TTL?: string }) => finish({ ttl: Number(r.TTL ?? 0) }));
          stream.on('error', (err: Error) => finish({ failure: `${url}: ${err.message}` }));
          stream.write({ ID: id });
        },
        (err: unknown) => finish({ failure: `${url}: ${(err as Error).message}` }),
      );
    });
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

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
  /** Renewals over gRPC, where etcd's gateway refuses them (a client certificate with user auth: see the file comment); null: the gateway. */
  private grpc: GrpcRenewer | null;

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
    this.grpc = access.auth !== null && access.tls?.cert != null ? new GrpcRenewer(access) : null;
    const everyMs = (ttlS * 1000) / 6;
    let ticks = 0;
    const roundEvery = Math.max(1, Math.round(everyMs / BURST_MS));
    this.timer = setInterval(() => {
      ticks++;
      const late = performance.now() - this.renewed > everyMs * 1.5;
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
    const sent = performance.now();
    for (const url of endpoints) {
      this.inFlight++;
      (this.grpc === null ? this.viaGateway(url, deadlineMs) : this.grpc.renew(url, this.id, deadlineMs))
        .then((r) => {
          if ('failure' in r) {
            this.failure = r.failure;
            return;
          }
          if (r.ttl > 0) {
            this.renewed = Math.max(this.renewed, sent);
            this.failure = null; // what failed before this renewal no longer explains a late one
          } else if (!this.stopped) {
            // Answered by the leader: the lease is gone (expired or revoked). No renewal can help.
            this.stop();
            this.onLost(`etcd lease ${this.id} has expired or was revoked`);
          }
        })
        .finally(() => this.inFlight--);
    }
  }

  /** One renewal through `url`'s HTTP gateway. */
  private async viaGateway(url: string, deadlineMs: number): Promise<Renewal> {
    let r;
    try {
      r = await gatewayPost(this.access, url, '/v3/lease/keepalive', { ID: this.id }, deadlineMs, { 'Grpc-Metadata-hasleader': 'true' });
    } catch (err) {
      // Unreachable, cut off, too slow, TLS refused: the other members, or the next round.
      return { failure: `${url}: ${(err as Error).message}` };
    }
    const body = r.body as KeepAliveReply | null;
    if (r.status < 200 || r.status > 299 || body === null) {
      // No leader there, or it is shutting down: another member answers.
      const why = body?.message ?? (typeof body?.error === 'object' ? body.error.message : body?.error) ?? (r.text === '' ? undefined : r.text.slice(0, 200));
      return { failure: `${url}: HTTP ${r.status}${why === undefined ? '' : ` ${why}`}` };
    }
    if (body.result === undefined) return { failure: `${url}: ${JSON.stringify(body.error ?? body).slice(0, 200)}` }; // a stream's error, sent with status 200
    return { ttl: Number(body.result.TTL ?? 0) };
  }

  /** Stop renewing (the lease then expires on its own, as a crashed process's would, unless revoked). */
  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.grpc?.close();
    this.grpc = null;
  }
}

/** `keeper`'s last renewal failure as the end of a message ('; the last renewal failed: …'), or ''. */
export function lastFailure(keeper: LeaseKeeper | null): string {
  const f = keeper?.lastFailure() ?? null;
  return f === null ? '' : `; the last renewal failed: ${f}`;
}
