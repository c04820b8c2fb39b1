/**
 * The lock table: a deterministic state machine.
 *
 *   apply(state, command, now) -> Outcome
 *
 * No sockets, timers or clocks in here: `now` is an input (the leader's clock
 * when it applied the command, carried in the replicated log entry), so the
 * leader, every follower replaying the log, and a log restored from disk all
 * reach the same state from the same commands. This is the state machine
 * replication model of hashicorp/raft and etcd-io/raft.
 *
 * Threading: none; the caller owns `state` and must not share it between
 * threads. Ordering: commands must be applied in log order; `apply` mutates
 * `state` in place and returns what the caller must deliver.
 *
 * Rules implemented here: LP-5 (one owner), LP-6 (idempotent grant), LP-7
 * (tokens only go up), LP-8 (session locks vs leases), LP-9 (FIFO waiters),
 * LP-10 (owners only).
 */

import { StringMap, StringSet, type LazyRows } from './string-map.js';

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
}

export interface LockEntry {
  owner: ClientId;
  /** Fencing token of the current grant (LP-7). */
  token: number;
  /** Leader-clock ms at which the lease ends, or null for a session lock (LP-8). */
  expiresAt: number | null;
  /** FIFO of waiting acquires (LP-9); only held locks have waiters. */
  waiters: Waiter[];
}

export interface TableState {
  /** By name; a StringMap, not a Map, so that a million-lock snapshot loads fast (string-map.ts). */
  locks: StringMap<LockEntry>;
  /** The next fencing token to grant; only ever increases (LP-7). */
  nextToken: number;
  /** Session (non-lease) locks of each client, released on disconnect (LP-8). */
  sessions: Map<ClientId, StringSet>;
  /** The lock each waiting client waits on. */
  waiting: Map<ClientId, string>;
  /** How many locks each client holds (sessions and leases), for the per-client limit (issue 6). */
  owned: Map<ClientId, number>;
}

/** Commands that change the table. They are what the log replicates. */
export type Command =
  | { op: 'preempt'; client: ClientId; lock: string; ttl: number | null }
  /**
   * `timeout`: ms to wait, null for as long as the connection lives, 0 for
   * not at all [LP-9]. It is replicated so that whichever node leads can arm
   * the timer; the table itself only asks whether the client may wait.
   */
  | { op: 'acquire'; client: ClientId; lock: string; ttl: number | null; timeout: number | null }
  | { op: 'release'; client: ClientId; lock: string }
  | { op: 'renew'; client: ClientId; lock: string; ttl: number }
  /** The client's connection closed (LP-8). */
  | { op: 'disconnect'; client: ClientId }
  /** The leader's lease timer for the grant with `token` fired (leader decides expiry). */
  | { op: 'expire'; lock: string; token: number }
  /** The leader's timer for `client`'s acquire on `lock` fired (LP-9 timeout). */
  | { op: 'timeout'; client: ClientId; lock: string };

/** Replies of the state machine, formatted into protocol lines elsewhere. */
export type Reply =
  | { op: 'preempt'; ok: true; owner: ClientId; token: number }
  | { op: 'preempt'; ok: false; owner: ClientId }
  | { op: 'acquire'; ok: true; owner: ClientId; token: number }
  | { op: 'acquire'; ok: false; owner: ClientId | null }
  | { op: 'release'; ok: true }
  | { op: 'release'; ok: false; owner: ClientId | null }
  | { op: 'renew'; ok: true; token: number }
  | { op: 'renew'; ok: false; owner: ClientId | null }
  /**
   * Not from apply(): the leader refused a write before applying it, as a
   * resource limit says (issue 6 §2); sent as `Error: <message>`.
   */
  | { op: 'refused'; message: string };

/** How a lock changed, for replication logs (`UpdateLockmap` / `RemoveLockmap`). */
export type LockChange =
  | { kind: 'set'; lock: string; owner: ClientId; token: number; expiresAt: number | null }
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
  /** Waiters granted by this command, in grant order. */
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
  return { locks: new StringMap(), nextToken: firstToken, sessions: new Map(), waiting: new Map(), owned: new Map() };
}

function outcome(reply: Reply | null, changed: boolean): Outcome {
  return { reply, changed, wakes: [], changes: [], waits: null };
}

function addSession(state: TableState, client: ClientId, lock: string): void {
  let set = state.sessions.get(client);
  if (set === undefined) {
    set = new StringSet();
    state.sessions.set(client, set);
  }
  set.add(lock);
}

