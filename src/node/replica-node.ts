/**
 * A role-less node: a replica of the lock table
 * that applies committed entries through the pure state machine and
 * answers its own clients from them, whichever node sequences the writes.
 * What orders the writes is its Replication (replica/replication.ts);
 * leading is that replication's role, not this class's.
 *
 * Replies to this node's writes come from the log: the entry naming this
 * node and the request (`from`, `req`) gives its result, a grant of a
 * waiting acquire comes from the entry that frees the lock (its `wakes`),
 * and an acquire's timeout from the `timeout` entry, exactly as every other
 * node computes them (the table is deterministic). A write that changed
 * nothing has no entry; the replication answers it (Replica.answer). Each
 * reply carries the seq it reflects, and its connection sends it only once
 * the commit index reaches that seq [LP-11].
 *
 * Request ids rise per node, from `firstRequestId` (1: small integers,
 * cheap to key maps by and to encode). Where the log can hold a write
 * twice (etcd: one re-sent after failover), its replication filters the
 * duplicates by origin and request id, so there they come from blocks
 * reserved in etcd (requestIdsFrom), above any earlier run's: never from
 * a clock.
 *
 * Threading: the node's thread; the replication calls in on it.
 */
import { apply, legacyLogTime, type ClientId, type Command, type Outcome, type Reply, type TableState } from '../core/lock-table.js';
import type { Replica, Replication } from '../replica/replication.js';
import type { LogEntry } from '../replica/state-machine.js';
import type { ClientConnection, Ticket } from '../server/connection.js';
import { NodeBase, type NodeOptions, type NodeStats } from './node.js';
import { plural } from '../text.js';

/** The reply to a waiting acquire whose session the cluster ended while its connection was open (see sessionEnded). */
export const ERR_SESSION_ENDED = "this client's session was ended by the cluster (its node was taken for gone): its session locks are released and its wait is withdrawn [LP-8]; the connection closes";

/** A write of this node's client (its connection and ticket), or of an operator through the admin API (`done`), owed a reply. */
interface Own {
  conn: ClientConnection | null;
  ticket: Ticket | null;
  done: ((reply: Reply | string, seq: number) => void) | null;
  cmd: Command;
}

/** Applying an entry out of order: the replication broke its ordering guarantee. */
export class ReplicaOrderError extends Error {
  override name = 'ReplicaOrderError';
}

export class ReplicaNode extends NodeBase implements Replica {
  readonly replication: Replication;
  private applied_ = 0;
  private nextReq: number;
  /** This node's clients' writes owed a reply, by request id. */
  private readonly own = new Map<number, Own>();
  /** The request id of each client's acquire that may wait (one per client: LP-9). */
  private readonly waitingReq = new Map<ClientId, number>();

  /** @param replication makes this node's replication; called once, here. */
  /** @param firstRequestId where this node's request ids start (see the file comment) */
  constructor(opts: NodeOptions, replication: (replica: ReplicaNode) => Replication, firstRequestId = 1) {
    super(opts);
    this.nextReq = firstRequestId;
    this.replication = replication(this);
  }

  get seq(): number {
    return this.applied_;
  }

  get applied(): number {
    return this.applied_;
  }

  get owed(): number {
    return this.own.size;
  }

  get role(): 'leader' | 'follower' {
    return this.replication.leads ? 'leader' : 'follower';
  }

  protected roleClientEntries(): number {
    return this.own.size + this.waitingReq.size + this.replication.clientEntries();
  }

  // ---- this node's clients ----

  submit(conn: ClientConnection, ticket: Ticket, cmd: Command): void {
    const req = this.nextRequestId();
    this.own.set(req, { conn, ticket, done: null, cmd });
    if (cmd.op === 'acquire' && cmd.timeout !== 0) this.waitingReq.set(cmd.client, req);
    this.replication.propose(cmd, req);
  }

  endWait(client: ClientId, lock: string): void {
    // After the acquire, in proposal order; its answer comes from the log.
    this.replication.propose({ op: 'timeout', client, lock }, 0);
  }

  protected disconnect(conn: ClientConnection): void {
    // Its waiting acquire will never be answered now: nothing to wait for.
    const req = this.waitingReq.get(conn.id);
    if (req !== undefined) {
      this.waitingReq.delete(conn.id);
      this.own.delete(req);
    }
    // [LP-8] its session locks are released and its waiters withdrawn, in
    // order after its earlier writes; as the generation it is [LP-16].
    this.replication.propose(conn.gen === 0 ? { op: 'disconnect', client: conn.id } : { op: 'disconnect', client: conn.id, gen: conn.gen }, 0);
  }

  // ---- Replica: what the replication calls. The state machine (replica/state-machine.ts):
  // applyEntry, execute, skip, load; the proposals (replica/proposals.ts): answer, failOwn,
  // failUncommitted, commit, endSessions and the request ids. ----

  nextRequestId(): number {
    return this.nextReq++;
  }

  requestIdsFrom(first: number): void {
    this.nextReq = Math.max(this.nextReq, first);
  }

  /** The next request id, not taken: how far into its block this node is. */
  get requestIdsUsed(): number {
    return this.nextReq;
  }


  applyEntry(e: LogEntry): Outcome {
    if (e.seq !== this.applied_ + 1) throw new ReplicaOrderError(`${this.name}: entry ${e.seq} applied after ${this.applied_}`);
    this.applied_ = e.seq;
    const out = apply(this.state, e.cmd, e.at);
    this.clock.observe(e.at);
    this.noteChanges(e.seq, out.changes);
    this.derive(e.cmd, e.from, e.req, out, e.seq);
    return out;
  }

