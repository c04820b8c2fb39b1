/**
 * The cluster in one process: the main thread starts the leader worker and
 * N follower workers, gives each follower a MessageChannel to the leader,
 * and supervises them.
 *
 * Start order: leader listens first; then each follower is linked (the
 * leader's end of its channel is handed over with a control call), started,
 * and listens once it holds the leader's snapshot. `start()` resolves when
 * every node listens.
 *
 * Supervision: a follower whose worker dies (an uncaught error,
 * terminate(), an injected crash) is logged and started again at once on
 * the same port, with the same client-id counter so no id is reused
 * [LP-4]. The new worker links to the leader like any follower: a snapshot
 * at some sequence number, then the stream after it, so nothing is missed
 * or applied twice. Its old connections died with it; the leader has
 * already ended their sessions [LP-8], and leases survive. A follower that
 * keeps dying soon after each start is restarted with a growing delay
 * (RESTART_BACKOFF_MS), so a crash loop cannot spin.
 *
 * Failover: when the leader's worker dies, every live follower is
 * told to stop applying the old stream (detach) and reports the sequence
 * number it has applied; the highest (ties: the lowest index) is promoted
 * in its own thread, and the others are linked to it and resume from their
 * own state. Because the old leader answered a write only once every
 * follower had applied it, any follower has every answered write; the
 * highest also keeps writes applied but not yet answered, so fewer
 * in-flight writes need re-sending. The new leader also listens on the base
 * port [LP-1], and a new follower is started so that N remain.
 *
 * On etcd (`etcd`) and on the group protocol (`group`, docs/design.md)
 * every node is role-less: a dead one is restarted under its name, and
 * who leads is the engine's to say (roles() asks each node). On the group
 * protocol this thread also keeps the configuration, links every two runs,
 * and takes a run whose thread exited out of the configuration.
 *
 * Threading: main thread. Events from nodes (`NodeEvent`) are delivered on
 * the main thread, per node in order.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { transfer } from './comlink.js';
import { DEFAULT_LIMITS, type Limits } from '../../server/limits.js';
import type { NodeControl, NodeEvent, NodeWorkerData, PromoteArgs } from './control.js';
import { MAX_NODE_INDEX, newIdCounter, type IdCounter } from '../../replica/client-ids.js';
import { TokenFloor } from '../../store/token-floor.js';
import type { LockRow, NodeStats } from '../../node/node.js';
import { WorkerCallError, WorkerHandle, type WorkerExit } from './worker-handle.js';
import { IdReservations } from '../../store/ids-file.js';
import { prepareDataDir, StoreError } from '../../store/store-file.js';
import { readMemberFile, writeMemberFile } from '../../store/group-store.js';
import { readConfigFile, writeConfigFile } from '../../config/file.js';
import type { FsyncMode } from '../../store/store.js';
import type { EtcdAccess } from '../../replication/etcd-access.js';
import { ConfigStore, MemoryConfig } from '../../config/memory.js';
import { replaceRuns, type GroupConfig } from '../../config/config.js';
import { serveConfig } from '../../config/port.js';
import { firstVersionAbove, floorOf } from '../../core/token-space.js';
import { REQUEST_BLOCK } from '../../replication/etcd-members.js';

export interface ClusterOptions {
  followers: number;
  /** Base port [LP-1]: leader here, follower i at base+i; 0 picks free ports. */
  port: number;
  host: string;
  /** Log every request and reply (default true). */
  logRequests?: boolean;
  /** Node events (log batches), and supervisor notices as node `cluster`. */
  onEvent?: (ev: NodeEvent) => void;
  /** Deadline for each control call, ms. */
  callTimeoutMs?: number;
  /**
   * Keep the leader's log here: a restart restores leases, the
   * token counter and client-id counters. Null: nothing is kept.
   */
  dataDir?: string | null;
  fsync?: FsyncMode;
  /**
   * The first fencing token of an empty table [LP-7]. Default: with a data
   * dir or etcd, 1 for a new cluster (they keep the table, so tokens rise
   * across restarts; on etcd see EtcdLog.firstToken); memory-only, the
   * token floor's if there is one, else 1. Never the clock.
   */
  firstToken?: number;
  /**
   * Memory-only: the file that keeps the token floor across runs
   * (store/token-floor.ts), so tokens never repeat though the table is not
   * kept. Null: none (tokens start at `firstToken`, default 1).
   */
  tokenFloor?: string | null;
  /** [LP-15] Clients must send `auth <token>` first; null: no token. */
  authToken?: string | null;
  /** Resource limits of every node; missing ones: DEFAULT_LIMITS. */
  limits?: Partial<Limits>;
  /** Every node serves clients over TLS with this PEM certificate and key. */
  tls?: { cert: string; key: string } | null;
  /**
   * Run the nodes on etcd: the log and the leader's election are
   * etcd's; every node is role-less (host/node-etcd.ts) and a dead one is
   * restarted like a follower. Null: the in-process primary/backup.
   */
  etcd?: { access: EtcdAccess; cluster: string; clusterSecret?: string | null } | null;
  /**
   * Run the nodes on the group protocol (replication/replication-group.ts):
   * every node role-less, linked to every other by a MessageChannel, the
   * configuration kept here on the main thread (config/memory.ts, reached
   * over config/port.ts). A dead node is restarted as a new run that joins
   * as a learner; the group's own leases pick the primary.
   */
  group?: boolean;
  /** With `group`: the fewest secondaries a primary takes writes with (--min-secondaries; pacifica.ts Group). Default 0. */
  minSecondaries?: number;
}