function dropSession(state: TableState, client: ClientId, lock: string): void {
  const set = state.sessions.get(client);
  if (set === undefined) return;
  set.delete(lock);
  if (set.size === 0) state.sessions.delete(client);
}

function setChange(lock: string, e: LockEntry): LockChange {
  return { kind: 'set', lock, owner: e.owner, token: e.token, expiresAt: e.expiresAt };
}

/**
 * The waiters of every lock that has none: one shared, frozen array instead
 * of an empty one per lock (most locks never have a waiter; a million empty
 * arrays cost memory and a good part of loading a snapshot). Replaced by a
 * lock's own array when the first waiter comes; frozen so that a push onto
 * it is an error, not a waiter shared by every lock.
 */
const NO_WAITERS: Waiter[] = Object.freeze([]) as unknown as Waiter[];

/** Grant a free (absent) lock to `client`. */
function grant(state: TableState, out: Outcome, lock: string, client: ClientId, ttl: number | null, now: number, waiters: Waiter[]): LockEntry {
  const entry: LockEntry = {
    owner: client,
    token: state.nextToken++,
    expiresAt: ttl === null ? null : now + ttl,
    waiters,
  };
  state.locks.set(lock, entry);
  state.owned.set(client, (state.owned.get(client) ?? 0) + 1);
  if (ttl === null) addSession(state, client, lock);
  out.changes.push(setChange(lock, entry));
  out.changed = true;
  return entry;
}

/** Make the owner's grant a lease ending `ttl` ms from now (LP-6, LP-8 renew). */
function lease(state: TableState, out: Outcome, lock: string, entry: LockEntry, ttl: number, now: number): void {
  if (entry.expiresAt === null) dropSession(state, entry.owner, lock);
  entry.expiresAt = now + ttl;
  out.changes.push(setChange(lock, entry));
  out.changed = true;
}

/**
 * Free `lock` held by `entry`: hand it to the first waiter (LP-9, a new token
 * per LP-7) or remove it.
 */
function free(state: TableState, out: Outcome, lock: string, entry: LockEntry, now: number): void {
  if (entry.expiresAt === null) dropSession(state, entry.owner, lock);
  state.locks.delete(lock);
  const owned = (state.owned.get(entry.owner) ?? 1) - 1;
  if (owned === 0) state.owned.delete(entry.owner);
  else state.owned.set(entry.owner, owned);
  out.changed = true;
  const next = entry.waiters.length === 0 ? undefined : entry.waiters.shift();
  if (next === undefined) {
    out.changes.push({ kind: 'del', lock });
    return;
  }
  state.waiting.delete(next.client);
  const granted = grant(state, out, lock, next.client, next.ttl, now, entry.waiters);
  out.wakes.push({ client: next.client, reply: { op: 'acquire', ok: true, owner: next.client, token: granted.token } });
}

