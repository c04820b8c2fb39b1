/**
 * A node on etcd (issue 13, step 2): role-less.
 *
 * Every node, the leader too, applies the committed log from etcd in order
 * (EtcdLog.tail) through the pure lock table, with each entry's time, and
 * answers its own clients from it: a write's reply, a waiter's grant or
 * timeout, all derived from the entries, as followers do in-process. So
 * everything a node shows is committed [LP-11]: its commit index is what it
 * has applied.
 *
 * Leading is a role, not a class: the node that holds etcd's election
 * sequences writes. It stamps each proposal with its clock and appends it
 * (guarded by its election key, group commit), and it alone runs the
 * timers that become `expire` and `timeout` commands. Other nodes forward
 * their clients' writes to it over a TCP link (transport-tcp.ts), learning
 * its link address from the election's value.
 *
 * Exactly once: every proposal carries its origin's index and a request id
 * that only rises (from the clock in µs at start, so a restarted node never
 * reuses one). Every node skips an entry whose request id is not above the
 * last one applied from that origin, so a write re-sent to a new leader
 * after failover is applied once, identically everywhere.
 *
 * Liveness (EtcdMembership): each node is live under its own etcd lease.
 * The leader ends the sessions [LP-8] of a node whose lease expired; a node
 * that cannot renew its lease in time stops serving first (fail-stop).
 *
 * Leases across failover: a lease ends at the time in the table, read on
 * the leader's clock; the entry that set it carries the old leader's. So a
 * new leader fires no expiry before its takeover plus a grace
 * (`leaseGraceMs`, default 500 ms): with clock offsets between nodes below
 * the grace (the clock assumption; NTP keeps hosts well inside it), it
 * never ends a lease before the old leader would have, as Chubby's new
 * master extends leases by a grace. (A grace of the election TTL's
 * multiple, tried first, let leases pile up when the leader was killed
 * every 5 s: each leader's expiry window was too short.)
 *
 * Snapshots: the leader writes one every SNAPSHOT_EVERY_ENTRIES entries
 * (with the exactly-once state) and compacts the log behind it; a node
 * starts from the latest and the log after it.
 *
 * Node links are TLS when the node serves clients over TLS (the same
 * certificate; peers trusted by --tls-ca, or by that certificate).
 *
 * Resource limits (issue 6 §2): the leader stamps --max-locks-per-client
 * and --max-waiters into each preempt and acquire it sequences, and
 * apply() refuses one they forbid, on every node alike.
 *
 * Threading: the node's worker thread.
 */
import type { Server } from 'node:net';
import { apply, createState, deadlineOf, snapshot, type ClientId, type Command, type Reply } from '../core/lock-table.js';
import { compactBehind, loadSnapshot, saveSnapshot } from '../replication/etcd-snapshot.js';
import type { Batch, TailHandle } from '../replication/replication-etcd.js';
import type { Frame } from '../codec/frame.js';
import { DEFAULT_NODE_TTL_S, EtcdMembership, type MemberInfo } from '../replication/etcd-members.js';
import { DEFAULT_ELECTION_TTL_S, DeposedError, EtcdLog } from '../replication/replication-etcd.js';
import type { LogEntry } from '../replication/replication.js';
import { TcpTransport } from '../transport/transport-tcp.js';
import { nodeOfClient } from './client-ids.js';
import type { ClientConnection, Ticket } from './connection.js';
import { NodeBase, type NodeOptions } from './node.js';
import { ERR_LEADER_LOST, ERR_LEADER_UNAVAILABLE } from '../replication/port-backup.js';
import { TimerHeap } from './timer-heap.js';
import { serveViews } from './views.js';

/** See leaseGraceMs. */
export const LEASE_GRACE_MS = 500;

/**
 * A read is refused once this node's last lease renewal that etcd
 * confirmed is older than this (etcd unreachable, or without quorum): its
 * replica may then lag the log by that long [LP-11]. Renewals are sent
 * every third of the node TTL, so a healthy node's stays under a third;
 * jeopardy stops the node at two thirds. Half the TTL lies between.
 */
export const READ_CONTACT_FRACTION = 0.5;

/** A write or read this node will not answer: it lost etcd (see EtcdNode.failStop). */
export const ERR_NODE_STOPPED = 'this node lost contact with etcd (unreachable, or without quorum) and stopped serving';

/** The leader snapshots the table (and compacts the log behind it) every this many entries. */
export const SNAPSHOT_EVERY_ENTRIES = 20_000;

/**
 * Writes wait this long for a leader before they fail with a named error,
 * ms: a failover takes the election TTL (2 s), plus as long again when
 * etcd's own Raft leader changed meanwhile (its new leader extends every
 * lease, the dead leader's election key's too), plus the link.
 */
const LEADER_WAIT_MS = 10_000;

/** The tail watchdog (watchTail): how often it asks where the log ends, and how long the log may be ahead with nothing applied, ms. */
const TAIL_CHECK_MS = 1000;
const TAIL_STALL_MS = 2000;

/** A link to the leader that could not be made is tried again after this long, ms. */
const LINK_RETRY_MS = 250;

