/**
 * The safety harness: many real TCP clients, each one request
 * at a time, doing what lock users do against a cluster under faults:
 * `acquire` (with a timeout) or `preempt` a contended lock, with or without
 * a lease, hold it briefly, sometimes `renew`, then `release` it or drop
 * the connection. Every hold interval and token the clients observe goes
 * into a History for checker.ts; `finalCheck` then asks every node about
 * the leases that must still be held.
 *
 * Some clients open a session (LP-16) when they connect; when such a
 * client's connection breaks under a lease it holds, it connects again
 * (to any node) and resumes as the same client, then carries on with
 * that lease: a renew or release that fails while the lease is held, or a
 * `Resume Failed` then, is the lease lost.
 *
 * Some grants carry a value (LP-18). Now and then, while holding a lease,
 * a client asks on a second connection (to any node) `sync` then `check`
 * of its lock (LP-17): answered before the lease's deadline, the check
 * must show this grant, owner, token and value; the checker counts any
 * other answer as a stale read.
 *
 * Beyond one lock held alone (most of the workload, on `s<i>`), the
 * clients take shared holds [LP-20] of `r<i>` (a quarter of those requests
 * ask for `r<i>` alone instead, so each mode meets the other), semaphores
 * [LP-21] `m<i>`, each with a fixed limit by name (semaphoreLimit) so
 * that every request on it agrees, and several `s<i>` at once [LP-22]
 * (2 or 3 names, all or nothing, one token): 15%, 10% and 10% of
 * operations. A grant of several is one Hold naming all its locks. After
 * a refusal of several, a client sometimes reads (`sync`, then `check`
 * of each) that it holds none of them.
 *
 * Client rules that keep the record honest: a reply that is an error
 * ("may or may not have been applied") leaves the client unsure whether it
 * holds the lock, so it closes its connection (which releases a session
 * lock) and does not count a hold it was never told of; a lease's deadline
 * counts from when the grant or renew was *sent*.
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { History, Hold } from './checker.js';

export interface HarnessOptions {
  /** Ports to connect to (any node); asked again at every reconnect. */
  ports: () => number[];
  host?: string;
  /** Nodes on separate (namespace) hosts: the address of the node on `port` (ports are unique across them). */
  hostOf?: (port: number) => string;
  clients: number;
  locks: number;
  /** Stop starting new operations once this says so. */
  stop: () => boolean;
  /** A request with no answer and no close for this long is a hang. */
  hangMs?: number;
  random?: () => number;
}

export interface Counters {
  requests: number;
  grants: number;
  releases: number;
  renews: number;
  disconnects: number;
  cuts: number;
  errors: number;
  connects: number;
  /** Resumes that made a new connection the client it had been (LP-16). */
  resumes: number;
}

type Answer = { line: string } | { closed: true } | { hang: true };

/** A watch an operation started on its client's second connection, and the hold it names (see startWatch). */
interface PendingWatch {
  answer: Promise<{ line: string; at: number } | null> | null;
  hold: Hold | null;
}

