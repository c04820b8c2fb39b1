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
import { parseCheck, parseGreeting, parseLockReply, parseValidate } from '../protocol/reply.js';
import { isTokenWord, lockNameError, MAX_LINE_BYTES, TOKEN_RULE } from '../protocol/request.js';

export type PreemptResult = Extract<Reply, { op: 'preempt' }>;
export type AcquireResult = Extract<Reply, { op: 'acquire' }>;
export type ReleaseResult = Extract<Reply, { op: 'release' }>;
export type RenewResult = Extract<Reply, { op: 'renew' }>;
export type { CheckResult, ValidateResult };

/** The node answered `Error: …` [LP-12]; the connection is still usable. */
export class ServerError extends Error {
  override readonly name = 'ServerError';
  readonly code = 'ERR_DLOCK_SERVER';
}

/** The connection closed before the reply came. */
export class ConnectionClosedError extends Error {
  override readonly name = 'ConnectionClosedError';
  readonly code = 'ERR_DLOCK_CLOSED';
}

/** The node sent something this client does not understand. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly code = 'ERR_DLOCK_PROTOCOL';
}

/** keepLease could not get the lock before its timeout. */
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

export interface ConnectOptions {
  port: number;
  host?: string;
  /** Give up connecting after this many ms (default 5000). */
  connectTimeoutMs?: number;
  /** Sent as `auth <token>` right after the greeting [LP-15]; connect() fails with AuthError if refused. */
  authToken?: string | null;
  /** Connect over TLS (issue 6 §4); the server's certificate is verified unless told otherwise. */
  tls?: TlsClientOptions | null;
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

export async function connect(opts: ConnectOptions): Promise<DlockClient> {
  const host = opts.host ?? '127.0.0.1';
  const tls = opts.tls ?? null;
  const socket: Socket =
    tls === null
      ? netConnect({ host, port: opts.port })
      : tlsConnect({ host, port: opts.port, ...(tls.ca === undefined ? {} : { ca: tls.ca }), ...(tls.servername === undefined ? {} : { servername: tls.servername }) });
  socket.setNoDelay(true);
  const client = new DlockClient(socket);
  await client.ready(opts.connectTimeoutMs ?? 5000, `${host}:${opts.port}`);
  if (opts.authToken !== undefined && opts.authToken !== null) {
    if (!isTokenWord(opts.authToken)) {
      await client.close();
      throw new TypeError(`the auth token ${TOKEN_RULE}`);
    }
    const reply = await client.raw(`auth ${opts.authToken}`);
    if (reply !== 'Auth Success') {
      await client.close();
      throw new AuthError(`${host}:${opts.port} refused the auth token (${reply})`);
    }
  }
  return client;
}

function lockArg(lock: string): string {
  const bad = lockNameError(lock);
  if (bad !== null) throw new TypeError(bad);
  return lock;
}

function msArg(name: string, value: number, min: number): string {
  if (!Number.isInteger(value) || value < min || value > 86_400_000) {
    throw new RangeError(`${name} must be a whole number of ms from ${min} to 86400000, got ${value}`);
  }
  return `${name}=${value}`;
}

export class DlockClient {
  /** Our client id and the node's name, from the greeting [LP-3]. */
  id = 0;
  node = '';
  /** The greeting said ` role: leader`: a follower promoted to leader, whose name says follower. */
  leads = false;
  /** The node's name, with its role when the name does not say it: `follower-1 (leader)`. */
  get nodeLabel(): string {
    return this.leads ? `${this.node} (leader)` : this.node;
  }
  private readonly splitter = new LineSplitter(MAX_LINE_BYTES * 4);
  private readonly waiting: Waiting[] = [];
  private greeted: ((line: string) => void) | null = null;
  private closedError: Error | null = null;
  private readonly closeListeners = new Set<(err: Error) => void>();
  private readonly closedPromise: Promise<void>;

