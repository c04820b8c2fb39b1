/**
 * The replication protocol of a group, as PacificA describes it (Lin et
 * al., "PacificA: Replication in Log-Based Distributed Storage Systems",
 * Microsoft Research, 2008): a primary orders writes and commits each once
 * every secondary of the current configuration holds it; the
 * configuration (config/config.ts) changes only by compare-and-swap at a
 * configuration manager; failures are detected by leases.
 *
 * This file is the protocol alone: no I/O, no timers, no clock. Like
 * etcd-io/raft's `Ready`, a host feeds it what happened (`tick`,
 * `receive`, `propose`, `learnConfig`, `proposalSettled`) and then takes
 * from `ready()` what to do: messages to send, entries now committed (to
 * apply, in order), and at most one configuration change to propose. Every
 * time passed in is the host's monotonic clock in ms; no time crosses to
 * another node except as an echo of the sender's own (a lease's start),
 * so no clock offset between hosts matters, only rates.
 *
 * Members are opaque ids; a host makes a run's id from its name and a
 * number that changes with every run, so a node that forgot its log is
 * never taken for the member it was: it joins again as a learner. A run
 * that kept its predecessor's log on disk (`durable`, Ready.persist) takes
 * that run's place in the configuration by compare-and-swap
 * (config/config.ts replaceRuns) and restores its log (restore): its
 * entries were acknowledged by that run, so it holds everything the group
 * committed. A new id per run keeps every lease time apart: a time on the
 * earlier run's monotonic clock means nothing on the new run's.
 *
 * The rules, with the paper's section:
 *  - Writes (§3.1): the primary appends, sends `prepare` to every
 *    secondary and learner, and commits an entry once every secondary
 *    holds it. Entries carry the version they were made in; a follower
 *    keeps its log matching the primary's (an entry at the same seq with
 *    another version is replaced, with everything after it).
 *  - Leases (§3.3): every `prepare` carries its send time on the primary's
 *    clock and every `ack` echoes it; the primary's lease from a secondary
 *    runs `leaseMs` from the latest echoed time. The primary serves
 *    (writes, and reads) only while it holds a lease from every secondary;
 *    when one lapses it stops and proposes a configuration without that
 *    secondary, and serves again only once that configuration is stored.
 *  - A secondary that has heard nothing from its primary for `graceMs`
 *    (>= `leaseMs`) proposes itself as primary, without the old one. Since
 *    the old primary's lease from it started before the secondary last
 *    heard from it, the old primary has stopped serving before the grace
 *    ends: no two primaries serve at once.
 *  - Reads on a secondary (LP-11's bound): the primary cannot commit
 *    without a secondary before its lease from it lapses. So a secondary
 *    serves reads only until `leaseMs` after a time, on its own clock, that
 *    the primary's current lease from it cannot have started before: every
 *    ack carries the secondary's clock, the primary echoes the latest it
 *    got (`ackSeen`), the next ack carries that echo back (`base`), and the
 *    primary sends the base of the ack its lease rests on (`readBase`).
 *    Delayed prepares and a paused secondary cannot stretch it. A
 *    secondary takes a read window only from a prepare whose commit index
 *    it has caught up with; a primary grants windows only while it holds
 *    every lease (a member taking over commits without that secondary only
 *    a lease after it started, which is after the old primary stopped
 *    granting), and a new primary only once the log it took over is
 *    committed (its predecessor may have answered writes in it).
 *  - Only a member of the current configuration becomes primary; a learner
 *    never does (§3.2). Whoever wins the compare-and-swap decides; a node
 *    that learns a configuration in which it is not primary stops.
 *  - Reconciliation (§3.4): a new primary holds every committed entry (a
 *    commit needed every member); it sends its log on to the others, who
 *    drop any tail it lacks, and commits it once they all hold it.
 *  - Joining (§3.5): a node outside the configuration asks the primary to
 *    `join`, catches up as a learner, and is added by compare-and-swap
 *    once it holds everything committed. From the proposal on, until a
 *    configuration newer than the one it was proposed from is known, the
 *    learner counts as a secondary (commits wait for it, the primary needs
 *    its lease): a manager that could not answer may have stored it. A
 *    follower behind the primary's compacted log catches up from a
 *    snapshot first.
 *  - A primary that lost a lease and cannot get a configuration without
 *    that secondary stored within `graceMs` falls silent, so that another
 *    member that can reach the manager takes over.
 *  - Compaction: a host that holds its state machine's snapshot at an
 *    applied seq may drop the log up to there (compact); the entries
 *    before it are committed everywhere they matter, so only a snapshot
 *    stands for them.
 *  - Every message carries the sender's configuration version: a node
 *    answers one from an older version with its own (so the sender learns
 *    it is stale) and asks its host for the configuration when it sees a
 *    newer one.
 *
 * Threading: one thread; every call is synchronous.
 */
