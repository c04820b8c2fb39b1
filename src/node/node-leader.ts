/**
 * The leader: the only node that applies writes to the authoritative table.
 *
 * For every write (its own clients' or forwarded by a follower) it runs the
 * pure state machine, and if the state changed gives the command the next
 * sequence number and sends it as an `entry` to every follower. A reply that
 * reflects sequence number s is released only when every follower that has
 * its state has acknowledged s (the commit index), so no client learns of a
 * write such a follower does not have yet, and any of them can take over
 * (issue 5: the replication rule). A follower still loading a snapshot does
 * not count until it acknowledges it, as a Raft learner does not vote: a
 * follower restarting next to a million locks must not stop every write
 * for the second its snapshot takes. With no follower counting, commit =
 * last sequence.
 *
 * Lease expiry and acquire timeouts are decided here alone, by timers that
 * turn into ordinary logged `expire` / `timeout` commands.
 *
 * Threading: the leader's worker thread. Ordering: commands are applied in
 * the order they arrive on this thread; entries reach each follower in
 * sequence order over its FIFO link.
 */
import { apply, deadlineOf, writeRefusal, restore, snapshot, snapshotPart, type ClientId, type Command, type LockChange, type Reply, type Snapshot } from '../core/lock-table.js';
import { encodeFrame, type Frame, type Wire } from '../codec/frame.js';
import type { Store } from '../store/store.js';
import { StoreError } from '../store/store-file.js';
import { formatReply } from '../protocol/reply.js';
import type { Transport } from '../transport/transport.js';
import { nodeOfClient } from './client-ids.js';
import type { ClientConnection, Ticket } from './connection.js';
import { NodeBase, type NodeOptions, type NodeStats } from './node.js';
import { TimerHeap } from './timer-heap.js';
import { EntryRing } from './entry-ring.js';
import type { Follower } from './node-follower.js';

/** Entries between snapshots, at least (see flushStore). */
export const SNAPSHOT_EVERY = 100_000;

/** follower-i's index, or null for another name. */
const followerIndex = (name: string): number | null => (/^follower-(\d+)$/.test(name) ? Number(name.slice('follower-'.length)) : null);

interface FollowerLink {
  transport: Transport;
  /** Name from its hello; null until then (not yet counted for commit). */
  name: string | null;
  /** Node index from the name (follower-i is i); decides its clients' ids. */
  index: number | null;
  acked: number;
  /**
   * Whether it holds back the commit index. A follower counts once it has
   * its state: at once when it resumes from its own, after acknowledging
   * the snapshot otherwise. So loading a big snapshot (a second for a
   * million locks) does not stop every write; see recomputeCommit.
   */
  counts: boolean;
  /** The snapshot seq it must acknowledge to count; null when none is owed. */
  snapshotSeq: number | null;
  /** Replaced by a newer link of the same follower: its close ends no sessions. */
  superseded: boolean;
  /**
   * While a snapshot goes out in parts: the frames for this link made
   * meanwhile, sent after its last part (the follower applies entries only
   * on top of the whole snapshot). Null otherwise.
   */
  held: Array<Frame | Wire> | null;
}

/** Locks per snapshot part: small enough that encoding one is a short pause for the leader's clients. */
export const SNAPSHOT_PART = 50_000;
/** How long the leader encodes snapshot parts in one turn before it lets its other clients in. */
const SNAPSHOT_SLICE_MS = 5;
/** How long a snapshot copied when a follower's link closed waits for its replacement (see prepareSnapshot). */
const READY_SNAPSHOT_MS = 10_000;

/**
 * Where a reply goes: a local connection, a follower's forwarded request, or
 * nowhere. A follower derives every reply to a write that changed the table
 * from the entry (codec.ts), so it gets a reply frame only otherwise.
 */
type Origin = { conn: ClientConnection; ticket: Ticket } | { link: FollowerLink; req: number; client: ClientId } | null;

/** An acquire's timeout: the waiting client and its lock. */
type Deadline = { client: ClientId; lock: string };

export function describeChange(c: LockChange): string {
  return c.kind === 'set' ? `${c.lock} ${c.owner} token=${c.token}${c.expiresAt === null ? '' : ` lease until ${new Date(c.expiresAt).toISOString().slice(11, 23)}`}` : c.lock;
}

