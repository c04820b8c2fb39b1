/**
 * The dlock client library.
 *
 *   const c = await connect({ port: 9002 });
 *   const r = await c.preempt('lock01');      // { ok: true, owner, token }
 *   await c.close();
 *
 * Pipelining: every method writes its request at once and resolves when its
 * reply arrives; replies come in request order [LP-2], so many calls may be
 * outstanding on one connection. Lock-level outcomes (held by someone else,
 * timed out) are results with `ok: false`; an `Error: …` reply rejects with
 * ServerError, a lost connection with ConnectionClosedError.
 *
 * Threading: one connection, one thread; not for sharing across workers.
 */
import { connect as tlsConnect } from 'node:tls';
import { connect as netConnect, type Socket } from 'node:net';
import type { CheckResult, ClientId, Reply, ValidateResult } from '../core/lock-table.js';
import { LineSplitter } from '../protocol/line-splitter.js';
import { parseCheck, parseGreeting, parseLockReply, parseValidate, SYNC_SUCCESS } from '../protocol/reply.js';
import { isTokenWord, lockNameError, MAX_HOLDERS, MAX_LINE_BYTES, MAX_NAMES, MAX_VALUE_BYTES, TOKEN_RULE } from '../protocol/request.js';

export type PreemptResult = Extract<Reply, { op: 'preempt' }>;
export type AcquireResult = Extract<Reply, { op: 'acquire' }>;
export type ReleaseResult = Extract<Reply, { op: 'release' }>;
export type RenewResult = Extract<Reply, { op: 'renew' }>;
export type { CheckResult, ValidateResult };

/**
 * The locks a preempt, acquire or release names: one name, or an array of
 * distinct names (at most 16), taken and released all or nothing with one
 * token [LP-22]. An array of one name is that one lock.
 */
export type LockNames = string | readonly string[];

/**
 * The kind of hold a preempt or acquire asks for; neither: held alone.
 * Both go with one lock, and not with a value [LP-18, LP-22].
 */
export interface HoldKind {
  /** [LP-20] A shared hold: granted while the lock is free or held shared and no earlier waiter wants it alone. */
  shared?: boolean;
  /** [LP-21] One of at most `limit` holds (1 to 10000); every request on the lock names the same limit. */
  limit?: number;
}

/** The node answered `Error: …` [LP-12]; the connection is still usable. */
export class ServerError extends Error {
  override readonly name = 'ServerError';
  readonly code = 'ERR_DLOCK_SERVER';
}

/**
 * The connection closed before the reply came, or could not be made.
 * `code` is the system error's (ECONNREFUSED, ECONNRESET, …) when one
 * caused it, with that error as `cause`; else ERR_DLOCK_CLOSED.
 */
export class ConnectionClosedError extends Error {
  override readonly name = 'ConnectionClosedError';
  readonly code: string;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    const sys = (options?.cause as NodeJS.ErrnoException | undefined)?.code;
    this.code = typeof sys === 'string' ? sys : 'ERR_DLOCK_CLOSED';
  }
}

/** The node sent something this client does not understand. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly code = 'ERR_DLOCK_PROTOCOL';
}

/** keepLease could not get the lock before its timeout; `lock`: the one not available (with several, the first in the request's order [LP-22]). */
export class LockNotAcquiredError extends Error {
  override readonly name = 'LockNotAcquiredError';
  readonly code = 'ERR_DLOCK_NOT_ACQUIRED';
  constructor(
    readonly lock: string,
    readonly owner: ClientId | null,
  ) {
    super(`lock ${lock} not acquired (owner ${owner ?? 'none'})`);
  }
}

/** A kept lease ended without the holder releasing it. */
export class LockLostError extends Error {
  override readonly name = 'LockLostError';
  readonly code = 'ERR_DLOCK_LOST';
}

/** One node of the cluster. */
export interface NodeAddress {
  host?: string;
  port: number;
}

export interface ConnectOptions {
  port: number;
  host?: string;
  /** More nodes of the cluster: connect() tries them in turn after the first, and a reconnect goes round them all. */
  nodes?: NodeAddress[];
  /** Give up connecting after this many ms (default 5000). */
  connectTimeoutMs?: number;
  /** Sent as `auth <token>` right after the greeting [LP-15]; connect() fails with AuthError if refused. */
  authToken?: string | null;
  /** Connect over TLS; the server's certificate is verified unless told otherwise. */
  tls?: TlsClientOptions | null;
  /**
   * Survive a broken connection [LP-16]: the client asks for its secret
   * (`session`) at once, and when its connection breaks it connects again,
   * to the next node if need be, and resumes as the same client, so its
   * leases stay its own (session locks do not: they ended with the
   * connection). Requests in flight at the break reject with
   * ConnectionClosedError (their outcome is unknown); requests made while
   * it reconnects wait for it. It gives up after `giveUpAfterMs` (default
   * 30 s), or at once if the cluster no longer knows the client (it held no
   * lease), and is then closed for good (onClose). Default: off.
   */
  reconnect?: boolean | { giveUpAfterMs?: number };
}

export interface TlsClientOptions {
  /** Trust this CA (PEM), e.g. a self-signed server certificate; default: the system's CAs. */
  ca?: string | Buffer;
  /** The name to check the certificate against; default: the host. */
  servername?: string;
}

/** The node refused the auth token [LP-15]. */
export class AuthError extends Error {
  override readonly name = 'AuthError';
  readonly code = 'ERR_DLOCK_AUTH';
}

interface Waiting {
  resolve: (line: string) => void;
  reject: (err: Error) => void;
}

/** A request made while the client reconnects: sent once it has resumed. */
interface Held extends Waiting {
  line: string;
}