import type { GroupConfig } from '../config/config.js';

export interface Entry<T> {
  seq: number;
  /** The configuration version of the primary that made it. */
  version: number;
  data: T;
}

export type Message<T> =
  | {
      type: 'prepare';
      version: number;
      from: string;
      to: string;
      /** The entry before `entries` (0: none) and its version: where the follower's log must match. */
      prevSeq: number;
      prevVersion: number;
      entries: Array<Entry<T>>;
      commit: number;
      /** The primary's monotonic time when it sent this: echoed back, compared with its own clock only. */
      sent: number;
      /** The follower's clock in the latest ack the primary got from it (null: none yet); echoed back as the ack's `base`. */
      ackSeen: number | null;
      /** A time on the follower's clock no later than the start of the primary's lease from it (null: no lease): it reads until readBase + leaseMs. */
      readBase: number | null;
    }
  | {
      type: 'ack';
      version: number;
      from: string;
      to: string;
      /** Whether the log matched at prevSeq. */
      ok: boolean;
      /** ok: the last seq now known to match the primary's; not ok: where to try from (this is one below it). */
      last: number;
      echo: number;
      /** The follower's monotonic time when it sent this. */
      at: number;
      /** The `ackSeen` of the prepare (or snapshot) acknowledged: no later than that prepare's sending, on this follower's clock. */
      base: number | null;
    }
  | { type: 'join'; version: number; from: string; to: string }
  /**
   * The primary's log no longer holds what the follower lacks (compacted):
   * the host sends with it its state machine's snapshot at `seq` (the
   * entry there was made in `seqVersion`), and the follower's host installs
   * it (installSnapshot) before anything later.
   */
  | { type: 'snapshot'; version: number; from: string; to: string; seq: number; seqVersion: number; sent: number; ackSeen: number | null };

export interface Timing {
  /** How long a secondary's ack keeps the primary's lease from it, ms. */
  leaseMs: number;
  /**
   * How long a secondary waits without hearing from its primary before
   * proposing itself; at least leaseMs. The margin is what clock rates may
   * differ by: a grace of 1.5 × the lease tolerates a secondary whose clock
   * runs a third faster than the primary's.
   */
  graceMs: number;
  /** How often the primary sends to every follower when it has nothing new, ms. */
  heartbeatMs: number;
}

export interface Ready<T> {
  /**
   * With `durable`: the log from `entries[0].seq` on is now `entries` (the
   * entry before it made in `prevVersion`); anything after is gone. The host
   * writes it, sends no ack in `messages` before its disk holds what the
   * ack covers, and calls persisted() once the disk holds the log up to a
   * seq (the primary commits nothing past that). Null: the log did not
   * change.
   */
  persist: { prevVersion: number; entries: Array<Entry<T>> } | null;
  messages: Array<Message<T>>;
  /** Entries committed since the last ready(), in seq order, each once. */
  committed: Array<Entry<T>>;
  /** A configuration to propose (the host calls proposalSettled when the manager answers). */
  propose: { expected: GroupConfig; next: GroupConfig } | null;
  /** A newer configuration exists than this node knows: the host should read it and call learnConfig. */
  needConfig: boolean;
}

/** propose() on a node that cannot take writes now. */
export class NotPrimaryError extends Error {
  override readonly name = 'NotPrimaryError';
}

export type Role = 'primary' | 'secondary' | 'learner';

