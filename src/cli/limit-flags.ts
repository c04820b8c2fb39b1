/**
 * The resource limit flags (src/server/limits.ts), one option set and one
 * check for every command that runs nodes (`dlock up`, `dlock node`), so
 * that both take the same flags with the same defaults and refuse the same
 * values [LP-13, LP-14].
 *
 * Contract: checkLimitFlags throws the usage error (exit 2) for a value
 * that is not a whole number of at least 1; limitsOf then gives Limits.
 *
 * Threading: the main thread; synchronous.
 */
import { DEFAULT_LIMITS, type Limits } from '../server/limits.js';

export const LIMIT_OPTIONS = {
  'max-clients': { type: 'number', default: DEFAULT_LIMITS.maxClients, describe: 'client connections per node' },
  'max-clients-per-source': { type: 'number', default: DEFAULT_LIMITS.maxClientsPerSource, describe: 'client connections per node from one source address' },
  'max-locks-per-client': { type: 'number', default: DEFAULT_LIMITS.maxLocksPerClient, describe: 'locks one client may hold' },
  'max-locks': { type: 'number', default: DEFAULT_LIMITS.maxLocks, describe: 'locks the whole cluster may hold (sessions and leases): one more is refused with a named error' },
  'max-waiters': { type: 'number', default: DEFAULT_LIMITS.maxWaitersPerLock, describe: 'clients waiting in acquire on one lock' },
  'line-timeout': { type: 'number', default: DEFAULT_LIMITS.lineTimeoutMs, describe: 'ms a request line may take from its first byte to its end' },
  'slow-client-timeout': { type: 'number', default: DEFAULT_LIMITS.slowClientMs, describe: 'ms a client may leave its replies unread before it is dropped' },
  'auth-timeout': { type: 'number', default: DEFAULT_LIMITS.authTimeoutMs, describe: 'with an auth token: ms a connection may take to authenticate before it is closed' },
} as const;

export type LimitFlags = { [K in keyof typeof LIMIT_OPTIONS]: number };

/** Throws the usage error for a limit that is not a whole number of at least 1. */
export function checkLimitFlags(a: LimitFlags): void {
  for (const k of Object.keys(LIMIT_OPTIONS) as Array<keyof typeof LIMIT_OPTIONS>) {
    const v = a[k];
    if (!Number.isSafeInteger(v) || v < 1) throw new Error(`--${k} must be a whole number of at least 1, got ${v}`);
  }
}

export function limitsOf(a: LimitFlags): Limits {
  return {
    ...DEFAULT_LIMITS,
    maxClients: a['max-clients'],
    maxClientsPerSource: a['max-clients-per-source'],
    maxLocksPerClient: a['max-locks-per-client'],
    maxLocks: a['max-locks'],
    maxWaitersPerLock: a['max-waiters'],
    lineTimeoutMs: a['line-timeout'],
    slowClientMs: a['slow-client-timeout'],
    authTimeoutMs: a['auth-timeout'],
  };
}
