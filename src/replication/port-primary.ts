/**
 * The primary side of the in-process primary/backup (replication-port.ts):
 * the node that sequences writes.
 *
 * For every write (its own node's proposals, or a backup's forwards) it
 * applies the command to its replica first (Replica.execute), and if the
 * table changed gives it the next seq and sends it as an `entry` to every
 * backup: passive replication, so a write that changes nothing (a refused
 * preempt) costs no entry. A reply that reflects seq s is released only
 * when every backup that has its state has acknowledged s (the commit
 * index), so no client learns of a write such a backup does not have yet,
 * and any of them can take over (the replication rule). A backup
 * still loading a snapshot does not count until it acknowledges it, as a
 * Raft learner does not vote: a backup restarting next to a million locks
 * must not stop every write for the second its snapshot takes. With no
 * backup counting, commit = last seq (and, with a data dir, what is on disk).
 *
 * Lease expiry and acquire timeouts are decided here alone, by timers that
 * turn into ordinary logged `expire` / `timeout` commands.
 *
 * Threading: the node's thread. Ordering: commands are applied in the order
 * they arrive on this thread; entries reach each backup in seq order over
 * its FIFO link.
 */
import { aged, disconnectOf, homeOf, sessionHolders, writeRefusal, restore, snapshot, snapshotPart, type ClientId, type Command, type LockChange, type Outcome, type Reply, type Snapshot } from '../core/lock-table.js';
import { encodeFrame, type Frame, type Wire } from '../codec/frame.js';
import type { Store } from '../store/store.js';
import { StoreError } from '../store/store-file.js';
import { formatReply } from '../protocol/reply.js';
import type { Transport } from '../transport/transport.js';
import { nodeOfClient } from '../replica/client-ids.js';
import { Duties } from '../replica/duties.js';
import { DutyTimer } from './duty-timer.js';
import { plural } from '../text.js';
import type { EntryRing } from './entry-ring.js';
import type { Replica } from '../replica/replication.js';

/** Entries between snapshots on disk, at least (see flushStore). */
export const SNAPSHOT_EVERY = 100_000;
/** Locks per snapshot part: small enough that encoding one is a short pause for the primary's clients. */
export const SNAPSHOT_PART = 50_000;
/** How long the primary encodes snapshot parts in one turn before it lets its other clients in. */
const SNAPSHOT_SLICE_MS = 5;
/** How long a snapshot copied when a backup's link closed waits for its replacement (see prepareSnapshot). */
const READY_SNAPSHOT_MS = 10_000;

/** follower-i's index, or null for another name. */
const followerIndex = (name: string): number | null => (/^follower-(\d+)$/.test(name) ? Number(name.slice('follower-'.length)) : null);

interface BackupLink {
  transport: Transport;
  /** Name from its hello; null until then (not yet sent entries, not counted for commit). */
  name: string | null;
  /** Node index from the name (follower-i is i): the `from` of its forwards, and of its clients' ids. */
  index: number | null;
  acked: number;
  /**
   * Whether it holds back the commit index. A backup counts once it has its
   * state: at once when it resumes from its own, after acknowledging the
   * snapshot otherwise. So loading a big snapshot (a second for a million
   * locks) does not stop every write; see recomputeCommit.
   */
  counts: boolean;
  /** The snapshot seq it must acknowledge to count; null when none is owed. */
  snapshotSeq: number | null;
  /** Replaced by a newer link of the same backup: its close ends no sessions. */
  superseded: boolean;
  /**
   * While a snapshot goes out in parts: the frames for this link made
   * meanwhile, sent after its last part (the backup applies entries only on
   * top of the whole snapshot). Null otherwise.
   */
  held: Array<Frame | Wire> | null;
}

/** Where a write came from: this node (a request id, 0: none), or a backup's forward. */
type Source = { local: number } | { link: BackupLink; req: number; client: ClientId };

export function describeChange(c: LockChange, at: number): string {
  // A lease's end is log time (replica/log-clock.ts), not a time of day: shown as what is left of it at the entry's log time `at`.
  return c.kind === 'set' ? `${c.lock} ${c.owner} token=${c.token}${c.expiresAt === null ? '' : ` lease ${Math.max(0, c.expiresAt - at)} ms`}` : c.lock;
}