/** A replicated command as the leader's log shows it. */
export function describeCommand(cmd: Command): string {
  switch (cmd.op) {
    case 'preempt':
    case 'acquire':
    case 'renew':
      return `${cmd.op} ${cmd.lock}${cmd.ttl === null ? '' : ` ttl=${cmd.ttl}`}`;
    case 'release':
      return `release ${cmd.lock}`;
    case 'disconnect':
      return 'disconnect';
    case 'expire':
      return `expire ${cmd.lock} token=${cmd.token}`;
    case 'timeout':
      return `timeout ${cmd.lock}`;
  }
}

export class Leader extends NodeBase {
  readonly role = 'leader' as const;
  private seq = 0;
  private readonly links = new Set<FollowerLink>();
  /** Clients waiting in acquire, and where their reply goes. */
  private readonly waiting = new Map<ClientId, Origin>();
  /** Acquire timeouts (few: one per waiting acquire). Lease ends come from the table itself (armLeases). */
  private readonly timers = new TimerHeap<Deadline>((d) => this.execute({ op: 'timeout', client: d.client, lock: d.lock }, null));
  /** The one timer for the first lease end, and the end it is armed for. */
  private leaseTimer: NodeJS.Timeout | null = null;
  private leaseArmedFor = Infinity;
  /** A snapshot copied when a follower's link closed, for its replacement; dropped when used or after READY_SNAPSHOT_MS. */
  private ready: { seq: number; snap: Snapshot; copyMs: number; timer: NodeJS.Timeout } | null = null;
  private commitQueued = false;
  /** The newest entries, for followers that resume instead of taking a snapshot. */
  private ring = new EntryRing();
  /** The log on disk (--data-dir), and the last seq it holds durably. */
  private store: Store | null = null;
  private durable = 0;
  private flushQueued = false;

  constructor(opts: NodeOptions) {
    super(opts);
  }

  get applied(): number {
    return this.seq;
  }

  submit(conn: ClientConnection, ticket: Ticket, cmd: Command): void {
    this.execute(cmd, { conn, ticket });
  }

  protected disconnect(conn: ClientConnection): void {
    this.execute({ op: 'disconnect', client: conn.id }, null);
  }

  endWait(client: ClientId, lock: string): void {
    // The reply goes to the acquire's origin (execute: timeout).
    this.execute({ op: 'timeout', client, lock }, null);
  }

  /**
   * Link a follower (its MessagePort, or any transport). It counts toward
   * the commit index once it has its state (see FollowerLink.counts), or,
   * with `countsNow` (the surviving replicas relinked at failover, which
   * have their state already), from now on, before its hello: a new leader
   * answers nothing they might lack.
   */
  attachFollower(transport: Transport, name: string | null = null, countsNow = false): void {
    const link: FollowerLink = { transport, name, index: name === null ? null : followerIndex(name), acked: 0, counts: countsNow, snapshotSeq: null, superseded: false, held: null };
    this.links.add(link);
    transport.onFrames((frames) => this.onFrames(link, frames));
    transport.onClose((reason) => {
      this.links.delete(link);
      this.log.line(this.stopping ? 'info' : 'warn', `${link.name ?? 'unnamed follower'} link closed: ${reason}`);
      if (!this.stopping && !link.superseded && link.index !== null) this.dropClientsOf(link.index, link.name ?? 'follower');
      // It no longer holds the commit index back.
      this.recomputeCommit();
      if (!this.stopping && !link.superseded && link.name !== null) setImmediate(() => this.prepareSnapshot());
    });
  }

