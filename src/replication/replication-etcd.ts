/**
 * The replication on etcd: the seam's second implementation
 * (replica/replication.ts), for nodes that run as separate processes.
 *
 * Every node, the leader too, applies the committed log from etcd in order
 * (EtcdLog.tail) through its Replica, with each entry's time; the Replica
 * answers its own clients from the entries (node/replica-node.ts). So
 * everything a node shows is committed [LP-11]: its commit index is what it
 * has applied.
 *
 * Leading is a role of this replication: the node that holds etcd's
 * election sequences writes. It stamps each proposal with its clock and
 * appends it (guarded by its election key, group commit), and it alone runs
 * the timers that become `expire` and `timeout` commands. Other nodes
 * forward their proposals to it over a TCP link (transport-tcp.ts), learning
 * its link address from the election's value. Unlike the primary/backup
 * engine, every proposal is appended, one that changes nothing too: its
 * entry carries its answer.
 *
 * Exactly once: every proposal carries its origin's index and a request id
 * that only rises, across the node's runs too: each run reserves a block of
 * ids in etcd above every earlier one (EtcdMembership.reserveRequests), so
 * a restarted node never reuses one, wherever its clock stands. Every node skips an entry whose request id is not above
 * the last one applied from that origin (applyEntry here), so a write
 * re-sent to a new leader after failover is applied once, identically
 * everywhere. The marks go into each snapshot.
 *
 * Liveness (EtcdMembership): each node is live under its own etcd lease.
 * The leader ends the sessions [LP-8] of a node whose lease expired; a node
 * that cannot renew its lease in time stops serving first (fail-stop:
 * hooks.fatal, EtcdNode.failStop).
 *
 * Leases across failover: a lease ends at a log time (replica/log-clock.ts).
 * The leader stamps each entry with its log time, which goes on from the
 * last entry it applied on its monotonic clock, and fires lease ends and
 * wait timeouts when its log time reaches them. A new leader applied every
 * entry after its stamp, so its log time is behind the old leader's: it
 * ends no lease before the old one would have, whatever the offset between
 * their wall clocks, which enter nothing here.
 *
 * Snapshots: the leader writes one every SNAPSHOT_EVERY_ENTRIES entries
 * (with the exactly-once state) and compacts the log behind it; a node
 * starts from the latest and the log after it.
 *
 * Node links (transport-tcp.ts, link-auth.ts): a node proves the cluster
 * secret (from --cluster-secret-file, else kept in etcd: etcd-secret.ts),
 * never a client's token, and over TLS also a certificate the cluster's CA
 * signed. The leader takes from a node's link only `hello`, naming the
 * node and the index it registered in etcd (checked there), then
 * `forward`s of that node's own clients (forward-check.ts); from an
 * observer's link only `observe`. Anything else closes the link, logged.
 *
 * Every entry applied is checked first (core/command-check.ts): one the
 * table cannot apply, however it got into the log, is skipped with a
 * logged error on every node alike, and takes its seq.
 *
 * Resource limits: the leader stamps --max-locks-per-client
 * and --max-waiters into each preempt and acquire it sequences, and
 * apply() refuses one they forbid, on every node alike.
 *
 * Threading: the node's worker thread (or `dlock node`'s main thread).
 */
import type { Server, Socket } from 'node:net';
import { aged, waits, clientsOf, createState, disconnectOf, snapshot, type ClientId, type Command } from '../core/lock-table.js';
import type { Frame, ViewLock } from '../codec/frame.js';
import { closeListener, TcpTransport, trackSockets } from '../transport/transport-tcp.js';
import { nodeOfClient } from '../replica/client-ids.js';
import { Duties } from '../replica/duties.js';
import { DutyTimer } from './duty-timer.js';
import { setOrdinalLimit } from '../replica/client-ids.js';
import { plural } from '../text.js';
import { serveViews } from '../transport/views.js';
import { compactBehind, loadSnapshot, saveSnapshot } from './etcd-snapshot.js';
import { DEFAULT_ELECTION_TTL_S, DeposedError, EtcdLog, type Batch, type TailHandle } from './etcd-log.js';
import { parseLeaderInfo, type LeaderInfo } from './etcd-election.js';
import { EtcdMembership, REQUEST_BLOCK, type MemberInfo } from './etcd-members.js';
import { clusterSecretFromEtcd } from './etcd-secret.js';
import { claimEngine } from './etcd-engine.js';
import { forwardError } from './forward-check.js';
import { GOODBYE_MS, withDeadline } from './deadline.js';
import { commandError } from '../core/command-check.js';
import { checkClusterSecret } from '../transport/link-auth.js';
import type { EtcdAccess } from './etcd-access.js';
import { ERR_LEADER_LOST, ERR_LEADER_UNAVAILABLE } from './port-backup.js';
import type { Replica, Replication } from '../replica/replication.js';
import type { LogEntry } from '../replica/state-machine.js';
import { TailWatchdog } from './tail-watchdog.js';

/** How long the check of the cluster's engine mark may take (etcd takes the connection and does not answer: an error, not a hang). */
const CLAIM_ENGINE_MS = 10_000;

/** How long a starting node waits for its earlier run's sessions to end (endOwnPastSessions). */
const PAST_SESSIONS_MS = 20_000;
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
/** How long closing waits for the node-link listener's connections to end, ms. */
const LINK_CLOSE_MS = 2000;