/** A replicated command as the primary's log shows it. */
export function describeCommand(cmd: Command): string {
  switch (cmd.op) {
    case 'preempt':
    case 'acquire':
      return `${cmd.op} ${(cmd.locks ?? [cmd.lock]).join(' ')}${cmd.shared === true ? ' shared' : cmd.limit !== undefined ? ` limit=${cmd.limit}` : ''}${cmd.ttl === null ? '' : ` ttl=${cmd.ttl}`}`;
    case 'renew':
      return `${cmd.op} ${cmd.lock} ttl=${cmd.ttl}`;
    case 'release':
      return `release ${(cmd.locks ?? [cmd.lock]).join(' ')}`;
    case 'disconnect':
      return 'disconnect';
    case 'expire':
      return `expire ${cmd.lock} token=${cmd.token}`;
    case 'timeout':
      return `timeout ${cmd.lock}`;
    case 'session':
      return 'session'; // never the hash
    case 'resume':
      return `resume ${cmd.target}`;
    case 'revoke':
      return `revoke ${cmd.lock} (admin)`;
    case 'floor':
      return `floor token=${cmd.token}`;
    case 'limits':
      return `limits ${cmd.limits.maxLocksPerClient} per client, ${cmd.limits.maxWaitersPerLock} waiters per lock${cmd.limits.maxLocks === undefined ? '' : `, ${cmd.limits.maxLocks} locks`}`;
    case 'sync':
      return 'sync';
  }
}

export class PortPrimary {
  private readonly links = new Set<BackupLink>();
  /** The sequencer's duties (lease ends, acquire timeouts, a departed backup's sessions), on log time. */
  private readonly duties: Duties;
  /** The one timer for the next duty; a million leases cost no timer objects (the table keeps them by end time, lock-map.ts). */
  private readonly dutyTimer: DutyTimer;
  /** A snapshot copied when a backup's link closed, for its replacement; dropped when used or after READY_SNAPSHOT_MS. */
  private ready: { seq: number; snap: Snapshot; copyMs: number; timer: NodeJS.Timeout } | null = null;
  private commitQueued = false;
  /** The log on disk (--data-dir), and the last seq it holds durably. */
  private store: Store | null = null;
  private durable = 0;
  private flushQueued = false;
  private closing = false;

  constructor(
    private readonly replica: Replica,
    /** The newest entries, for backups that resume instead of taking a snapshot (shared with the backup side, which filled it before a failover). */
    private readonly ring: EntryRing,
  ) {
    this.duties = new Duties(() => this.replica.state);
    this.duties.takeOver(); // a PortPrimary exists only on the primary
    this.dutyTimer = new DutyTimer(this.duties, () => this.replica.clock.now(), (cmd) => this.execute(cmd, { local: 0 }));
  }

  /** A proposal of this node. */
  propose(cmd: Command, req: number): void {
    this.execute(cmd, { local: req });
  }

  /**
   * Link a backup (its MessagePort, or any transport). It counts toward the
   * commit index once it has its state (see BackupLink.counts), or, with
   * `countsNow` (the surviving replicas relinked at failover, which have
   * their state already), from now on, before its hello: a new primary
   * answers nothing they might lack.
   */
  attachFollower(transport: Transport, name: string | null = null, countsNow = false): void {
    const link: BackupLink = { transport, name, index: name === null ? null : followerIndex(name), acked: 0, counts: countsNow, snapshotSeq: null, superseded: false, held: null };
    this.links.add(link);
    transport.onFrames((frames) => this.onFrames(link, frames));
    transport.onClose((reason) => {
      this.links.delete(link);
      this.replica.log.line(this.closing ? 'info' : 'warn', `${link.name ?? 'unnamed follower'} link closed: ${reason}`);
      if (!this.closing && !link.superseded && link.index !== null) this.dropClientsOf(link.index, link.name ?? 'follower');
      // It no longer holds the commit index back.
      this.recomputeCommit();
      if (!this.closing && !link.superseded && link.name !== null) setImmediate(() => this.prepareSnapshot());
    });
  }

