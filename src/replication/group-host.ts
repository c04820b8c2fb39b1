/**
 * Runs the group protocol (pacifica.ts) for one node: the timers, the
 * links and the configuration manager around the pure core, as a Raft
 * node's run loop drives etcd-io/raft's `Ready`. The same code serves both
 * layouts; only the links (MessagePorts between threads, TCP between
 * hosts) and the manager (config/memory.ts, config/etcd.ts) differ.
 *
 * Contracts:
 *  - ordering: committed entries reach `apply` in seq order, each once;
 *    messages to one member leave in the order the core made them;
 *  - batching: proposals made in one event-loop turn go out in one
 *    prepare per follower (flushed by setImmediate; a microtask flush,
 *    one prepare per batch of frames, cost 18% of the writes across
 *    processes);
 *  - durability (with `store`): what each ready() hands out to persist is
 *    written at once; an ack is sent only once the disk holds what it
 *    covers, and the core is told how much the disk holds (persisted():
 *    a primary commits nothing past it). With `--fsync batch` one
 *    background fdatasync covers every write before it (group commit: the
 *    primary's sync overlaps its followers', and the event loop takes more
 *    writes meanwhile); with `always` each write is flushed; with `off`
 *    nothing waits. Prepares leave at once. Acks leave in the order the
 *    core made them. Compaction and an installed snapshot are synchronous
 *    checkpoints; start() restores the log before it reads the
 *    configuration;
 *  - time: every time given to the core is performance.now();
 *  - the manager: at most one proposal at a time (the core's rule); a
 *    manager error settles it as unreachable, and the core proposes again
 *    on a later tick; a configuration that does not parse is logged and
 *    never learned;
 *  - threading: one thread; close() stops every timer and watch.
 */
import type { ConfigManager, GroupConfig } from '../config/config.js';
import type { Frame, GroupEntry } from '../codec/frame.js';
import type { GroupSnapshot, GroupStore } from '../store/group-store.js';
import { Group, NotPrimaryError, type Entry, type Message, type Role, type Timing } from './pacifica.js';

/** What an entry carries besides its place: LogEntry's fields (`origin` is LogEntry's `from`). */
export type EntryData = Omit<GroupEntry, 'seq' | 'version'>;

/** A state machine's snapshot: the table, and each origin's last request id applied (the exactly-once rule's state). */
export type HostSnapshot = GroupSnapshot;

/** How a node reaches the others: by member id. */
export interface GroupLinks {
  /** Send a frame to `to`; a frame to a member with no link now is dropped (the protocol sends again). */
  send(to: string, frame: Frame): void;
}

export interface GroupHostOptions {
  id: string;
  timing: Timing;
  /** The fewest secondaries the primary takes writes with (pacifica.ts Group); default 0. */
  minSecondaries?: number;
  config: ConfigManager;
  links: GroupLinks;
  /** Committed entries, in order. */
  apply(entries: Array<Entry<EntryData>>): void;
  /**
   * The state machine's snapshots: `take` its state as of the last entry
   * applied, `load` one in place of it as of `seq` (a follower behind the
   * primary's compacted log). Without them the log is never compacted.
   */
  snapshots?: { take(): HostSnapshot; load(s: HostSnapshot, seq: number): void };
  /** Keep the log on disk (--data-dir): restored by start(), written before anything is sent or applied. */
  store?: GroupStore;
  /** Compact the log once this many entries were applied since the last compaction (default 10,000). */
  compactEvery?: number;
  /** A manager call with no answer within this long settles as no answer (ms, default 5000): the core then proposes again later. */
  configDeadlineMs?: number;
  /** The role or configuration changed. */
  onConfig?(role: Role, config: GroupConfig): void;
  /** After every step (a frame, a tick, a proposal, a manager's answer): what may change with the leases, such as whether this node may show its state. */
  stepped?(): void;
  log(kind: 'info' | 'warn' | 'error', text: string): void;
}

/**
 * An entry as a frame (and the disk) carries it: one object per log entry,
 * kept on the entry under a symbol (which JSON and the core never see), so
 * that the codec makes its text once for every follower it goes to
 * (encodeFrame). Log entries never change. A symbol rather than a WeakMap:
 * a WeakMap entry per write cost a set and a lookup each time, and the
 * collector's ephemeron pass.
 */
