/**
 * What every node has, whatever orders its writes: the TCP listener, the
 * client connections, client ids, reads from the local replica, and waking
 * connections whose replies wait for the commit index. The role-less node
 * that applies entries and answers from them is ReplicaNode
 * (replica-node.ts); this base knows nothing of replication.
 *
 * Threading: one node per thread (its worker); everything runs on it.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { getHeapStatistics } from 'node:v8';
import { check, createState, validate, type ClientId, type Command, type LockChange, type TableState } from '../core/lock-table.js';
import { formatCheck, formatError, formatValidate } from '../protocol/reply.js';
import type { Request } from '../protocol/request.js';
import type { ViewLock } from '../codec/frame.js';
import { AuthGate, AuthThrottle } from '../server/auth.js';
import { DEFAULT_LIMITS, tooManyClients, tooManyFromSource, type Limits } from '../server/limits.js';
import { LogThrottle, sourceOf } from '../server/log-throttle.js';
import { ClientIdAllocator, type IdCounter } from '../replica/client-ids.js';
import { ClientConnection, endAndDiscard, type Ticket } from '../server/connection.js';
import { Watches } from './watches.js';
import type { ConnectionHost } from '../server/connection-host.js';
import type { NodeLog } from '../replica/node-log.js';
import { ReadIndex } from '../server/read-index.js';
import { NodeMetrics } from '../server/metrics.js';
import { LogClock } from '../replica/log-clock.js';

export interface NodeOptions {
  name: string;
  /** The node's index: 0 for the first leader, i for follower-i (on etcd, from its registration); decides client ids [LP-4]. */
  index: number;
  log: NodeLog;
  /** Shared client ordinal counter (see replica/client-ids.ts). */
  idCounter: IdCounter;
  /** The first fencing token of a table that starts empty (the leader's; see Cluster). */
  firstToken?: number;
  /** Clients must send `auth <token>` first [LP-15]; null or absent: no token. */
  authToken?: string | null;
  /** Resource limits; absent: DEFAULT_LIMITS. */
  limits?: Limits;
  /** Serve clients over TLS with this certificate and key (PEM); absent or null: plain TCP. */
  tls?: { cert: string; key: string } | null;
}

export interface NodeStats {
  name: string;
  role: 'leader' | 'follower';
  address: string | null;
  clients: number;
  locks: number;
  waiters: number;
  /** Last sequence number applied here. */
  applied: number;
  commit: number;
  /** Requests received since start (for ops/s). */
  requests: number;
  /** Reply bytes waiting in client sockets, and replies owed, over all clients. */
  bufferedBytes: number;
  owedReplies: number;
  /** This node's V8 heap in use, bytes (its own isolate, so its memory bound is its own). */
  heapUsed: number;
  /**
   * Entries this node keeps per client (session lists, waits, lock counts,
   * commit waiters, in-flight forwards): when clients go, it comes back
   * down, so a leak shows here without waiting for a GC.
   */
  clientEntries: number;
  /** The fencing token the next grant gets here [LP-7]. */
  nextToken: number;
  /** Leader only: each follower's acknowledged sequence number. */
  followers?: Record<string, number>;
}

/** A lock map row (the views' ViewLock: the same shape travels in `view` frames). */
export type LockRow = ViewLock;

/** Above this many locks, lockMap() lists in table order instead of sorting. */
export const SORTED_LOCK_MAP_MAX = 10_000;

/**
 * A TLS client must finish its handshake within this long of connecting,
 * or its socket is destroyed [LP-14]: Node's default is 120 s, in which a
 * connect that sends nothing holds a descriptor.
 */
export const TLS_HANDSHAKE_TIMEOUT_MS = 5_000;
/** At most one log line per source address per this long about its failed handshakes or refused connects [LP-14]. */
const SOURCE_LOG_INTERVAL_MS = 10_000;