export class Group<T> {
  private config: GroupConfig | null = null;
  /** Entries after `base`, in seq order: log[i] has seq base.seq + 1 + i. */
  private log: Array<Entry<T>> = [];
  /** What the log was compacted to: the last entry no longer held, and its version (0/0: nothing compacted). */
  private base = { seq: 0, version: 0 };
  private commit = 0;
  /** A follower's last ack that said ok (see onPrepare: an empty prepare that tells nothing new is not acked). */
  private lastAck: { to: string; version: number; last: number; at: number } | null = null;
  /** The commit index moved since the last flush (the primary sends it on then). */
  private commitMoved = false;
  private applied = 0;
  private out: Array<Message<T>> = [];
  private toPropose: { expected: GroupConfig; next: GroupConfig } | null = null;
  /** A proposal handed to the host and not yet settled: no other is made meanwhile. */
  private proposing = false;
  private needConfig = false;
  // Primary: per follower (secondary or learner).
  private readonly matched = new Map<string, number>();
  private readonly nextSeq = new Map<string, number>();
  /** The latest echoed send time of an ok ack: the lease runs leaseMs from it (this node's clock). */
  private readonly leaseFrom = new Map<string, number>();
  /** The follower-clock base of the ack leaseFrom rests on (see the file comment on reads). */
  private readonly leaseBase = new Map<string, number | null>();
  /** The follower's clock in its latest ack. */
  private readonly ackSeen = new Map<string, number>();
  /** When this node began to wait for a secondary's first ack (it became primary, or added it): a lapse counts from there too. */
  private readonly waitFrom = new Map<string, number>();
  /** When a learner last acked (this node's clock): one silent for long is forgotten. */
  private readonly heardFrom = new Map<string, number>();
  /**
   * Learners whose addition was proposed, with the version proposed from:
   * until a newer configuration is known they count as secondaries, since
   * the manager may have stored them even when it could not answer.
   */
  private readonly maybeAdded = new Map<string, number>();
  private lastBeat = -Infinity;
  /**
   * Primary: the log's end when it took over. Entries up to there may have
   * been committed (and answered) by the primary before it, so no read is
   * served, here or on a secondary, until they are committed here too.
   */
  private reconcileTo = 0;
  /** When a lease from a secondary lapsed and no configuration without it is stored yet (null: none lapsed). */
  private lapsedSince: number | null = null;
  // Secondary and learner: when the primary was last heard from (this node's clock).
  private heardAt = -Infinity;
  private primaryOf = '';
  /** Secondary: reads are answered until then (this node's clock). */
  private readUntil = -Infinity;
  /**
   * A secondary that proposed itself as primary acks its primary no more
   * in this version: an ack would lengthen the old primary's lease past
   * the moment the new one may start.
   */
  private takingOver = false;
  /** The lowest seq whose entry changed since the last ready() (Infinity: none); kept only when durable. */
  private dirtyFrom = Infinity;
  /**
   * Durable: how much of this log the host's disk holds (persisted()). A
   * primary commits nothing past it: its followers apply what it commits,
   * so a commit its own disk could lose would be lost by every member if
   * all crashed at once. Infinity when not durable.
   */
  private stable: number;

  constructor(
    readonly id: string,
    private readonly timing: Timing,
    /** Hand out the log's changes to persist (Ready.persist): a host with a data dir. */
    private readonly durable = false,
    /**
     * The fewest secondaries the configuration must hold for this node, as
     * primary, to take writes (Kafka's min.insync.replicas less one). 0: a
     * primary whose secondaries lapsed and were removed goes on alone, and
     * what it acknowledges then lives on it alone until they are back.
     * Reads are not held: a primary alone still holds every committed entry.
     */
    private readonly minSecondaries = 0,
  ) {
    this.stable = durable ? 0 : Infinity;
    if (!(timing.graceMs >= timing.leaseMs)) throw new RangeError(`graceMs (${timing.graceMs}) must be at least leaseMs (${timing.leaseMs}): otherwise two primaries could serve at once`);
  }

  get role(): Role {
    const c = this.config;
    if (c === null) return 'learner';
    if (c.primary === this.id) return 'primary';
    return c.secondaries.includes(this.id) ? 'secondary' : 'learner';
  }

  get version(): number {
    return this.config?.version ?? 0;
  }

  get lastSeq(): number {
    return this.base.seq + this.log.length;
  }

  /** The seq the log starts after (compact). */
  get compactedTo(): number {
    return this.base.seq;
  }

  get commitSeq(): number {
    return this.commit;
  }