  private onFrames(link: FollowerLink, frames: Frame[]): void {
    for (const f of frames) {
      switch (f.type) {
        case 'hello': {
          link.name = f.node;
          link.index = followerIndex(f.node);
          // A restarted follower can say hello before its old link's close
          // reaches this thread. Its new clients come only after this
          // snapshot, so every client of that index now is the old one's.
          for (const old of this.links) if (old !== link && old.index !== null && old.index === link.index) this.supersede(old);
          // Resume from the follower's own state when it is a prefix of our
          // log that the ring still covers (after failover); else a snapshot.
          // All the entries go out in this turn, before any later frame.
          const tail = f.seq === null ? null : this.ring.after(f.seq);
          if (f.seq !== null && tail !== null) {
            link.acked = f.seq;
            link.counts = true;
            this.send(link, { v: 1, type: 'resume', seq: f.seq, to: this.seq });
            for (const e of tail) this.send(link, e);
            this.sendCommitAndVoter(link);
            this.log.line('repl', `${f.node} linked; resumed from its seq ${f.seq} with ${tail.length} entries`);
          } else {
            // It counts once it acknowledges this seq (below, ack), unless it
            // counted already (relinked at failover): then commits wait for it.
            link.acked = 0;
            if (!link.counts) link.snapshotSeq = this.seq;
            this.sendSnapshot(link);
          }
          break;
        }
        case 'ack':
          if (f.seq > link.acked) link.acked = f.seq;
          if (!link.counts && link.snapshotSeq !== null && link.acked >= link.snapshotSeq) {
            link.counts = true;
            link.snapshotSeq = null;
            this.send(link, { v: 1, type: 'voter' });
            this.log.line('repl', `${link.name ?? 'follower'} has its snapshot; it counts toward commits from seq ${link.acked}`);
          }
          break;
        case 'forward':
          if (this.log.requests && f.req !== 0 && 'client' in f.cmd) {
            this.log.line('req', `Request ${f.cmd.client} via ${link.name ?? 'follower'}: ${describeCommand(f.cmd)}`);
          }
          this.execute(f.cmd, f.req === 0 ? null : { link, req: f.req, client: 'client' in f.cmd ? f.cmd.client : 0 });
          break;
        default:
          this.log.line('error', `unexpected ${f.type} frame from ${link.name ?? 'follower'}`);
      }
    }
    this.recomputeCommit();
  }

  /** Apply one command, replicate it if it changed anything, route replies. */
  private execute(cmd: Command, origin: Origin): void {
    const refused = this.refusal(cmd);
    if (refused !== null) {
      this.deliver(origin, { op: 'refused', message: refused }, false);
      return;
    }
    const now = Date.now();
    const out = apply(this.state, cmd, now);
    if (out.changed) {
      this.seq++;
      // Encoded once for every follower; names the forward it answers.
      const fwd = origin !== null && 'link' in origin ? origin : null;
      const entry = encodeFrame({ v: 1, type: 'entry', seq: this.seq, at: now, cmd, from: fwd?.link.index ?? 0, req: fwd?.req ?? 0 });
      this.ring.push(this.seq, entry);
      this.noteChanges(this.seq, out.changes);
      if (this.store !== null) this.logEntry(this.seq, entry);
      for (const link of this.links) if (link.name !== null) this.send(link, entry);
      for (const c of out.changes) {
        if (this.log.requests) this.log.line('repl', c.kind === 'set' ? `broadcast new lock_map ${describeChange(c)}` : `broadcast to remove lock_map ${c.lock}`);
        if (c.kind === 'set' && c.expiresAt !== null && c.expiresAt < this.leaseArmedFor) this.armLeases();
      }
      // With no follower linked the write is committed at once.
      this.recomputeCommit();
    }
    if (cmd.op === 'timeout') {
      if (out.reply !== null) this.deliver(this.takeWaiter(cmd.client), out.reply, out.changed);
    } else if (out.reply !== null) {
      this.deliver(origin, out.reply, out.changed);
    }
    if (out.waits !== null && cmd.op === 'acquire') {
      this.waiting.set(cmd.client, origin);
      const deadline = deadlineOf(cmd, now);
      if (deadline !== null) this.timers.add(deadline, { client: cmd.client, lock: cmd.lock });
    }
    if (cmd.op === 'disconnect') this.waiting.delete(cmd.client);
    for (const w of out.wakes) this.deliver(this.takeWaiter(w.client), w.reply, true);
  }

  /**
   * A write the limits refuse before it is applied (issue 6 §2): a new lock
   * for a client that holds --max-locks-per-client already (an acquire that
   * would wait counts: it may be granted later), or one more waiter on a
   * lock with --max-waiters. Decided here, on the authoritative table, so
   * the limits hold exactly, whichever node the writes come through; a
   * refused write changes nothing and is not logged.
   */
  private refusal(cmd: Command): string | null {
    return writeRefusal(this.state, cmd, this.limits);
  }

  /**
   * A follower is gone, and every connection on it with it [LP-8]: release
   * its clients' session locks and withdraw their waiters, as if each had
   * disconnected. Leases survive. Client ids name their node (client-ids.ts).
   */
  private dropClientsOf(index: number, name: string): void {
    const gone = new Set<ClientId>();
    for (const client of this.state.locks.sessionOwners()) if (nodeOfClient(client) === index) gone.add(client);
    for (const client of this.state.waiting.keys()) if (nodeOfClient(client) === index) gone.add(client);
    if (gone.size === 0) return;
    this.log.line('warn', `${name} is gone: ending the sessions of its ${gone.size} client(s)`);
    for (const client of [...gone].sort((a, b) => a - b)) this.execute({ op: 'disconnect', client }, null);
  }