export interface NodeInfo {
  name: string;
  /** On etcd, `node`: role-less (who leads is etcd's election's to say; see stats). */
  role: 'leader' | 'follower' | 'node';
  index: number;
  host: string;
  port: number;
}

/** A node name per LP-3. */
export const nodeName = (index: number): string => (index === 0 ? 'leader' : `follower-${index}`);

/** The node index of a group run's member id (`name.firstReq`, names from nodeName), or null. */
function indexOfRun(id: string): number | null {
  const name = id.slice(0, id.lastIndexOf('.'));
  if (name === 'leader') return 0;
  const m = /^follower-(\d+)$/.exec(name);
  return m === null ? null : Number(m[1]);
}

/**
 * One data dir, one engine: the primary/backup leader's log (snap-*, log-*)
 * at its top, the group protocol's under group/. Starting one engine on the
 * other's directory would ignore what it keeps.
 */
function checkEngineDir(dataDir: string, group: boolean): void {
  const files = readdirSync(dataDir);
  const hasGroup = files.includes('group');
  const hasLog = files.some((f) => /^(snap-\d+\.json|log-\d+)$/.test(f));
  if (group && hasLog) throw new StoreError(`--data-dir ${dataDir} holds a primary/backup log (snap-*, log-*), not the group protocol's: give --replication primary-backup, or another directory`);
  if (!group && hasGroup) throw new StoreError(`--data-dir ${dataDir} holds the group protocol's logs (${join(dataDir, 'group')}): give --replication group, or another directory`);
}

/** The compiled worker entry; from sources (tests) use the build next to them. */
export function workerFile(): URL {
  const here = import.meta.url;
  const url = here.endsWith('.ts') ? new URL('../../../dist/workers/node-worker.js', here) : new URL('../../../workers/node-worker.js', here);
  if (!existsSync(url)) throw new Error(`worker entry ${url.pathname} is missing; run \`npm run build\` first`);
  return url;
}

interface Member {
  info: NodeInfo;
  handle: WorkerHandle<NodeControl>;
  events: MessagePort;
  /** Client ordinal counter of this node's index; kept across restarts [LP-4]. */
  idCounter: IdCounter;
  /** When this worker started, and how many quick deaths in a row led to it. */
  startedAt: number;
  quickDeaths: number;
  /**
   * Ended on purpose by kill() (chaos, the TUI's kill, tests). Such a death
   * says nothing about the worker, so it does not count towards the
   * crash-loop back-off and the restart stays within 1 s; crash()
   * stands for a bug in the worker and does count.
   */
  injected?: boolean;
  /** Ended by restart(): logged as a restart asked for, not as a crash. */
  restartRequested?: boolean;
  /** On the group protocol: this run's member id, and the end of its configuration port on this thread. */
  run?: { id: string; stopConfig: () => void };
}

/** Delay before restarting a follower that died soon after its last start, by how many times in a row. */
export const RESTART_BACKOFF_MS = [0, 200, 1000, 5000, 15_000];
/** A worker that ran at least this long before dying counts as a fresh failure (no back-off). */
const STABLE_MS = 10_000;

export class Cluster {
  private readonly members: Member[] = [];
  /** Client-id counters kept across restarts (with a data dir). */
  private ids: IdReservations | null = null;
  /** Each node index's counter, kept when its node goes, so a new node of that index never reuses an id [LP-4]. */
  private readonly counters = new Map<number, IdCounter>();
  private closing = false;
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  /** Set while a failover runs: restarts wait for it (they need the new leader). */
  private failingOver: Promise<void> | null = null;
  /** Workers started and not yet through their handshake. */
  private starting = 0;

  /** Memory-only: the token floor's extension timer (keepTokenFloor). */
  private floorTimer: NodeJS.Timeout | null = null;
  /** On the group protocol: the one stored configuration, and how many runs each node index has had (its request-id blocks). */
  private readonly configStore = new ConfigStore();
  private readonly runs = new Map<number, number>();

  private constructor(private readonly opts: Required<Omit<ClusterOptions, 'firstToken'>> & { firstToken: number | null }) {}

  /** Every node alike (etcd's election or the group's leases pick who leads): a dead one is restarted, never replaced by a promotion. */
  private get roleless(): boolean {
    return this.opts.etcd !== null || this.opts.group;
  }

  /**
   * The group protocol's tokens lie in their configuration version's space
   * (core/token-space.ts), so a memory-only run keeps its floor by version:
   * the first configuration is stored at the first version whose space lies
   * above the floor, naming the first node's run as primary, and no version
   * is stored before the floor file covers its whole space [LP-7].
   */
  private keepVersionFloor(floor: TokenFloor | null, firstId: string): void {
    if (floor === null) return;
    const first = firstVersionAbove(floor.first);
    floor.extend(floorOf(first + 1));
    this.configStore.value = { version: first, primary: firstId, secondaries: [] };
    this.configStore.beforeStore = (c) => floor.extend(floorOf(c.version + 1));
  }

  /**
   * Every second, the leader's next token moves the floor up when it nears
   * it (store/token-floor.ts). A failed write is a notice each time it
   * fails: the reservation still holds 2^31 tokens when extension starts.
   */
  private keepTokenFloor(floor: TokenFloor): void {
    let busy = false;
    this.floorTimer = setInterval(() => {
      const leader = this.members.find((m) => m.info.role === 'leader' && m.handle.up);
      if (busy || leader === undefined) return;
      busy = true;
      leader.handle
        .call('stats', (r) => r.stats(), this.opts.callTimeoutMs)
        .then(
          (s) => floor.extend(s.nextToken),
          (err: unknown) => void err, // the leader is going or busy: the next tick asks the next one
        )
        .catch((err: unknown) => this.notice('warn', `token floor: ${(err as Error).message}`))
        .finally(() => (busy = false));
    }, 1000);
    this.floorTimer.unref();
  }

