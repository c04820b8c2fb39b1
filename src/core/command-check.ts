/**
 * What a well-formed command is: every field of every op, by type and
 * range. The lock table (lock-table.ts) trusts its commands' shapes; this
 * is the check that earns that trust, made wherever a command arrives from
 * outside the node's own code:
 *
 *  - at the boundary, by the frame decoder (codec/frame.ts): a node-link
 *    `forward` or `entry` whose command fails it is a bad frame, and the
 *    link closes;
 *  - at apply, by the replication, for every entry of the log, however it
 *    got there (a log written by another version, an etcd key written by
 *    hand): an entry that fails it is skipped with a logged error, the same
 *    on every node, and its seq is taken (Replica.skip).
 *
 * Pure: no I/O, no clock. Threading: any.
 */
import type { Command } from './lock-table.js';

/** A lock name's limit, bytes of UTF-8 [LP-12]. */
export const MAX_LOCK_BYTES = 255;
/** ttl and timeout, ms, at most (a day) [LP-12]. */
export const MAX_MS = 86_400_000;
/** No whitespace, no control characters (C0, DEL, C1) in a lock name [LP-12]. */
// eslint-disable-next-line no-control-regex
export const BAD_NAME_CHAR = /[\u0000-\u001f\u007f-\u009f\s]/u;

/** A lock name as LP-12 allows it: 1 to 255 bytes, no whitespace or control characters. */
export function isLockName(x: unknown): x is string {
  if (typeof x !== 'string' || x.length === 0 || x.length > MAX_LOCK_BYTES) return false;
  if (BAD_NAME_CHAR.test(x)) return false;
  // Short names are ASCII-sized already; only long ones can pass 255 bytes.
  return x.length * 3 <= MAX_LOCK_BYTES || Buffer.byteLength(x, 'utf8') <= MAX_LOCK_BYTES;
}

/** A lock's value [LP-18]: 1 to 1024 bytes, no whitespace or control characters (clients percent-encode the rest). */
export const MAX_VALUE_BYTES = 1024;

export function isLockValue(x: unknown): x is string {
  if (typeof x !== 'string' || x.length === 0 || x.length > MAX_VALUE_BYTES) return false;
  if (BAD_NAME_CHAR.test(x)) return false;
  return x.length * 3 <= MAX_VALUE_BYTES || Buffer.byteLength(x, 'utf8') <= MAX_VALUE_BYTES;
}

const isNat = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const isPositive = (x: unknown): x is number => isNat(x) && x >= 1;
/** A client id: a positive safe integer (replica/client-ids.ts gives them from 10001 up). */
const isClient = isPositive;
/** A node index: replica/client-ids.ts allows 0..98; any small whole number is well-formed here. */
const isNodeIndex = (x: unknown): x is number => isNat(x) && x < 1000;
const isMs = (x: unknown): x is number => isPositive(x) && x <= MAX_MS;
const isHash = (x: unknown): x is string => typeof x === 'string' && /^[0-9a-f]{64}$/.test(x);

/** The fields each op may carry: `true` required, `false` optional. Anything else is refused. */
const FIELDS: Record<Command['op'], Record<string, boolean>> = {
  preempt: { op: true, client: true, lock: true, ttl: true, limits: false, gen: false, value: false, shared: false, limit: false, locks: false },
  acquire: { op: true, client: true, lock: true, ttl: true, timeout: true, deadline: false, limits: false, gen: false, value: false, shared: false, limit: false, locks: false },
  release: { op: true, client: true, lock: true, gen: false, locks: false },
  renew: { op: true, client: true, lock: true, ttl: true, gen: false },
  disconnect: { op: true, client: true, gen: false },
  session: { op: true, client: true, hash: true, ttl: false },
  resume: { op: true, client: true, target: true, hash: true, node: true },
  revoke: { op: true, lock: true },
  expire: { op: true, lock: true, token: true },
  floor: { op: true, token: true },
  limits: { op: true, limits: true },
  timeout: { op: true, client: true, lock: true, deadline: false },
  sync: { op: true, client: true },
};

/**
 * FIELDS as commandError reads it on every write a link carries, with no
 * allocation and no prototype lookups: each op's allowed fields in a map
 * without a prototype, and its required ones in a list.
 */
const ALLOWED: Record<string, Record<string, true>> = Object.create(null) as Record<string, Record<string, true>>;
const REQUIRED: Record<string, readonly string[]> = Object.create(null) as Record<string, readonly string[]>;
for (const [op, f] of Object.entries(FIELDS)) {
  ALLOWED[op] = Object.assign(Object.create(null) as Record<string, true>, Object.fromEntries(Object.keys(f).map((k) => [k, true])));
  REQUIRED[op] = Object.keys(f).filter((k) => f[k] === true);
}

/** Why `x` is not a WriteLimits, or null when it is one. */
export function limitsError(x: unknown): string | null {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return 'limits is not an object';
  const l = x as Record<string, unknown>;
  for (const k of Object.keys(l)) if (k !== 'maxLocksPerClient' && k !== 'maxWaitersPerLock' && k !== 'maxLocks') return `limits has an unknown field ${JSON.stringify(k)}`;
  if (!isPositive(l['maxLocksPerClient']) || !isPositive(l['maxWaitersPerLock'])) return 'limits needs maxLocksPerClient and maxWaitersPerLock, whole numbers of at least 1';
  if (l['maxLocks'] !== undefined && !isPositive(l['maxLocks'])) return 'limits.maxLocks must be a whole number of at least 1';
  return null;
}