const RECONNECT_GIVE_UP_MS = 30_000;

/** Every node to try, the first one first. */
function addressesOf(opts: ConnectOptions): Array<{ host: string; port: number }> {
  return [{ host: opts.host ?? '127.0.0.1', port: opts.port }, ...(opts.nodes ?? []).map((n) => ({ host: n.host ?? '127.0.0.1', port: n.port }))];
}

function dial(addr: { host: string; port: number }, tls: TlsClientOptions | null): Socket {
  const socket: Socket =
    tls === null
      ? netConnect({ host: addr.host, port: addr.port })
      : tlsConnect({ host: addr.host, port: addr.port, ...(tls.ca === undefined ? {} : { ca: tls.ca }), ...(tls.servername === undefined ? {} : { servername: tls.servername }) });
  socket.setNoDelay(true);
  return socket;
}

export async function connect(opts: ConnectOptions): Promise<DlockClient> {
  if (opts.authToken !== undefined && opts.authToken !== null && !isTokenWord(opts.authToken)) throw new TypeError(`the auth token ${TOKEN_RULE}`);
  const addrs = addressesOf(opts);
  let last: Error | null = null;
  for (let i = 0; i < addrs.length; i++) {
    const client = new DlockClient(opts, i);
    try {
      await client.open();
      return client;
    } catch (err) {
      if (err instanceof AuthError || err instanceof TypeError) throw err;
      last = err as Error;
    }
  }
  throw last ?? new ConnectionClosedError('no node to connect to');
}

function lockArg(lock: string): string {
  if (typeof lock !== 'string') throw new TypeError(`a lock name is a string, got ${typeof lock}`);
  const bad = lockNameError(lock);
  if (bad !== null) throw new TypeError(bad);
  return lock;
}

/** A request's lock names as the line carries them [LP-22]: one, or 1 to 16 distinct names, each a lock name [LP-12]. */
function namesArg(lock: LockNames): string {
  if (typeof lock === 'string') return lockArg(lock);
  if (!Array.isArray(lock) || lock.length < 1 || lock.length > MAX_NAMES) {
    throw new RangeError(`name 1 to ${MAX_NAMES} locks, got ${Array.isArray(lock) ? lock.length : typeof lock}`);
  }
  const seen = new Set<string>();
  for (const name of lock) {
    lockArg(name);
    if (seen.has(name)) throw new TypeError(`lock ${JSON.stringify(name)} named twice: name each lock once [LP-22]`);
    seen.add(name);
  }
  return lock.join(' ');
}

/** The names of `lock`, as an array. */
const namesOf = (lock: LockNames): readonly string[] => (typeof lock === 'string' ? [lock] : lock);

/**
 * ` shared` [LP-20] or ` limit=<n>` [LP-21], or '' for a hold alone:
 * not both, with one lock only [LP-22], and not with a value [LP-18].
 */
function kindArg(lock: LockNames, opts: HoldKind & { value?: string | undefined }): string {
  if (opts.shared !== undefined && typeof opts.shared !== 'boolean') throw new TypeError(`shared must be true or false, got ${typeof opts.shared}`);
  const limit = opts.limit;
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1 && limit <= MAX_HOLDERS)) throw new RangeError(`limit must be a whole number from 1 to ${MAX_HOLDERS}, got ${limit}`);
  const shared = opts.shared === true;
  if (!shared && limit === undefined) return '';
  const kind = shared ? 'shared' : 'limit';
  if (shared && limit !== undefined) throw new TypeError('shared and limit name two kinds of hold: give one [LP-20, LP-21]');
  if (opts.value !== undefined) throw new TypeError(`a value is for a lock held by one client alone, not with ${kind} [LP-18]`);
  if (namesOf(lock).length > 1) throw new TypeError(`several locks are held alone: ${kind} goes with one lock [LP-22]`);
  return shared ? ' shared' : ` limit=${limit as number}`;
}

/** How long readLock, writeLock, semaphore, lockAll and elect hold their lease unless told (`ttl`), ms. */
export const DEFAULT_LEASE_TTL_MS = 10_000;

/**
 * [LP-18] A lock's value as the line carries it: whitespace, control
 * characters and `%` percent-encoded (so any string can be a value, and
 * check() gives it back as it was given); 1 to 1024 bytes once encoded.
 */
export function encodeValue(value: string): string {
  // eslint-disable-next-line no-control-regex
  const encoded = value.replace(/[%\s\u0000-\u001f\u007f-\u009f]/gu, (c) => encodeURIComponent(c));
  const bytes = Buffer.byteLength(encoded, 'utf8');
  if (bytes < 1 || bytes > MAX_VALUE_BYTES) throw new RangeError(`value must be 1 to ${MAX_VALUE_BYTES} bytes once percent-encoded, got ${bytes}`);
  return encoded;
}

/** A value as check() read it, percent-decoded (encodeValue's inverse); one set by other means that does not decode is given as it is. */
export function decodeValue(text: string): string {
  if (!text.includes('%')) return text;
  try {
    return decodeURIComponent(text);
  } catch (err) {
    if (err instanceof URIError) return text;
    throw err;
  }
}

const valueArg = (value: string | undefined): string => (value === undefined ? '' : ` value=${encodeValue(value)}`);

function msArg(name: string, value: number, min: number): string {
  if (!Number.isInteger(value) || value < min || value > 86_400_000) {
    throw new RangeError(`${name} must be a whole number of ms from ${min} to 86400000, got ${value}`);
  }
  return `${name}=${value}`;
}

