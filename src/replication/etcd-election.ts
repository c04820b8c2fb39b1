/**
 * Leader election on etcd: the recipe of etcd's client/v3/concurrency
 * (election.go). Each candidate puts a key under `election/` under a lease
 * of its own; the key with the lowest create revision leads; a candidate
 * is elected once every key created before its own is gone (deleted, or
 * its lease expired: its holder died or was cut off).
 *
 * dlock's own, not the etcd3 client's Campaign and ElectionObserver: those
 * renew their lease over one stream and wait on watches, each bound to one
 * etcd member. Behind a partition a member sends no RST, and those streams
 * hung: the majority side elected no leader for over 10 s
 * (partition.test.ts). Here the lease is kept by LeaseKeeper, and waiting
 * is polling: a small range read every POLL_MS, each with a deadline, on
 * whichever member the client picks (cheap: a few reads a second per
 * node, against etcd's thousands).
 *
 * Threading: the thread that made it. Ordering: an observer's onChange
 * calls come in the order its polls were answered.
 */
import type { Lease, Namespace } from 'etcd3';
import { withDeadline } from './deadline.js';
import type { EtcdAccess } from './etcd-access.js';
import { lastFailure, LeaseKeeper } from './etcd-lease.js';
import { jsonObject } from './etcd-value.js';

/** How often a candidate and an observer look again, ms. */
export const POLL_MS = 200;
/** A poll not answered within this long counts as failed (tried again at the next poll), ms. */
const POLL_DEADLINE_MS = 1000;
/** Any other call to etcd here, ms. */
export const CALL_DEADLINE_MS = 3000;

/** The campaign ended without this candidate leading (resigned, or its lease lost). */
export class NotCandidateError extends Error {
  override readonly name = 'NotCandidateError';
  readonly code = 'ERR_NOT_CANDIDATE';
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms).unref());

export class Candidate {
  private keeper: LeaseKeeper | null = null;
  private lease: Lease | null = null;
  private leaseId = '';
  private ended: string | null = null;
  private onLostCb: ((why: string) => void) | null = null;
  private watchdog: NodeJS.Timeout | null = null;

  constructor(
    private readonly ns: Namespace,
    private readonly ttlS: number,
    private readonly value: string,
    /** How to reach etcd's members, for renewals (LeaseKeeper). */
    private readonly access: EtcdAccess,
  ) {}

  /**
   * Campaign: resolves once elected, with the key (relative to the
   * namespace) and its create revision (the fencing token of this term);
   * rejects if the campaign ends first. After that, `onLost` is told once
   * if the lease is lost: etcd says so, or no renewal was confirmed for a
   * whole TTL (the key has expired by then, or will at any moment).
   */
  async campaign(onLost: (why: string) => void): Promise<{ key: string; createRevision: string }> {
    this.onLostCb = onLost;
    const lease = this.ns.lease(this.ttlS, { autoKeepAlive: false });
    this.lease = lease;
    const granting = performance.now(); // monotonic: renewals are intervals (etcd-lease.ts)
    // Deadlines on every call: one stuck on a member behind a partition
    // must not leave this node campaigning forever (or, worse, holding the
    // election key, renewed, while it waits).
    this.leaseId = await withDeadline(lease.grant(), CALL_DEADLINE_MS, 'granting the election lease');
    if (this.ended !== null) throw new NotCandidateError(this.ended);
    this.keeper = new LeaseKeeper(this.access, this.leaseId, this.ttlS, granting, (why) => this.end(why));
    // Give up after twice the TTL without a confirmed renewal: by then the
    // key has expired, unless etcd changed leaders meanwhile (a new etcd
    // leader extends every lease), which a TTL alone did not outlast under
    // partitions. Safety does not rest on this: a leader whose key is gone
    // cannot append (the guard), so it only decides how soon to try again.
    this.watchdog = setInterval(() => {
      const since = Math.round(performance.now() - (this.keeper?.renewedFrom() ?? 0));
      if (since > 2 * this.ttlS * 1000) this.end(`no election lease renewal confirmed for ${since} ms (ttl ${this.ttlS * 1000} ms)${lastFailure(this.keeper)}`);
    }, 100);
    this.watchdog.unref();
    const key = `election/${this.leaseId}`;
    const r = await withDeadline(this.ns.if(key, 'Create', '==', 0).then(this.ns.put(key).value(this.value).lease(this.leaseId)).else(this.ns.get(key)).commit(), CALL_DEADLINE_MS, 'entering the election').catch((err: unknown) => {
      this.release(); // its key, if the txn landed after all, goes with the lease
      throw err;
    });
    const createRevision = r.succeeded ? r.header.revision : (r.responses[0]?.response_range?.kvs?.[0]?.create_revision ?? '');
    if (createRevision === '') throw new NotCandidateError('the election key vanished as it was made');
    const before = String(BigInt(createRevision) - 1n);
    for (;;) {
      if (this.ended !== null) throw new NotCandidateError(this.ended);
      const older = await withDeadline(this.ns.getAll().prefix('election/').maxCreateRevision(before).limit(1).keys(), POLL_DEADLINE_MS, 'waiting for the leader to go').catch((err: unknown) => {
        if (this.ended !== null) throw new NotCandidateError(this.ended);
        return err as Error;
      });
      if (Array.isArray(older) && older.length === 0) break;
      await sleep(POLL_MS);
    }
    if (this.ended !== null) throw new NotCandidateError(this.ended);
    return { key, createRevision };
  }

