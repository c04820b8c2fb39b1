/**
 * The lock table: a deterministic state machine.
 *
 *   apply(state, command, now) -> Outcome
 *
 * No sockets, timers or clocks in here: `now` is an input, the log time of
 * the entry (the sequencer's stamp, carried in the replicated log entry),
 * so the leader, every follower replaying the log, and a log restored from
 * disk all reach the same state from the same commands. Log time is not a
 * wall clock (replica/log-clock.ts): it continues from the last entry's, on a
 * monotonic clock, on whichever node sequences; the table keeps the last
 * one it applied (`at`), so a snapshot carries it too. This is the state machine
 * replication model of hashicorp/raft and etcd-io/raft.
 *
 * Threading: none; the caller owns `state` and must not share it between
 * threads. Ordering: commands must be applied in log order; `apply` mutates
 * `state` in place and returns what the caller must deliver.
 *
 * Rules implemented here: LP-5 (one owner), LP-6 (idempotent grant), LP-7
 * (tokens only go up), LP-8 (session locks vs leases), LP-9 (FIFO waiters),
 * LP-10 (owners only), LP-16 (resuming a client: the secret's hash is
 * replicated here, so a client can resume on any node), LP-18 (a lock's
 * value, set by its grant and gone with it), LP-20 and LP-21 (locks with
 * several holders: shared, or up to a limit), LP-22 (several locks at
 * once, all or nothing, waiters served in arrival order).
 *
 * Waiting, for every kind [LP-9, LP-20, LP-21, LP-22]: each lock has one
 * FIFO of waiters in arrival order (log order, the same on every replica);
 * a waiter for several locks is in the queue of each. The head of a
 * non-empty queue is always a waiter that cannot be granted yet (promote()
 * grants heads as soon as they can be), so a new request is available
 * only where the lock's queue is empty: no later request passes an earlier
 * waiter. A waiter for several locks is granted when every one of them is
 * free and it heads every one of their queues; it holds none while it
 * waits. So the earliest waiter in the whole table heads each of its
 * queues, and is granted once its locks' holders let go: waiting can
 * neither deadlock (no waiter holds part of what it waits for) nor starve.
 */

import { MAX_MS } from './command-check.js';
import { DeadlineHeap } from './deadline-heap.js';
import { LockMap, ROW_WIDTH } from './lock-map.js';

export type { LockView } from './lock-map.js';

export type ClientId = number;

/** A queued `acquire` (LP-9). A client waits on at most one lock at a time. */
export interface Waiter {
  readonly client: ClientId;
  /** Lease to set when granted, or null for a session lock. */
  readonly ttl: number | null;
  /**
   * Leader-clock ms when the wait times out (the acquire's time + timeout),
   * or null to wait as long as the connection lives. Kept in the table so a
   * new leader can arm the timer after failover.
   */
  readonly deadline: number | null;
  /** The value its grant sets [LP-18]; absent for none. */
  readonly value?: string;
  /** [LP-20] It wants a shared hold. */
  readonly shared?: true;
  /** [LP-21] It wants one of `limit` holds. */
  readonly limit?: number;
  /** [LP-22] Every lock it waits for, in its request's order (2 to 16); absent for one. It is in each of their queues. */
  readonly locks?: readonly string[];
}

/** [LP-20, LP-21] One holder's hold of a lock with several holders. */
export interface Hold {
  readonly client: ClientId;
  readonly token: number;
  /** Log time its lease ends, or null for a session hold [LP-8]. */
  expiresAt: number | null;
}

/**
 * [LP-20, LP-21] A lock held shared (`limit` null) or as a semaphore of
 * `limit` holds: its holds in grant order (tokens ascending, so the last
 * is the newest), never empty. A lock is held by one row (LockMap), by
 * one group, or free: never both.
 */
export interface HolderGroup {
  readonly limit: number | null;
  readonly holds: Hold[];
}


/**
 * A client that asked for a secret (`session`, LP-16). `hash`: SHA-256 of
 * the secret, hex; the secret itself never enters the log. `gen`: how many
 * times it was resumed: its connection now is the one greeted or resumed
 * as generation `gen`, and a disconnect of an older one changes nothing
 * (that connection is no longer the client). `node`: the node whose
 * connection is the client since its last resume (null: the node its id
 * names), whose loss ends its sessions [LP-8]. `open`: whether a
 * connection is the client now; a closed client's entry is dropped once it
 * holds no locks (nothing left to resume), unless `session ttl=<ms>` gave
 * it a `ttl`: then it stays resumable until `until`, `ttl` ms of log time
 * after its last connection ended, holding nothing [LP-16]. An entry past
 * its `until` that holds nothing is gone as far as any command can tell;
 * pruneSessions drops such entries from memory now and then.
 */
export interface ClientSession {
  hash: string;
  gen: number;
  node: number | null;
  open: boolean;
  /** `session ttl=<ms>`: how long it stays resumable after its last connection ends; null: only while it holds a lease. */
  ttl: number | null;
  /** Closed with a ttl: the log time it stays resumable until, holding nothing; null while open (or with no ttl). */
  until: number | null;
}

/** Whether a closed client is still resumable at `now`: it holds a lock, or its session ttl has not run out [LP-16]. */
function resumable(state: TableState, client: ClientId, s: ClientSession, now: number): boolean {
  return s.open || (state.owned.get(client) ?? 0) > 0 || (s.until !== null && now < s.until);
}

/**
 * Drop closed sessions that can no longer be resumed (their ttl ran out,
 * holding nothing), once the table holds twice as many as after the last
 * sweep: amortized constant work per `session`. Memory only: whether an
 * entry is resumable is decided by `until` alone, so replicas that sweep
 * at different moments answer alike.
 */
function pruneSessions(state: TableState, now: number): void {
  const size = state.sessions.size;
  if (size < 2 * (sweptAt.get(state) ?? 512)) return;
  for (const [c, s] of state.sessions) if (!resumable(state, c, s, now)) state.sessions.delete(c);
  sweptAt.set(state, Math.max(512, state.sessions.size));
}
/** The sessions' count after each table's last sweep (memory only: not part of the state). */
const sweptAt = new WeakMap<TableState, number>();

export interface TableState {
  /** Held locks by name, with their waiters (lock-map.ts: rows of numbers, not an object per lock). */
  locks: LockMap;
  /** The next fencing token to grant; only ever increases (LP-7). */
  nextToken: number;
  /** The log time of the latest command applied that changed the table (the most such `now`); 0 for a new table. Never decreases. */
  at: number;
  /** The lock each waiting client waits on. */
  waiting: Map<ClientId, string>;
  /** How many locks each client holds (sessions and leases), for the per-client limit. */
  owned: Map<ClientId, number>;
  /** Clients that can be resumed [LP-16]. */
  sessions: Map<ClientId, ClientSession>;
  /**
   * The resource limits grants are refused by (writeRefusal), as the last
   * `limits` entry set them; null until one did. A grant stamped with its
   * own limits (entries written before the `limits` op) uses those.
   */
  limits: WriteLimits | null;
  /**
   * The value of each held lock that has one [LP-18]: set by its grant,
   * fixed while the hold lasts, dropped when the lock is freed. Only locks
   * with a value are here, so a table without values pays one size check
   * per free and per read.
   */
  values: Map<string, string>;
  /**
   * [LP-20, LP-21] Locks with several holders, by name; empty unless some
   * lock is held shared or with a limit, so single-owner locks pay one
   * size check.
   */
  groups: Map<string, HolderGroup>;
}