/** How long a fail-stopping node lets its clients read the errors it answered before it drops them, ms. */
const FAIL_STOP_DRAIN_MS = 200;

export interface EtcdNodeOptions extends NodeOptions {
  etcd: string[];
  cluster: string;
  /** Address the node-link listener binds (forwarded writes come in there). */
  linkHost: string;
  electionTtlS?: number;
  nodeTtlS?: number;
  /** How long writes wait for a leader before they fail, ms. */
  leaderWaitMs?: number;
  /** After taking over, no lease expires before this long: the bound on clock offsets between nodes, ms. */
  leaseGraceMs?: number;
  /** A `dlock node`: its client-id ordinals come from etcd, reserved in blocks ahead of use [LP-4]. */
  reserveIds?: boolean;
  /**
   * With `tls` (the client listener's certificate and key): node links are
   * TLS too, on the same certificate, and a node trusts the peers whose
   * certificate this CA (PEM) signed; absent: the certificate itself (one
   * self-signed certificate for the whole cluster).
   */
  tlsCa?: string | null;
  /**
   * Called once when the node has fail-stopped (failStop): its clients
   * answered and closed, its listeners closed, its etcd client closed. The
   * host starts a new node in its place (`dlock node` rejoins once etcd
   * answers). Absent: thrown on the node's thread, where the worker's
   * supervisor handles it as any crash.
   */
  onStop?: (why: string) => void;
}

interface Proposal {
  cmd: Command;
  req: number;
}

interface Own {
  conn: ClientConnection;
  ticket: Ticket;
  cmd: Command;
  /** Handed to a leader at least once. */
  sent: boolean;
}

/** The election value: who leads and where its link listens. */
interface LeaderInfo {
  name: string;
  index: number;
  link: string;
}

export class EtcdNode extends NodeBase {
  private readonly etcdLog: EtcdLog;
  private readonly members: EtcdMembership;
  private seq = 0;
  private nextReq = Date.now() * 1000;
  /** Proposals of this node not yet seen in the log, in order (re-sent to each new leader). */
  private readonly pending = new Map<number, Proposal>();
  /** This node's clients' writes awaiting their entry. */
  private readonly own = new Map<number, Own>();
  private readonly waitingReq = new Map<ClientId, number>();
  /** Highest request id applied per origin node: the exactly-once rule. */
  private readonly appliedReq = new Map<number, number>();
  private leading = false;
  /** Leading and caught up with the log: proposals are appended. */
  private sequencing = false;
  private leadTo = 0;
  private takeoverAt = 0;
  /** Proposals that reached this node as leader before it caught up. */
  private held: Array<Proposal & { from: number }> = [];
  private link: TcpTransport | null = null;
  private linkTo: string | null = null;
  /** The election's last value seen. */
  private leaderValue: string | undefined = undefined;
  private linkServer: Server | null = null;
  private linkAddress = '';
  private readonly followerLinks = new Map<TcpTransport, number | null>();
  /** Observer links (views.ts). */
  private readonly observers = new Set<TcpTransport>();
  /**
   * As leader: forwards from a node index this node has not yet seen join,
   * held until it has. A node's earlier run's leave is seen before its new
   * run's join (one watch, in etcd's order), so the sessions the leader
   * ends at that leave are all the earlier run's, never the new one's.
   */
  private heldForwards = new Map<number, Proposal[]>();
  private leaderless: NodeJS.Timeout | null = null;
  private readonly timers = new TimerHeap<{ client: ClientId; lock: string }>((d) => this.sequence({ op: 'timeout', client: d.client, lock: d.lock }));
  private leaseTimer: NodeJS.Timeout | null = null;
  /** Expire commands proposed and not yet applied, by token. */
  private readonly expiring = new Set<number>();
  private live = new Set<number>();
  /** The last batch applied (for a snapshot's meta), the last snapshot's seq, and whether one is being written. */
  private lastBatch = { revision: 0, batch: 0 };
  private snapSeq = 0;
  private snapshotting = false;
  /** failStop() ran: nothing more is served. */
  private failed = false;
  /** start() finished; before, a fail-stop only makes start() throw. */
  private started = false;
  private onCaughtUp: (() => void) | null = null;
  readonly firstSync = new Promise<void>((resolve) => {
    this.onCaughtUp = resolve;
  });

  constructor(private readonly eopts: EtcdNodeOptions) {
    super(eopts);
    this.etcdLog = new EtcdLog({ hosts: eopts.etcd, cluster: eopts.cluster, node: '', electionTtlS: eopts.electionTtlS ?? DEFAULT_ELECTION_TTL_S });
    this.members = new EtcdMembership(this.etcdLog.client, eopts.cluster, eopts.name, eopts.nodeTtlS, eopts.etcd);
  }

  /** Where other nodes link to this one (host:port), once started. */
  get linkEndpoint(): string {
    return this.linkAddress;
  }

