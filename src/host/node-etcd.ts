/**
 * A node on etcd: the role-less ReplicaNode with etcd as its
 * replication (replication/replication-etcd.ts), which holds everything
 * about the log, the election, the links between nodes and liveness.
 *
 * What is this node's own is what it does when it can no longer show that
 * it is alive: stop serving (fail-stop, as with ZooKeeper session expiry or
 * Chubby's jeopardy), answering what it was asked first, and refusing
 * reads once its contact with etcd is too old to vouch for its replica.
 *
 * Threading: the node's worker thread (or `dlock node`'s main thread).
 */
import type { Command } from '../core/lock-table.js';
import type { Request } from '../protocol/request.js';
import { DEFAULT_NODE_TTL_S } from '../replication/etcd-members.js';
import { EtcdReplication, type EtcdReplicationOptions } from '../replication/replication-etcd.js';
import type { ClientConnection, Ticket } from '../server/connection.js';
import type { NodeOptions } from '../node/node.js';
import { ReplicaNode } from '../node/replica-node.js';

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

/** How long a fail-stopping node lets its clients read the errors it answered before it drops them, ms. */
const FAIL_STOP_DRAIN_MS = 200;

export interface EtcdNodeOptions extends NodeOptions, Omit<EtcdReplicationOptions, 'idCounter' | 'firstToken' | 'authToken' | 'tls'> {
  /**
   * Called once when the node has fail-stopped (failStop): its clients
   * answered and closed, its listeners closed, its etcd client closed. The
   * host starts a new node in its place (`dlock node` rejoins once etcd
   * answers). Absent: thrown on the node's thread, where the worker's
   * supervisor handles it as any crash.
   */
  onStop?: (why: string) => void;
  /** Called each time this node wins the election. */
  onElected?: () => void;
}

/** How long the named leader may go unlinked before /health says no leader can take writes (a relink takes 100 ms). */
const LEADER_SILENT_MS = 1000;

export class EtcdNode extends ReplicaNode {
  /** failStop() ran: nothing more is served. */
  private failed = false;
  /** start() finished; before, a fail-stop only makes start() throw. */
  private started = false;

  constructor(private readonly eopts: EtcdNodeOptions) {
    // The factory runs inside super(): `replica` is this node.
    super(eopts, (replica) => {
      const node = replica as EtcdNode;
      const { onStop: _onStop, onElected, ...repl } = eopts;
      return new EtcdReplication(replica, { ...repl, idCounter: eopts.idCounter, authToken: eopts.authToken ?? null, tls: eopts.tls ?? null, ...(eopts.firstToken === undefined ? {} : { firstToken: eopts.firstToken }) }, {
        clientAddress: () => node.address ?? '',
        stats: () => ({ ...node.stats() }),
        lockMap: (n) => node.lockMap(n),
        fatal: (why) => void node.failStop(why),
        elected: () => onElected?.(),
      });
      // Request ids: from a block the replication reserves in etcd at start, above every earlier run's (the exactly-once rule).
    });
  }

  private get etcd(): EtcdReplication {
    return this.replication as EtcdReplication;
  }

  /** Where this node's admin API answers, put in its live key for `dlock admin --etcd`. */
  advertiseAdmin(address: string): Promise<void> {
    return this.etcd.advertiseAdmin(address);
  }

  /** Where other nodes link to this one (host:port), once started. */
  get linkEndpoint(): string {
    return this.etcd.linkEndpoint;
  }

  /**
   * The role once the election has settled (this node leads, or another
   * does), or as it is after `timeoutMs`: for the ready line.
   */
  async settledRole(timeoutMs = 3000): Promise<'leader' | 'follower'> {
    const until = performance.now() + timeoutMs;
    while (!this.etcd.leads && !this.etcd.otherLeads() && performance.now() < until && !this.stopping) await new Promise((resolve) => setTimeout(resolve, 20));
    return this.role;
  }