/** Commands that change the table. They are what the log replicates. */
export type Command =
  /**
   * `limits`: stamped by the node that sequences it on etcd (EtcdNode), so
   * that every node applying the entry refuses it alike (writeRefusal);
   * absent, the table's own limits apply (the `limits` op).
   */
  /**
   * `shared` [LP-20] and `limit` [LP-21]: a hold among several; `locks`
   * [LP-22]: every lock named, 2 to 16 distinct, `lock` being the first
   * (never with `shared` or `limit`). Absent: one lock, held alone.
   */
  | { op: 'preempt'; client: ClientId; lock: string; ttl: number | null; limits?: WriteLimits; gen?: number; value?: string; shared?: true; limit?: number; locks?: string[] }
  /**
   * `timeout`: ms still to wait, null for as long as the connection lives,
   * 0 for not at all [LP-9]. The node the client sent it to counts down
   * the time it has held the request, on its monotonic clock, and sends
   * what is left (aged()): so a forward re-sent to a new leader after
   * failover keeps the client's deadline instead of starting a new one,
   * and no node's wall clock enters it. The wait ends at the entry's log
   * time + timeout (deadlineOf), the same on every replica. `deadline`:
   * only in entries written before that, an absolute time on the clock
   * that stamped them.
   */
  | { op: 'acquire'; client: ClientId; lock: string; ttl: number | null; timeout: number | null; deadline?: number | null; limits?: WriteLimits; gen?: number; value?: string; shared?: true; limit?: number; locks?: string[] }
  /** `locks` [LP-22]: release every one of them (`lock` the first), or none. */
  | { op: 'release'; client: ClientId; lock: string; gen?: number; locks?: string[] }
  | { op: 'renew'; client: ClientId; lock: string; ttl: number; gen?: number }
  /**
   * The client's connection closed (LP-8). `gen`: the generation that
   * connection was (LP-16: 0 for one greeted, absent in older entries);
   * a disconnect of a generation the client has moved on from is stale.
   */
  | { op: 'disconnect'; client: ClientId; gen?: number }
  /** `session [ttl=<ms>]` [LP-16]: `client`'s secret is the one hashing to `hash`; with `ttl`, it stays resumable that long after its last connection ends. */
  | { op: 'session'; client: ClientId; hash: string; ttl?: number }
  /**
   * `resume target secret` [LP-16] on the connection greeted as `client`,
   * on node `node`: if `hash` is target's, that connection becomes
   * `target` (a new generation), and target's former connection's
   * sessions end as if it had closed (LP-8).
   */
  | { op: 'resume'; client: ClientId; target: ClientId; hash: string; node: number }
  /**
   * An operator's force-release (the admin API's revoke): `lock` is freed
   * whoever holds it, and handed to its next waiter with a new token
   * (LP-7), so the former owner's renew and release fail from then on.
   */
  | { op: 'revoke'; lock: string }
  /** The leader's lease timer for the grant with `token` fired (leader decides expiry). */
  | { op: 'expire'; lock: string; token: number }
  /**
   * Every token granted from here on is at least `token` [LP-7]. A
   * primary logs one before anything else in each configuration version
   * it leads, with the version as the high part (token-space.ts), so
   * tokens rise across a failover even when the log that held the last
   * ones was lost with every member.
   */
  | { op: 'floor'; token: number }
  /**
   * The limits every grant after it is refused by (TableState.limits),
   * until the next one. A primary logs its own once in each configuration
   * version it leads, after the floor, instead of stamping them into every
   * grant: every replica refuses alike, from the log alone.
   */
  | { op: 'limits'; limits: WriteLimits }
  /**
   * The leader's timer for `client`'s acquire on `lock` fired (LP-9
   * timeout): `deadline` is the wait's, so a timer left from an earlier
   * wait of the same client on the same lock (granted since, then a new
   * wait) ends nothing. Without it (a half-close ends the wait at once;
   * entries from before it existed) the wait ends whatever its deadline.
   */
  | { op: 'timeout'; client: ClientId; lock: string; deadline?: number }
  /**
   * `sync` [LP-17]: changes nothing. Sequenced as any write, its answer is
   * owed once the node has applied and committed everything its sequencer
   * had when it took it: a read barrier, one round trip to whoever orders
   * writes.
   */
  | { op: 'sync'; client: ClientId };

/** Replies of the state machine, formatted into protocol lines elsewhere. */
/**
 * `owner` of a refusal: the lock's newest current holder [LP-20], null
 * when none holds it (a free lock an earlier waiter wants [LP-22]).
 * `lock`: for a request naming several locks, the first, in its order,
 * that was not available (not held by the caller, for a release) [LP-22].
 */
export type Reply =
  | { op: 'preempt'; ok: true; owner: ClientId; token: number }
  | { op: 'preempt'; ok: false; owner: ClientId | null; lock?: string }
  | { op: 'acquire'; ok: true; owner: ClientId; token: number }
  | { op: 'acquire'; ok: false; owner: ClientId | null; lock?: string }
  | { op: 'release'; ok: true }
  | { op: 'release'; ok: false; owner: ClientId | null; lock?: string }
  | { op: 'renew'; ok: true; token: number }
  | { op: 'renew'; ok: false; owner: ClientId | null }
  | { op: 'session'; client: ClientId }
  /** `owner`/`token`: the grant revoked; null when the lock was not held. */
  | { op: 'revoke'; owner: ClientId | null; token: number | null }
  /** `gen`: the generation the connection now is (its disconnect carries it). */
  | { op: 'resume'; ok: true; client: ClientId; gen: number }
  /** `busy`: the connection holds or waits on locks as the client it was greeted as, so it cannot become another. */
  | { op: 'resume'; ok: false; busy: boolean }
  /**
   * A resource limit refused the write (writeRefusal); sent as
   * `Error: <message>`. In process the leader decides it before applying;
   * on etcd and on the group protocol, apply() does, from the limits stamped in the command or logged in the table.
   */
  | { op: 'refused'; message: string }
  /** [LP-17] */
  | { op: 'sync' };

/** How a lock changed, for replication logs (`UpdateLockmap` / `RemoveLockmap`). */
/**
 * For a lock with several holders [LP-20, LP-21], `owner` and `token` are
 * its newest holder's, `holders` how many hold it, and `expiresAt` the
 * lease end of the hold that changed (null when none was set).
 */
export type LockChange =
  | { kind: 'set'; lock: string; owner: ClientId; token: number; expiresAt: number | null; holders?: number }
  | { kind: 'del'; lock: string };

/** A reply owed to a client other than the command's issuer (a granted waiter). */
export interface Wake {
  client: ClientId;
  reply: Reply;
}

export interface Outcome {
  /**
   * The reply to the command's issuer, or null when there is none yet (an
   * acquire that now waits) or none at all (disconnect, expire). For `timeout`
   * it is the reply owed to the waiting client named in the command.
   */
  reply: Reply | null;
  /** True when the state changed: the command must be logged and replicated. */
  changed: boolean;
  /** Waiters this command answers: those granted, in grant order, then those whose deadline passed (see free). */
  wakes: Wake[];
  /** Lock changes, in order. */
  changes: LockChange[];
  /** When the command made `client` wait on a lock (the leader arms its timeout). */
  waits: { client: ClientId; lock: string } | null;
}

export function createState(firstToken = 1): TableState {
  if (!Number.isSafeInteger(firstToken) || firstToken < 1) {
    throw new RangeError(`firstToken must be a positive safe integer, got ${firstToken}`);
  }
  return { locks: new LockMap(), nextToken: firstToken, at: 0, waiting: new Map(), owned: new Map(), sessions: new Map(), limits: null, values: new Map(), groups: new Map() };
}

function outcome(reply: Reply | null, changed: boolean): Outcome {
  return { reply, changed, wakes: [], changes: [], waits: null };
}

/** Lock change of the lock at position p, as it now is. */
function setChange(locks: LockMap, lock: string, p: number): LockChange {
  return { kind: 'set', lock, owner: locks.owner(p), token: locks.token(p), expiresAt: locks.expiresAt(p) };
}

/** Grant a free lock to `client` alone, with `value` if any [LP-18]; its token. Waiters queued on `lock` stay queued behind the new owner. */
function grant(state: TableState, out: Outcome, lock: string, client: ClientId, ttl: number | null, now: number, value: string | undefined): number {
  const token = state.nextToken++;
  place(state, out, lock, client, token, ttl, now, value);
  return token;
}

/** Hold the free lock `lock` for `client` alone with `token` (one grant may place several locks [LP-22]). */
function place(state: TableState, out: Outcome, lock: string, client: ClientId, token: number, ttl: number | null, now: number, value: string | undefined): void {
  if (value !== undefined) state.values.set(lock, value);
  const expiresAt = ttl === null ? null : now + ttl;
  state.locks.insert(lock, client, token, expiresAt);
  state.owned.set(client, (state.owned.get(client) ?? 0) + 1);
  out.changes.push({ kind: 'set', lock, owner: client, token, expiresAt });
  out.changed = true;
}

/** Make the owner's grant (at position p) a lease ending `ttl` ms from now (LP-6, LP-8 renew). */
function lease(state: TableState, out: Outcome, lock: string, p: number, ttl: number, now: number): void {
  const locks = state.locks;
  locks.setExpiresAt(p, now + ttl);
  out.changes.push(setChange(locks, lock, p));
  out.changed = true;
}

/** When an acquire's wait ends, in log time (see Command): `now` (its entry's log time) + timeout; an old entry's stamped deadline. */
export function deadlineOf(cmd: Extract<Command, { op: 'acquire' }>, now: number): number | null {
  if (cmd.deadline !== undefined) return cmd.deadline;
  return cmd.timeout === null ? null : now + cmd.timeout;
}

/** An acquire that may wait: the only command whose time on the way matters [LP-9]. */
export function waits(cmd: Command): boolean {
  return cmd.op === 'acquire' && cmd.timeout !== null && cmd.timeout > 0;
}