export interface EtcdReplicationOptions {
  /** How to reach etcd (URLs, TLS, auth). */
  etcd: EtcdAccess;
  cluster: string;
  /** Address the node-link listener binds (forwarded writes come in there). */
  linkHost: string;
  electionTtlS?: number;
  nodeTtlS?: number;
  /** How long writes wait for a leader before they fail, ms. */
  leaderWaitMs?: number;
  /** A `dlock node`: its client-id ordinals come from etcd, reserved in blocks ahead of use [LP-4]. */
  reserveIds?: boolean;
  /** The node's client-id counter (replica/client-ids.ts), for those reservations. */
  idCounter: BigInt64Array;
  /** An empty cluster's first token (etcd keeps the first node's). */
  firstToken?: number;
  /** The secret nodes prove on their links (link-auth.ts); null: the one kept in etcd (etcd-secret.ts). */
  clusterSecret?: string | null;
  /** The clients' auth token: never the cluster secret (checked at start). */
  authToken?: string | null;
  /** The admin token: observers (`dlock tui --etcd`) may prove it instead of the cluster secret. */
  adminToken?: string | null;
  /** The client listener's certificate and key: node links are mutual TLS too, with it. */
  tls?: { cert: string; key: string } | null;
  /** The CA that signed every node's certificate: required with `tls`. */
  tlsCa?: string | null;
}

/** Link TLS without the CA that signs the nodes' certificates: mutual TLS cannot check a peer. */
export class LinkTlsError extends Error {
  override readonly name = 'LinkTlsError';
  readonly code = 'ERR_LINK_TLS';
}

/** What the leader knows of a node's link: its index once its hello was checked, frames waiting for that check, resumes it forwarded. */
interface NodeLink {
  name: string;
  index: number | null;
  checking: boolean;
  waiting: Frame[];
  resumed: Set<ClientId>;
}

/** What the replication needs from its node beyond the Replica interface. */
export interface EtcdNodeHooks {
  /** The node's client address, for `dlock status`. */
  clientAddress(): string;
  /** What an observer is shown (transport/views.ts). */
  stats(): Record<string, unknown>;
  lockMap(limit: number): ViewLock[];
  /** A fault this node cannot serve through: it must stop (EtcdNode.failStop). Called at most once per fault; may be called again. */
  fatal(why: string): void;
  /** This node won the election (for the admin API's count). */
  elected?(): void;
}

/** A proposal of this node not yet seen in the log; `sent`: handed to a leader at least once; `owed`: a client waits for its reply. */
interface Proposal {
  cmd: Command;
  req: number;
  sent: boolean;
  owed: boolean;
  /** When it was proposed (monotonic): an acquire is sent with what is left of its timeout (aged) [LP-9]. */
  since: number;
}

export class EtcdReplication implements Replication {
  private readonly etcdLog: EtcdLog;
  private readonly members: EtcdMembership;
  /** Proposals of this node not yet seen in the log, in order (re-sent to each new leader). */
  private readonly pending = new Map<number, Proposal>();
  private leading = false;
  /** Leading and caught up with the log: proposals are appended. */
  private sequencing = false;
  private leadTo = 0;
  /** Proposals that reached this node as leader before it caught up. */
  private held: Array<{ cmd: Command; req: number; from: number; since: number }> = [];
  private link: TcpTransport | null = null;
  /** The leader (by link address) last seen unlinked, and since when; cleared once linked. */
  private silent: { link: string; since: number } | null = null;
  private linkTo: string | null = null;
  /** The election's last value seen. */
  private leaderValue: string | undefined = undefined;
  private linkServer: Server | null = null;
  private linkSockets: ReadonlySet<Socket> = new Set();
  private linkAddress = '';
  private readonly followerLinks = new Map<TcpTransport, NodeLink>();
  /** The secret nodes prove (resolved at start). */
  private clusterSecret = '';
  /** Names and the index each registered in etcd (names/), as read: an index stays with its name for good. */
  private readonly registered = new Map<string, number>();
  /** An election value that was not one was logged (once per value). */
  private badLeaderValue: string | null = null;
  /** Observer links (transport/views.ts). */
  private readonly observers = new Set<TcpTransport>();
  /**
   * As leader: forwards from a node index this node has not yet seen join,
   * held until it has. A node's earlier run's leave is seen before its new
   * run's join (membership is read in etcd's order), so the sessions the
   * leader ends at that leave are all the earlier run's, never the new one's.
   */
  private heldForwards = new Map<number, Array<{ cmd: Command; req: number; since: number }>>();
  private leaderless: NodeJS.Timeout | null = null;
  /** The sequencer's duties (lease ends, acquire timeouts, a departed node's sessions), on log time; one timer for when the next is due. */
  private readonly duties = new Duties(() => this.replica.state);
  private readonly dutyTimer = new DutyTimer(this.duties, () => this.replica.clock.now(), (cmd) => this.sequence(cmd));
  private live = new Set<number>();
  /** The last batch applied (for a snapshot's meta), the last snapshot's seq, and whether one is being written. */
  private lastBatch = { revision: 0, batch: 0 };
  private snapSeq = 0;
  private snapshotting = false;
  /** Highest request id applied, per origin node: the exactly-once rule (see the file comment). */
  private readonly appliedReq = new Map<number, number>();
  private closing = false;
  /** abandon() ran: nothing is said to etcd any more (close() then only waits for the link server). */
  private abandoned = false;
  private firstTokenOfCluster = 1;
  /** The first id of this node's request-id block (reserveRequests), and whether the next is being reserved. */
  private requestBlock = 1;
  private extendingRequests = false;
  private reserveTimer: NodeJS.Timeout | null = null;
  private tailTimer: NodeJS.Timeout | null = null;
  private publishTimer: NodeJS.Timeout | null = null;
  private tailHandle: TailHandle | null = null;
  /** The tail watchdog: the batch this node was at when it first saw etcd's log ahead of it, and when. */
  private readonly tailWatch = new TailWatchdog(TAIL_STALL_MS);
  private checkingTail = false;

