/**
 * One client's TCP connection on a node (leader or follower).
 *
 * Requests are parsed from chunks and queued in arrival order; each queued
 * item gets exactly one reply line and replies leave strictly in queue order
 * [LP-2]. Execution per connection is sequential in effect:
 *  - writes are dispatched to the host as they arrive (pipelined; the
 *    host keeps them in order) unless an `acquire` that may wait is
 *    outstanding, which holds every later request behind it [LP-9];
 *  - reads (`check`, `validate`) wait until every earlier write of this
 *    connection has its result, so they see the connection's own writes
 *    [LP-11 read-your-writes];
 *  - a reply is sent once the host's commit index covers the sequence
 *    number it reflects (the write is on every follower); for a read, the
 *    latest uncommitted change to the lock it shows, so no reply shows
 *    state a failover could lose [LP-11].
 *
 * Backpressure both ways [LP-13]: parsing stops (the rest of the chunk
 * kept in the parser) and reading pauses once HIGH_WATER requests are
 * queued, or while the socket's write buffer is full (write() returned
 * false); both resume on `drain` / below LOW_WATER.
 * Replies produced by one flush go out in a single write (no write per line).
 *
 * [LP-14] Whatever a client sends ends here: bad input is answered or
 * closes this socket only, its buffers are bounded as above, and it reaches
 * the lock table only as the commands of LP-5…LP-10, under its own id.
 *
 * Threading: the node's thread. Every callback runs on it.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { ClientId, Command, Reply } from '../core/lock-table.js';
import { RequestParser, type Parsed } from '../protocol/parser.js';
import { AUTH_FAILED, AUTH_REQUIRED, AUTH_SUCCESS, BYE, formatError, formatGreeting, formatReply, formatSession, HELP_LINE, PONG, replyResult } from '../protocol/reply.js';
import { MAX_AUTH_FAILURES } from './auth.js';
import { authBlocked, authTimedOut, LINE_TIMEOUT } from './limits.js';
import { sourceOf } from './log-throttle.js';
import type { Request } from '../protocol/request.js';
import type { ConnectionHost } from './connection-host.js';

// Requests a connection queues before it stops parsing and reading [LP-13]:
// with --max-clients 10,000 the queues of clients that never read stay in
// the hundreds of MB, not the GBs.
const HIGH_WATER = 256;
/** Requests dispatched between flushes (see pump). */
const PUMP_BATCH = 256;
const LOW_WATER = 64;

/** A request's place in the reply queue. */
export interface Ticket {
  /** The reply line, once known. */
  text: string | null;
  /** The reply may leave once the host's commit index reaches this. */
  seq: number;
  /** Close the connection after this reply (quit, or a fatal error). */
  close: boolean;
  /** The request, until it is dispatched. */
  req: Request | null;
  /** An acquire that may wait: later requests wait behind it [LP-9]. */
  blocking: boolean;
  /** A check or validate: its reply shows state, and waits for that state's commit [LP-11]. */
  read: boolean;
  /** A `session`'s new secret [LP-16]: it goes into this reply only, never into the log or a log line. */
  secret: string | undefined;
  /** The request's verb (`invalid` for a line that did not parse), and when it was read: for metrics. */
  verb: string;
  t0: number;
  /** What the reply says, when known without reading it (a write's reply object): for metrics. */
  result: 'ok' | 'no' | 'error' | undefined;
  /** The reply as log lines show it, when it differs (a `session` reply, without its secret). */
  logged: string | undefined;
}

/**
 * A ticket with every field set, so all tickets share one shape (the flush
 * loop reads them on every reply).
 */
function ticket(text: string | null, close: boolean, req: Request | null, blocking: boolean, verb: string): Ticket {
  return { text, seq: 0, close, req, blocking, read: false, secret: undefined, verb, t0: performance.now(), result: undefined, logged: undefined };
}

