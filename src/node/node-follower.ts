/**
 * A follower: a replica of the leader's table that answers reads itself and
 * forwards writes to the leader.
 *
 * On link it sends `hello` with the sequence number it has applied; the
 * leader answers with a snapshot, or (when the follower's state is a prefix
 * of its log and its ring still holds the rest) `resume` and the missing
 * entries, then the stream. Entries are applied strictly in sequence order
 * with the leader's time; a gap (an entry that is not last+1) means the
 * stream is broken, so the follower drops entries until a fresh snapshot
 * arrives. After each batch it acknowledges the last sequence number applied.
 *
 * Leader loss (issue 5): when the link breaks, the follower keeps serving
 * reads, keeps its in-flight writes and queues new ones, for up to
 * `leaderWaitMs`. If the supervisor links it to a new leader in that time,
 * it resumes, derives the results of every write the new leader's log
 * already holds, and sends the rest again in their order: each write is
 * applied and answered exactly once. Otherwise they fail with named errors.
 *
 * Replies to forwarded writes are derived from the log (codec.ts): applying
 * an entry gives the result of the forward it names, the grants of waiting
 * acquires and acquire timeouts, exactly as the leader computed them. Only a
 * write that changed nothing comes back as a `reply` frame. Either way the
 * reply is tagged with the sequence number it reflects and handed to the
 * connection, which sends it once the leader's commit index (sent in
 * `commit` frames) covers it; this replica has applied it by then [LP-11].
 *
 * Threading: the follower's worker thread.
 */
import { apply, restore, type ClientId, type Command, type Reply, type TableState } from '../core/lock-table.js';
import type { Frame } from '../codec/frame.js';
import type { Transport } from '../transport/transport.js';
import type { ClientConnection, Ticket } from './connection.js';
import { EntryRing } from './entry-ring.js';
import { NodeBase, type NodeOptions } from './node.js';

/** Named error text for writes that cannot reach the leader. */
export const ERR_LEADER_UNAVAILABLE = 'leader unavailable; the request was not applied';
export const ERR_LEADER_LOST = 'leader link lost before the reply; the request may or may not have been applied';
export const ERR_READ_UNCOMMITTED = 'leader lost before this lock\'s latest change was committed; it may or may not stand';
export const ERR_RESYNC = 'replication stream reset before the reply; the request may or may not have been applied';

/** How long writes are held for a new leader after the link breaks, by default. */
export const LEADER_WAIT_MS = 5000;

/** A forwarded write waiting for its result. */
export interface Inflight {
  conn: ClientConnection;
  ticket: Ticket;
  cmd: Command;
  /** Sent to a leader (if that link broke, it may have been applied there). */
  sent: boolean;
  /** Its entry is in this replica (an acquire that now waits). */
  applied: boolean;
}

/** What a promoted follower hands to the leader that replaces it (Leader.promote). */
export interface Handover {
  seq: number;
  ring: EntryRing;
  /** Writes and disconnects not yet in the log, in the order they were made. */
  replay: Array<{ cmd: Command; conn: ClientConnection | null; ticket: Ticket | null }>;
  /** Clients of this node whose acquire waits in the table. */
  waiting: Array<{ client: ClientId; conn: ClientConnection; ticket: Ticket }>;
}

export class Follower extends NodeBase {
  readonly role = 'follower' as const;
  private seq = 0;
  /** Applying the stream: the state is current as of `seq`. */
  private synced = false;
  /** The state is a valid prefix of the log (it was synced once), so a new link may resume from it. */
  private hasState = false;
  /**
   * The leader counts this follower toward commits (it sent `voter`), so
   * this replica holds every committed entry: the learner rule (issue 12
   * §3). Only a voter may be promoted. Set by the frame, which follows every
   * entry the leader had sent when it began to count this link; cleared
   * whenever the state is thrown away for a new snapshot.
   */
  private voter = false;
  /** After `resume`: the leader's seq then; in-flight writes are re-sent once applied up to it. */
  private resumeTo: number | null = null;
  /** A snapshot arriving in parts: its seq, the next part expected, the state so far. */
  private incoming: { seq: number; next: number; state: TableState; t0: number } | null = null;
  private nextReq = 1;
  private readonly inflight = new Map<number, Inflight>();
  /** Request id of each client's forwarded acquire that may wait (one per client: LP-9). */
  private readonly waitingReq = new Map<ClientId, number>();
  /** Forwards made while there was no usable link (req 0: a disconnect), sent in order on resync. */
  private outbox: Array<{ req: number; cmd: Command }> = [];
  /** Set while the link is broken and writes are held for a new leader. */
  private leaderless: NodeJS.Timeout | null = null;
  readonly ring = new EntryRing();
  private onSynced: (() => void) | null = null;
  /** Resolves at the first snapshot: only then does the follower take clients. */
  readonly firstSync = new Promise<void>((resolve) => {
    this.onSynced = resolve;
  });