const AS_FRAME = Symbol('groupEntry');
type Carried = Entry<EntryData> & { [AS_FRAME]?: GroupEntry };
const toGroupEntry = (e: Carried): GroupEntry => {
  let g = e[AS_FRAME];
  if (g === undefined) Object.defineProperty(e, AS_FRAME, { value: (g = { seq: e.seq, version: e.version, at: e.data.at, cmd: e.data.cmd, origin: e.data.origin, req: e.data.req }) }); // not enumerable: the core's copies and comparisons ignore it
  return g;
};

/** The frame for a core message; a snapshot message needs the snapshot it stands for (null: none, no frame). */
export function toFrame(m: Message<EntryData>, snap: HostSnapshot | null = null): Frame | null {
  switch (m.type) {
    case 'prepare':
      return { v: 1, type: 'prepare', version: m.version, from: m.from, to: m.to, prevSeq: m.prevSeq, prevVersion: m.prevVersion, commit: m.commit, sent: m.sent, ackSeen: m.ackSeen, readBase: m.readBase, entries: m.entries.map(toGroupEntry) };
    case 'ack':
      return { v: 1, type: 'prepared', version: m.version, from: m.from, to: m.to, ok: m.ok, last: m.last, echo: m.echo, at: m.at, base: m.base };
    case 'join':
      return { v: 1, type: 'join', version: m.version, from: m.from, to: m.to };
    case 'snapshot':
      return snap === null ? null : { v: 1, type: 'install', version: m.version, from: m.from, to: m.to, seq: m.seq, seqVersion: m.seqVersion, sent: m.sent, ackSeen: m.ackSeen, state: snap.state, applied: snap.applied };
  }
}

/** The core's message for a group frame (checked by the codec), or null for any other frame. */
export function fromFrame(f: Frame): Message<EntryData> | null {
  switch (f.type) {
    case 'prepare':
      return { type: 'prepare', version: f.version, from: f.from, to: f.to, prevSeq: f.prevSeq, prevVersion: f.prevVersion, commit: f.commit, sent: f.sent, ackSeen: f.ackSeen, readBase: f.readBase, entries: f.entries.map(({ seq, version, ...data }) => ({ seq, version, data })) };
    case 'prepared':
      return { type: 'ack', version: f.version, from: f.from, to: f.to, ok: f.ok, last: f.last, echo: f.echo, at: f.at, base: f.base };
    case 'join':
      return { type: 'join', version: f.version, from: f.from, to: f.to };
    case 'install':
      return { type: 'snapshot', version: f.version, from: f.from, to: f.to, seq: f.seq, seqVersion: f.seqVersion, sent: f.sent, ackSeen: f.ackSeen };
    default:
      return null;
  }
}

export class GroupHost {
  readonly group: Group<EntryData>;
  private timer: NodeJS.Timeout | null = null;
  private stopWatch: (() => void) | null = null;
  private flushing = false;
  private closed = false;
  private lastJoin = -Infinity;
  private reading = false;
  private role: Role = 'learner';
  private version = 0;
  /** The snapshot the log was compacted to (what an install frame carries). */
  private snap: HostSnapshot | null = null;
  private appliedSeq = 0;
  /** With a store: the log's end as written (how much of it the disk holds is the core's persistedSeq). */
  private written = 0;
  private syncing = false;
  /** The lowest seq a write replaced while a sync was under way, less one: that sync covers no more than this of the log as it is now. */
  private cutWhileSyncing = Infinity;
  /** Acks waiting for the disk, in the order made. */
  private heldAcks: Array<{ last: number; to: string; frame: Frame }> = [];

  constructor(private readonly o: GroupHostOptions) {
    this.group = new Group<EntryData>(o.id, o.timing, o.store !== undefined, o.minSecondaries ?? 0);
  }