/** SHA-256 of a secret, hex: what the table keeps of it [LP-16]. */
export const secretHash = (secret: string): string => createHash('sha256').update(secret, 'utf8').digest('hex');
/** A new secret [LP-16]: 144 random bits (at least 128), as 24 URL-safe characters. */
export const newSecret = (): string => randomBytes(18).toString('base64url');

export class ClientConnection {
  private readonly parser = new RequestParser();
  private readonly queue: Ticket[] = [];
  /** Index in `queue` of the first item not yet dispatched. */
  private next = 0;
  private writesInFlight = 0;
  private blockedBy: Ticket | null = null;
  /** The lock `blockedBy` waits for. */
  private waitingOn: string | null = null;
  /** A watch waiting for its answer [LP-19]: later requests wait behind it, as `blockedBy`. */
  private watching: Ticket | null = null;
  private pumping = false;
  /** No more requests will be read: quit, fatal error, or the client half-closed. */
  private inputDone = false;
  private writePaused = false;
  private queuePaused = false;
  private ending = false;
  /** The client half-closed (FIN); input is done once the parser's backlog is parsed too. */
  private peerEnded = false;
  private resumeQueued = false;
  /** Shutting down: answer what was read, then close (drain()). */
  private draining = false;
  /** Armed while replies cannot be written (the client does not read): drops it after --slow-client-timeout. */
  private slowTimer: NodeJS.Timeout | null = null;
  /** Armed when a line begins and is not yet ended: closes the connection --line-timeout later. */
  private lineTimer: NodeJS.Timeout | null = null;
  /** Armed from the greeting until a successful auth, when a token is needed: closes the connection --auth-timeout later [LP-14, LP-15]. */
  private authTimer: NodeJS.Timeout | null = null;
  /** [LP-15] Whether this connection may do more than auth, ping, help, quit. */
  private authed: boolean;
  private authFailures = 0;
  closed = false;
  readonly remote: string;

  /**
   * The generation of the client this connection is [LP-16]: 0 as
   * greeted, the table's count after a `resume`. Its disconnect carries it,
   * so the close of a connection the client has moved on from ends nothing.
   */
  gen = 0;
  /**
   * This connection asked for a session or resumed one [LP-16]: its writes
   * carry its generation, so that once its client is resumed elsewhere the
   * table refuses them (lock-table.ts, SUPERSEDED).
   */
  private sessioned = false;

