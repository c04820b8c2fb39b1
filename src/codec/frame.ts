/**
 * The one codec for every frame between nodes (leader <-> follower).
 *
 * Frames are a discriminated union on `type`, each with the codec version
 * `v`. A frame is encoded as one line of JSON, except that a snapshot's
 * numbers follow its JSON after a TAB, as base64 (a payload: see
 * encodeFrame); a batch is those lines joined by LF, which is what a
 * MessagePort carries in one message and what a TCP link between hosts
 * would carry as a byte stream, so both links share this encoding and
 * in-memory tests round-trip through it.
 *
 * Link protocol (follower F, leader L):
 *   F->L hello      once per link, asks for state; `seq` is what the follower
 *                   has applied (null: nothing, e.g. a fresh worker)
 *   L->F snapshot   the table at `seq` in `parts` frames (part 0, 1, …), so
 *                   a big table crosses the link in pieces the leader
 *                   sends between other work; entries after `seq` follow
 *                   the last part
 *   L->F resume     the follower's own state at `seq` is a prefix of this
 *                   leader's log: the entries after it, up to `to`, follow
 *                   (no snapshot)
 *   L->F entry      one replicated command, applied at leader time `at`;
 *                   `from`/`req` name the forward it is the result of
 *                   (follower index and request id; 0/0 for none)
 *   F->L ack        F has applied every entry up to `seq`
 *   L->F commit     every follower that counts (has its state) has `seq`:
 *                   replies up to it may be sent
 *   ping            either way, on a TCP link: the sender is alive (heartbeat);
 *                   never handed to the link's owner (transport-tcp.ts)
 *   challenge       A->C the first frame on a TCP link, from the side that
 *                   accepted: a fresh nonce (transport-tcp.ts, link-auth.ts)
 *   auth            C->A the connecting side's role (`node` or `observer`),
 *                   its own nonce and its proof: an HMAC of both nonces
 *                   under the role's secret; the secret never crosses the link
 *   welcome         A->C the accepting side's proof, under the same secret:
 *                   the connecting side sends nothing else before it checks it
 *   L->F voter      from here on this follower counts toward commits: it
 *                   holds every committed entry for as long as the link
 *                   lives, so it may be promoted (the learner rule)
 *   F->L forward    a client write (req > 0 expects a reply; 0 does not)
 *   L->F reply      the result of forward `req`, valid as of `seq`, sent only
 *                   when the write changed nothing (so no entry carries it)
 *   O->N observe    an observer (`dlock tui --etcd`, the chaos harness) on a
 *                   node's TCP link port, after `auth`: send views, each
 *                   with at most `locks` lock map rows
 *   N->O view       every VIEW_MS: the node's stats, its lock map (sorted
 *                   while small, NodeBase.lockMap) and its log lines since
 *                   the last view
 *
 * The group protocol (replication/pacifica.ts; member ids, not indexes):
 *   P->S prepare    entries after (prevSeq, prevVersion), the commit index,
 *                   and the primary's send time `sent` (echoed, never
 *                   compared with another clock); in configuration `version`;
 *                   `ackSeen`, `readBase`: times on the follower's own clock
 *                   (its read bound: pacifica.ts)
 *   S->P prepared   the follower's log matches up to `last` (ok), or where
 *                   to retry from (not ok); echoes `sent` as `echo`, with
 *                   its own clock `at` and the prepare's `ackSeen` as `base`
 *   L->P join       a node outside the configuration asks to catch up
 *   P->F install    the primary's table at `seq` (the entry there made in
 *                   `seqVersion`), for a follower behind its compacted log;
 *                   its numbers travel as a snapshot's do; `applied`: each
 *                   origin's last request id applied (the exactly-once rule)
 *   Every one carries its sender's configuration version: a receiver
 *   refuses an older one (pacifica.ts answers with its own).
 *
 * Replies are derived from the log: a follower answers its own clients'
 * writes, the grants of their waiting acquires and their timeouts from its
 * own apply() of the entries, which gives exactly the leader's result
 * because the table is deterministic. So a reply is never lost with a link:
 * whichever leader's log holds the entry, the follower derives it once.
 * `t` (hello, ack, ping, forward): the sender's monotonic ms when it sent
 * the frame, for the receiver's measure of how late a frame arrived
 * (transport/link-delay.ts); never compared with the receiver's clock as a
 * time.
 *
 * Ordering: frames on one link arrive in the order they were sent.
 */