  static async start(options: ClusterOptions): Promise<Cluster> {
    if (!Number.isInteger(options.followers) || options.followers < 0 || options.followers > MAX_NODE_INDEX) {
      throw new RangeError(`followers must be a whole number from 0 to ${MAX_NODE_INDEX}, got ${options.followers}`);
    }
    if (!Number.isInteger(options.port) || options.port < 0 || options.port + options.followers > 65535) {
      throw new RangeError(`port must leave room for ${options.followers + 1} ports below 65536, got ${options.port}`);
    }
    const dataDir = options.dataDir ?? null;
    const etcd = options.etcd ?? null;
    if (etcd !== null && dataDir !== null) throw new RangeError('--data-dir and --etcd: with etcd, the log is etcd\'s; give one or the other');
    if (dataDir !== null) prepareDataDir(dataDir); // a clear error before any worker starts
    // Memory-only with a floor file: tokens start above every earlier run's [LP-7].
    const floor = dataDir === null && etcd === null && options.firstToken === undefined && (options.tokenFloor ?? null) !== null ? new TokenFloor(options.tokenFloor as string) : null;
    const group = options.group ?? false;
    if (group && etcd !== null) throw new RangeError('the group protocol in process keeps its configuration in process: leave out --etcd');
    if (group && options.firstToken !== undefined) throw new RangeError('--first-token: on the group protocol tokens come from the configuration version');
    if ((options.minSecondaries ?? 0) > 0 && !group) throw new RangeError('minSecondaries goes with the group protocol');
    const cluster = new Cluster({ logRequests: true, onEvent: () => {}, callTimeoutMs: 10_000, fsync: 'batch', ...options, firstToken: options.firstToken ?? floor?.first ?? null, tokenFloor: options.tokenFloor ?? null, dataDir, authToken: options.authToken ?? null, limits: options.limits ?? {}, tls: options.tls ?? null, etcd, group, minSecondaries: options.minSecondaries ?? 0 });
    if (dataDir !== null) checkEngineDir(dataDir, group);
    if (group && dataDir !== null) cluster.keepGroupDir(dataDir);
    else if (group) cluster.keepVersionFloor(floor, cluster.nextRun(0).id);
    else if (floor !== null) cluster.keepTokenFloor(floor);
    if (dataDir !== null) {
      cluster.ids = new IdReservations(dataDir);
      cluster.ids.start();
    }
    try {
      if (group) await cluster.startGroup(options.followers);
      else {
        await cluster.startNode(0);
        for (let i = 1; i <= options.followers; i++) await (cluster.roleless ? cluster.startNode(i) : cluster.startFollower(i));
      }
    } catch (err) {
      await cluster.close();
      throw err;
    }
    return cluster;
  }

  /**
   * The next run of node `index` on the group protocol: its request ids
   * start a block above every earlier run's (the exactly-once rule skips
   * an entry whose id is not above its origin's last), and its member id
   * names that start, so no two runs share one. Peeked by keepVersionFloor
   * before the first start, so the first start takes the run it named.
   */
  private nextRun(index: number): { id: string; firstReq: number } {
    const k = this.runs.get(index) ?? 0;
    // With a data dir, above the runs its member file names (earlier processes' too).
    const earlier = this.groupDir === null ? [] : (readMemberFile(join(this.groupDir, nodeName(index)))?.runs ?? []);
    const firstReq = Math.max(1 + k * REQUEST_BLOCK, ...earlier.map((r) => Number(r.slice(r.lastIndexOf('.') + 1)) + REQUEST_BLOCK).filter(Number.isSafeInteger));
    return { id: `${nodeName(index)}.${firstReq}`, firstReq };
  }

  /** --data-dir on the group protocol: DIR/group (see keepGroupDir); null without one. */
  private groupDir: string | null = null;

  /**
   * --data-dir on the group protocol: DIR/group/config keeps the
   * configuration, written before each version is stored (config/file.ts);
   * DIR/group/NAME each node's log (store/group-store.ts), with its runs.
   * A configuration that names no run is refused with its logs' leftovers,
   * as a log without its configuration is.
   */
  private keepGroupDir(dataDir: string): void {
    const dir = join(dataDir, 'group');
    prepareDataDir(dir);
    const file = join(dir, 'config');
    const stored = readConfigFile(file);
    const logs = readdirSync(dir).filter((f) => f !== 'config' && readMemberFile(join(dir, f)) !== null);
    if (stored === null && logs.length > 0) throw new StoreError(`${file} is missing, but ${logs.map((f) => join(dir, f)).join(', ')} hold${logs.length === 1 ? 's' : ''} a log: the group cannot tell whose log is current without it; move ${dataDir} away to start empty`);
    this.groupDir = dir;
    this.configStore.value = stored;
    this.configStore.beforeStore = (c) => writeConfigFile(file, c);
  }

