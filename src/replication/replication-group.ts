/**
 * The replication on the group protocol (pacifica.ts, run by
 * group-host.ts): the engine that will serve both layouts, behind the
 * same seam as the others (replica/replication.ts). Used by `dlock node
 * --replication group` and `dlock up --replication group`, not yet by
 * default (docs/design.md).
 *
 * Every node, the primary too, applies the committed log and answers its
 * own clients from it (role-less nodes). Every proposal becomes an entry,
 * and its entry answers it: a node keeps its proposals until their
 * entries are applied and sends them again, in order, to each new
 * primary; a write that reaches the log twice is applied once, since
 * entries are skipped whose request id is not above the last one applied
 * from their origin (the exactly-once rule; request ids rise per node).
 *
 * The primary's duties, written once here for this engine: it logs the
 * floor of each configuration version's token space before anything else
 * it sequences in that version, and moves to the next version before the
 * space runs out (core/token-space.ts) [LP-7]; it stamps
 * each command with its log time and the limits; it ends leases
 * (`expire`) and waits (`timeout`) on log time; when a member leaves the
 * configuration, or at takeover for every node outside it, it ends the
 * sessions of that node's clients [LP-8]. A forward is checked first
 * (forward-check.ts): a node acts only for its own clients, and only a
 * node with a run in the configuration acts at all: once a node is out,
 * its clients' sessions are ended, so a forward it sent before it knew
 * (delayed on the link, or read after a pause) must not act for them.
 *
 * What clients see [LP-8, LP-11]: a node shows them the state it applied
 * (replies, grants to waiters) only while it can vouch that no newer
 * configuration has ended their sessions: while it may read (pacifica.ts:
 * the primary holds every lease, a secondary has a read window). A
 * primary paused past its leases that reads its secondaries' last acks
 * on waking commits entries, but their replies wait, since the others may
 * have removed it meanwhile. A node that learns it is out of the
 * configuration answers what it still owes with an error ("may or may
 * not have been applied"), closes its clients' connections, and takes no
 * writes while it catches up as a learner.
 *
 * Threading: the node's thread; frames arrive through receive().
 */
import { aged, clientsOf, disconnectOf, restore, snapshot, waits, type ClientId, type Command, type WriteLimits } from '../core/lock-table.js';
import { commandError } from '../core/command-check.js';
import { floorOf, MAX_VERSION, spaceRunningOut, TokenSpaceError } from '../core/token-space.js';
import type { GroupConfig, ConfigManager } from '../config/config.js';
import type { Frame } from '../codec/frame.js';
import { nodeOfClient } from '../replica/client-ids.js';
import { Duties } from '../replica/duties.js';
import { DutyTimer } from './duty-timer.js';
import { plural } from '../text.js';
import { forwardError } from './forward-check.js';
import { GroupHost, type EntryData, type GroupLinks } from './group-host.js';
import type { Entry, Role, Timing } from './pacifica.js';
import type { GroupStore } from '../store/group-store.js';
import { ERR_LEADER_LOST, ERR_LEADER_UNAVAILABLE, ERR_RESYNC, LEADER_WAIT_MS } from './port-backup.js';

/** A write on a node outside the configuration (a learner): its clients' sessions could be ended by the primary at any time. */
export const ERR_NOT_MEMBER = 'this node is catching up to join the replication group and takes no writes; the request was not applied: send it through another node, or retry';
import type { Replica, Replication } from '../replica/replication.js';
import type { LogEntry } from '../replica/state-machine.js';

/** The group's timing in both layouts: a failover in about graceMs plus a manager round. */
export const GROUP_TIMING: Timing = { leaseMs: 1500, graceMs: 2250, heartbeatMs: 150 };

export interface GroupReplicationOptions {
  /** This node's member id (its name and run). */
  id: string;
  timing: Timing;
  config: ConfigManager;
  links: GroupLinks;
  /** The node index of a member id (client ids name their node), or null for an id this node cannot place. */
  indexOf(id: string): number | null;
  compactEvery?: number;
  /** How long this node holds its writes while no primary can take them, ms (default LEADER_WAIT_MS). */
  leaderWaitMs?: number;
  /** Called each time this node becomes the primary (the admin API counts them). */
  onTakeOver?: () => void;
  /** --data-dir: this node's log on disk (group-host.ts). */
  store?: GroupStore;
  /** --min-secondaries: the fewest secondaries this node takes writes with as primary (pacifica.ts Group; default 0). */
  minSecondaries?: number;
}