/** One connection, one request at a time. */
class Conn {
  id = 0;
  port = 0;
  /** The client's LP-16 session, if it asked for one: how it comes back. */
  session: { id: number; secret: string } | null = null;
  /** A second connection of the same client process (another client id, any node), for fresh reads. */
  reader: Conn | null = null;
  closed = false;
  closedAt = 0;
  private buf = '';
  private waiter: ((a: Answer) => void) | null = null;
  private readonly lines: string[] = [];

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) !== -1) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        const w = this.waiter;
        this.waiter = null;
        if (w !== null) w({ line });
        else this.lines.push(line);
      }
    });
    socket.on('error', () => {}); // the close that follows is what the client acts on
    socket.on('close', () => {
      this.closed = true;
      this.closedAt = performance.now();
      const w = this.waiter;
      this.waiter = null;
      w?.({ closed: true });
    });
  }

  static open(host: string, port: number, timeoutMs: number): Promise<Conn | null> {
    return new Promise((resolve) => {
      const s = connect({ host, port });
      const c = new Conn(s);
      const timer = setTimeout(() => {
        s.destroy();
        resolve(null);
      }, timeoutMs);
      s.once('error', () => {
        clearTimeout(timer);
        resolve(null);
      });
      void c.next(timeoutMs).then((a) => {
        clearTimeout(timer);
        const m = 'line' in a ? /^client_id: (\d+) node: \S+(?: role: leader)?$/.exec(a.line) : null;
        if (m === null) {
          s.destroy();
          resolve(null);
          return;
        }
        c.id = Number(m[1]);
        c.port = port;
        resolve(c);
      });
    });
  }

  next(timeoutMs: number): Promise<Answer> {
    const ready = this.lines.shift();
    if (ready !== undefined) return Promise.resolve({ line: ready });
    if (this.closed) return Promise.resolve({ closed: true });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        resolve({ hang: true });
      }, timeoutMs);
      this.waiter = (a) => {
        clearTimeout(timer);
        resolve(a);
      };
    });
  }

  ask(line: string, timeoutMs: number): Promise<Answer> {
    if (this.closed) return Promise.resolve({ closed: true });
    this.socket.write(`${line}\n`);
    return this.next(timeoutMs);
  }

  close(): void {
    this.closed = true;
    this.closedAt = performance.now();
    this.socket.destroy();
  }
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The workload's lock names for `locks` (--locks): `s<i>` held alone, one
 * at a time or several at once [LP-22]; `r<i>` held shared [LP-20] or
 * alone; `m<i>` semaphores [LP-21] of semaphoreLimit(i) holders.
 */
export function workloadLocks(locks: number): { alone: string[]; shared: string[]; semaphores: Array<{ name: string; limit: number }> } {
  const range = (n: number): number[] => Array.from({ length: n }, (_x, i) => i);
  return {
    alone: range(locks).map((i) => `s${i}`),
    shared: range(Math.max(2, Math.round(locks / 8))).map((i) => `r${i}`),
    semaphores: range(Math.max(2, Math.round(locks / 12))).map((i) => ({ name: `m${i}`, limit: semaphoreLimit(i) })),
  };
}

/** [LP-21] Semaphore `m<i>`'s limit, fixed by its name so that every request on it names the same one: 2 or 3. */
export const semaphoreLimit = (i: number): number => 2 + (i % 2);

/** What one operation asks for: its lock names (several: all or nothing [LP-22]), and a shared [LP-20] or semaphore [LP-21] hold. */
interface Ask {
  names: string[];
  shared?: true;
  limit?: number;
}

/**
 * Error replies the workload rules out [LP-20, LP-21, LP-22]: every request
 * on a semaphore names its limit, no client asks in another mode for a lock
 * it holds, or for one lock of several it holds. Any of them is the table
 * disagreeing with what it granted.
 */
const RULED_OUT = / is held with limit=| is held without a limit|no upgrade or downgrade| is held by this client already/;

/** Whether a `check` reply shows `client` holding the lock, alone or among several [LP-20, LP-21]. */
function showsClient(line: string, client: number): boolean {
  if (line.startsWith(`CheckLock:Lock:${client} `) || line === `CheckLock:Lock:${client}`) return true;
  const m = /^CheckLock:(?:Shared:\d+|Held:\d+\/\d+) token=\d+ owners=(\S+)$/.exec(line);
  return m !== null && (m[1] as string).split(',').includes(String(client));
}

/**
 * Leases are whole ms on the leader's wall clock (Date.now()); the harness
 * times with performance.now(). A client allows this much for the rounding
 * and for the two clocks drifting apart under NTP slewing (measured here at
 * up to 1.4 ms over 20 s).
 */
export const LEASE_SLACK_MS = 5;

export class Harness {
  readonly history: History = { holds: [], lost: [], hangs: [], staleReads: [], freshReads: { made: 0, judged: 0 }, earlyWatches: [], watches: { made: 0, judged: 0 }, partialGrants: [], partialReads: { made: 0, judged: 0 }, refusals: [] };
  readonly counters: Counters = { requests: 0, grants: 0, releases: 0, renews: 0, disconnects: 0, cuts: 0, errors: 0, connects: 0, resumes: 0 };
  private readonly host: string;
  private readonly hangMs: number;
  private readonly random: () => number;

  constructor(private readonly opts: HarnessOptions) {
    this.host = opts.host ?? '127.0.0.1';
    this.hangMs = opts.hangMs ?? 10_000;
    this.random = opts.random ?? Math.random;
  }