  /** Every frame to a follower goes through here, to wait behind a snapshot in parts. */
  private send(link: FollowerLink, frame: Frame | Wire): void {
    if (link.held !== null) link.held.push(frame);
    else link.transport.send(frame);
  }

  /**
   * The table at this seq, to a follower that cannot resume. The columns are
   * copied out now (bulk copies of the table's arrays, the only pause for
   * other clients that grows with the table); the parts are then encoded
   * and sent a few per turn (SNAPSHOT_SLICE_MS), so a million locks do not
   * stop the leader for the whole encoding. Frames made meanwhile wait in
   * `held` and follow the last part.
   */
  private sendSnapshot(link: FollowerLink): void {
    const t0 = Date.now();
    // The one copied when the old link closed, if the ring still holds every
    // entry since: those follow its parts, then what is made meanwhile.
    const ready = this.takeReady();
    const since = ready === null ? null : this.ring.after(ready.seq);
    const reused = ready !== null && since !== null;
    const { snap, seq, copyMs } = reused ? ready : { snap: snapshot(this.state), seq: this.seq, copyMs: Date.now() - t0 };
    const count = snap.count;
    const parts = Math.max(1, Math.ceil(count / SNAPSHOT_PART));
    link.held = reused ? [...since] : [];
    const when = reused ? ` when a link closed, then ${since.length} entries` : '';
    this.log.line('repl', `${link.name ?? 'follower'} linked; snapshot at seq ${seq} (${count} locks${parts > 1 ? ` in ${parts} parts, copied in ${copyMs} ms${when}` : ''})`);
    const sendParts = (first: number): void => {
      if (!this.links.has(link) || this.stopping) return; // the link closed meanwhile
      // As many parts as fit in a slice of this turn: a part encodes in
      // about 1.5 ms, and one per turn left the leader mostly waiting on
      // its other clients' turns (a million locks took 300 ms to send).
      const until = performance.now() + SNAPSHOT_SLICE_MS;
      let part = first;
      do {
        link.transport.send({ v: 1, type: 'snapshot', seq, part, parts, state: snapshotPart(snap, part * SNAPSHOT_PART, (part + 1) * SNAPSHOT_PART) });
        part++;
      } while (part < parts && performance.now() < until);
      if (part < parts) {
        setImmediate(sendParts, part);
        return;
      }
      const held = link.held ?? [];
      link.held = null;
      for (const frame of held) link.transport.send(frame);
      this.sendCommitAndVoter(link);
      if (parts > 1) this.log.line('repl', `${link.name ?? 'follower'}: snapshot of ${count} locks sent in ${Date.now() - t0} ms`);
    };
    sendParts(0);
  }

  /**
   * After a snapshot or a resume, the commit index as it is now: the
   * follower holds back its reads of state newer than its commit index
   * (NodeBase.readSeq), and the leader sends `commit` only when it moves,
   * which on an idle cluster may be never. And, if this link counts already
   * (relinked at failover), `voter`: it follows every entry sent so far.
   */
  private sendCommitAndVoter(link: FollowerLink): void {
    this.send(link, { v: 1, type: 'commit', seq: this.commitSeq });
    if (link.counts) this.send(link, { v: 1, type: 'voter' });
  }

  /**
   * A follower's link closed: its worker died, and the supervisor is
   * starting another that will ask for a snapshot (issue 5 §1). Copy it now,
   * while that worker boots, instead of after its hello: the copy (about
   * 100 ms for a million locks here) then overlaps the boot rather than
   * following it. As a Raft leader sends its latest snapshot and the log
   * after it, sendSnapshot sends this one and the entries since, as long as
   * the ring holds them all. Only for tables of more than one part: a
   * smaller one copies in no time.
   */
  private prepareSnapshot(): void {
    if (this.stopping || this.state.locks.size <= SNAPSHOT_PART) return;
    this.takeReady();
    const t0 = Date.now();
    const snap = snapshot(this.state);
    const timer = setTimeout(() => this.takeReady(), READY_SNAPSHOT_MS);
    timer.unref();
    this.ready = { seq: this.seq, snap, copyMs: Date.now() - t0, timer };
  }

  /** The ready snapshot, no longer kept. */
  private takeReady(): { seq: number; snap: Snapshot; copyMs: number } | null {
    const ready = this.ready;
    if (ready !== null) clearTimeout(ready.timer);
    this.ready = null;
    return ready;
  }