  constructor(
    opts: NodeOptions,
    private link: Transport,
    private readonly incarnation: string,
    private readonly leaderWaitMs = LEADER_WAIT_MS,
  ) {
    super(opts);
    this.attach(link);
  }

  protected roleClientEntries(): number {
    return this.inflight.size + this.waitingReq.size;
  }

  get applied(): number {
    return this.seq;
  }

  private attach(link: Transport): void {
    this.link = link;
    link.onFrames((frames) => this.onFrames(link, frames));
    link.onClose((reason) => this.onLinkClosed(link, reason));
  }

  /** Ask the leader for state; call once the listener is up. */
  start(): void {
    if (!this.hasState) this.voter = false;
    this.link.send({ v: 1, type: 'hello', node: this.name, incarnation: this.incarnation, seq: this.hasState ? this.seq : null });
  }

  /** The leader is gone (supervisor, at failover): stop applying its stream; returns the seq applied and whether it may be promoted. */
  detach(): { seq: number; voter: boolean } {
    if (!this.link.closed) this.link.close();
    return { seq: this.seq, voter: this.voter && this.hasState };
  }

  /** Link to a new leader (failover): resume from this replica and re-send what is unanswered. */
  relink(link: Transport): void {
    if (!this.link.closed) this.link.close();
    this.attach(link);
    this.log.line('repl', `linked to a new leader; resuming from seq ${this.seq}`);
    this.start();
  }

  private get usable(): boolean {
    return this.synced && this.resumeTo === null && !this.link.closed;
  }

  submit(conn: ClientConnection, ticket: Ticket, cmd: Command): void {
    if (!this.usable && this.leaderless === null) {
      conn.resolve(ticket, `Error: ${ERR_LEADER_UNAVAILABLE}`, 0);
      return;
    }
    const req = this.nextReq++;
    const w: Inflight = { conn, ticket, cmd, sent: false, applied: false };
    this.inflight.set(req, w);
    if (cmd.op === 'acquire' && cmd.timeout !== 0) this.waitingReq.set(cmd.client, req);
    this.forward(req, cmd);
  }

  protected disconnect(conn: ClientConnection): void {
    // Its waiting acquire will never be granted now: nothing to wait for.
    const req = this.waitingReq.get(conn.id);
    if (req !== undefined) {
      this.waitingReq.delete(conn.id);
      this.inflight.delete(req);
    }
    // [LP-8] the leader releases its session locks and withdraws its waiters.
    // Sent after the connection's forwarded writes on the same FIFO link.
    this.forward(0, { op: 'disconnect', client: conn.id });
  }

  endWait(client: ClientId, lock: string): void {
    // After the acquire on the same FIFO link; its answer comes from the log.
    this.forward(0, { op: 'timeout', client, lock });
  }

  private forward(req: number, cmd: Command): void {
    if (!this.usable) {
      this.outbox.push({ req, cmd });
      return;
    }
    const w = this.inflight.get(req);
    if (w !== undefined) w.sent = true;
    this.link.send({ v: 1, type: 'forward', req, cmd });
  }