  private int(n: number): number {
    return Math.floor(this.random() * n);
  }

  async run(): Promise<void> {
    await Promise.all(Array.from({ length: this.opts.clients }, () => this.client()));
  }

  /**
   * Before the run: `count` leases (locks `anchor-0`…, outside the
   * workload's names) that outlive it, taken through nodes at random and
   * then left alone. Every fault must leave them held with their tokens:
   * finalCheck asks every node for them at the end, and the tables
   * compared at the end hold at least them [LP-5, LP-8]. Throws if one
   * cannot be taken (the cluster is not serving).
   */
  async plant(count: number, ttlMs: number): Promise<void> {
    for (let k = 0; k < count; k++) {
      let taken = false;
      for (let attempt = 0; attempt < 50 && !taken; attempt++) {
        const c = await this.connect();
        if (c === null) break;
        const sent = performance.now();
        const a = await this.ask(c, `preempt anchor-${k} ttl=${ttlMs}`);
        const m = 'line' in a ? /^PreemptLock Success owner=(\d+) token=(\d+)$/.exec(a.line) : null;
        if (m !== null) {
          this.counters.grants++;
          this.history.holds.push({ lock: `anchor-${k}`, client: c.id, token: Number(m[2]), sent, start: performance.now(), end: sent + ttlMs - LEASE_SLACK_MS, how: 'deadline', lease: true, trail: [`preempt anchor-${k} ttl=${ttlMs} @${sent.toFixed(1)} via ${c.port}`] });
          taken = true;
        } else if ('line' in a && !a.line.startsWith('Error:')) {
          throw new Error(`anchor-${k}: ${a.line}`);
        }
        c.close();
        if (!taken) await pause(100);
      }
      if (!taken) throw new Error(`could not take anchor-${k} before the run`);
    }
  }

  private async connect(): Promise<Conn | null> {
    for (let attempt = 0; !this.opts.stop(); attempt++) {
      const ports = this.opts.ports();
      const port = ports[this.int(ports.length)];
      if (port !== undefined) {
        const c = await Conn.open(this.opts.hostOf?.(port) ?? this.host, port, 2000);
        if (c !== null) {
          this.counters.connects++;
          return c;
        }
      }
      await pause(Math.min(50, 5 * (attempt + 1))); // a node restarting: try again shortly
    }
    return null;
  }

  /** One request; a hang is recorded and ends the connection. */
  private async ask(c: Conn, line: string): Promise<Answer> {
    this.counters.requests++;
    const t0 = performance.now();
    const a = await c.ask(line, this.hangMs);
    if ('hang' in a) {
      this.history.hangs.push({ client: c.id, request: line, waitedMs: Math.round(performance.now() - t0), at: t0 });
      c.close();
    }
    return a;
  }

  private async client(): Promise<void> {
    while (!this.opts.stop()) {
      let c = await this.connect();
      if (c === null) return;
      if (this.random() < 0.4) await this.openSession(c);
      for (let ops = 0; ops < 40 && !c.closed && !this.opts.stop(); ops++) c = await this.operation(c);
      if (!c.closed) c.close();
      c.reader?.close();
    }
  }

  /** The client's second connection (another client id, any node), opened again when it closed; null when none can be. */
  private async readerOf(c: Conn): Promise<Conn | null> {
    if (c.reader === null || c.reader.closed) c.reader = await this.connect();
    return c.reader;
  }