  private onFrames(link: BackupLink, frames: Frame[]): void {
    for (const f of frames) {
      switch (f.type) {
        case 'hello':
          this.hello(link, f);
          break;
        case 'ack':
          if (f.seq > link.acked) link.acked = f.seq;
          if (!link.counts && link.snapshotSeq !== null && link.acked >= link.snapshotSeq) {
            link.counts = true;
            link.snapshotSeq = null;
            this.send(link, { v: 1, type: 'voter' });
            this.replica.log.line('repl', `${link.name ?? 'follower'} has its snapshot; it counts toward commits from seq ${link.acked}`);
          }
          break;
        case 'forward':
          if (this.replica.log.requests && f.req !== 0 && 'client' in f.cmd) {
            this.replica.log.line('req', `Request ${f.cmd.client} via ${link.name ?? 'follower'}: ${describeCommand(f.cmd)}`);
          }
          // [LP-9] an acquire's timeout less the time it was held up on the link (link-delay.ts).
          this.execute(f.t === undefined ? f.cmd : aged(f.cmd, link.transport.delay.lateness(f.t)), { link, req: f.req, client: 'client' in f.cmd ? f.cmd.client : 0 });
          break;
        default:
          this.replica.log.line('error', `unexpected ${f.type} frame from ${link.name ?? 'follower'}`);
      }
    }
    this.recomputeCommit();
  }

  private hello(link: BackupLink, f: Extract<Frame, { type: 'hello' }>): void {
    link.name = f.node;
    link.index = followerIndex(f.node);
    // A restarted backup can say hello before its old link's close reaches
    // this thread. Its new clients come only after this snapshot, so every
    // client of that index now is the old one's.
    for (const old of this.links) if (old !== link && old.index !== null && old.index === link.index) this.supersede(old);
    // Resume from the backup's own state when it is a prefix of our log
    // that the ring still covers (after failover); else a snapshot. All the
    // entries go out in this turn, before any later frame.
    const tail = f.seq === null ? null : this.ring.after(f.seq);
    if (f.seq !== null && tail !== null) {
      link.acked = f.seq;
      link.counts = true;
      this.send(link, { v: 1, type: 'resume', seq: f.seq, to: this.replica.seq });
      for (const e of tail) this.send(link, e);
      this.sendCommitAndVoter(link);
      this.replica.log.line('repl', `${f.node} linked; resumed from its seq ${f.seq} with ${tail.length} entries`);
    } else {
      // It counts once it acknowledges this seq (onFrames, ack), unless it
      // counted already (relinked at failover): then commits wait for it.
      link.acked = 0;
      if (!link.counts) link.snapshotSeq = this.replica.seq;
      this.sendSnapshot(link);
    }
  }

  /** Apply one command, replicate it if it changed anything, route the replies the log does not carry. */
  private execute(cmd: Command, source: Source): void {
    // Limits, decided here on the authoritative table, so they
    // hold exactly whichever node the writes come through; a refused write
    // changes nothing and is not logged.
    const refused = writeRefusal(this.replica.state, cmd, this.replica.limits);
    if (refused !== null) {
      this.deliver(source, { op: 'refused', message: refused });
      return;
    }
    const now = this.replica.clock.stamp(); // log time, not a wall clock (replica/log-clock.ts)
    const fwd = 'link' in source ? source : null;
    // A forward's origin is its backup's index; one from a link with no
    // index (not a follower-i) is answered by reply frames only.
    const from = fwd === null ? this.replica.index : (fwd.link.index ?? -1);
    const req = 'local' in source ? source.local : source.req;
    this.curCmd = cmd;
    this.curAt = now;
    this.curFrom = Math.max(0, from);
    this.curReq = from < 0 ? 0 : req;
    const out = this.replica.execute(cmd, now, from, req, this.logEntryOf);
    // Replies a backup derives from the entry need no frame; the log shows them all.
    if (fwd !== null && out.reply !== null && cmd.op !== 'timeout') {
      if (!out.changed || fwd.link.index === null) this.deliver(fwd, out.reply);
      else this.logResponse(fwd.client, fwd.link, out.reply);
    }
    if (this.replica.log.requests) {
      if (cmd.op === 'timeout' && out.reply !== null) this.logWaiter(cmd.client, out.reply);
      for (const w of out.wakes) this.logWaiter(w.client, w.reply);
    }
    const deadline = this.duties.applied(cmd, out, now);
    if (deadline !== null) this.dutyTimer.armBy(deadline);
  }