interface Proposal {
  cmd: Command;
  req: number;
  /** A reply is owed (a client's write); else a disconnect or an end of wait. */
  owed: boolean;
  sent: boolean;
  since: number;
}

export class GroupReplication implements Replication {
  readonly host: GroupHost;
  /** This node's proposals not yet applied, by request id, in the order made. */
  private readonly pending = new Map<number, Proposal>();
  /** The last request id applied from each origin (the exactly-once rule). */
  private appliedReq = new Map<number, number>();
  /** Primary: writes it cannot sequence yet (no lease from every secondary), with when they came. */
  private held: Array<{ cmd: Command; from: number; req: number; since: number }> = [];
  /** The sequencer's duties (lease ends, acquire timeouts, a departed node's sessions); one timer for when the next is due. */
  private readonly duties: Duties;
  private readonly dutyTimer: DutyTimer;
  private leaderless: NodeJS.Timeout | null = null;
  private heldTimer: NodeJS.Timeout | null = null;
  private overdueTimer: NodeJS.Timeout | null = null;
  private role: Role = 'learner';
  /** The configuration version this node follows (its tokens' space while it is the primary). */
  private version = 0;
  /** The primary asked for the next version, its token space running out (said once per version). */
  private renewing = false;
  private primaryId: string | null = null;
  private members = new Set<string>();
  /** The node indexes with a run among the members: the only origins whose forwards the primary sequences. */
  private memberIndexes = new Set<number>();
  private closing = false;
  /** A new primary sweeps the sessions of nodes outside the configuration again once the log it took over is applied. */
  private sweepOnReconcile = false;
  /** Per link: the clients whose resumes it forwarded (forward-check.ts). */
  private readonly resumed = new Map<string, Set<ClientId>>();

  constructor(
    private readonly replica: Replica,
    private readonly o: GroupReplicationOptions,
  ) {
    this.duties = new Duties(() => this.replica.state);
    this.dutyTimer = new DutyTimer(this.duties, () => this.replica.clock.now(), (cmd) => this.sequence(cmd, this.replica.index, 0));
    this.host = new GroupHost({
      id: o.id,
      timing: o.timing,
      minSecondaries: o.minSecondaries ?? 0,
      config: o.config,
      links: o.links,
      apply: (entries) => this.applyAll(entries),
      onConfig: (role, c) => this.configChanged(role, c),
      stepped: () => this.vouch(),
      snapshots: {
        take: () => ({ state: snapshot(this.replica.state), applied: [...this.appliedReq] }),
        load: (s, seq) => {
          this.skipTo(new Map(s.applied));
          this.replica.load(restore(s.state), seq);
          this.appliedReq = new Map(s.applied);
          this.replica.commit(seq);
        },
      },
      ...(o.compactEvery === undefined ? {} : { compactEvery: o.compactEvery }),
      ...(o.store === undefined ? {} : { store: o.store }),
      log: (kind, text) => this.replica.log.line(kind, text),
    });
  }

  start(): Promise<void> {
    return this.host.start();
  }

  /** Read this node's log back from its data dir (before start(); GroupHost.restore). */
  restore(): { seq: number; entries: number } | null {
    return this.host.restore();
  }