/**
 * A command as its origin sends it `elapsed` ms (monotonic) after its
 * client asked: an acquire's timeout is what is left of it, at least 0
 * [LP-9]; any other command unchanged. Pure: the caller measures.
 */
export function aged(cmd: Command, elapsed: number): Command {
  if (cmd.op !== 'acquire' || cmd.timeout === null || cmd.timeout === 0 || elapsed < 1) return cmd;
  return { ...cmd, timeout: Math.max(0, cmd.timeout - Math.floor(elapsed)) };
}

/** `client` holds one lock fewer; a closed client left with nothing to resume for is dropped [LP-16]. */
function disown(state: TableState, client: ClientId, now: number): void {
  const owned = (state.owned.get(client) ?? 1) - 1;
  if (owned === 0) {
    state.owned.delete(client);
    const s = state.sessions.get(client);
    if (s !== undefined && !resumable(state, client, s, now)) state.sessions.delete(client);
  } else state.owned.set(client, owned);
}

/**
 * Free `lock` (held alone, at position p) and hand it on to its waiters
 * (promote). A 'del' change is recorded when no waiter took it.
 */
function free(state: TableState, out: Outcome, lock: string, p: number, now: number): void {
  const owner = state.locks.owner(p);
  state.locks.deleteAt(p);
  if (state.values.size > 0) state.values.delete(lock); // [LP-18] gone with the hold
  disown(state, owner, now);
  out.changed = true;
  freed(state, out, lock, now, true);
}

/** `lock` has just lost a holder (`nowFree`: its only one): its waiters get what they now can, and a lock left free is recorded as such. */
function freed(state: TableState, out: Outcome, lock: string, now: number, nowFree = false): void {
  if (state.locks.waiters(lock).length === 0) {
    // Nobody waits: the common case, with no promotion to run.
    if (nowFree || isFree(state, lock)) out.changes.push({ kind: 'del', lock });
    return;
  }
  const mark = out.changes.length;
  promote(state, out, [lock], now);
  if (isFree(state, lock)) out.changes.splice(mark, 0, { kind: 'del', lock });
}

// --- several holders [LP-20, LP-21] ---

/** The group holding `lock`, if it is held shared or with a limit. */
function groupOf(state: TableState, lock: string): HolderGroup | undefined {
  return state.groups.size === 0 ? undefined : state.groups.get(lock);
}

/** Whether nobody holds `lock` (waiters may still want it). */
function isFree(state: TableState, lock: string): boolean {
  return state.locks.find(lock) === -1 && groupOf(state, lock) === undefined;
}

/** The newest current holder of `lock` [LP-20], or null when it is free. */
function newestOwner(state: TableState, lock: string): ClientId | null {
  const p = state.locks.find(lock);
  if (p !== -1) return state.locks.owner(p);
  const g = groupOf(state, lock);
  return g === undefined ? null : (g.holds[g.holds.length - 1] as Hold).client;
}

/** The change a group's hold made: newest holder, count, and the lease end of the hold that changed. */
function groupChange(lock: string, g: HolderGroup, expiresAt: number | null): LockChange {
  const newest = g.holds[g.holds.length - 1] as Hold;
  return { kind: 'set', lock, owner: newest.client, token: newest.token, expiresAt, holders: g.holds.length };
}

/** Give `client` a new hold of `lock` among several (`limit` null: shared), the lock being free or held the same way; its token. */
function hold(state: TableState, out: Outcome, lock: string, client: ClientId, ttl: number | null, limit: number | null, now: number): number {
  const token = state.nextToken++;
  const expiresAt = ttl === null ? null : now + ttl;
  let g = groupOf(state, lock);
  if (g === undefined) {
    g = { limit, holds: [] };
    state.groups.set(lock, g);
  }
  g.holds.push({ client, token, expiresAt });
  if (expiresAt !== null) groupLeases.get(state)?.add(expiresAt, [lock, token]);
  state.owned.set(client, (state.owned.get(client) ?? 0) + 1);
  out.changes.push(groupChange(lock, g, expiresAt));
  out.changed = true;
  return token;
}

/** Set a hold's lease to end `ttl` ms from now (LP-6, LP-8 renew). */
function leaseHold(state: TableState, out: Outcome, lock: string, g: HolderGroup, h: Hold, ttl: number, now: number): void {
  h.expiresAt = now + ttl;
  groupLeases.get(state)?.add(h.expiresAt, [lock, h.token]);
  out.changes.push(groupChange(lock, g, h.expiresAt));
  out.changed = true;
}

/** End hold i of `lock`'s group, and hand the lock on (freed). */
function unhold(state: TableState, out: Outcome, lock: string, g: HolderGroup, i: number, now: number): void {
  const [h] = g.holds.splice(i, 1) as [Hold];
  disown(state, h.client, now);
  out.changed = true;
  if (g.holds.length === 0) state.groups.delete(lock);
  else out.changes.push(groupChange(lock, g, null));
  freed(state, out, lock, now);
}

/**
 * Group leases by end time, for the sequencer's expiry clock: (end, [lock,
 * token]) per lease set, stale ones (renewed, released) skipped when they
 * reach the top. Memory only, not part of the state: built from the groups
 * when first asked for (a follower never asks), dropped when a table is
 * restored or a node takes over.
 */
const groupLeases = new WeakMap<TableState, DeadlineHeap<[string, number]>>();

function groupLeaseHeap(state: TableState): DeadlineHeap<[string, number]> {
  let heap = groupLeases.get(state);
  if (heap === undefined) {
    heap = new DeadlineHeap();
    for (const [lock, g] of state.groups) for (const h of g.holds) if (h.expiresAt !== null) heap.add(h.expiresAt, [lock, h.token]);
    groupLeases.set(state, heap);
  }
  // Stale tops: a hold gone, or its lease moved since.
  for (let top = heap.peek(); top !== undefined; top = heap.peek()) {
    const [lock, token] = top.item;
    if (groupOf(state, lock)?.holds.find((h) => h.token === token)?.expiresAt === top.at) break;
    heap.popDue(Infinity);
  }
  return heap;
}

/** When the first lease ends, held alone or among several (log time); Infinity when none is held. */
export function nextLeaseEnd(state: TableState): number {
  const alone = state.locks.nextLeaseEnd();
  return state.groups.size === 0 && !groupLeases.has(state) ? alone : Math.min(alone, groupLeaseHeap(state).nextAt());
}

/** The leases ending at or before `now`, as [lock, token], in end order, taken off the expiry clock: each is handed out once. */
export function dueLeases(state: TableState, now: number): Array<[string, number]> {
  const alone = state.locks.dueLeases(now);
  if (state.groups.size === 0 && !groupLeases.has(state)) return alone;
  const heap = groupLeaseHeap(state);
  if (heap.nextAt() > now) return alone;
  const due: Array<[string, number, number]> = alone.map(([lock, token]) => [lock, token, state.locks.expiresAt(state.locks.find(lock)) ?? now]);
  while (heap.nextAt() <= now) {
    const at = heap.nextAt();
    const [lock, token] = heap.popDue(now) as [string, number];
    due.push([lock, token, at]);
    groupLeaseHeap(state);
  }
  return due.sort((a, b) => a[2] - b[2]).map(([lock, token]) => [lock, token]); // a stable sort: equal ends keep their order
}

/** Forget the groups' expiry clock (a node taking over rebuilds it from the table). */
export function resetLeaseClock(state: TableState): void {
  groupLeases.delete(state);
}

/**
 * The limit `lock` is held or waited for with [LP-21]: a number, null
 * when held or waited for without one, undefined when neither.
 */
function limitOf(state: TableState, lock: string): number | null | undefined {
  const g = groupOf(state, lock);
  if (g !== undefined) return g.limit;
  if (state.locks.find(lock) !== -1) return null;
  const head = state.locks.waiters(lock)[0];
  return head === undefined ? undefined : (head.limit ?? null);
}

/** The words of LP-21's refusals (the contract's own) and of LP-20's no upgrade or downgrade. */
export const heldWithLimit = (lock: string, n: number): string => `${lock} is held with limit=${n}`;
export const heldWithoutLimit = (lock: string): string => `${lock} is held without a limit`;
export const heldAlone = (lock: string): string => `${lock} is held by this client alone; release it to hold it shared (no upgrade or downgrade)`;
export const heldShared = (lock: string): string => `${lock} is held shared by this client; release it to hold it alone (no upgrade or downgrade)`;
export const heldInPart = (lock: string): string => `${lock} is held by this client already, apart from the others named; release it, or name only locks it does not hold`;

/** [LP-21] Whether the request's limit (or none) disagrees with the one `lock` is held or waited for with. */
function limitRefusal(state: TableState, lock: string, limit: number | undefined): string | null {
  const held = limitOf(state, lock);
  if (held === undefined) return null;
  if (held !== null) return limit === held ? null : heldWithLimit(lock, held);
  return limit === undefined ? null : heldWithoutLimit(lock);
}