export class DlockClient {
  /** Our client id and the node's name, from the greeting [LP-3] (after a reconnect: the id resumed, the new node). */
  id = 0;
  node = '';
  /** The greeting said ` role: leader`: a follower promoted to leader, whose name says follower. */
  leads = false;
  /** The node's name, with its role when the name does not say it: `follower-1 (leader)`. */
  get nodeLabel(): string {
    return this.leads ? `${this.node} (leader)` : this.node;
  }
  private socket: Socket | null = null;
  private splitter = new LineSplitter(MAX_LINE_BYTES * 4);
  private readonly waiting: Waiting[] = [];
  private greeted: ((line: string) => void) | null = null;
  private closedError: Error | null = null;
  private readonly closeListeners = new Set<(err: Error) => void>();
  private readonly reconnectListeners = new Set<() => void>();
  private resolveClosed: () => void = () => {};
  private readonly closedPromise: Promise<void>;
  /** [LP-16] this client's secret, when it may reconnect. */
  private secret: string | null = null;
  /** While reconnecting: the requests made meanwhile. */
  private held: Held[] | null = null;
  /** close() was called: a close is not a break to recover from. */
  private deliberate = false;
  private readonly addrs: Array<{ host: string; port: number }>;

  /** @internal use connect() */
  constructor(
    private readonly opts: ConnectOptions,
    /** The node of `addrs` this client is (or was last) connected to. */
    private at: number,
  ) {
    this.addrs = addressesOf(opts);
    this.closedPromise = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
  }

  /** @internal connect to addrs[at]: greeting, auth, and the secret if it may reconnect. */
  async open(): Promise<void> {
    const g = await this.handshake(this.addrs[this.at] as { host: string; port: number });
    this.id = g.client;
    this.node = g.node;
    this.leads = g.leads;
    if (this.opts.reconnect !== undefined && this.opts.reconnect !== false) {
      try {
        this.secret = (await this.session()).secret;
      } catch (err) {
        this.socket?.destroy();
        throw err;
      }
    }
  }

