/**
 * The backup side of the in-process primary/backup (replication-port.ts):
 * a node that follows the primary's stream over its link and sends its
 * proposals there.
 *
 * On link it sends `hello` with the seq it has applied; the primary answers
 * with a snapshot, or (when this replica is a prefix of its log and its
 * ring still holds the rest) `resume` and the missing entries, then the
 * stream. Entries are applied strictly in order with the primary's time; a
 * gap means the stream is broken, so entries are dropped until a fresh
 * snapshot arrives. After each batch it acknowledges the last seq applied.
 *
 * Proposals: each is sent over the link (`forward`) and kept until its
 * entry is applied or its `reply` frame comes (a write that changed
 * nothing). Leader loss: when the link breaks, proposals are kept
 * and new ones queued for up to `leaderWaitMs`. Linked to a new primary in
 * that time, the backup resumes, learns from the entries which proposals
 * the new log already holds, and sends the rest again in their order, so
 * each write is applied and answered exactly once. Otherwise they fail with
 * named errors. Made the primary itself (failover), it hands what it still
 * owes (`detachForLead`) to its own sequencer, in the same order.
 *
 * Threading: the node's thread.
 */
import { aged, restore, waits, type Command, type TableState } from '../core/lock-table.js';
import type { Frame } from '../codec/frame.js';
import type { Transport } from '../transport/transport.js';
import type { EntryRing } from './entry-ring.js';
import type { Replica } from '../replica/replication.js';
import { plural } from '../text.js';

/** Named error text for writes that cannot reach the leader. */
export const ERR_LEADER_UNAVAILABLE = 'leader unavailable; the request was not applied';
export const ERR_LEADER_LOST = 'leader link lost before the reply; the request may or may not have been applied';
export const ERR_READ_UNCOMMITTED = 'leader lost before this lock\'s latest change was committed; it may or may not stand';
export const ERR_RESYNC = 'replication stream reset before the reply; the request may or may not have been applied';

/** How long writes are held for a new leader after the link breaks, by default. */
export const LEADER_WAIT_MS = 5000;

/** A proposal not yet in the log, in proposal order; `req`: its request id (0: no reply owed); `sent`: handed to a primary (which may have applied it). */
export interface Held {
  cmd: Command;
  req: number;
  sent: boolean;
  /** When it was proposed (monotonic): an acquire is sent with what is left of its timeout (aged) [LP-9]. */
  since: number;
}

export class PortBackup {
  /** Applying the stream: the replica is current as of its seq. */
  private synced = false;
  /** The replica is a valid prefix of the log (it was synced once), so a new link may resume from it. */
  private hasState = false;
  /**
   * The primary counts this backup toward commits (it sent `voter`), so
   * this replica holds every committed entry: the learner rule. Only a voter may be promoted. Cleared whenever the state is thrown
   * away for a new snapshot.
   */
  private voter = false;
  /** After `resume`: the primary's seq then; proposals are re-sent once applied up to it. */
  private resumeTo: number | null = null;
  /** A snapshot arriving in parts: its seq, the next part expected, the state so far. */
  private incoming: { seq: number; next: number; state: TableState; t0: number } | null = null;
  /** Proposals with a reply owed (req ≠ 0) not yet in the log, by request id, in proposal order. */
  private readonly pending = new Map<number, Held>();
  /** Proposals made while there was no usable link, sent in order on resync. */
  private outbox: Held[] = [];
  /** Set while the link is broken and writes are held for a new primary. */
  private leaderless: NodeJS.Timeout | null = null;
  private closing = false;
  /** Made the primary (detachForLead): the old link's news no longer concerns this node. */
  private detached = false;
  private onSynced: (() => void) | null = null;
  /** Resolves at the first snapshot: only then does the node take clients. */
  readonly firstSync = new Promise<void>((resolve) => {
    this.onSynced = resolve;
  });

  constructor(
    private readonly replica: Replica,
    private link: Transport,
    private readonly ring: EntryRing,
    private readonly incarnation: string,
    private readonly leaderWaitMs = LEADER_WAIT_MS,
  ) {
    this.attach(link);
  }

  get heldCount(): number {
    return this.pending.size + this.outbox.length;
  }

  private attach(link: Transport): void {
    this.link = link;
    link.onFrames((frames) => this.onFrames(link, frames));
    link.onClose((reason) => this.onLinkClosed(link, reason));
  }

  /** Ask the primary for state; call once the node's listener is up (and again after a gap). */
  start(): void {
    if (!this.hasState) this.voter = false;
    this.link.send({ v: 1, type: 'hello', node: this.replica.name, incarnation: this.incarnation, seq: this.hasState ? this.replica.seq : null, t: Math.round(performance.now()) });
  }