  /**
   * Read the log back from the store (before start()): the snapshot into
   * the state machine, the entries after it into the core, uncommitted.
   * Says what it found; null when the directory held nothing.
   */
  restore(): { seq: number; entries: number } | null {
    const store = this.o.store;
    if (store === undefined) return null;
    const r = store.load();
    if (r.cut !== null) this.o.log('warn', `${store.dir}/${r.cut.file}: ${r.cut.bytes} bytes after seq ${r.cut.afterSeq} did not read (a write cut short) and were cut off`);
    if (r.snapshot === null && r.entries.length === 0) return null;
    const base = { seq: r.snapshot?.seq ?? 0, version: r.snapshot?.version ?? 0 };
    if (r.snapshot !== null) {
      if (this.o.snapshots === undefined) throw new Error('a snapshot on disk, and no state machine to load it into');
      this.o.snapshots.load(r.snapshot.snap, base.seq);
      this.snap = r.snapshot.snap;
      this.appliedSeq = base.seq;
    }
    this.group.restore(base, r.entries.map(({ seq, version, ...data }) => ({ seq, version, data })));
    this.written = base.seq + r.entries.length; // read from the disk (the core counts it persisted)
    this.o.log('info', `restored from ${store.dir}: ${r.snapshot === null ? 'no snapshot' : `a snapshot at seq ${base.seq}`} and ${r.entries.length} entries after it, committed again once the group holds them`);
    return { seq: base.seq + r.entries.length, entries: r.entries.length };
  }

  /**
   * Learn the configuration and follow it. With none stored yet, this node
   * proposes one with itself as the only member (the first node of a new
   * cluster); whoever's proposal wins, the others learn it and join.
   */
  async start(): Promise<void> {
    let c = await this.o.config.current();
    if (c === null) c = (await this.o.config.propose(null, { version: 1, primary: this.o.id, secondaries: [] })).current;
    if (c !== null) this.group.learnConfig(c, performance.now());
    this.stopWatch = this.o.config.watch(
      (next) => {
        this.group.learnConfig(next, performance.now());
        this.pump();
      },
      (err) => this.o.log('error', `configuration: ${err.message}`),
    );
    const every = Math.max(5, Math.floor(this.o.timing.heartbeatMs / 2));
    this.timer = setInterval(() => this.tick(), every);
    this.timer.unref();
    this.pump();
  }

  /**
   * A secondary stopping on purpose: store the configuration without it.
   * Otherwise its primary holds writes until its lease from it lapses, and
   * a failover meanwhile carries it into the next configuration as a
   * member that will never answer (writes held again, for a lease). Like
   * the primary's own removals, it only shrinks the group, by
   * compare-and-swap on the version; the primary goes on counting
   * (core/token-space.ts) and ends the node's sessions as it learns it
   * left [LP-8]. Resolves true once a configuration without this node is
   * stored; false when it is not a secondary (the primary is replaced by
   * its secondaries' grace; a learner is not a member), or after three
   * lost races.
   *
   * Not with a data dir: a durable member restarted takes its earlier
   * run's place in the configuration (it holds every entry it acked), and
   * a group whose members all stop at once keeps every member's log that
   * way; had they left, only the primary's disk could bring it back.
   * Without one, a stopped member comes back as a new run either way.
   */
  async leave(): Promise<boolean> {
    if (this.o.store !== undefined) return false;
    for (let attempt = 0; attempt < 3; attempt++) {
      const c = await this.o.config.current();
      if (c === null || !c.secondaries.includes(this.o.id)) return false;
      const next = { version: c.version + 1, primary: c.primary, secondaries: c.secondaries.filter((s) => s !== this.o.id) };
      if ((await this.o.config.propose(c, next)).won) {
        this.o.log('info', `left: configuration ${next.version} without this node`);
        return true;
      }
    }
    return false;
  }

  /** The primary: store the same configuration under the next version (Group.renewVersion). */
  renewVersion(): boolean {
    const asked = this.group.renewVersion();
    if (asked) this.pump();
    return asked;
  }

  /** Append a write (the primary only); its entry reaches apply() once committed. Throws NotPrimaryError elsewhere. */
  propose(data: EntryData): number {
    const seq = this.group.propose(data, performance.now());
    this.flushSoon();
    return seq;
  }