  /**
   * Start the group's nodes. Fresh: indexes 0 to `followers`. Back on a
   * data dir: the stored configuration's members first, its primary first
   * of all, then the lowest free indexes up to the count, so every member
   * whose log the data dir keeps comes back. A primary other than index 0
   * also serves the base port when index 0 is not a member, as after a
   * failover [LP-1].
   */
  private async startGroup(followers: number): Promise<void> {
    const c = this.configStore.value;
    const members = this.groupDir === null || c === null ? [] : [c.primary, ...c.secondaries].map(indexOfRun).filter((i): i is number => i !== null);
    const order = [...new Set([...members, ...(members.includes(0) || members.length === 0 ? [0] : [])])];
    for (let i = 1; order.length < Math.max(followers + 1, members.length); i++) if (!order.includes(i)) order.push(i);
    for (const i of order) await this.startNode(i);
    const primary = members[0];
    if (primary !== undefined && primary !== 0 && !members.includes(0) && this.opts.port !== 0) {
      const m = this.members.find((x) => x.info.index === primary);
      if (m === undefined) return;
      const bound = await m.handle.call('take base port', (r) => r.takeBasePort(this.opts.port), this.opts.callTimeoutMs);
      if (bound !== null) m.info.port = bound;
      this.members.splice(this.members.indexOf(m), 1);
      this.members.unshift(m);
      this.notice('info', `${m.info.name} is the primary of the configuration kept in ${this.groupDir}: it serves the base port ${this.opts.port}${bound === null ? ' (could not take it)' : ''}`);
    }
  }

  /** Channels for a new run of `index`: its configuration port, served here, and a link to every other run that is up (handed to it now). */
  private async groupData(index: number): Promise<{ data: NonNullable<NodeWorkerData['group']>; transfer: MessagePort[]; stopConfig: () => void }> {
    const run = this.nextRun(index);
    this.runs.set(index, (this.runs.get(index) ?? 0) + 1);
    const config = new MessageChannel();
    const stopConfig = serveConfig(config.port2, new MemoryConfig(this.configStore));
    // A data dir: this run keeps the node's log, and takes its earlier run's place (dead: its thread is gone, or its process).
    let dataDir: string | null = null;
    if (this.groupDir !== null) {
      dataDir = join(this.groupDir, nodeName(index));
      const earlier = readMemberFile(dataDir)?.runs ?? [];
      writeMemberFile(dataDir, 'dlock up', nodeName(index), earlier, run.id);
      const live = new Set(this.members.filter((m) => m.handle.up && m.run !== undefined).map((m) => (m.run as { id: string }).id));
      const r = await replaceRuns(new MemoryConfig(this.configStore), earlier, run.id, live);
      if (r.replaced !== null) this.notice('info', `${nodeName(index)}'s run ${run.id} takes the place of ${r.replaced}, whose log it restores from ${dataDir}, in configuration ${r.current?.version}`);
    }
    const peers: Array<{ id: string; port: MessagePort }> = [];
    for (const m of this.members) {
      if (m.run === undefined || !m.handle.up || m.info.index === index) continue;
      const ch = new MessageChannel();
      const id = m.run.id;
      try {
        await m.handle.call('link peer', (r) => r.linkPeer(run.id, transfer(ch.port1, [ch.port1])), this.opts.callTimeoutMs);
        peers.push({ id, port: ch.port2 });
      } catch (err) {
        // A run that is going: the new one will be linked to its successor when that starts.
        ch.port2.close();
        this.notice('warn', `${m.info.name} could not be linked to ${nodeName(index)}'s new run: ${(err as Error).message}`);
      }
    }
    return { data: { id: run.id, firstReq: run.firstReq, config: config.port1, peers, dataDir, minSecondaries: this.opts.minSecondaries ?? 0 }, transfer: [config.port1, ...peers.map((p) => p.port)], stopConfig };
  }

  private counterFor(index: number): IdCounter {
    let c = this.counters.get(index);
    if (c === undefined) {
      c = this.ids?.counter(index) ?? newIdCounter();
      this.counters.set(index, c);
    }
    return c;
  }

  /** Link a new channel to the leader and start follower `index` on it. */
  private async startFollower(index: number, previous?: Member): Promise<Member> {
    const leader = this.members[0];
    if (leader === undefined || leader.info.role !== 'leader' || leader.handle.exit !== null) throw new Error('no leader to link a follower to');
    const { port1, port2 } = new MessageChannel();
    await leader.handle.call('link follower', (r) => r.attachFollower(transfer(port1, [port1]), nodeName(index)), this.opts.callTimeoutMs);
    return this.startNode(index, port2, previous);
  }