  /**
   * A run that took its predecessor's place in the configuration
   * (config.ts replaceRuns): clients of this node's index in the table are
   * that run's, whose connections died with it, and no one else ends their
   * sessions, since this index stays a member. End them [LP-8] before
   * taking clients. Waits until this node may read (its table holds
   * everything the group committed, the log its primary took over
   * included), or is a learner (the primary ended them when that run left
   * the configuration). Once one of these disconnects is applied, no
   * write of the earlier run can be (its request ids are lower: the
   * exactly-once rule). Resolves with how many ended; rejects after `ms`.
   */
  async endEarlierSessions(ms: number): Promise<number> {
    const until = performance.now() + ms;
    const asked = new Set<ClientId>();
    for (;;) {
      if (this.closing) return asked.size;
      if (this.role === 'learner' && this.version > 0) return 0;
      if (this.readable) {
        const left = clientsOf(this.replica.state, this.replica.index, nodeOfClient);
        if (left.length === 0) return asked.size;
        const fresh = left.filter((c) => !asked.has(c));
        if (fresh.length > 0) this.replica.log.line('warn', `ending the sessions of ${plural(fresh.length, 'client')} of this node's earlier run [LP-8]`);
        for (const c of fresh) {
          asked.add(c);
          this.propose(disconnectOf(this.replica.state, c), 0);
        }
      }
      if (performance.now() > until) {
        throw new Error(`the sessions of this node's earlier run were not ended within ${ms} ms: ${this.version === 0 ? 'no configuration known' : `configuration ${this.version}, this node ${this.role === 'primary' ? 'the primary' : `a ${this.role}`}, ${this.readable ? 'its writes not committed' : 'not yet in step with its group'}`}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /**
   * A snapshot replaces the entries up to it, and with them the replies
   * they carried. Only a learner behind the primary's compacted log gets
   * one: a node that left the configuration (the primary ended its
   * clients' sessions then [LP-8], and the disconnects are among the
   * entries skipped) or a new one. So every client connection closes,
   * its waiting acquire answered with an error; this node's writes that
   * the snapshot holds (request id at most the last applied from this
   * node) are answered "may or may not have been applied" [LP-2].
   */
  private skipTo(applied: ReadonlyMap<number, number>): void {
    const mine = applied.get(this.replica.index) ?? 0;
    for (const p of [...this.pending.values()]) {
      if (p.req > mine) continue; // not in the log yet: sent again, applied once
      this.pending.delete(p.req);
      if (p.owed) this.replica.answer(p.req, `Error: ${ERR_RESYNC}`, 0);
    }
    this.replica.endSessions('this node left the configuration and caught up from a snapshot: its clients\' sessions were ended meanwhile');
  }

  /**
   * Show clients what is applied (Replica.commit releases the replies
   * waiting for it) once this node can vouch for it: see the file comment.
   * Called after every step of the protocol, when leases may have come back.
   */
  private vouch(): void {
    if (this.replica.commitSeq < this.replica.seq && this.host.canRead()) this.replica.commit(this.replica.seq);
  }

  get leads(): boolean {
    return this.role === 'primary';
  }

  /** Whether this node may answer reads now: within the lease bound of its primary's last word [LP-11]. */
  get readable(): boolean {
    return this.host.canRead();
  }

  // ---- this node's proposals ----

  propose(cmd: Command, owedReq: number): void {
    // Disconnects and ends of wait get a request id too: the exactly-once rule keeps them from applying twice.
    const req = owedReq !== 0 ? owedReq : this.replica.nextRequestId();
    const p: Proposal = { cmd, req, owed: owedReq !== 0, sent: false, since: performance.now() };
    this.pending.set(req, p);
    this.send(p);
    this.watchOverdue();
  }

  /**
   * Every request is answered [LP-2]: a write not in the log within the
   * leader wait (a primary that holds it, unable to commit: a secondary
   * failed while the manager cannot be reached) is answered with an error
   * and no longer sent. One already sent may still be logged later: the
   * error says it may or may not have been applied.
   */
  private watchOverdue(): void {
    if (this.overdueTimer !== null || this.closing) return;
    const ms = this.o.leaderWaitMs ?? LEADER_WAIT_MS;
    this.overdueTimer = setTimeout(() => {
      this.overdueTimer = null;
      const now = performance.now();
      let failed = 0;
      let owed = 0;
      for (const p of [...this.pending.values()]) {
        if (!p.owed) continue;
        if (now - p.since < ms) {
          owed++;
          continue;
        }
        this.pending.delete(p.req);
        this.replica.answer(p.req, `Error: ${p.sent ? ERR_LEADER_LOST : ERR_LEADER_UNAVAILABLE}`, 0);
        failed++;
      }
      if (failed > 0) this.replica.log.line('error', `${plural(failed, 'write')} not committed within ${ms} ms: answered with an error`);
      if (owed > 0) this.watchOverdue();
    }, Math.max(10, Math.floor(ms / 4)));
    this.overdueTimer.unref();
  }

  /** To the primary: this node's sequencer, or a forward; held while there is none. */
  private send(p: Proposal): void {
    const cmd = aged(p.cmd, performance.now() - p.since); // [LP-9] less the time it was held
    if (this.role === 'primary') {
      p.sent = true;
      this.sequence(cmd, this.replica.index, p.req);
    } else if (this.role === 'learner') {
      // Outside the configuration: no client of this node has a session to act for (see the file comment).
      this.pending.delete(p.req);
      if (p.owed) this.replica.answer(p.req, `Error: ${ERR_NOT_MEMBER}`, 0);
    } else if (this.primaryId !== null) {
      p.sent = true;
      this.o.links.send(this.primaryId, waits(cmd) ? { v: 1, type: 'forward', req: p.req, cmd, t: Math.round(performance.now()) } : { v: 1, type: 'forward', req: p.req, cmd });
    } else {
      this.awaitLeader();
    }
  }

  /** No primary: hold the writes for a while, then fail those owed a reply (disconnects wait for the next primary). */
  private awaitLeader(): void {
    if (this.leaderless !== null || this.closing) return;
    const ms = this.o.leaderWaitMs ?? LEADER_WAIT_MS;
    this.leaderless = setTimeout(() => {
      this.leaderless = null;
      if (this.primaryId !== null || this.role === 'primary') return;
      const never: number[] = [];
      for (const p of [...this.pending.values()]) {
        if (!p.owed) continue;
        this.pending.delete(p.req);
        if (!p.sent) never.push(p.req);
      }
      for (const req of never) this.replica.answer(req, `Error: ${ERR_LEADER_UNAVAILABLE}`, 0);
      this.replica.failOwn(ERR_LEADER_LOST);
      this.replica.log.line('error', `no primary within ${ms} ms; failed the writes held`);
    }, ms);
    this.leaderless.unref();
  }

  // ---- frames from other nodes ----

  /**
   * A frame from member `from` (decoded and checked by the codec).
   * `lateMs`: how much later than the link's fastest crossing it arrived
   * (link-delay.ts), taken off a forwarded acquire's timeout [LP-9].
   */
  receive(from: string, f: Frame, lateMs = 0): void {
    if (f.type !== 'forward') {
      this.host.receive(f);
      return;
    }
    if (this.role !== 'primary') return; // sent to a primary that is no longer one: its origin sends it again to the next
    const origin = this.o.indexOf(from);
    if (origin === null) return this.replica.log.line('warn', `a forward from ${from}, which is not a node of this cluster: dropped`);
    if (!this.memberIndexes.has(origin)) return this.replica.log.line('warn', `a forward from ${from}, which is not in configuration ${this.version} (its clients' sessions were ended): ${f.cmd.op} dropped`);
    let resumed = this.resumed.get(from);
    if (resumed === undefined) this.resumed.set(from, (resumed = new Set()));
    const problem = forwardError(this.replica.state, f.cmd, origin, resumed);
    if (problem !== null) return this.replica.log.line('error', `node ${from} (index ${origin}) forwarded ${f.cmd.op}: ${problem}; dropped`);
    if (f.cmd.op === 'resume') resumed.add(f.cmd.target);
    this.sequence(lateMs > 0 && waits(f.cmd) ? aged(f.cmd, lateMs) : f.cmd, origin, f.req);
  }

  // ---- the primary's duties ----

  /** Log `cmd` for origin `from`'s request `req`, stamped with log time; held while the primary has no lease from every secondary. */
  private sequence(cmd: Command, from: number, req: number): void {
    if (this.role !== 'primary') return;
    // Held ones first: an origin's writes are sequenced in request-id order
    // (the exactly-once rule), and the version's floor before any grant.
    // A version whose token space is nearly spent takes no more writes
    // until the next version is stored (token-space.ts).
    if (this.held.length > 0 || this.replica.state.nextToken >= this.spaceEnd() || this.host.tryPropose(() => ({ at: this.replica.clock.stamp(), cmd, origin: from, req })) === null) {
      this.held.push({ cmd, from, req, since: performance.now() });
      this.retryHeld();
    }
  }

  /** Where this version's token space ends, less a margin for the grants of writes already in the log (set with the version). */
  private spaceEnd(): number {
    return this.spaceLimit;
  }

  private spaceLimit = Infinity;

  /** This node's limits as a `limits` entry carries them: they do not change while it runs. */
  private ownLimits(): WriteLimits {
    const l = this.replica.limits;
    return l.maxLocks === undefined ? { maxLocksPerClient: l.maxLocksPerClient, maxWaitersPerLock: l.maxWaitersPerLock } : { maxLocksPerClient: l.maxLocksPerClient, maxWaitersPerLock: l.maxWaitersPerLock, maxLocks: l.maxLocks };
  }

  /**
   * Logged first in each version this node leads: the floor of its token
   * space [LP-7], then this node's limits, which every grant sequenced
   * after them is refused by on every replica alike (the table keeps them;
   * nothing is stamped into each grant).
   */
  private logVersionStart(): void {
    try {
      this.sequence({ op: 'floor', token: floorOf(this.version) }, this.replica.index, 0);
    } catch (err) {
      if (!(err instanceof TokenSpaceError)) throw err;
      this.replica.log.line('error', err.message);
    }
    this.sequence({ op: 'limits', limits: this.ownLimits() }, this.replica.index, 0);
  }

  /** Try the held writes again soon (a lease comes back with the next acks, or a new configuration lets the primary go on). */
  private retryHeld(): void {
    if (this.heldTimer !== null || this.closing) return;
    this.heldTimer = setTimeout(() => {
      this.heldTimer = null;
      if (this.role !== 'primary') {
        this.held = []; // their origins send them again to the next primary
        return;
      }
      const held = this.held;
      this.held = [];
      for (let i = 0; i < held.length; i++) {
        const h = held[i] as (typeof held)[number];
        this.sequence(aged(h.cmd, performance.now() - h.since), h.from, h.req);
        if (this.held.length > 0) {
          // Still held (no lease yet, or the token space): the rest after it, in order.
          this.held.push(...held.slice(i + 1));
          break;
        }
      }
    }, Math.max(5, Math.floor(this.o.timing.heartbeatMs / 2)));
    this.heldTimer.unref();
  }

  private applyAll(entries: Array<Entry<EntryData>>): void {
    for (const e of entries) this.applyEntry({ seq: e.seq, at: e.data.at, cmd: e.data.cmd, from: e.data.origin, req: e.data.req });
    this.vouch(); // the group committed them; clients see them once this node can vouch for them
    if (this.role === 'primary') {
      // Asked again after each batch until a new version is stored (a proposal the manager did not answer is dropped).
      if (spaceRunningOut(this.version, this.replica.state.nextToken) && this.host.renewVersion() && !this.renewing) {
        this.renewing = true;
        this.replica.log.line('info', `tokens past half of configuration ${this.version}'s space: moving to the next version`);
      }
      this.dutyTimer.arm();
      if (this.sweepOnReconcile && this.host.group.reconciled) {
        this.sweepOnReconcile = false;
        this.sweepNodesOutside();
      }
    }
  }

  private applyEntry(e: LogEntry): void {
    const mine = e.from === this.replica.index && e.req !== 0 ? this.pending.get(e.req) : undefined;
    if (mine !== undefined) this.pending.delete(e.req);
    // The second check of every command: skipped alike on every node.
    const problem = commandError(e.cmd);
    if (problem !== null) {
      this.replica.log.line('error', `log entry ${e.seq} skipped: not a command the lock table can apply (${problem})`);
      this.replica.skip(e.seq);
      if (e.from === this.replica.index && e.req !== 0) this.replica.answer(e.req, `Error: the write was logged malformed and skipped (${problem})`, e.seq);
      return;
    }
    if (e.req !== 0) {
      if (e.req <= (this.appliedReq.get(e.from) ?? 0)) {
        this.replica.skip(e.seq); // a duplicate: sent again to a new primary
        // Still pending here, so never applied: sequenced behind a newer one of this node. Never leave it unanswered.
        if (mine !== undefined) {
          this.replica.log.line('error', `log entry ${e.seq}: this node's write ${e.req} was sequenced after a newer one and not applied`);
          if (mine.owed) this.replica.answer(e.req, `Error: ${ERR_LEADER_UNAVAILABLE}`, e.seq);
        }
        return;
      }
      this.appliedReq.set(e.from, e.req);
    }
    this.duties.applied(e.cmd, this.replica.applyEntry(e), e.at);
  }

  private configChanged(role: Role, c: GroupConfig): void {
    const was = this.role;
    const before = this.members;
    this.role = role;
    this.members = new Set([c.primary, ...c.secondaries]);
    this.memberIndexes = new Set([...this.members].map((m) => this.o.indexOf(m)).filter((i): i is number => i !== null));
    const primaryBefore = this.primaryId;
    this.primaryId = role === 'primary' ? null : c.primary;
    this.version = c.version;
    this.spaceLimit = c.version > 0 && c.version < MAX_VERSION ? floorOf(c.version + 1) - 2 ** 30 : Infinity;
    // Asked for this version because the last one's token space ran low: its floor is logged below.
    const renewed = this.renewing;
    this.renewing = false;
    const tookOver = role === 'primary' && was !== 'primary';
    this.replica.log.line(tookOver ? 'warn' : 'info', `${tookOver ? 'now the primary: ' : ''}configuration ${c.version}: primary ${c.primary}, secondaries ${c.secondaries.join(', ') || 'none'}; this node is ${role === 'primary' ? 'the primary' : `a ${role}`}`);
    if (role === 'primary' && c.secondaries.length < (this.o.minSecondaries ?? 0)) {
      this.replica.log.line('warn', `configuration ${c.version} holds ${plural(c.secondaries.length, 'secondary', 'secondaries')}, fewer than --min-secondaries ${this.o.minSecondaries ?? 0}: writes wait for a secondary to be added, and are answered with an error after ${this.o.leaderWaitMs ?? LEADER_WAIT_MS} ms; reads go on`);
    }
    if (role === 'primary') {
      // The floor of the version it took over in, or moved to for space (token-space.ts), and its limits;
      // going on into a version that only changed the members, it keeps counting.
      if (tookOver || renewed) this.logVersionStart();
      if (was !== 'primary') {
        this.takeOver();
        this.o.onTakeOver?.();
      }
      else {
        // Writes held for want of a lease, from a node now removed: their sessions end below.
        this.held = this.held.filter((h) => this.memberIndexes.has(h.from));
        for (const m of before) if (!this.members.has(m)) this.dropNode(m);
      }
    } else if (role === 'learner') {
      if (was === 'primary') this.stopSequencing();
      if (was !== 'learner') this.leaveConfiguration(c.version);
    } else {
      if (was === 'primary') this.stopSequencing();
      if (this.primaryId !== primaryBefore) {
        if (this.leaderless !== null) clearTimeout(this.leaderless);
        this.leaderless = null;
        for (const p of this.pending.values()) this.send(p); // in order; duplicates are skipped when applied
      }
    }
  }

  /**
   * This node is out of the configuration: its primary ended (or will
   * end) the sessions of its clients [LP-8]. What it owes is answered with
   * an error, since a write sent may have been logged before that; replies
   * waiting for this node to vouch for them fail alike; every connection
   * closes. Nothing pending is sent again: it would act for ended sessions.
   */
  private leaveConfiguration(version: number): void {
    if (this.leaderless !== null) clearTimeout(this.leaderless);
    this.leaderless = null;
    for (const p of this.pending.values()) if (p.owed) this.replica.answer(p.req, `Error: ${ERR_LEADER_LOST}`, 0);
    this.pending.clear();
    this.replica.failUncommitted(ERR_LEADER_LOST, ERR_LEADER_LOST);
    this.replica.endSessions(`this node is not in configuration ${version}: the cluster ended its clients' sessions`);
  }

  /**
   * Become the sequencer: timers from the table, the sessions of every node
   * outside the configuration end (now, and again once the log taken over
   * is applied: the old primary's last writes may be in it), then this
   * node's own writes.
   */
  private takeOver(): void {
    this.duties.takeOver();
    this.dutyTimer.arm();
    // This node's own writes first: the sweep's disconnects take newer request
    // ids, and an origin's writes must be sequenced in request-id order (the
    // exactly-once rule skips one below the last applied).
    for (const p of this.pending.values()) this.send(p);
    this.sweepNodesOutside();
    this.sweepOnReconcile = !this.host.group.reconciled;
  }

  /** End the sessions of every node whose index no member of the configuration has [LP-8]. */
  private sweepNodesOutside(): void {
    const inConfig = new Set<number>();
    for (const m of this.members) {
      const i = this.o.indexOf(m);
      if (i !== null) inConfig.add(i);
    }
    for (const i of this.duties.nodesServing(nodeOfClient)) if (!inConfig.has(i)) this.dropClientsOf(i);
  }

  /** A member left the configuration: its node's clients' sessions end [LP-8], unless another run of it is still a member. */
  private dropNode(id: string): void {
    const i = this.o.indexOf(id);
    if (i === null) return;
    for (const m of this.members) if (this.o.indexOf(m) === i) return;
    this.dropClientsOf(i);
  }

  private dropClientsOf(index: number): void {
    const gone = this.duties.sessionsEndedBy(index, nodeOfClient);
    if (gone.length === 0) return;
    this.replica.log.line('warn', `node ${index} left the configuration: ending the sessions of its ${plural(gone.length, 'client')}`);
    for (const cmd of gone) this.sequence(cmd, this.replica.index, this.replica.nextRequestId());
  }

  private stopSequencing(): void {
    this.dutyTimer.cancel();
    this.duties.stop();
    this.held = [];
  }

  clientEntries(): number {
    return this.pending.size + this.held.length + this.duties.size;
  }

  followerAcks(): Record<string, number> | undefined {
    return undefined;
  }

  async close(): Promise<void> {
    this.closing = true;
    this.stopSequencing();
    for (const t of [this.leaderless, this.heldTimer, this.overdueTimer]) if (t !== null) clearTimeout(t);
    await this.host.close();
  }
}