  /**
   * What execute() is applying, for logEntryOf, which the replica calls
   * back before anything else can run (before replies, which may let a
   * pipelined write in): so it is the command of this call, not a later one.
   */
  private curCmd: Command = { op: 'disconnect', client: 0 };
  private curAt = 0;
  private curFrom = 0;
  private curReq = 0;

  /** The entry for the command execute() just applied, which changed the table and took `seq`: logged, sent to every backup. */
  private readonly logEntryOf = (seq: number, applied: Outcome): void => {
    // Encoded once for every backup; names the proposal it answers.
    const entry = encodeFrame({ v: 1, type: 'entry', seq, at: this.curAt, cmd: this.curCmd, from: this.curFrom, req: this.curReq });
    this.ring.push(seq, entry);
    if (this.store !== null) this.logEntry(seq, entry);
    for (const link of this.links) if (link.name !== null) this.send(link, entry);
    for (const c of applied.changes) {
      if (this.replica.log.requests) this.replica.log.line('repl', c.kind === 'set' ? `broadcast new lock_map ${describeChange(c, this.curAt)}` : `broadcast to remove lock_map ${c.lock}`);
      if (c.kind === 'set' && c.expiresAt !== null) this.dutyTimer.armBy(c.expiresAt);
    }
    // With no backup linked the write is committed at once.
    this.recomputeCommit();
  };

  /** A reply the log does not carry: a refusal, or a write that changed nothing. */
  private deliver(source: Source, reply: Reply): void {
    if ('local' in source) {
      if (source.local !== 0) this.replica.answer(source.local, reply, this.replica.seq);
      return;
    }
    this.logResponse(source.client, source.link, reply);
    this.send(source.link, { v: 1, type: 'reply', req: source.req, seq: this.replica.seq, reply });
  }

  /** The walkthrough's "Response <client> via <node>" line for a backup's client (seed: the leader logs every response). */
  private logResponse(client: ClientId, link: BackupLink, reply: Reply): void {
    if (this.replica.log.requests) this.replica.log.line('reply', `Response ${client} via ${link.name ?? 'follower'}: ${formatReply(reply)}`);
  }

  /** The same line for a waiting acquire answered by a later entry (a grant, a timeout), when the waiter is a backup's client. */
  private logWaiter(client: ClientId, reply: Reply): void {
    const index = homeOf(this.replica.state, client, nodeOfClient);
    if (index === this.replica.index) return;
    for (const link of this.links) if (link.index === index) return this.logResponse(client, link, reply);
  }

  /**
   * A backup is gone, and every connection on it with it [LP-8]: release
   * its clients' session locks and withdraw their waiters, as if each had
   * disconnected. Leases survive. Client ids name their node (replica/client-ids.ts).
   */
  dropClientsOf(index: number, name: string): void {
    const gone = this.duties.sessionsEndedBy(index, nodeOfClient);
    if (gone.length === 0) return;
    this.replica.log.line('warn', `${name} is gone: ending the sessions of its ${plural(gone.length, 'client')}`);
    for (const cmd of gone) this.execute(cmd, { local: 0 });
  }

  /** Every frame to a backup goes through here, to wait behind a snapshot in parts. */
  private send(link: BackupLink, frame: Frame | Wire): void {
    if (link.held !== null) link.held.push(frame);
    else link.transport.send(frame);
  }