  /** Primary: the log it took over is committed here (its predecessor's last writes are in the table). */
  get reconciled(): boolean {
    return this.role === 'primary' && this.commit >= this.reconcileTo;
  }

  /** The configuration this node knows. */
  get current(): GroupConfig | null {
    return this.config;
  }

  /** Whether this node may take writes now: the primary, holding a lease from every secondary (and every learner maybe added), with at least minSecondaries of them. */
  canWrite(now: number): boolean {
    return this.leased(now) && (this.config as GroupConfig).secondaries.length >= this.minSecondaries;
  }

  /** Whether the configuration holds fewer secondaries than this node needs to take writes as primary. */
  get belowFloor(): boolean {
    return (this.config?.secondaries.length ?? 0) < this.minSecondaries;
  }

  /** The primary, holding a lease from every secondary (and every learner maybe added). */
  private leased(now: number): boolean {
    const c = this.config;
    if (c === null || c.primary !== this.id) return false;
    for (const s of this.counted()) {
      const t = this.leaseFrom.get(s);
      if (t === undefined || now >= t + this.timing.leaseMs) return false;
    }
    return true;
  }

  /** Whether this node may answer reads from its replica now [LP-11]. */
  canRead(now: number): boolean {
    const r = this.role;
    if (r === 'primary') return this.leased(now) && this.commit >= this.reconcileTo;
    return r === 'secondary' && now < this.readUntil;
  }

  /** Append a write; its entry is committed once every secondary holds it. Throws NotPrimaryError unless canWrite(now). */
  propose(data: T, now: number): number {
    if (!this.canWrite(now)) throw new NotPrimaryError(this.role !== 'primary' ? `not the primary (${this.config?.primary ?? 'none known'} is)` : this.belowFloor ? `the configuration holds ${this.config?.secondaries.length ?? 0} secondaries, fewer than the ${this.minSecondaries} writes need` : 'the primary has lost a lease from a secondary and waits for a new configuration');
    const e: Entry<T> = { seq: this.lastSeq + 1, version: this.version, data };
    this.log.push(e);
    this.changed(e.seq);
    this.advanceCommit();
    return e.seq;
  }

  /**
   * Drop the log up to `seq`, which this node has applied and of which its
   * host keeps a snapshot (sent to a follower that lacks what it stands
   * for). Call it between a ready() and the next call that can send (a
   * `snapshot` message names the base it was made at). Throws RangeError
   * past what was applied.
   */
  compact(seq: number): void {
    if (seq <= this.base.seq) return;
    if (seq > this.applied) throw new RangeError(`cannot compact to ${seq}: applied only up to ${this.applied}`);
    const version = this.versionAt(seq);
    this.log = this.log.slice(seq - this.base.seq);
    this.base = { seq, version };
  }

  /**
   * A `snapshot` message arrived with the primary's snapshot at `seq` (the
   * entry there made in `seqVersion`). True: the host must load it now, in
   * this same turn, in place of its state (the log restarts after it);
   * false: nothing to load, either because this node's log already holds
   * that entry (it keeps what follows, which it may have acknowledged, and
   * commits up to `seq`), or the message is not from its primary in its
   * configuration.
   */
  installSnapshot(m: Extract<Message<T>, { type: 'snapshot' }>, now: number): boolean {
    const c = this.config;
    if (c === null || m.version !== c.version || m.from !== c.primary || this.role === 'primary' || this.takingOver) return false;
    this.heardAt = now;
    this.primaryOf = m.from;
    let load = false;
    const holds = m.seq <= this.lastSeq && (m.seq < this.base.seq || this.versionAt(m.seq) === m.seqVersion);
    if (holds) {
      if (m.seq > this.commit) this.commit = m.seq; // entries up to it are applied from this log
    } else {
      // It lacks that entry, or holds another there: nothing it holds past its commit was acknowledged in this lineage.
      this.log = [];
      this.base = { seq: m.seq, version: m.seqVersion };
      this.commit = m.seq;
      this.applied = m.seq;
      this.dirtyFrom = Infinity; // the host keeps the snapshot it loads in place of the log
      if (this.durable) this.stable = m.seq; // ... as a checkpoint, before this returns
      load = true;
    }
    this.out.push({ type: 'ack', version: c.version, from: this.id, to: m.from, ok: true, last: m.seq, echo: m.sent, at: now, base: m.ackSeen });
    return load;
  }

