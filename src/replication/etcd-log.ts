/**
 * The log and the leadership on etcd: etcd's
 * Raft decides, dlock does not run a consensus protocol of its own.
 *
 * Keys, under `/dlock/<cluster>/`:
 *   election/<lease id>   the candidates (etcd's election recipe, as in
 *                         client/v3/concurrency): the oldest key leads
 *   log/<batch number>    one batch of entries (codec frames, one a line),
 *                         batch numbers zero-padded so keys sort in order
 *
 * Appends are guarded (Lamport's fencing, Chubby's sequencer): each is a
 * txn that succeeds only while this node's election key still exists with
 * the create revision it had when elected, and the batch key does not exist
 * yet. A leader whose election lease expired (dead, slow, or partitioned
 * away) is deposed by etcd itself: its key is gone, its txn fails, and it
 * learns it from that failure, never by appending.
 *
 * Group commit: one append txn in flight; entries appended meanwhile fill
 * the next batch, sent when the txn returns. So a busy leader makes few
 * large txns rather than one per write (etcd takes ~580 16 KB
 * puts/s here, which carries ~150k small commands/s in batches).
 *
 * Reading: `tail(after)` delivers every batch after a revision, in revision
 * order, each once: a range read to catch up, then a watch from the
 * revision after it.
 *
 * Threading: the thread that made it. Ordering: append() resolves in call
 * order; tail handlers run in revision order.
 */
import { Range, type Etcd3, type IKeyValue, type Namespace, type Watcher } from 'etcd3';
import { CALL_DEADLINE_MS, Candidate, LeaderObserver } from './etcd-election.js';
import { CodecError, decodeBatch, encodeFrame, type Frame } from '../codec/frame.js';
import type { Command } from '../core/lock-table.js';
import { EtcdDeadlineError, GOODBYE_MS, withDeadline } from './deadline.js';
import type { EtcdAccess } from './etcd-access.js';
import { nodeEtcdClient } from './etcd-client.js';
import type { LogEntry } from '../replica/state-machine.js';

/** This node is not (or no longer) the leader: its append was refused by etcd. */
export class DeposedError extends Error {
  override readonly name = 'DeposedError';
  readonly code = 'ERR_DEPOSED';
}

/** The log no longer holds the entries a tail needs (compacted behind a snapshot): load the snapshot. */
export class LogGapError extends Error {
  override readonly name = 'LogGapError';
  readonly code = 'ERR_LOG_GAP';
}

/** etcd refused or failed an append for another reason (no quorum, unreachable): whether it applied is unknown. */
export class LogUnavailableError extends Error {
  override readonly name = 'LogUnavailableError';
  readonly code = 'ERR_LOG_UNAVAILABLE';
}

/** etcd's request limit is 1.5 MiB by default; a batch stays well under it. */
export const MAX_BATCH_BYTES = 512 * 1024;
/** A new cluster's first token per etcd revision (firstToken): above the grants one batch can hold. */
const FIRST_TOKEN_PER_REVISION = 2 ** 16;
/** Election lease TTL, seconds: a dead leader is replaced within about this long. */
export const DEFAULT_ELECTION_TTL_S = 2;
/**
 * An append txn not answered within this long has an unknown outcome, as
 * one that failed: the leader steps down rather than wait. Without it, a
 * txn sent to an etcd member that died (or lost quorum) could hold every
 * write behind it for as long as the gRPC channel takes to give up, while
 * the leader's lease, renewed through a live member, kept it leading.
 * (A gRPC deadline on the call itself does not do: the etcd3 client's
 * retries reuse it and fail at once.)
 */
export const APPEND_TIMEOUT_MS = 5000;
/** One try of an append (appendBatch); then the same txn again, ms. */
const APPEND_ATTEMPT_MS = 1500;
/** etcd's answers that mean "no leader here now, ask again" (gRPC UNAVAILABLE), and the pause before asking, ms. */
const RETRYABLE = /\bUNAVAILABLE\b|no leader|leader changed/i;
const RETRY_PAUSE_MS = 100;

const BATCH_DIGITS = 16;
/** How many batches back a new leader looks for the last one that decodes. */
const LEAD_LOOKBACK = 16;
/** Batches per page when catching up: 100 of the largest (512 KiB) stay under the 64 MiB reply cap set below. */
const TAIL_PAGE = 100;
const batchKey = (n: number): string => `log/${String(n).padStart(BATCH_DIGITS, '0')}`;