  /**
   * The table at this seq, to a backup that cannot resume. The columns are
   * copied out now (bulk copies of the table's arrays, the only pause for
   * other clients that grows with the table); the parts are then encoded
   * and sent a few per turn (SNAPSHOT_SLICE_MS), so a million locks do not
   * stop the primary for the whole encoding. Frames made meanwhile wait in
   * `held` and follow the last part.
   */
  private sendSnapshot(link: BackupLink): void {
    const t0 = performance.now();
    // The one copied when the old link closed, if the ring still holds every
    // entry since: those follow its parts, then what is made meanwhile.
    const ready = this.takeReady();
    const since = ready === null ? null : this.ring.after(ready.seq);
    const reused = ready !== null && since !== null;
    const { snap, seq, copyMs } = reused ? ready : { snap: snapshot(this.replica.state), seq: this.replica.seq, copyMs: Math.round(performance.now() - t0) };
    const count = snap.count;
    const parts = Math.max(1, Math.ceil(count / SNAPSHOT_PART));
    link.held = reused ? [...since] : [];
    const when = reused ? ` when a link closed, then ${since.length} entries` : '';
    this.replica.log.line('repl', `${link.name ?? 'follower'} linked; snapshot at seq ${seq} (${plural(count, 'lock')}${parts > 1 ? ` in ${parts} parts, copied in ${copyMs} ms${when}` : ''})`);
    const sendParts = (first: number): void => {
      if (!this.links.has(link) || this.closing) return; // the link closed meanwhile
      // As many parts as fit in a slice of this turn: a part encodes in
      // about 1.5 ms, and one per turn left the primary mostly waiting on
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
      if (parts > 1) this.replica.log.line('repl', `${link.name ?? 'follower'}: snapshot of ${count} locks sent in ${Math.round(performance.now() - t0)} ms`);
    };
    sendParts(0);
  }

  /**
   * After a snapshot or a resume, the commit index as it is now: the backup
   * holds back its reads of state newer than its commit index
   * (NodeBase.readSeq), and `commit` goes out only when it moves, which on
   * an idle cluster may be never. And, if this link counts already
   * (relinked at failover), `voter`: it follows every entry sent so far.
   */
  private sendCommitAndVoter(link: BackupLink): void {
    this.send(link, { v: 1, type: 'commit', seq: this.replica.commitSeq });
    if (link.counts) this.send(link, { v: 1, type: 'voter' });
  }

  /**
   * A backup's link closed: its worker died, and the supervisor is starting
   * another that will ask for a snapshot. Copy it now, while
   * that worker boots, instead of after its hello: the copy (about 100 ms
   * for a million locks here) then overlaps the boot rather than following
   * it. As a Raft leader sends its latest snapshot and the log after it,
   * sendSnapshot sends this one and the entries since, as long as the ring
   * holds them all. Only for tables of more than one part.
   */
  private prepareSnapshot(): void {
    if (this.closing || this.replica.state.locks.size <= SNAPSHOT_PART) return;
    this.takeReady();
    const t0 = performance.now();
    const snap = snapshot(this.replica.state);
    const timer = setTimeout(() => this.takeReady(), READY_SNAPSHOT_MS);
    timer.unref();
    this.ready = { seq: this.replica.seq, snap, copyMs: Math.round(performance.now() - t0), timer };
  }

  /** The ready snapshot, no longer kept. */
  private takeReady(): { seq: number; snap: Snapshot; copyMs: number } | null {
    const ready = this.ready;
    if (ready !== null) clearTimeout(ready.timer);
    this.ready = null;
    return ready;
  }

  private supersede(old: BackupLink): void {
    old.superseded = true;
    this.links.delete(old);
    this.replica.log.line('warn', `${old.name ?? 'follower'} linked again before its old link closed; closing the old one`);
    this.dropClientsOf(old.index as number, old.name ?? 'follower');
    old.transport.close();
  }

  /** Lease expiry and acquire timeouts from the table (after a restore or at failover). */
  armTimers(): void {
    this.duties.takeOver();
    this.dutyTimer.cancel();
    if (!this.closing) this.dutyTimer.arm();
  }