/** Whether waiter `w`, at the head of `lock`'s queue, can be granted now. */
function grantable(state: TableState, w: Waiter, lock: string): boolean {
  if (w.locks !== undefined) return w.locks.every((l) => isFree(state, l) && state.locks.waiters(l)[0]?.client === w.client);
  if (state.locks.find(lock) !== -1) return false;
  const g = groupOf(state, lock);
  if (g === undefined) return true;
  if (w.shared === true) return g.limit === null;
  return w.limit !== undefined && g.limit === w.limit && g.holds.length < g.limit;
}

/** [LP-22] The first of `w`'s locks, in its request's order, that it could not have now: held, or wanted by an earlier waiter. */
function blockedAt(state: TableState, w: Waiter, lock: string): string {
  const all = w.locks ?? [lock];
  return all.find((l) => !isFree(state, l) || state.locks.waiters(l)[0]?.client !== w.client) ?? lock;
}

/** Take waiter `w` (waiting on `lock`) off every queue it is in; the locks whose queues it left. */
function unqueue(state: TableState, w: Waiter, lock: string): readonly string[] {
  const all = w.locks ?? [lock];
  for (const l of all) state.locks.withdraw(l, w.client);
  state.waiting.delete(w.client);
  return all;
}

/** Grant waiter `w`, the head of `lock`'s queue (and of all its locks' queues); the reply owed to it. */
function grantWaiter(state: TableState, out: Outcome, w: Waiter, lock: string, now: number): Reply {
  state.waiting.delete(w.client);
  let token: number;
  if (w.locks !== undefined) {
    for (const l of w.locks) state.locks.dequeue(l);
    token = state.nextToken++;
    for (const l of w.locks) place(state, out, l, w.client, token, w.ttl, now, w.value);
  } else {
    state.locks.dequeue(lock);
    token = w.shared === true || w.limit !== undefined ? hold(state, out, lock, w.client, w.ttl, w.limit ?? null, now) : grant(state, out, lock, w.client, w.ttl, now, w.value);
  }
  return { op: 'acquire', ok: true, owner: w.client, token };
}

/**
 * Hand the locks in `start` (whose holders or waiters changed) to their
 * waiters, first come first served [LP-9]: each queue's head is granted
 * while it can be; a head whose deadline has passed is answered as timed
 * out instead (the sequencer's timer for it may not have fired yet: it
 * runs on a busy thread, or on a new leader after failover, and a grant
 * after the deadline is a reply the client stopped waiting for; deciding
 * it here, from `now`, gives every replica the same answer). A waiter for
 * several locks that leaves their queues may unblock each of them, so they
 * are looked at in turn. Grants are woken in grant order, then the late.
 */
function promote(state: TableState, out: Outcome, start: readonly string[], now: number): void {
  const todo = [...start];
  let late: Array<[Waiter, string]> | null = null;
  for (let k = 0; k < todo.length; k++) {
    const lock = todo[k] as string;
    for (let w = state.locks.waiters(lock)[0]; w !== undefined; w = state.locks.waiters(lock)[0]) {
      if (w.deadline !== null && w.deadline <= now) {
        const blocked = blockedAt(state, w, lock);
        for (const l of unqueue(state, w, lock)) if (l !== lock && !todo.includes(l)) todo.push(l);
        (late ??= []).push([w, blocked]);
        out.changed = true;
        continue;
      }
      if (!grantable(state, w, lock)) break;
      out.wakes.push({ client: w.client, reply: grantWaiter(state, out, w, lock, now) });
    }
  }
  if (late !== null) for (const [w, blocked] of late) out.wakes.push({ client: w.client, reply: timedOut(state, blocked, w.locks !== undefined) });
}

/** An acquire's Timeout: the lock that was not available and its newest holder [LP-22: `lock=` with several names]. */
function timedOut(state: TableState, lock: string, several: boolean): Reply {
  const owner = newestOwner(state, lock);
  return several ? { op: 'acquire', ok: false, owner, lock } : { op: 'acquire', ok: false, owner };
}

/**
 * What one client may hold, how many may wait on one lock, and how many
 * locks the whole cluster may hold (--max-locks-per-client, --max-waiters,
 * --max-locks). The per-client limit counts by client id, sessions and
 * leases alike, across that client's connections (a resumed client is one
 * client [LP-16]); the cluster's bounds what clients that come and go can
 * leave behind in leases, before the table's memory or the log's store
 * fills. `maxLocks` is absent in entries written before it existed.
 */
export interface WriteLimits {
  maxLocksPerClient: number;
  maxWaitersPerLock: number;
  maxLocks?: number;
}

/** The words of a limit's refusal, one place (tests and the README quote them). */
export const tooManyLocks = (max: number): string => `this client holds ${max} locks, the limit; release some first`;
export const tooManyWaiters = (max: number): string => `${max} clients already wait on this lock, the limit; try again later`;
export const tooManyLocksInCluster = (max: number): string => `the cluster holds ${max} locks, its limit (--max-locks); try again once some are released`;

/**
 * Whether the limits refuse a write before it changes anything: a new lock
 * for a client that holds `maxLocksPerClient` already (an acquire that
 * would wait counts: it may be granted later), or one more waiter on a
 * lock with `maxWaitersPerLock`. Null: it may go ahead. Decided on the
 * table the write applies to, so the limits hold exactly, whichever node
 * the writes come through.
 */
export function writeRefusal(state: TableState, cmd: Command, limits: WriteLimits): string | null {
  if (cmd.op !== 'preempt' && cmd.op !== 'acquire') return null;
  if (cmd.locks !== undefined || state.groups.size > 0) return severalRefusal(state, cmd, limits);
  const { locks } = state;
  const p = locks.find(cmd.lock);
  if (p !== -1 && locks.owner(p) === cmd.client) return null; // its own lock: nothing new
  if (p === -1 || cmd.op === 'acquire') {
    if ((state.owned.get(cmd.client) ?? 0) >= limits.maxLocksPerClient) return tooManyLocks(limits.maxLocksPerClient);
  }
  // A new lock: the cluster's bound. (A wait adds no lock until it is granted, and a grant then takes a freed one's place.)
  if (p === -1 && limits.maxLocks !== undefined && locks.size >= limits.maxLocks) return tooManyLocksInCluster(limits.maxLocks);
  // A free lock's queue counts too: its head waits for other locks as well [LP-22].
  if (cmd.op === 'acquire' && cmd.timeout !== 0 && locks.waiters(cmd.lock).length >= limits.maxWaitersPerLock) {
    return tooManyWaiters(limits.maxWaitersPerLock);
  }
  return null;
}

/** writeRefusal for requests naming several locks, or where some lock has several holders [LP-20, LP-21, LP-22]: the same rules, lock by lock. */
function severalRefusal(state: TableState, cmd: Extract<Command, { op: 'preempt' | 'acquire' }>, limits: WriteLimits): string | null {
  const names = cmd.locks ?? [cmd.lock];
  const fresh = names.filter((l) => !holds(state, cmd.client, l));
  if (fresh.length === 0) return null; // its own: nothing new
  if (fresh.length < names.length) return null; // refused by apply (heldInPart), nothing new taken here
  const added = names.filter((l) => isFree(state, l)).length;
  // A request that may be granted a new hold: an acquire, one that takes a free lock, or one that joins holders [LP-20, LP-21].
  const mayHold = cmd.op === 'acquire' || added > 0 || cmd.shared === true || cmd.limit !== undefined;
  if (mayHold && (state.owned.get(cmd.client) ?? 0) + names.length > limits.maxLocksPerClient) return tooManyLocks(limits.maxLocksPerClient);
  if (added > 0 && limits.maxLocks !== undefined && state.locks.size + state.groups.size + added > limits.maxLocks) return tooManyLocksInCluster(limits.maxLocks);
  if (cmd.op === 'acquire' && cmd.timeout !== 0 && names.some((l) => state.locks.waiters(l).length >= limits.maxWaitersPerLock)) return tooManyWaiters(limits.maxWaitersPerLock);
  return null;
}

/** Whether `client` holds `lock`, alone or among several. */
function holds(state: TableState, client: ClientId, lock: string): boolean {
  const p = state.locks.find(lock);
  if (p !== -1) return state.locks.owner(p) === client;
  return groupOf(state, lock)?.holds.some((h) => h.client === client) === true;
}

/**
 * The words of a holder's repeat with another value [LP-18] (tests and the
 * README quote them). Without the value held: it may be 1024 bytes, and a
 * refusal crosses links (codec: at most 1000 characters); `check` shows it.
 */