  /** A new socket to `addr`, greeted and authenticated; this client's socket from then on. */
  private async handshake(addr: { host: string; port: number }): Promise<{ client: ClientId; node: string; leads: boolean }> {
    const where = `${addr.host}:${addr.port}`;
    const socket = dial(addr, this.opts.tls ?? null);
    this.attach(socket);
    const timeoutMs = this.opts.connectTimeoutMs ?? 5000;
    const g = await new Promise<{ client: ClientId; node: string; leads: boolean }>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ConnectionClosedError(`no greeting from ${where} within ${timeoutMs} ms`));
      }, timeoutMs);
      const early = (): void => {
        clearTimeout(timer);
        const cause = this.socketError;
        reject(new ConnectionClosedError(`cannot connect to ${where}: ${cause?.message ?? 'connection closed'}`, cause === null ? undefined : { cause }));
      };
      socket.once('close', early);
      this.greeted = (line) => {
        clearTimeout(timer);
        socket.off('close', early);
        const parsed = parseGreeting(line);
        if (parsed === null) {
          socket.destroy();
          reject(new ProtocolError(`unexpected greeting from ${where}: ${JSON.stringify(line)}`));
          return;
        }
        resolve(parsed);
      };
    });
    const token = this.opts.authToken;
    if (token !== undefined && token !== null) {
      const reply = await this.send(`auth ${token}`);
      if (reply !== 'Auth Success') {
        socket.destroy();
        throw new AuthError(`${where} refused the auth token (${reply})`);
      }
    }
    return g;
  }

  /** The current socket's error, if it had one: the cause of its close. */
  private socketError: Error | null = null;

  /** Read replies from `socket`; a close of the current socket is a break (or the end). */
  private attach(socket: Socket): void {
    this.socket = socket;
    this.splitter = new LineSplitter(MAX_LINE_BYTES * 4);
    this.socketError = null;
    socket.on('data', (chunk: Buffer) => {
      if (socket !== this.socket) return;
      const status = this.splitter.push(chunk, (line) => this.onLine(line.toString('utf8')));
      if (status === 'too-long') socket.destroy(new ProtocolError('reply line too long'));
    });
    socket.on('error', (err) => {
      if (socket === this.socket) this.socketError = err;
    });
    socket.on('close', () => {
      if (socket !== this.socket) return;
      const cause = this.socketError;
      this.onBreak(cause === null ? new ConnectionClosedError('connection closed') : new ConnectionClosedError(`connection error: ${cause.message}`, { cause }));
    });
  }

  /** The current socket closed: what was in flight fails; then reconnect, or close for good. */
  private onBreak(err: Error): void {
    for (const w of this.waiting.splice(0)) w.reject(err);
    if (this.held !== null) return; // a reconnect's own handshake failed: the loop goes on
    if (this.deliberate || this.secret === null) {
      this.end(err);
      return;
    }
    this.held = [];
    void this.reconnect(err);
  }

  /** Closed for good: every request waiting fails, onClose listeners are told once. */
  private end(err: Error): void {
    if (this.closedError !== null) return;
    this.closedError = err;
    for (const h of this.held ?? []) h.reject(err);
    this.held = null;
    for (const l of this.closeListeners) l(err);
    this.resolveClosed();
  }

  /**
   * [LP-16] Connect again, going round the nodes from the next one, and
   * resume as this client; backing off from 50 ms to 1 s between tries.
   */
  private async reconnect(cause: Error): Promise<void> {
    const r = this.opts.reconnect;
    const giveUp = performance.now() + (typeof r === 'object' && r.giveUpAfterMs !== undefined ? r.giveUpAfterMs : RECONNECT_GIVE_UP_MS);
    const me = this.id;
    let pause = 50;
    let last: Error = cause;
    while (!this.deliberate && performance.now() < giveUp) {
      this.at = (this.at + 1) % this.addrs.length;
      try {
        const g = await this.handshake(this.addrs[this.at] as { host: string; port: number });
        const reply = await this.send(`resume ${me} ${this.secret as string}`);
        if (reply !== `Resume Success client_id=${me}`) {
          // The cluster no longer knows this client (it held no lease), or refused: nothing to resume.
          this.socket?.destroy();
          last = new ConnectionClosedError(`connection lost (${cause.message}), and client ${me} could not be resumed: ${reply}`);
          break;
        }
        this.node = g.node;
        this.leads = g.leads;
        const held = this.held ?? [];
        this.held = null;
        for (const h of held) this.write(h);
        for (const l of this.reconnectListeners) l();
        return;
      } catch (err) {
        if (err instanceof AuthError) {
          last = err;
          break;
        }
        last = err as Error;
        this.socket?.destroy();
        await new Promise((resolve) => setTimeout(resolve, pause));
        pause = Math.min(pause * 2, 1000);
      }
    }
    this.socket?.destroy();
    this.end(last instanceof ConnectionClosedError || last instanceof AuthError ? last : new ConnectionClosedError(`connection lost and not resumed: ${last.message}`));
  }

  private onLine(line: string): void {
    if (this.greeted !== null) {
      const g = this.greeted;
      this.greeted = null;
      g(line);
      return;
    }
    const w = this.waiting.shift();
    if (w === undefined) {
      this.socket?.destroy(new ProtocolError(`unsolicited reply: ${JSON.stringify(line)}`));
      return;
    }
    w.resolve(line);
  }

  /** Closed for good (a reconnecting client is not). */
  get closed(): boolean {
    return this.closedError !== null;
  }

  /**
   * Call `listener` once when the client is closed for good (at once if it
   * is): with the error that closed it, or null after close() (a deliberate
   * close is not an error).
   */
  onClose(listener: (err: Error | null) => void): () => void {
    const wrapped = (err: Error): void => listener(this.deliberate && this.quitOk ? null : err);
    if (this.closedError !== null) {
      wrapped(this.closedError);
      return () => {};
    }
    this.closeListeners.add(wrapped);
    return () => this.closeListeners.delete(wrapped);
  }

  /** close() said `quit` and was answered: the close that follows is the one asked for. */
  private quitOk = false;

  /** Call `listener` each time the client has reconnected and resumed [LP-16] (see ConnectOptions.reconnect). */
  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  /**
   * Send one request line as is and resolve with the reply line, `Error: …`
   * included. What `dlock client` uses; the typed methods are built on it.
   */
  raw(line: string): Promise<string> {
    if (/[\r\n]/.test(line)) return Promise.reject(new TypeError('a request is one line: no CR or LF'));
    if (line.trim() === '') return Promise.reject(new TypeError('a blank line is not a request and gets no reply'));
    if (this.closedError !== null) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      const h: Held = { line, resolve, reject };
      if (this.held !== null) this.held.push(h); // reconnecting: sent once resumed
      else this.write(h);
    });
  }

  /** A line on the current socket, past any reconnect's queue (the handshake's own requests). */
  private send(line: string): Promise<string> {
    return new Promise((resolve, reject) => this.write({ line, resolve, reject }));
  }

  private write(h: Held): void {
    this.waiting.push({ resolve: h.resolve, reject: h.reject });
    this.socket?.write(`${h.line}\n`);
  }

  private async request<T>(line: string, parse: (reply: string) => T | null): Promise<T> {
    const reply = await this.raw(line);
    if (reply.startsWith('Error: ')) throw new ServerError(reply.slice(7));
    const parsed = parse(reply);
    if (parsed === null) throw new ProtocolError(`unexpected reply to ${JSON.stringify(line)}: ${JSON.stringify(reply)}`);
    return parsed;
  }

  private lockReply<T extends Reply>(line: string, op: T['op']): Promise<T> {
    return this.request(line, (r) => {
      const p = parseLockReply(r);
      return p !== null && p.op === op ? (p as T) : null;
    });
  }

  // Argument errors reject (TypeError/RangeError) before anything is sent, so
  // no caller-supplied text can smuggle a second request onto the line.

  /**
   * Take the lock if it is free [LP-6]; with ttl it is a lease [LP-8]; with
   * value, the lock shows it while held [LP-18]. `shared` [LP-20] or
   * `limit` [LP-21]: a hold among several, each with its own token. An
   * array of names takes all of them or none, with one token [LP-22]; a
   * refusal then names the first not available (`lock`).
   */
  async preempt(lock: LockNames, opts: { ttl?: number; value?: string } & HoldKind = {}): Promise<PreemptResult> {
    const names = namesArg(lock);
    const kind = kindArg(lock, opts);
    const ttl = opts.ttl === undefined ? '' : ` ${msArg('ttl', opts.ttl, 1)}`;
    return this.lockReply(`preempt ${names}${kind}${ttl}${valueArg(opts.value)}`, 'preempt');
  }

  /**
   * Wait for the lock, first come first served [LP-9]; no timeout waits as
   * long as the connection lives. `value`, `shared`, `limit` and an array
   * of names as for preempt [LP-18, LP-20, LP-21, LP-22]: a waiter for
   * several locks holds none of them until it gets all.
   */
  async acquire(lock: LockNames, opts: { timeout?: number; ttl?: number; value?: string } & HoldKind = {}): Promise<AcquireResult> {
    const names = namesArg(lock);
    const kind = kindArg(lock, opts);
    const timeout = opts.timeout === undefined ? '' : ` ${msArg('timeout', opts.timeout, 0)}`;
    const ttl = opts.ttl === undefined ? '' : ` ${msArg('ttl', opts.ttl, 1)}`;
    return this.lockReply(`acquire ${names}${kind}${timeout}${ttl}${valueArg(opts.value)}`, 'acquire');
  }

  /** Release this client's hold [LP-10, LP-20]; an array of names releases all of them, or none and names the first not held (`lock`) [LP-22]. */
  async release(lock: LockNames): Promise<ReleaseResult> {
    return this.lockReply(`release ${namesArg(lock)}`, 'release');
  }

  /** [LP-8, LP-20] Renew this client's own hold of one lock (locks taken together [LP-22] are renewed one name at a time). */
  async renew(lock: string, ttl: number): Promise<RenewResult> {
    return this.lockReply(`renew ${lockArg(lock)} ${msArg('ttl', ttl, 1)}`, 'renew');
  }

  /** The lock as this node's replica holds it [LP-11]; `value` percent-decoded [LP-18]. */
  async check(lock: string): Promise<CheckResult> {
    return this.request(`check ${lockArg(lock)}`, (line) => {
      const c = parseCheck(line);
      if (c !== null && c.held && c.value !== undefined) c.value = decodeValue(c.value);
      return c;
    });
  }

  /**
   * Whether `token` is the current grant's [LP-7], from this node's replica
   * [LP-11]. With `fresh`, a `sync` goes first on the same line (pipelined:
   * one round trip to whoever orders writes, not two), so the answer
   * reflects every write answered anywhere before it was sent [LP-17]: a
   * resource turning away late writers should ask so.
   */
  async validate(lock: string, token: number, opts: { fresh?: boolean } = {}): Promise<ValidateResult> {
    if (!Number.isSafeInteger(token) || token < 1) throw new RangeError(`token must be a positive integer, got ${token}`);
    const line = `validate ${lockArg(lock)} ${token}`;
    if (opts.fresh !== true) return this.request(line, parseValidate);
    const [, answer] = await Promise.all([this.sync(), this.request(line, parseValidate)]);
    return answer;
  }

  /**
   * The states of `lock` as they change [LP-19]: its state now, then each
   * new one (a new holder, or free) as this node commits it. States, not
   * events: a grant and release between two may go unseen. Each step is a
   * `watch … free|token=<t>` naming the state last yielded, so no change
   * between two steps is missed. While a watch waits, this client's later
   * requests wait behind it on the line: give a watch a client of its own.
   * `signal` ends it within WATCH_SLICE_MS (the protocol takes a watch
   * back only by its timeout), as does breaking out of the loop.
   */
  async *watch(lock: string, opts: { signal?: AbortSignal } = {}): AsyncGenerator<CheckResult, void, undefined> {
    const name = lockArg(lock);
    let last = await this.check(name);
    yield last;
    for (;;) {
      opts.signal?.throwIfAborted();
      const named = last.held ? `token=${last.token}` : 'free';
      const next = await this.request(`watch ${name} ${named} timeout=${WATCH_SLICE_MS}`, (r) => {
        if (r === 'WatchLock Timeout') return 'timeout' as const;
        if (!r.startsWith('WatchLock:')) return null;
        const c = parseCheck(`CheckLock:${r.slice('WatchLock:'.length)}`);
        if (c !== null && c.held && c.value !== undefined) c.value = decodeValue(c.value);
        return c;
      });
      if (next === 'timeout') continue;
      last = next;
      yield last;
    }
  }

  /**
   * Campaign for leadership of `name`, as etcd's `Campaign` and Curator's
   * `LeaderLatch`: wait until this client holds it as a lease (kept
   * renewed), with `value` for the others to see (LP-18: its address, say).
   * The lease is the leadership: its `signal` aborts and `onLost` is told
   * when it is lost; `release()` resigns. Options as keepLease's (`ttl`
   * defaults to 10 s).
   */
  async elect(name: string, opts: Omit<KeepLeaseOptions, 'ttl'> & { ttl?: number; value: string }): Promise<KeptLease> {
    return this.keepLease(name, { ...opts, ttl: opts.ttl ?? DEFAULT_LEASE_TTL_MS });
  }

  /**
   * [LP-20] A shared hold of `name` as a kept lease (keepLease): waits
   * while another client holds it alone, or an earlier waiter wants it
   * alone; any number of clients hold it shared at once, each with its own
   * token. Options as keepLease's, `ttl` defaulting to
   * DEFAULT_LEASE_TTL_MS (10 s); no value [LP-18].
   */
  async readLock(name: string, opts: Omit<HoldOptions, 'value'> = {}): Promise<KeptLease> {
    return this.keepLease(name, { ...opts, ttl: opts.ttl ?? DEFAULT_LEASE_TTL_MS, shared: true });
  }

  /**
   * [LP-20] `name` held by this client alone, as a kept lease: waits until
   * no one holds it, shared or alone. Readers that come after it wait
   * behind it. keepLease with `ttl` defaulting to 10 s.
   */
  async writeLock(name: string, opts: HoldOptions = {}): Promise<KeptLease> {
    return this.keepLease(name, { ...opts, ttl: opts.ttl ?? DEFAULT_LEASE_TTL_MS });
  }

  /**
   * [LP-21] One of at most `limit` holds of `name` (1 to 10000), as a kept
   * lease with its own token: waits while `limit` clients hold it. Every
   * holder and waiter of `name` names the same limit (another gets
   * ServerError). Options as readLock's.
   */
  async semaphore(name: string, limit: number, opts: Omit<HoldOptions, 'value'> = {}): Promise<KeptLease> {
    return this.keepLease(name, { ...opts, ttl: opts.ttl ?? DEFAULT_LEASE_TTL_MS, limit });
  }

  /**
   * [LP-22] Every lock of `names` (1 to 16, distinct), all or nothing, with
   * one token, as one kept lease: waits holding none of them until it can
   * have all, which can neither deadlock nor be starved. `value`, if
   * given, is each lock's [LP-18]. keepLease with `ttl` defaulting to 10 s;
   * a LockNotAcquiredError names the first lock not available.
   */
  async lockAll(names: readonly string[], opts: HoldOptions = {}): Promise<KeptLease> {
    if (!Array.isArray(names)) throw new TypeError('lockAll takes an array of lock names');
    return this.keepLease(names, { ...opts, ttl: opts.ttl ?? DEFAULT_LEASE_TTL_MS });
  }

  /**
   * Follow who leads `name` and their value, as etcd's `Observe`: the
   * leader now, then each new one (null: none), from watch() [LP-19]. As
   * with watch(), give it a client of its own.
   */
  async *observe(name: string, opts: { signal?: AbortSignal } = {}): AsyncGenerator<Leader, void, undefined> {
    for await (const s of this.watch(name, opts)) yield s.held ? { leader: s.owner, token: s.token, value: s.value ?? null } : { leader: null, token: null, value: null };
  }

  /**
   * A read barrier [LP-17]: resolves once this node has applied every write
   * committed anywhere in the cluster before it read the `sync`; every
   * later reply on this client reflects at least those writes. `sync()`
   * then `check()` is a linearizable read. Rejects with ServerError when
   * the node cannot reach whoever orders writes.
   */
  async sync(): Promise<void> {
    await this.request('sync', (r) => (r === SYNC_SUCCESS ? true : null));
  }

  async ping(): Promise<void> {
    await this.request('ping', (r) => (r === 'PONG' ? true : null));
  }

  async whoami(): Promise<{ client: ClientId; node: string; leads: boolean }> {
    return this.request('whoami', parseGreeting);
  }

  async help(): Promise<string> {
    return this.request('help', (r) => (r.startsWith('Help: ') ? r.slice(6) : null));
  }

  /** Say `quit`, wait for `Bye` and the close. Session locks are released [LP-8]. */
  async close(): Promise<void> {
    this.deliberate = true;
    if (this.closedError === null && this.held === null) {
      this.quitOk = true;
      try {
        await this.raw('quit');
      } catch (err) {
        if (!(err instanceof ConnectionClosedError)) throw err;
      }
    }
    if (this.held !== null) this.end(new ConnectionClosedError('closed while reconnecting'));
    await this.closedPromise;
  }

  /** Drop the connection without goodbye (a reconnecting client reconnects: that is what it is for). */
  destroy(): void {
    this.socket?.destroy();
  }

  /** Close for good, without goodbye: no reconnect (onClose is told null: it was asked for). */
  abort(): void {
    this.deliberate = true;
    this.quitOk = true;
    this.socket?.destroy();
  }

  /** `Symbol.asyncDispose`: `await using c = await connect(…)` closes it at the end of the block. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.closed) await this.close();
  }

  /**
   * Run `fn` holding `lock` as a lease kept by keepLease (same options),
   * and release it in `finally`, whatever `fn` does. `fn` gets the fencing
   * token (pass it to what you write to) and an AbortSignal that fires if
   * the lock is lost while `fn` runs (its reason: the LockLostError):
   * stop writing then. Resolves with what `fn` resolves with. Every kind
   * keepLease takes: `shared` [LP-20], `limit` [LP-21], an array of names
   * [LP-22].
   */
  async withLock<T>(lock: LockNames, fn: (held: { token: number; signal: AbortSignal }) => Promise<T> | T, opts: KeepLeaseOptions): Promise<T> {
    const lease = await this.keepLease(lock, opts);
    try {
      return await fn({ token: lease.token, signal: lease.signal });
    } finally {
      if (!lease.signal.aborted) await lease.release();
    }
  }

  /**
   * [LP-16] This connection's secret, to resume it as this client from
   * another connection. `ttlMs`: the client also stays resumable that long
   * after its connection ends while it holds nothing (`session ttl=`).
   */
  async session(opts: { ttlMs?: number } = {}): Promise<{ client: ClientId; secret: string }> {
    const ttl = opts.ttlMs;
    if (ttl !== undefined && !(Number.isSafeInteger(ttl) && ttl >= 1)) throw new RangeError(`ttlMs must be a positive whole number of ms, got ${ttl}`);
    return this.request(ttl === undefined ? 'session' : `session ttl=${ttl}`, (r) => {
      const m = /^Session client_id=(\d+) secret=(\S+)$/.exec(r);
      return m === null ? null : { client: Number(m[1]), secret: m[2] as string };
    });
  }

  /** [LP-16] Become `client` again (this connection's first write); false when the pair is refused. */
  async resume(client: ClientId, secret: string): Promise<boolean> {
    if (!Number.isSafeInteger(client) || client < 1) throw new RangeError(`client must be a positive integer, got ${client}`);
    if (!isTokenWord(secret)) throw new TypeError('the secret must be one word');
    const ok = await this.request(`resume ${client} ${secret}`, (r) => (r === `Resume Success client_id=${client}` ? true : r === 'Resume Failed' ? false : null));
    if (ok) this.id = client;
    return ok;
  }

  /**
   * Hold `lock` as a lease and keep renewing it: acquire with `ttl` (waiting
   * up to `timeout` ms, default forever), then renew every ttl/3. Any kind
   * of hold: alone, `shared` [LP-20], one of `limit` [LP-21], or an array of
   * names, all or nothing with one token [LP-22] (each renewed by name,
   * all released by one `release`). The lease is
   * lost when a renew is refused (someone else holds it, or it expired),
   * when it cannot be renewed before its end, or when the client closes for
   * good; `onLost` is then called once and `lost` resolves. With
   * `reconnect` (ConnectOptions), a broken connection is not a loss: the
   * client reconnects and resumes [LP-16], and renewing goes on, as long as
   * that happens before the lease's end (counted from when the last renew
   * that succeeded was sent, so never later than the cluster's).
   */
  async keepLease(lock: LockNames, opts: KeepLeaseOptions): Promise<KeptLease> {
    // Checked before anything is sent, also with retries.
    namesArg(lock);
    kindArg(lock, opts);
    const retries = opts.retry?.retries ?? 0;
    const delayMs = opts.retry?.delayMs ?? 200;
    const jitterMs = opts.retry?.jitterMs ?? Math.floor(delayMs / 2);
    for (let attempt = 0; ; attempt++) {
      opts.signal?.throwIfAborted();
      const sent = performance.now();
      const got = await this.acquireUntil(lock, opts);
      if (got.ok) return new KeptLease(this, lock, got.token, opts.ttl, sent, opts.onLost);
      if (attempt >= retries) throw new LockNotAcquiredError(got.lock ?? (namesOf(lock)[0] as string), got.owner);
      await pause(delayMs + Math.floor(Math.random() * (jitterMs + 1)), opts.signal);
    }
  }

  /**
   * acquire, cancellable by `signal`. The protocol has no way to take back
   * a waiting acquire but closing the connection, so with a signal the wait
   * is made of acquires of at most CANCEL_SLICE_MS each: an abort takes
   * effect within that, and each slice queues again, behind those that came
   * meanwhile (without a signal the wait keeps its place: LP-9).
   */
  private async acquireUntil(lock: LockNames, opts: KeepLeaseOptions): Promise<AcquireResult> {
    const { ttl, timeout, signal } = opts;
    const v = { ...(opts.value === undefined ? {} : { value: opts.value }), ...(opts.shared === undefined ? {} : { shared: opts.shared }), ...(opts.limit === undefined ? {} : { limit: opts.limit }) };
    if (signal === undefined) return this.acquire(lock, timeout === undefined ? { ttl, ...v } : { ttl, timeout, ...v });
    const until = timeout === undefined ? Infinity : performance.now() + timeout;
    for (;;) {
      signal.throwIfAborted();
      const slice = Math.max(0, Math.min(CANCEL_SLICE_MS, until - performance.now()));
      const got = await this.acquire(lock, { ttl, timeout: slice, ...v });
      if (got.ok || performance.now() >= until) return got;
    }
  }
}