  private supersede(old: FollowerLink): void {
    old.superseded = true;
    this.links.delete(old);
    this.log.line('warn', `${old.name ?? 'follower'} linked again before its old link closed; closing the old one`);
    this.dropClientsOf(old.index as number, old.name ?? 'follower');
    old.transport.close();
  }

  private takeWaiter(client: ClientId): Origin {
    const origin = this.waiting.get(client) ?? null;
    this.waiting.delete(client);
    return origin;
  }

  /** @param logged the reply comes from an entry just sent, from which the origin follower derives it */
  private deliver(origin: Origin, reply: Reply, logged: boolean): void {
    if (origin === null) return;
    if ('conn' in origin) {
      origin.conn.resolve(origin.ticket, reply, this.seq);
      return;
    }
    if (this.log.requests) this.log.line('reply', `Response ${origin.client} via ${origin.link.name ?? 'follower'}: ${formatReply(reply)}`);
    if (!logged || origin.link.index === null) this.send(origin.link, { v: 1, type: 'reply', req: origin.req, seq: this.seq, reply });
  }

  /**
   * Arm the lease timer for the table's first lease end. The table keeps
   * its leases by end time (lock-map.ts), so a million leases cost no
   * timer objects here, only this one Node timer.
   */
  private armLeases(): void {
    if (this.stopping) return;
    const next = this.state.locks.nextLeaseEnd();
    if (next === this.leaseArmedFor) return;
    if (this.leaseTimer !== null) clearTimeout(this.leaseTimer);
    this.leaseTimer = null;
    this.leaseArmedFor = next;
    if (next !== Infinity) this.leaseTimer = setTimeout(this.expireLeases, Math.max(0, next - Date.now()));
  }

  /** The leader decides expiry (issue 5 §2): every lease due now ends, each as a logged `expire`. */
  private readonly expireLeases = (): void => {
    this.leaseTimer = null;
    this.leaseArmedFor = Infinity;
    for (const [lock, token] of this.state.locks.dueLeases(Date.now())) this.execute({ op: 'expire', lock, token }, null);
    this.armLeases();
  };

  /**
   * Commit = the lowest sequence number every counting follower has. The
   * commit frame goes out with whatever else this turn sends on each link
   * (the transport batches per turn), at most once per turn.
   */
  private recomputeCommit(): void {
    // Answered only once on disk (with a data dir) and on every follower.
    let commit = this.store === null ? this.seq : this.durable;
    for (const link of this.links) if (link.counts && link.acked < commit) commit = link.acked;
    if (commit <= this.commitSeq) return;
    this.advanceCommit(commit);
    if (this.commitQueued) return;
    this.commitQueued = true;
    // Read commitSeq when the batch is encoded, so a later advance in the same
    // turn rides in the same frame.
    queueMicrotask(() => {
      this.commitQueued = false;
      const frame = encodeFrame({ v: 1, type: 'commit', seq: this.commitSeq });
      for (const link of this.links) if (link.name !== null) this.send(link, frame);
    });
  }

  /**
   * Failover (issue 5): make a leader of follower `f` in its own thread. It
   * takes the follower's listeners, connections, table, sequence number and
   * ring; counts the surviving followers' new links toward commits at once;
   * ends the sessions of the dead leader's clients [LP-8]; arms lease and
   * acquire-timeout timers from the table (leases survive); and applies the
   * follower's own writes that the old leader's log did not hold, in order.
   * Tokens continue from the table's counter [LP-7].
   */
  static promote(f: Follower, opts: NodeOptions, deadIndex: number, followers: Array<{ name: string; transport: Transport; counts: boolean }>, store: Store | null = null): Leader {
    const l = new Leader(opts);
    const h = f.handOver(l);
    l.seq = h.seq;
    l.ring = h.ring;
    if (store !== null) {
      store.adopt(l.seq, snapshot(l.state));
      l.store = store;
      l.durable = l.seq;
      l.log.line('info', `took over the log in ${store.dir} at seq ${l.seq}`);
    }
    l.log.line('warn', `promoted to leader at seq ${h.seq} (${l.state.locks.size} locks, next token ${l.state.nextToken})`);
    for (const { name, transport, counts } of followers) l.attachFollower(transport, name, counts);
    // Its own clients' waiting acquires first: ending the dead leader's
    // sessions below can grant them, and a grant finds its reply's way here
    // (issue 12 §1: a waiter woken at failover was granted and never told).
    for (const w of h.waiting) l.waiting.set(w.client, { conn: w.conn, ticket: w.ticket });
    l.dropClientsOf(deadIndex, 'the old leader');
    l.armTimers();
    for (const r of h.replay) l.execute(r.cmd, r.conn === null || r.ticket === null ? null : { conn: r.conn, ticket: r.ticket });
    if (h.replay.length > 0) l.log.line('repl', `applied ${h.replay.length} of its own write(s) the old leader's log did not hold`);
    l.recomputeCommit();
    return l;
  }

