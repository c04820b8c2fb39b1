/**
 * Reply lines of the client protocol (../shared/protocol.md, "Requests and
 * replies"): formatting on the node, parsing in the client library. Both
 * directions live here so the words cannot drift apart.
 */
import type { CheckResult, ClientId, Reply, ValidateResult } from '../core/lock-table.js';
import { HELP_LINE } from './request.js';

const who = (owner: ClientId | null): string => (owner === null ? 'none' : String(owner));
/** [LP-22] ` lock=<name>` on a refusal of a request that named several locks. */
const which = (lock: string | undefined): string => (lock === undefined ? '' : ` lock=${lock}`);

export function formatReply(r: Reply): string {
  switch (r.op) {
    case 'preempt':
      return r.ok ? `PreemptLock Success owner=${r.owner} token=${r.token}` : `PreemptLock Failed owner=${who(r.owner)}${which(r.lock)}`;
    case 'acquire':
      return r.ok ? `AcquireLock Success owner=${r.owner} token=${r.token}` : `AcquireLock Timeout owner=${who(r.owner)}${which(r.lock)}`;
    case 'release':
      return r.ok ? 'ReleaseLock Success' : `ReleaseLock Failed owner=${who(r.owner)}${which(r.lock)}`;
    case 'renew':
      return r.ok ? `RenewLock Success token=${r.token}` : `RenewLock Failed owner=${who(r.owner)}`;
    case 'session':
      // The secret goes to its connection only (ClientConnection adds it): never in a log line.
      return `Session client_id=${r.client}`;
    case 'resume':
      if (r.ok) return `Resume Success client_id=${r.client}`;
      return r.busy ? formatError(RESUME_BUSY) : RESUME_FAILED;
    case 'revoke':
      return r.owner === null ? 'Revoke none' : `Revoke owner=${r.owner} token=${r.token}`;
    case 'refused':
      return formatError(r.message);
    case 'sync':
      return SYNC_SUCCESS;
  }
}

/**
 * What a reply line says, for exit statuses and metrics: ok, no (the lock
 * said no: Failed, Timeout, Stale, a refused token or resume), or error
 * (an `Error:` reply).
 */
export function replyResult(reply: string): 'ok' | 'no' | 'error' {
  if (reply.startsWith('Error:')) return 'error';
  if (/^(PreemptLock Failed|AcquireLock Timeout|ReleaseLock Failed|RenewLock Failed|ValidateLock Stale|WatchLock Timeout|Auth Failed|Resume Failed)\b/.test(reply)) return 'no';
  return 'ok';
}

/** [LP-17] */
export const SYNC_SUCCESS = 'Sync Success';
/** [LP-16] */
export const RESUME_FAILED = 'Resume Failed';
export const RESUME_BUSY = 'resume must come first on its connection: this one holds or waits on locks as the client it was greeted as';
/** The `session` reply with its secret, for its own connection only. */
export const formatSession = (client: ClientId, secret: string): string => `Session client_id=${client} secret=${secret}`;

export function formatCheck(c: CheckResult): string {
  if (!c.held) return 'CheckLock:Free';
  if (c.holders !== undefined) {
    // [LP-20, LP-21] t: the newest current holder's token; every holder, in grant order
    const n = c.holders.length;
    return `CheckLock:${c.limit === null || c.limit === undefined ? `Shared:${n}` : `Held:${n}/${c.limit}`} token=${c.token} owners=${c.holders.join(',')}`;
  }
  const ttl = c.ttlLeft === null ? '' : ` ttl=${c.ttlLeft}`;
  const value = c.value === undefined ? '' : ` value=${c.value}`; // [LP-18] last
  return `CheckLock:Lock:${c.owner} token=${c.token}${ttl}${value}`;
}

export function formatValidate(v: ValidateResult): string {
  if (v.valid) return 'ValidateLock Valid';
  return v.owner === null ? 'ValidateLock Stale owner=none' : `ValidateLock Stale owner=${v.owner} token=${v.token}`;
}

/** [LP-3] greeting, also the `whoami` reply. */
/**
 * [LP-3] `client_id: <id> node: <name>`. A follower promoted to leader keeps
 * its name, so its greeting adds the field ` role: leader`:
 * the name alone would say follower. Other nodes' greetings are exactly LP-3's.
 */