/** The longest a cancellable acquire waits before it asks again (see acquireUntil). */
const CANCEL_SLICE_MS = 1000;
/** The longest one step of watch() waits before it asks again, so that an abort takes effect (see watch). */
const WATCH_SLICE_MS = 1000;

/** Wait `ms`, or reject with the signal's reason when it aborts first. */
function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Who leads a name (observe()): the holder's client id, its token and value; all null when none does. */
export type Leader = { leader: ClientId; token: number; value: string | null } | { leader: null; token: null; value: null };

export interface KeepLeaseOptions extends HoldKind {
  /** Lease length, ms; renewed every third of it. */
  ttl: number;
  /** ms to wait for the lock (each try); absent: as long as it takes [LP-9]. */
  timeout?: number;
  /** Try again this many times after a try that did not get it, `delayMs` (+ up to `jitterMs` at random) apart. Default: no retry. */
  retry?: { retries: number; delayMs?: number; jitterMs?: number };
  /** Cancels the wait (rejects with its reason); see acquireUntil for what that costs the wait's place. */
  signal?: AbortSignal;
  /** The lock's value while held [LP-18]: e.g. the address of the process that leads. */
  value?: string;
  /** Told once if the lease is lost (LockLostError); also KeptLease.lost and KeptLease.signal. */
  onLost?: (err: LockLostError) => void;
}