  private onFrames(link: Transport, frames: Frame[]): void {
    if (link !== this.link) return; // a link replaced since
    const before = this.seq;
    // A loaded snapshot is acknowledged even at an unchanged seq: the
    // leader counts this follower toward commits from that ack.
    let snapshotLoaded = false;
    for (const f of frames) {
      switch (f.type) {
        case 'snapshot': {
          // Parts load one after another into a new state; the old one (if
          // any) serves until the last part is in, then is replaced.
          if (f.part === 0) {
            // Every part but the last is as long as the first: size the table for all of them.
            this.incoming = { seq: f.seq, next: 0, state: restore(f.state, undefined, f.parts * f.state.count), t0: Date.now() };
          } else if (this.incoming === null || this.incoming.seq !== f.seq || this.incoming.next !== f.part) {
            this.log.line('error', `snapshot part ${f.part} of ${f.parts} at seq ${f.seq} out of order; asking for a new snapshot`);
            this.incoming = null;
            this.hasState = false;
            this.start();
            break;
          } else {
            restore(f.state, this.incoming.state);
          }
          this.incoming.next = f.part + 1;
          if (f.part + 1 < f.parts) break;
          const loaded = this.incoming;
          this.incoming = null;
          // The parts' names join the table's index in one sweep, here
          // rather than at the first client's check (string-map.ts).
          loaded.state.locks.settle();
          if (this.hasState) {
            // Entries between our state and this snapshot are skipped: any
            // write sent before may be among them, so its result is unknown.
            this.failInflight(ERR_RESYNC, (w) => w.sent);
          }
          this.state = loaded.state;
          this.seq = f.seq;
          // A voter again only when the leader says so (its `voter` follows the parts).
          this.voter = false;
          this.loadedAt(f.seq);
          snapshotLoaded = true;
          this.ring.reset(f.seq);
          this.synced = true;
          this.hasState = true;
          this.resumeTo = null;
          this.log.line('repl', `snapshot at seq ${f.seq}: ${this.state.locks.size} locks${f.parts > 1 ? ` (${f.parts} parts, loaded in ${Date.now() - loaded.t0} ms)` : ''}`);
          this.onSynced?.();
          this.onSynced = null;
          this.resynced();
          break;
        }
        case 'resume':
          if (f.seq !== this.seq) {
            this.log.line('error', `leader resumed at seq ${f.seq}, but this replica is at ${this.seq}; asking for a snapshot`);
            this.hasState = false;
            this.start();
            break;
          }
          this.synced = true;
          this.resumeTo = f.to;
          this.log.line('repl', `resumed at seq ${f.seq}; the leader is at ${f.to}`);
          break;
        case 'entry':
          if (!this.synced) break; // waiting for a snapshot after a gap
          if (f.seq !== this.seq + 1) {
            this.synced = false;
            this.resumeTo = null;
            this.log.line('error', `replication gap: expected seq ${this.seq + 1}, got ${f.seq}; resyncing`);
            this.voter = false;
            // A skipped entry may have carried an in-flight write's result.
            this.failInflight(ERR_RESYNC, (w) => w.sent);
            this.start();
            break;
          }
          this.applyEntry(f);
          break;
        case 'commit':
          this.advanceCommit(f.seq);
          break;
        case 'voter':
          this.voter = this.hasState;
          break;
        case 'reply':
          this.answer(f.req, f.reply, f.seq);
          break;
        default:
          this.log.line('error', `unexpected ${f.type} frame from the leader`);
      }
    }
    if (this.resumeTo !== null && this.seq >= this.resumeTo) {
      this.resumeTo = null;
      this.resynced();
    }
    if ((this.seq !== before || snapshotLoaded) && this.synced) this.link.send({ v: 1, type: 'ack', seq: this.seq });
  }

  /**
   * The stream is whole again: every entry the leader had when we linked is
   * applied, so the results of those writes are known. Send, in order, the
   * writes it does not have and the forwards made meanwhile.
   */
  private resynced(): void {
    if (this.leaderless !== null) {
      clearTimeout(this.leaderless);
      this.leaderless = null;
    }
    let resent = 0;
    for (const [req, w] of this.inflight) {
      if (!w.sent || w.applied) continue;
      this.link.send({ v: 1, type: 'forward', req, cmd: w.cmd });
      resent++;
    }
    const queued = this.outbox;
    this.outbox = [];
    for (const { req, cmd } of queued) {
      if (req !== 0 && !this.inflight.has(req)) continue; // its connection went away
      this.forward(req, cmd);
    }
    if (resent + queued.length > 0) this.log.line('repl', `re-sent ${resent} write(s) the leader had not applied, and ${queued.length} held meanwhile`);
  }