  execute(cmd: Command, at: number, from: number, req: number, logged: (seq: number, out: Outcome) => void): Outcome {
    const out = apply(this.state, cmd, at);
    this.clock.observe(at);
    const seq = out.changed ? ++this.applied_ : this.applied_;
    if (out.changed) {
      this.noteChanges(seq, out.changes);
      logged(seq, out);
    }
    this.derive(cmd, from, req, out, seq);
    return out;
  }

  /** Replies for this node's clients from an applied command (see the file comment). */
  private derive(cmd: Command, from: number, req: number, out: Outcome, seq: number): void {
    if (from === this.index && req !== 0 && out.reply !== null) this.answer(req, out.reply, seq);
    // A timeout's reply is the waiting acquire's; a wake's is the woken one's.
    if (cmd.op === 'timeout' && out.reply !== null) this.answerWaiter(cmd.client, out.reply, seq);
    for (const w of out.wakes) this.answerWaiter(w.client, w.reply, seq);
    if (cmd.op === 'resume' && out.reply?.op === 'resume' && out.reply.ok) this.superseded(cmd.target, out.reply.gen);
    if (cmd.op === 'disconnect') this.sessionEnded(cmd.client, cmd.gen ?? 0, seq);
  }

  /**
   * A committed disconnect of a connection still open here: not its own
   * (a connection that closes leaves `connections` before its disconnect
   * is proposed), so the cluster ended its session, e.g. a leader that
   * took this node's earlier run for gone. Its session locks are released
   * and its waiter withdrawn [LP-8]: the connection must not go on as if
   * it held them, and its waiting acquire would never be answered. That
   * acquire gets an error, what was read is answered, and the connection
   * closes.
   */
  private sessionEnded(client: ClientId, gen: number, seq: number): void {
    for (const c of this.connectionsOf(client)) {
      if (c.gen !== gen) continue;
      this.log.line('warn', `client ${client}'s session was ended by the cluster: closing ${c.remote}`);
      const req = this.waitingReq.get(client);
      if (req !== undefined) this.answer(req, `Error: ${ERR_SESSION_ENDED}`, seq);
      c.drain();
    }
  }

  endSessions(why: string): void {
    const all = [...this.connections];
    if (all.length > 0) this.log.line('warn', `${why} [LP-8]; closing ${plural(all.length, 'connection')}`);
    for (const c of all) {
      const req = this.waitingReq.get(c.id);
      if (req !== undefined) this.answer(req, `Error: ${ERR_SESSION_ENDED}`, 0);
      c.drain();
    }
  }

  answer(req: number, reply: Reply | string, seq: number): void {
    const w = this.own.get(req);
    if (w === undefined) return;
    this.own.delete(req);
    if (w.cmd.op === 'acquire' && this.waitingReq.get(w.cmd.client) === req) this.waitingReq.delete(w.cmd.client);
    const at = typeof reply === 'string' ? 0 : seq;
    if (w.conn !== null && w.ticket !== null) w.conn.resolve(w.ticket, reply, at);
    else w.done?.(reply, at);
  }

  /** Commit waits of admin writes: resolved once the commit index reaches their seq [LP-11]. */
  private adminWaits: Array<{ seq: number; done: () => void; fail: (err: string) => void }> = [];

  /**
   * An operator's write (the admin API: revoke), as this node's own
   * proposal; resolves with its reply once what it reflects is committed,
   * as a client's reply is sent then [LP-11]. A string reply is a failure
   * (`Error: …`), as a client would get.
   */
  admin(cmd: Command): Promise<Reply | string> {
    return new Promise((resolve) => {
      const req = this.nextRequestId();
      this.own.set(req, {
        cmd,
        conn: null,
        ticket: null,
        done: (reply, seq) => {
          if (typeof reply === 'string' || seq <= this.commitSeq) resolve(reply);
          else this.adminWaits.push({ seq, done: () => resolve(reply), fail: resolve });
        },
      });
      this.replication.propose(cmd, req);
    });
  }

  private answerWaiter(client: ClientId, reply: Reply, seq: number): void {
    const req = this.waitingReq.get(client);
    if (req !== undefined) this.answer(req, reply, seq);
  }

  failOwn(error: string, keep?: (req: number) => boolean): void {
    for (const req of [...this.own.keys()]) if (keep === undefined || !keep(req)) this.answer(req, `Error: ${error}`, 0);
  }

  skip(seq: number): void {
    if (seq !== this.applied_ + 1) throw new ReplicaOrderError(`${this.name}: entry ${seq} skipped after ${this.applied_}`);
    this.applied_ = seq;
  }

  load(state: TableState, seq: number): void {
    this.state = state;
    this.applied_ = seq;
    this.loadedAt(seq);
    this.clock.observe(state.at !== 0 ? state.at : legacyLogTime(state));
  }

  /** Admin writes waiting for a commit that will not come fail too (see NodeBase.failUncommitted). */
  override failUncommitted(readError: string, writeError: string): void {
    super.failUncommitted(readError, writeError);
    const waits = this.adminWaits;
    this.adminWaits = [];
    for (const w of waits) w.fail(`Error: ${writeError}`);
  }

  commit(seq: number): void {
    this.advanceCommit(seq);
    if (this.adminWaits.length === 0) return;
    const due = this.adminWaits.filter((w) => w.seq <= seq);
    this.adminWaits = this.adminWaits.filter((w) => w.seq > seq);
    for (const w of due) w.done();
  }

  override stats(): NodeStats {
    const s = super.stats();
    const acks = this.replication.followerAcks();
    if (acks !== undefined) s.followers = acks;
    return s;
  }

  /** Clients first (their disconnects still reach the log and the data dir), then the replication. */
  override async close(): Promise<void> {
    this.stopping = true;
    await super.close();
    await this.replication.close();
  }
}