export interface EtcdLogOptions {
  /** How to reach etcd (URLs, TLS, auth). */
  etcd: EtcdAccess;
  /** Keys live under /dlock/<cluster>/. */
  cluster: string;
  /** The value of this node's election key (what observers learn of the leader: its name and link address). */
  node: string;
  electionTtlS?: number;
  /** See APPEND_TIMEOUT_MS. */
  appendTimeoutMs?: number;
}

/** A tail of the log (tail()): cancel() stops it; nothing it would deliver after that is delivered. */
export interface TailHandle {
  cancel(): void;
}

/** A read of the log (a page, the watch's creation, its end) not answered within this long fails, ms. */
const TAIL_READ_TIMEOUT_MS = 5000;

/** A batch read from the log: its entries and the etcd revision that wrote it. */
export interface Batch {
  revision: number;
  /** Its number in the log (the key's). */
  batch: number;
  entries: LogEntry[];
}

interface Pending {
  entries: Array<Omit<LogEntry, 'seq'>>;
  resolve: (r: { revision: number; seqs: [number, number] }) => void;
  reject: (err: Error) => void;
}

export class EtcdLog {
  readonly client: Etcd3;
  private readonly ns: Namespace;
  private campaign: Candidate | null = null;
  /** While leading: the election key (relative to the cluster's prefix) and its create revision (the fencing token of every append). */
  private guard: { key: string; createRevision: string } | null = null;
  private nextBatch = 1;
  private nextSeq = 1;
  private queue: Pending[] = [];
  private inFlight = false;
  /** The tails (tail()) not cancelled, each with an etcd client of its own. */
  private readonly tails = new Set<TailHandle>();
  private observers: LeaderObserver[] = [];
  /** Told of each batch a tail skipped because it does not decode (the replication logs it). */
  onBadBatch: ((why: string) => void) | null = null;
  private closed = false;

  private readonly prefix: string;
  /** This node's election value (opts.node, or setValue's). */
  private value: string;

  constructor(private readonly opts: EtcdLogOptions) {
    this.value = opts.node;
    this.client = nodeEtcdClient(opts.etcd);
    this.prefix = `/dlock/${opts.cluster}/`;
    this.ns = this.client.namespace(this.prefix);
  }

  get leads(): boolean {
    return this.guard !== null;
  }

  /**
   * Campaign for leadership; resolves once elected, with the log's end
   * (the last batch and seq), from which this leader numbers its appends.
   * `onLost` fires once if the election lease is lost while leading.
   */
  async lead(onLost: (err: Error) => void): Promise<{ lastSeq: number; revision: number }> {
    const candidate = new Candidate(this.ns, this.opts.electionTtlS ?? DEFAULT_ELECTION_TTL_S, this.value, this.opts.etcd);
    this.campaign = candidate;
    const won = await candidate.campaign((why) => {
      if (this.guard === null || this.campaign !== candidate) return;
      this.guard = null;
      this.failQueue(new DeposedError(`leadership lost: ${why}`));
      onLost(new DeposedError(why));
    });
    // The log's end, read after winning: a deposed leader's last append
    // either landed before this read or was refused by its guard. With a
    // deadline: a leader stuck here would hold the election, renewed.
    const last = await withDeadline(this.ns.getAll().prefix('log/').sort('Key', 'Descend').limit(LEAD_LOOKBACK).exec(), CALL_DEADLINE_MS, 'reading the log\'s end after winning').catch(async (err: unknown) => {
      await candidate.resign().catch((e: unknown) => void e);
      throw err;
    });
    const top = last.kvs[0];
    let lastSeq = 0;
    if (top !== undefined) {
      // Appends go after the last batch key, whatever it holds; entries are
      // numbered on from the last batch that decodes (a batch that does not
      // was skipped by every node: see tail()).
      this.nextBatch = Number(top.key.toString().slice(-BATCH_DIGITS)) + 1;
      for (const kv of last.kvs) {
        let entries: LogEntry[];
        try {
          entries = decodeEntries(kv);
        } catch (err) {
          if (!(err instanceof BadBatchError)) throw err;
          continue;
        }
        if (entries.length === 0) continue;
        lastSeq = (entries[entries.length - 1] as LogEntry).seq;
        break;
      }
      if (lastSeq === 0 && last.kvs.length === LEAD_LOOKBACK) {
        await candidate.resign().catch((e: unknown) => void e);
        throw new BadBatchError(`none of the log's last ${LEAD_LOOKBACK} batches decodes: this node cannot tell where the log ends`);
      }
    }
    this.nextSeq = lastSeq + 1;
    this.guard = { key: won.key, createRevision: won.createRevision };
    return { lastSeq, revision: Number(last.header.revision) };
  }