  /**
   * Start node `index`'s worker and wait for its handshake. `previous` is the
   * member it replaces after a crash: same port, same id counter, same slot.
   */
  private async startNode(index: number, link?: MessagePort, previous?: Member, onPort?: number): Promise<Member> {
    const name = nodeName(index);
    const { port1: events, port2: eventsRemote } = new MessageChannel();
    events.on('message', (ev: NodeEvent) => this.opts.onEvent(ev));
    const port = previous?.info.port ?? onPort ?? (this.opts.port === 0 ? 0 : this.opts.port + index);
    const idCounter = previous?.idCounter ?? this.counterFor(index);
    const group = this.opts.group ? await this.groupData(index) : null;
    const data: NodeWorkerData = {
      role: this.opts.group ? 'group' : this.opts.etcd !== null ? 'etcd' : index === 0 ? 'leader' : 'follower',
      name,
      index,
      host: this.opts.host,
      port,
      idCounter,
      events: eventsRemote,
      logRequests: this.opts.logRequests,
      firstToken: this.opts.firstToken,
      authToken: this.opts.authToken,
      limits: { ...DEFAULT_LIMITS, ...this.opts.limits },
      tls: this.opts.tls,
      dataDir: this.opts.dataDir,
      fsync: this.opts.fsync,
      etcd: this.opts.etcd == null ? null : { ...this.opts.etcd, clusterSecret: this.opts.etcd.clusterSecret ?? null },
      group: group?.data ?? null,
      ...(link === undefined ? {} : { link }),
    };
    const transferList = [eventsRemote, ...(link === undefined ? [] : [link]), ...(group?.transfer ?? [])];
    let member: Member | null = null;
    const handle = new WorkerHandle<NodeControl>(name, workerFile(), { workerData: data, transferList }, (exit) => {
      if (member !== null) this.onExit(member, exit);
    });
    member = { info: { name, role: data.role === 'etcd' || data.role === 'group' ? 'node' : data.role, index, host: this.opts.host, port }, handle, events, idCounter, startedAt: performance.now(), quickDeaths: previous?.quickDeaths ?? 0, ...(group === null ? {} : { run: { id: group.data.id, stopConfig: group.stopConfig } }) };
    const slot = previous === undefined ? -1 : this.members.indexOf(previous);
    if (slot === -1) this.members.push(member);
    else this.members[slot] = member;
    if (previous === undefined) this.opts.onEvent({ type: 'state', node: name, state: 'starting', address: null });
    this.starting++;
    // Role-less, a start may wait for its name's earlier run to expire (etcd) and catch up: give it longer.
    const startMs = this.roleless ? Math.max(this.opts.callTimeoutMs, 60_000) : this.opts.callTimeoutMs;
    const bound = await handle.call('start', (r) => r.start(), startMs).finally(() => this.starting--);
    member.info.port = bound.port;
    this.opts.onEvent({ type: 'state', node: name, state: 'up', address: `${this.opts.host}:${bound.port}` });
    return member;
  }

  /** Start one more follower, linked to the leader, on the next port (or a free one). */
  async addFollower(): Promise<NodeInfo> {
    const leader = this.members[0];
    if (!this.roleless && (leader === undefined || leader.info.role !== 'leader' || leader.handle.exit !== null)) throw new Error('no leader to link a new follower to');
    const index = Math.max(...this.members.map((m) => m.info.index)) + 1;
    if (index > MAX_NODE_INDEX) throw new RangeError(`at most ${MAX_NODE_INDEX} followers`);
    const m = await (this.roleless ? this.startNode(index) : this.startFollower(index));
    return { ...m.info };
  }

  /** A cluster event for views (OUTPUT in the TUI, `cluster` lines headless). */
  notice(kind: 'info' | 'warn' | 'error', text: string): void {
    this.opts.onEvent({ type: 'log', node: 'cluster', lines: [{ t: Date.now(), kind, text }] });
  }

  /** One place for every worker death (its handle's error and exit both end here). */
  private onExit(member: Member, exit: WorkerExit): void {
    member.run?.stopConfig();
    if (this.closing || !this.members.includes(member)) return;
    const name = member.info.name;
    this.opts.onEvent({ type: 'state', node: name, state: 'down', address: null });
    const why = exit.error === null ? `exit code ${exit.code}` : exit.error.message;
    if (member.restartRequested === true) this.notice('warn', `${name} stopped for a restart on request${member.info.role === 'leader' ? '; a follower takes over' : ''}`);
    else this.notice('error', `${name} stopped unexpectedly: ${why}`);
    if (this.opts.group) {
      this.groupLost(member);
      const wasPrimary = member.run !== undefined && this.configStore.value?.primary === member.run.id;
      const dropped = this.dropRun(member).catch((err: unknown) => {
        this.notice('warn', `${name}'s run stays in the configuration until the group's leases remove it: ${(err as Error).message}`);
        return null;
      });
      if (wasPrimary) {
        // As a primary/backup failover: the heir takes the base port [LP-1], the dead node leaves, a new follower keeps the count.
        this.failingOver = dropped
          .then((heir) => this.groupFailover(member, heir))
          .catch((err: unknown) => this.notice('error', `failover failed: ${(err as Error).message}`))
          .finally(() => {
            this.failingOver = null;
          });
        return;
      }
    }
    // On etcd every node is restarted alike; etcd's election picks the leader.
    if (member.info.role !== 'leader') {
      this.scheduleRestart(member);
      return;
    }
    this.failingOver = this.failover(member)
      .catch((err: unknown) => this.notice('error', `failover failed: ${(err as Error).message}`))
      .finally(() => {
        this.failingOver = null;
      });
  }

