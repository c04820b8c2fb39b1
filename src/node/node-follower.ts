/**
 * A follower: a replica of the leader's table that answers reads itself and
 * forwards writes to the leader.
 *
 * On link it sends `hello`; the leader answers with a snapshot and then the
 * entry stream. Entries are applied strictly in sequence order with the
 * leader's time; a gap (an entry that is not last+1) means the stream is
 * broken, so the follower drops entries until a fresh snapshot arrives.
 * After each batch it acknowledges the last sequence number applied.
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
import { apply, restore, type ClientId, type Command, type Reply } from '../core/lock-table.js';
import type { Frame } from '../codec/frame.js';
import type { Transport } from '../transport/transport.js';
import type { ClientConnection, Ticket } from './connection.js';
import { NodeBase, type NodeOptions } from './node.js';

/** Named error text for writes that cannot reach the leader. */
export const ERR_LEADER_UNAVAILABLE = 'leader unavailable; the request was not applied';
export const ERR_LEADER_LOST = 'leader link lost before the reply; the request may or may not have been applied';
export const ERR_RESYNC = 'replication stream reset before the reply; the request may or may not have been applied';

/** A forwarded write waiting for its result. */
interface Inflight {
  conn: ClientConnection;
  ticket: Ticket;
  cmd: Command;
}

export class Follower extends NodeBase {
  readonly role = 'follower' as const;
  private seq = 0;
  private synced = false;
  private nextReq = 1;
  private readonly inflight = new Map<number, Inflight>();
  /** Request id of each client's forwarded acquire that may wait (one per client: LP-9). */
  private readonly waitingReq = new Map<ClientId, number>();
  private onSynced: (() => void) | null = null;
  /** Resolves at the first snapshot: only then does the follower take clients. */
  readonly firstSync = new Promise<void>((resolve) => {
    this.onSynced = resolve;
  });

  constructor(
    opts: NodeOptions,
    private readonly link: Transport,
    private readonly incarnation: string,
  ) {
    super(opts);
    link.onFrames((frames) => this.onFrames(frames));
    link.onClose((reason) => this.onLinkClosed(reason));
  }

  get applied(): number {
    return this.seq;
  }

  /** Ask the leader for state; call once the listener is up. */
  start(): void {
    this.link.send({ v: 1, type: 'hello', node: this.name, incarnation: this.incarnation });
  }

  submit(conn: ClientConnection, ticket: Ticket, cmd: Command): void {
    if (this.link.closed || !this.synced) {
      conn.resolve(ticket, `Error: ${ERR_LEADER_UNAVAILABLE}`, 0);
      return;
    }
    const req = this.nextReq++;
    this.inflight.set(req, { conn, ticket, cmd });
    if (cmd.op === 'acquire' && cmd.timeout !== 0) this.waitingReq.set(cmd.client, req);
    this.link.send({ v: 1, type: 'forward', req, cmd });
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
    this.link.send({ v: 1, type: 'forward', req: 0, cmd: { op: 'disconnect', client: conn.id } });
  }

  private onFrames(frames: Frame[]): void {
    const before = this.seq;
    for (const f of frames) {
      switch (f.type) {
        case 'snapshot':
          this.state = restore(f.state);
          this.seq = f.seq;
          this.synced = true;
          this.log.line('repl', `snapshot at seq ${f.seq}: ${this.state.locks.size} locks`);
          this.onSynced?.();
          this.onSynced = null;
          break;
        case 'entry':
          if (!this.synced) break; // waiting for a snapshot after a gap
          if (f.seq !== this.seq + 1) {
            this.synced = false;
            this.log.line('error', `replication gap: expected seq ${this.seq + 1}, got ${f.seq}; resyncing`);
            // A skipped entry may have carried an in-flight write's result.
            this.failInflight(ERR_RESYNC);
            this.start();
            break;
          }
          this.applyEntry(f);
          break;
        case 'commit':
          this.advanceCommit(f.seq);
          break;
        case 'reply':
          this.answer(f.req, f.reply, f.seq);
          break;
        default:
          this.log.line('error', `unexpected ${f.type} frame from the leader`);
      }
    }
    if (this.seq !== before && this.synced) this.link.send({ v: 1, type: 'ack', seq: this.seq });
  }

  private applyEntry(f: Extract<Frame, { type: 'entry' }>): void {
    const out = apply(this.state, f.cmd, f.at);
    this.seq = f.seq;
    // Results for this follower's clients, derived from the log (see above).
    if (f.from === this.index && f.req !== 0 && out.reply !== null) this.answer(f.req, out.reply, f.seq);
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

  private failInflight(err: string): void {
    for (const { conn, ticket } of this.inflight.values()) conn.resolve(ticket, `Error: ${err}`, 0);
    this.inflight.clear();
    this.waitingReq.clear();
  }

  private onLinkClosed(reason: string): void {
    this.synced = false;
    this.log.line(this.stopping ? 'info' : 'error', `leader link closed: ${reason}`);
    this.failInflight(ERR_LEADER_LOST);
  }

  override async close(): Promise<void> {
    this.stopping = true;
    this.link.close();
    await super.close();
  }
}