import type { Command, Reply, Snapshot } from '../core/lock-table.js';
import { commandError, isLockName, isLockValue, limitsError, locksError, MAX_HOLDERS } from '../core/command-check.js';
import { Buffer } from 'node:buffer';

export const CODEC_VERSION = 1;

export type Frame =
  | { v: 1; type: 'hello'; node: string; incarnation: string; seq: number | null; t?: number }
  | { v: 1; type: 'resume'; seq: number; to: number }
  | { v: 1; type: 'snapshot'; seq: number; part: number; parts: number; state: Snapshot }
  | { v: 1; type: 'entry'; seq: number; at: number; cmd: Command; from: number; req: number }
  | { v: 1; type: 'ack'; seq: number; t?: number }
  | { v: 1; type: 'commit'; seq: number }
  | { v: 1; type: 'voter' }
  | { v: 1; type: 'ping'; t?: number }
  | { v: 1; type: 'challenge'; nonce: string }
  | { v: 1; type: 'auth'; role: LinkRole; nonce: string; proof: string }
  | { v: 1; type: 'welcome'; proof: string }
  | { v: 1; type: 'forward'; req: number; cmd: Command; t?: number }
  | { v: 1; type: 'reply'; req: number; seq: number; reply: Reply }
  | { v: 1; type: 'observe'; locks: number }
  | { v: 1; type: 'view'; stats: Record<string, unknown>; locks: ViewLock[]; log: ViewLogLine[] }
  | { v: 1; type: 'prepare'; version: number; from: string; to: string; prevSeq: number; prevVersion: number; entries: GroupEntry[]; commit: number; sent: number; ackSeen: number | null; readBase: number | null }
  | { v: 1; type: 'prepared'; version: number; from: string; to: string; ok: boolean; last: number; echo: number; at: number; base: number | null }
  | { v: 1; type: 'join'; version: number; from: string; to: string }
  | { v: 1; type: 'install'; version: number; from: string; to: string; seq: number; seqVersion: number; sent: number; ackSeen: number | null; state: Snapshot; applied: Array<[number, number]> };

/** An entry of the group protocol: its place, the version that made it, and the command as every node applies it (LogEntry's fields; `origin` is LogEntry's `from`). */
export interface GroupEntry {
  seq: number;
  version: number;
  at: number;
  cmd: Command;
  origin: number;
  req: number;
}

/**
 * Who the connecting side of a TCP link is: another node (it may send
 * `hello` and `forward`) or an observer (it may send `observe`). Proved by
 * the link handshake, with the secret of that role (link-auth.ts).
 */
export type LinkRole = 'node' | 'observer';

/** A lock map row in a `view` frame (NodeBase.lockMap's LockRow). */
export interface ViewLock {
  lock: string;
  owner: number;
  token: number;
  ttlLeft: number | null;
  waiters: number[];
  /** The lock's value [LP-18]; absent for none. */
  value?: string;
  /** Watches waiting on it on this node [LP-19]; absent for none. */
  watchers?: number;
  /** [LP-20, LP-21] For a lock with several holders: every holder in grant order (owner and token are the newest's), and its limit (null: shared). */
  holders?: number[];
  limit?: number | null;
}

/** A log line in a `view` frame (NodeLog's LogLine). */
export interface ViewLogLine {
  t: number;
  kind: string;
  text: string;
}

export type FrameType = Frame['type'];

/** A frame failed to decode: a bug or a mismatched peer, never a client's fault. */
export class CodecError extends Error {
  override readonly name = 'CodecError';
  readonly code = 'ERR_CODEC';
}

/** One frame's encoded text: what a link carries. Made only by encodeFrame. */
export type Wire = string & { readonly __wire: unique symbol };

/**
 * A frame's text. A snapshot part's base64 numbers (four fifths of its
 * text) go after the JSON as a payload, `JSON TAB base64`, so that neither
 * JSON.stringify nor JSON.parse scans them for characters to escape: that
 * scan was 6 ms of a part's 7 ms to encode, on the leader's thread. JSON
 * text never holds a raw TAB (JSON.stringify escapes it) and base64 holds
 * no LF, so the first TAB ends the JSON and a batch still splits on LF.
 */