  /**
   * Append entries (group commit). Resolves once etcd holds them durably,
   * with the revision and the seqs they got; rejects with DeposedError if
   * this node no longer leads, LogUnavailableError if etcd failed.
   */
  append(entries: Array<Omit<LogEntry, 'seq'>>): Promise<{ revision: number; seqs: [number, number] }> {
    if (this.guard === null) return Promise.reject(new DeposedError('not the leader'));
    return new Promise((resolve, reject) => {
      this.queue.push({ entries, resolve, reject });
      if (!this.inFlight) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    const guard = this.guard;
    if (guard === null || this.queue.length === 0 || this.closed) return;
    this.inFlight = true;
    // Take proposals until the batch is full; the rest wait for the next txn.
    const taken: Pending[] = [];
    const lines: string[] = [];
    let bytes = 0;
    let seq = this.nextSeq;
    while (this.queue.length > 0) {
      const p = this.queue[0] as Pending;
      const encoded = p.entries.map((e, i) => encodeFrame({ v: 1, type: 'entry', seq: seq + i, at: e.at, cmd: e.cmd, from: e.from, req: e.req }));
      const size = encoded.reduce((n, s) => n + s.length + 1, 0);
      if (taken.length > 0 && bytes + size > MAX_BATCH_BYTES) break;
      this.queue.shift();
      taken.push(p);
      lines.push(...encoded);
      bytes += size;
      seq += p.entries.length;
    }
    const batch = this.nextBatch;
    const first = this.nextSeq;
    try {
      const r = await this.appendBatch(guard, batch, lines.join('\n'));
      if (r === null) {
        this.guard = null;
        const err = new DeposedError('append refused: this node no longer holds the election key');
        for (const p of taken) p.reject(err);
        this.failQueue(err);
        return;
      }
      this.nextBatch = batch + 1;
      this.nextSeq = seq;
      let at = first;
      for (const p of taken) {
        p.resolve({ revision: r.revision, seqs: [at, at + p.entries.length - 1] });
        at += p.entries.length;
      }
    } catch (err) {
      // Unknown outcome: the txn may have applied. This leader cannot go on
      // numbering from a guess, so it steps down; the next leader reads the
      // log's end and the origins learn the outcome from the log.
      this.guard = null;
      const e = new LogUnavailableError(`append failed: ${(err as Error).message}`);
      for (const p of taken) p.reject(e);
      this.failQueue(e);
      await this.campaign?.resign().catch((resignErr: unknown) => void resignErr);
      return;
    } finally {
      this.inFlight = false;
    }
    if (this.queue.length > 0) void this.flush();
  }

  /**
   * One batch into the log: a txn guarded by the election key, on
   * whichever member the client picks. Resolves with the revision that
   * wrote it, or null if the guard refused it (this node no longer leads).
   *
   * A txn not answered within APPEND_ATTEMPT_MS is sent again, the same
   * txn, likely to another member: one sent to a member cut off by a
   * partition hangs (no RST), and stepping down for it cost an election
   * each time. The same for a txn etcd refuses because its member has no
   * leader (etcd's own election, after losing a member: losing
   * one member costs at most one election, etcd's, not ours too). Sending
   * it again is safe: if the first one landed, the
   * second is refused (the batch key exists), and reading the key back
   * tells it was ours (the same lines) rather than another leader's. Past
   * APPEND_TIMEOUT_MS in all, it throws: the outcome is unknown.
   */
  private async appendBatch(guard: { key: string; createRevision: string }, batch: number, value: string): Promise<{ revision: number } | null> {
    const deadline = performance.now() + (this.opts.appendTimeoutMs ?? APPEND_TIMEOUT_MS);
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) throw new LogUnavailableError(`appending batch ${batch}: etcd did not answer within ${this.opts.appendTimeoutMs ?? APPEND_TIMEOUT_MS} ms`);
      const txn = this.ns.if(batchKey(batch), 'Create', '==', 0).and(guard.key, 'Create', '==', guard.createRevision).then(this.ns.put(batchKey(batch)).value(value)).else(this.ns.get(batchKey(batch))).commit();
      // The txn may still land after the deadline; it is guarded by this
      // leader's election key, which is gone (resigned or expired) before
      // any other node can lead, so a late landing comes before the next
      // leader reads the log's end, or it is refused.
      let r;
      try {
        r = await withDeadline(txn, Math.min(APPEND_ATTEMPT_MS, left), `appending batch ${batch}`);
      } catch (err) {
        if (err instanceof EtcdDeadlineError) continue;
        // The member has no Raft leader this moment (it lost its leader, or
        // an election is on): etcd refuses at once. Sending again after a
        // pause is safe for the reason above, and costs no election of ours.
        if (RETRYABLE.test((err as Error).message)) {
          await new Promise((resolve) => setTimeout(resolve, Math.min(RETRY_PAUSE_MS, Math.max(0, deadline - performance.now()))));
          continue;
        }
        throw err;
      }
      if (r.succeeded) return { revision: Number(r.header.revision) };
      const kv = r.responses[0]?.response_range?.kvs?.[0];
      if (kv !== undefined && kv.value.toString() === value) return { revision: Number(kv.mod_revision) }; // an earlier try landed
      return null;
    }
  }