export function apply(state: TableState, cmd: Command, now: number): Outcome {
  switch (cmd.op) {
    case 'preempt': {
      const entry = state.locks.get(cmd.lock);
      if (entry === undefined) {
        const out = outcome(null, true);
        const e = grant(state, out, cmd.lock, cmd.client, cmd.ttl, now, NO_WAITERS);
        out.reply = { op: 'preempt', ok: true, owner: cmd.client, token: e.token };
        return out;
      }
      if (entry.owner !== cmd.client) return outcome({ op: 'preempt', ok: false, owner: entry.owner }, false);
      // [LP-6] The owner asking again succeeds with the same token; ttl re-leases.
      const out = outcome({ op: 'preempt', ok: true, owner: cmd.client, token: entry.token }, false);
      if (cmd.ttl !== null) lease(state, out, cmd.lock, entry, cmd.ttl, now);
      return out;
    }
    case 'acquire': {
      const entry = state.locks.get(cmd.lock);
      if (entry === undefined) {
        const out = outcome(null, true);
        const e = grant(state, out, cmd.lock, cmd.client, cmd.ttl, now, NO_WAITERS);
        out.reply = { op: 'acquire', ok: true, owner: cmd.client, token: e.token };
        return out;
      }
      if (entry.owner === cmd.client) {
        const out = outcome({ op: 'acquire', ok: true, owner: cmd.client, token: entry.token }, false);
        if (cmd.ttl !== null) lease(state, out, cmd.lock, entry, cmd.ttl, now);
        return out;
      }
      // timeout=0: do not wait [LP-9]. A client already waiting cannot queue
      // twice (its connection holds later requests behind the first acquire),
      // so a second one is refused rather than silently double-queued.
      if (cmd.timeout === 0 || state.waiting.has(cmd.client)) {
        return outcome({ op: 'acquire', ok: false, owner: entry.owner }, false);
      }
      if (entry.waiters === NO_WAITERS) entry.waiters = [];
      entry.waiters.push({ client: cmd.client, ttl: cmd.ttl, deadline: cmd.timeout === null ? null : now + cmd.timeout });
      state.waiting.set(cmd.client, cmd.lock);
      const out = outcome(null, true);
      out.waits = { client: cmd.client, lock: cmd.lock };
      return out;
    }
    case 'release': {
      const entry = state.locks.get(cmd.lock);
      if (entry === undefined) return outcome({ op: 'release', ok: false, owner: null }, false);
      // [LP-10] only the owner releases.
      if (entry.owner !== cmd.client) return outcome({ op: 'release', ok: false, owner: entry.owner }, false);
      const out = outcome({ op: 'release', ok: true }, true);
      free(state, out, cmd.lock, entry, now);
      return out;
    }
    case 'renew': {
      const entry = state.locks.get(cmd.lock);
      if (entry === undefined) return outcome({ op: 'renew', ok: false, owner: null }, false);
      if (entry.owner !== cmd.client) return outcome({ op: 'renew', ok: false, owner: entry.owner }, false);
      const out = outcome({ op: 'renew', ok: true, token: entry.token }, false);
      lease(state, out, cmd.lock, entry, cmd.ttl, now);
      return out;
    }
    case 'disconnect': {
      const out = outcome(null, false);
      const waitingOn = state.waiting.get(cmd.client);
      if (waitingOn !== undefined) {
        state.waiting.delete(cmd.client);
        const entry = state.locks.get(waitingOn);
        if (entry !== undefined) entry.waiters = entry.waiters.filter((w) => w.client !== cmd.client);
        out.changed = true;
      }
      const held = state.sessions.get(cmd.client);
      if (held !== undefined) {
        // Sorted: the release order decides which waiter gets which token, so
        // it must not depend on how this set was built (a replica restored
        // from a snapshot rebuilds it).
        for (const lock of [...held].sort()) {
          const entry = state.locks.get(lock);
          if (entry !== undefined && entry.owner === cmd.client) free(state, out, lock, entry, now);
        }
        state.sessions.delete(cmd.client);
      }
      return out;
    }
    case 'expire': {
      const entry = state.locks.get(cmd.lock);
      if (entry === undefined || entry.token !== cmd.token || entry.expiresAt === null || entry.expiresAt > now) {
        return outcome(null, false); // renewed, released or regranted since the timer was armed
      }
      const out = outcome(null, true);
      free(state, out, cmd.lock, entry, now);
      return out;
    }
    case 'timeout': {
      if (state.waiting.get(cmd.client) !== cmd.lock) return outcome(null, false); // granted or withdrawn already
      state.waiting.delete(cmd.client);
      const entry = state.locks.get(cmd.lock);
      if (entry === undefined) return outcome({ op: 'acquire', ok: false, owner: null }, true);
      entry.waiters = entry.waiters.filter((w) => w.client !== cmd.client);
      return outcome({ op: 'acquire', ok: false, owner: entry.owner }, true);
    }
  }
}

/** `check` (LP-11): a read of this replica. `now` is the reading node's clock. */
export type CheckResult =
  | { held: false }
  | { held: true; owner: ClientId; token: number; ttlLeft: number | null };

export function check(state: TableState, lock: string, now: number): CheckResult {
  const e = state.locks.get(lock);
  if (e === undefined) return { held: false };
  return { held: true, owner: e.owner, token: e.token, ttlLeft: e.expiresAt === null ? null : Math.max(0, e.expiresAt - now) };
}

/** `validate` (LP-7): Valid only while `token` is the current grant's token. */
export type ValidateResult = { valid: true } | { valid: false; owner: ClientId | null; token: number | null };

export function validate(state: TableState, lock: string, token: number): ValidateResult {
  const e = state.locks.get(lock);
  if (e === undefined) return { valid: false, owner: null, token: null };
  if (e.token === token) return { valid: true };
  return { valid: false, owner: e.owner, token: e.token };
}