/** A field's refusal, made only when one is refused (commandError runs on every write a link carries). */
const bad = (op: string, field: string, rule: string): string => `${op}: ${field} must be ${rule}`;

/**
 * Why `x` is not a command the lock table can apply, or null when it is
 * one. Checks the op, that every required field is there and no other,
 * and each field's type and range.
 */
export function commandError(x: unknown): string | null {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return 'a command must be an object';
  const c = x as Record<string, unknown>;
  const op = c['op'];
  const allowed = typeof op === 'string' ? ALLOWED[op] : undefined;
  if (typeof op !== 'string' || allowed === undefined) return `unknown op ${JSON.stringify(op)?.slice(0, 40) ?? String(op)}`;
  for (const k in c) if (allowed[k] !== true) return `${op}: unknown field ${JSON.stringify(k).slice(0, 40)}`;
  for (const k of REQUIRED[op] as readonly string[]) if (c[k] === undefined) return `${op}: missing ${k}`;
  if (c['client'] !== undefined && !isClient(c['client'])) return bad(op, 'client', 'a client id (a whole number of at least 1)');
  if (c['lock'] !== undefined && !isLockName(c['lock'])) return bad(op, 'lock', 'a lock name (1 to 255 bytes, no whitespace or control characters)');
  if (c['gen'] !== undefined && !isNat(c['gen'])) return bad(op, 'gen', 'a whole number');
  if (c['limits'] !== undefined) {
    const e = limitsError(c['limits']);
    if (e !== null) return `${op}: ${e}`;
  }
  if (c['locks'] !== undefined) {
    const e = locksError(c['locks'], c['lock']);
    if (e !== null) return `${op}: ${e}`;
  }
  switch (op) {
    case 'preempt':
    case 'acquire':
      if (c['ttl'] !== null && !isMs(c['ttl'])) return bad(op, 'ttl', `null or 1 to ${MAX_MS} ms`);
      if (c['value'] !== undefined && !isLockValue(c['value'])) return bad(op, 'value', `absent or 1 to ${MAX_VALUE_BYTES} bytes with no whitespace or control characters`);
      if (c['shared'] !== undefined && c['shared'] !== true) return bad(op, 'shared', 'absent or true');
      if (c['limit'] !== undefined && !(isPositive(c['limit']) && (c['limit'] as number) <= MAX_HOLDERS)) return bad(op, 'limit', `absent or 1 to ${MAX_HOLDERS}`);
      // [LP-18, LP-20, LP-21, LP-22] one mode at a time; a value is for a lock held alone
      if ((c['shared'] !== undefined ? 1 : 0) + (c['limit'] !== undefined ? 1 : 0) + (c['locks'] !== undefined ? 1 : 0) > 1) return `${op}: shared, limit and locks exclude each other`;
      if (c['value'] !== undefined && (c['shared'] !== undefined || c['limit'] !== undefined)) return `${op}: a value goes with a lock held alone, not with shared or limit`;
      if (op === 'acquire') {
        if (c['timeout'] !== null && !(isNat(c['timeout']) && (c['timeout'] as number) <= MAX_MS)) return bad(op, 'timeout', `null or 0 to ${MAX_MS} ms`);
        if (c['deadline'] !== undefined && c['deadline'] !== null && !isNat(c['deadline'])) return bad(op, 'deadline', 'null or a time in ms');
      }
      return null;
    case 'renew':
      return isMs(c['ttl']) ? null : bad(op, 'ttl', `1 to ${MAX_MS} ms`);
    case 'session':
      if (c['ttl'] !== undefined && !isMs(c['ttl'])) return bad(op, 'ttl', `absent or 1 to ${MAX_MS} ms`);
      return isHash(c['hash']) ? null : bad(op, 'hash', 'a SHA-256 digest in lowercase hex');
    case 'resume':
      if (!isClient(c['target'])) return bad(op, 'target', 'a client id');
      if (!isHash(c['hash'])) return bad(op, 'hash', 'a SHA-256 digest in lowercase hex');
      return isNodeIndex(c['node']) ? null : bad(op, 'node', 'a node index');
    case 'expire':
    case 'floor':
      return isPositive(c['token']) ? null : bad(op, 'token', 'a fencing token (a whole number of at least 1)');
    case 'limits':
      return null; // checked above, as every command's limits are
    case 'timeout':
      return c['deadline'] === undefined || isNat(c['deadline']) ? null : bad(op, 'deadline', 'a time in ms');
    default:
      return null;
  }
}

/** The most holders of one semaphore [LP-21]. */
export const MAX_HOLDERS = 10_000;
/** The most locks one request names [LP-22]. */
export const MAX_NAMES = 16;

/** [LP-22] Why `x` is not a list of 2 to 16 distinct lock names starting with `first`, or null. */
export function locksError(x: unknown, first: unknown): string | null {
  if (!Array.isArray(x) || x.length < 2 || x.length > MAX_NAMES) return `locks must be 2 to ${MAX_NAMES} lock names`;
  if (!x.every(isLockName)) return 'locks must be lock names (1 to 255 bytes, no whitespace or control characters)';
  if (new Set(x).size !== x.length) return 'locks must be distinct';
  return x[0] === first ? null : 'locks must start with lock';
}

/** `x` as a command, or a CommandError saying why it is not one. */
export function checkCommand(x: unknown): Command {
  const e = commandError(x);
  if (e !== null) throw new CommandError(e);
  return x as Command;
}

/** A command that fails commandError. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  readonly code = 'ERR_COMMAND';
}