  private applyEntry(f: Extract<Frame, { type: 'entry' }>): void {
    const out = apply(this.state, f.cmd, f.at);
    this.seq = f.seq;
    this.noteChanges(f.seq, out.changes);
    this.ring.push(f.seq, f);
    // Results for this follower's clients, derived from the log (see above).
    if (f.from === this.index && f.req !== 0) {
      const w = this.inflight.get(f.req);
      if (w !== undefined) w.applied = true;
      if (out.reply !== null) this.answer(f.req, out.reply, f.seq);
    }
    if (f.cmd.op === 'timeout' && out.reply !== null) this.answerWaiter(f.cmd.client, out.reply, f.seq);
    for (const w of out.wakes) this.answerWaiter(w.client, w.reply, f.seq);
    if (!this.log.requests) return;
    for (const c of out.changes) {
      this.log.line('repl', c.kind === 'set' ? `UpdateLockmap ${c.lock} ${c.owner}` : `RemoveLockmap ${c.lock}`);
    }
  }

  /** Hand forward `req`'s result to its connection, which sends it once `seq` is committed. */
  private answer(req: number, reply: Reply, seq: number): void {
    const w = this.inflight.get(req);
    if (w === undefined) return;
    this.inflight.delete(req);
    if (w.cmd.op === 'acquire' && this.waitingReq.get(w.cmd.client) === req) this.waitingReq.delete(w.cmd.client);
    w.conn.resolve(w.ticket, reply, seq);
  }

  private answerWaiter(client: ClientId, reply: Reply, seq: number): void {
    const req = this.waitingReq.get(client);
    if (req !== undefined) this.answer(req, reply, seq);
  }

  private failInflight(err: string, which: (w: Inflight) => boolean = () => true): void {
    for (const [req, w] of this.inflight) {
      if (!which(w)) continue;
      this.inflight.delete(req);
      if (w.cmd.op === 'acquire' && this.waitingReq.get(w.cmd.client) === req) this.waitingReq.delete(w.cmd.client);
      w.conn.resolve(w.ticket, `Error: ${err}`, 0);
    }
  }

  private onLinkClosed(link: Transport, reason: string): void {
    if (link !== this.link) return; // replaced on purpose
    this.synced = false;
    this.resumeTo = null;
    if (this.stopping) {
      this.log.line('info', `leader link closed: ${reason}`);
      this.failInflight(ERR_LEADER_LOST);
      return;
    }
    this.log.line('error', `leader link closed: ${reason}; holding ${this.inflight.size} write(s) for up to ${this.leaderWaitMs} ms for a new leader`);
    if (this.leaderless !== null) clearTimeout(this.leaderless);
    this.leaderless = setTimeout(() => this.giveUp(), this.leaderWaitMs);
  }

  /** No new leader in time: fail what was held. */
  private giveUp(): void {
    this.leaderless = null;
    this.outbox = [];
    const n = this.inflight.size;
    this.failInflight(ERR_LEADER_UNAVAILABLE, (w) => !w.sent);
    this.failInflight(ERR_LEADER_LOST);
    // Replies applied here but never committed: none will be sent as they are.
    this.failUncommitted(ERR_READ_UNCOMMITTED, ERR_LEADER_LOST);
    this.log.line('error', `no new leader within ${this.leaderWaitMs} ms; failed ${n} held write(s)`);
  }

  /**
   * Give this node's listeners, connections and table to `next` (promotion,
   * Leader.promote) with what only a follower knows; this object is inert
   * afterwards.
   */
  handOver(next: NodeBase): Handover {
    this.stopping = true;
    if (this.leaderless !== null) clearTimeout(this.leaderless);
    this.leaderless = null;
    if (!this.link.closed) this.link.close();
    const replay: Handover['replay'] = [];
    const waiting: Handover['waiting'] = [];
    for (const w of this.inflight.values()) {
      if (w.applied) {
        if (w.cmd.op === 'acquire') waiting.push({ client: w.cmd.client, conn: w.conn, ticket: w.ticket });
      } else if (w.sent) {
        replay.push({ cmd: w.cmd, conn: w.conn, ticket: w.ticket });
      }
    }
    for (const { req, cmd } of this.outbox) {
      const w = this.inflight.get(req);
      if (req === 0) replay.push({ cmd, conn: null, ticket: null });
      else if (w !== undefined) replay.push({ cmd, conn: w.conn, ticket: w.ticket });
    }
    this.inflight.clear();
    this.waitingReq.clear();
    this.outbox = [];
    this.moveTo(next);
    return { seq: this.seq, ring: this.ring, replay, waiting };
  }

  override async close(): Promise<void> {
    this.stopping = true;
    if (this.leaderless !== null) clearTimeout(this.leaderless);
    this.leaderless = null;
    this.link.close();
    await super.close();
  }
}