  private async failover(dead: Member): Promise<void> {
    const t0 = performance.now();
    const timeout = this.opts.callTimeoutMs;
    const live = this.members.filter((m) => m !== dead && m.info.role === 'follower' && m.handle.up);
    if (live.length === 0) {
      await this.noVoterLeft(dead, []);
      return;
    }
    // Every follower stops applying the old stream, so the seqs compared are final.
    const reports = await Promise.all(
      live.map((m) =>
        m.handle.call('detach', (r) => r.detach(), timeout).then(
          (r) => ({ m, ...r }),
          (err: unknown) => {
            this.notice('warn', `${m.info.name} did not report for failover: ${(err as Error).message}`);
            return null;
          },
        ),
      ),
    );
    type Report = { m: Member; seq: number; voter: boolean };
    const ready = reports.filter((r): r is Report => r !== null).sort((a, b) => b.seq - a.seq || a.m.info.index - b.m.info.index);
    // The learner rule: only a voter, a follower the leader
    // counted toward commits, holds every write that was answered. A
    // learner (still loading its snapshot, or resyncing) may have an empty
    // table and a token counter at the first token: promoted, it would
    // grant held locks again and repeat tokens [LP-5, LP-7].
    const chosen = ready.find((r) => r.voter);
    if (chosen === undefined) {
      await this.noVoterLeft(dead, ready.map((r) => r.m));
      return;
    }
    const others = ready.filter((r) => r !== chosen).map((r) => ({ m: r.m, voter: r.voter, ch: new MessageChannel() }));
    const args: PromoteArgs = { deadIndex: dead.info.index, basePort: dead.info.port, followers: others.map((o) => ({ name: o.m.info.name, port: o.ch.port1, counts: o.voter })) };
    const res = await chosen.m.handle.call('promote', (r) => r.promote(transfer(args, others.map((o) => o.ch.port1))), timeout);
    await Promise.all(others.map((o) => o.m.handle.call('relink', (r) => r.relink(transfer(o.ch.port2, [o.ch.port2])), timeout)));
    // The new leader heads the list (startFollower links to members[0]).
    this.forget(dead);
    this.members.splice(this.members.indexOf(chosen.m), 1);
    this.members.unshift(chosen.m);
    chosen.m.info.role = 'leader';
    if (res.basePort !== null) chosen.m.info.port = res.basePort;
    const name = chosen.m.info.name;
    this.opts.onEvent({ type: 'state', node: name, state: 'promoted', address: `${chosen.m.info.host}:${chosen.m.info.port}` });
    this.counts.failovers++;
    this.notice('warn', `${name} promoted to leader in ${Math.round(performance.now() - t0)} ms at seq ${res.seq}; ${others.length} follower(s) relinked${res.basePort === null ? '; the base port could not be taken' : ''}`);
    // Keep N followers: a new one on the lowest follower index not in use
    // (indexes stay bounded however many failovers; ids stay unique, as each
    // index keeps its counter).
    let index = 1;
    while (this.members.some((m) => m.info.index === index)) index++;
    if (index <= MAX_NODE_INDEX) {
      const m = await this.startFollower(index);
      this.notice('info', `${m.info.name} started on ${m.info.host}:${m.info.port} to replace ${dead.info.name}`);
    }
  }

  /**
   * The leader is gone and no follower that survives holds every answered
   * write. Without a data dir nothing does, so no node takes
   * writes: the cluster says so and does not guess. With one, the log on
   * disk holds every answered write (a reply waits for its fsync), so a new
   * leader restores from it, as after a restart; the learners are restarted
   * to link to it, ending their connections [LP-8] as the restore ends
   * every session it finds.
   */
  private async noVoterLeft(dead: Member, learners: Member[]): Promise<void> {
    const names = learners.map((m) => m.info.name).join(', ');
    this.forget(dead);
    if (this.opts.dataDir === null) {
      this.notice('error', `the leader is gone and no follower that has its state survives${names === '' ? '' : ` (${names} still loading it)`}: no node takes writes now. Restart dlock (with --data-dir the log is restored)`);
      return;
    }
    this.notice('warn', `the leader is gone and no follower that has its state survives${names === '' ? '' : ` (${names} still loading it)`}; restarting the leader from ${this.opts.dataDir}`);
    for (const m of learners) m.injected = true;
    const leader = await this.startNode(0, undefined, undefined, dead.info.port);
    this.members.splice(this.members.indexOf(leader), 1);
    this.members.unshift(leader);
    this.notice('info', `leader restored from ${this.opts.dataDir} on ${leader.info.host}:${leader.info.port}`);
    // Their exits restart them (scheduleRestart), linked to this leader once the failover ends.
    await Promise.all(learners.map((m) => m.handle.terminate()));
  }

  /** A dead leader that nothing restarts under its name leaves the cluster; views show it as gone. */
  private forget(dead: Member): void {
    this.members.splice(this.members.indexOf(dead), 1);
    this.opts.onEvent({ type: 'state', node: dead.info.name, state: 'gone', address: null });
  }

  private scheduleRestart(dead: Member): void {
    const quick = dead.injected !== true && performance.now() - dead.startedAt < STABLE_MS;
    dead.quickDeaths = quick ? dead.quickDeaths + 1 : 0;
    const delay = RESTART_BACKOFF_MS[Math.min(Math.max(0, dead.quickDeaths - 1), RESTART_BACKOFF_MS.length - 1)] as number;
    const name = dead.info.name;
    this.opts.onEvent({ type: 'state', node: name, state: 'restarting', address: null });
    if (delay > 0) this.notice('warn', `${name} died ${dead.quickDeaths} times soon after starting; restarting in ${delay} ms`);
    const timer = setTimeout(() => {
      this.restartTimers.delete(timer);
      const t0 = performance.now();
      // During a failover, wait for the new leader to link to.
      (this.failingOver ?? Promise.resolve()).then(() => (this.roleless ? this.startNode(dead.info.index, undefined, dead) : this.startFollower(dead.info.index, dead))).then(
        (m) => {
          this.counts.restarts++;
          this.notice('info', `${name} restarted on ${m.info.host}:${m.info.port} in ${Math.round(performance.now() - t0)} ms`);
        },
        (err: unknown) => {
          if (this.closing) return;
          this.notice('error', `${name} could not be restarted: ${(err as Error).message}`);
          // A new worker that failed its handshake is ended; its exit goes
          // through onExit, which tries again on the back-off schedule. With
          // no new worker (no leader to link to) there is nothing to retry.
          const current = this.members.find((m) => m.info.index === dead.info.index);
          if (current !== undefined && current !== dead && current.handle.exit === null) void current.handle.terminate();
        },
      );
    }, delay);
    this.restartTimers.add(timer);
  }

  get nodes(): NodeInfo[] {
    return this.members.map((m) => ({ ...m.info }));
  }