/** Options of readLock, writeLock, semaphore and lockAll: keepLease's, the kind set by the method, `ttl` defaulting to DEFAULT_LEASE_TTL_MS. */
export type HoldOptions = Omit<KeepLeaseOptions, 'ttl' | 'shared' | 'limit'> & { ttl?: number };

/**
 * A lease kept renewed (keepLease and the methods built on it): of one
 * lock held alone, shared [LP-20] or as one of a semaphore's holds
 * [LP-21], or of several locks held together with one token [LP-22].
 */
export class KeptLease {
  /** The first (or only) lock of the lease. */
  readonly lock: string;
  /** Every lock of the lease, in the request's order [LP-22]. */
  readonly locks: readonly string[];
  /** The locks as messages name them. */
  private readonly named: string;
  private readonly aborter = new AbortController();
  /** Aborts, with the LockLostError as its reason, when the lease is lost. */
  readonly signal: AbortSignal = this.aborter.signal;
  private timer: NodeJS.Timeout | null = null;
  /** Fires at the lease's end as this client knows it, unless a renew succeeds first. */
  private endTimer: NodeJS.Timeout | null = null;
  private done = false;
  private renewing = false;
  /** The release made when the lease ended (lost, or release()): what release() answers from then on. */
  private released: Promise<ReleaseResult> | null = null;
  private settle: (err: LockLostError | null) => void = () => {};
  private readonly unlisten: () => void;
  private readonly unlistenReconnect: () => void;
  /** Resolves with the reason when the lease is lost, or null after release(). */
  readonly lost: Promise<LockLostError | null>;