  /**
   * [LP-17, LP-18] On a second connection: `sync`, then `check` of each lock
   * this lease holds. Judged only when a check is answered before the
   * lease's deadline (until then nothing but this client can end the
   * hold): it must show this grant (judgeRead). A hold among several
   * [LP-20, LP-21] is then also asked `validate <lock> <token>`, which must
   * be Valid for any current holder's token. An error or a closed
   * connection proves nothing (a fault); a hang is a hang.
   */
  private async freshRead(c: Conn, hold: Hold, value: string | null, deadline: number): Promise<void> {
    const r = await this.readerOf(c);
    if (r === null) return;
    this.history.freshReads!.made++;
    const s = await this.ask(r, 'sync');
    if (!('line' in s) || s.line !== 'Sync Success') return;
    let judged = false;
    const queries = [...(hold.locks ?? [hold.lock]).map((l) => `check ${l}`), ...(hold.shared === true || hold.limit !== undefined ? [`validate ${hold.lock} ${hold.token}`] : [])];
    for (const q of queries) {
      const a = await this.ask(r, q);
      const answered = performance.now();
      if (!('line' in a) || a.line.startsWith('Error:') || answered >= deadline) return;
      if (!judged) this.history.freshReads!.judged++;
      judged = true;
      hold.trail?.push(`fresh read via ${r.port}: ${q}: ${a.line} (answered @${answered.toFixed(1)})`);
      if (!this.judgeRead(hold, value, q, a.line)) this.history.staleReads!.push({ hold, reply: hold.locks === undefined && q.startsWith('check ') ? a.line : `${q}: ${a.line}` });
    }
  }

  /**
   * What a fresh read during a hold must show. Held alone (one lock, or
   * each of several [LP-22]: the one token on every one): this client,
   * the grant's token and value. Shared [LP-20] or one of a semaphore's
   * holds [LP-21]: that mode (a semaphore with its limit, and no more
   * holders than it), this client among the owners, and a newest token no
   * older than this grant's (exactly it when this client is the newest).
   */
  private judgeRead(hold: Hold, value: string | null, query: string, line: string): boolean {
    if (query.startsWith('validate ')) return line === 'ValidateLock Valid';
    if (hold.shared !== true && hold.limit === undefined) {
      const expected = new RegExp(`^CheckLock:Lock:${hold.client} token=${hold.token}(?: ttl=\\d+)?${value === null ? '' : ` value=${value.replace(/\./g, '\\.')}`}$`);
      return expected.test(line);
    }
    const m = /^CheckLock:(?:Shared:(\d+)|Held:(\d+)\/(\d+)) token=(\d+) owners=(\d+(?:,\d+)*)$/.exec(line);
    if (m === null) return false;
    const owners = (m[5] as string).split(',').map(Number);
    const count = Number(m[1] ?? m[2]);
    const newest = Number(m[4]);
    if (hold.shared === true ? m[1] === undefined : m[1] !== undefined || Number(m[3]) !== hold.limit || count > (hold.limit ?? 0)) return false;
    return count === owners.length && owners.includes(hold.client) && newest >= hold.token && (owners[owners.length - 1] !== hold.client || newest === hold.token);
  }

  /**
   * [LP-22] All or nothing: after `names` were refused (Failed or
   * Timeout), this client holds none of them. On the second connection:
   * `sync`, then `check` of each; one that shows this client is a partial
   * grant. The client holds nothing else (one request at a time, and a
   * hold it is unsure of closes its connection), and sends nothing on this
   * connection meanwhile. A closed connection may have ended a partial
   * session grant: that is missed, never misjudged.
   */
  private async partialRead(c: Conn, names: string[], request: string, refusal: string, at: number): Promise<void> {
    const r = await this.readerOf(c);
    if (r === null) return;
    this.history.partialReads!.made++;
    const s = await this.ask(r, 'sync');
    if (!('line' in s) || s.line !== 'Sync Success') return;
    let judged = false;
    for (const l of names) {
      const a = await this.ask(r, `check ${l}`);
      if (!('line' in a) || a.line.startsWith('Error:')) return;
      if (!judged) this.history.partialReads!.judged++;
      judged = true;
      if (showsClient(a.line, c.id)) this.history.partialGrants!.push({ client: c.id, request, refusal, reply: `check ${l} via ${r.port}: ${a.line}`, at });
    }
  }

  /** Ask for an LP-16 session: the secret to resume with. */
  private async openSession(c: Conn): Promise<void> {
    const a = await this.ask(c, 'session');
    if (!('line' in a)) return;
    const m = /^Session client_id=(\d+) secret=(\S+)$/.exec(a.line);
    if (m === null) {
      if (a.line.startsWith('Error:')) this.unsure(c);
      return;
    }
    if (Number(m[1]) !== c.id) throw new Error(`client ${c.id} got a session for client ${m[1]}`);
    c.session = { id: c.id, secret: m[2] as string };
  }