  /**
   * Every node with the role it has now: the supervisor's word in process;
   * on etcd, each node's own (it leads while it holds etcd's election), or
   * null for a node that does not answer.
   */
  async roles(): Promise<Array<{ name: string; role: 'leader' | 'follower' | null }>> {
    if (!this.roleless) return this.members.map((m) => ({ name: m.info.name, role: m.info.role === 'leader' ? 'leader' : 'follower' }));
    return Promise.all(
      this.members.map(async (m) => {
        const s = await m.handle.call('stats', (r) => r.stats(), this.opts.callTimeoutMs).catch(() => null);
        return { name: m.info.name, role: s === null ? null : s.role };
      }),
    );
  }

  /** `ready leader=HOST:PORT follower-1=HOST:PORT …` */
  readyLine(): string {
    return `ready ${this.members.map((m) => `${m.info.name}=${m.info.host}:${m.info.port}`).join(' ')}`;
  }

  private member(name: string): Member {
    const m = this.members.find((x) => x.info.name === name);
    if (m === undefined) throw new Error(`no node named ${name}`);
    return m;
  }

  stats(name: string): Promise<NodeStats> {
    return this.member(name).handle.call('stats', (r) => r.stats(), this.opts.callTimeoutMs);
  }

  locks(name: string, limit?: number): Promise<LockRow[]> {
    return this.member(name).handle.call('locks', (r) => r.locks(limit), this.opts.callTimeoutMs);
  }

  /** Failovers done and nodes restarted since start (the admin API's metrics). */
  readonly counts = { failovers: 0, restarts: 0 };

  /** The admin API: a node's metrics (NodeMetrics.json), its clients, and a revoke made through it. */
  metricsOf(name: string): Promise<unknown[]> {
    return this.member(name).handle.call('metrics', (r) => r.metrics(), this.opts.callTimeoutMs);
  }

  clientsOf(name: string): Promise<Array<{ client: number; remote: string; locks: number; waiting: string | null }>> {
    return this.member(name).handle.call('clients', (r) => r.clients(), this.opts.callTimeoutMs);
  }

  revoke(name: string, lock: string): Promise<{ owner: number | null; token: number | null } | string> {
    return this.member(name).handle.call<{ owner: number | null; token: number | null } | string>('revoke', (r) => r.revoke(lock), this.opts.callTimeoutMs);
  }

  /**
   * End a node's worker at once, as a crash would (tests; chaos and the
   * TUI's kill action build on it). The supervisor logs it as unexpected.
   */
  async kill(name: string): Promise<void> {
    const m = this.member(name);
    m.injected = true;
    await m.handle.terminate();
  }

  /**
   * Restart a node by hand (the TUI's palette): its worker is ended and the
   * supervisor does what it does for a death, logged as asked for: a
   * follower comes back on its port at once with a fresh snapshot; the
   * leader hands over to a follower (failover) and a new follower is
   * started. Its connections end either way [LP-8].
   */
  async restart(name: string): Promise<void> {
    this.member(name).restartRequested = true;
    await this.kill(name);
  }

  /**
   * No failover or restart under way and every node up (chaos waits for
   * this before killing). On the group protocol also: the stored
   * configuration is exactly the runs that are up, so every new run has
   * joined and no dead one is still a member the primary waits for.
   */
  get settled(): boolean {
    return this.failingOver === null && this.restartTimers.size === 0 && this.starting === 0 && this.members.every((m) => m.handle.up) && (!this.opts.group || this.groupSettled());
  }

  private groupSettled(): boolean {
    const c = this.configStore.value;
    if (c === null) return false;
    const members = new Set([c.primary, ...c.secondaries]);
    return this.members.length === members.size && this.members.every((m) => m.run !== undefined && members.has(m.run.id));
  }

  /**
   * On the group protocol, a run whose thread has exited is certainly
   * dead: it serves nothing and answers nobody, so the supervisor takes it
   * out of the configuration at once, by the same compare-and-swap a
   * member would use (config.ts), rather than leaving it to the group's
   * leases (about graceMs). A dead primary is replaced by a secondary,
   * which holds every committed write (a commit needed every member); a
   * learner never is. The leases still decide every case the supervisor
   * cannot see (a thread that is slow or paused, not gone). Whoever wins
   * the compare-and-swap decides; a lost one is tried again from what won.
   */
  private async dropRun(dead: Member): Promise<Member | null> {
    const id = dead.run?.id;
    if (id === undefined) return null;
    const manager = new MemoryConfig(this.configStore);
    for (let tries = 0; tries < 10 && !this.closing; tries++) {
      const c = this.configStore.value;
      if (c === null || (c.primary !== id && !c.secondaries.includes(id))) return null;
      let next: GroupConfig;
      if (c.primary !== id) {
        next = { version: c.version + 1, primary: c.primary, secondaries: c.secondaries.filter((x) => x !== id) };
      } else {
        const heir = c.secondaries.find((x) => this.members.some((m) => m.run?.id === x && m.handle.up));
        if (heir === undefined) return null; // groupLost said so
        next = { version: c.version + 1, primary: heir, secondaries: c.secondaries.filter((x) => x !== heir) };
      }
      const r = await manager.propose(c, next);
      if (r.won) {
        this.notice('warn', `${dead.info.name}'s run ${id} has exited: configuration ${next.version} leaves it out${c.primary === id ? `; ${next.primary} is the primary` : ''}`);
        return c.primary === id ? (this.members.find((m) => m.run?.id === next.primary) ?? null) : null;
      }
    }
    return null;
  }

