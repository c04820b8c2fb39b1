/**
 * The control plane between the main thread and a node's worker: what the
 * worker is started with, the comlink API it exposes, and the events it
 * posts. comlink carries only these control calls; client requests and
 * replication never go through it.
 */
import type { Limits } from '../../server/limits.js';
import type { IdCounter } from '../../replica/client-ids.js';
import type { MessagePort } from 'node:worker_threads';
import type { LogLine } from '../../replica/node-log.js';
import type { FsyncMode } from '../../store/store.js';
import type { EtcdAccess } from '../../replication/etcd-access.js';
import type { LockRow, NodeStats } from '../../node/node.js';

export interface NodeWorkerData {
  /**
   * `etcd`: a role-less node on etcd (host/node-etcd.ts); whoever holds the
   * election leads. `group`: a role-less node on the group protocol
   * (replication-group.ts), its configuration kept by the main thread.
   */
  role: 'leader' | 'follower' | 'etcd' | 'group';
  name: string;
  /** 0 for the leader, i for follower-i [LP-4]. */
  index: number;
  host: string;
  port: number;
  /** Shared client ordinal counter; survives a worker restart. */
  idCounter: IdCounter;
  /** Where the node posts its events (NodeEvent). */
  events: MessagePort;
  /** Follower only: its end of the link to the leader. */
  link?: MessagePort;
  /** Log every request and reply (off for benchmarks). */
  logRequests: boolean;
  /** The first fencing token of an empty table; null: 1, or on etcd one from etcd's revision (EtcdLog.firstToken). */
  firstToken: number | null;
  /** [LP-15] The token clients must send first; null: none. */
  authToken: string | null;
  /** Resource limits. */
  limits: Limits;
  /** Serve clients over TLS (PEM certificate and key); null: plain TCP. */
  tls: { cert: string; key: string } | null;
  /** The leader's log; a promoted follower takes it over. */
  dataDir: string | null;
  fsync: FsyncMode;
  /** The log and election on etcd: how to reach it, the cluster's key prefix, and the secret of its node links (null: the one kept in etcd); null: in-process. */
  etcd: { access: EtcdAccess; cluster: string; clusterSecret: string | null } | null;
  /**
   * Role `group`: this run's member id (`name.firstReq`), where its request
   * ids start (above every earlier run's of its index), its port to the
   * main thread's configuration manager (config/port.ts), and a link to
   * each other node's run now (host/port-links.ts). Null otherwise.
   */
  group: GroupWorkerData | null;
}

export interface GroupWorkerData {
  id: string;
  firstReq: number;
  config: MessagePort;
  peers: Array<{ id: string; port: MessagePort }>;
  /** --data-dir: this node's directory (store/group-store.ts), which the run restores and keeps; null: memory only. */
  dataDir: string | null;
  /** --min-secondaries: the fewest secondaries this node takes writes with as primary (pacifica.ts Group). */
  minSecondaries: number;
}

/**
 * `restarting`: the worker died and the supervisor is starting a new one in
 * its place. `gone`: a dead leader that no worker replaces under its name
 * (a follower was promoted instead); it is no longer part of the cluster.
 */
export type NodeState = 'starting' | 'up' | 'down' | 'restarting' | 'promoted' | 'gone';

export interface PromoteArgs {
  /** Index of the node that led (its clients' sessions end). */
  deadIndex: number;
  /** The base port to take over, or null to keep only its own. */
  basePort: number | null;
  /**
   * The other followers' new links (ports transferred with the call);
   * `counts`: it was a voter, so the new leader counts it toward commits at once.
   */
  followers: Array<{ name: string; port: MessagePort; counts: boolean }>;
}

/**
 * Events for views: log batches posted by nodes on their events port, and
 * state changes from the supervisor (node `cluster` logs its own notices).
 */
export type NodeEvent = { type: 'log'; node: string; lines: LogLine[] } | { type: 'state'; node: string; state: NodeState; address: string | null };

/** The comlink API of a node worker. Every call is made with a timeout. */
export interface NodeControl {
  /** Handshake: resolves once the node serves clients (a follower: after its first snapshot). */
  start(): Promise<{ host: string; port: number }>;
  /** Group only: a link to the run `id` of another node (its thread holds the other end). */
  linkPeer(id: string, port: MessagePort): void;
  /** Group only, at a failover: also listen on the base port [LP-1]; the port bound, or null if it could not be (logged). */
  takeBasePort(port: number): Promise<number | null>;
  /** Leader only: link follower `name` through this port (transferred); it counts toward commits at once. */
  attachFollower(port: MessagePort, name: string): void;
  /**
   * Follower only, at failover: stop applying the dead leader's stream;
   * resolves with the seq applied and whether it was a voter (counted
   * toward commits, so it holds every committed entry: only a voter may be
   * promoted).
   */
  detach(): { seq: number; voter: boolean };
  /** Follower only, at failover: link to the new leader through this port (transferred) and resume. */
  relink(port: MessagePort): void;
  /**
   * Follower only, at failover: its replication becomes the primary in
   * place (PortReplication.lead: nothing handed over), links the surviving
   * followers' ports, and also listen on the base port [LP-1].
   * Resolves with the base port bound, or null if it could not be.
   */
  promote(args: PromoteArgs): Promise<{ basePort: number | null; seq: number }>;
  stats(): NodeStats;
  locks(limit?: number): LockRow[];
  /** The admin API: this node's Prometheus metrics as JSON, for the main thread to merge. */
  metrics(): Promise<unknown[]>;
  /** The admin API: the clients connected to this node. */
  clients(): Array<{ client: number; remote: string; locks: number; waiting: string | null }>;
  /** The admin API: force-release `lock` (logged and replicated); the grant revoked, or an error text. */
  revoke(lock: string): Promise<{ owner: number | null; token: number | null } | string>;
  /**
   * Graceful shutdown, first step: stop accepting and reading,
   * answer what was received, close each connection once answered; resolves
   * with how many connections were still open after `ms`.
   */
  drain(ms: number): Promise<number>;
  /** Stop listening, drop clients, flush the log. */
  shutdown(): Promise<void>;
  /** Fault injection: throw an uncaught error on the node's thread, as a bug would. */
  crash(reason: string): void;
  /** Fault injection: hold every link frame of this node `ms` ms, for `forMs` ms. */
  delayLinks(ms: number, forMs: number): void;
  /** Fault injection: close one client connection at random; its id, or null if none. */
  dropClient(): number | null;
}