  constructor(
    private readonly replica: Replica,
    private readonly opts: EtcdReplicationOptions,
    private readonly hooks: EtcdNodeHooks,
  ) {
    this.etcdLog = new EtcdLog({ etcd: opts.etcd, cluster: opts.cluster, node: '', electionTtlS: opts.electionTtlS ?? DEFAULT_ELECTION_TTL_S });
    this.members = new EtcdMembership(this.etcdLog.client, opts.cluster, replica.name, opts.nodeTtlS, opts.etcd);
    this.etcdLog.onBadBatch = (why) => this.replica.log.line('error', `${why}: skipped (no leader wrote it)`);
  }

  get leads(): boolean {
    return this.leading;
  }

  /** Where other nodes link to this one (host:port), once started. */
  get linkEndpoint(): string {
    return this.linkAddress;
  }

  /** How long ago this node last showed it is in contact with etcd (its lease renewed), ms. */
  /** Why this node must stop before it answers anything more (its etcd lease may have expired), or null (EtcdMembership.inJeopardy). */
  jeopardy(): string | null {
    return this.members.inJeopardy();
  }

  contactAgoMs(): number {
    return this.members.confirmedAgoMs();
  }

  /**
   * Whether another node leads as far as this one knows (the election's
   * value names another link): for the ready line's settled role.
   */
  otherLeads(): boolean {
    const info = parseLeaderInfo(this.leaderValue);
    return info !== null && info.link !== this.linkAddress;
  }

  /**
   * The leader etcd names does not answer on its link: since when
   * (performance.now()), or null while this node is linked to it (or leads,
   * or none is named). A leader killed keeps its election key until its
   * lease ends; meanwhile writes wait, and /health says so.
   */
  leaderSilentSince(): number | null {
    const info = parseLeaderInfo(this.leaderValue);
    if (this.leading || info === null || info.link === this.linkAddress || (this.link !== null && !this.link.closed)) return null;
    this.noteSilent(info.link);
    return this.silent?.since ?? null;
  }

  /** The leader at `link` was seen unlinked now, unless it already was (since then). */
  private noteSilent(link: string): void {
    if (this.silent?.link !== link) this.silent = { link, since: performance.now() };
  }

  /** The name of the leader etcd names, or null. */
  leaderName(): string | null {
    return parseLeaderInfo(this.leaderValue)?.name ?? null;
  }

  clientEntries(): number {
    return this.pending.size;
  }

  followerAcks(): undefined {
    return undefined;
  }

  /** Where this node's admin API answers, put in its live key for `dlock admin --etcd` (EtcdMembership.advertiseAdmin). */
  advertiseAdmin(address: string): Promise<void> {
    return this.members.advertiseAdmin(address);
  }