  /**
   * The primary's thread exited, on the group protocol. As the
   * primary/backup failover does, and for the same reasons [LP-1]: the
   * heir (the new primary, or null when the group's leases are left to
   * pick it) also listens on the dead node's port, the base port while it
   * led from there; the dead node leaves the cluster (views show it
   * gone); and a new node on the lowest free index keeps the count.
   */
  private async groupFailover(dead: Member, chosen: Member | null): Promise<void> {
    this.forget(dead);
    // Its leases may have picked the primary first: whoever the stored configuration names.
    const heir = chosen ?? this.members.find((m) => m.run !== undefined && m.run.id === this.configStore.value?.primary) ?? null;
    if (heir !== null && heir.handle.up) {
      const bound = await heir.handle.call('take base port', (r) => r.takeBasePort(dead.info.port), this.opts.callTimeoutMs);
      if (bound !== null) heir.info.port = bound;
      this.members.splice(this.members.indexOf(heir), 1);
      this.members.unshift(heir);
      this.opts.onEvent({ type: 'state', node: heir.info.name, state: 'promoted', address: `${heir.info.host}:${heir.info.port}` });
      this.counts.failovers++;
      this.notice('warn', `${heir.info.name} leads; it also serves ${dead.info.name}'s port ${dead.info.port}${bound === null ? ' (could not take it)' : ''}`);
    }
    let index = 1;
    while (this.members.some((m) => m.info.index === index)) index++;
    if (index <= MAX_NODE_INDEX) {
      const m = await this.startNode(index);
      this.notice('info', `${m.info.name} started on ${m.info.host}:${m.info.port} to replace ${dead.info.name}`);
    }
  }

  /**
   * On the group protocol, a run that ended: if no member of the stored
   * configuration is left, nothing that survives holds every committed
   * write, and no node can take writes again (they join as learners of a
   * group with no one to catch up from). Said plainly; nothing is guessed.
   */
  private groupLost(dead: Member): void {
    const c = this.configStore.value;
    if (c === null || dead.run === undefined) return;
    const members = [c.primary, ...c.secondaries];
    if (!members.includes(dead.run.id)) return;
    const live = this.members.filter((m) => m !== dead && m.handle.up && m.run !== undefined && members.includes(m.run.id));
    if (live.length > 0) return;
    this.notice('error', `every member of configuration ${c.version} (${members.join(', ')}) is gone, and with them the only copies of what was committed: no node takes writes now. Restart dlock (tokens still rise: the next run starts at a higher configuration version)`);
  }

  /** Fault injection: every node holds its link frames `ms` ms, for `forMs` ms. */
  async delayLinks(ms: number, forMs: number): Promise<void> {
    // A node that dies meanwhile has no links to delay: its failure is not this call's.
    await Promise.allSettled(this.members.filter((m) => m.handle.up).map((m) => m.handle.call('delay links', (r) => r.delayLinks(ms, forMs), this.opts.callTimeoutMs)));
  }

  /** Fault injection: close one random client connection of `name`; its id, or null. */
  dropClient(name: string): Promise<number | null> {
    return this.member(name).handle.call('drop client', (r) => r.dropClient(), this.opts.callTimeoutMs);
  }

  /** Make a node's thread throw an uncaught error (fault injection); resolves once it has exited. */
  async crash(name: string, reason = 'on request'): Promise<void> {
    const m = this.member(name);
    try {
      await m.handle.call('crash', (r) => r.crash(reason), this.opts.callTimeoutMs);
    } catch (err) {
      // The crash can reach this thread before the call's answer does.
      if (!(err instanceof WorkerCallError && err.code === 'ERR_WORKER_EXITED')) throw err;
    }
    await m.handle.exited;
  }

  /**
   * Stop every node: followers first, so the leader's link loss is not
   * logged as a fault. With `drainMs` (on SIGTERM) every node
   * first stops accepting and reading and answers what it has read, for up
   * to that long; with a data dir the leader's log then holds every write
   * it answered and closes cleanly.
   */
  async close(drainMs = 0): Promise<void> {
    this.closing = true;
    for (const t of this.restartTimers) clearTimeout(t);
    this.restartTimers.clear();
    if (drainMs > 0) {
      // Every node at once: a follower's writes need the leader to answer them.
      const left = await Promise.allSettled(this.members.map((m) => m.handle.call('drain', (r) => r.drain(drainMs), drainMs + this.opts.callTimeoutMs)));
      const open = left.reduce((n, r) => n + (r.status === 'fulfilled' ? r.value : 0), 0);
      this.notice(open === 0 ? 'info' : 'warn', open === 0 ? 'every request read was answered' : `${open} connection(s) still owed replies when the drain ended (a client not reading them): closed without them`);
    }
    this.ids?.stop();
    if (this.floorTimer !== null) clearInterval(this.floorTimer);
    const order = [...this.members].reverse();
    for (const m of order) {
      try {
        await m.handle.call('shutdown', (r) => r.shutdown(), this.opts.callTimeoutMs);
      } catch (err) {
        // Already gone or wedged: terminate() below ends it either way.
        this.opts.onEvent({ type: 'log', node: 'cluster', lines: [{ t: Date.now(), kind: 'warn', text: `${m.info.name}: ${(err as Error).message}` }] });
      }
    }
    await Promise.all(order.map((m) => m.handle.terminate()));
    for (const m of order) m.events.close();
    // Every worker has ended: no id can be handed out now, so the unused rest of each reservation goes back.
    try {
      this.ids?.handBack();
    } catch (err) {
      this.notice('warn', `client ids not handed back (the next run skips the rest of this one's reservation): ${(err as Error).message}`);
    }
  }
}