  constructor(
    /** The client this connection is: as greeted, or the one it resumed [LP-16]. */
    public id: ClientId,
    private readonly socket: Socket,
    private readonly host: ConnectionHost,
    /** The peer's address without its port: whom --max-clients-per-source and the auth throttle count [LP-14, LP-15]. */
    readonly source: string = sourceOf(socket.remoteAddress),
  ) {
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.authed = host.auth === null;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => {
      // Half-close [LP-2]: answer what was received, then close; bytes
      // received but not yet parsed (the parser's backlog) are requests too.
      this.peerEnded = true;
      if (!this.parser.backlogged) this.endInput();
      // [LP-9] A half-close ends a wait at once: the acquire is answered as
      // a timeout, by the same replicated `timeout` command as its deadline,
      // so a client that crashed while waiting (its kernel sent FIN) does not
      // keep its session locks until the lock it waits for is granted.
      if (this.waitingOn !== null) this.host.endWait(this.id, this.waitingOn);
      if (this.watching !== null) this.host.endWatch(this); // [LP-2, LP-19] answered as a timeout
      this.pump(); // a last line cut off by the half-close may have queued a request
    });
    socket.on('drain', () => {
      this.writePaused = false;
      if (this.slowTimer !== null) clearTimeout(this.slowTimer);
      this.slowTimer = null;
      this.pump(); // requests held while the client was not reading; its flush resumes reading
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.host.log.line('warn', `client ${this.id} socket error: ${err.code ?? err.message}`);
    });
    socket.on('close', () => this.onClose());
    if (!this.authed) this.authTimer = setTimeout(() => this.onAuthTimeout(), host.limits.authTimeoutMs);
    this.send(formatGreeting(id, host.name, host.leads)); // [LP-3] before anything else
  }

  private send(text: string): void {
    if (this.closed || this.ending) return;
    if (!this.socket.write(text.endsWith('\n') ? text : `${text}\n`) && !this.writePaused) {
      this.writePaused = true;
      this.socket.pause();
      // [LP-13] paused, and past a bound dropped: a client that never reads
      // must not hold its connection, its locks and its buffers forever.
      this.slowTimer ??= setTimeout(() => {
        this.host.log.line('warn', `client ${this.id} (${this.remote}) read none of its replies for ${this.host.limits.slowClientMs} ms (${this.socket.writableLength} bytes waiting); dropping it`);
        this.socket.destroy();
      }, this.host.limits.slowClientMs);
    }
  }

  private onData(chunk: Buffer): void {
    if (this.inputDone) return;
    this.parser.push(chunk, this.onParsed);
    this.afterParse();
  }

  private afterParse(): void {
    // A line must end within --line-timeout of its first byte,
    // so half a line (or one trickled a byte at a time) cannot hold a
    // connection open.
    const partial = this.parser.pending > 0 && !this.inputDone;
    if (partial && this.lineTimer === null) this.lineTimer = setTimeout(() => this.onLineTimeout(), this.host.limits.lineTimeoutMs);
    else if (!partial && this.lineTimer !== null) {
      clearTimeout(this.lineTimer);
      this.lineTimer = null;
    }
    // [LP-13] The parser stopped at HIGH_WATER queued requests (onParsed):
    // read nothing more until the queue is down to LOW_WATER.
    if ((this.parser.backlogged || this.queue.length >= HIGH_WATER) && !this.queuePaused) {
      this.queuePaused = true;
      this.socket.pause();
    }
    this.pump();
  }

  /** One parsed item; false tells the parser to stop (and keep the rest) because the queue is full. */
  private readonly onParsed = (p: Parsed): boolean => {
    if (this.inputDone) return false; // after quit or a fatal error nothing more is taken
    this.take(p);
    return !this.inputDone && this.queue.length < HIGH_WATER;
  };

  private take(p: Parsed): void {
    this.host.counters.requests++;
    const log = this.host.log;
    switch (p.kind) {
      case 'request': {
        const req = p.request;
        if (log.requests) log.line('req', `Request ${this.id}: ${describe(req)}`);
        const blocking = req.verb === 'acquire' && req.timeout !== 0;
        this.queue.push(ticket(null, false, req, blocking, req.verb));
        if (req.verb === 'quit') this.stopReading();
        return;
      }
      case 'error':
        // [LP-12] recoverable: answer, keep the connection, change nothing.
        if (log.requests) log.line('req', `Request ${this.id}: bad request (${p.message})`);
        this.queue.push(ticket(formatError(p.message), false, null, false, 'invalid'));
        return;
      case 'fatal':
        // [LP-13] answer in order, then close.
        log.line('warn', `client ${this.id}: ${p.message}; closing`);
        this.queue.push(ticket(formatError(p.message), true, null, false, 'invalid'));
        this.stopReading();
        return;
    }
  }

  private onLineTimeout(): void {
    this.lineTimer = null;
    if (this.inputDone || this.closed || this.parser.pending === 0) return;
    // Like a line too long [LP-13]: answer in order, then close.
    this.host.log.line('warn', `client ${this.id}: ${LINE_TIMEOUT} (${this.parser.pending} bytes, a line must end within ${this.host.limits.lineTimeoutMs} ms); closing`);
    this.queue.push(ticket(formatError(LINE_TIMEOUT), true, null, false, 'invalid'));
    this.stopReading();
    this.flush();
  }

  /**
   * [LP-14, LP-15] No successful auth within --auth-timeout of the greeting:
   * one `Error:` line, then close, so an idle connection holds no
   * --max-clients slot for long. Requests read and not yet started are
   * dropped unanswered (before an auth they could only be refused).
   */
  private onAuthTimeout(): void {
    this.authTimer = null;
    if (this.authed || this.closed || this.ending) return;
    const ms = this.host.limits.authTimeoutMs;
    this.host.log.line('warn', `client ${this.id} (${this.remote}): authentication timed out after ${ms} ms; closing`);
    if (this.writePaused) {
      // It reads none of its replies: the line could not reach it, and waiting for it to read would keep the slot.
      this.socket.destroy();
      return;
    }
    this.queue.length = this.next;
    this.queue.push(ticket(formatError(authTimedOut(ms)), true, null, false, 'invalid'));
    this.stopReading();
    this.flush();
  }

  private stopReading(): void {
    this.inputDone = true;
    this.socket.pause();
  }

  /**
   * [LP-15] `t`'s reply is the connection's last: every request queued
   * after it is dropped unanswered and never runs (they are not dispatched
   * yet: dispatch goes in queue order and `t` is the newest dispatched, or
   * the one all later requests wait behind), nothing more is read, and the
   * connection closes once the replies up to `t` are sent.
   */
  private closeAfter(t: Ticket): void {
    t.close = true;
    const i = this.queue.indexOf(t);
    if (i !== -1) {
      this.queue.length = i + 1;
      if (this.next > i + 1) this.next = i + 1;
    }
    this.stopReading();
  }

  /**
   * A wrong token, or a wrong `resume` pair [LP-15, LP-16], answered by
   * `t`: counted on this connection and for its source across connections
   * (AuthThrottle). The third on the connection, or the one that blocks
   * the source, closes it (closeAfter). Logged as the throttle says: a
   * line or two per source per window, however many guesses.
   */
  private authFailed(t: Ticket, what: string): void {
    const throttle = this.host.authThrottle;
    this.authFailures++;
    const f = throttle.failed(this.source);
    const closing = this.authFailures >= MAX_AUTH_FAILURES || f.blocked;
    if (f.log) {
      const blocked = f.blocked ? `; ${this.source} is refused for ${Math.ceil(throttle.retryAfterMs(this.source) / 1000)} s` : '';
      const unlogged = f.unlogged > 0 ? ` (${f.unlogged} not logged)` : '';
      this.host.log.line('warn', `client ${this.id} (${this.remote}): ${what}: failure ${f.count} from ${this.source} in this window${unlogged}, ${this.authFailures} of ${MAX_AUTH_FAILURES} on this connection${blocked}${closing ? '; closing' : ''}`);
    }
    if (closing) this.closeAfter(t);
  }

  /**
   * [LP-15] The source failed too often lately: this `auth` or `resume` is
   * refused without checking it, even with the right token or pair, until
   * the source's window ends; so guessing gains nothing from more
   * connections. The refusal counts as an attempt (the throttle's
   * contract) and closes the connection.
   */
  private refuseBlocked(t: Ticket): void {
    const throttle = this.host.authThrottle;
    const retryMs = throttle.retryAfterMs(this.source);
    const f = throttle.failed(this.source);
    if (f.log) this.host.log.line('warn', `client ${this.id} (${this.remote}): refused without a check: ${this.source} is blocked for ${Math.ceil(retryMs / 1000)} s more; closing`);
    t.text = formatError(authBlocked(retryMs));
    this.closeAfter(t);
  }

  /** Dispatch queued requests as far as the ordering rules allow, then flush. */
  private pump(): void {
    // Not re-entrant: the leader answers a write synchronously inside
    // submit(), and that answer must not restart this loop under itself.
    if (this.pumping) return;
    this.pumping = true;
    // In batches, flushing after each and stopping while the client does
    // not read: one 64 KiB chunk of `help` is 13,000 requests
    // and 3 MB of replies, which must not be made before they can be sent.
    // Requests left in the queue are dispatched on `drain`.
    // One flush per batch, the last one included (no second flush after).
    for (;;) {
      let n = 0;
      if (!this.writePaused && !this.closed) {
        while (this.next < this.queue.length && this.blockedBy === null && n < PUMP_BATCH) {
          const t = this.queue[this.next] as Ticket;
          if (t.req !== null && !this.dispatch(t, t.req)) break;
          this.next++;
          n++;
        }
      }
      this.flush();
      if (n < PUMP_BATCH || this.writePaused || this.closed) break;
    }
    this.pumping = false;
  }

  /** Start one request; false when it must wait for earlier writes. */
  private dispatch(t: Ticket, req: Request): boolean {
    const e = this.host;
    // [LP-15] Decided here, in request order, so `auth` then pipelined
    // requests work, and nothing before a successful auth reaches the table.
    if (!this.authed && req.verb !== 'auth' && req.verb !== 'ping' && req.verb !== 'help' && req.verb !== 'quit') {
      t.text = formatError(AUTH_REQUIRED);
      t.req = null;
      return true;
    }
    switch (req.verb) {
      case 'auth':
        if (e.auth !== null && !e.authThrottle.allowed(this.source)) {
          this.refuseBlocked(t);
        } else if (e.auth === null || e.auth.check(req.secret)) {
          // With no token configured any token is accepted, so clients may always send one.
          this.authed = true;
          this.authFailures = 0;
          if (this.authTimer !== null) clearTimeout(this.authTimer);
          this.authTimer = null;
          t.text = AUTH_SUCCESS;
        } else {
          t.text = AUTH_FAILED;
          this.authFailed(t, 'wrong auth token');
        }
        break;
      case 'check':
      case 'validate':
        if (this.writesInFlight > 0) return false; // [LP-11] see this connection's writes
        t.text = e.read(req);
        t.seq = e.readSeq(req.lock);
        t.read = true; // [LP-11] and leave only once what it shows is committed
        break;
      case 'whoami':
        t.text = formatGreeting(this.id, e.name, e.leads);
        break;
      case 'session': {
        // [LP-16] the secret stays here; the log carries its hash.
        t.secret = newSecret();
        this.sessioned = true;
        t.req = null;
        this.writesInFlight++;
        e.submit(this, t, req.ttl === null ? { op: 'session', client: this.id, hash: secretHash(t.secret) } : { op: 'session', client: this.id, hash: secretHash(t.secret), ttl: req.ttl });
        return true;
      }
      case 'resume':
        // [LP-16] A resume is a guess at a secret, throttled as `auth` is [LP-15].
        if (!e.authThrottle.allowed(this.source)) {
          this.refuseBlocked(t);
          break;
        }
        // [LP-16] Later requests wait for the answer: they are made as the
        // client this connection is once it is answered.
        t.req = null;
        this.writesInFlight++;
        this.blockedBy = t;
        e.submit(this, t, { op: 'resume', client: this.id, target: req.client, hash: secretHash(req.secret), node: e.index });
        return true;
      case 'sync':
        // [LP-17] Sequenced as a write that changes nothing: answered once
        // this node has applied and committed everything its sequencer had
        // when it took it (the reply's seq), as a write's reply waits
        // [LP-11]. Later reads wait behind it (writesInFlight), so they
        // reflect at least those writes.
        t.req = null;
        this.writesInFlight++;
        e.submit(this, t, { op: 'sync', client: this.id });
        return true;
      case 'watch':
        // [LP-19] Later requests wait behind it. Read before a half-close (or
        // the node began to stop), dispatched after: answered at once if the
        // lock is not in the state it names, else as a timeout [LP-2].
        t.req = null;
        t.read = true; // it shows state: an answer leaves once that state is committed [LP-11]
        this.blockedBy = t;
        this.watching = t;
        e.watch(this, t, this.peerEnded || this.draining ? { ...req, timeout: 0 } : req);
        return true;
      case 'ping':
        t.text = PONG;
        break;
      case 'help':
        t.text = HELP_LINE;
        break;
      case 'quit':
        t.text = BYE;
        t.close = true;
        break;
      default: {
        t.req = null;
        this.writesInFlight++;
        const cmd = toCommand(this.id, req);
        if (this.sessioned) cmd.gen = this.gen;
        if (t.blocking) {
          if ((this.peerEnded || this.draining) && cmd.op === 'acquire') {
            // [LP-2, LP-9] Read before the client half-closed (or the node
            // began to stop), started after: it may take the lock if it is
            // free, but it does not wait.
            cmd.timeout = 0;
          } else {
            this.blockedBy = t;
            this.waitingOn = req.lock;
          }
        }
        e.submit(this, t, cmd);
        return true;
      }
    }
    t.req = null;
    return true;
  }

  /** The host's answer to a write. Safe to call after the connection closed. */
  resolve(t: Ticket, reply: Reply | string, seq: number): void {
    if (t.text !== null) return;
    t.text = typeof reply === 'string' ? reply : formatReply(reply);
    t.seq = seq;
    if (typeof reply !== 'string') {
      t.result = reply.op === 'refused' || (reply.op === 'resume' && !reply.ok && reply.busy) ? 'error' : 'ok' in reply && !reply.ok ? 'no' : 'ok';
      if (reply.op === 'session' || reply.op === 'resume') this.resolved(t, reply);
    } else t.result = 'error';
    this.writesInFlight--;
    if (this.blockedBy === t) {
      this.blockedBy = null;
      this.waitingOn = null;
    }
    if (!this.closed) this.pump();
  }

  /** The host's answer to a watch [LP-19]: the state it saw, to leave once `seq` is committed, or a timeout. Safe to call after the connection closed. */
  resolveWatch(t: Ticket, text: string, seq: number): void {
    if (t.text !== null) return;
    t.text = text;
    t.seq = seq;
    t.result = text.startsWith('WatchLock:') ? 'ok' : 'no';
    if (this.watching === t) this.watching = null;
    if (this.blockedBy === t) this.blockedBy = null;
    if (!this.closed) this.pump();
  }

  /** What a `session` or `resume` answer does to this connection [LP-16]. */
  private resolved(t: Ticket, reply: Reply): void {
    if (reply.op === 'session' && t.secret !== undefined) {
      t.logged = `${t.text} secret=…`;
      t.text = formatSession(reply.client, t.secret);
      t.secret = undefined;
    } else if (reply.op === 'resume' && reply.ok) {
      this.host.log.line('conn', `client ${this.id} (${this.remote}) resumed client ${reply.client}`);
      const from = this.id;
      this.id = reply.client;
      this.gen = reply.gen;
      this.sessioned = true;
      this.host.renamed(this, from);
    } else if (reply.op === 'resume' && !reply.busy) {
      // A wrong or unknown pair counts as a failed auth [LP-15, LP-16]:
      // later requests waited behind it, so none of them has run.
      this.authFailed(t, 'resume refused');
    }
  }

  /**
   * The commit index will not reach what some replies wait for (the leader
   * is gone and no new one came): answer them with an error instead, so
   * that every request still gets its one reply [LP-2]. A write's result
   * here was applied but never confirmed committed; a read showed state
   * that may yet be lost [LP-11].
   */
  failUncommitted(readError: string, writeError: string): void {
    const commit = this.host.commitSeq;
    for (const t of this.queue) {
      if (t.text === null || t.seq <= commit) continue;
      t.text = `Error: ${t.read ? readError : writeError}`;
      t.seq = 0;
    }
    this.flush();
  }

  /** Send every reply at the head of the queue that is known and committed. */
  flush(): void {
    if (this.closed) return;
    const commit = this.host.commitSeq;
    const log = this.host.log;
    let out = '';
    let sent = 0;
    let close = false;
    const now = performance.now();
    for (const t of this.queue) {
      if (t.text === null) break;
      if (t.seq > commit) {
        this.host.awaitCommit(this);
        break;
      }
      out += `${t.text}\n`;
      sent++;
      this.host.metrics.answered(t.verb, t.result ?? replyResult(t.text), now - t.t0);
      if (log.requests) log.line('reply', `Response ${this.id}: ${t.logged ?? t.text}`);
      if (t.close) {
        close = true;
        break;
      }
    }
    if (sent > 0) {
      this.queue.splice(0, sent);
      // Answered tickets may include some never dispatched (an error's text is set when it is read).
      this.next = Math.max(0, this.next - sent);
      this.send(out);
    }
    // Close after quit / a fatal error, or once a half-closed client has
    // every reply [LP-2, LP-8].
    if (close || (this.inputDone && this.queue.length === 0 && (this.socket.readableEnded || this.draining))) {
      this.end();
      return;
    }
    this.maybeResume();
  }

  private maybeResume(): void {
    if (this.queuePaused && this.queue.length < LOW_WATER) this.queuePaused = false;
    if (this.writePaused || this.queuePaused || this.inputDone || this.closed) return;
    if (this.parser.backlogged) {
      // Parse what was kept, on a later turn: other connections get theirs first.
      if (this.resumeQueued) return;
      this.resumeQueued = true;
      setImmediate(() => {
        this.resumeQueued = false;
        if (this.closed || this.inputDone) return;
        this.parser.resume(this.onParsed);
        if (this.peerEnded && !this.parser.backlogged) this.endInput();
        this.afterParse();
      });
      return;
    }
    if (this.socket.isPaused()) this.socket.resume();
  }

  /** The client half-closed and every whole line was parsed: a last line cut off by it is a request too [LP-2]; then input is done. */
  private endInput(): void {
    if (this.inputDone) return;
    this.parser.finish(this.onParsed);
    this.inputDone = true;
  }

  /** Finish sending, then close (onData ignores what still comes: input is done). */
  private end(): void {
    if (this.ending) return;
    this.ending = true;
    endAndDiscard(this.socket);
    // Stopping: once the last reply is written the connection is done, whether or not the client closes its side.
    if (this.draining) this.socket.once('finish', () => this.socket.destroy());
  }

  /** Bytes and replies this connection holds for its client (LP-13 bound). */
  get buffered(): { bytes: number; replies: number } {
    return { bytes: this.socket.writableLength, replies: this.queue.length };
  }

  /** Graceful shutdown: read nothing more, answer what was read, then close. */
  drain(): void {
    this.draining = true;
    // Bytes already read but kept unparsed (backpressure, see onParsed) are
    // requests in flight too: take them now, at most one read chunk's worth.
    if (!this.inputDone && this.parser.backlogged) {
      this.parser.resume((p) => {
        this.take(p);
        return !this.inputDone; // a quit or a fatal error in them ends the input as usual
      });
    }
    this.stopReading();
    // Nothing more is read: as after a half-close [LP-2], what was read is
    // answered, then the connection closes (an idle one at once), and a
    // wait ends as a timeout through the log [LP-9], so it is answered too.
    this.inputDone = true;
    if (this.waitingOn !== null) this.host.endWait(this.id, this.waitingOn);
    if (this.watching !== null) this.host.endWatch(this);
    this.pump();
  }

  /** Close at once (node shutdown). */
  destroy(): void {
    this.socket.destroy();
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.slowTimer !== null) clearTimeout(this.slowTimer);
    this.slowTimer = null;
    if (this.lineTimer !== null) clearTimeout(this.lineTimer);
    this.lineTimer = null;
    if (this.authTimer !== null) clearTimeout(this.authTimer);
    this.authTimer = null;
    this.queue.length = 0;
    this.host.closed(this); // [LP-8] release session locks, withdraw waiters
  }
}