  /**
   * The role once the election has settled (this node leads, or another
   * does), or as it is after `timeoutMs`: for the ready line.
   */
  async settledRole(timeoutMs = 3000): Promise<'leader' | 'follower'> {
    const until = Date.now() + timeoutMs;
    const other = (): boolean => {
      const v = this.leaderValue;
      return v !== undefined && v !== '' && (JSON.parse(v) as LeaderInfo).link !== this.linkAddress;
    };
    while (!this.leading && !other() && Date.now() < until && !this.stopping) await new Promise((resolve) => setTimeout(resolve, 20));
    return this.role;
  }

  get role(): 'leader' | 'follower' {
    return this.leading ? 'leader' : 'follower';
  }

  get applied(): number {
    return this.seq;
  }

  protected roleClientEntries(): number {
    return this.own.size + this.waitingReq.size;
  }

  /**
   * Join: the link listener, membership, the log from its start (caught up
   * before this resolves), the leader's link, and the campaign.
   */
  async start(): Promise<void> {
    this.linkServer = await TcpTransport.listen(this.eopts.linkHost, 0, { authToken: this.eopts.authToken ?? null, tls: this.eopts.tls ?? null }, (t) => this.acceptLink(t));
    const addr = this.linkServer.address();
    this.linkAddress = `${this.eopts.linkHost}:${typeof addr === 'object' && addr !== null ? addr.port : 0}`;
    await this.members.join({ address: '', link: this.linkAddress }, (why) => this.jeopardy(why), this.index);
    // The latest snapshot, then the log after it (issue 13: a node that
    // joins or restarts does not replay the log from its start).
    // An empty table starts at the cluster's first token, which etcd keeps.
    this.firstTokenOfCluster = await this.etcdLog.firstToken(this.eopts.firstToken ?? 1);
    // The leader may write a snapshot and compact etcd's history while this
    // node reads the log after the one it loaded (a page pinned to a
    // revision, or the watch, then finds it compacted): load the newer one
    // and read on from it.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.loadAndTail();
        break;
      } catch (err) {
        if (attempt >= 5 || !/compacted/i.test((err as Error).message) || this.stopping) throw err;
        this.logLine('warn', `the log was compacted while this node read it (${(err as Error).message}): loading the newer snapshot`);
      }
    }
    this.tailTimer = setInterval(() => void this.watchTail(), TAIL_CHECK_MS);
    this.tailTimer.unref();
    this.onCaughtUp?.();
    this.onCaughtUp = null;
    await this.members.watch((m) => this.membersChanged(m));
    await this.etcdLog.observeLeader((v) => this.leaderChanged(v));
    void this.campaign();
    await this.endOwnPastSessions();
    if (this.stopping) throw new Error(`stopped while starting${this.failed ? ' (lost etcd)' : ''}`);
    this.started = true;
    // What `dlock status` shows: applied seq, role, client address; once a second when it changed.
    this.publishTimer = setInterval(() => {
      this.members.publish(this.seq, this.leading, this.address ?? '').catch((err: unknown) => this.warnUnlessStopping(`publishing status: ${(err as Error).message}`));
    }, 1000);
    this.publishTimer.unref();
    if (this.eopts.reserveIds === true) {
      this.reserveTimer = setInterval(() => {
        this.members.extend(Atomics.load(this.eopts.idCounter, 0)).catch((err: unknown) => this.warnUnlessStopping(`reserving client ids: ${(err as Error).message}`));
      }, 1000);
      this.reserveTimer.unref();
    }
  }


  /** The latest snapshot (or the empty table), then the log after it, until caught up; the tail follows on. */
  private async loadAndTail(): Promise<void> {
    this.tailHandle?.cancel();
    this.tailHandle = null;
    this.state = createState(this.firstTokenOfCluster);
    this.seq = 0;
    this.snapSeq = 0;
    this.lastBatch = { revision: 0, batch: 0 };
    this.appliedReq.clear();
    const snap = await loadSnapshot(this.etcdLog.client, this.eopts.cluster);
    let from = { revision: 0, nextSeq: 1 };
    if (snap !== null) {
      this.state = snap.state;
      this.seq = snap.meta.seq;
      this.snapSeq = snap.meta.seq;
      this.lastBatch = { revision: snap.meta.revision, batch: snap.meta.batch };
      for (const [origin, req] of snap.meta.extra ?? []) this.appliedReq.set(origin, req);
      this.loadedAt(snap.meta.seq);
      this.advanceCommit(snap.meta.seq);
      from = { revision: snap.meta.revision, nextSeq: snap.meta.seq + 1 };
      this.logLine('repl', `snapshot at seq ${snap.meta.seq}: ${this.state.locks.size} locks`);
    }
    // Caught up once tail() returns: what its range read found is applied.
    this.tailHandle = await this.etcdLog.tail(
      from,
      (b) => this.applyBatch(b),
      (err) => this.fatal(`the log cannot be followed: ${err.message}`),
    );
  }

  private firstTokenOfCluster = 1;
  private reserveTimer: NodeJS.Timeout | null = null;
  private tailTimer: NodeJS.Timeout | null = null;
  private tailHandle: TailHandle | null = null;
  /** The tail watchdog: the batch this node was at when it first saw etcd's log ahead of it, and when. */
  private behind: { batch: number; since: number } | null = null;
  private checkingTail = false;

  /**
   * The tail's watchdog. A watch is one stream on one etcd member; behind
   * a partition that member sends nothing, not even an error (no RST), and
   * this node would apply nothing more, its clients' writes unanswered,
   * until TCP gave up, minutes (seen by hand across namespaces: a follower
   * answered after 78 s). So every TAIL_CHECK_MS it asks etcd (a read that
   * needs a leader, on whichever member the client picks) where the log
   * ends; when the log has been ahead of this node for TAIL_STALL_MS with
   * no batch applied meanwhile, it drops that tail and follows the log
   * again from what it has applied. Batches a dropped tail would still
   * deliver are not delivered (TailHandle.cancel), and applyBatch skips
   * what it has applied, so two tails never apply an entry twice.
   */
  private async watchTail(): Promise<void> {
    if (this.stopping || this.checkingTail) return;
    this.checkingTail = true;
    try {
      const end = await this.etcdLog.lastBatch().catch(() => null); // no answer now: ask again at the next check
      const at = this.lastBatch.batch;
      if (end === null || end <= at) {
        this.behind = null;
        return;
      }
      if (this.behind === null || this.behind.batch !== at) {
        this.behind = { batch: at, since: Date.now() };
        return;
      }
      if (Date.now() - this.behind.since < TAIL_STALL_MS) return;
      this.logLine('warn', `the log's tail stalled at batch ${at} (etcd's log ends at ${end}): following it again`);
      this.behind = null;
      this.tailHandle?.cancel();
      this.tailHandle = null;
      const handle = await this.etcdLog.tail(
        { revision: this.lastBatch.revision, nextSeq: this.seq + 1 },
        (b) => this.applyBatch(b),
        (err) => this.fatal(`the log cannot be followed: ${err.message}`),
      );
      if (this.stopping) handle.cancel(); // stopped meanwhile
      else this.tailHandle = handle;
    } catch (err) {
      // Compacted past what this node applied (a snapshot was written meanwhile): start again from it.
      if (/compacted/i.test((err as Error).message)) this.fatal(`the log was compacted past this node's seq ${this.seq}: ${(err as Error).message}`);
      // The new tail's reads failed (etcd unreachable from here too): the next check tries again.
      else this.warnUnlessStopping(`following the log again failed: ${(err as Error).message}`);
    } finally {
      this.checkingTail = false;
    }
  }
  private publishTimer: NodeJS.Timeout | null = null;

  /**
   * Clients of this node's index still in the table belong to an earlier
   * run of this node (its connections died with it): end their sessions
   * [LP-8] before taking clients, which would share the index. The leader
   * does it too when it sees that run leave, but if no leader saw it (it
   * died and came back while none led), nobody else would.
   */
  private async endOwnPastSessions(): Promise<void> {
    const mine = (): ClientId[] => [...new Set([...this.state.locks.sessionOwners(), ...this.state.waiting.keys()])].filter((c) => nodeOfClient(c) === this.index);
    const past = mine().sort((a, b) => a - b);
    if (past.length === 0) return;
    this.logLine('warn', `ending the sessions of ${past.length} client(s) of this node's earlier run`);
    for (const client of past) this.propose({ op: 'disconnect', client });
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (mine().length === 0 || this.stopping) {
          clearInterval(check);
          resolve();
        }
      }, 20);
    });
  }

  private logLine(kind: 'info' | 'warn' | 'error' | 'repl', text: string): void {
    this.log.line(kind, text);
  }

  /** A call to etcd that failed: news while serving; expected once stopped (its client is closed). */
  private warnUnlessStopping(text: string): void {
    if (!this.stopping) this.logLine('warn', text);
  }

  // ---- applying the log (every node) ----

  private applyBatch(b: Batch): void {
    // A batch from a tail that was replaced may repeat entries (watchTail): skip what is applied.
    const entries = b.entries.filter((e) => e.seq > this.seq);
    if (entries.length === 0) return;
    if ((entries[0] as LogEntry).seq !== this.seq + 1) {
      this.fatal(`the log skipped from seq ${this.seq} to ${(entries[0] as LogEntry).seq}`);
      return;
    }
    for (const e of entries) this.applyEntry(e);
    this.lastBatch = { revision: b.revision, batch: b.batch };
    this.advanceCommit(this.seq); // everything applied here is committed in etcd
    if (this.leading) {
      if (!this.sequencing && this.seq >= this.leadTo) this.startSequencing();
      if (this.sequencing) {
        this.armLeases();
        if (this.seq - this.snapSeq >= SNAPSHOT_EVERY_ENTRIES && !this.snapshotting) void this.takeSnapshot();
      }
    }
  }

  /**
   * As leader: the table as of the last batch applied, into etcd, then the
   * log behind it compacted. The copy is made now (synchronously); the
   * writes go on while the node serves.
   */
  private async takeSnapshot(): Promise<void> {
    this.snapshotting = true;
    const t0 = Date.now();
    const meta = { seq: this.seq, revision: this.lastBatch.revision, batch: this.lastBatch.batch, extra: [...this.appliedReq] };
    const snap = snapshot(this.state);
    try {
      const saved = await saveSnapshot(this.etcdLog.client, this.eopts.cluster, snap, meta);
      const gone = await compactBehind(this.etcdLog.client, this.eopts.cluster, saved);
      this.snapSeq = meta.seq;
      this.logLine('repl', `snapshot at seq ${meta.seq} written (${snap.count} locks, ${saved.parts} part(s), ${Date.now() - t0} ms); ${gone} log batch(es) behind it removed`);
    } catch (err) {
      this.logLine('warn', `snapshot at seq ${meta.seq} not written: ${(err as Error).message}`);
    } finally {
      this.snapshotting = false;
    }
  }

  private applyEntry(e: LogEntry): void {
    this.seq = e.seq;
    if (e.req !== 0) {
      // Exactly once: a request re-sent after failover may be in the log twice.
      if (e.req <= (this.appliedReq.get(e.from) ?? 0)) return;
      this.appliedReq.set(e.from, e.req);
    }
    const out = apply(this.state, e.cmd, e.at);
    if (e.from === this.index && e.req !== 0) {
      this.pending.delete(e.req);
      const w = this.own.get(e.req);
      if (w !== undefined && out.reply !== null) this.answer(e.req, out.reply);
    }
    if (e.cmd.op === 'timeout' && out.reply !== null) this.answerWaiter(e.cmd.client, out.reply);
    for (const w of out.wakes) this.answerWaiter(w.client, w.reply);
    if (e.cmd.op === 'expire') this.expiring.delete(e.cmd.token);
    if (this.sequencing && out.waits !== null && e.cmd.op === 'acquire') {
      const deadline = deadlineOf(e.cmd, e.at);
      if (deadline !== null) this.timers.add(deadline, out.waits);
    }
    if (this.log.requests) {
      for (const c of out.changes) this.logLine('repl', c.kind === 'set' ? `UpdateLockmap ${c.lock} ${c.owner}` : `RemoveLockmap ${c.lock}`);
    }
  }

  private answer(req: number, reply: Reply | string): void {
    const w = this.own.get(req);
    if (w === undefined) return;
    this.own.delete(req);
    if (w.cmd.op === 'acquire' && this.waitingReq.get(w.cmd.client) === req) this.waitingReq.delete(w.cmd.client);
    w.conn.resolve(w.ticket, reply, typeof reply === 'string' ? 0 : this.seq);
  }

  private answerWaiter(client: ClientId, reply: Reply): void {
    const req = this.waitingReq.get(client);
    if (req !== undefined) this.answer(req, reply);
  }

  // ---- this node's clients ----

  /**
   * Reads come from this node's replica [LP-11], which follows etcd's log:
   * while the node cannot show it is in contact with etcd, the replica may
   * lag by as long, so the read is refused, saying how long (issue 13:
   * reads either say how stale they may be or are refused).
   */
  override read(req: Parameters<NodeBase['read']>[0]): string {
    if (this.failed) return `Error: ${ERR_NODE_STOPPED}`;
    const ago = this.members.confirmedAgoMs();
    const limit = (this.eopts.nodeTtlS ?? DEFAULT_NODE_TTL_S) * 1000 * READ_CONTACT_FRACTION;
    if (ago > limit) return `Error: no contact with etcd for ${ago} ms (unreachable, or without quorum): this node's replica may be that stale; read through another node or retry`;
    return super.read(req);
  }

  submit(conn: ClientConnection, ticket: Ticket, cmd: Command): void {
    if (this.failed) {
      conn.resolve(ticket, `Error: ${ERR_NODE_STOPPED}; the request was not applied`, 0);
      return;
    }
    const { req, sent } = this.propose(cmd);
    this.own.set(req, { conn, ticket, cmd, sent });
    if (cmd.op === 'acquire' && cmd.timeout !== 0) this.waitingReq.set(cmd.client, req);
  }

  endWait(client: ClientId, lock: string): void {
    this.propose({ op: 'timeout', client, lock });
  }

  protected disconnect(conn: ClientConnection): void {
    // Stopped: the leader ends this node's sessions when its lease expires
    // (and a rejoining run ends any left, endOwnPastSessions).
    if (this.failed) return;
    const req = this.waitingReq.get(conn.id);
    if (req !== undefined) {
      this.waitingReq.delete(conn.id);
      this.own.delete(req);
    }
    this.propose({ op: 'disconnect', client: conn.id }); // [LP-8]
  }

  /** A proposal of this node: kept until its entry is applied, sent to whoever leads; whether it went at once. */
  private propose(cmd: Command): { req: number; sent: boolean } {
    const req = this.nextReq++;
    const p = { cmd, req };
    this.pending.set(req, p);
    return { req, sent: this.forward(p) };
  }

  /** Hand a proposal to the leader: this node, or over its link. False when there is none now. */
  private forward(p: Proposal): boolean {
    if (this.leading) {
      this.sequence(p.cmd, this.index, p.req);
      return true;
    }
    if (this.link !== null && !this.link.closed) {
      this.link.send({ v: 1, type: 'forward', req: p.req, cmd: p.cmd });
      return true;
    }
    this.awaitLeader();
    return false;
  }

  /** No leader to send to: hold the writes for a while, then fail them with named errors. */
  private awaitLeader(): void {
    if (this.leaderless !== null || this.stopping) return;
    const ms = this.eopts.leaderWaitMs ?? LEADER_WAIT_MS;
    this.leaderless = setTimeout(() => {
      this.leaderless = null;
      if (this.leading || (this.link !== null && !this.link.closed)) return;
      for (const [req, w] of this.own) {
        this.pending.delete(req);
        this.answer(req, `Error: ${w.sent ? ERR_LEADER_LOST : ERR_LEADER_UNAVAILABLE}`);
      }
      this.logLine('error', `no leader within ${ms} ms; failed the writes held`);
    }, ms);
  }

  /** A new way to the leader: send every proposal not yet in the log, in order (duplicates are skipped when applied). */
  private resend(): void {
    if (this.leaderless !== null) clearTimeout(this.leaderless);
    this.leaderless = null;
    for (const p of this.pending.values()) {
      this.forward(p);
      const w = this.own.get(p.req);
      if (w !== undefined) w.sent = true;
    }
  }

  // ---- the leader's link and the election ----

  /**
   * The election's value changed (or a link to the leader closed: `value`
   * is then the last one seen). Another node leads: what this node held as
   * a would-be leader is dropped and the links to it closed, so their
   * nodes send it all again, in order, to the leader; and this node links
   * to that leader and sends it every proposal of its own not yet in the
   * log, in order. Order matters: an origin's requests must reach the log
   * in request order for the exactly-once rule (a request id not above the
   * last applied is a duplicate), so nothing is ever dropped silently: a
   * link that lost something is closed, and a new link re-sends it all.
   */
  private leaderChanged(value: string | undefined): void {
    this.leaderValue = value;
    const info = value === undefined || value === '' ? null : (JSON.parse(value) as LeaderInfo);
    // This run, by its link address: an earlier run of this node's name
    // (its election key lingers until its lease expires) is another node,
    // one this run cannot reach.
    const self = info !== null && info.link === this.linkAddress;
    if (info !== null && !self) this.notLeading();
    if (info === null || self) {
      if (this.link !== null) this.link.close();
      this.link = null;
      this.linkTo = null;
      return;
    }
    if (this.linkTo === info.link && this.link !== null && !this.link.closed) return;
    this.link?.close();
    this.link = null;
    this.linkTo = info.link;
    const [host, port] = [info.link.slice(0, info.link.lastIndexOf(':')), Number(info.link.slice(info.link.lastIndexOf(':') + 1))];
    const tls = this.eopts.tls === undefined || this.eopts.tls === null ? null : { ca: this.eopts.tlsCa ?? this.eopts.tls.cert };
    TcpTransport.connect(host, port, { authToken: this.eopts.authToken ?? null, tls }).then(
      (t) => {
        if (this.linkTo !== info.link) {
          t.close(); // the leader changed meanwhile
          return;
        }
        this.link = t;
        t.onFrames((frames) => this.onLeaderFrames(frames));
        t.onClose((why) => {
          if (this.link !== t) return;
          this.link = null;
          this.linkTo = null;
          this.logLine('warn', `link to the leader ${info.name} closed: ${why}`);
          // Link again to whoever leads now, and send what is pending again.
          if (!this.stopping) setTimeout(() => this.relink(), 100).unref();
        });
        t.send({ v: 1, type: 'hello', node: this.name, incarnation: String(this.index), seq: this.seq });
        this.logLine('repl', `linked to the leader ${info.name} at ${info.link}`);
        this.resend();
      },
      (err: unknown) => {
        this.logLine('warn', `cannot link to the leader ${info.name} at ${info.link}: ${(err as Error).message}`);
        if (this.linkTo !== info.link) return;
        // Try again while it is still the leader named (a leader that died
        // keeps its election key until its lease expires; then the value changes).
        this.linkTo = null;
        if (!this.stopping) setTimeout(() => this.relink(), LINK_RETRY_MS).unref();
      },
    );
  }

  private relink(): void {
    if (this.stopping || this.leading || (this.link !== null && !this.link.closed) || this.linkTo !== null) return;
    this.leaderChanged(this.leaderValue);
  }

  /**
   * This node is not the leader (another is, or it was deposed): forwards
   * it held as a would-be leader are dropped, and the links that brought
   * them closed, so that their origins send them again, in order.
   */
  private notLeading(): void {
    if (this.leading) return;
    this.held = []; // this node's own are in `pending`, sent again to the leader
    for (const t of this.followerLinks.keys()) t.close();
  }

  private onLeaderFrames(frames: Frame[]): void {
    for (const f of frames) this.logLine('warn', `unexpected ${f.type} frame from the leader`);
  }

  /** Links from other nodes: their forwarded writes. */
  private acceptLink(t: TcpTransport): void {
    this.followerLinks.set(t, null);
    t.onClose(() => this.followerLinks.delete(t));
    t.onFrames((frames) => {
      for (const f of frames) {
        if (f.type === 'hello') {
          this.followerLinks.set(t, Number(f.incarnation));
        } else if (f.type === 'forward') {
          const from = this.followerLinks.get(t);
          if (from === null || from === undefined) {
            t.close();
            return;
          }
          // Not (yet) the leader: hold it. If this node is elected, it goes
          // to the log in order; if another is, notLeading() drops it and
          // closes this link, so its origin sends it again to that one.
          if (!this.leading) {
            this.held.push({ cmd: f.cmd, from, req: f.req });
            continue;
          }
          if (this.live.has(from)) this.sequence(f.cmd, from, f.req);
          else {
            const held = this.heldForwards.get(from) ?? [];
            held.push({ cmd: f.cmd, req: f.req });
            this.heldForwards.set(from, held);
          }
        } else if (f.type === 'observe') {
          // Not a forwarding link: leadership changes do not close it (stopping does).
          this.followerLinks.delete(t);
          this.observers.add(t);
          t.onClose(() => this.observers.delete(t));
          serveViews(t, f.locks, { log: this.log, stats: () => ({ ...this.stats(), role: this.role, leads: this.leading, link: this.linkAddress }), lockMap: (n) => this.lockMap(n) });
        } else {
          this.logLine('warn', `unexpected ${f.type} frame on a node link`);
        }
      }
    });
  }

  private async campaign(): Promise<void> {
    const value: LeaderInfo = { name: this.name, index: this.index, link: this.linkAddress };
    this.etcdLog.setValue(JSON.stringify(value));
    let end: { lastSeq: number };
    try {
      end = await this.etcdLog.lead((err) => this.deposed(`election lease lost: ${err.message}`));
    } catch (err) {
      if (this.stopping) return;
      this.logLine('warn', `campaign failed: ${(err as Error).message}; trying again`);
      setTimeout(() => void this.campaign(), 500).unref();
      return;
    }
    if (this.stopping) {
      await this.etcdLog.resign(); // stopped while campaigning: let another lead
      return;
    }
    this.leading = true;
    this.takeoverAt = Date.now();
    this.leadTo = end.lastSeq;
    this.logLine('warn', `elected leader; the log ends at seq ${end.lastSeq}`);
    if (this.seq >= this.leadTo) this.startSequencing();
  }

  /** Caught up as leader: take proposals, arm the timers, end the sessions of nodes that are gone. */
  private startSequencing(): void {
    this.sequencing = true;
    this.link?.close();
    this.link = null;
    for (const [lock, waiters] of this.state.locks.queueEntries()) {
      for (const w of waiters) if (w.deadline !== null) this.timers.add(w.deadline, { client: w.client, lock });
    }
    this.armLeases();
    this.dropDeadNodes();
    const held = this.held;
    this.held = [];
    for (const p of held) this.sequence(p.cmd, p.from, p.req);
    this.resend();
  }

  private deposed(why: string): void {
    if (!this.leading) return;
    this.leading = false;
    this.sequencing = false;
    this.timers.stop();
    if (this.leaseTimer !== null) clearTimeout(this.leaseTimer);
    this.leaseTimer = null;
    this.expiring.clear();
    this.held = [];
    this.heldForwards.clear();
    // What was sent here and not appended is lost here: the links close, and their origins send it all again.
    for (const t of this.followerLinks.keys()) t.close();
    this.logLine('warn', `no longer the leader: ${why}`);
    if (!this.stopping) void this.campaign();
  }

  /** As leader: stamp and append. Its entry, applied by every node, answers its origin. */
  private sequence(cmd: Command, from = this.index, req = 0): void {
    if (!this.sequencing) {
      if (this.leading) this.held.push({ cmd, from, req });
      return;
    }
    // The limits go with the command (issue 6 §2): every node applying the
    // entry refuses it alike, on the table as of that entry, so they hold
    // exactly (apply, writeRefusal).
    const stamped: Command = cmd.op === 'preempt' || cmd.op === 'acquire' ? { ...cmd, limits: { maxLocksPerClient: this.limits.maxLocksPerClient, maxWaitersPerLock: this.limits.maxWaitersPerLock } } : cmd;
    this.etcdLog.append([{ at: Date.now(), cmd: stamped, from, req }]).then(
      () => undefined,
      (err: unknown) => {
        if (err instanceof DeposedError) this.deposed(err.message);
        else this.deposed(`append failed: ${(err as Error).message}`);
      },
    );
  }

  // ---- the leader's timers ----

  /** Lease ends from the table; none fires before takeover + grace (see the file comment). */
  private armLeases(): void {
    if (this.leaseTimer !== null) clearTimeout(this.leaseTimer);
    this.leaseTimer = null;
    const next = this.state.locks.nextLeaseEnd();
    if (next === Infinity) return;
    const grace = this.takeoverAt + (this.eopts.leaseGraceMs ?? LEASE_GRACE_MS);
    const at = Math.max(next, grace);
    this.leaseTimer = setTimeout(() => {
      this.leaseTimer = null;
      if (!this.sequencing) return;
      for (const [lock, token] of this.state.locks.dueLeases(Date.now())) {
        if (this.expiring.has(token)) continue;
        this.expiring.add(token);
        this.sequence({ op: 'expire', lock, token });
      }
      // Re-armed when the next batch is applied.
    }, Math.max(0, at - Date.now()));
  }

  // ---- liveness ----

  private membersChanged(members: MemberInfo[]): void {
    const before = this.live;
    this.live = new Set(members.map((m) => m.index));
    if (!this.leading) return;
    if (this.sequencing) for (const i of before) if (!this.live.has(i)) this.dropClientsOf(i);
    for (const [i, held] of this.heldForwards) {
      if (!this.live.has(i)) continue;
      this.heldForwards.delete(i);
      for (const p of held) this.sequence(p.cmd, i, p.req);
    }
  }

  /** At takeover: the sessions of every node not live now (the old leader's, for one) end [LP-8]. */
  private dropDeadNodes(): void {
    const indexes = new Set<number>();
    for (const c of this.state.locks.sessionOwners()) indexes.add(nodeOfClient(c));
    for (const c of this.state.waiting.keys()) indexes.add(nodeOfClient(c));
    for (const i of indexes) if (!this.live.has(i)) this.dropClientsOf(i);
  }

  private dropClientsOf(index: number): void {
    const gone = new Set<ClientId>();
    for (const c of this.state.locks.sessionOwners()) if (nodeOfClient(c) === index) gone.add(c);
    for (const c of this.state.waiting.keys()) if (nodeOfClient(c) === index) gone.add(c);
    if (gone.size === 0) return;
    this.logLine('warn', `node ${index} is gone: ending the sessions of its ${gone.size} client(s)`);
    for (const client of [...gone].sort((a, b) => a - b)) this.sequence({ op: 'disconnect', client });
  }

  /** Fail-stop: this node can no longer show it is alive; its clients must not believe in sessions the leader will end. */
  private jeopardy(why: string): void {
    this.fatal(why);
  }

  private fatal(why: string): void {
    void this.failStop(why);
  }

  /**
   * Stop serving, as one place for every fatal fault (jeopardy, a log that
   * cannot be followed). Every request in flight is answered with a named
   * error first (a write sent to the leader may or may not have been
   * applied: its entry may still land), later requests on the open
   * connections are refused, and the connections are closed once those
   * replies are written [LP-8]: their sessions are over, and the leader
   * ends them in the table when this node's lease expires. Then the
   * listeners and the etcd client close, without revoking the lease (etcd
   * may be unreachable), and onStop is told.
   */
  private async failStop(why: string): Promise<void> {
    if (this.failed || this.stopping) return;
    this.failed = true;
    this.logLine('error', `stopping: ${why}`);
    if (!this.started) {
      await this.abandon(); // start() throws; its caller decides
      return;
    }
    for (const [req, w] of this.own) this.answer(req, `Error: ${ERR_NODE_STOPPED}; ${w.sent ? 'the request may or may not have been applied' : 'the request was not applied'}`);
    this.pending.clear();
    this.failUncommitted(ERR_NODE_STOPPED, `${ERR_NODE_STOPPED}; the request may or may not have been applied`);
    this.leading = false;
    this.sequencing = false;
    this.stopLocal();
    this.members.abandon();
    // At once, not after a goodbye etcd may not answer: a campaign still
    // waiting must not win for a node that has stopped.
    this.etcdLog.abandon();
    await this.drain(FAIL_STOP_DRAIN_MS);
    await new Promise<void>((resolve) => (this.linkServer === null ? resolve() : this.linkServer.close(() => resolve())));
    await super.close();
    const onStop = this.eopts.onStop;
    if (onStop !== undefined) onStop(why);
    else {
      // The worker's one place for failure (the supervisor restarts it).
      setImmediate(() => {
        throw new Error(`node stopped: ${why}`);
      });
    }
  }

  /**
   * Stop as a crash would (tests, fault injection, a start that did not
   * finish): connections dropped, no goodbye to etcd (which may be
   * unreachable), so this node's leases there run out as a dead process's
   * would.
   */
  async abandon(): Promise<void> {
    this.stopLocal();
    this.members.abandon();
    this.etcdLog.abandon();
    this.linkServer?.close();
    await super.close();
  }

  /** What both ways of stopping share: no more timers, no more node links. */
  private stopLocal(): void {
    this.stopping = true;
    for (const t of [this.publishTimer, this.reserveTimer, this.leaseTimer, this.leaderless, this.tailTimer]) if (t !== null) clearTimeout(t);
    this.tailHandle?.cancel();
    this.timers.stop();
    this.link?.close();
    for (const t of this.followerLinks.keys()) t.close();
    // Open links hold the link server's close() until they end.
    for (const t of this.observers) t.close();
  }

  override async close(): Promise<void> {
    this.stopLocal();
    await new Promise<void>((resolve) => (this.linkServer === null ? resolve() : this.linkServer.close(() => resolve())));
    await super.close();
    await this.members.leave().catch((err: unknown) => this.logLine('warn', `leaving: ${(err as Error).message}`));
    await this.etcdLog.close();
  }
}