export const otherValue = (lock: string, held: string | undefined): string =>
  held === undefined ? `${lock} is held by this client without a value; release it to hold it with one` : `${lock} is held by this client with another value (check shows it); release it to set another`;

/**
 * [LP-18] A holder asking again: without `value` it keeps the one it has
 * (LP-6); with the same one it succeeds; with another (or one where it
 * holds none) it is refused, and nothing changes. Null: go on.
 */
function valueRefusal(state: TableState, cmd: Extract<Command, { op: 'preempt' | 'acquire' }>, lock = cmd.lock): Outcome | null {
  if (cmd.value === undefined) return null;
  const held = state.values.size > 0 ? state.values.get(lock) : undefined;
  return held === cmd.value ? null : outcome({ op: 'refused', message: otherValue(lock, held) }, false);
}

/**
 * A connection of `client` is over [LP-8]: its waiting acquire is
 * withdrawn and its session locks released (leases stay).
 */
function endConnection(state: TableState, client: ClientId, now: number): Outcome {
  const locks = state.locks;
  const out = outcome(null, false);
  const waitingOn = state.waiting.get(client);
  if (waitingOn !== undefined) {
    const w = locks.waiters(waitingOn).find((x) => x.client === client);
    const left = w === undefined ? [waitingOn] : unqueue(state, w, waitingOn);
    if (w === undefined) state.waiting.delete(client);
    out.changed = true;
    promote(state, out, left, now); // [LP-20, LP-22] it may have kept later waiters back
  }
  const held = locks.sessionLocks(client);
  if (state.groups.size > 0) for (const [lock, g] of state.groups) if (g.holds.some((h) => h.client === client && h.expiresAt === null)) held.push(lock);
  // Sorted: the release order decides which waiter gets which token, so
  // it must not depend on how the table was built (a replica restored
  // from a snapshot rebuilds it). Each lock is found afresh: a free()
  // that regrants inserts, which may move positions.
  for (const lock of held.sort()) {
    const p = locks.find(lock);
    if (p !== -1) {
      if (locks.owner(p) === client) free(state, out, lock, p, now);
      continue;
    }
    const g = groupOf(state, lock);
    const i = g === undefined ? -1 : g.holds.findIndex((h) => h.client === client && h.expiresAt === null);
    if (i !== -1) unhold(state, out, lock, g as HolderGroup, i, now);
  }
  return out;
}

/** Every client holding a session lock, alone or among several [LP-8]. */
export function sessionHolders(state: TableState): ClientId[] {
  const owners = state.locks.sessionOwners();
  if (state.groups.size === 0) return owners;
  const all = new Set(owners);
  for (const g of state.groups.values()) for (const h of g.holds) if (h.expiresAt === null) all.add(h.client);
  return [...all];
}

/** Two secret hashes compared in constant time [LP-16] (no early exit on the first difference). */
function sameHash(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ (i < b.length ? b.charCodeAt(i) : 0);
  return diff === 0;
}

/** The node whose connection is `client` now [LP-16]: where it resumed, else the one its id names (replica/client-ids.ts). */
export function homeOf(state: TableState, client: ClientId, nodeOfId: (c: ClientId) => number): number {
  return state.sessions.get(client)?.node ?? nodeOfId(client);
}

/**
 * The clients whose connection is on node `index` and who have something
 * a connection's end would change: session locks, a wait, or a resumable
 * session still open [LP-8, LP-16]. Ascending, so every node ends them in
 * the same order.
 */
export function clientsOf(state: TableState, index: number, nodeOfId: (c: ClientId) => number): ClientId[] {
  const gone = new Set<ClientId>();
  for (const c of sessionHolders(state)) if (homeOf(state, c, nodeOfId) === index) gone.add(c);
  for (const c of state.waiting.keys()) if (homeOf(state, c, nodeOfId) === index) gone.add(c);
  for (const [c, s] of state.sessions) if (s.open && homeOf(state, c, nodeOfId) === index) gone.add(c);
  return [...gone].sort((a, b) => a - b);
}

/** The disconnect that ends `client`'s current connection (its generation, LP-16). */
export function disconnectOf(state: TableState, client: ClientId): Command {
  const gen = state.sessions.get(client)?.gen ?? 0;
  return gen === 0 ? { op: 'disconnect', client } : { op: 'disconnect', client, gen };
}

/** The refusal of a write from a connection its client has moved on from [LP-16] (see apply). */
export const SUPERSEDED = "this connection's client was resumed on another connection (LP-16): this one no longer acts for it and is closed";

/**
 * Apply `cmd` at log time `now`. A command that changes the table also
 * moves the table's log time (`at`) to `now`, if later; one that changes
 * nothing leaves the state exactly as it was (a primary does not log it).
 */
export function apply(state: TableState, cmd: Command, now: number): Outcome {
  const out = applyCommand(state, cmd, now);
  if (out.changed && now > state.at) state.at = now;
  return out;
}