export abstract class NodeBase implements ConnectionHost {
  readonly name: string;
  /** 0 for the leader, i for follower-i. */
  readonly index: number;
  readonly log: NodeLog;
  state: TableState;
  private readonly ids: ClientIdAllocator;
  /** Listeners: its own port, and the base port too once promoted to leader [LP-1]. */
  private servers: Server[] = [];
  protected readonly connections = new Set<ClientConnection>();
  /**
   * Open connections by client id: usually one, two for a moment after a
   * resume (the old one closes when the resume is applied), so that a
   * committed disconnect or resume finds its connection without a scan.
   */
  private readonly byClient = new Map<ClientId, Set<ClientConnection>>();
  private readonly commitWaiters = new Set<ClientConnection>();
  private commitIndex = 0;
  /** Which locks a read must wait for the commit index to show [LP-11] (read-index.ts). */
  private readIndex = new ReadIndex();
  address: string | null = null;
  readonly counters = { requests: 0 };
  /** Log time (replica/log-clock.ts): what leases, waits and reads of a lease's time left are measured on. */
  readonly clock = new LogClock();
  readonly metrics: NodeMetrics;
  readonly auth: AuthGate | null;
  /** Failed `auth` and `resume` per source address, across this node's connections [LP-15, LP-16]. */
  readonly authThrottle = new AuthThrottle();
  readonly limits: Limits;
  private readonly tls: { cert: string; key: string } | null;
  /** Set while drain() waits for the last connection to close. */
  private allClosed: (() => void) | null = null;
  /** Connections refused by --max-clients since the last log line about it. */
  private refusedClients = 0;
  private refusedLogAt = -Infinity;
  /** Open connections per source address (ClientConnection.source), for --max-clients-per-source. */
  private readonly perSource = new Map<string, number>();
  /** Log lines about refused connects and failed TLS handshakes: one per source per interval. */
  private readonly sourceRefusedLog = new LogThrottle(SOURCE_LOG_INTERVAL_MS);
  private readonly handshakeLog = new LogThrottle(SOURCE_LOG_INTERVAL_MS);
  /** Set when close() begins: link losses after this are expected, not faults. */
  protected stopping = false;