  /**
   * Send what followers lack (a host calls this once per event-loop turn,
   * after proposals and after frames received: batching). A commit index
   * that moved goes to every follower then, with or without new entries,
   * as etcd-io/raft broadcasts appends when its commit moves: every node
   * answers its own clients from what it applied, so a follower must not
   * wait for the next write or heartbeat to learn its writes committed.
   */
  flush(now: number): void {
    const moved = this.commitMoved;
    this.commitMoved = false;
    if (this.role !== 'primary' || this.silent(now)) return;
    for (const f of this.followers()) if (moved || (this.nextSeq.get(f) ?? 1) <= this.lastSeq) this.sendTo(f, now);
  }

  /** Time passes: heartbeats, lapsed leases, a silent primary, forgotten learners. */
  tick(now: number): void {
    const c = this.config;
    if (c === null) return;
    const role = this.role;
    if (role === 'primary') {
      const lapsed = c.secondaries.filter((s) => now >= Math.max(this.leaseFrom.get(s) ?? -Infinity, this.waitFrom.get(s) ?? -Infinity) + this.timing.leaseMs);
      this.lapsedSince = lapsed.length === 0 ? null : (this.lapsedSince ?? now);
      if (!this.silent(now) && now - this.lastBeat >= this.timing.heartbeatMs) {
        this.lastBeat = now;
        for (const f of this.followers()) this.sendTo(f, now);
      }
      for (const [f, t] of this.heardFrom) if (!c.secondaries.includes(f) && !this.maybeAdded.has(f) && now - t > 4 * this.timing.graceMs) this.forget(f);
      if (lapsed.length > 0) this.proposeChange({ version: c.version + 1, primary: this.id, secondaries: c.secondaries.filter((s) => !lapsed.includes(s)) });
      else {
        // A learner that holds everything that may be committed (and has acked) joins the configuration:
        // what this primary committed, and the whole log it took over (its predecessor may have committed it).
        const ready = [...this.matched].find(([f, m]) => !c.secondaries.includes(f) && m >= Math.max(this.commit, this.reconcileTo) && this.leaseFrom.has(f));
        if (ready !== undefined && this.proposeChange({ version: c.version + 1, primary: this.id, secondaries: [...c.secondaries, ready[0]] })) this.maybeAdded.set(ready[0], c.version);
      }
    } else if (role === 'secondary' && now >= this.heardAt + this.timing.graceMs) {
      if (this.proposeChange({ version: c.version + 1, primary: this.id, secondaries: c.secondaries.filter((s) => s !== this.id) })) this.takingOver = true;
    }
  }

  /**
   * The primary has the same configuration stored under the next version
   * (its tokens move to the next version's space: core/token-space.ts).
   * False when this node is not the primary or a proposal is in flight;
   * the caller asks again.
   */
  renewVersion(): boolean {
    const c = this.config;
    if (c === null || this.role !== 'primary') return false;
    return this.proposeChange({ version: c.version + 1, primary: c.primary, secondaries: [...c.secondaries] });
  }

  /** Ask the primary of the configuration this node knows to take it on as a learner. */
  join(): void {
    const c = this.config;
    if (c !== null && this.role === 'learner') this.out.push({ type: 'join', version: c.version, from: this.id, to: c.primary });
  }

  /** A configuration read from the manager (a watch, a read, a proposal's answer). Older or equal versions are ignored. */
  learnConfig(c: GroupConfig, now: number): void {
    if (this.config !== null && c.version <= this.config.version) return;
    const was = this.role;
    const before = this.config;
    this.config = { version: c.version, primary: c.primary, secondaries: [...c.secondaries] };
    this.needConfig = false;
    this.takingOver = false;
    this.lapsedSince = null;
    this.readUntil = -Infinity; // reads wait for the (new) primary's word in this version
    // A learner proposed from an older configuration was added or not: this one says which.
    for (const [f, v] of this.maybeAdded) if (v < c.version) this.maybeAdded.delete(f);
    const role = this.role;
    if (role === 'primary') {
      if (was !== 'primary') {
        // A new primary: no leases yet, and followers' logs unknown (reconciliation finds them).
        this.clearFollowers();
        this.lastBeat = -Infinity;
        this.reconcileTo = this.lastSeq;
        for (const s of c.secondaries) this.waitFrom.set(s, now);
      } else {
        // Still primary: keep the leases and progress of those who stay (a
        // learner added keeps its lease: see onAck), forget the removed.
        for (const r of before?.secondaries ?? []) if (!c.secondaries.includes(r)) this.forget(r);
        for (const s of c.secondaries) if (before?.secondaries.includes(s) !== true) this.waitFrom.set(s, now);
      }
      this.advanceCommit();
      this.tick(now);
    } else {
      this.clearFollowers();
      this.maybeAdded.clear();
      // A fresh grace under a new primary.
      if (c.primary !== this.primaryOf) this.heardAt = now;
      this.primaryOf = c.primary;
    }
  }