  /** @internal use connect() */
  constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      const status = this.splitter.push(chunk, (line) => this.onLine(line.toString('utf8')));
      if (status === 'too-long') this.socket.destroy(new ProtocolError('reply line too long'));
    });
    this.closedPromise = new Promise((resolve) => {
      socket.on('error', (err) => {
        this.closedError ??= new ConnectionClosedError(`connection error: ${err.message}`);
      });
      socket.on('close', () => {
        const err = this.closedError ?? new ConnectionClosedError('connection closed');
        this.closedError = err;
        for (const w of this.waiting.splice(0)) w.reject(err);
        for (const l of this.closeListeners) l(err);
        resolve();
      });
    });
  }

  /** @internal wait for the greeting */
  ready(timeoutMs: number, where: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.socket.destroy();
        reject(new ConnectionClosedError(`no greeting from ${where} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.closeListeners.add((err) => {
        clearTimeout(timer);
        reject(new ConnectionClosedError(`cannot connect to ${where}: ${err.message}`));
      });
      this.greeted = (line) => {
        clearTimeout(timer);
        const g = parseGreeting(line);
        if (g === null) {
          this.socket.destroy();
          reject(new ProtocolError(`unexpected greeting from ${where}: ${JSON.stringify(line)}`));
          return;
        }
        this.id = g.client;
        this.node = g.node;
        this.leads = g.leads;
        resolve();
      };
    });
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
      this.socket.destroy(new ProtocolError(`unsolicited reply: ${JSON.stringify(line)}`));
      return;
    }
    w.resolve(line);
  }

  get closed(): boolean {
    return this.closedError !== null;
  }

  /** Call `listener` once when the connection closes (at once if it has). */
  onClose(listener: (err: Error) => void): () => void {
    if (this.closedError !== null) {
      listener(this.closedError);
      return () => {};
    }
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
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
      this.waiting.push({ resolve, reject });
      this.socket.write(`${line}\n`);
    });
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

  /** Take the lock if it is free [LP-6]; with ttl it is a lease [LP-8]. */
  async preempt(lock: string, opts: { ttl?: number } = {}): Promise<PreemptResult> {
    const ttl = opts.ttl === undefined ? '' : ` ${msArg('ttl', opts.ttl, 1)}`;
    return this.lockReply(`preempt ${lockArg(lock)}${ttl}`, 'preempt');
  }

  /** Wait for the lock, first come first served [LP-9]; no timeout waits as long as the connection lives. */
  async acquire(lock: string, opts: { timeout?: number; ttl?: number } = {}): Promise<AcquireResult> {
    const timeout = opts.timeout === undefined ? '' : ` ${msArg('timeout', opts.timeout, 0)}`;
    const ttl = opts.ttl === undefined ? '' : ` ${msArg('ttl', opts.ttl, 1)}`;
    return this.lockReply(`acquire ${lockArg(lock)}${timeout}${ttl}`, 'acquire');
  }

  async release(lock: string): Promise<ReleaseResult> {
    return this.lockReply(`release ${lockArg(lock)}`, 'release');
  }

  async renew(lock: string, ttl: number): Promise<RenewResult> {
    return this.lockReply(`renew ${lockArg(lock)} ${msArg('ttl', ttl, 1)}`, 'renew');
  }

  async check(lock: string): Promise<CheckResult> {
    return this.request(`check ${lockArg(lock)}`, parseCheck);
  }

  async validate(lock: string, token: number): Promise<ValidateResult> {
    if (!Number.isSafeInteger(token) || token < 1) throw new RangeError(`token must be a positive integer, got ${token}`);
    return this.request(`validate ${lockArg(lock)} ${token}`, parseValidate);
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
    if (this.closedError === null) {
      try {
        await this.raw('quit');
      } catch (err) {
        if (!(err instanceof ConnectionClosedError)) throw err;
      }
    }
    await this.closedPromise;
  }

  /** Drop the connection without goodbye. */
  destroy(): void {
    this.socket.destroy();
  }

  /**
   * Hold `lock` as a lease and keep renewing it: acquire with `ttl` (waiting
   * up to `timeout` ms, default forever), then renew every ttl/3. The lease is
   * lost when a renew fails (someone else holds it, or it expired) or the
   * connection closes; `onLost` is then called once and `lost` resolves.
   */
  async keepLease(lock: string, opts: { ttl: number; timeout?: number; onLost?: (err: LockLostError) => void }): Promise<KeptLease> {
    const got = await this.acquire(lock, opts.timeout === undefined ? { ttl: opts.ttl } : { ttl: opts.ttl, timeout: opts.timeout });
    if (!got.ok) throw new LockNotAcquiredError(lock, got.owner);
    return new KeptLease(this, lock, got.token, opts.ttl, opts.onLost);
  }
}

export class KeptLease {
  private timer: NodeJS.Timeout | null = null;
  private done = false;
  private settle: (err: LockLostError | null) => void = () => {};
  private readonly unlisten: () => void;
  /** Resolves with the reason when the lease is lost, or null after release(). */
  readonly lost: Promise<LockLostError | null>;

  constructor(
    private readonly client: DlockClient,
    readonly lock: string,
    readonly token: number,
    private readonly ttl: number,
    private readonly onLost?: (err: LockLostError) => void,
  ) {
    this.lost = new Promise((resolve) => {
      this.settle = resolve;
    });
    this.unlisten = client.onClose((err) => this.fail(`connection closed: ${err.message}`));
    this.schedule();
  }

  private schedule(): void {
    this.timer = setTimeout(() => void this.renew(), Math.max(1, Math.floor(this.ttl / 3)));
  }

  private async renew(): Promise<void> {
    if (this.done) return;
    let r: RenewResult;
    try {
      r = await this.client.renew(this.lock, this.ttl);
    } catch (err) {
      this.fail(`renew failed: ${(err as Error).message}`);
      return;
    }
    if (this.done) return;
    if (!r.ok) this.fail(`renew refused: lock ${this.lock} is held by ${r.owner ?? 'nobody'}`);
    else if (r.token !== this.token) this.fail(`lock ${this.lock} was granted again (token ${r.token}, ours ${this.token})`);
    else this.schedule();
  }

  private fail(reason: string): void {
    if (this.done) return;
    this.finish();
    const err = new LockLostError(`lease on ${this.lock} lost: ${reason}`);
    this.onLost?.(err);
    this.settle(err);
  }

  private finish(): void {
    this.done = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.unlisten();
  }

  /** Stop renewing and release the lock. */
  async release(): Promise<ReleaseResult> {
    if (this.done) throw new LockLostError(`lease on ${this.lock} is no longer held`);
    this.finish();
    this.settle(null);
    return this.client.release(this.lock);
  }
}
