/**
 * Node membership and liveness on etcd.
 *
 * Keys, under `/dlock/<cluster>/`:
 *   names/<name>    the node's index, given once by the cluster and kept for
 *                   good: a node that restarts under its name keeps it
 *   next-index      the next index to give
 *   ids/<index>     the end of the client-id ordinals reserved by that index
 *                   (blocks, as ids-file.ts does on disk): ids are unique
 *                   cluster-wide and never reused, across restarts [LP-4]
 *   live/<name>     {index, address, link}, under the node's own etcd lease
 *
 * A node is alive while its lease is. When the lease expires (the process or
 * host died, or it was partitioned away from etcd), its live key goes and
 * every watcher sees it leave; the leader then ends its clients' sessions
 * [LP-8]. A node that cannot renew its lease must stop serving *before* the
 * lease can expire on etcd's side, or a client could still believe in a
 * session lock the leader has released: fail-stop, as ZooKeeper session
 * expiry or Chubby's jeopardy. `onJeopardy` fires once the last renewal
 * that etcd confirmed was sent more than ttl − margin ago.
 *
 * Renewals: LeaseKeeper (etcd-lease.ts), not the etcd3 client's loop,
 * with which a healthy node fail-stopped when one etcd member of three
 * went (losing one member costs at most one election).
 *
 * Clock assumption: the rates of the node's and etcd's clocks differ by far
 * less than the margin over one ttl (no assumption on their offsets).
 *
 * Threading: the thread that made it.
 */
import type { Etcd3, IKeyValue, Lease, Namespace } from 'etcd3';
import { withDeadline } from './deadline.js';
import { jsonObject } from './etcd-value.js';
import { NODE_NAME } from '../codec/frame.js';
import type { EtcdAccess } from './etcd-access.js';
import { lastFailure, LeaseKeeper } from './etcd-lease.js';

/** How often the live nodes are read, and how long one read may take, ms. */
const MEMBERS_POLL_MS = 300;
const MEMBERS_POLL_DEADLINE_MS = 1000;

/**
 * Request ids reserved per block (reserveRequests): 2^36, a month of
 * 25,000 writes a second; a node takes the next block when half is used,
 * and each run (a restart, a rejoin) takes a block of its own, so 2^53
 * leaves 131,072 of them to each node index.
 */
export const REQUEST_BLOCK = 2 ** 36;

/** Client-id ordinals reserved per block: a crash wastes at most one block's rest. */
/**
 * Client ordinals reserved at a time. Small, so that ids grow with the
 * clients served, not with restarts: a crash wastes at most the rest of a
 * block, and a clean stop gives the rest back (returnUnused). A node never
 * hands out an id past its reservation (setOrdinalLimit).
 */
export const ID_BLOCK = 1000;
/**
 * A node's lease, seconds. Ten, as Consul's shortest session TTL and near
 * Chubby's 12 s: it must outlast etcd choosing a new Raft leader (about
 * its election timeout, 1 s by default, and more on a loaded machine) plus
 * the renewals lost meanwhile, or every node fail-stops when etcd's leader
 * goes. With 5 s, that happened in the partition test.
 */
export const DEFAULT_NODE_TTL_S = 10;

/** Another live process already uses this node name. */
export class NameInUseError extends Error {
  override readonly name = 'NameInUseError';
  readonly code = 'ERR_NAME_IN_USE';
}

export interface MemberInfo {
  name: string;
  index: number;
  /** Where clients connect. */
  address: string;
  /** Where other nodes link (transport-tcp.ts). */
  link: string;
  /** As last published (publish()): the seq it has applied, and whether it leads. */
  applied?: number;
  leads?: boolean;
  /** On the group protocol: the run's member id (`name.run`, config/config.ts), so that a later run of the name is not taken for it. */
  member?: string;
  /** HOST:PORT of its admin API (`--http-port`), for `dlock admin --etcd`. */
  admin?: string;
}

export interface JoinResult {
  index: number;
  /** Client ordinals from here on are this node's (up to `reservedTo`). */
  firstOrdinal: number;
  reservedTo: number;
}