/**
 * A copy of the state in columns, for resync, failover and disk snapshots.
 * Columns because a million locks must copy out of the Map, cross a link
 * and load again in well under a second (issue 5 §6): one array of names
 * and one Float64Array of numbers cost a fraction of a million small
 * tuples to build, encode (codec/frame.ts) and decode. A snapshot can be
 * cut into parts (snapshotPart) that load one after another into one state.
 */
export interface Snapshot {
  nextToken: number;
  /** Lock names, in table order. */
  names: string[];
  /**
   * For names[i]: owner at 3i, token at 3i+1, lease deadline at 3i+2 (NaN
   * for a session lock). Ids, tokens and ms times are safe integers, which
   * a double holds exactly.
   */
  nums: Float64Array;
  /** The locks with waiters: [i, waiters as [client, ttl, deadline]], i ascending. */
  waiters: Array<[number, Array<[ClientId, number | null, number | null]>]>;
}

export function snapshot(state: TableState): Snapshot {
  const names = state.locks.keyArray();
  const nums = new Float64Array(3 * names.length);
  const waiters: Snapshot['waiters'] = [];
  const copy: SnapshotCopy = { nums, waiters, i: 0 };
  state.locks.forEach(copyRow, copy);
  return { nextToken: state.nextToken, names, nums, waiters };
}

interface SnapshotCopy {
  nums: Float64Array;
  waiters: Snapshot['waiters'];
  i: number;
}

/** One lock's numbers into the snapshot's column; one function for every copy (see StringMap#forEach). */
function copyRow(this: SnapshotCopy, e: LockEntry): void {
  const i = this.i++;
  this.nums[3 * i] = e.owner;
  this.nums[3 * i + 1] = e.token;
  this.nums[3 * i + 2] = e.expiresAt ?? NaN;
  if (e.waiters.length > 0) this.waiters.push([i, e.waiters.map((w) => [w.client, w.ttl, w.deadline])]);
}

/** Locks [from, to) of a snapshot, as a snapshot of their own (indexes from 0). */
export function snapshotPart(s: Snapshot, from: number, to: number): Snapshot {
  const waiters: Snapshot['waiters'] = [];
  for (const [i, ws] of s.waiters) if (i >= from && i < to) waiters.push([i - from, ws]);
  return { nextToken: s.nextToken, names: s.names.slice(from, to), nums: s.nums.subarray(3 * from, 3 * to), waiters };
}

/**
 * The locks of a snapshot (part) as the table's lazy values: a million
 * entry objects, each with two boxed doubles (token and deadline are past
 * 2^31), cost a loading follower about 200 ms and the GC more; built when a
 * lock is first read, only the locks a follower is asked about (or, once
 * promoted, walks) are ever built. Holds the part's numbers column until
 * every row of it is built or gone.
 */
class SnapshotRows implements LazyRows<LockEntry> {
  constructor(private readonly nums: Float64Array) {}

  build(i: number): LockEntry {
    const expires = this.nums[3 * i + 2] as number;
    return { owner: this.nums[3 * i] as number, token: this.nums[3 * i + 1] as number, expiresAt: Number.isNaN(expires) ? null : expires, waiters: NO_WAITERS };
  }
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
  const { names, nums } = snap;
  const locks = state.locks;
  locks.reserve(Math.max(expected, locks.size + names.length));
  // Per-client counts in runs: a client's locks tend to sit together, and
  // one Map update per lock would cost a sixth of the load (issue 5 §6).
  let runOwner = -1;
  let run = 0;
  const countRun = (): void => {
    if (run > 0) state.owned.set(runOwner, (state.owned.get(runOwner) ?? 0) + run);
  };
  // Entries are built when first read (see SnapshotRows).
  const rows = new SnapshotRows(nums);
  for (let i = 0; i < names.length; i++) {
    const name = names[i] as string;
    const owner = nums[3 * i] as number;
    locks.setLazy(name, rows, i);
    if (owner !== runOwner) {
      countRun();
      runOwner = owner;
      run = 0;
    }
    run++;
    if (Number.isNaN(nums[3 * i + 2] as number)) addSession(state, owner, name);
  }
  countRun();
  for (const [i, ws] of snap.waiters) {
    const name = names[i] as string;
    const e = locks.get(name) as LockEntry;
    if (e.waiters === NO_WAITERS) e.waiters = [];
    for (const [client, ttl, deadline] of ws) {
      e.waiters.push({ client, ttl, deadline });
      state.waiting.set(client, name);
    }
  }
  return state;
}