  /**
   * Restore the table from a data directory and keep logging to it (issue 5
   * §3). No connection survives a restart, so every session lock is released
   * and every waiter withdrawn [LP-8], as logged disconnects; leases survive
   * and their timers are armed (an expired one ends at once).
   */
  restoreFrom(store: Store): void {
    const r = store.load();
    if (r.snapshot !== null) {
      this.state = restore(r.snapshot.state);
      this.seq = r.snapshot.seq;
    } else if (r.entries.length > 0) {
      // Replaying from an empty table needs its first token, which only a snapshot holds.
      throw new StoreError(`${store.dir} has a log but no readable snapshot to start it from; move the directory away to start empty`);
    } else {
      // A new directory: record the empty table first, so the first token
      // (from the clock) is what a replay starts from [LP-7].
      store.checkpoint(0, snapshot(this.state));
    }
    for (const e of r.entries) {
      apply(this.state, e.cmd, e.at);
      this.seq = e.seq;
    }
    this.store = store;
    this.durable = this.seq;
    this.ring.reset(this.seq);
    const leases = this.state.locks.leaseCount();
    this.log.line(
      'info',
      `restored from ${store.dir}: ${r.snapshot === null ? 'no snapshot' : `snapshot at seq ${r.snapshot.seq}`} + ${r.entries.length} entries: seq ${this.seq}, ${this.state.locks.size} locks (${leases} leases), next token ${this.state.nextToken}`,
    );
    if (r.cut !== null) this.log.line('error', `cut ${r.cut.bytes} bytes of a torn or corrupt tail of ${r.cut.file} after seq ${r.cut.afterSeq}; entries in them are lost`);
    const gone = [...new Set([...this.state.locks.sessionOwners(), ...this.state.waiting.keys()])].sort((a, b) => a - b);
    let locks = 0;
    for (const c of gone) locks += this.state.locks.sessionCount(c);
    for (const client of gone) this.execute({ op: 'disconnect', client }, null);
    if (gone.length > 0) this.log.line('warn', `released ${locks} session lock(s) and withdrew the waiters of ${gone.length} client(s) from before the restart`);
    this.armTimers();
    this.recomputeCommit();
  }

  /** Lease expiry and acquire timeouts from the table (after a restore or a promotion). */
  private armTimers(): void {
    this.armLeases();
    for (const [lock, waiters] of this.state.locks.queueEntries()) {
      for (const w of waiters) if (w.deadline !== null) this.timers.add(w.deadline, { client: w.client, lock });
    }
  }

  private logEntry(seq: number, entry: Wire): void {
    (this.store as Store).append(seq, entry);
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(this.flushStore);
  }

  /** Group commit: every entry of this turn in one write and one fsync, then answer them. */
  private readonly flushStore = (): void => {
    this.flushQueued = false;
    const store = this.store;
    if (store === null) return;
    this.durable = store.flush();
    this.recomputeCommit();
    // A snapshot when the log since the last one is long relative to the table,
    // so its cost (proportional to the table) is spread over as many entries.
    if (store.sinceSnapshot >= Math.max(SNAPSHOT_EVERY, 2 * this.state.locks.size)) {
      const t0 = Date.now();
      store.checkpoint(this.seq, snapshot(this.state));
      this.log.line('repl', `snapshot at seq ${this.seq} written (${this.state.locks.size} locks, ${Date.now() - t0} ms); older log removed`);
    }
  };

  protected roleClientEntries(): number {
    return this.waiting.size;
  }

  override stats(): NodeStats {
    const s = super.stats();
    s.followers = {};
    for (const link of this.links) if (link.name !== null) s.followers[link.name] = link.acked;
    return s;
  }

  override async close(): Promise<void> {
    this.stopping = true;
    this.timers.stop();
    if (this.leaseTimer !== null) clearTimeout(this.leaseTimer);
    this.leaseTimer = null;
    this.takeReady();
    for (const link of this.links) link.transport.close();
    await super.close();
    this.store?.close(); // everything answered is on disk already; this writes the rest
    this.store = null;
  }
}