function applyCommand(state: TableState, cmd: Command, now: number): Outcome {
  const locks = state.locks;
  // [LP-16] A write stamped with its connection's generation (a client
  // with a session) from a generation the client has moved on from: the
  // client was resumed elsewhere, and this connection is no longer it. Its
  // node closes it when it applies the resume; a write it sent meanwhile
  // must not act for the client (release its lease, take a lock for it).
  if (cmd.op === 'preempt' || cmd.op === 'acquire' || cmd.op === 'release' || cmd.op === 'renew') {
    if (cmd.gen !== undefined && cmd.gen !== (state.sessions.get(cmd.client)?.gen ?? 0)) return outcome({ op: 'refused', message: SUPERSEDED }, false);
  }
  if (cmd.op === 'preempt' || cmd.op === 'acquire') {
    const limits = cmd.limits ?? state.limits;
    const refused = limits === null ? null : writeRefusal(state, cmd, limits);
    if (refused !== null) return outcome({ op: 'refused', message: refused }, false);
  }
  switch (cmd.op) {
    case 'preempt':
    case 'acquire':
      if (cmd.locks !== undefined) return requestAll(state, cmd, cmd.locks, now);
      if (cmd.shared === true || cmd.limit !== undefined || state.groups.size > 0) return requestAmong(state, cmd, now);
      return requestAlone(state, cmd, now);
    case 'release': {
      if (cmd.locks !== undefined) return releaseAll(state, cmd.client, cmd.locks, now);
      const p = locks.find(cmd.lock);
      if (p === -1) {
        const g = groupOf(state, cmd.lock);
        const i = g === undefined ? -1 : g.holds.findIndex((h) => h.client === cmd.client);
        if (i === -1) return outcome({ op: 'release', ok: false, owner: newestOwner(state, cmd.lock) }, false);
        const out = outcome({ op: 'release', ok: true }, true);
        unhold(state, out, cmd.lock, g as HolderGroup, i, now); // [LP-20] the caller's own hold
        return out;
      }
      // [LP-10] only the owner releases.
      const owner = locks.owner(p);
      if (owner !== cmd.client) return outcome({ op: 'release', ok: false, owner }, false);
      const out = outcome({ op: 'release', ok: true }, true);
      free(state, out, cmd.lock, p, now);
      return out;
    }
    case 'renew': {
      const p = locks.find(cmd.lock);
      if (p === -1) {
        const g = groupOf(state, cmd.lock);
        const h = g?.holds.find((x) => x.client === cmd.client);
        if (h === undefined) return outcome({ op: 'renew', ok: false, owner: newestOwner(state, cmd.lock) }, false);
        const out = outcome({ op: 'renew', ok: true, token: h.token }, false);
        leaseHold(state, out, cmd.lock, g as HolderGroup, h, cmd.ttl, now); // [LP-20] the caller's own hold
        return out;
      }
      const owner = locks.owner(p);
      if (owner !== cmd.client) return outcome({ op: 'renew', ok: false, owner }, false);
      const out = outcome({ op: 'renew', ok: true, token: locks.token(p) }, false);
      lease(state, out, cmd.lock, p, cmd.ttl, now);
      return out;
    }
    case 'disconnect': {
      // [LP-16] a connection the client has moved on from (resumed elsewhere) ends nothing.
      const session = state.sessions.get(cmd.client);
      if ((cmd.gen ?? 0) !== (session?.gen ?? 0)) return outcome(null, false);
      const out = endConnection(state, cmd.client, now);
      if (session !== undefined) {
        out.changed = true;
        // Its leases stay resumable, and a session ttl keeps it so a while; else there is nothing to resume.
        session.open = false;
        session.until = session.ttl === null ? null : now + session.ttl;
        if (!resumable(state, cmd.client, session, now)) state.sessions.delete(cmd.client);
      }
      return out;
    }
    case 'session': {
      const s = state.sessions.get(cmd.client);
      const ttl = cmd.ttl ?? null;
      if (s === undefined) state.sessions.set(cmd.client, { hash: cmd.hash, gen: 0, node: null, open: true, ttl, until: null });
      else {
        s.hash = cmd.hash;
        s.ttl = ttl; // each `session` says how long the client outlives its connections
      }
      pruneSessions(state, now);
      return outcome({ op: 'session', client: cmd.client }, true);
    }
    case 'resume': {
      const s = state.sessions.get(cmd.target);
      if (s === undefined || cmd.target === cmd.client || !resumable(state, cmd.target, s, now) || !sameHash(s.hash, cmd.hash)) return outcome({ op: 'resume', ok: false, busy: false }, false);
      // The connection must come as it was greeted, holding and awaiting
      // nothing: what it held as that client would be left with no owner.
      if ((state.owned.get(cmd.client) ?? 0) > 0 || state.waiting.has(cmd.client)) return outcome({ op: 'resume', ok: false, busy: true }, false);
      // The target's former connection, if still open, is the client no more:
      // its sessions end [LP-8], as if it had closed; its leases stay.
      const out = s.open ? endConnection(state, cmd.target, now) : outcome(null, false);
      s.gen++;
      s.node = cmd.node;
      s.open = true;
      s.until = null;
      // The id the connection was greeted with is retired [LP-4]: nothing resumes it.
      state.sessions.delete(cmd.client);
      out.reply = { op: 'resume', ok: true, client: cmd.target, gen: s.gen };
      out.changed = true;
      return out;
    }
    case 'revoke': {
      const p = locks.find(cmd.lock);
      if (p === -1) {
        const g = groupOf(state, cmd.lock);
        if (g === undefined) return outcome({ op: 'revoke', owner: null, token: null }, false);
        // [LP-20, LP-21] every hold ends; the reply names the newest.
        const newest = g.holds[g.holds.length - 1] as Hold;
        const out = outcome({ op: 'revoke', owner: newest.client, token: newest.token }, true);
        // The holds there were end, then the lock is handed on once: a waiter it lets in keeps its hold.
        for (const h of g.holds.splice(0)) disown(state, h.client, now);
        state.groups.delete(cmd.lock);
        freed(state, out, cmd.lock, now, true);
        return out;
      }
      const out = outcome({ op: 'revoke', owner: locks.owner(p), token: locks.token(p) }, true);
      free(state, out, cmd.lock, p, now);
      return out;
    }
    case 'expire': {
      const p = locks.find(cmd.lock);
      if (p === -1) {
        const g = groupOf(state, cmd.lock);
        const i = g === undefined ? -1 : g.holds.findIndex((h) => h.token === cmd.token);
        if (i === -1) return outcome(null, false); // released since
        const end = (g as HolderGroup).holds[i]?.expiresAt ?? null;
        if (end === null || end > now) return outcome(null, false); // renewed since
        const out = outcome(null, true);
        unhold(state, out, cmd.lock, g as HolderGroup, i, now);
        return out;
      }
      if (locks.token(p) !== cmd.token) return outcome(null, false); // released or regranted since the timer was armed
      const expiresAt = locks.expiresAt(p);
      if (expiresAt === null || expiresAt > now) return outcome(null, false); // renewed since
      const out = outcome(null, true);
      free(state, out, cmd.lock, p, now);
      return out;
    }
    case 'floor': {
      if (cmd.token <= state.nextToken) return outcome(null, false);
      state.nextToken = cmd.token;
      return outcome(null, true);
    }
    case 'limits': {
      const l = state.limits;
      if (l !== null && l.maxLocksPerClient === cmd.limits.maxLocksPerClient && l.maxWaitersPerLock === cmd.limits.maxWaitersPerLock && l.maxLocks === cmd.limits.maxLocks) return outcome(null, false);
      state.limits = Object.freeze({ ...cmd.limits });
      return outcome(null, true);
    }
    case 'sync':
      return outcome({ op: 'sync' }, false); // [LP-17] nothing changes: its place in the order is the point
    case 'timeout': {
      if (state.waiting.get(cmd.client) !== cmd.lock) return outcome(null, false); // granted or withdrawn already
      const w = locks.waiters(cmd.lock).find((x) => x.client === cmd.client);
      if (cmd.deadline !== undefined && w?.deadline !== cmd.deadline) return outcome(null, false); // another wait's timer
      if (w === undefined) {
        state.waiting.delete(cmd.client);
        return outcome({ op: 'acquire', ok: false, owner: newestOwner(state, cmd.lock) }, true);
      }
      const blocked = blockedAt(state, w, cmd.lock);
      const out = outcome(null, true);
      promote(state, out, unqueue(state, w, cmd.lock), now); // [LP-20, LP-22] it may have kept later waiters back
      out.reply = timedOut(state, blocked, w.locks !== undefined);
      return out;
    }
    default:
      // An op this table does not know changes nothing, on every replica
      // alike, and never throws: callers check commands first
      // (command-check.ts), this is the table's own guard.
      return outcome(null, false);
  }
}

type LockRequest = Extract<Command, { op: 'preempt' | 'acquire' }>;

/** A request that cannot be granted now: `preempt` fails; `acquire` waits, or times out at once [LP-9]. */
function notNow(state: TableState, cmd: LockRequest, blocked: string, now: number): Outcome {
  const owner = newestOwner(state, blocked);
  const several = cmd.locks !== undefined;
  if (cmd.op === 'preempt') return outcome(several ? { op: 'preempt', ok: false, owner, lock: blocked } : { op: 'preempt', ok: false, owner }, false);
  // timeout=0, or a deadline already past when the command is applied
  // (a forward delayed on the way): do not wait [LP-9]. A client already
  // waiting cannot queue twice (its connection holds later requests
  // behind the first acquire), so a second one is refused rather than
  // silently double-queued.
  const deadline = deadlineOf(cmd, now);
  if (cmd.timeout === 0 || (deadline !== null && deadline <= now) || state.waiting.has(cmd.client)) return outcome(timedOut(state, blocked, several), false);
  const w: Waiter = { client: cmd.client, ttl: cmd.ttl, deadline };
  const mode = cmd.locks !== undefined ? { locks: [...cmd.locks] } : cmd.shared === true ? { shared: true as const } : cmd.limit !== undefined ? { limit: cmd.limit } : null;
  const waiter: Waiter = cmd.value === undefined ? (mode === null ? w : { ...w, ...mode }) : { ...w, value: cmd.value, ...mode };
  for (const l of cmd.locks ?? [cmd.lock]) state.locks.enqueue(l, waiter);
  state.waiting.set(cmd.client, cmd.lock);
  const out = outcome(null, true);
  out.waits = { client: cmd.client, lock: cmd.lock };
  return out;
}

/** One lock, held alone, where no lock has several holders: the common case, kept to its few steps. */
function requestAlone(state: TableState, cmd: LockRequest, now: number): Outcome {
  const locks = state.locks;
  const p = locks.find(cmd.lock);
  if (p === -1) {
    if (locks.waiters(cmd.lock).length > 0) return notNow(state, cmd, cmd.lock, now); // [LP-22] an earlier waiter wants it
    const out = outcome(null, true);
    out.reply = { op: cmd.op, ok: true, owner: cmd.client, token: grant(state, out, cmd.lock, cmd.client, cmd.ttl, now, cmd.value) };
    return out;
  }
  const owner = locks.owner(p);
  if (owner !== cmd.client) return notNow(state, cmd, cmd.lock, now);
  const otherValue = valueRefusal(state, cmd);
  if (otherValue !== null) return otherValue;
  // [LP-6] The owner asking again succeeds with the same token; ttl re-leases.
  const out = outcome({ op: cmd.op, ok: true, owner, token: locks.token(p) }, false);
  if (cmd.ttl !== null) lease(state, out, cmd.lock, p, cmd.ttl, now);
  return out;
}