export function formatGreeting(client: ClientId, node: string, leads = false): string {
  return leads && node !== 'leader' ? `client_id: ${client} node: ${node} role: leader` : `client_id: ${client} node: ${node}`;
}

export function formatError(message: string): string {
  return `Error: ${message}`;
}

export const PONG = 'PONG';
/** [LP-15] */
export const AUTH_SUCCESS = 'Auth Success';
export const AUTH_FAILED = 'Auth Failed';
export const AUTH_REQUIRED = 'authentication required';
export const BYE = 'Bye';
export { HELP_LINE };

// ---- parsing, for the client library ----

const GREETING = /^client_id: (\d+) node: (\S+)(?: role: (\S+))?$/;
const OWNER_TOKEN = /^(PreemptLock|AcquireLock) Success owner=(\d+) token=(\d+)$/;
const FAILED = /^(PreemptLock Failed|AcquireLock Timeout|ReleaseLock Failed|RenewLock Failed) owner=(\d+|none)(?: lock=(\S+))?$/;
const RENEWED = /^RenewLock Success token=(\d+)$/;
const CHECK = /^CheckLock:Lock:(\d+) token=(\d+)(?: ttl=(\d+))?(?: value=(\S+))?$/;
/** [LP-20] `Shared:<n>`, [LP-21] `Held:<k>/<n>`, then the newest holder's token and every holder. */
const CHECK_SEVERAL = /^CheckLock:(?:Shared:(\d+)|Held:(\d+)\/(\d+)) token=(\d+) owners=(\d+(?:,\d+)*)$/;
const STALE = /^ValidateLock Stale owner=(?:none|(\d+) token=(\d+))$/;

/** A greeting's fields; `leads` when it says ` role: leader` (a promoted follower, see formatGreeting). */
export function parseGreeting(line: string): { client: ClientId; node: string; leads: boolean } | null {
  const m = GREETING.exec(line);
  return m === null ? null : { client: Number(m[1]), node: m[2] as string, leads: m[3] === 'leader' };
}

const ownerOf = (text: string | undefined): ClientId | null => (text === undefined || text === 'none' ? null : Number(text));

/** Parse a reply to preempt/acquire/release/renew; null when it is not one. */
export function parseLockReply(line: string): Reply | null {
  let m = OWNER_TOKEN.exec(line);
  if (m !== null) {
    const op = m[1] === 'PreemptLock' ? 'preempt' : 'acquire';
    return { op, ok: true, owner: Number(m[2]), token: Number(m[3]) };
  }
  if (line === 'ReleaseLock Success') return { op: 'release', ok: true };
  m = RENEWED.exec(line);
  if (m !== null) return { op: 'renew', ok: true, token: Number(m[1]) };
  m = FAILED.exec(line);
  if (m === null) return null;
  const owner = ownerOf(m[2]);
  const lock = m[3] === undefined ? {} : { lock: m[3] };
  switch (m[1]) {
    case 'PreemptLock Failed':
      return { op: 'preempt', ok: false, owner, ...lock };
    case 'AcquireLock Timeout':
      return { op: 'acquire', ok: false, owner, ...lock };
    case 'ReleaseLock Failed':
      return { op: 'release', ok: false, owner, ...lock };
    default:
      return { op: 'renew', ok: false, owner };
  }
}

export function parseCheck(line: string): CheckResult | null {
  if (line === 'CheckLock:Free') return { held: false };
  const several = CHECK_SEVERAL.exec(line);
  if (several !== null) {
    const holders = (several[5] as string).split(',').map(Number);
    return { held: true, owner: holders[holders.length - 1] as number, token: Number(several[4]), ttlLeft: null, holders, limit: several[1] === undefined ? Number(several[3]) : null };
  }
  const m = CHECK.exec(line);
  if (m === null) return null;
  const r: CheckResult = { held: true, owner: Number(m[1]), token: Number(m[2]), ttlLeft: m[3] === undefined ? null : Number(m[3]) };
  if (m[4] !== undefined) r.value = m[4];
  return r;
}

export function parseValidate(line: string): ValidateResult | null {
  if (line === 'ValidateLock Valid') return { valid: true };
  const m = STALE.exec(line);
  if (m === null) return null;
  return { valid: false, owner: ownerOf(m[1]), token: m[2] === undefined ? null : Number(m[2]) };
}
