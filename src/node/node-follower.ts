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
 * A forwarded write's reply comes back tagged with the sequence number it
 * reflects; it is handed to the connection, which sends it once the
 * leader's commit index (sent in `commit` frames) covers it. Because the
 * reply travels on the same FIFO link after the entries it reflects, this
 * replica has applied them by then [LP-11].
 *
 * Threading: the follower's worker thread.
 */
import { apply, restore, type Command } from '../core/lock-table.js';
import type { Frame } from '../codec/frame.js';
import type { Transport } from '../transport/transport.js';
import type { ClientConnection, Ticket } from './connection.js';
import { NodeBase, type NodeOptions } from './node.js';

/** Named error text for writes that cannot reach the leader. */
export const ERR_LEADER_UNAVAILABLE = 'leader unavailable; the request was not applied';
export const ERR_LEADER_LOST = 'leader link lost before the reply; the request may or may not have been applied';

export class Follower extends NodeBase {
  readonly role = 'follower' as const;
  private seq = 0;
  private synced = false;
  private nextReq = 1;
  private readonly inflight = new Map<number, { conn: ClientConnection; ticket: Ticket }>();
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
    this.inflight.set(req, { conn, ticket });
    this.link.send({ v: 1, type: 'forward', req, cmd });
  }

  protected disconnect(conn: ClientConnection): void {
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
            this.start();
            break;
          }
          this.applyEntry(f.cmd, f.at);
          this.seq = f.seq;
          break;
        case 'commit':
          this.advanceCommit(f.seq);
          break;
        case 'reply': {
          const w = this.inflight.get(f.req);
          if (w === undefined) break;
          this.inflight.delete(f.req);
          w.conn.resolve(w.ticket, f.reply, f.seq);
          break;
        }
        default:
          this.log.line('error', `unexpected ${f.type} frame from the leader`);
      }
    }
    if (this.seq !== before && this.synced) this.link.send({ v: 1, type: 'ack', seq: this.seq });
  }

  private applyEntry(cmd: Command, at: number): void {
    const out = apply(this.state, cmd, at);
    if (!this.log.requests) return;
    for (const c of out.changes) {
      this.log.line('repl', c.kind === 'set' ? `UpdateLockmap ${c.lock} ${c.owner}` : `RemoveLockmap ${c.lock}`);
    }
  }

  private onLinkClosed(reason: string): void {
    this.synced = false;
    this.log.line(this.stopping ? 'info' : 'error', `leader link closed: ${reason}`);
    for (const { conn, ticket } of this.inflight.values()) conn.resolve(ticket, `Error: ${ERR_LEADER_LOST}`, 0);
    this.inflight.clear();
  }

  override async close(): Promise<void> {
    this.stopping = true;
    this.link.close();
    await super.close();
  }
}