  /** The manager answered the proposal from ready(): `current` is what it stores now (ours if won). Null: no answer (unreachable, or a deadline): it may or may not be stored, and the rule that proposed will propose again. */
  proposalSettled(current: GroupConfig | null, now: number): void {
    this.proposing = false;
    if (current === null) return; // learners maybe added stay counted until a newer configuration is known
    const v = current.version;
    for (const [f, from] of this.maybeAdded) if (from < v) this.maybeAdded.delete(f);
    this.learnConfig(current, now);
  }

  receive(m: Message<T>, now: number): void {
    const mine = this.version;
    if (m.version > mine) {
      this.needConfig = true; // learn it first; the sender repeats itself
      return;
    }
    if (m.version < mine) {
      // Tell a stale sender there is a newer configuration (an ack is not answered: no ping-pong).
      if (m.type !== 'ack') this.out.push({ type: 'ack', version: mine, from: this.id, to: m.from, ok: false, last: 0, echo: m.type === 'join' ? 0 : m.sent, at: now, base: null });
      return;
    }
    if (m.type === 'prepare') this.onPrepare(m, now);
    else if (m.type === 'ack') this.onAck(m, now);
    else if (m.type === 'snapshot') return; // the host loads the snapshot, then calls installSnapshot
    else if (this.role === 'primary' && !this.config?.secondaries.includes(m.from) && m.from !== this.id && !this.matched.has(m.from)) {
      // A join from a node not followed yet: a learner (log matching finds where it stands).
      this.nextSeq.set(m.from, this.lastSeq + 1);
      this.matched.set(m.from, 0);
      this.heardFrom.set(m.from, now);
      this.sendTo(m.from, now);
    }
  }

  ready(): Ready<T> {
    const committed = this.log.slice(this.applied - this.base.seq, this.commit - this.base.seq);
    this.applied = this.commit;
    let persist: Ready<T>['persist'] = null;
    if (this.dirtyFrom !== Infinity) {
      persist = { prevVersion: this.versionAt(this.dirtyFrom - 1), entries: this.log.slice(this.dirtyFrom - this.base.seq - 1) };
      this.dirtyFrom = Infinity;
    }
    const r: Ready<T> = { persist, messages: this.out, committed, propose: this.toPropose, needConfig: this.needConfig };
    this.out = [];
    this.toPropose = null;
    return r;
  }

  /**
   * A log read back from disk (a host with a data dir, before it learns
   * any configuration): the state machine holds the snapshot at
   * `base.seq` (made in `base.version`), and `entries` follow it. None of
   * them is known to be committed: the group commits them again (§3.4).
   */
  restore(base: { seq: number; version: number }, entries: Array<Entry<T>>): void {
    if (this.config !== null || this.lastSeq > 0) throw new RangeError('restore() is for a node that has not started');
    entries.forEach((e, i) => {
      if (e.seq !== base.seq + i + 1) throw new RangeError(`restored entry ${e.seq} does not follow ${base.seq + i}`);
    });
    this.base = { ...base };
    this.log = [...entries];
    this.commit = base.seq;
    this.applied = base.seq;
    if (this.durable) this.stable = this.lastSeq; // read from the disk
  }

  /** The log after `seq` (at least the compacted base): what a snapshot at `seq` leaves to keep. */
  entriesAfter(seq: number): Array<Entry<T>> {
    return this.log.slice(Math.max(0, seq - this.base.seq));
  }