export function encodeFrame(frame: Frame): Wire {
  if (frame.type === 'snapshot' || frame.type === 'install') {
    const { nums, ...state } = encodeSnapshot(frame.state);
    return `${JSON.stringify({ ...frame, state })}\t${nums}` as Wire;
  }
  if (frame.type === 'prepare' && frame.entries.length > 0) {
    // The same text as JSON.stringify's, with `entries` last: each entry's
    // text is made once, however many followers' prepares carry it.
    const { entries, ...head } = frame;
    const text = JSON.stringify(head);
    let list = '';
    for (let i = 0; i < entries.length; i++) list += (i === 0 ? '' : ',') + entryText(entries[i] as GroupEntry);
    return `${text.slice(0, -1)},"entries":[${list}]}` as Wire;
  }
  return JSON.stringify(frame) as Wire;
}

/**
 * A group entry's JSON, kept on the entry object under a symbol (which
 * JSON.stringify skips): the primary sends each entry to every follower
 * (and again to one that retries), and a log entry never changes once made
 * (an entry replaced at its seq is a new object), so its text is made
 * once, and goes with the entry.
 */
const TEXT = Symbol('text');

function entryText(e: GroupEntry & { [TEXT]?: string }): string {
  let t = e[TEXT];
  if (t === undefined) Object.defineProperty(e, TEXT, { value: (t = JSON.stringify(e)) }); // not enumerable: equality and copies ignore it
  return t;
}

/**
 * A snapshot as JSON carries it (in a frame, and in a snapshot file): the
 * names joined by LF (a lock name holds no whitespace [LP-12]) and the
 * numbers as the base64 of their Float64Array, which JSON scans as one
 * plain string instead of three million numbers.
 */
export interface WireSnapshot {
  nextToken: number;
  /** The table's log time (Snapshot.at); absent in snapshots written before it. */
  at?: number;
  count: number;
  names: string;
  nums: string;
  waiters: Snapshot['waiters'];
  sessions?: Snapshot['sessions'];
  limits?: Snapshot['limits'];
  values?: Snapshot['values'];
  groups?: Snapshot['groups'];
  queues?: Snapshot['queues'];
}

export function encodeSnapshot(s: Snapshot): WireSnapshot {
  return {
    nextToken: s.nextToken,
    ...(s.at === undefined ? {} : { at: s.at }),
    count: s.count,
    names: s.names,
    nums: Buffer.from(s.nums.buffer, s.nums.byteOffset, s.nums.byteLength).toString('base64'),
    waiters: s.waiters,
    ...(s.sessions === undefined || s.sessions.length === 0 ? {} : { sessions: s.sessions }),
    ...(s.limits === undefined ? {} : { limits: s.limits }),
    ...(s.values === undefined || s.values.length === 0 ? {} : { values: s.values }),
    ...(s.groups === undefined || s.groups.length === 0 ? {} : { groups: s.groups }),
    ...(s.queues === undefined || s.queues.length === 0 ? {} : { queues: s.queues }),
  };
}

