/**
 * The auth token check [LP-15], issue 6 §3.
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