  constructor(opts: NodeOptions) {
    this.name = opts.name;
    this.index = opts.index;
    this.log = opts.log;
    this.state = createState(opts.firstToken ?? 1);
    this.ids = new ClientIdAllocator(opts.index, opts.idCounter);
    this.auth = opts.authToken === undefined || opts.authToken === null ? null : new AuthGate(opts.authToken);
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits }; // a limit not given keeps its default
    this.tls = opts.tls ?? null;
    this.metrics = new NodeMetrics(opts.name, () => {
      const s = this.stats();
      return { locks: s.locks, waiters: s.waiters, clients: s.clients, applied: s.applied, commit: s.commit, followers: s.followers };
    });
  }

  /**
   * The clients connected here, for the admin API: id, address, the locks
   * it holds (sessions and leases) and the lock it waits on.
   */
  clientList(): Array<{ client: number; remote: string; locks: number; waiting: string | null }> {
    return [...this.connections].map((c) => ({ client: c.id, remote: c.remote, locks: this.state.owned.get(c.id) ?? 0, waiting: this.state.waiting.get(c.id) ?? null }));
  }

  /** A TLS server's sockets are clients once their handshake is done. */
  private get acceptEvent(): 'connection' | 'secureConnection' {
    return this.tls === null ? 'connection' : 'secureConnection';
  }

  get commitSeq(): number {
    return this.commitIndex;
  }

  abstract readonly role: 'leader' | 'follower';
  get leads(): boolean {
    return this.role === 'leader';
  }
  abstract get applied(): number;
  /** The role's own per-client entries, for NodeStats.clientEntries. */
  protected abstract roleClientEntries(): number;
  abstract submit(conn: ClientConnection, ticket: Ticket, cmd: Command): void;
  abstract endWait(client: ClientId, lock: string): void;
  protected abstract disconnect(conn: ClientConnection): void;

  /**
   * Listen for clients [LP-1]. Resolves with the bound port. A second call
   * adds a listener (a promoted leader also takes the base port); the
   * address shown is the latest.
   */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      // TLS: the same connection code on a TLSSocket, after its handshake.
      const server: Server =
        this.tls === null
          ? createServer({ allowHalfOpen: true })
          : // Not half-open until the handshake is done: a peer's FIN before
            // it is a handshake error at once (ECONNRESET, below), not a
            // socket left open until the deadline. accept() makes each
            // client half-open [LP-2].
            createTlsServer({ allowHalfOpen: false, cert: this.tls.cert, key: this.tls.key, minVersion: 'TLSv1.2', handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS });
      server.on(this.acceptEvent, (socket: Socket) => this.accept(socket));
      // A failed handshake (a bad one, a connect closed before it, or none
      // within the deadline) is that client's problem [LP-14]: its socket is
      // destroyed here (with a listener, Node leaves that to us, and an
      // undestroyed one holds its descriptor in CLOSE-WAIT for good), and
      // the log gets a line per source per interval, not per connect.
      if (this.tls !== null) server.on('tlsClientError', (err: Error, socket: Socket) => this.handshakeFailed(err, socket));
      server.once('error', reject);
      server.listen({ host, port, exclusive: true }, () => {
        server.off('error', reject);
        server.on('error', (err) => this.log.line('error', `listener error: ${err.message}`));
        const addr = server.address();
        const bound = typeof addr === 'object' && addr !== null ? addr.port : port;
        this.servers.push(server);
        this.address = `${host}:${bound}`;
        this.log.line('info', `listening on ${this.address}`);
        resolve(bound);
      });
    });
  }

  private handshakeFailed(err: Error, socket: Socket): void {
    const source = sourceOf(socket.remoteAddress); // before destroy(): a destroyed socket has no peer address
    socket.destroy();
    const due = this.handshakeLog.event(source);
    if (due === null) return;
    const more = due.suppressed > 0 ? ` (${due.suppressed} more from it since the last line)` : '';
    this.log.line('warn', `TLS handshake from ${source} failed: ${(err as NodeJS.ErrnoException).code ?? err.message}${more}; at most a line per ${SOURCE_LOG_INTERVAL_MS / 1000} s per source`);
  }

  /** Refuse a connection before it is a client: no greeting and no id [LP-14]; `why` is its one line. */
  private refuse(socket: Socket, why: string): void {
    socket.on('error', (err: NodeJS.ErrnoException) => this.log.line('warn', `refused connection: socket error ${err.code ?? err.message}`));
    endAndDiscard(socket, `${formatError(why)}\n`);
  }

  private accept(socket: Socket): void {
    // [LP-2] A client's half-close ends its input only: its replies still go
    // out. A TLS socket becomes half-open here, after its handshake (read on
    // each 'end', so set before any can be emitted: 'secureConnection' comes
    // before the first byte after the handshake is read).
    socket.allowHalfOpen = true;
    if (this.connections.size >= this.limits.maxClients) {
      this.refuse(socket, tooManyClients(this.limits.maxClients));
      this.refusedClients++;
      // One line a second at most: a flood of refused connects must not flood the log.
      const now = performance.now();
      if (now - this.refusedLogAt >= 1000) {
        this.log.line('warn', `refused ${this.refusedClients} connection(s): ${this.connections.size} clients, the limit (--max-clients)`);
        this.refusedClients = 0;
        this.refusedLogAt = now;
      }
      return;
    }
    const source = sourceOf(socket.remoteAddress);
    const fromSource = this.perSource.get(source) ?? 0;
    if (fromSource >= this.limits.maxClientsPerSource) {
      // As --max-clients: one line, no greeting, no id [LP-14].
      this.refuse(socket, tooManyFromSource(source, this.limits.maxClientsPerSource));
      const due = this.sourceRefusedLog.event(source);
      if (due !== null) this.log.line('warn', `refused ${due.suppressed + 1} connection(s) from ${source}: ${fromSource} open, the limit (--max-clients-per-source); at most a line per ${SOURCE_LOG_INTERVAL_MS / 1000} s per source`);
      return;
    }
    const id = this.ids.next();
    if (id === null) {
      // Its ids must outlive a crash, so none is handed out past what is reserved in etcd; more is on its way.
      this.refuse(socket, 'this node is reserving more client ids; retry in a moment');
      const now = performance.now();
      if (now - this.refusedLogAt >= 1000) {
        this.log.line('warn', 'refused a connection: its client id block is used up and the next one is not reserved yet');
        this.refusedLogAt = now;
      }
      return;
    }
    this.perSource.set(source, fromSource + 1);
    const conn = new ClientConnection(id, socket, this, source);
    this.connections.add(conn);
    this.indexConnection(conn, id);
    this.log.line('conn', `Connect from ${conn.remote} client_id=${id}`);
  }

  /** The commit index a read of `lock` must wait for (read-index.ts); at most the applied seq. */
  readSeq(lock: string): number {
    return this.readIndex.seqFor(lock, this.commitIndex);
  }

  /** Lock changes made by the entry at `seq`, applied here: reads of them wait for its commit; watches of them are answered [LP-19]. */
  protected noteChanges(seq: number, changes: readonly LockChange[]): void {
    if (seq > this.commitIndex) this.readIndex.note(seq, changes);
    this.metrics.entryApplied(seq, this.commitIndex);
    if (this.watches.size > 0) this.watches.changed(seq, changes);
  }

  /** The state was replaced by a snapshot at `seq`: reads wait for its commit. */
  protected loadedAt(seq: number): void {
    this.readIndex.loaded(seq);
    this.watches.loaded(seq);
  }

  /** This node's watches [LP-19] (watches.ts). */
  private readonly watches = new Watches({
    table: () => this.state,
    checkText: (lock) => this.read({ verb: 'check', lock }),
    readSeq: (lock) => this.readSeq(lock),
  });

  watch(conn: ClientConnection, ticket: Ticket, req: Extract<Request, { verb: 'watch' }>): void {
    this.watches.add(conn, ticket, req);
  }

  endWatch(conn: ClientConnection): void {
    this.watches.timeOut(conn);
  }

  read(req: Extract<Request, { verb: 'check' | 'validate' }>): string {
    return req.verb === 'check' ? formatCheck(check(this.state, req.lock, Math.floor(this.clock.now()))) : formatValidate(validate(this.state, req.lock, req.token));
  }

  awaitCommit(conn: ClientConnection): void {
    this.commitWaiters.add(conn);
  }

  protected advanceCommit(seq: number): void {
    if (seq <= this.commitIndex) return;
    this.commitIndex = seq;
    this.readIndex.committed(seq);
    this.metrics.committed(seq);
    if (this.commitWaiters.size === 0) return;
    const waiting = [...this.commitWaiters];
    this.commitWaiters.clear();
    for (const c of waiting) c.flush(); // re-registers itself if still waiting
  }

  /** Every reply waiting for a commit that will not come gets an error (see ClientConnection.failUncommitted). */
  failUncommitted(readError: string, writeError: string): void {
    this.commitWaiters.clear();
    for (const c of this.connections) c.failUncommitted(readError, writeError);
  }

  closed(conn: ClientConnection): void {
    this.connections.delete(conn);
    const n = (this.perSource.get(conn.source) ?? 1) - 1;
    if (n <= 0) this.perSource.delete(conn.source);
    else this.perSource.set(conn.source, n);
    this.unindexConnection(conn, conn.id);
    this.commitWaiters.delete(conn);
    this.watches.drop(conn);
    this.log.line('conn', `Disconnect client_id=${conn.id} (${conn.remote})`);
    this.disconnect(conn);
    if (this.connections.size === 0) this.allClosed?.();
  }

  stats(): NodeStats {
    // Each waiting client waits on one lock, so this counts waiters in O(1).
    const waiters = this.state.waiting.size;
    let bufferedBytes = 0;
    let owedReplies = 0;
    for (const c of this.connections) {
      const b = c.buffered;
      bufferedBytes += b.bytes;
      owedReplies += b.replies;
    }
    return {
      name: this.name,
      role: this.role,
      address: this.address,
      clients: this.connections.size,
      locks: this.state.locks.size + this.state.groups.size,
      waiters,
      applied: this.applied,
      commit: this.commitSeq,
      bufferedBytes,
      owedReplies,
      requests: this.counters.requests,
      heapUsed: getHeapStatistics().used_heap_size,
      nextToken: this.state.nextToken,
      clientEntries: this.state.locks.sessionOwnerCount() + this.state.waiting.size + this.state.owned.size + this.commitWaiters.size + this.roleClientEntries(),
    };
  }

  /**
   * The lock map for views, at most `limit` rows: sorted by name while the
   * table is small, else the first `limit` in table order. This runs on the
   * node's thread while it serves clients (the TUI polls it twice a second),
   * so it must not sort a million names to show two hundred.
   */
  lockMap(limit = 1000): LockRow[] {
    const now = Math.floor(this.clock.now());
    const names: string[] = [];
    const { groups } = this.state;
    if (this.state.locks.size + groups.size <= SORTED_LOCK_MAP_MAX) {
      names.push(...[...this.state.locks.keys(), ...groups.keys()].sort().slice(0, limit));
    } else {
      for (const name of groups.size === 0 ? this.state.locks.keys() : [...groups.keys(), ...this.state.locks.keys()]) {
        if (names.length >= limit) break;
        names.push(name);
      }
    }
    return names.map((lock) => {
      const g = groups.size > 0 ? groups.get(lock) : undefined;
      let row: LockRow;
      if (g !== undefined) {
        // [LP-20, LP-21] the newest holder's owner, token and ttl, and every holder
        const newest = g.holds[g.holds.length - 1] as (typeof g.holds)[number];
        row = { lock, owner: newest.client, token: newest.token, ttlLeft: newest.expiresAt === null ? null : Math.max(0, newest.expiresAt - now), waiters: this.state.locks.waiters(lock).map((w) => w.client), holders: g.holds.map((h) => h.client), limit: g.limit };
      } else {
        const e = this.state.locks.get(lock);
        if (e === undefined) throw new Error(`lock ${lock} vanished while listing`);
        row = { lock, owner: e.owner, token: e.token, ttlLeft: e.expiresAt === null ? null : Math.max(0, e.expiresAt - now), waiters: e.waiters.map((w) => w.client) };
      }
      const value = this.state.values.size > 0 ? this.state.values.get(lock) : undefined;
      if (value !== undefined) row.value = value; // [LP-18]
      const watchers = this.watches.size > 0 ? this.watches.on(lock) : 0;
      if (watchers > 0) row.watchers = watchers; // [LP-19]
      return row;
    });
  }

  renamed(conn: ClientConnection, from: ClientId): void {
    this.unindexConnection(conn, from);
    this.indexConnection(conn, conn.id);
  }

  /** This node's open connections that are `client` now (a copy: closing one changes the index). */
  protected connectionsOf(client: ClientId): ClientConnection[] {
    return [...(this.byClient.get(client) ?? [])];
  }

  private indexConnection(conn: ClientConnection, id: ClientId): void {
    let set = this.byClient.get(id);
    if (set === undefined) this.byClient.set(id, (set = new Set()));
    set.add(conn);
  }

  private unindexConnection(conn: ClientConnection, id: ClientId): void {
    const set = this.byClient.get(id);
    if (set === undefined) return;
    set.delete(conn);
    if (set.size === 0) this.byClient.delete(id);
  }

  /**
   * `client` resumed as generation `gen` [LP-16]: a connection of this node
   * that was that client before is the client no more, and is closed (its
   * sessions ended with the resume, in the table; its disconnect, of an
   * older generation, changes nothing).
   */
  protected superseded(client: ClientId, gen: number): void {
    for (const c of this.connectionsOf(client)) {
      if (c.gen >= gen) continue;
      this.log.line('conn', `client ${client} resumed on another connection: closing ${c.remote}`);
      c.destroy();
    }
  }

  /** Fault injection (--chaos drop-client): close one connection at random, as a network would. */
  dropRandomClient(): number | null {
    const all = [...this.connections];
    const c = all[Math.floor(Math.random() * all.length)];
    if (c === undefined) return null;
    c.destroy();
    return c.id;
  }

  /**
   * Graceful shutdown: stop accepting connections and reading
   * requests; every request already read is answered, then its connection
   * is closed [LP-8]. Resolves once every connection has closed, or after
   * `ms` with the number still open (a waiting acquire, or a client that
   * does not read its replies); close() then drops them.
   */
  async drain(ms: number): Promise<number> {
    const servers = this.servers;
    this.servers = [];
    for (const server of servers) server.close();
    for (const c of this.connections) c.drain();
    if (this.connections.size > 0) {
      // Resolved by closed() when the last one goes, or by the deadline.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => this.allClosed?.(), ms);
        this.allClosed = () => {
          clearTimeout(timer);
          this.allClosed = null;
          resolve();
        };
      });
    }
    if (this.connections.size > 0) this.log.line('warn', `shutdown: ${this.connections.size} connection(s) still owed replies after ${ms} ms (a client not reading them); closing them`);
    return this.connections.size;
  }

  /** Stop listening and drop every client. */
  async close(): Promise<void> {
    const servers = this.servers;
    this.servers = [];
    for (const c of this.connections) c.destroy();
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    this.log.flush();
  }
}