  /** The primary is gone (the supervisor, at failover): stop applying its stream; the seq applied, and whether this replica may be promoted. */
  detach(): { seq: number; voter: boolean } {
    if (!this.link.closed) this.link.close();
    return { seq: this.replica.seq, voter: this.voter && this.hasState };
  }

  /** Link to a new primary (failover): resume from this replica and re-send what is unanswered. */
  relink(link: Transport): void {
    if (!this.link.closed) this.link.close();
    this.attach(link);
    this.replica.log.line('repl', `linked to a new leader; resuming from seq ${this.replica.seq}`);
    this.start();
  }

  private get usable(): boolean {
    return this.synced && this.resumeTo === null && !this.link.closed;
  }

  propose(cmd: Command, req: number): void {
    if (!this.usable && this.leaderless === null && req !== 0) {
      this.replica.answer(req, `Error: ${ERR_LEADER_UNAVAILABLE}`, 0);
      return;
    }
    const h: Held = { cmd, req, sent: false, since: performance.now() };
    if (req !== 0) this.pending.set(req, h);
    if (!this.usable) this.outbox.push(h);
    else this.send(h);
  }

  private send(h: Held): void {
    h.sent = true;
    const now = performance.now();
    const cmd = aged(h.cmd, now - h.since);
    // `t` only where lateness matters: an acquire that may wait (link-delay.ts).
    this.link.send(waits(cmd) ? { v: 1, type: 'forward', req: h.req, cmd, t: Math.round(now) } : { v: 1, type: 'forward', req: h.req, cmd });
  }

  private onFrames(link: Transport, frames: Frame[]): void {
    if (link !== this.link || this.detached) return; // a link replaced since
    const before = this.replica.seq;
    // A loaded snapshot is acknowledged even at an unchanged seq: the
    // primary counts this backup toward commits from that ack.
    let snapshotLoaded = false;
    for (const f of frames) {
      switch (f.type) {
        case 'snapshot':
          if (this.snapshotPart(f)) snapshotLoaded = true;
          break;
        case 'resume':
          if (f.seq !== this.replica.seq) {
            this.replica.log.line('error', `leader resumed at seq ${f.seq}, but this replica is at ${this.replica.seq}; asking for a snapshot`);
            this.hasState = false;
            this.start();
            break;
          }
          this.synced = true;
          this.resumeTo = f.to;
          this.replica.log.line('repl', `resumed at seq ${f.seq}; the leader is at ${f.to}`);
          break;
        case 'entry':
          if (!this.synced) break; // waiting for a snapshot after a gap
          if (f.seq !== this.replica.seq + 1) {
            this.synced = false;
            this.resumeTo = null;
            this.replica.log.line('error', `replication gap: expected seq ${this.replica.seq + 1}, got ${f.seq}; resyncing`);
            this.voter = false;
            this.failSent(); // a skipped entry may have carried a proposal's result
            this.start();
            break;
          }
          this.applyEntry(f);
          break;
        case 'commit':
          this.replica.commit(f.seq);
          break;
        case 'voter':
          this.voter = this.hasState;
          break;
        case 'reply':
          this.pending.delete(f.req);
          this.replica.answer(f.req, f.reply, f.seq);
          break;
        default:
          this.replica.log.line('error', `unexpected ${f.type} frame from the leader`);
      }
    }
    if (this.resumeTo !== null && this.replica.seq >= this.resumeTo) {
      this.resumeTo = null;
      this.resynced();
    }
    if ((this.replica.seq !== before || snapshotLoaded) && this.synced) this.link.send({ v: 1, type: 'ack', seq: this.replica.seq, t: Math.round(performance.now()) });
  }

  /** One part of a snapshot; true when it was the last and the replica now holds it. */
  private snapshotPart(f: Extract<Frame, { type: 'snapshot' }>): boolean {
    // Parts load one after another into a new state; the old one (if any)
    // serves until the last part is in, then is replaced.
    if (f.part === 0) {
      // Every part but the last is as long as the first: size the table for all of them.
      this.incoming = { seq: f.seq, next: 0, state: restore(f.state, undefined, f.parts * f.state.count), t0: performance.now() };
    } else if (this.incoming === null || this.incoming.seq !== f.seq || this.incoming.next !== f.part) {
      this.replica.log.line('error', `snapshot part ${f.part} of ${f.parts} at seq ${f.seq} out of order; asking for a new snapshot`);
      this.incoming = null;
      this.hasState = false;
      this.start();
      return false;
    } else {
      restore(f.state, this.incoming.state);
    }
    this.incoming.next = f.part + 1;
    if (f.part + 1 < f.parts) return false;
    const loaded = this.incoming;
    this.incoming = null;
    // The parts' names join the table's index in one sweep, here rather
    // than at the first client's check (string-map.ts).
    loaded.state.locks.settle();
    // Entries between our state and this snapshot are skipped: any write
    // sent before may be among them, so its result is unknown.
    if (this.hasState) this.failSent();
    this.replica.load(loaded.state, f.seq);
    // A voter again only when the primary says so (its `voter` follows the parts).
    this.voter = false;
    this.ring.reset(f.seq);
    this.synced = true;
    this.hasState = true;
    this.resumeTo = null;
    this.replica.log.line('repl', `snapshot at seq ${f.seq}: ${plural(loaded.state.locks.size, 'lock')}${f.parts > 1 ? ` (${f.parts} parts, loaded in ${Math.round(performance.now() - loaded.t0)} ms)` : ''}`);
    this.onSynced?.();
    this.onSynced = null;
    this.resynced();
    return true;
  }