  private failQueue(err: Error): void {
    const q = this.queue;
    this.queue = [];
    for (const p of q) p.reject(err);
  }

  /**
   * Every entry from seq `from.nextSeq` on, in batches written after
   * `from.revision`, in order, each once: what a range read finds, then
   * what the watch brings. `onError` is told once, and the tail stops, if
   * the log cannot give them: entries missing (LogGapError: compacted
   * behind a snapshot, load it) or the watch failed (its revision
   * compacted, or etcd gone for good).
   */
  async tail(from: { revision: number; nextSeq: number }, onBatch: (b: Batch) => void, onError: (err: Error) => void): Promise<TailHandle> {
    let seen = from.revision;
    /** The batch last taken at revision `seen` (a leader writes one batch a revision; a txn by hand may write several). */
    let seenBatch = -1;
    let next = from.nextSeq;
    let failed = false;
    let cancelled = false;
    // A client of its own: the etcd3 client sends every watch of a client
    // over one gRPC stream, to one member. A tail that stalled because
    // that member was cut off would, on the same client, watch again over
    // the same stuck stream (seen: a write unanswered for 30 s behind a
    // partition). A new client opens a new channel, to a member picked
    // anew; cancel() closes it.
    const client = nodeEtcdClient(this.opts.etcd);
    const ns = client.namespace(this.prefix);
    let watch: Watcher | null = null;
    const handle: TailHandle = {
      cancel: () => {
        if (cancelled) return;
        cancelled = true;
        this.tails.delete(handle);
        // The watch first: closing the client leaves a live stream's
        // channel open (seen: a stopped node whose process did not exit).
        // Its cancel may never be answered (a cut-off member): close the
        // client after a second anyway.
        const w = watch;
        if (w === null) client.close();
        else {
          const late = setTimeout(() => client.close(), 1000);
          w.cancel()
            .catch((err: unknown) => void err)
            .finally(() => {
              clearTimeout(late);
              client.close();
            });
        }
      },
    };
    this.tails.add(handle);
    const take = (kv: IKeyValue): void => {
      if (failed || cancelled) return;
      const revision = Number(kv.mod_revision);
      const number = Number(kv.key.toString().slice(-BATCH_DIGITS));
      // A resumed watch may replay: what was taken is not taken again.
      if (revision < seen || (revision === seen && number <= seenBatch)) return;
      seen = revision;
      seenBatch = number;
      let all: LogEntry[];
      try {
        all = decodeEntries(kv);
      } catch (err) {
        // A batch no leader wrote (it does not decode): it holds no entry
        // anyone applied, so every node skips it alike, and the log goes on
        // from the next. If it took the place of real entries, the next
        // batch's seqs show the gap, and that is the LogGapError below.
        if (!(err instanceof BadBatchError)) throw err;
        this.onBadBatch?.(err.message);
        return;
      }
      const entries = all.filter((e) => e.seq >= next);
      const first = entries[0];
      if (first === undefined) return;
      if (first.seq !== next) {
        failed = true;
        onError(new LogGapError(`the log holds seq ${first.seq} next, not ${next}: it was compacted behind a snapshot`));
        return;
      }
      next = (entries[entries.length - 1] as LogEntry).seq + 1;
      try {
        onBatch({ revision, batch: number, entries });
      } catch (err) {
        // A fault applying it (a bug: every command was checked first) must
        // not escape into etcd's watch and take the process down with it:
        // the tail stops, and its owner is told, as for any failed tail.
        failed = true;
        onError(err as Error);
      }
    };
    try {
      // Catch up in pages of TAIL_PAGE batches, all read at the first page's
      // revision: one reply of a whole long log would pass any gRPC cap.
      const end = `${this.prefix}log0`; // '0' follows '/': the end of log/
      let startKey = `${this.prefix}log/`;
      let at: string | null = null;
      for (;;) {
        // From `from.revision` itself: another batch of that revision (a txn
        // written by hand) may follow the one applied; seqs filter the rest.
        let q = client.getAll().inRange(new Range(startKey, end)).minModRevision(String(Math.max(1, from.revision))).sort('Key', 'Ascend').limit(TAIL_PAGE);
        if (at !== null) q = q.revision(at);
        const page = await withDeadline(q.exec(), TAIL_READ_TIMEOUT_MS, 'reading the log');
        if (this.closed) handle.cancel(); // closed meanwhile: its client would keep the process alive
        if (cancelled) return handle;
        at ??= page.header.revision;
        for (const kv of page.kvs) take(kv);
        const last = page.kvs[page.kvs.length - 1];
        if (failed || !page.more || last === undefined) break;
        startKey = `${last.key.toString()}\u0000`;
      }
      if (failed) return handle;
      const start = Math.max(seen, Number(at)) + 1;
      const w = await withDeadline(ns.watch().prefix('log/').only('put').startRevision(String(start)).create(), TAIL_READ_TIMEOUT_MS, 'watching the log');
      if (cancelled) {
        w.cancel().catch((err: unknown) => void err); // cancelled while it was made; its client is closing
        return handle;
      }
      watch = w;
      if (this.closed) {
        handle.cancel();
        return handle;
      }
      w.on('put', take);
      w.on('error', (err: Error) => {
        if (failed || cancelled) return;
        failed = true;
        onError(err);
      });
    } catch (err) {
      handle.cancel(); // its client too
      throw err;
    }
    return handle;
  }