  /**
   * The connection under a lease broke: come back as the same client on a
   * new connection, to any node [LP-16]. The new connection, or null (no
   * session, no node, or the resume did not succeed). A `Resume Failed`
   * while the lease is held is the lease lost: the session lives while
   * its client holds a lease.
   */
  private async resume(c: Conn, hold: Hold, deadline: number): Promise<Conn | null> {
    const s = c.session;
    if (s === null || this.opts.stop()) return null;
    const n = await this.connect();
    if (n === null) return null;
    const sent = performance.now();
    const a = await this.ask(n, `resume ${s.id} ${s.secret}`);
    const answered = performance.now();
    hold.trail?.push(`resume via ${n.port} @${sent.toFixed(1)}: ${'line' in a ? `${a.line} (answered @${answered.toFixed(1)})` : 'closed'}`);
    if (!('line' in a)) return null;
    if (a.line === `Resume Success client_id=${s.id}`) {
      this.counters.resumes++;
      n.id = s.id;
      n.session = s;
      n.reader = c.reader; // the second connection goes on with the client (a watch may be waiting on it)
      c.reader = null;
      return n;
    }
    if (a.line === 'Resume Failed' && answered < deadline) this.lostIt(hold, deadline, 'resume answered "Resume Failed" while the lease was held');
    else if (a.line.startsWith('Error:')) this.counters.errors++;
    n.close();
    return null;
  }

  /** One operation, and the watch it started (if any) judged once the hold has ended. */
  private async operation(first: Conn): Promise<Conn> {
    const watch: PendingWatch = { answer: null, hold: null };
    const c = await this.operationOn(first, watch);
    if (watch.answer !== null && watch.hold !== null) this.judgeWatch(watch.hold, await watch.answer);
    return c;
  }

  /**
   * [LP-19] On the second connection, `watch <lock> token=<t>` of the lease
   * this client holds, answered (the caller awaits it) once the hold ends.
   */
  private async startWatch(c: Conn, hold: Hold): Promise<{ line: string; at: number } | null> {
    const r = await this.readerOf(c);
    if (r === null) return null;
    this.history.watches!.made++;
    const a = await this.ask(r, `watch ${hold.lock} token=${hold.token} timeout=${Math.floor(this.hangMs / 2)}`);
    return 'line' in a ? { line: a.line, at: performance.now() } : null;
  }

  /**
   * A watch naming a lease's grant may be answered only by a committed
   * change: never with that grant itself, and never with another state
   * before the hold ended (its release sent, its deadline, its connection
   * cut). An error, a close or a timeout proves nothing; a hang is a hang.
   */
  private judgeWatch(hold: Hold, a: { line: string; at: number } | null): void {
    if (a === null || !a.line.startsWith('WatchLock:')) return;
    this.history.watches!.judged++;
    hold.trail?.push(`watch answered @${a.at.toFixed(1)}: ${a.line}`);
    const m = /^WatchLock:Lock:(\d+) token=(\d+)/.exec(a.line);
    if (m !== null && Number(m[2]) === hold.token) this.history.earlyWatches!.push({ hold, reply: a.line, why: 'answered with the grant it named' });
    else if (hold.how !== 'held' && a.at < hold.end) this.history.earlyWatches!.push({ hold, reply: a.line, why: `answered @${a.at.toFixed(1)}, before the hold ended` });
  }

  /**
   * What the next operation asks for: 15% a hold of `r<i>` (shared, or a
   * quarter of them alone) [LP-20], 10% one of a semaphore `m<i>`'s holds
   * with its fixed limit [LP-21], 10% two or three `s<i>` at once, in a
   * random order [LP-22], and otherwise one `s<i>` alone, as before.
   */
  private pick(): Ask {
    const names = workloadLocks(this.opts.locks);
    const one = <T>(xs: T[]): T => xs[this.int(xs.length)] as T;
    const r = this.random();
    if (r < 0.15) return this.random() < 0.75 ? { names: [one(names.shared)], shared: true } : { names: [one(names.shared)] };
    if (r < 0.25) {
      const m = one(names.semaphores);
      return { names: [m.name], limit: m.limit };
    }
    if (r < 0.35 && names.alone.length >= 2) {
      const pool = [...names.alone];
      const picked: string[] = [];
      for (let k = Math.min(pool.length, 2 + this.int(2)); k > 0; k--) picked.push(pool.splice(this.int(pool.length), 1)[0] as string);
      return { names: picked };
    }
    return { names: [one(names.alone)] };
  }