  /**
   * Commit = the lowest seq every counting backup has (and, with a data
   * dir, what is on disk). The commit frame goes out with whatever else
   * this turn sends on each link (the transport batches per turn), at most
   * once per turn.
   */
  recomputeCommit(): void {
    let commit = this.store === null ? this.replica.seq : this.durable;
    for (const link of this.links) if (link.counts && link.acked < commit) commit = link.acked;
    if (commit <= this.replica.commitSeq) return;
    this.replica.commit(commit);
    if (this.commitQueued) return;
    this.commitQueued = true;
    // Read commitSeq when the batch is encoded, so a later advance in the
    // same turn rides in the same frame.
    queueMicrotask(() => {
      this.commitQueued = false;
      const frame = encodeFrame({ v: 1, type: 'commit', seq: this.replica.commitSeq });
      for (const link of this.links) if (link.name !== null) this.send(link, frame);
    });
  }

  /** A failover's primary keeps logging to the data dir, starting from its own table. */
  adoptStore(store: Store): void {
    store.adopt(this.replica.seq, snapshot(this.replica.state));
    this.store = store;
    this.durable = this.replica.seq;
    this.replica.log.line('info', `took over the log in ${store.dir} at seq ${this.replica.seq}`);
  }

  /**
   * Restore the table from a data directory and keep logging to it. No connection survives a restart, so every session lock is
   * released and every waiter withdrawn [LP-8], as logged disconnects;
   * leases survive and their timers are armed (an expired one ends at once).
   */
  restoreFrom(store: Store): void {
    const r = store.load();
    if (r.snapshot !== null) {
      this.replica.load(restore(r.snapshot.state), r.snapshot.seq);
    } else if (r.entries.length > 0) {
      // Replaying from an empty table needs its first token, which only a snapshot holds.
      throw new StoreError(`${store.dir} has a log but no readable snapshot to start it from; move the directory away to start empty`);
    } else {
      // A new directory: record the empty table first, so the first token
      // (from the clock) is what a replay starts from [LP-7].
      store.checkpoint(0, snapshot(this.replica.state));
    }
    for (const e of r.entries) this.replica.applyEntry(e);
    this.store = store;
    this.durable = this.replica.seq;
    this.ring.reset(this.replica.seq);
    const state = this.replica.state;
    this.replica.log.line(
      'info',
      `restored from ${store.dir}: ${r.snapshot === null ? 'no snapshot' : `snapshot at seq ${r.snapshot.seq}`} + ${r.entries.length} entries: seq ${this.replica.seq}, ${state.locks.size} locks (${state.locks.leaseCount()} leases), next token ${state.nextToken}`,
    );
    if (r.cut !== null) this.replica.log.line('error', `cut ${r.cut.bytes} bytes of a torn or corrupt tail of ${r.cut.file} after seq ${r.cut.afterSeq}; entries in them are lost`);
    const gone = [...new Set([...sessionHolders(state), ...state.waiting.keys(), ...[...state.sessions].filter(([, s]) => s.open).map(([c]) => c)])].sort((a, b) => a - b);
    let locks = 0;
    for (const c of gone) locks += state.locks.sessionCount(c);
    for (const client of gone) this.execute(disconnectOf(state, client), { local: 0 });
    if (gone.length > 0) this.replica.log.line('warn', `released ${locks} session lock(s) and withdrew the waiters of ${gone.length} client(s) from before the restart`);
    this.armTimers();
    this.recomputeCommit();
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
    // A snapshot when the log since the last one is long relative to the
    // table, so its cost (proportional to the table) is spread over as many entries.
    const size = this.replica.state.locks.size;
    if (store.sinceSnapshot >= Math.max(SNAPSHOT_EVERY, 2 * size)) {
      const t0 = performance.now();
      store.checkpoint(this.replica.seq, snapshot(this.replica.state));
      this.replica.log.line('repl', `snapshot at seq ${this.replica.seq} written (${size} locks, ${Math.round(performance.now() - t0)} ms); older log removed`);
    }
  };

  followerAcks(): Record<string, number> {
    const acks: Record<string, number> = {};
    for (const link of this.links) if (link.name !== null) acks[link.name] = link.acked;
    return acks;
  }

  close(): void {
    this.closing = true;
    this.duties.stop();
    this.dutyTimer.cancel();
    this.takeReady();
    for (const link of this.links) link.transport.close();
    this.store?.close(); // everything answered is on disk already; this writes the rest
    this.store = null;
  }
}