/**
 * End our side of a socket we read no more from (after `last`, if given),
 * and read and drop whatever the peer still sends, so that its FIN is seen
 * and the socket closes: a paused socket with unread bytes stays half-open
 * for good (no leaked handles).
 */
export function endAndDiscard(socket: Socket, last?: string): void {
  if (last === undefined) socket.end();
  else socket.end(last);
  socket.resume();
}

/**
 * The command for a write. An acquire carries its timeout, not a deadline:
 * the replication counts it down from now, when it starts to wait, on a
 * monotonic clock (lock-table.ts aged) [LP-9].
 */
export function toCommand(client: ClientId, req: Request): Extract<Command, { op: 'preempt' | 'acquire' | 'release' | 'renew' }> {
  switch (req.verb) {
    case 'preempt': {
      const cmd: Command = req.value === undefined ? { op: 'preempt', client, lock: req.lock, ttl: req.ttl } : { op: 'preempt', client, lock: req.lock, ttl: req.ttl, value: req.value };
      return req.shared === undefined && req.limit === undefined && req.locks === undefined ? cmd : withKind(cmd, req);
    }
    case 'acquire': {
      const cmd: Command = req.value === undefined ? { op: 'acquire', client, lock: req.lock, ttl: req.ttl, timeout: req.timeout } : { op: 'acquire', client, lock: req.lock, ttl: req.ttl, timeout: req.timeout, value: req.value };
      return req.shared === undefined && req.limit === undefined && req.locks === undefined ? cmd : withKind(cmd, req);
    }
    case 'release':
      return req.locks === undefined ? { op: 'release', client, lock: req.lock } : { op: 'release', client, lock: req.lock, locks: req.locks };
    case 'renew':
      return { op: 'renew', client, lock: req.lock, ttl: req.ttl };
    default:
      throw new Error(`not a write: ${req.verb}`);
  }
}