  private async operationOn(first: Conn, watch: PendingWatch): Promise<Conn> {
    let c = first;
    const want = this.pick();
    const lock = want.names[0] as string;
    const several = want.names.length > 1;
    const group = want.shared === true || want.limit !== undefined;
    // A client with a session takes leases more often: they are what it resumes for.
    const lease = this.random() < (c.session === null ? 0.35 : 0.7);
    // Mostly short leases, some that outlive the run (checked at the end).
    const ttl = lease ? (this.random() < 0.95 ? 300 + this.int(700) : 3000 + this.int(2000)) : null;
    // [LP-18] some grants carry a value, which fresh reads then expect: held alone only (a value is for one holder); each of several gets it.
    const value = !group && this.random() < 0.3 ? `v${c.id}.${this.int(1000)}` : null;
    const opt = `${ttl === null ? '' : ` ttl=${ttl}`}${value === null ? '' : ` value=${value}`}`;
    const target = `${want.names.join(' ')}${want.shared === true ? ' shared' : ''}${want.limit === undefined ? '' : ` limit=${want.limit}`}`;
    const verb = this.random() < 0.5 ? `acquire ${target} timeout=${20 + this.int(200)}${opt}` : `preempt ${target}${opt}`;
    const sent = performance.now();
    const a = await this.ask(c, verb);
    if (!('line' in a)) return c;
    const m = /^(?:Acquire|Preempt)Lock Success owner=(\d+) token=(\d+)$/.exec(a.line);
    if (m === null) {
      if (a.line.startsWith('Error:')) {
        if (RULED_OUT.test(a.line)) this.history.refusals!.push({ client: c.id, request: verb, reply: a.line, at: sent });
        this.unsure(c);
        return c;
      }
      if (several) {
        // [LP-22] a refusal of several names the first of them that was not available
        const which = / lock=(\S+)$/.exec(a.line)?.[1];
        if (which === undefined || !want.names.includes(which)) this.history.refusals!.push({ client: c.id, request: verb, reply: a.line, at: sent });
        else if (this.random() < 0.3) await this.partialRead(c, want.names, verb, a.line, sent);
      }
      return c;
    }
    if (Number(m[1]) !== c.id) throw new Error(`client ${c.id} was granted ${lock} as owner ${m[1]}`);
    this.counters.grants++;
    const hold: Hold = { lock, client: c.id, token: Number(m[2]), sent, start: performance.now(), end: Infinity, how: 'held', lease, trail: [`${verb} @${sent.toFixed(1)} via ${c.port}`] };
    if (want.shared === true) hold.shared = true;
    if (want.limit !== undefined) hold.limit = want.limit;
    if (several) hold.locks = want.names;
    this.history.holds.push(hold);
    // Lease times are whole milliseconds on the leader's clock: allow LEASE_SLACK_MS.
    let deadline = ttl === null ? Infinity : sent + ttl - LEASE_SLACK_MS;
    await pause(this.int(3));
    if (lease && this.random() < 0.15) await this.freshRead(c, hold, value, deadline);
    // [LP-19] A watch naming a grant held among others would rightly be answered when another holder joins or leaves: only holds alone are watched.
    if (lease && !group && this.random() < 0.1) {
      watch.hold = hold;
      watch.answer = this.startWatch(c, hold);
    }
    if (lease && this.random() < 0.3) {
      // [LP-20, LP-21] renew acts on the caller's own hold; it names one
      // lock, so a grant of several is renewed lock by lock, and its hold
      // lasts as long as the earliest of its locks' leases.
      const ttl2 = 300 + this.int(700);
      const ends = want.names.map(() => deadline);
      const earliest = (): number => Math.min(...ends);
      for (let i = 0; i < want.names.length; i++) {
        const name = want.names[i] as string;
        const rs = performance.now();
        const r = await this.ask(c, `renew ${name} ttl=${ttl2}`);
        // A renew sets the lease to end ttl from the server's now (>= rs):
        // later or *earlier* [LP-8]. Until its answer is known the lease may
        // already end at the earlier of the two.
        const renewed = rs + ttl2 - LEASE_SLACK_MS;
        hold.trail?.push(`renew ${name} ttl=${ttl2} @${rs.toFixed(1)}: ${'line' in r ? r.line : 'no answer'}`);
        if ('line' in r) {
          this.counters.renews++;
          if (r.line === `RenewLock Success token=${hold.token}`) ends[i] = renewed;
          else if (r.line.startsWith('Error:')) {
            ends[i] = Math.min(ends[i] as number, renewed);
            return this.endUnsure(c, hold, earliest());
          } else {
            if (performance.now() < (ends[i] as number)) this.lostIt(hold, ends[i] as number, `renew answered "${r.line}" before the lease deadline`);
            break;
          }
        } else {
          // Applied or not, the lease ends at one of the two deadlines.
          ends[i] = Math.min(ends[i] as number, renewed);
          const n = await this.resume(c, hold, earliest());
          if (n === null) return this.cut(c, hold, earliest());
          c = n;
        }
      }
      deadline = earliest();
    }
    if (c.closed && lease) {
      // Broken while held (a fault): a client with a session comes back for its lease.
      const n = await this.resume(c, hold, deadline);
      if (n === null) return this.cut(c, hold, deadline);
      c = n;
    }
    if (this.random() < 0.05) {
      // Drop the connection while holding: a session lock ends now (the
      // client stops using it before the server can release it); a lease
      // lives on to its deadline.
      this.counters.disconnects++;
      const t = performance.now();
      hold.trail?.push(`client closed @${t.toFixed(1)}`);
      c.close();
      // With a session it comes straight back for its lease, racing its old
      // connection's disconnect to the leader [LP-16].
      const n = lease ? await this.resume(c, hold, deadline) : null;
      if (n === null) {
        this.end(hold, lease ? deadline : t, lease ? 'deadline' : 'release');
        return c;
      }
      c = n;
    }
    const rs = performance.now();
    // [LP-22] several: all of them, or (refused) none
    const r = await this.ask(c, `release ${want.names.join(' ')}`);
    const answered = performance.now();
    hold.trail?.push(`release @${rs.toFixed(1)}: ${'line' in r ? `${r.line} (answered @${answered.toFixed(1)})` : 'closed'}`);
    if (!('line' in r)) return this.cut(c, hold, deadline, rs);
    this.counters.releases++;
    if (r.line === 'ReleaseLock Success') {
      this.end(hold, Math.min(rs, deadline), rs < deadline ? 'release' : 'deadline');
    } else if (r.line.startsWith('Error:')) {
      return this.endUnsure(c, hold, deadline, rs);
    } else {
      // Not the owner any more. Fine once the lease may have run out: the
      // answer reflects the table at some moment between the release's
      // sending and its answer, so only an answer that came back before the
      // deadline proves the lease lost (as for renew above). A release held
      // up on a delayed link or across a failover can reach the leader after
      // the lease ended; judging by the send time called that lost.
      if (answered < deadline) this.lostIt(hold, deadline, `release answered "${r.line}" before ${lease ? 'the lease deadline' : 'the connection closed'}`);
      else this.end(hold, deadline, 'deadline');
      // [LP-22] A refused release of several changes nothing: a lock of
      // them renewed apart may still be this client's lease, and asking
      // for it again would be the holder asking again (LP-6), not a grant.
      // Its connection, and with it its id, goes.
      if (several) c.close();
    }
    return c;
  }