  private end(why: string): void {
    if (this.ended !== null) return;
    this.ended = why;
    this.stopTimers();
    this.onLostCb?.(why);
  }

  private stopTimers(): void {
    this.keeper?.stop();
    if (this.watchdog !== null) clearInterval(this.watchdog);
    this.watchdog = null;
  }

  /** Stop campaigning or leading: the key goes at once (the lease revoked), so another can lead. */
  async resign(): Promise<void> {
    const was = this.ended;
    this.ended ??= 'resigned';
    this.stopTimers();
    const lease = this.lease;
    if (was === null && lease !== null && this.leaseId !== '') await withDeadline(lease.revoke(), POLL_DEADLINE_MS * 3, 'resigning');
  }

  /** Stop renewing, as a crash would: the key goes when its lease expires. */
  release(): void {
    this.ended ??= 'released';
    this.stopTimers();
  }
}

/**
 * Who leads: the value of the oldest key under `election/`, polled.
 * `onChange` gets the value now and at each change (undefined: nobody).
 */
export class LeaderObserver {
  private timer: NodeJS.Timeout | null = null;
  private last: string | undefined | null = null;
  private polling = false;

  constructor(
    private readonly ns: Namespace,
    private readonly onChange: (value: string | undefined) => void,
  ) {}

  /** Resolves after the first answer (or the first failure: polling goes on). */
  async start(): Promise<void> {
    await this.poll();
    this.timer = setInterval(() => void this.poll(), POLL_MS);
    this.timer.unref();
  }

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const r = await withDeadline(this.ns.getAll().prefix('election/').sort('Create', 'Ascend').limit(1).exec(), POLL_DEADLINE_MS, 'observing the election');
      const value = r.kvs[0]?.value.toString();
      if (this.timer === null && this.last !== null) return; // cancelled meanwhile
      if (value !== this.last) {
        this.last = value;
        this.onChange(value);
      }
    } catch (err) {
      // A member down or cut off: the next poll likely goes to another one.
      void err;
    } finally {
      this.polling = false;
    }
  }

  cancel(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.last = null;
  }
}

/** The election value (a node's, set by its campaign): who leads and where its link listens. */
export interface LeaderInfo {
  name: string;
  index: number;
  link: string;
}

/**
 * An election value as etcd holds it, checked (any byte from etcd is):
 * null for none, or for one that is not a LeaderInfo (then nobody is
 * known to lead, and the caller says so).
 */
export function parseLeaderInfo(value: string | undefined): LeaderInfo | null {
  if (value === undefined || value === '') return null;
  const v = jsonObject(value);
  if (v === null) return null;
  const link = v['link'];
  if (typeof v['name'] !== 'string' || !Number.isSafeInteger(v['index']) || (v['index'] as number) < 0 || typeof link !== 'string') return null;
  const at = link.lastIndexOf(':');
  const port = Number(link.slice(at + 1));
  if (at <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  return { name: v['name'], index: v['index'] as number, link };
}