/** A lock request's kind [LP-20, LP-21, LP-22] added to its command. */
function withKind<C extends Extract<Command, { op: 'preempt' | 'acquire' }>>(cmd: C, req: Extract<Request, { verb: 'preempt' | 'acquire' }>): C {
  if (req.locks !== undefined) return { ...cmd, locks: req.locks };
  if (req.shared === true) return { ...cmd, shared: true };
  return req.limit === undefined ? cmd : { ...cmd, limit: req.limit };
}

/** How a lock request's kind reads in a log: its other names, `shared` or `limit=`. */
const kindText = (req: Extract<Request, { verb: 'preempt' | 'acquire' }>): string => (req.locks !== undefined ? ` ${req.locks.slice(1).join(' ')}` : req.shared === true ? ' shared' : req.limit !== undefined ? ` limit=${req.limit}` : '');

/** The request as a log shows it (normalized, so logs cannot be forged with control bytes). */
export function describe(req: Request): string {
  switch (req.verb) {
    case 'preempt':
      return `preempt ${req.lock}${kindText(req)}${req.ttl === null ? '' : ` ttl=${req.ttl}`}${req.value === undefined ? '' : ` value=${req.value}`}`;
    case 'acquire':
      return `acquire ${req.lock}${kindText(req)}${req.timeout === null ? '' : ` timeout=${req.timeout}`}${req.ttl === null ? '' : ` ttl=${req.ttl}`}${req.value === undefined ? '' : ` value=${req.value}`}`;
    case 'renew':
      return `renew ${req.lock} ttl=${req.ttl}`;
    case 'validate':
      return `validate ${req.lock} ${req.token}`;
    case 'release':
      return req.locks === undefined ? `release ${req.lock}` : `release ${req.locks.join(' ')}`;
    case 'check':
      return `${req.verb} ${req.lock}`;
    case 'session':
      return `session${req.ttl === null ? '' : ` ttl=${req.ttl}`}`;
    default:
      return req.verb; // never a secret: `auth` and `resume` are named only
  }
}