export function decodeSnapshot(w: WireSnapshot): Snapshot {
  if (typeof w !== 'object' || w === null || !isNat(w.nextToken) || !isNat(w.count) || typeof w.names !== 'string' || typeof w.nums !== 'string' || !Array.isArray(w.waiters)) {
    throw new CodecError('malformed snapshot');
  }
  const names = countNames(w.names);
  const bytes = Buffer.byteLength(w.nums, 'base64');
  if (names !== w.count || bytes !== 24 * w.count) throw new CodecError(`snapshot of ${w.count} locks holds ${names} names and ${bytes / 24} rows of numbers`);
  // Decoded straight into the Float64Array's own memory (aligned, as a
  // Buffer's slice of a pool may not be), with no copy in between.
  const nums = new Float64Array(3 * w.count);
  if (Buffer.from(nums.buffer).write(w.nums, 'base64') !== bytes) throw new CodecError('snapshot numbers are not base64');
  const sessions = w.sessions ?? [];
  const session = (x: unknown): boolean =>
    Array.isArray(x) &&
    (x.length === 5 || (x.length === 7 && isNat(x[5]) && (x[5] as number) >= 1 && (x[6] === null || isNat(x[6])))) &&
    isNat(x[0]) &&
    typeof x[1] === 'string' &&
    /^[0-9a-f]{64}$/.test(x[1]) &&
    isNat(x[2]) &&
    (x[3] === null || isNat(x[3])) &&
    typeof x[4] === 'boolean';
  if (!Array.isArray(sessions) || !sessions.every(session)) throw new CodecError('malformed snapshot sessions');
  // Every row the table will trust: names as LP-12 allows them (no empty
  // one, no whitespace or control character but the LF between them),
  // owners and tokens positive whole numbers, lease ends whole or NaN
  // (a session lock); waiters on locks the part holds, each well-formed.
  if (w.count > 0 && (BAD_NAMES.test(w.names) || w.names.startsWith('\n') || w.names.endsWith('\n') || w.names.includes('\n\n'))) throw new CodecError('snapshot lock names are not lock names');
  let maxToken = 0;
  for (let i = 0; i < nums.length; i += 3) {
    const expires = nums[i + 2] as number;
    if (!isPositiveInt(nums[i]) || !isPositiveInt(nums[i + 1]) || !(Number.isNaN(expires) || Number.isSafeInteger(expires))) throw new CodecError(`snapshot row ${i / 3} is not an owner, a token and a lease end`);
    if ((nums[i + 1] as number) > maxToken) maxToken = nums[i + 1] as number;
  }
  // [LP-7] the next grant's token is above every token held: a table that says otherwise would grant one again.
  if (!(w.nextToken > maxToken && w.nextToken >= 1)) throw new CodecError(`snapshot nextToken ${w.nextToken} is not above the tokens it holds (up to ${maxToken})`);
  if (w.at !== undefined && !isNat(w.at)) throw new CodecError('snapshot log time must be a whole number of ms');
  // A waiter: [client, ttl, deadline], a value fourth, and a mode fifth [LP-20, LP-21, LP-22] (see WaiterTuple).
  const mode = (x: unknown): boolean => {
    if (typeof x !== 'object' || x === null || Array.isArray(x)) return false;
    const k = Object.keys(x);
    const m = x as Record<string, unknown>;
    if (k.length !== 1) return false;
    if (k[0] === 'shared') return m['shared'] === true;
    if (k[0] === 'limit') return isPositiveInt(m['limit']) && (m['limit'] as number) <= MAX_HOLDERS;
    return k[0] === 'locks' && locksError(m['locks'], (m['locks'] as unknown[] | undefined)?.[0]) === null;
  };
  const waiter = (x: unknown): boolean =>
    Array.isArray(x) &&
    (x.length === 3 || (x.length === 4 && isLockValue(x[3])) || (x.length === 5 && (x[3] === null || isLockValue(x[3])) && mode(x[4]))) &&
    isPositiveInt(x[0]) &&
    (x[1] === null || isPositiveInt(x[1])) &&
    (x[2] === null || isNat(x[2]));
  // Within one queue each client once; a waiter for several locks only in the queue of one of them [LP-22].
  let rowNames: string[] | null = null;
  const nameOf = (i: number): string => (rowNames ??= w.names.split('\n'))[i] as string;
  const consistent = (name: () => string, ws: unknown[]): boolean =>
    new Set(ws.map((x) => (x as unknown[])[0])).size === ws.length && ws.every((x) => { const m = (x as unknown[])[4] as { locks?: string[] } | undefined; return m?.locks === undefined || m.locks.includes(name()); });
  const queue = (x: unknown): boolean => Array.isArray(x) && x.length === 2 && isNat(x[0]) && x[0] < w.count && Array.isArray(x[1]) && x[1].length > 0 && (x[1] as unknown[]).every(waiter) && consistent(() => nameOf(x[0] as number), x[1] as unknown[]);
  if (!w.waiters.every(queue)) throw new CodecError('malformed snapshot waiters');
  // [LP-20, LP-21] locks with several holders, and queues of locks not held alone: by name, each once, none a row of this part.
  if (w.groups !== undefined || w.queues !== undefined) {
    const rows = new Set(w.count === 0 ? [] : w.names.split('\n'));
    let prev = '';
    const named = (x: unknown): boolean => typeof x === 'string' && isLockName(x) && x > prev && !rows.has(x) && ((prev = x), true);
    const holdOk = (x: unknown): boolean => Array.isArray(x) && x.length === 3 && isPositiveInt(x[0]) && isPositiveInt(x[1]) && (x[1] as number) < w.nextToken && (x[2] === null || isNat(x[2]));
    const group = (x: unknown): boolean =>
      Array.isArray(x) && x.length === 3 && named(x[0]) && (x[1] === null || (isPositiveInt(x[1]) && (x[1] as number) <= MAX_HOLDERS)) && Array.isArray(x[2]) && x[2].length > 0 && (x[1] === null || x[2].length <= (x[1] as number)) && (x[2] as unknown[]).every(holdOk) &&
      // each holder once, tokens rising in grant order
      new Set((x[2] as unknown[][]).map((h) => h[0])).size === x[2].length && (x[2] as number[][]).every((h, i, all) => i === 0 || (h[1] as number) > ((all[i - 1] as number[])[1] as number));
    if (w.groups !== undefined && !(Array.isArray(w.groups) && w.groups.every(group))) throw new CodecError('malformed snapshot groups');
    prev = '';
    const freeQueue = (x: unknown): boolean => Array.isArray(x) && x.length === 2 && named(x[0]) && Array.isArray(x[1]) && x[1].length > 0 && (x[1] as unknown[]).every(waiter) && consistent(() => x[0] as string, x[1] as unknown[]);
    if (w.queues !== undefined && !(Array.isArray(w.queues) && w.queues.every(freeQueue))) throw new CodecError('malformed snapshot queues');
  }
  // [LP-18] values of locks the part holds, each a lock value, each lock once (ascending).
  let last = -1;
  const value = (x: unknown): boolean => Array.isArray(x) && x.length === 2 && isNat(x[0]) && x[0] > last && x[0] < w.count && isLockValue(x[1]) && ((last = x[0]), true);
  if (w.values !== undefined && !(Array.isArray(w.values) && w.values.every(value))) throw new CodecError('malformed snapshot values');
  const limits = w.limits === undefined ? null : limitsError(w.limits);
  if (limits !== null) throw new CodecError(`snapshot ${limits}`);
  return { nextToken: w.nextToken, ...(w.at === undefined ? {} : { at: w.at }), count: w.count, names: w.names, nums, waiters: w.waiters, sessions, ...(w.limits === undefined ? {} : { limits: w.limits }), ...(w.values === undefined ? {} : { values: w.values }), ...(w.groups === undefined ? {} : { groups: w.groups }), ...(w.queues === undefined ? {} : { queues: w.queues }) };
}