  constructor(
    private readonly client: DlockClient,
    locks: LockNames,
    readonly token: number,
    private readonly ttl: number,
    /** When the request that set the lease's current end was sent (ms since the epoch). */
    since: number,
    private readonly onLost?: (err: LockLostError) => void,
  ) {
    this.locks = [...namesOf(locks)];
    this.lock = this.locks[0] as string;
    this.named = this.locks.join(' ');
    this.lost = new Promise((resolve) => {
      this.settle = resolve;
    });
    this.unlisten = client.onClose((err) => this.fail(err === null ? 'the client was closed' : `connection closed: ${err.message}`));
    // Resumed after a break: renew at once, the lease may be near its end.
    this.unlistenReconnect = client.onReconnect(() => {
      if (this.timer !== null) clearTimeout(this.timer);
      this.timer = null;
      void this.renew();
    });
    if (performance.now() - since < this.ttl / 3) {
      this.armEnd(since);
      this.schedule();
    } else {
      // The acquire waited in the queue: granted at some time since it was
      // sent, unknown here, so its end is not known either. Renewing now
      // sets it from now (the end timer is armed when that succeeds).
      void this.renew();
    }
  }

  private schedule(): void {
    this.timer = setTimeout(() => void this.renew(), Math.max(1, Math.floor(this.ttl / 3)));
  }