export class EtcdMembership {
  private readonly ns: Namespace;
  private lease: Lease | null = null;
  private index = -1;
  private reservedTo = 0;
  private jeopardyTimer: NodeJS.Timeout | null = null;
  private keeper: LeaseKeeper | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private info: MemberInfo | null = null;
  /** Where this node's admin API answers (advertiseAdmin), put in its live key. */
  private admin: string | null = null;
  private leaseId = '';

  constructor(
    client: Etcd3,
    cluster: string,
    readonly name: string,
    private readonly ttlS = DEFAULT_NODE_TTL_S,
    /** How to reach etcd's members, for renewals (LeaseKeeper); join() needs it. */
    private readonly access: EtcdAccess | null = null,
  ) {
    this.ns = client.namespace(`/dlock/${cluster}/`);
  }

  /**
   * Join: take (or get back) this name's index, reserve a block of client
   * ordinals, and go live under a new lease. `onJeopardy` fires (once) if
   * the lease can no longer be renewed in time: stop serving at once.
   */
  async join(info: Omit<MemberInfo, 'name' | 'index'>, onJeopardy: (why: string) => void, fixedIndex?: number, onWait?: (text: string) => void): Promise<JoinResult> {
    // Given an index (one process's nodes have theirs by name: leader 0,
    // follower-i i; a `dlock node` has it from prepare()), no ids are
    // reserved here: the caller counts them (and extend() reserves).
    let from = 0;
    let to = 0;
    if (fixedIndex === undefined) {
      this.index = await this.indexOf();
      [from, to] = await this.reserve(ID_BLOCK);
    } else {
      this.index = fixedIndex;
      await this.register(fixedIndex);
    }
    this.reservedTo = to;
    const lease = this.ns.lease(this.ttlS, { autoKeepAlive: false });
    this.lease = lease;
    this.info = { name: this.name, index: this.index, ...info, ...(this.admin === null ? {} : { admin: this.admin }) };
    const value = JSON.stringify(this.info);
    const granting = performance.now(); // monotonic: renewals are intervals (etcd-lease.ts)
    const leaseId = await lease.grant();
    this.leaseId = leaseId;
    // Renewals are counted from the start: joining may wait for an earlier
    // run's key to expire, and the lease is renewed meanwhile.
    let lost: string | null = null;
    if (this.access === null) throw new Error('EtcdMembership.join needs how to reach etcd (to renew its lease)');
    const keeper = new LeaseKeeper(this.access, leaseId, this.ttlS, granting, (why) => {
      lost = why;
    });
    this.keeper = keeper;
    // A run of this name that died leaves its key until its lease expires:
    // wait that long (and a little) before calling the name taken.
    const deadline = performance.now() + this.ttlS * 1000 + 2000;
    for (;;) {
      const r = await this.ns
        .if(`live/${this.name}`, 'Create', '==', 0)
        .then(this.ns.put(`live/${this.name}`).value(value).lease(leaseId))
        .commit();
      if (r.succeeded) break;
      // Said at once, not after the wait: a restart right after a kill -9 is otherwise silent for a ttl.
      if (onWait !== undefined) {
        onWait(`waiting for this name's earlier run to end: its live key in etcd goes with its lease, within ${Math.ceil((deadline - performance.now()) / 1000)} s at most (a live process under the same name is refused then)`);
        onWait = undefined;
      }
      if (performance.now() > deadline) {
        this.stopRenewing();
        await lease.revoke();
        this.lease = null;
        throw new NameInUseError(`a live node already uses the name ${this.name} in this cluster`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const ttlMs = this.ttlS * 1000;
    // The margin covers stopping (the node answers, then drops its clients
    // within FAIL_STOP_DRAIN_MS, host/node-etcd.ts), this timer's period, and the
    // clocks' rates; etcd itself expires a lease only after its lessor's
    // next check (every 500 ms) and a Raft round.
    const margin = Math.min(Math.max(600, ttlMs / 5), ttlMs / 3);
    this.jeopardyAfterMs = ttlMs - margin;
    let fired = false;
    const jeopardy = (why: string): void => {
      if (fired) return;
      fired = true;
      this.stopRenewing();
      onJeopardy(why);
    };
    lease.on('lost', (err: Error) => jeopardy(`etcd lease lost: ${err.message}`));
    this.jeopardyTimer = setInterval(() => {
      const since = Math.round(performance.now() - keeper.renewedFrom());
      if (lost !== null) jeopardy(lost);
      else if (since > ttlMs - margin) jeopardy(`no etcd lease renewal confirmed for ${since} ms (ttl ${ttlMs} ms)${lastFailure(keeper)}`);
    }, 100);
    this.jeopardyTimer.unref();
    return { index: this.index, firstOrdinal: from, reservedTo: to };
  }

  /**
   * Before a `dlock node` exists: its index (kept for its name) and a block
   * of client ordinals, without going live.
   */
  async prepare(): Promise<{ index: number; firstOrdinal: number; reservedTo: number }> {
    this.index = await this.indexOf();
    const [from, to] = await this.reserve(ID_BLOCK);
    return { index: this.index, firstOrdinal: from, reservedTo: to };
  }

  /** The reservation another membership of this run made (prepare()), which extend() goes on from. */
  adoptReservation(reservedTo: number): void {
    if (reservedTo > this.reservedTo) this.reservedTo = reservedTo;
  }

  /**
   * A clean stop: hand back the ordinals reserved and not used, so that the
   * next run of this name starts right after the last id handed out. Only
   * if the reservation is still this run's (a compare on the stored value).
   */
  async returnUnused(used: number): Promise<void> {
    if (!(used >= 0 && used < this.reservedTo)) return;
    await this.ns.if(`ids/${this.index}`, 'Value', '==', String(this.reservedTo)).then(this.ns.put(`ids/${this.index}`).value(String(used))).commit();
  }

  /**
   * A node with its index by name (one process's nodes: leader 0,
   * follower-i i) registers it under names/ as every node does, so that a
   * leader can check the index a node's link claims (replication-etcd.ts).
   * A name registered with another index is another cluster's layout
   * sharing this prefix: refused.
   */
  private async register(index: number): Promise<void> {
    const r = await this.ns.if(`names/${this.name}`, 'Create', '==', 0).then(this.ns.put(`names/${this.name}`).value(String(index))).else(this.ns.get(`names/${this.name}`)).commit();
    if (r.succeeded) return;
    const had = r.responses[0]?.response_range?.kvs?.[0]?.value.toString();
    if (had !== String(index)) throw new NameInUseError(`the name ${this.name} is registered in this cluster with index ${had ?? '?'}, not ${index}: is another layout using the cluster name?`);
  }

  /** This name's index: the one it had, or the next free one (a txn, so two joins never share one). */
  private async indexOf(): Promise<number> {
    for (;;) {
      const had = await this.ns.get(`names/${this.name}`).string();
      if (had !== null) return Number(had);
      const next = await this.ns.get('next-index').exec();
      const kv = next.kvs[0];
      const n = kv === undefined ? 0 : Number(kv.value.toString());
      const r = await this.ns
        .if('next-index', 'Mod', '==', kv === undefined ? 0 : kv.mod_revision)
        .and(`names/${this.name}`, 'Create', '==', 0)
        .then(this.ns.put('next-index').value(String(n + 1)), this.ns.put(`names/${this.name}`).value(String(n)))
        .commit();
      if (r.succeeded) return n;
      // Another join won the race: read again.
    }
  }

  /** Reserve `n` more client ordinals for this index: [from, to). */
  async reserve(n: number): Promise<[number, number]> {
    for (;;) {
      const got = await this.ns.get(`ids/${this.index}`).exec();
      const kv = got.kvs[0];
      const from = kv === undefined ? 0 : Number(kv.value.toString());
      const r = await this.ns
        .if(`ids/${this.index}`, 'Mod', '==', kv === undefined ? 0 : kv.mod_revision)
        .then(this.ns.put(`ids/${this.index}`).value(String(from + n)))
        .commit();
      if (r.succeeded) {
        this.reservedTo = from + n;
        return [from, from + n];
      }
    }
  }

  /**
   * A block of REQUEST_BLOCK request ids for this node's index, above
   * every one reserved before for it and above `floor` (the highest id of
   * this index the log has applied: ids written before reservations
   * existed); returns its first id. Request ids order a node's proposals
   * for the exactly-once rule (replication-etcd.ts), across its runs: they
   * come from the cluster's own state, never from a clock, so a node
   * restarted with its clock anywhere is served as any restart.
   */
  async reserveRequests(floor: number): Promise<number> {
    for (;;) {
      const got = await this.ns.get(`reqs/${this.index}`).exec();
      const kv = got.kvs[0];
      const stored = kv === undefined ? 1 : Number(kv.value.toString());
      if (!Number.isSafeInteger(stored) || stored < 1) throw new Error(`reqs/${this.index} in etcd is not a request id: ${kv?.value.toString().slice(0, 30) ?? ''}`);
      const from = Math.max(stored, floor + 1);
      if (from + REQUEST_BLOCK > Number.MAX_SAFE_INTEGER) throw new Error(`node index ${this.index} has used every request id`);
      const r = await this.ns
        .if(`reqs/${this.index}`, 'Mod', '==', kv === undefined ? 0 : kv.mod_revision)
        .then(this.ns.put(`reqs/${this.index}`).value(String(from + REQUEST_BLOCK)))
        .commit();
      if (r.succeeded) return from;
    }
  }

  /**
   * Called with the ordinals used so far: reserves the next block when less
   * than half of this one is left, so a restart always starts above every
   * id handed out (a crash wastes at most the rest of a block; ids jump,
   * never repeat).
   */
  async extend(used: number): Promise<number> {
    if (used > this.reservedTo - ID_BLOCK / 2) await this.reserve(ID_BLOCK);
    return this.reservedTo;
  }

  /**
   * The nodes alive now, and every change after (each call gives the whole
   * set). Polled every MEMBERS_POLL_MS, each read with a deadline, not
   * watched: a watch is one stream to one etcd member, and behind a
   * partition the leader never saw a cut-off node leave, so its clients'
   * session locks stayed (seen in CI: over 20 s).
   *
   * A new run of a node that replaced its earlier one between two reads
   * is not reported as that node leaving: the leader ends the sessions of
   * a node that left by its index, and by then the new run may have
   * clients of its own (chaos --procs saw one's waiting acquire withdrawn
   * and never answered). The earlier run's sessions are ended by the new
   * run itself before it takes clients (EtcdReplication.endOwnPastSessions).
   */
  async watch(onChange: (live: MemberInfo[]) => void): Promise<void> {
    let live = new Map<string, MemberInfo>();
    const read = async (): Promise<Map<string, MemberInfo>> => {
      const r = await withDeadline(this.ns.getAll().prefix('live/').exec(), MEMBERS_POLL_DEADLINE_MS, 'reading the live nodes');
      const m = new Map<string, MemberInfo>();
      for (const kv of r.kvs) addMember(m, kv);
      return m;
    };
    live = await read();
    onChange([...live.values()]);
    let polling = false;
    this.pollTimer = setInterval(() => {
      if (polling) return;
      polling = true;
      read()
        .then((now) => {
          if (this.pollTimer === null) return;
          const changed = now.size !== live.size || [...now].some(([name, m]) => JSON.stringify(live.get(name)) !== JSON.stringify(m));
          live = now;
          if (changed) onChange([...live.values()]);
        })
        .catch((err: unknown) => void err) // no answer this time (a member cut off): the next poll
        .finally(() => {
          polling = false;
        });
    }, MEMBERS_POLL_MS);
    this.pollTimer.unref();
  }

  /**
   * Publish this node's progress in its live key (for `dlock status`):
   * under the same lease, so it goes when the node does. No-op when nothing
   * changed.
   */
  /**
   * Say where this node's admin API answers (`dlock admin --etcd` reads it
   * from the live key): kept for every later join and publish, and written
   * now if the node is live.
   */
  async advertiseAdmin(address: string): Promise<void> {
    this.admin = address;
    if (this.info === null || this.lease === null) return;
    this.info = { ...this.info, admin: address };
    await this.putLive();
  }

  async publish(applied: number, leads: boolean, address: string): Promise<void> {
    const info = this.info;
    if (info === null || this.lease === null || (info.applied === applied && info.leads === leads && info.address === address)) return;
    this.info = { ...info, address, applied, leads };
    await this.putLive();
  }

  /**
   * Put the live key as `info` is when the put is sent, one put at a time:
   * of two puts made at once (a publish and advertiseAdmin), the one etcd
   * applies last carries both changes.
   */
  private putLive(): Promise<void> {
    const next = this.putting.then(async () => {
      if (this.info === null || this.lease === null) return;
      await this.ns.put(`live/${this.name}`).value(JSON.stringify(this.info)).lease(this.leaseId).exec();
    });
    this.putting = next.catch(() => undefined); // the caller hears of a failure; the next put goes on
    return next;
  }

  private putting: Promise<void> = Promise.resolve();

  private stopRenewing(): void {
    if (this.jeopardyTimer !== null) clearInterval(this.jeopardyTimer);
    this.jeopardyTimer = null;
    this.keeper?.stop();
    this.keeper = null;
  }

  /**
   * Why this node must stop now, or null: the same rule as the jeopardy
   * timer, asked synchronously where a reply is about to go out, since a
   * process that was paused (SIGSTOP, a frozen VM) handles its waiting I/O
   * before its timers run.
   */
  inJeopardy(): string | null {
    if (this.keeper === null || this.jeopardyAfterMs === null) return null;
    const since = Math.round(performance.now() - this.keeper.renewedFrom());
    return since > this.jeopardyAfterMs ? `no etcd lease renewal confirmed for ${since} ms (ttl ${this.ttlS * 1000} ms)` : null;
  }

  private jeopardyAfterMs: number | null = null;

  /** How long ago the last lease renewal that etcd confirmed was sent, ms (0 before join). */
  confirmedAgoMs(): number {
    return this.keeper === null ? 0 : Math.round(performance.now() - this.keeper.renewedFrom());
  }

  /** Leave on purpose: the live key goes at once. */
  async leave(): Promise<void> {
    this.stopRenewing();
    if (this.pollTimer !== null) clearInterval(this.pollTimer);
    this.pollTimer = null;
    const lease = this.lease;
    this.lease = null;
    if (lease !== null && !lease.revoked()) await lease.revoke();
  }

  /** Stop renewing without revoking: what a crash looks like to etcd (tests). */
  abandon(): void {
    this.stopRenewing();
    if (this.pollTimer !== null) clearInterval(this.pollTimer);
    this.pollTimer = null;
    this.lease?.release();
    this.lease = null;
  }
}

function addMember(live: Map<string, MemberInfo>, kv: IKeyValue): void {
  const m = parseMember(kv.value.toString());
  // A live key that is not a member's (written by hand, another version):
  // not a node this one can link to or end the sessions of; left out.
  if (m !== null && `live/${m.name}` === kv.key.toString().slice(kv.key.toString().lastIndexOf('live/'))) live.set(m.name, m);
}

/** A live key's value, checked field by field (any byte from etcd is); null when it is not a member's. */
export function parseMember(text: string): MemberInfo | null {
  const m = jsonObject(text);
  if (m === null) return null;
  const index = m['index'];
  if (typeof m['name'] !== 'string' || !NODE_NAME.test(m['name'])) return null;
  if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0 || index > 998) return null;
  if (typeof m['address'] !== 'string' || typeof m['link'] !== 'string' || m['address'].length > 300 || m['link'].length > 300) return null;
  if (m['applied'] !== undefined && !(typeof m['applied'] === 'number' && Number.isSafeInteger(m['applied']) && m['applied'] >= 0)) return null;
  if (m['leads'] !== undefined && typeof m['leads'] !== 'boolean') return null;
  if (m['member'] !== undefined && !(typeof m['member'] === 'string' && NODE_NAME.test(m['member']) && m['member'].startsWith(`${m['name']}.`))) return null;
  if (m['admin'] !== undefined && !(typeof m['admin'] === 'string' && m['admin'].length <= 300 && /^[^\s/]+:\d{1,5}$/.test(m['admin']))) return null;
  return {
    name: m['name'],
    index,
    address: m['address'],
    link: m['link'],
    ...(m['applied'] === undefined ? {} : { applied: m['applied'] as number }),
    ...(m['leads'] === undefined ? {} : { leads: m['leads'] as boolean }),
    ...(m['member'] === undefined ? {} : { member: m['member'] as string }),
    ...(m['admin'] === undefined ? {} : { admin: m['admin'] as string }),
  };
}