/** What a snapshot's LF-joined names may not hold: whitespace or control characters other than the LFs (LP-12). */
// eslint-disable-next-line no-control-regex
const BAD_NAMES = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]|[^\S\n]/u;
const isPositiveInt = (x: unknown): boolean => typeof x === 'number' && Number.isSafeInteger(x) && x >= 1;

/** How many names LF-joined `names` holds: lines, counted without splitting (no string per name). */
function countNames(names: string): number {
  if (names === '') return 0;
  let n = 1;
  for (let at = names.indexOf('\n'); at !== -1; at = names.indexOf('\n', at + 1)) n++;
  return n;
}

/** A batch: the frames' texts joined by LF (JSON text never holds a raw LF). */
export function encodeBatch(frames: readonly (Frame | Wire)[]): string {
  return frames.map((f) => (typeof f === 'string' ? f : encodeFrame(f))).join('\n');
}

const isNat = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

/** A link handshake's nonce: 32 to 64 base64url characters (link-auth.ts makes 32). */
const NONCE = /^[A-Za-z0-9_-]{32,64}$/;
/** An HMAC-SHA256 proof, base64url. */
const PROOF = /^[A-Za-z0-9_-]{43}$/;
/** A node's name as `dlock node --name` allows it (and a live key in etcd must hold); an incarnation is a short word. */
export const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const INCARNATION = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Check every field of a frame, by type and range: it comes from a socket
 * or a MessagePort, and nothing past the decoder re-checks it. A command
 * (`entry`, `forward`) is checked whole (command-check.ts) unless
 * `checkCommands` is false: the log's reader checks each entry's command
 * when it applies it, so that one bad entry is skipped rather than its
 * whole batch refused.
 */