  private end(hold: Hold, at: number, how: Hold['how']): void {
    hold.end = at;
    hold.how = how;
  }

  private lostIt(hold: Hold, deadline: number, why: string): void {
    this.end(hold, Math.min(performance.now(), deadline), 'release');
    this.history.lost.push({ hold, why });
  }

  /** The connection closed under the client (a fault): a session lock ended then, a lease lives on. */
  private cut(c: Conn, hold: Hold, deadline: number, releaseSent = Infinity): Conn {
    this.counters.cuts++;
    hold.trail?.push(`connection cut @${c.closedAt.toFixed(1)}`);
    if (hold.lease) this.end(hold, Math.min(deadline, releaseSent), 'deadline');
    // A session lock: the client stopped using it at the earlier of the cut
    // and its release; the server may have ended it before (see checker.ts).
    else this.end(hold, Math.min(c.closedAt || performance.now(), releaseSent), 'cut');
    return c;
  }

  /**
   * An error reply: whether it applied is unknown, so stop using the lock and
   * the connection. After a release was sent the hold ended then, whatever
   * happened to it; after a renew a lease runs to the earlier of its old
   * deadline and the one the renew asked for (the caller passes that).
   */
  private endUnsure(c: Conn, hold: Hold, deadline: number, releaseSent = Infinity): Conn {
    this.counters.errors++;
    const t = Math.min(performance.now(), releaseSent);
    c.close();
    if (releaseSent < Infinity || !hold.lease) this.end(hold, Math.min(t, deadline), 'release');
    else this.end(hold, deadline, 'deadline');
    return c;
  }