  /** Durable: how much of this log the host's disk holds as the log is now (persisted(), less what changed since); Infinity when not durable. */
  get persistedSeq(): number {
    return this.stable;
  }

  /**
   * Durable: the host's disk holds this log up to `seq` (as it is now: the
   * host passes no more than what a sync covered before a later write
   * replaced part of it). A primary's commit may move: the host flushes.
   */
  persisted(seq: number): void {
    if (!this.durable) return;
    const s = Math.min(seq, this.lastSeq);
    if (s <= this.stable) return;
    this.stable = s;
    if (this.role === 'primary' && this.advanceCommit()) this.commitMoved = true;
  }

  /** The version of the entry at `seq`, which the log holds or was compacted to. */
  versionOf(seq: number): number {
    return this.versionAt(seq);
  }

  private changed(seq: number): void {
    if (!this.durable) return;
    if (seq < this.dirtyFrom) this.dirtyFrom = seq;
    if (seq - 1 < this.stable) this.stable = seq - 1; // the disk's entries from seq on are not this log's
  }

  /** The members a commit and a write need besides the primary: the secondaries and the learners maybe added. */
  private counted(): string[] {
    const c = this.config as GroupConfig;
    return this.maybeAdded.size === 0 ? c.secondaries as string[] : [...new Set([...c.secondaries, ...this.maybeAdded.keys()])];
  }

  /** A primary that lost a lease and could not get a configuration without it stored for graceMs stops sending: another member takes over. */
  private silent(now: number): boolean {
    return this.lapsedSince !== null && now - this.lapsedSince > this.timing.graceMs;
  }

  private entryAt(seq: number): Entry<T> | undefined {
    return this.log[seq - this.base.seq - 1];
  }

  /** The version of the entry at `seq` (at or after the base). */
  private versionAt(seq: number): number {
    if (seq === this.base.seq) return this.base.version;
    return (this.entryAt(seq) as Entry<T>).version;
  }

  private clearFollowers(): void {
    for (const m of [this.leaseFrom, this.leaseBase, this.ackSeen, this.waitFrom, this.matched, this.nextSeq, this.heardFrom]) m.clear();
  }

  private forget(f: string): void {
    for (const m of [this.leaseFrom, this.leaseBase, this.ackSeen, this.waitFrom, this.matched, this.nextSeq, this.heardFrom]) m.delete(f);
  }

  private followers(): string[] {
    const c = this.config as GroupConfig;
    return [...new Set([...c.secondaries, ...this.matched.keys()])];
  }

  private sendTo(f: string, now: number): void {
    const next = this.nextSeq.get(f) ?? this.lastSeq + 1;
    const ackSeen = this.ackSeen.get(f) ?? null;
    if (next - 1 < this.base.seq) {
      // What it lacks was compacted: the snapshot first, then the log after it.
      this.out.push({ type: 'snapshot', version: this.version, from: this.id, to: f, seq: this.base.seq, seqVersion: this.base.version, sent: now, ackSeen });
      this.nextSeq.set(f, this.base.seq + 1);
      return;
    }
    const prevSeq = next - 1;
    this.out.push({
      type: 'prepare',
      version: this.version,
      from: this.id,
      to: f,
      prevSeq,
      prevVersion: prevSeq === 0 ? 0 : this.versionAt(prevSeq),
      entries: this.log.slice(prevSeq - this.base.seq),
      commit: this.commit,
      sent: now,
      ackSeen,
      // No reads on a follower before the log taken over is committed here,
      // nor while this primary lacks a lease (another may be taking over,
      // and will commit without that follower once its own wait for it ends).
      readBase: this.commit >= this.reconcileTo && this.leased(now) ? (this.leaseBase.get(f) ?? null) : null,
    });
    this.nextSeq.set(f, this.lastSeq + 1);
  }