function checkFrame(f: Record<string, unknown>, checkCommands: boolean): Frame {
  if (f['v'] !== CODEC_VERSION) throw new CodecError(`unsupported frame version ${JSON.stringify(f['v'])?.slice(0, 20)}, expected ${CODEC_VERSION}`);
  const ok = (cond: boolean): Frame => {
    if (!cond) throw new CodecError(`malformed ${String(f['type']).slice(0, 20)} frame`);
    return f as unknown as Frame;
  };
  const obj = (x: unknown): boolean => typeof x === 'object' && x !== null;
  const command = (x: unknown): boolean => {
    if (!checkCommands) return obj(x);
    const e = commandError(x);
    if (e !== null) throw new CodecError(`malformed ${String(f['type'])} frame: ${e}`);
    return true;
  };
  if (f['t'] !== undefined && !(typeof f['t'] === 'number' && Number.isFinite(f['t']) && f['t'] >= 0)) return ok(false);
  switch (f['type']) {
    case 'hello':
      return ok(typeof f['node'] === 'string' && NODE_NAME.test(f['node']) && typeof f['incarnation'] === 'string' && INCARNATION.test(f['incarnation']) && (f['seq'] === null || isNat(f['seq'])));
    case 'resume':
      return ok(isNat(f['seq']) && isNat(f['to']));
    case 'snapshot':
      if (!(isNat(f['seq']) && isNat(f['part']) && isNat(f['parts']) && (f['part'] as number) < (f['parts'] as number) && obj(f['state']))) return ok(false);
      return { ...(f as unknown as Frame & { type: 'snapshot' }), state: decodeSnapshot(f['state'] as WireSnapshot) };
    case 'entry':
      return ok(isNat(f['seq']) && f['seq'] >= 1 && isNat(f['at']) && isNat(f['from']) && isNat(f['req']) && command(f['cmd']));
    case 'ack':
    case 'commit':
      return ok(isNat(f['seq']));
    case 'voter':
    case 'ping':
      return ok(true);
    case 'challenge':
      return ok(typeof f['nonce'] === 'string' && NONCE.test(f['nonce']));
    case 'auth':
      return ok((f['role'] === 'node' || f['role'] === 'observer') && typeof f['nonce'] === 'string' && NONCE.test(f['nonce']) && typeof f['proof'] === 'string' && PROOF.test(f['proof']));
    case 'welcome':
      return ok(typeof f['proof'] === 'string' && PROOF.test(f['proof']));
    case 'forward':
      return ok(isNat(f['req']) && command(f['cmd']));
    case 'reply':
      return ok(isNat(f['req']) && isNat(f['seq']) && isReply(f['reply']));
    case 'observe':
      return ok(isNat(f['locks']));
    case 'view':
      return ok(obj(f['stats']) && !Array.isArray(f['stats']) && Array.isArray(f['locks']) && f['locks'].every(isViewLock) && Array.isArray(f['log']) && f['log'].every(isViewLogLine));
    case 'prepare': {
      if (!(groupHead(f) && isNat(f['prevSeq']) && isNat(f['prevVersion']) && isNat(f['commit']) && isTime(f['sent']) && isTimeOrNull(f['ackSeen']) && isTimeOrNull(f['readBase']) && Array.isArray(f['entries']))) return ok(false);
      // Entries follow prevSeq one by one, each from a version no later than the frame's.
      const entries = f['entries'] as unknown[];
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i] as Record<string, unknown>;
        if (!(obj(e) && e['seq'] === (f['prevSeq'] as number) + i + 1 && isId(e['version']) && (e['version'] as number) <= (f['version'] as number) && isNat(e['at']) && isNat(e['origin']) && isNat(e['req']) && command(e['cmd']))) return ok(false);
      }
      return ok(true);
    }
    case 'prepared':
      return ok(groupHead(f) && typeof f['ok'] === 'boolean' && isNat(f['last']) && isTime(f['echo']) && isTime(f['at']) && isTimeOrNull(f['base']));
    case 'join':
      return ok(groupHead(f));
    case 'install':
      if (!(groupHead(f) && isNat(f['seq']) && isNat(f['seqVersion']) && (f['seqVersion'] as number) <= (f['version'] as number) && isTime(f['sent']) && isTimeOrNull(f['ackSeen']) && obj(f['state']))) return ok(false);
      if (!(Array.isArray(f['applied']) && f['applied'].length <= 100 && f['applied'].every((x) => Array.isArray(x) && x.length === 2 && isNat(x[0]) && isNat(x[1])))) return ok(false);
      return { ...(f as unknown as Frame & { type: 'install' }), state: decodeSnapshot(f['state'] as WireSnapshot) };
    default:
      throw new CodecError(`unknown frame type ${JSON.stringify(f['type'])}`);
  }
}

