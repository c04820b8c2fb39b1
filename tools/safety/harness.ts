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
 * Leases are whole ms on the leader's wall clock (Date.now()); the harness
 * times with performance.now(). A client allows this much for the rounding
 * and for the two clocks drifting apart under NTP slewing (measured here at
 * up to 1.4 ms over 20 s).
 */
export const LEASE_SLACK_MS = 5;

export class Harness {
  readonly history: History = { holds: [], lost: [], hangs: [], staleReads: [], freshReads: { made: 0, judged: 0 }, earlyWatches: [], watches: { made: 0, judged: 0 } };
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
          this.history.holds.push({ lock: `anchor-${k}`, client: c.id, token: Number(m[2]), start: performance.now(), end: sent + ttlMs - LEASE_SLACK_MS, how: 'deadline', lease: true, trail: [`preempt anchor-${k} ttl=${ttlMs} @${sent.toFixed(1)} via ${c.port}`] });
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
   * [LP-17, LP-18] On a second connection: `sync`, then `check` of the lock
   * this lease holds. Judged only when the check is answered before the
   * lease's deadline (until then nothing but this client can change the
   * lock): it must show this grant and its value. An error or a closed
   * connection proves nothing (a fault); a hang is a hang.
   */
  private async freshRead(c: Conn, hold: Hold, value: string | null, deadline: number): Promise<void> {
    const r = await this.readerOf(c);
    if (r === null) return;
    this.history.freshReads!.made++;
    const s = await this.ask(r, 'sync');
    if (!('line' in s) || s.line !== 'Sync Success') return;
    const a = await this.ask(r, `check ${hold.lock}`);
    const answered = performance.now();
    if (!('line' in a) || a.line.startsWith('Error:') || answered >= deadline) return;
    this.history.freshReads!.judged++;
    const expected = new RegExp(`^CheckLock:Lock:${hold.client} token=${hold.token}(?: ttl=\\d+)?${value === null ? '' : ` value=${value.replace(/\./g, '\\.')}`}$`);
    hold.trail?.push(`fresh read via ${r.port}: ${a.line} (answered @${answered.toFixed(1)})`);
    if (!expected.test(a.line)) this.history.staleReads!.push({ hold, reply: a.line });
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

  private async operationOn(first: Conn, watch: PendingWatch): Promise<Conn> {
    let c = first;
    const lock = `s${this.int(this.opts.locks)}`;
    // A client with a session takes leases more often: they are what it resumes for.
    const lease = this.random() < (c.session === null ? 0.35 : 0.7);
    // Mostly short leases, some that outlive the run (checked at the end).
    const ttl = lease ? (this.random() < 0.95 ? 300 + this.int(700) : 3000 + this.int(2000)) : null;
    // [LP-18] some grants carry a value, which fresh reads then expect.
    const value = this.random() < 0.3 ? `v${c.id}.${this.int(1000)}` : null;
    const opt = `${ttl === null ? '' : ` ttl=${ttl}`}${value === null ? '' : ` value=${value}`}`;
    const verb = this.random() < 0.5 ? `acquire ${lock} timeout=${20 + this.int(200)}${opt}` : `preempt ${lock}${opt}`;
    const sent = performance.now();
    const a = await this.ask(c, verb);
    if (!('line' in a)) return c;
    const m = /^(?:Acquire|Preempt)Lock Success owner=(\d+) token=(\d+)$/.exec(a.line);
    if (m === null) {
      if (a.line.startsWith('Error:')) this.unsure(c);
      return c;
    }
    if (Number(m[1]) !== c.id) throw new Error(`client ${c.id} was granted ${lock} as owner ${m[1]}`);
    this.counters.grants++;
    const hold: Hold = { lock, client: c.id, token: Number(m[2]), start: performance.now(), end: Infinity, how: 'held', lease, trail: [`${verb} @${sent.toFixed(1)} via ${c.port}`] };
    this.history.holds.push(hold);
    // Lease times are whole milliseconds on the leader's clock: allow LEASE_SLACK_MS.
    let deadline = ttl === null ? Infinity : sent + ttl - LEASE_SLACK_MS;
    await pause(this.int(3));
    if (lease && this.random() < 0.15) await this.freshRead(c, hold, value, deadline);
    if (lease && this.random() < 0.1) {
      watch.hold = hold;
      watch.answer = this.startWatch(c, hold);
    }
    if (lease && this.random() < 0.3) {
      const ttl2 = 300 + this.int(700);
      const rs = performance.now();
      const r = await this.ask(c, `renew ${lock} ttl=${ttl2}`);
      // A renew sets the lease to end ttl from the server's now (>= rs):
      // later or *earlier* [LP-8]. Until its answer is known the lease may
      // already end at the earlier of the two.
      const renewed = rs + ttl2 - LEASE_SLACK_MS;
      hold.trail?.push(`renew ttl=${ttl2} @${rs.toFixed(1)}: ${'line' in r ? r.line : 'no answer'}`);
      if ('line' in r) {
        this.counters.renews++;
        if (r.line === `RenewLock Success token=${hold.token}`) deadline = renewed;
        else if (r.line.startsWith('Error:')) return this.endUnsure(c, hold, Math.min(deadline, renewed));
        else if (performance.now() < deadline) this.lostIt(hold, deadline, `renew answered "${r.line}" before the lease deadline`);
      } else {
        // Applied or not, the lease ends at one of the two deadlines.
        deadline = Math.min(deadline, renewed);
        const n = await this.resume(c, hold, deadline);
        if (n === null) return this.cut(c, hold, deadline);
        c = n;
      }
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
    const r = await this.ask(c, `release ${lock}`);
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
   * held by its client with its token on every node [LP-5, LP-8, LP-11].
   */
  async finalCheck(ports: number[], marginMs = 300): Promise<number> {
    const latest = new Map<string, Hold>();
    for (const h of this.history.holds) if ((latest.get(h.lock)?.start ?? -1) < h.start) latest.set(h.lock, h);
    let checked = 0;
    for (const port of ports) {
      const c = await Conn.open(this.opts.hostOf?.(port) ?? this.host, port, 5000);
      if (c === null) throw new Error(`final check: cannot connect to port ${port}`);
      for (const h of latest.values()) {
        if (!h.lease || h.how === 'release' || h.end === Infinity || h.end < performance.now() + marginMs) continue;
        let a = await c.ask(`check ${h.lock}`, this.hangMs);
        // A node may refuse a read for a moment (a secondary just added has no read window yet [LP-11]): ask again, for a while.
        for (const until = performance.now() + 5000; 'line' in a && a.line.startsWith('Error: ') && performance.now() < until; ) {
          await new Promise((r) => setTimeout(r, 50));
          a = await c.ask(`check ${h.lock}`, this.hangMs);
        }
        if (!('line' in a)) throw new Error(`final check: no answer from port ${port}`);
        checked++;
        if (!a.line.startsWith(`CheckLock:Lock:${h.client} token=${h.token} `)) {
          this.history.lost.push({ hold: h, why: `port ${port} answered "${a.line}" while the lease had ${Math.round(h.end - performance.now())} ms to run` });
        }
      }
      c.close();
    }
    return checked;
  }
}