  private armEnd(since: number): void {
    if (this.endTimer !== null) clearTimeout(this.endTimer);
    this.endTimer = setTimeout(() => this.fail(`not renewed before its end (${this.ttl} ms after the last renew)`), Math.max(0, since + this.ttl - performance.now()));
  }

  private async renew(): Promise<void> {
    if (this.done || this.renewing) return;
    this.renewing = true;
    const sent = performance.now();
    let rs: RenewResult[];
    try {
      // `renew` takes one name: each lock of the lease, pipelined [LP-2].
      rs = await Promise.all(this.locks.map((lock) => this.client.renew(lock, this.ttl)));
    } catch (err) {
      this.renewing = false;
      // A break: with reconnect on, the client resumes and onReconnect renews; else it closes (onClose).
      if (err instanceof ConnectionClosedError && !this.client.closed) return;
      this.fail(`renew failed: ${(err as Error).message}`);
      return;
    }
    this.renewing = false;
    if (this.done) {
      // A renew that landed after the lease was given up (reported lost, or released): release it again.
      if (rs.some((r) => r.ok && r.token === this.token)) void this.releaseQuietly();
      return;
    }
    // Each lock's renew answers this lease's token, or the lease is lost [LP-7, LP-22].
    const i = rs.findIndex((r) => !r.ok || r.token !== this.token);
    const r = rs[i];
    if (r === undefined) {
      this.armEnd(sent);
      this.schedule();
    } else if (!r.ok) this.fail(`renew refused: lock ${this.locks[i] as string} is held by ${r.owner ?? 'nobody'}`);
    else this.fail(`lock ${this.locks[i] as string} was granted again (token ${r.token}, ours ${this.token})`);
  }

  private fail(reason: string): void {
    if (this.done) return;
    this.finish();
    const err = new LockLostError(`lease on ${this.named} lost: ${reason}`);
    // Lost as far as the caller knows: renew no more, and release it if the
    // cluster still holds it for this client (a release of a lock another
    // holds changes nothing [LP-10]).
    this.released = this.releaseQuietly();
    this.aborter.abort(err);
    this.onLost?.(err);
    this.settle(err);
  }

  /**
   * Release, answering `ok: false` when it cannot be sent (the client
   * closed, or the node answered an error). Several locks are released one
   * name at a time, so that those still this client's are freed whatever
   * became of the others (a release of a lock another holds changes
   * nothing [LP-10]); the answer is the first refusal, with its `lock`.
   */
  private releaseQuietly(): Promise<ReleaseResult> {
    const notSent: ReleaseResult = { op: 'release', ok: false, owner: null };
    if (this.client.closed) return Promise.resolve(notSent);
    const one = (lock: string): Promise<ReleaseResult> =>
      this.client.release(lock).catch((err: unknown) => {
        if (err instanceof ConnectionClosedError || err instanceof ServerError) return notSent;
        throw err;
      });
    const p =
      this.locks.length === 1
        ? one(this.lock)
        : Promise.all(this.locks.map(one)).then((rs): ReleaseResult => {
            const i = rs.findIndex((r) => !r.ok);
            const r = rs[i];
            return r === undefined ? { op: 'release', ok: true } : r.ok ? r : { ...r, lock: this.locks[i] as string };
          });
    // Made without a caller waiting: any other error is for release(), which returns this promise, not an unhandled rejection.
    p.catch((err: unknown) => void err);
    return p;
  }

  private finish(): void {
    this.done = true;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.endTimer !== null) clearTimeout(this.endTimer);
    this.unlisten();
    this.unlistenReconnect();
  }

  /**
   * Stop renewing and release the lock, or every lock of the lease with
   * one `release` [LP-22]. On a lease already lost (or released) it
   * resolves with what the release made then answered, and never throws
   * for that: a `finally` can always call it. A release of several that is
   * refused (one of them no longer this client's, its `lock` named) changes
   * nothing [LP-22]: the others are then released one at a time.
   */
  async release(): Promise<ReleaseResult> {
    if (this.released !== null) return this.released;
    this.finish();
    this.settle(null);
    this.released = this.client.release(this.locks).then((r) => {
      if (!r.ok && this.locks.length > 1) void this.releaseQuietly();
      return r;
    });
    return this.released;
  }

  /** `await using lease = await c.keepLease(…)`: released at the end of the block (if still held). */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.done) await this.release();
  }
}