  /**
   * Append a write if this node may now (the primary, with a lease from
   * every secondary), judged and appended at one reading of the clock
   * (`data` is made only then: a held write is stamped when it goes); its
   * seq, or null when it may not (the caller holds it). Checking with
   * canWrite() and then calling propose() reads the clock twice: a lease
   * that ends between the two readings (a process descheduled there, or
   * just continued after a pause) made propose() throw out of a frame's
   * handler and ended the process.
   */
  tryPropose(data: () => EntryData): number | null {
    const now = performance.now();
    if (!this.group.canWrite(now)) return null;
    const seq = this.group.propose(data(), now);
    this.flushSoon();
    return seq;
  }

  /** Once per event-loop turn: what followers lack, and a commit index that moved (Group.flush). */
  private flushSoon(): void {
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(() => {
      this.flushing = false;
      if (this.closed) return;
      this.group.flush(performance.now());
      this.pump();
    });
  }

  /** A frame from a link (already decoded and checked). */
  receive(f: Frame): void {
    const m = fromFrame(f);
    if (m === null || m.to !== this.o.id || this.closed) return;
    if (m.type === 'snapshot' && f.type === 'install') {
      // Loaded in this same turn when the core says so: the log restarts after it.
      if (this.o.snapshots !== undefined && this.group.installSnapshot(m, performance.now())) {
        const got = { state: f.state, applied: f.applied };
        this.o.log('warn', `caught up from ${m.from}'s snapshot at seq ${m.seq} (this node was behind its compacted log)`);
        this.o.snapshots.load(got, m.seq);
        this.snap = got;
        this.appliedSeq = m.seq;
        this.o.store?.checkpoint(m.seq, m.seqVersion, got, []);
        this.written = m.seq; // a checkpoint (the core counts it persisted)
        this.heldAcks = [];
      }
    }
    this.group.receive(m, performance.now());
    this.pump();
    if (m.type === 'ack') this.flushSoon(); // the commit it completed goes to the followers this turn
  }

  canWrite(): boolean {
    return this.group.canWrite(performance.now());
  }

  canRead(): boolean {
    return this.group.canRead(performance.now());
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.stopWatch?.();
    this.o.store?.close();
    await this.o.config.close();
  }

  private tick(): void {
    if (this.closed) return;
    const now = performance.now();
    this.group.tick(now);
    if (this.group.role === 'learner' && now - this.lastJoin >= 4 * this.o.timing.heartbeatMs) {
      this.lastJoin = now;
      this.group.join();
    }
    this.pump();
  }

  /** Do what the core asks, until it asks nothing more. */
  private pump(): void {
    if (this.closed) return;
    for (;;) {
      const r = this.group.ready();
      if (r.persist !== null) this.persist(r.persist.prevVersion, r.persist.entries);
      for (const m of r.messages) {
        const f = toFrame(m, this.snap);
        if (f === null) this.o.log('error', `no snapshot to send ${m.to}`);
        else if (this.o.store !== undefined && m.type === 'ack' && m.ok && (m.last > this.group.persistedSeq || this.heldAcks.length > 0)) this.heldAcks.push({ last: m.last, to: m.to, frame: f });
        else this.o.links.send(m.to, f);
      }
      if (r.committed.length > 0) {
        this.o.apply(r.committed);
        this.appliedSeq = (r.committed[r.committed.length - 1] as Entry<EntryData>).seq;
      }
      if (r.propose !== null) this.proposeConfig(r.propose.expected, r.propose.next);
      if (r.needConfig) this.readConfig();
      this.noticeRole();
      if (r.persist === null && r.messages.length === 0 && r.committed.length === 0 && r.propose === null) break;
    }
    this.o.stepped?.();
    // Between two ready()s, as compact() requires.
    const s = this.o.snapshots;
    if (s !== undefined && this.appliedSeq - this.group.compactedTo >= (this.o.compactEvery ?? 10_000)) {
      this.snap = s.take();
      this.o.store?.checkpoint(this.appliedSeq, this.group.versionOf(this.appliedSeq), this.snap, this.group.entriesAfter(this.appliedSeq).map(toGroupEntry));
      this.group.compact(this.appliedSeq);
      if (this.o.store !== undefined && this.written > this.group.persistedSeq) {
        // A checkpoint flushes everything.
        this.madeDurable(this.written);
        this.pump();
      }
    }
  }