/** One lock, shared [LP-20], with a limit [LP-21], or alone where some lock has several holders. */
function requestAmong(state: TableState, cmd: LockRequest, now: number): Outcome {
  const lock = cmd.lock;
  const refused = limitRefusal(state, lock, cmd.limit);
  if (refused !== null) return outcome({ op: 'refused', message: refused }, false);
  const alone = cmd.shared !== true && cmd.limit === undefined;
  const p = state.locks.find(lock);
  if (p !== -1) {
    if (state.locks.owner(p) === cmd.client && !alone) return outcome({ op: 'refused', message: heldAlone(lock) }, false);
    return requestAlone(state, cmd, now);
  }
  const g = groupOf(state, lock);
  if (g === undefined) {
    if (state.locks.waiters(lock).length > 0) return notNow(state, cmd, lock, now); // [LP-9, LP-22] earlier waiters first
    if (alone) return requestAlone(state, cmd, now);
    const out = outcome(null, true);
    out.reply = { op: cmd.op, ok: true, owner: cmd.client, token: hold(state, out, lock, cmd.client, cmd.ttl, cmd.limit ?? null, now) };
    return out;
  }
  const mine = g.holds.find((h) => h.client === cmd.client);
  if (mine !== undefined) {
    if (alone) return outcome({ op: 'refused', message: heldShared(lock) }, false);
    // [LP-6] The holder asking again succeeds with its own token; ttl re-leases its hold.
    const out = outcome({ op: cmd.op, ok: true, owner: cmd.client, token: mine.token }, false);
    if (cmd.ttl !== null) leaseHold(state, out, lock, g, mine, cmd.ttl, now);
    return out;
  }
  // [LP-20] shared joins shared while no earlier waiter wants it alone (the queue is empty: its head would be such a waiter); [LP-21] fewer than the limit hold it.
  const fits = g.limit === null ? cmd.shared === true : g.holds.length < g.limit;
  if (!fits || state.locks.waiters(lock).length > 0) return notNow(state, cmd, lock, now);
  const out = outcome(null, true);
  out.reply = { op: cmd.op, ok: true, owner: cmd.client, token: hold(state, out, lock, cmd.client, cmd.ttl, g.limit, now) };
  return out;
}

/**
 * [LP-22] Several locks, all or nothing, with one token: granted when
 * every one is free and no earlier waiter wants any; otherwise the first
 * that is not (in the request's order) is named. The holder of all of
 * them from one grant asking again succeeds with that token (LP-6).
 */
function requestAll(state: TableState, cmd: LockRequest, names: readonly string[], now: number): Outcome {
  const locks = state.locks;
  for (const l of names) {
    const refused = limitRefusal(state, l, undefined);
    if (refused !== null) return outcome({ op: 'refused', message: refused }, false);
  }
  const mine = names.filter((l) => holds(state, cmd.client, l));
  if (mine.length > 0) {
    const first = mine[0] as string;
    const shared = mine.find((l) => groupOf(state, l) !== undefined);
    if (shared !== undefined) return outcome({ op: 'refused', message: heldShared(shared) }, false);
    const token = locks.token(locks.find(first));
    // [LP-6] only the grant of all of them, asked again, is the same request
    if (mine.length < names.length || mine.some((l) => locks.token(locks.find(l)) !== token)) return outcome({ op: 'refused', message: heldInPart(first) }, false);
    for (const l of names) {
      const otherValue = valueRefusal(state, cmd, l);
      if (otherValue !== null) return otherValue;
    }
    const out = outcome({ op: cmd.op, ok: true, owner: cmd.client, token }, false);
    if (cmd.ttl !== null) for (const l of names) lease(state, out, l, locks.find(l), cmd.ttl, now);
    return out;
  }
  const blocked = names.find((l) => !isFree(state, l) || locks.waiters(l).length > 0);
  if (blocked !== undefined) return notNow(state, cmd, blocked, now);
  const out = outcome(null, true);
  const t = state.nextToken++;
  for (const l of names) place(state, out, l, cmd.client, t, cmd.ttl, now, cmd.value);
  out.reply = { op: cmd.op, ok: true, owner: cmd.client, token: t };
  return out;
}

/** [LP-22] `release` of several locks: all of them if the caller holds every one, else nothing, naming the first it does not hold. */
function releaseAll(state: TableState, client: ClientId, names: readonly string[], now: number): Outcome {
  const missing = names.find((l) => !holds(state, client, l));
  if (missing !== undefined) return outcome({ op: 'release', ok: false, owner: newestOwner(state, missing), lock: missing }, false);
  const out = outcome({ op: 'release', ok: true }, true);
  for (const l of names) {
    const p = state.locks.find(l);
    if (p !== -1) free(state, out, l, p, now);
    else {
      const g = groupOf(state, l) as HolderGroup;
      unhold(state, out, l, g, g.holds.findIndex((h) => h.client === client), now);
    }
  }
  return out;
}

/** `check` (LP-11): a read of this replica. `now` is the reading node's clock. */
/**
 * `holders` [LP-20, LP-21]: for a lock with several holders, every holder
 * in grant order, with `limit` its semaphore's (null: shared); `owner` and
 * `token` are then the newest holder's, and `ttlLeft` its lease's.
 */
export type CheckResult =
  | { held: false }
  | { held: true; owner: ClientId; token: number; ttlLeft: number | null; value?: string; holders?: ClientId[]; limit?: number | null };

export function check(state: TableState, lock: string, now: number): CheckResult {
  const { locks } = state;
  const p = locks.find(lock);
  if (p === -1) {
    const g = groupOf(state, lock);
    if (g === undefined) return { held: false };
    const newest = g.holds[g.holds.length - 1] as Hold;
    return { held: true, owner: newest.client, token: newest.token, ttlLeft: newest.expiresAt === null ? null : Math.max(0, newest.expiresAt - now), holders: g.holds.map((h) => h.client), limit: g.limit };
  }
  const expiresAt = locks.expiresAt(p);
  const r: CheckResult = { held: true, owner: locks.owner(p), token: locks.token(p), ttlLeft: expiresAt === null ? null : Math.max(0, expiresAt - now) };
  const value = state.values.size > 0 ? state.values.get(lock) : undefined;
  if (value !== undefined) r.value = value; // [LP-18]
  return r;
}

/** Who holds `lock` now, in brief: its newest holder, that holder's token, and how many hold it [LP-19, LP-20]; null when free. */
export function holding(state: TableState, lock: string): { owner: ClientId; token: number; holders: number } | null {
  const p = state.locks.find(lock);
  if (p !== -1) return { owner: state.locks.owner(p), token: state.locks.token(p), holders: 1 };
  const g = groupOf(state, lock);
  if (g === undefined) return null;
  const newest = g.holds[g.holds.length - 1] as Hold;
  return { owner: newest.client, token: newest.token, holders: g.holds.length };
}

/** `validate` (LP-7): Valid only while `token` is the current grant's token. */
export type ValidateResult = { valid: true } | { valid: false; owner: ClientId | null; token: number | null };

export function validate(state: TableState, lock: string, token: number): ValidateResult {
  const { locks } = state;
  const p = locks.find(lock);
  if (p === -1) {
    const g = groupOf(state, lock);
    if (g === undefined) return { valid: false, owner: null, token: null };
    if (g.holds.some((h) => h.token === token)) return { valid: true }; // [LP-20, LP-21] any current holder's token
    const newest = g.holds[g.holds.length - 1] as Hold;
    return { valid: false, owner: newest.client, token: newest.token };
  }
  if (locks.token(p) === token) return { valid: true };
  return { valid: false, owner: locks.owner(p), token: locks.token(p) };
}

/**
 * A copy of the state in columns, for resync, failover and disk snapshots.
 * Columns because a million locks must copy out of the table, cross a link
 * and load again in well under a second: they are the
 * table's own layout (lock-map.ts), so a copy is two bulk copies, and one
 * array of names and one Float64Array of numbers cost a fraction of a
 * million small tuples to encode (codec/frame.ts) and decode. A snapshot
 * can be cut into parts (snapshotPart) that load one after another into
 * one state.
 */
export interface Snapshot {
  nextToken: number;
  /**
   * The table's log time (TableState.at). Absent in snapshots written
   * before log time existed, whose times were wall-clock ms: the loader
   * decides (replica/log-clock.ts).
   */
  at?: number;
  /** How many locks. */
  count: number;
  /** Their names in table order, joined by LF (a lock name holds no whitespace [LP-12]). */
  names: string;
  /**
   * For lock i: owner at 3i, token at 3i+1, lease deadline at 3i+2 (NaN
   * for a session lock). Ids, tokens and ms times are safe integers, which
   * a double holds exactly.
   */
  nums: Float64Array;
  /** The locks held alone that have waiters: [i, waiters (WaiterTuple)], i ascending. */
  waiters: Array<[number, WaiterTuple[]]>;
  /** [LP-20, LP-21] Locks with several holders: [name, limit (null: shared), holds as [client, token, lease end or null] in grant order], by name; in the first part only. Absent when none. */
  groups?: Array<[string, number | null, Array<[ClientId, number, number | null]>]>;
  /** Queues of locks not held alone (free [LP-22], or held among several), by name; in the first part only. Absent when none. */
  queues?: Array<[string, WaiterTuple[]]>;
  /** [LP-18] The values of the locks that have one: [i, value], i ascending. Absent when none has one, and in snapshots written before values. */
  values?: Array<[number, string]>;
  /**
   * Resumable clients [LP-16] as [client, hash, gen, node, open], and
   * [ttl, until] after them for a client with a session ttl; in the first
   * part only. Absent in snapshots written before them.
   */
  sessions?: Array<[ClientId, string, number, number | null, boolean] | [ClientId, string, number, number | null, boolean, number, number | null]>;
  /** The table's limits (TableState.limits); absent when it has none, and in snapshots written before them. In the first part only. */
  limits?: WriteLimits;
}