const isId = (x: unknown): boolean => typeof x === 'number' && Number.isSafeInteger(x) && x >= 1;
/** A monotonic time in ms as a sender's clock reads it: any finite number (an offset clock may read below zero). */
const isTime = (x: unknown): boolean => typeof x === 'number' && Number.isFinite(x);
const isTimeOrNull = (x: unknown): boolean => x === null || isTime(x);
/** The fields every group protocol frame has: a configuration version and two member ids. */
const groupHead = (f: Record<string, unknown>): boolean => isId(f['version']) && typeof f['from'] === 'string' && NODE_NAME.test(f['from']) && typeof f['to'] === 'string' && NODE_NAME.test(f['to']);
const isIdOrNull = (x: unknown): boolean => x === null || isId(x);

/** A lock table reply (lock-table.ts Reply), field by field. */
function isReply(x: unknown): boolean {
  if (typeof x !== 'object' || x === null) return false;
  const r = x as Record<string, unknown>;
  switch (r['op']) {
    case 'preempt':
    case 'acquire':
      // A refusal's owner is null for a free lock an earlier waiter wants; `lock` names the lock of several that was not available [LP-22].
      return r['ok'] === true ? isId(r['owner']) && isId(r['token']) : r['ok'] === false && isIdOrNull(r['owner']) && (r['lock'] === undefined || isLockName(r['lock']));
    case 'release':
      return r['ok'] === true || (r['ok'] === false && isIdOrNull(r['owner']) && (r['lock'] === undefined || isLockName(r['lock'])));
    case 'renew':
      return r['ok'] === true ? isId(r['token']) : r['ok'] === false && isIdOrNull(r['owner']);
    case 'session':
      return isId(r['client']);
    case 'revoke':
      return isIdOrNull(r['owner']) && isIdOrNull(r['token']);
    case 'resume':
      return r['ok'] === true ? isId(r['client']) && isNat(r['gen']) : r['ok'] === false && typeof r['busy'] === 'boolean';
    case 'refused':
      return typeof r['message'] === 'string' && r['message'].length <= 1000 && !/[\r\n]/.test(r['message']);
    case 'sync':
      return true;
    default:
      return false;
  }
}

function isViewLock(x: unknown): boolean {
  if (typeof x !== 'object' || x === null) return false;
  const l = x as Record<string, unknown>;
  return typeof l['lock'] === 'string' && isNat(l['owner']) && isNat(l['token']) && (l['ttlLeft'] === null || isNat(l['ttlLeft'])) && Array.isArray(l['waiters']) && l['waiters'].every(isNat) && (l['value'] === undefined || isLockValue(l['value'])) && (l['watchers'] === undefined || isNat(l['watchers'])) && (l['holders'] === undefined || (Array.isArray(l['holders']) && l['holders'].every(isNat))) && (l['limit'] === undefined || l['limit'] === null || isNat(l['limit']));
}

function isViewLogLine(x: unknown): boolean {
  if (typeof x !== 'object' || x === null) return false;
  const l = x as Record<string, unknown>;
  return typeof l['t'] === 'number' && Number.isFinite(l['t']) && typeof l['kind'] === 'string' && typeof l['text'] === 'string';
}

/**
 * One frame from its text. Throws CodecError (never anything else) for
 * text that is not a well-formed frame. `checkCommands`: see checkFrame.
 */
export function decodeFrame(text: string, checkCommands = true): Frame {
  const tab = text.indexOf('\t');
  let raw: unknown;
  try {
    raw = JSON.parse(tab === -1 ? text : text.slice(0, tab));
  } catch (err) {
    throw new CodecError(`frame is not JSON: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null) throw new CodecError('frame is not an object');
  const f = raw as Record<string, unknown>;
  // Only a snapshot or an install has a payload (its numbers), and it must have one.
  const carries = f['type'] === 'snapshot' || f['type'] === 'install';
  if (carries !== (tab !== -1)) throw new CodecError(tab === -1 ? `${String(f['type'])} frame without its numbers` : `${String(f['type'])} frame with a payload`);
  if (tab !== -1 && typeof f['state'] === 'object' && f['state'] !== null) (f['state'] as Record<string, unknown>)['nums'] = text.slice(tab + 1);
  return checkFrame(f, checkCommands);
}

export function decodeBatch(text: string, checkCommands = true): Frame[] {
  const frames: Frame[] = [];
  let start = 0;
  while (start <= text.length) {
    let nl = text.indexOf('\n', start);
    if (nl === -1) nl = text.length;
    if (nl > start) frames.push(decodeFrame(text.slice(start, nl), checkCommands));
    start = nl + 1;
  }
  return frames;
}