  /** The log from entries[0] on is now `entries`: written at once, durable per the fsync mode (the contract above). */
  private persist(prevVersion: number, entries: Array<Entry<EntryData>>): void {
    const store = this.o.store;
    if (store === undefined) throw new Error('the core handed out entries to persist, and this host has no store');
    const from = (entries[0] as Entry<EntryData>).seq;
    store.write(prevVersion, entries.map(toGroupEntry));
    // What the disk held from `from` on is replaced (the core lowered persistedSeq); a sync under way covers no more.
    if (this.syncing) this.cutWhileSyncing = Math.min(this.cutWhileSyncing, from - 1);
    this.written = from + entries.length - 1;
    if (store.mode === 'always') {
      store.flush();
      this.madeDurable(this.written);
    } else if (store.mode === 'off') {
      store.writeQueued();
      this.madeDurable(this.written);
    } else {
      store.writeQueued();
      this.syncSoon();
    }
  }

  /** One background fdatasync at a time; the next covers whatever was written meanwhile. */
  private syncSoon(): void {
    const store = this.o.store;
    if (store === undefined || this.syncing || this.written <= this.group.persistedSeq || this.closed) return;
    this.syncing = true;
    this.cutWhileSyncing = Infinity;
    const covers = this.written;
    store.sync((err) => {
      this.syncing = false;
      if (this.closed) return;
      if (err !== null) {
        // The disk did not take what this member acknowledges: it must not ack again (fail-stop).
        this.o.log('error', `the log in ${store.dir} could not be synced to disk: ${err.message}; this node stops`);
        throw err;
      }
      this.madeDurable(Math.min(covers, this.cutWhileSyncing));
      this.pump(); // a primary's commit may have moved
      this.syncSoon();
    });
  }

  /** The disk holds the log up to `seq`: the acks that waited for it leave, in order, and the core is told (the caller pumps). */
  private madeDurable(seq: number): void {
    this.group.persisted(seq);
    const durable = this.group.persistedSeq;
    let n = 0;
    while (n < this.heldAcks.length && (this.heldAcks[n] as { last: number }).last <= durable) n++;
    for (const a of this.heldAcks.splice(0, n)) this.o.links.send(a.to, a.frame);
    this.flushSoon(); // a commit that moved goes to the followers
  }

  private proposeConfig(expected: GroupConfig, next: GroupConfig): void {
    this.o.log('info', `proposing configuration ${next.version}: primary ${next.primary}, secondaries ${next.secondaries.join(', ') || 'none'}`);
    this.deadline(this.o.config.propose(expected, next), `configuration ${next.version}`).then(
      (r) => {
        if (this.closed) return;
        this.group.proposalSettled(r.current, performance.now());
        this.pump();
      },
      (err: unknown) => {
        if (this.closed) return;
        this.o.log('warn', `configuration ${next.version} not proposed: ${(err as Error).message}`);
        this.group.proposalSettled(null, performance.now());
        this.pump();
      },
    );
  }

  private readConfig(): void {
    if (this.reading) return;
    this.reading = true;
    this.deadline(this.o.config.current(), 'the configuration').then(
      (c) => {
        this.reading = false;
        if (this.closed || c === null) return;
        this.group.learnConfig(c, performance.now());
        this.pump();
      },
      (err: unknown) => {
        this.reading = false;
        this.o.log('warn', `configuration not read: ${(err as Error).message}`);
      },
    );
  }

  /** `p`, or a rejection once the manager has not answered in time (a late answer is then ignored: the core was told "no answer"). */
  private deadline<R>(p: Promise<R>, what: string): Promise<R> {
    const ms = this.o.configDeadlineMs ?? 5000;
    let timer: NodeJS.Timeout | null = null;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer from the configuration manager about ${what} within ${ms} ms`)), ms);
      timer.unref();
    });
    return Promise.race([p, late]).finally(() => {
      if (timer !== null) clearTimeout(timer);
    });
  }

  private noticeRole(): void {
    const c = this.group.current;
    if (c === null || (this.group.role === this.role && c.version === this.version)) return;
    this.role = this.group.role;
    this.version = c.version;
    this.o.onConfig?.(this.role, c);
  }
}

export { NotPrimaryError };
