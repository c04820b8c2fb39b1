/**
 * The auth token check [LP-15].
 *
 * The token is compared in constant time: both sides are hashed (SHA-256)
 * first, so the comparison neither stops at the first differing byte nor
 * leaks the token's length, and timingSafeEqual compares the digests.
 * After MAX_AUTH_FAILURES wrong tokens a connection is closed, so guessing
 * costs a connection (and an id) per few tries.
 *
 * Threading: any; the gate holds only the token's digest.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isTokenWord, TOKEN_RULE } from '../protocol/request.js';

export const MAX_AUTH_FAILURES = 3;

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

export class AuthGate {
  private readonly want: Buffer;

  constructor(token: string) {
    if (!isTokenWord(token)) throw new AuthTokenError(`the auth token ${TOKEN_RULE}`);
    this.want = digest(token);
  }

  check(candidate: string): boolean {
    return timingSafeEqual(digest(candidate), this.want);
  }
}

/** A token that clients could never send (empty, or with whitespace). */
export class AuthTokenError extends Error {
  override readonly name = 'AuthTokenError';
  readonly code = 'ERR_AUTH_TOKEN';
}

/** How many failed attempts one source may make per window before it is refused without a check. */
export const SOURCE_FAILURES_PER_WINDOW = 10;
/** The window of AuthThrottle, ms (monotonic). */
export const SOURCE_WINDOW_MS = 60_000;
/** Sources remembered at most: past this the oldest window is forgotten (a flood of addresses costs bounded memory). */
const MAX_SOURCES = 10_000;

/** What AuthThrottle.failed() tells the caller to do. */
export interface Failure {
  /** Failures from this source in the current window, this one included. */
  count: number;
  /** The source may try no more until its window ends. */
  blocked: boolean;
  /**
   * Log a line for this failure: the first of a window, and the one that
   * blocks. Other failures are counted into `unlogged` of the next line.
   */
  log: boolean;
  /** Failures since the last line logged for this source that no line showed. */
  unlogged: number;
}

/**
 * Failed authentications per source address, across connections [LP-15]:
 * a connection is closed after MAX_AUTH_FAILURES, and a source that fails
 * `perWindow` times within `windowMs` is refused without a check until
 * its window ends, however many connections it opens. So guessing a
 * token costs `windowMs / perWindow` per guess per source address, and a
 * flood of failures writes a few log lines per source per window, not one
 * per guess.
 *
 * Used for the client port's `auth` and `resume`, the node-link port's
 * handshake and the admin API's bearer token, each with its own throttle.
 * Windows run on the monotonic clock (performance.now): a clock stepped
 * back neither lifts nor extends a block.
 *
 * Threading: the thread that made it.
 */
export class AuthThrottle {
  private readonly sources = new Map<string, { since: number; count: number; unlogged: number }>();

  constructor(
    private readonly perWindow = SOURCE_FAILURES_PER_WINDOW,
    private readonly windowMs = SOURCE_WINDOW_MS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Whether `source` may make an attempt now; false: refuse it without checking (it failed too often lately). */
  allowed(source: string): boolean {
    const s = this.current(source);
    return s === undefined || s.count < this.perWindow;
  }

  /** ms until `source` may try again (0: now). */
  retryAfterMs(source: string): number {
    const s = this.current(source);
    return s === undefined || s.count < this.perWindow ? 0 : Math.max(0, Math.ceil(s.since + this.windowMs - this.now()));
  }

  /** Count a failed attempt of `source` (a wrong token, or an attempt refused while blocked). */
  failed(source: string): Failure {
    let s = this.current(source);
    if (s === undefined) {
      if (this.sources.size >= MAX_SOURCES) {
        const oldest = this.sources.keys().next().value;
        if (oldest !== undefined) this.sources.delete(oldest);
      }
      s = { since: this.now(), count: 0, unlogged: 0 };
      this.sources.set(source, s);
    }
    s.count++;
    const log = s.count === 1 || s.count === this.perWindow;
    const unlogged = s.unlogged;
    if (log) s.unlogged = 0;
    else s.unlogged++;
    return { count: s.count, blocked: s.count >= this.perWindow, log, unlogged };
  }

  /** The source's window, if it has one that has not ended. */
  private current(source: string): { since: number; count: number; unlogged: number } | undefined {
    const s = this.sources.get(source);
    if (s !== undefined && this.now() - s.since >= this.windowMs) {
      this.sources.delete(source);
      return undefined;
    }
    return s;
  }
}