  /**
   * Whether this node serves (the admin API's /health): it has started
   * (its state loaded from etcd), it can show recent contact with etcd
   * (the bound its reads are refused past), and a leader is elected.
   */
  health(): { ok: boolean; reason: string } {
    if (this.failed || this.stopping) return { ok: false, reason: 'stopped serving' };
    if (!this.started) return { ok: false, reason: 'starting: loading its state from etcd' };
    const ago = this.staleFor();
    if (ago !== null) return { ok: false, reason: `no contact with etcd for ${ago} ms (unreachable, or without quorum)` };
    if (!this.etcd.leads && !this.etcd.otherLeads()) return { ok: false, reason: 'no leader elected' };
    const silent = this.etcd.leaderSilentSince();
    // A moment without a link is a relink (100 ms); past a second the leader is gone or cut off.
    if (silent !== null && performance.now() - silent >= LEADER_SILENT_MS) {
      return { ok: false, reason: `no leader can take writes: ${this.etcd.leaderName() ?? 'the leader'}, named in etcd, has not answered on its link for ${Math.round(performance.now() - silent)} ms (writes wait until its etcd lease ends and another is elected)` };
    }
    return { ok: true, reason: `has its state (seq ${this.applied}) and ${this.etcd.leads ? 'leads' : 'a leader leads'}` };
  }

  /** Join the cluster: membership, the log (caught up before this resolves), the leader's link, the campaign. */
  async start(): Promise<void> {
    await this.etcd.start();
    if (this.stopping) throw new Error(`stopped while starting${this.failed ? ' (lost etcd)' : ''}`);
    this.started = true;
  }

  /**
   * Replies go out as the commit index reaches them: not from a node whose
   * lease may have expired meanwhile (it was paused: the cluster may have
   * ended its clients' sessions and granted their locks to others). It
   * stops instead, failing those replies as "may or may not have been
   * applied" [LP-8].
   */
  override commit(seq: number): void {
    const why = this.failed ? null : this.etcd.jeopardy();
    if (why !== null) {
      void this.failStop(why);
      return;
    }
    super.commit(seq);
  }

  /**
   * Reads come from this node's replica [LP-11], which follows etcd's log:
   * while the node cannot show it is in contact with etcd, the replica may
   * lag by as long, so the read is refused, saying how long (a read either
   * says how stale it may be or is refused).
   */
  override read(req: Extract<Request, { verb: 'check' | 'validate' }>): string {
    if (this.failed) return `Error: ${ERR_NODE_STOPPED}`;
    const ago = this.staleFor();
    if (ago !== null) return `Error: no contact with etcd for ${ago} ms (unreachable, or without quorum): this node's replica may be that stale; read through another node or retry`;
    return super.read(req);
  }

  /** How long since this node's last contact with etcd, ms, once that is past what reads allow (half the node ttl); else null. */
  private staleFor(): number | null {
    const ago = this.etcd.contactAgoMs();
    return ago > (this.eopts.nodeTtlS ?? DEFAULT_NODE_TTL_S) * 1000 * READ_CONTACT_FRACTION ? ago : null;
  }

  override submit(conn: ClientConnection, ticket: Ticket, cmd: Command): void {
    if (this.failed) {
      conn.resolve(ticket, `Error: ${ERR_NODE_STOPPED}; the request was not applied`, 0);
      return;
    }
    super.submit(conn, ticket, cmd);
  }

  protected override disconnect(conn: ClientConnection): void {
    // Stopped: the leader ends this node's sessions when its lease expires
    // (and a rejoining run ends any left: EtcdReplication.endOwnPastSessions).
    if (this.failed) return;
    super.disconnect(conn);
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
    this.log.line('error', `stopping: ${why}`);
    if (!this.started) {
      await this.abandon(); // start() throws; its caller decides
      return;
    }
    this.etcd.failPending(`${ERR_NODE_STOPPED}; the request was not applied`, `${ERR_NODE_STOPPED}; the request may or may not have been applied`);
    this.failUncommitted(ERR_NODE_STOPPED, `${ERR_NODE_STOPPED}; the request may or may not have been applied`);
    this.etcd.abandon();
    await this.drain(FAIL_STOP_DRAIN_MS);
    await this.etcd.closeLinkServer();
    await super.close(); // the replication is abandoned: its close() says nothing to etcd
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
    this.etcd.abandon();
    await super.close();
  }
}