  /** The number of the log's last batch now (0: none), as a member with a leader says; rejects after a deadline. */
  async lastBatch(): Promise<number> {
    const keys = await withDeadline(this.ns.getAll().prefix('log/').sort('Key', 'Descend').limit(1).keys(), 1500, 'reading the log\'s end');
    const top = keys[0];
    return top === undefined ? 0 : Number(top.slice(-BATCH_DIGITS));
  }

  /**
   * The cluster's first fencing token: the one stored in etcd, or, for a
   * new cluster, `proposed`, stored now (a txn: the first node to ask sets
   * it). Every node replays the log from an empty table that starts there,
   * so all must agree, across processes and across restarts [LP-7].
   *
   * Without `proposed`, a new cluster starts at (etcd's revision + 1) ·
   * 2^16, which only goes up, and never from a clock: a cluster made again
   * under a prefix someone emptied starts above every token the earlier one
   * issued, because that one issued fewer than 2^16 per revision it moved
   * (a log batch is one revision, at most MAX_BATCH_BYTES, and a grant
   * takes more than 8 bytes of it).
   */
  async firstToken(proposed?: number): Promise<number> {
    let first = proposed;
    if (first === undefined) {
      const rev = Number((await this.ns.get('first-token').exec()).header.revision);
      first = (rev + 1) * FIRST_TOKEN_PER_REVISION;
      if (!Number.isSafeInteger(rev) || rev < 0 || !Number.isSafeInteger(first)) throw new Error(`etcd's revision ${rev} leaves no room for a first token below 2^53; give --first-token`);
    }
    const r = await this.ns.if('first-token', 'Create', '==', 0).then(this.ns.put('first-token').value(String(first))).else(this.ns.get('first-token')).commit();
    if (r.succeeded) return first;
    const kv = r.responses[0]?.response_range?.kvs?.[0];
    const stored = kv === undefined ? NaN : Number(kv.value.toString());
    if (!Number.isSafeInteger(stored) || stored < 1) throw new Error(`the cluster's first token in etcd is unreadable: ${kv?.value.toString() ?? 'missing'}`);
    return stored;
  }