  /**
   * Join: the link listener, membership, the log from its start (caught up
   * before this resolves), the leader's link, and the campaign.
   */
  async start(): Promise<void> {
    const tls = this.opts.tls ?? null;
    const ca = this.opts.tlsCa ?? null;
    if (tls !== null && ca === null) throw new LinkTlsError('node links over TLS need the CA that signed every node\'s certificate (--tls-ca)');
    // Never beside the group protocol on one cluster: two sequencers, two tables.
    await withDeadline(claimEngine(this.etcdLog.client.namespace(`/dlock/${this.opts.cluster}/`), this.opts.cluster, 'etcd'), CLAIM_ENGINE_MS, 'checking the cluster\'s engine');
    this.clusterSecret = this.opts.clusterSecret ?? (await clusterSecretFromEtcd(this.etcdLog.client.namespace(`/dlock/${this.opts.cluster}/`)));
    checkClusterSecret(this.clusterSecret, this.opts.authToken ?? null);
    const admin = this.opts.adminToken ?? null;
    this.linkServer = await TcpTransport.listen(
      this.opts.linkHost,
      0,
      {
        keys: { node: this.clusterSecret, observer: admin === null || admin === this.clusterSecret ? [this.clusterSecret] : [this.clusterSecret, admin] },
        tls: tls === null || ca === null ? null : { cert: tls.cert, key: tls.key, ca },
        log: (kind, text) => this.replica.log.line(kind, text),
      },
      (t) => this.acceptLink(t),
    );
    // Every socket the link listener takes, to drop what is left at close (closeLinkServer).
    this.linkSockets = trackSockets(this.linkServer);
    const addr = this.linkServer.address();
    this.linkAddress = `${this.opts.linkHost}:${typeof addr === 'object' && addr !== null ? addr.port : 0}`;
    await this.members.join({ address: '', link: this.linkAddress }, (why) => this.hooks.fatal(why), this.replica.index, (text) => {
      this.replica.log.line('warn', text);
      this.replica.log.flush();
    });
    // The client ordinals this run reserved before the node existed (node-main: prepare()), which reservations go on from.
    if (this.opts.reserveIds === true) this.members.adoptReservation(Number(Atomics.load(this.opts.idCounter, 1)));
    // The latest snapshot, then the log after it (a node that
    // joins or restarts does not replay the log from its start).
    // An empty table starts at the cluster's first token, which etcd keeps.
    this.firstTokenOfCluster = await this.etcdLog.firstToken(this.opts.firstToken);
    // The leader may write a snapshot and compact etcd's history while this
    // node reads the log after the one it loaded (a page pinned to a
    // revision, or the watch, then finds it compacted): load the newer one
    // and read on from it.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.loadAndTail();
        break;
      } catch (err) {
        if (attempt >= 5 || !/compacted/i.test((err as Error).message) || this.closing) throw err;
        this.replica.log.line('warn', `the log was compacted while this node read it (${(err as Error).message}): loading the newer snapshot`);
      }
    }
    // Request ids: a block of this node's own, reserved in etcd above every
    // id of its index the log holds, before it proposes anything (the
    // exactly-once rule: never from a clock).
    this.requestBlock = await this.members.reserveRequests(this.appliedReq.get(this.replica.index) ?? 0);
    this.replica.requestIdsFrom(this.requestBlock);
    this.tailTimer = setInterval(() => void this.watchTail(), TAIL_CHECK_MS);
    this.tailTimer.unref();
    await this.members.watch((m) => this.membersChanged(m));
    await this.etcdLog.observeLeader((v) => this.leaderChanged(v));
    void this.campaign();
    await this.endOwnPastSessions();
    if (this.closing) throw new Error('stopped while starting');
    // What `dlock status` shows: applied seq, role, client address; once a second when it changed.
    this.publishTimer = setInterval(() => {
      this.members.publish(this.replica.seq, this.leading, this.hooks.clientAddress()).catch((err: unknown) => this.warnUnlessClosing(`publishing status: ${(err as Error).message}`));
      this.extendRequestIds();
    }, 1000);
    this.publishTimer.unref();
    if (this.opts.reserveIds === true) {
      // Often: a node hands out no id past its reservation, and blocks are small (ID_BLOCK).
      let reserving = false;
      this.reserveTimer = setInterval(() => {
        if (reserving) return;
        reserving = true;
        this.members
          .extend(Number(Atomics.load(this.opts.idCounter, 0)))
          .then((to) => setOrdinalLimit(this.opts.idCounter, to))
          .catch((err: unknown) => this.warnUnlessClosing(`reserving client ids: ${(err as Error).message}`))
          .finally(() => (reserving = false));
      }, 100);
      this.reserveTimer.unref();
    }
  }

  /** Half its request-id block used: the next block is reserved, and ids go on from it (they only have to rise). */
  private extendRequestIds(): void {
    const used = this.replica.requestIdsUsed;
    if (this.extendingRequests || used - this.requestBlock < REQUEST_BLOCK / 2) return;
    this.extendingRequests = true;
    this.members
      .reserveRequests(used)
      .then((from) => {
        this.requestBlock = from;
        this.replica.requestIdsFrom(from);
      })
      .catch((err: unknown) => this.warnUnlessClosing(`reserving request ids: ${(err as Error).message}`))
      .finally(() => {
        this.extendingRequests = false;
      });
  }

  /** The latest snapshot (or the empty table), then the log after it, until caught up; the tail follows on. */
  private async loadAndTail(): Promise<void> {
    this.tailHandle?.cancel();
    this.tailHandle = null;
    this.replica.load(createState(this.firstTokenOfCluster), 0);
    this.appliedReq.clear();
    this.snapSeq = 0;
    this.lastBatch = { revision: 0, batch: 0 };
    const snap = await loadSnapshot(this.etcdLog.client, this.opts.cluster);
    let from = { revision: 0, nextSeq: 1 };
    if (snap !== null) {
      this.replica.load(snap.state, snap.meta.seq);
      for (const [origin, req] of snap.meta.extra ?? []) this.appliedReq.set(origin, req);
      this.snapSeq = snap.meta.seq;
      this.lastBatch = { revision: snap.meta.revision, batch: snap.meta.batch };
      this.replica.commit(snap.meta.seq);
      from = { revision: snap.meta.revision, nextSeq: snap.meta.seq + 1 };
      this.replica.log.line('repl', `snapshot at seq ${snap.meta.seq}: ${plural(snap.state.locks.size, 'lock')}`);
    }
    // Caught up once tail() returns: what its range read found is applied.
    this.tailHandle = await this.etcdLog.tail(
      from,
      (b) => this.applyBatch(b),
      (err) => this.hooks.fatal(`the log cannot be followed: ${err.message}`),
    );
  }

  /**
   * The tail's watchdog. A watch is one stream on one etcd member; behind
   * a partition that member sends nothing, not even an error (no RST), and
   * this node would apply nothing more, its clients' writes unanswered,
   * until TCP gave up, minutes (seen by hand across namespaces: a follower
   * answered after 78 s). So every TAIL_CHECK_MS it asks etcd (a read that
   * needs a leader, on whichever member the client picks) where the log
   * ends; when the log has been ahead of this node for TAIL_STALL_MS with
   * no batch applied meanwhile (TailWatchdog's rule, which also says what
   * a check without an answer counts for), it drops that tail and follows
   * the log again from what it has applied. Batches a dropped tail would still
   * deliver are not delivered (TailHandle.cancel), and applyBatch skips
   * what it has applied, so two tails never apply an entry twice.
   */
  private async watchTail(): Promise<void> {
    if (this.closing || this.checkingTail) return;
    this.checkingTail = true;
    try {
      const end = await this.etcdLog.lastBatch().catch(() => null); // no answer: the rule learns nothing from this check
      const at = this.lastBatch.batch;
      if (!this.tailWatch.check(end, at, performance.now())) return;
      this.replica.log.line('warn', `the log's tail stalled at batch ${at} (etcd's log ends at ${end ?? 'beyond it'}): following it again`);
      this.tailHandle?.cancel();
      this.tailHandle = null;
      const handle = await this.etcdLog.tail(
        { revision: this.lastBatch.revision, nextSeq: this.replica.seq + 1 },
        (b) => this.applyBatch(b),
        (err) => this.hooks.fatal(`the log cannot be followed: ${err.message}`),
      );
      if (this.closing) handle.cancel(); // stopped meanwhile
      else {
        this.tailHandle = handle;
        this.tailWatch.followed();
      }
    } catch (err) {
      // Compacted past what this node applied (a snapshot was written meanwhile): start again from it.
      if (/compacted/i.test((err as Error).message)) this.hooks.fatal(`the log was compacted past this node's seq ${this.replica.seq}: ${(err as Error).message}`);
      // The new tail's reads failed (its client picked a member that does not answer): the next check tries again.
      else this.warnUnlessClosing(`following the log again failed: ${(err as Error).message}`);
    } finally {
      this.checkingTail = false;
    }
  }

  /**
   * Clients of this node's index still in the table belong to an earlier
   * run of this node (its connections died with it): end their sessions
   * [LP-8] before taking clients, which would share the index. The leader
   * does it too when it sees that run leave, but if no leader saw it (it
   * died and came back while none led), nobody else would.
   */
  private async endOwnPastSessions(): Promise<void> {
    const mine = (): ClientId[] => clientsOf(this.replica.state, this.replica.index, nodeOfClient);
    const past = mine();
    if (past.length === 0) return;
    this.replica.log.line('warn', `ending the sessions of ${plural(past.length, 'client')} of this node's earlier run`);
    for (const client of past) this.propose(disconnectOf(this.replica.state, client), 0);
    // Bounded: a start that cannot end them (no leader takes the writes)
    // fails with the reason instead of never getting ready.
    const until = performance.now() + PAST_SESSIONS_MS;
    await new Promise<void>((resolve, reject) => {
      const check = setInterval(() => {
        const left = mine();
        if (left.length === 0 || this.closing) {
          clearInterval(check);
          resolve();
        } else if (performance.now() > until) {
          clearInterval(check);
          reject(new Error(`the sessions of ${plural(left.length, 'client')} of this node's earlier run (${left.slice(0, 5).join(', ')}) were not ended within ${PAST_SESSIONS_MS} ms: ${this.leading ? 'this node leads' : 'no leader took the writes'}`));
        }
      }, 20);
    });
  }

  /** A call to etcd that failed: news while serving; expected once stopped (its client is closed). */
  private warnUnlessClosing(text: string): void {
    if (!this.closing) this.replica.log.line('warn', text);
  }

  // ---- applying the log (every node) ----

  private applyBatch(b: Batch): void {
    // A batch from a tail that was replaced may repeat entries (watchTail): skip what is applied.
    const entries = b.entries.filter((e) => e.seq > this.replica.seq);
    if (entries.length === 0) return;
    if ((entries[0] as LogEntry).seq !== this.replica.seq + 1) {
      this.hooks.fatal(`the log skipped from seq ${this.replica.seq} to ${(entries[0] as LogEntry).seq}`);
      return;
    }
    for (const e of entries) this.applyEntry(e);
    this.lastBatch = { revision: b.revision, batch: b.batch };
    this.replica.commit(this.replica.seq); // everything applied here is committed in etcd
    if (this.leading) {
      if (!this.sequencing && this.replica.seq >= this.leadTo) this.startSequencing();
      if (this.sequencing) {
        this.dutyTimer.arm();
        if (this.replica.seq - this.snapSeq >= SNAPSHOT_EVERY_ENTRIES && !this.snapshotting) void this.takeSnapshot();
      }
    }
  }

  private applyEntry(e: LogEntry): void {
    if (e.from === this.replica.index && e.req !== 0) this.pending.delete(e.req); // in the log now
    // The second check of every command (the link's decoder made the
    // first): an entry the table cannot apply, however it got into the log,
    // is skipped alike on every node and takes its seq. Its origin, if it
    // was this node, is answered with the reason.
    const problem = commandError(e.cmd);
    if (problem !== null) {
      this.replica.log.line('error', `log entry ${e.seq} skipped: not a command the lock table can apply (${problem})`);
      this.replica.skip(e.seq);
      if (e.from === this.replica.index && e.req !== 0) this.replica.answer(e.req, `Error: the write was logged malformed and skipped (${problem})`, e.seq);
      return;
    }
    if (e.req !== 0) {
      if (e.req <= (this.appliedReq.get(e.from) ?? 0)) {
        this.replica.skip(e.seq); // a duplicate (see the file comment)
        return;
      }
      this.appliedReq.set(e.from, e.req);
    }
    const out = this.replica.applyEntry(e);
    this.duties.applied(e.cmd, out, e.at);
    if (this.replica.log.requests) {
      for (const c of out.changes) this.replica.log.line('repl', c.kind === 'set' ? `UpdateLockmap ${c.lock} ${c.owner}` : `RemoveLockmap ${c.lock}`);
    }
  }

  /**
   * As leader: the table as of the last batch applied, into etcd, then the
   * log behind it compacted. The copy is made now (synchronously); the
   * writes go on while the node serves.
   */
  private async takeSnapshot(): Promise<void> {
    this.snapshotting = true;
    const t0 = performance.now();
    const meta = { seq: this.replica.seq, revision: this.lastBatch.revision, batch: this.lastBatch.batch, extra: [...this.appliedReq] };
    const snap = snapshot(this.replica.state);
    try {
      const saved = await saveSnapshot(this.etcdLog.client, this.opts.cluster, snap, meta);
      const gone = await compactBehind(this.etcdLog.client, this.opts.cluster, saved);
      this.snapSeq = meta.seq;
      this.replica.log.line('repl', `snapshot at seq ${meta.seq} written (${snap.count} locks, ${saved.parts} part(s), ${Math.round(performance.now() - t0)} ms); ${gone} log batch(es) behind it removed`);
    } catch (err) {
      this.replica.log.line('warn', `snapshot at seq ${meta.seq} not written: ${(err as Error).message}`);
    } finally {
      this.snapshotting = false;
    }
  }

  // ---- this node's proposals ----

  /** A proposal of this node: kept until its entry is applied, sent to whoever leads. */
  propose(cmd: Command, owedReq: number): void {
    // Disconnects and ends of wait (req 0) get a request id too: the
    // exactly-once rule keeps them from being applied twice after a re-send.
    const req = owedReq !== 0 ? owedReq : this.replica.nextRequestId();
    const p: Proposal = { cmd, req, sent: false, owed: owedReq !== 0, since: performance.now() };
    this.pending.set(req, p);
    this.forward(p);
  }

  /** Hand a proposal to the leader: this node, or over its link; held when there is none now. */
  private forward(p: Proposal): void {
    const cmd = aged(p.cmd, performance.now() - p.since);
    if (this.leading) {
      p.sent = true;
      this.sequence(cmd, this.replica.index, p.req);
    } else if (this.link !== null && !this.link.closed) {
      p.sent = true;
      // `t` only where lateness matters: an acquire that may wait (link-delay.ts).
      this.link.send(waits(cmd) ? { v: 1, type: 'forward', req: p.req, cmd, t: Math.round(performance.now()) } : { v: 1, type: 'forward', req: p.req, cmd });
    } else {
      this.awaitLeader();
    }
  }

  /** No leader to send to: hold the writes for a while, then fail them with named errors. */
  private awaitLeader(): void {
    if (this.leaderless !== null || this.closing) return;
    const ms = this.opts.leaderWaitMs ?? LEADER_WAIT_MS;
    this.leaderless = setTimeout(() => {
      this.leaderless = null;
      if (this.leading || (this.link !== null && !this.link.closed)) return;
      this.failPending(ERR_LEADER_UNAVAILABLE, ERR_LEADER_LOST);
      this.replica.log.line('error', `no leader within ${ms} ms; failed the writes held`);
    }, ms);
  }

  /**
   * Every reply owed fails, and its write is no longer proposed: `unsent`
   * for a write no leader ever had, `sent` for one that may yet be in the
   * log (a waiting acquire too: its grant may be). Disconnects and ends of
   * wait stay pending for the next leader: a client's session must still
   * end [LP-8] when there is one.
   */
  failPending(unsent: string, sent: string): void {
    const never: number[] = [];
    for (const p of [...this.pending.values()]) {
      if (!p.owed) continue;
      this.pending.delete(p.req);
      if (!p.sent) never.push(p.req);
    }
    for (const req of never) this.replica.answer(req, `Error: ${unsent}`, 0);
    this.replica.failOwn(sent);
  }

  /** A new way to the leader: send every proposal not yet in the log, in order (duplicates are skipped when applied). */
  private resend(): void {
    if (this.leaderless !== null) clearTimeout(this.leaderless);
    this.leaderless = null;
    for (const p of this.pending.values()) this.forward(p);
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
    if (this.closing) return; // stopping: no new link
    const info = parseLeaderInfo(value);
    if (info === null && value !== undefined && value !== '' && this.badLeaderValue !== value) {
      this.badLeaderValue = value;
      this.replica.log.line('error', `the election's value in etcd is not a leader's (${JSON.stringify(value.slice(0, 80))}): no leader known`);
    }
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
    const own = this.opts.tls ?? null;
    const tls = own === null ? null : { ca: this.opts.tlsCa ?? '', cert: own.cert, key: own.key };
    TcpTransport.connect(host, port, { role: 'node', secret: this.clusterSecret, tls }).then(
      (t) => {
        // The leader changed meanwhile, or this node began to stop: an open
        // link installed now would outlive close() and keep the process
        // from exiting (dlock node hung after SIGTERM under load).
        if (this.closing || this.linkTo !== info.link) {
          t.close();
          return;
        }
        this.link = t;
        this.silent = null;
        t.onFrames((frames) => this.onLeaderFrames(frames));
        t.onClose((why) => {
          if (this.link !== t) return;
          this.link = null;
          this.linkTo = null;
          this.noteSilent(info.link);
          this.replica.log.line('warn', `link to the leader ${info.name} closed: ${why}`);
          // Link again to whoever leads now, and send what is pending again.
          if (!this.closing) setTimeout(() => this.relink(), 100).unref();
        });
        t.send({ v: 1, type: 'hello', node: this.replica.name, incarnation: String(this.replica.index), seq: this.replica.seq, t: Math.round(performance.now()) });
        this.replica.log.line('repl', `linked to the leader ${info.name} at ${info.link}`);
        this.resend();
      },
      (err: unknown) => {
        this.replica.log.line('warn', `cannot link to the leader ${info.name} at ${info.link}: ${(err as Error).message}`);
        this.noteSilent(info.link);
        if (this.linkTo !== info.link) return;
        // Try again while it is still the leader named (a leader that died
        // keeps its election key until its lease expires; then the value changes).
        this.linkTo = null;
        if (!this.closing) setTimeout(() => this.relink(), LINK_RETRY_MS).unref();
      },
    );
  }

  private relink(): void {
    if (this.closing || this.leading || (this.link !== null && !this.link.closed) || this.linkTo !== null) return;
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
    for (const f of frames) this.replica.log.line('warn', `unexpected ${f.type} frame from the leader`);
  }

  /**
   * Links that authenticated (transport-tcp.ts): a node's, which forwards
   * its clients' writes, or an observer's, which is served views. Each
   * role may send only its own frames; anything else closes the link.
   */
  private acceptLink(t: TcpTransport): void {
    // Stopping: a link taken now would hold the link server's close() open for good.
    if (this.closing) {
      t.close();
      return;
    }
    if (t.role === 'observer') {
      this.acceptObserver(t);
      return;
    }
    const link: NodeLink = { name: '', index: null, checking: false, waiting: [], resumed: new Set() };
    this.followerLinks.set(t, link);
    t.onClose(() => this.followerLinks.delete(t));
    t.onFrames((frames) => this.onNodeFrames(t, link, frames));
  }

  /** A node link's frames: `hello` first (its name and index, checked against etcd), then `forward`s. */
  private onNodeFrames(t: TcpTransport, link: NodeLink, frames: Frame[]): void {
    for (const f of frames) {
      if (t.closed) return;
      if (link.index === null) {
        if (link.checking) {
          link.waiting.push(f); // handled, in order, once the hello is checked
          continue;
        }
        if (f.type !== 'hello') return this.refuseLink(t, `${f.type} frame before hello`);
        if (!/^\d{1,3}$/.test(f.incarnation)) return this.refuseLink(t, `hello from ${f.node} names no node index`);
        const index = Number(f.incarnation);
        link.name = f.node;
        link.checking = true;
        this.checkNode(f.node, index).then(
          (problem) => {
            if (t.closed) return;
            if (problem !== null) return this.refuseLink(t, problem);
            link.index = index;
            link.checking = false;
            const waiting = link.waiting;
            link.waiting = [];
            this.onNodeFrames(t, link, waiting);
          },
          (err: unknown) => this.refuseLink(t, `cannot check node ${f.node} in etcd now: ${(err as Error).message}`),
        );
        continue;
      }
      if (f.type !== 'forward') return this.refuseLink(t, `node ${link.name} sent a ${f.type} frame, which nodes do not send to a leader`);
      const from = link.index;
      const problem = forwardError(this.replica.state, f.cmd, from, link.resumed);
      // [LP-9] an acquire's timeout less the time it was held up on the link (link-delay.ts).
      const cmd = f.t === undefined ? f.cmd : aged(f.cmd, t.delay.lateness(f.t));
      if (problem !== null) return this.refuseLink(t, `node ${link.name} (index ${from}) forwarded ${f.cmd.op}: ${problem}`);
      if (f.cmd.op === 'resume') link.resumed.add(f.cmd.target);
      // Not (yet) the leader: hold it. If this node is elected, it goes
      // to the log in order; if another is, notLeading() drops it and
      // closes this link, so its origin sends it again to that one.
      if (!this.leading) {
        this.held.push({ cmd, from, req: f.req, since: performance.now() });
        continue;
      }
      if (this.live.has(from)) this.sequence(cmd, from, f.req);
      else {
        const held = this.heldForwards.get(from) ?? [];
        held.push({ cmd, req: f.req, since: performance.now() });
        this.heldForwards.set(from, held);
      }
    }
  }

  /**
   * Whether `name` registered in etcd with `index` (null) or why not: a node
   * link names the node it is, and the leader takes that node's writes
   * only. A name's index never changes once given, so a match is kept.
   */
  private async checkNode(name: string, index: number): Promise<string | null> {
    if (index === this.replica.index && name !== this.replica.name) return `hello from ${name} claims this node's own index ${index}`;
    let had = this.registered.get(name);
    if (had === undefined) {
      const text = await withDeadline(this.etcdLog.client.namespace(`/dlock/${this.opts.cluster}/`).get(`names/${name}`).string(), 3000, `reading node ${name}'s index`);
      if (text === null) return `hello from ${name}, which is not a node of this cluster (no names/${name} in etcd)`;
      had = Number(text);
      if (!Number.isSafeInteger(had) || had < 0) return `node ${name}'s index in etcd is not a number: ${JSON.stringify(text.slice(0, 20))}`;
      this.registered.set(name, had);
    }
    return had === index ? null : `hello from ${name} claims index ${index}, but ${name} registered index ${had}`;
  }

  /** A link that broke the rules: logged, and closed (its frames go no further). */
  private refuseLink(t: TcpTransport, why: string): void {
    this.replica.log.line('error', `node link from ${t.remote} refused: ${why}; closing it`);
    t.close();
  }

  /** An observer's link: one `observe`, then views until it closes (leadership changes do not close it; stopping does). */
  private acceptObserver(t: TcpTransport): void {
    this.observers.add(t);
    let stop: (() => void) | null = null;
    t.onClose(() => {
      this.observers.delete(t);
      stop?.();
    });
    t.onFrames((frames) => {
      for (const f of frames) {
        if (f.type !== 'observe' || stop !== null) return this.refuseLink(t, `an observer sent a ${f.type} frame${f.type === 'observe' ? ' twice' : ''}`);
        stop = serveViews(t, f.locks, {
          log: this.replica.log,
          stats: () => ({ ...this.hooks.stats(), role: this.leading ? 'leader' : 'follower', leads: this.leading, link: this.linkAddress }),
          lockMap: (n) => this.hooks.lockMap(n),
        });
      }
    });
  }

  private async campaign(): Promise<void> {
    const value: LeaderInfo = { name: this.replica.name, index: this.replica.index, link: this.linkAddress };
    this.etcdLog.setValue(JSON.stringify(value));
    let end: { lastSeq: number };
    try {
      end = await this.etcdLog.lead((err) => this.deposed(`election lease lost: ${err.message}`));
    } catch (err) {
      if (this.closing) return;
      this.replica.log.line('warn', `campaign failed: ${(err as Error).message}; trying again`);
      setTimeout(() => void this.campaign(), 500).unref();
      return;
    }
    if (this.closing) {
      await this.etcdLog.resign(); // stopped while campaigning: let another lead
      return;
    }
    this.leading = true;
    this.leadTo = end.lastSeq;
    this.replica.log.line('warn', `elected leader; the log ends at seq ${end.lastSeq}`);
    this.hooks.elected?.();
    if (this.replica.seq >= this.leadTo) this.startSequencing();
  }

  /** Caught up as leader: take proposals, arm the timers, end the sessions of nodes that are gone. */
  private startSequencing(): void {
    this.sequencing = true;
    this.link?.close();
    this.link = null;
    this.duties.takeOver();
    this.dutyTimer.arm();
    this.dropDeadNodes();
    const held = this.held;
    this.held = [];
    for (const p of held) this.sequence(aged(p.cmd, performance.now() - p.since), p.from, p.req); // [LP-9] less the time held
    this.resend();
  }

  private deposed(why: string): void {
    if (!this.leading) return;
    this.leading = false;
    this.sequencing = false;
    this.duties.stop();
    this.dutyTimer.cancel();
    this.held = [];
    this.heldForwards.clear();
    // What was sent here and not appended is lost here: the links close, and their origins send it all again.
    for (const t of this.followerLinks.keys()) t.close();
    this.replica.log.line('warn', `no longer the leader: ${why}`);
    // Give up the election key first (its lease revoked), whatever deposed
    // this node: a leader whose append was refused still holds a live key,
    // and a new campaign's key, younger, would wait behind it for ever.
    // Then any node, this one too, can win again.
    if (!this.closing) {
      void this.etcdLog
        .resign()
        .catch((err: unknown) => this.warnUnlessClosing(`giving up the election key: ${(err as Error).message}; it goes when its lease expires`))
        .then(() => {
          if (!this.closing && !this.leading) void this.campaign();
        });
    }
  }

  /** As leader: stamp and append. Its entry, applied by every node, answers its origin. */
  private sequence(cmd: Command, from = this.replica.index, req = 0): void {
    if (!this.sequencing) {
      if (this.leading) this.held.push({ cmd, from, req, since: performance.now() });
      return;
    }
    // The limits go with the command: every node applying the
    // entry refuses it alike, on the table as of that entry, so they hold
    // exactly (apply, writeRefusal).
    const limits = this.replica.limits;
    const stamped: Command = cmd.op === 'preempt' || cmd.op === 'acquire' ? { ...cmd, limits: { maxLocksPerClient: limits.maxLocksPerClient, maxWaitersPerLock: limits.maxWaitersPerLock, maxLocks: limits.maxLocks } } : cmd;
    this.etcdLog.append([{ at: this.replica.clock.stamp(), cmd: stamped, from, req }]).then(
      () => undefined,
      (err: unknown) => {
        if (err instanceof DeposedError) this.deposed(err.message);
        else this.deposed(`append failed: ${(err as Error).message}`);
      },
    );
  }

  // ---- the leader's timers ----

  // ---- liveness ----

  private membersChanged(members: MemberInfo[]): void {
    const before = this.live;
    this.live = new Set(members.map((m) => m.index));
    if (!this.leading) return;
    if (this.sequencing) for (const i of before) if (!this.live.has(i)) this.dropClientsOf(i);
    for (const [i, held] of this.heldForwards) {
      if (!this.live.has(i)) continue;
      this.heldForwards.delete(i);
      for (const p of held) this.sequence(aged(p.cmd, performance.now() - p.since), i, p.req); // [LP-9] less the time held
    }
  }

  /** At takeover: the sessions of every node not live now (the old leader's, for one) end [LP-8]. */
  private dropDeadNodes(): void {
    for (const i of this.duties.nodesServing(nodeOfClient)) if (!this.live.has(i)) this.dropClientsOf(i);
  }

  private dropClientsOf(index: number): void {
    const gone = this.duties.sessionsEndedBy(index, nodeOfClient);
    if (gone.length === 0) return;
    this.replica.log.line('warn', `node ${index} is gone: ending the sessions of its ${plural(gone.length, 'client')}`);
    for (const cmd of gone) this.sequence(cmd);
  }

  // ---- stopping ----

  /**
   * Stop as a crash would (fail-stop, tests, a start that did not finish):
   * no timers, no node links, no goodbye to etcd, which may be unreachable,
   * so this node's leases there run out as a dead process's would. At once:
   * a campaign still waiting must not win for a node that has stopped.
   */
  abandon(): void {
    this.stopLocal();
    this.leading = false;
    this.sequencing = false;
    this.abandoned = true;
    this.members.abandon();
    this.etcdLog.abandon();
  }

  /**
   * Stop taking links, resolved once the link server has closed (open links
   * hold it: stopLocal closes them), or after LINK_CLOSE_MS with those still
   * open dropped (a peer mid-handshake is not among the links to close).
   */
  closeLinkServer(): Promise<void> {
    const server = this.linkServer;
    if (server === null) return Promise.resolve();
    return closeListener(server, this.linkSockets, LINK_CLOSE_MS).then((left) => {
      if (left > 0) this.replica.log.line('warn', `the node-link listener still had ${left} connection(s) after ${LINK_CLOSE_MS} ms; dropped them`);
    });
  }

  /** What every way of stopping shares: no more timers, no more node links. */
  private stopLocal(): void {
    this.closing = true;
    for (const t of [this.publishTimer, this.reserveTimer, this.leaderless, this.tailTimer]) if (t !== null) clearTimeout(t);
    this.dutyTimer.cancel();
    this.tailHandle?.cancel();
    this.duties.stop();
    this.link?.close();
    for (const t of this.followerLinks.keys()) t.close();
    // Open links hold the link server's close() until they end.
    for (const t of this.observers) t.close();
  }

  /** A clean stop: links closed, then this node leaves etcd (its election and membership keys go at once). */
  async close(): Promise<void> {
    this.stopLocal();
    await this.closeLinkServer();
    if (this.abandoned) return;
    const log = this.replica.log;
    // The goodbye to etcd, at once and within GOODBYE_MS: etcd may be down, and a stop must not wait on it.
    const bye: Array<Promise<void>> = [];
    if (this.opts.reserveIds === true) {
      // No id past what is handed back from here on; then the rest of the block goes back.
      const counter = this.opts.idCounter;
      const used = Number(Atomics.load(counter, 0));
      Atomics.store(counter, 1, used === 0 ? -1n : BigInt(used));
      bye.push(withDeadline(this.members.returnUnused(used), GOODBYE_MS, 'handing back unused client ids').catch((err: unknown) => log.line('warn', `not done: ${(err as Error).message}; those ids stay reserved (never reused)`)));
    }
    bye.push(withDeadline(this.members.leave(), GOODBYE_MS, 'leaving the cluster').catch((err: unknown) => log.line('warn', `not done: ${(err as Error).message}; this node's live key ends with its lease, within the node ttl`)));
    await Promise.all(bye);
    const notDone = await this.etcdLog.close();
    if (notDone !== null) log.line('warn', `not done: ${notDone}`);
  }
}