  private unsure(c: Conn): void {
    this.counters.errors++;
    c.close(); // a session lock it may have got is released with the connection
  }

  /**
   * After the faults stop: every lease whose deadline is still ahead must be
   * held by its client with its token on every node [LP-5, LP-8, LP-11]:
   * held alone, `check` shows it on each of its locks (several [LP-22]:
   * the one token on every one); held among several [LP-20, LP-21],
   * `validate <lock> <token>` is Valid (any current holder's token is).
   */
  async finalCheck(ports: number[], marginMs = 300): Promise<number> {
    const due = this.history.holds.filter((h) => h.lease && h.how !== 'release' && h.end !== Infinity);
    let checked = 0;
    for (const port of ports) {
      const c = await Conn.open(this.opts.hostOf?.(port) ?? this.host, port, 5000);
      if (c === null) throw new Error(`final check: cannot connect to port ${port}`);
      for (const h of due) {
        if (h.end < performance.now() + marginMs) continue;
        const among = h.shared === true || h.limit !== undefined;
        for (const lock of h.locks ?? [h.lock]) {
          const q = among ? `validate ${lock} ${h.token}` : `check ${lock}`;
          const line = await this.askUntilServed(c, q, port);
          checked++;
          if (among ? line !== 'ValidateLock Valid' : !line.startsWith(`CheckLock:Lock:${h.client} token=${h.token} `)) {
            this.history.lost.push({ hold: h, why: `port ${port} answered "${q}" with "${line}" while the lease had ${Math.round(h.end - performance.now())} ms to run` });
          }
        }
      }
      c.close();
    }
    return checked;
  }

  /** A read after the run; a node may refuse one for a moment (a secondary just added has no read window yet [LP-11]): ask again, for a while. */
  private async askUntilServed(c: Conn, q: string, port: number): Promise<string> {
    let a = await c.ask(q, this.hangMs);
    for (const until = performance.now() + 5000; 'line' in a && a.line.startsWith('Error: ') && performance.now() < until; ) {
      await pause(50);
      a = await c.ask(q, this.hangMs);
    }
    if (!('line' in a)) throw new Error(`final check: no answer from port ${port} to "${q}"`);
    return a.line;
  }

  /** Every lock name the run used: the workload's and the planted anchors'. */
  lockNames(): string[] {
    const w = workloadLocks(this.opts.locks);
    const anchors = [...new Set(this.history.holds.map((h) => h.lock).filter((l) => l.startsWith('anchor-')))];
    return [...w.alone, ...w.shared, ...w.semaphores.map((m) => m.name), ...anchors];
  }

  /**
   * The node on `port`'s `check` of every lock the run used, as rows
   * `<lock> <reply>`, for comparing replicas at the end: owner and token,
   * holders, mode and limit [LP-20, LP-21], value [LP-18], or Free. The
   * lease's time left (` ttl=`) is each node's own clock's, so it is left
   * out. A node refusing reads for a moment is asked again (askUntilServed).
   */
  async checkReplies(port: number): Promise<string[]> {
    const c = await Conn.open(this.opts.hostOf?.(port) ?? this.host, port, 5000);
    if (c === null) throw new Error(`lock check: cannot connect to port ${port}`);
    try {
      const rows: string[] = [];
      for (const lock of this.lockNames()) rows.push(`${lock} ${(await this.askUntilServed(c, `check ${lock}`, port)).replace(/ ttl=\d+/, '')}`);
      return rows;
    } finally {
      c.close();
    }
  }
}