  private applyEntry(f: Extract<Frame, { type: 'entry' }>): void {
    if (f.from === this.replica.index && f.req !== 0) this.pending.delete(f.req); // in the log now
    const out = this.replica.applyEntry(f);
    this.ring.push(f.seq, f);
    if (!this.replica.log.requests) return;
    for (const c of out.changes) this.replica.log.line('repl', c.kind === 'set' ? `UpdateLockmap ${c.lock} ${c.owner}` : `RemoveLockmap ${c.lock}`);
  }

  /**
   * The stream is whole again: every entry the primary had when we linked
   * is applied, so the proposals still pending are those it does not have.
   * Send them, in order, then those queued meanwhile.
   */
  private resynced(): void {
    if (this.leaderless !== null) clearTimeout(this.leaderless);
    this.leaderless = null;
    const queued = new Set(this.outbox);
    let resent = 0;
    for (const h of this.pending.values()) {
      if (!h.sent || queued.has(h)) continue;
      this.send(h);
      resent++;
    }
    const outbox = this.outbox;
    this.outbox = [];
    for (const h of outbox) {
      if (h.req !== 0 && !this.pending.has(h.req)) continue; // answered meanwhile
      this.send(h);
    }
    if (resent + outbox.length > 0) this.replica.log.line('repl', `re-sent ${resent} write(s) the leader had not applied, and ${outbox.length} held meanwhile`);
  }

  /** Every reply owed for a proposal that reached a primary fails: its result is unknown. */
  private failSent(): void {
    const unsent = new Set<number>();
    for (const [req, h] of this.pending) if (!h.sent) unsent.add(req);
    for (const req of [...this.pending.keys()]) if (!unsent.has(req)) this.pending.delete(req);
    this.replica.failOwn(ERR_RESYNC, (req) => unsent.has(req));
  }

  private onLinkClosed(link: Transport, reason: string): void {
    if (link !== this.link || this.detached) return; // replaced on purpose
    this.synced = false;
    this.resumeTo = null;
    if (this.closing) {
      this.replica.log.line('info', `leader link closed: ${reason}`);
      this.pending.clear();
      this.outbox = [];
      this.replica.failOwn(ERR_LEADER_LOST);
      return;
    }
    this.replica.log.line('error', `leader link closed: ${reason}; holding ${this.replica.owed} write(s) for up to ${this.leaderWaitMs} ms for a new leader`);
    if (this.leaderless !== null) clearTimeout(this.leaderless);
    this.leaderless = setTimeout(() => this.giveUp(), this.leaderWaitMs);
  }

  /** No new primary in time: fail what was held. */
  private giveUp(): void {
    this.leaderless = null;
    const n = this.replica.owed;
    const unsent = [...this.pending].filter(([, h]) => !h.sent).map(([req]) => req);
    this.pending.clear();
    this.outbox = [];
    for (const req of unsent) this.replica.answer(req, `Error: ${ERR_LEADER_UNAVAILABLE}`, 0);
    this.replica.failOwn(ERR_LEADER_LOST);
    // Replies applied here but never committed: none will be sent as they are.
    this.replica.failUncommitted(ERR_READ_UNCOMMITTED, ERR_LEADER_LOST);
    this.replica.log.line('error', `no new leader within ${this.leaderWaitMs} ms; failed ${n} held write(s)`);
  }

  /**
   * This node becomes the primary (failover): stop following, and hand over
   * what is not in the log yet, in the order it must be applied: the
   * proposals sent to the old primary and not applied, then those queued.
   */
  detachForLead(): Held[] {
    this.detached = true;
    if (this.leaderless !== null) clearTimeout(this.leaderless);
    this.leaderless = null;
    const queued = new Set(this.outbox);
    const out: Held[] = [];
    for (const h of this.pending.values()) if (h.sent && !queued.has(h)) out.push(h);
    out.push(...this.outbox);
    this.pending.clear();
    this.outbox = [];
    if (!this.link.closed) this.link.close();
    return out;
  }

  close(): void {
    this.closing = true;
    if (this.leaderless !== null) clearTimeout(this.leaderless);
    this.leaderless = null;
    this.link.close();
  }
}