  /** The value the next campaign announces (a node's name and link address). */
  setValue(value: string): void {
    this.value = value;
  }

  /** The leader's election value now (undefined: none) and at every change (polled: etcd-election.ts). */
  async observeLeader(onChange: (value: string | undefined) => void): Promise<void> {
    const obs = new LeaderObserver(this.ns, onChange);
    this.observers.push(obs);
    await obs.start();
  }

  /** Stop leading (if this node does) so another node can; a later lead() campaigns again. */
  async resign(): Promise<void> {
    this.guard = null;
    this.failQueue(new DeposedError('resigned'));
    const c = this.campaign;
    this.campaign = null;
    await c?.resign().catch((err: unknown) => void err);
  }

  /**
   * Stop as a crash would: the client closed at once (watches, campaign and
   * election lease with it), nothing asked of etcd, which may not answer.
   * The election key, if held, goes when its lease expires.
   */
  abandon(): void {
    this.closed = true;
    this.guard = null;
    this.failQueue(new DeposedError('closing'));
    for (const t of [...this.tails]) t.cancel();
    // The campaign's lease stops being renewed now: its key goes when its
    // TTL runs out, as a crashed process's would.
    this.campaign?.release();
    this.campaign = null;
    this.client.close();
  }

  /** Give up leadership (if held) and close the client. */
  /** Stop, resign the election (within GOODBYE_MS), close the client. Resolves with what was not done, or null. */
  async close(): Promise<string | null> {
    this.closed = true;
    this.guard = null;
    this.failQueue(new DeposedError('closing'));
    for (const t of [...this.tails]) t.cancel();
    for (const o of this.observers) o.cancel();
    this.observers = [];
    // Resigning lets another take over at once; if etcd does not answer, the election key ends with its lease.
    let notDone: string | null = null;
    if (this.campaign !== undefined && this.campaign !== null) {
      await withDeadline(this.campaign.resign(), GOODBYE_MS, 'resigning the election').catch((err: unknown) => {
        notDone = `${(err as Error).message}; the next leader waits for this node's election key to end with its lease`;
      });
    }
    this.client.close();
    return notDone;
  }
}

/** A log batch that is not one (not entry frames, or seqs that do not follow each other): a key written by hand, or damaged. */
export class BadBatchError extends Error {
  override readonly name = 'BadBatchError';
  readonly code = 'ERR_BAD_BATCH';
}

/**
 * A batch's entries. Every frame's envelope is checked here (type, seq,
 * time, origin, request id); each command is checked when it is applied
 * (replication-etcd.ts), so that one bad command skips its entry only.
 * Throws BadBatchError when the batch as a whole cannot be read.
 */
function decodeEntries(kv: IKeyValue): LogEntry[] {
  const out: LogEntry[] = [];
  let frames: Frame[];
  try {
    frames = decodeBatch(kv.value.toString(), false);
  } catch (err) {
    if (err instanceof CodecError) throw new BadBatchError(`log batch ${kv.key.toString()} does not decode: ${err.message}`);
    throw err;
  }
  for (const f of frames) {
    if (f.type !== 'entry') throw new BadBatchError(`log batch ${kv.key.toString()} holds a ${f.type} frame`);
    const last = out[out.length - 1];
    if (last !== undefined && f.seq !== last.seq + 1) throw new BadBatchError(`log batch ${kv.key.toString()} skips from seq ${last.seq} to ${f.seq}`);
    out.push({ seq: f.seq, at: f.at, cmd: f.cmd as Command, from: f.from, req: f.req });
  }
  return out;
}