/**
 * A waiter in a snapshot: [client, ttl, deadline], with the value its
 * grant sets fourth when it has one [LP-18], and, for a waiter that wants
 * a shared hold, a limit's or several locks, that fifth (the value then
 * null when it has none) [LP-20, LP-21, LP-22].
 */
export type WaiterTuple =
  | [ClientId, number | null, number | null]
  | [ClientId, number | null, number | null, string]
  | [ClientId, number | null, number | null, string | null, { shared: true } | { limit: number } | { locks: string[] }];

function waiterTuple(w: Waiter): WaiterTuple {
  const kind = w.locks !== undefined ? { locks: [...w.locks] } : w.shared === true ? { shared: true as const } : w.limit !== undefined ? { limit: w.limit } : null;
  if (kind !== null) return [w.client, w.ttl, w.deadline, w.value ?? null, kind];
  return w.value === undefined ? [w.client, w.ttl, w.deadline] : [w.client, w.ttl, w.deadline, w.value];
}

function waiterOf(t: WaiterTuple): Waiter {
  const [client, ttl, deadline, value, kind] = t;
  const w: Waiter = value === undefined || value === null ? { client, ttl, deadline } : { client, ttl, deadline, value };
  return kind === undefined ? w : { ...w, ...kind };
}

/**
 * Where each name of a snapshot starts in `names` (count + 1 offsets, the
 * last names.length + 1), for cutting it into parts. Kept beside the
 * snapshot rather than in it: it is not part of what a snapshot says.
 */
const nameOffsets = new WeakMap<Snapshot, Int32Array>();

function offsetsOf(s: Snapshot): Int32Array {
  let offsets = nameOffsets.get(s);
  if (offsets === undefined) {
    offsets = new Int32Array(s.count + 1);
    let at = 0;
    for (let i = 1; i < s.count; i++) {
      at = s.names.indexOf('\n', at) + 1;
      offsets[i] = at;
    }
    offsets[s.count] = s.names.length + 1;
    nameOffsets.set(s, offsets);
  }
  return offsets;
}

export function snapshot(state: TableState): Snapshot {
  const { names, offsets, nums } = state.locks.columns();
  const waiters: Snapshot['waiters'] = state.locks.queuesByIndex().map(([i, ws]) => [i, ws.map(waiterTuple)]);
  const queues: Snapshot['queues'] = state.locks.queuesOffRows().map(([lock, ws]) => [lock, ws.map(waiterTuple)]);
  const groups: Snapshot['groups'] = [...state.groups].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([lock, g]) => [lock, g.limit, g.holds.map((h) => [h.client, h.token, h.expiresAt] as [ClientId, number, number | null])]);
  const sessions: NonNullable<Snapshot['sessions']> = [...state.sessions].map(([c, s]) => (s.ttl === null ? [c, s.hash, s.gen, s.node, s.open] : [c, s.hash, s.gen, s.node, s.open, s.ttl, s.until]));
  let values: Snapshot['values'];
  if (state.values.size > 0) {
    const held = [...state.values];
    const at = state.locks.indexesOf(held.map(([lock]) => lock));
    values = held.map(([, value], k) => [at[k] as number, value] as [number, string]).sort((x, y) => x[0] - y[0]);
  }
  const snap: Snapshot = { nextToken: state.nextToken, at: state.at, count: offsets.length - 1, names, nums, waiters, sessions, ...(state.limits === null ? {} : { limits: state.limits }), ...(values === undefined ? {} : { values }), ...(groups.length === 0 ? {} : { groups }), ...(queues.length === 0 ? {} : { queues }) };
  nameOffsets.set(snap, offsets);
  return snap;
}

/**
 * The log time of a table restored from a snapshot written before log time
 * existed (no `at`, so `state.at` is 0), from the table alone, no clock:
 * its lease ends and wait deadlines were set at most MAX_MS (the longest
 * ttl or timeout) after the snapshot's time, so the latest of them less
 * MAX_MS is no later than that time. Log time going on from there ends no
 * lease early; a lease may last up to a day longer, once, on an upgrade.
 * 0 for a table with neither.
 */
export function legacyLogTime(state: TableState): number {
  let latest = 0;
  for (const [, e] of state.locks) if (e.expiresAt !== null && e.expiresAt > latest) latest = e.expiresAt;
  for (const [, ws] of state.locks.queueEntries()) for (const w of ws) if (w.deadline !== null && w.deadline > latest) latest = w.deadline;
  return Math.max(0, latest - MAX_MS);
}

/** Queue a snapshot's waiters of `lock`; a waiter for several locks waits, as its client, on the first it named. */
function enqueueAll(state: TableState, lock: string, ws: readonly WaiterTuple[]): void {
  for (const t of ws) {
    const w = waiterOf(t);
    state.locks.enqueue(lock, w);
    state.waiting.set(w.client, w.locks?.[0] ?? lock);
  }
}

/** Locks [from, to) of a snapshot, as a snapshot of their own (indexes from 0). */
export function snapshotPart(s: Snapshot, from: number, to: number): Snapshot {
  const end = Math.min(to, s.count);
  const start = Math.min(from, end);
  const waiters: Snapshot['waiters'] = [];
  for (const [i, ws] of s.waiters) if (i >= start && i < end) waiters.push([i - start, ws]);
  const values = s.values?.filter(([i]) => i >= start && i < end).map(([i, v]) => [i - start, v] as [number, string]);
  const offsets = offsetsOf(s);
  const names = start === end ? '' : s.names.slice(offsets[start], (offsets[end] as number) - 1);
  return { nextToken: s.nextToken, ...(s.at === undefined ? {} : { at: s.at }), count: end - start, names, nums: s.nums.subarray(ROW_WIDTH * start, ROW_WIDTH * end), waiters, sessions: from === 0 ? (s.sessions ?? []) : [], ...(from === 0 && s.limits !== undefined ? { limits: s.limits } : {}), ...(from === 0 && s.groups !== undefined ? { groups: s.groups } : {}), ...(from === 0 && s.queues !== undefined ? { queues: s.queues } : {}), ...(values === undefined || values.length === 0 ? {} : { values }) };
}

/**
 * A state from a snapshot, or, given `into`, that state with the snapshot's
 * locks added (parts load in order). `expected`: how many locks the whole
 * snapshot holds, when known, so that the index is sized once for all the
 * parts instead of growing (and rehashing) part by part.
 */
export function restore(snap: Snapshot, into: TableState = createState(snap.nextToken), expected = 0): TableState {
  const state = into;
  state.nextToken = snap.nextToken;
  if (snap.at !== undefined && snap.at > state.at) state.at = snap.at;
  if (snap.limits !== undefined) state.limits = Object.freeze({ ...snap.limits });
  const { count, nums } = snap;
  const locks = state.locks;
  // The names of the parts to come are guessed from this one's (a little
  // more, as names tend to grow: f999 then f1000); the arena doubles if short.
  const total = Math.max(expected, locks.size + count);
  const chars = count === 0 ? 0 : Math.ceil(((snap.names.length + 1) * (total - locks.size) * 1.1) / count);
  locks.reserve(total, chars);
  const first = locks.load(snap.names, count, nums);
  // Per-client counts in runs: a client's locks tend to sit together, and
  // one Map update per lock would cost a sixth of the load.
  let runOwner = -1;
  let run = 0;
  for (let i = 0; i < count; i++) {
    const owner = nums[ROW_WIDTH * i] as number;
    if (owner !== runOwner) {
      if (run > 0) state.owned.set(runOwner, (state.owned.get(runOwner) ?? 0) + run);
      runOwner = owner;
      run = 0;
    }
    run++;
  }
  if (run > 0) state.owned.set(runOwner, (state.owned.get(runOwner) ?? 0) + run);
  for (const [client, hash, gen, node, open, ttl, until] of snap.sessions ?? []) state.sessions.set(client, { hash, gen, node, open, ttl: ttl ?? null, until: until ?? null });
  for (const [i, ws] of snap.waiters) enqueueAll(state, locks.nameAt(first + i), ws);
  if (snap.groups !== undefined || snap.queues !== undefined) groupLeases.delete(state);
  for (const [lock, limit, holds] of snap.groups ?? []) {
    state.groups.set(lock, { limit, holds: holds.map(([client, token, expiresAt]) => ({ client, token, expiresAt })) });
    for (const [client] of holds) state.owned.set(client, (state.owned.get(client) ?? 0) + 1);
  }
  for (const [lock, ws] of snap.queues ?? []) enqueueAll(state, lock, ws);
  for (const [i, value] of snap.values ?? []) state.values.set(locks.nameAt(first + i), value);
  return state;
}