  private onPrepare(m: Extract<Message<T>, { type: 'prepare' }>, now: number): void {
    const c = this.config as GroupConfig;
    if (m.from !== c.primary || this.role === 'primary' || this.takingOver) return;
    this.heardAt = now;
    this.primaryOf = m.from;
    const reply = (ok: boolean, last: number): void => void this.out.push({ type: 'ack', version: c.version, from: this.id, to: m.from, ok, last, echo: m.sent, at: now, base: m.ackSeen });
    // Below the base, everything is committed and matches; at or above it, the versions must.
    if (m.prevSeq > this.lastSeq || (m.prevSeq >= this.base.seq && m.prevSeq > 0 && this.versionAt(m.prevSeq) !== m.prevVersion)) {
      // No match there: try from what is committed here (it matches), or from the end of a log that is short.
      this.lastAck = null;
      return reply(false, m.prevSeq > this.lastSeq ? this.lastSeq : this.commit);
    }
    for (const e of m.entries) {
      if (e.seq <= this.base.seq) continue; // compacted: committed, so the same
      const have = this.entryAt(e.seq);
      if (have !== undefined && have.version === e.version) continue;
      if (e.seq <= this.commit) throw new Error(`protocol broken: the primary ${m.from} replaces committed entry ${e.seq}`);
      this.log.length = e.seq - this.base.seq - 1; // a tail the primary lacks: dropped
      this.log.push(e);
      this.changed(e.seq);
    }
    const last = m.prevSeq + m.entries.length;
    const commit = Math.min(m.commit, last);
    if (commit > this.commit) this.commit = commit;
    // Reads: only once it holds everything the primary had committed when it
    // sent this, and until leaseMs after a time no later than the start of
    // the primary's lease from this node.
    if (m.readBase !== null && this.commit >= m.commit && m.readBase + this.timing.leaseMs > this.readUntil) this.readUntil = m.readBase + this.timing.leaseMs;
    // A prepare with no entries that tells the primary nothing new (the
    // same primary, version and last seq as this node's previous ack, sent
    // less than half a heartbeat ago: a commit index sent on, see flush) is
    // not acknowledged. The ack would only move the primary's lease from
    // this node a little later; without it the lease rests on an earlier
    // send, which can only end it sooner (safe), and the next heartbeat's
    // ack moves it on. It halves the acks of a write.
    const prev = this.lastAck;
    if (m.entries.length === 0 && prev !== null && prev.to === m.from && prev.version === c.version && prev.last === last && now - prev.at < this.timing.heartbeatMs / 2) return;
    this.lastAck = { to: m.from, version: c.version, last, at: now };
    reply(true, last);
  }

  private onAck(m: Extract<Message<T>, { type: 'ack' }>, now: number): void {
    if (this.role !== 'primary') return;
    const c = this.config as GroupConfig;
    const f = m.from;
    if (!c.secondaries.includes(f) && !this.matched.has(f)) return;
    this.ackSeen.set(f, Math.max(this.ackSeen.get(f) ?? -Infinity, m.at));
    this.heardFrom.set(f, now);
    const matched = this.matched.get(f) ?? 0;
    if (m.ok) {
      this.matched.set(f, Math.max(matched, m.last));
      if (this.nextSeq.get(f) === undefined || (this.nextSeq.get(f) as number) <= m.last) this.nextSeq.set(f, m.last + 1);
      // A learner's ack is a lease too: it heard this prepare no sooner than it was sent, and its grace, once it is a secondary, counts from then.
      if (m.echo > (this.leaseFrom.get(f) ?? -Infinity)) {
        this.leaseFrom.set(f, m.echo);
        this.leaseBase.set(f, m.base);
      }
      if (this.advanceCommit()) this.commitMoved = true;
    } else if (m.last >= matched) {
      // Not a stale refusal (one below what it has matched since): resend from there at once.
      this.nextSeq.set(f, m.last + 1);
      if (!this.silent(now)) this.sendTo(f, now);
    }
  }

  /** Whether the commit index moved. */
  private advanceCommit(): boolean {
    // Below the floor nothing commits: an entry appended while the secondaries were there, held by fewer of them now, waits for one to be added.
    if (this.belowFloor) return false;
    let commit = Math.min(this.lastSeq, this.stable);
    for (const s of this.counted()) commit = Math.min(commit, this.matched.get(s) ?? 0);
    if (commit <= this.commit) return false;
    this.commit = commit;
    return true;
  }

  /** Whether it was proposed (one at a time). */
  private proposeChange(next: GroupConfig): boolean {
    if (this.proposing) return false;
    this.proposing = true;
    this.toPropose = { expected: this.config as GroupConfig, next };
    return true;
  }
}
