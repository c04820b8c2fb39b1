/**
 * `dlock lock NAME… [--shared | --limit N] [--ttl MS] [--timeout MS] [--value V] -- COMMAND [ARGS…]`, as `etcdctl lock` and `consul lock` do: hold the lock while the
 * command runs. With `--value`, the lock shows V while the command holds
 * it (LP-18): leader election for a command, others `check` who leads and
 * where (etcd's `Campaign` with a value). With `--shared`, a shared hold
 * (LP-20: commands holding it shared run at once, one holding it alone
 * waits for them); with `--limit N`, one of at most N holds (LP-21: at most
 * N such commands at once); with several names, all of them at once, one
 * token, all or nothing (LP-22).
 *
 *  - acquire NAME… as a lease (waiting up to --timeout), kept renewed by the
 *    client library, which reconnects and resumes across a node's restart
 *    or a failover (LP-16): a broken connection is not a lost lock;
 *  - run COMMAND with DLOCK_LOCK (the names, joined by a space) and
 *    DLOCK_TOKEN (the fencing token, LP-7: pass it to what the command
 *    writes to) in its environment, stdin/stdout/stderr its own;
 *  - if the lock is lost (not renewed before its end, or taken: LP-8),
 *    stop the command: SIGTERM, then SIGKILL after --grace ms;
 *  - when the command exits, release the lock and exit with its status
 *    (128 + the signal's number if a signal ended it).
 *
 * SIGINT and SIGTERM sent to `dlock lock` go to the command; it exits when
 * the command does.
 *
 * Exit status of its own: 1 when the lock was not acquired in time, 2 when
 * no node could be reached; a command that could not be started, as a
 * shell says it: 127 not found, 126 not executable; 2 for flags that ask
 * for no hold the rules allow (lockFlagsError: a usage error in
 * src/cli/main.ts, before anything is sent).
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { MAX_HOLDERS, MAX_NAMES } from '../protocol/request.js';
import { connect, LockNotAcquiredError, type ConnectOptions, type DlockClient, type KeptLease } from './client.js';

export interface LockCommandOptions extends ConnectOptions {
  /** The locks: one, or several held together with one token [LP-22]. */
  locks: string[];
  /** [LP-20] Hold the one lock shared. */
  shared?: boolean;
  /** [LP-21] Hold one of at most `limit` holds of the one lock. */
  limit?: number;
  ttl: number;
  /** ms to wait for the lock; undefined: as long as it takes. */
  timeout: number | undefined;
  /** ms between SIGTERM and SIGKILL when the lock is lost. */
  graceMs: number;
  /** The lock's value while held [LP-18]. */
  value?: string;
  command: string[];
  err?: NodeJS.WritableStream;
}

/**
 * Why these flags ask for no hold the rules allow, or null: at most 16
 * distinct names [LP-22]; `--shared` [LP-20] or `--limit` 1 to 10000
 * [LP-21], not both, with one name and without `--value` [LP-18]. The
 * usage check of `dlock lock` (src/cli/main.ts) and lockCommand's own.
 */
export function lockFlagsError(o: { locks: readonly string[]; shared?: boolean | undefined; limit?: number | undefined; value?: string | undefined }): string | null {
  if (o.locks.length === 0) return 'name the lock to hold';
  if (o.locks.length > MAX_NAMES) return `name at most ${MAX_NAMES} locks, got ${o.locks.length}`;
  const twice = o.locks.find((name, i) => o.locks.indexOf(name) !== i);
  if (twice !== undefined) return `lock ${twice} named twice: name each lock once`;
  const shared = o.shared === true;
  if (shared && o.limit !== undefined) return '--shared and --limit name two kinds of hold: give one';
  if (o.limit !== undefined && !(Number.isInteger(o.limit) && o.limit >= 1 && o.limit <= MAX_HOLDERS)) return `--limit must be a whole number from 1 to ${MAX_HOLDERS}`;
  if (!shared && o.limit === undefined) return null;
  const kind = shared ? '--shared' : '--limit';
  if (o.value !== undefined) return `--value is for a lock held alone, not with ${kind} (LP-18)`;
  if (o.locks.length > 1) return `several locks are held alone, all or nothing: ${kind} goes with one name (LP-22)`;
  return null;
}

/** The lease the options ask for, through the library's method for its kind. */
function hold(client: DlockClient, o: LockCommandOptions): Promise<KeptLease> {
  const refused = lockFlagsError(o);
  if (refused !== null) return Promise.reject(new TypeError(refused));
  const opts = { ttl: o.ttl, ...(o.timeout === undefined ? {} : { timeout: o.timeout }) };
  const value = o.value === undefined ? {} : { value: o.value };
  const [first] = o.locks as [string, ...string[]];
  if (o.shared === true) return client.readLock(first, opts); // [LP-20]
  if (o.limit !== undefined) return client.semaphore(first, o.limit, opts); // [LP-21]
  return o.locks.length > 1 ? client.lockAll(o.locks, { ...opts, ...value }) : client.writeLock(first, { ...opts, ...value }); // [LP-22]
}

export async function lockCommand(o: LockCommandOptions): Promise<number> {
  const err = o.err ?? process.stderr;
  const say = (text: string): void => void err.write(`dlock lock: ${text}\n`);
  let client: DlockClient;
  try {
    client = await connect({ ...o, reconnect: o.reconnect ?? true });
  } catch (e) {
    say((e as Error).message);
    return 2;
  }
  const names = o.locks.join(' ');
  let lease: KeptLease;
  try {
    lease = await hold(client, o);
  } catch (e) {
    client.abort();
    if (e instanceof LockNotAcquiredError) {
      // owner=none: free, but an earlier waiter wants it [LP-22]
      say(`${e.lock} is ${e.owner === null ? 'wanted by an earlier waiter' : `held by ${e.owner}`}; not acquired within ${o.timeout ?? 0} ms`);
      return 1;
    }
    say(`could not acquire ${names}: ${(e as Error).message}`);
    return 2;
  }

  const [file, ...args] = o.command as [string, ...string[]];
  const child = spawn(file, args, { stdio: 'inherit', env: { ...process.env, DLOCK_LOCK: names, DLOCK_TOKEN: String(lease.token) } });
  const started = new Promise<Error | null>((resolve) => {
    child.once('spawn', () => resolve(null));
    child.once('error', (e) => resolve(e));
  });
  const exited = new Promise<number>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0))));
  });
  const failedToStart = await started;
  if (failedToStart !== null) {
    say(`cannot run ${file}: ${failedToStart.message}`);
    await lease.release().catch((e: unknown) => say(`releasing ${names}: ${(e as Error).message}`));
    await client.close().catch((e: unknown) => say(`closing: ${(e as Error).message}`));
    // As a shell says it: 127 not found, 126 found but not runnable.
    const code = (failedToStart as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 127 : code === 'EACCES' || code === 'ENOEXEC' ? 126 : 2;
  }

  // Signals to us are for the command; we end when it does.
  const forward = (signal: NodeJS.Signals): void => void child.kill(signal);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  let killTimer: NodeJS.Timeout | null = null;
  void lease.lost.then((lost) => {
    if (lost === null || child.exitCode !== null || child.signalCode !== null) return;
    say(`lost ${names} (${lost.message}); stopping the command: SIGTERM, then SIGKILL after ${o.graceMs} ms`);
    child.kill('SIGTERM');
    killTimer = setTimeout(() => child.kill('SIGKILL'), o.graceMs);
  });

  const status = await exited;
  process.off('SIGINT', forward);
  process.off('SIGTERM', forward);
  if (killTimer !== null) clearTimeout(killTimer);
  if ((await Promise.race([lease.lost, Promise.resolve('held' as const)])) === 'held') {
    const r = await lease.release().catch((e: unknown) => {
      say(`releasing ${names}: ${(e as Error).message}`);
      return null;
    });
    if (r !== null && !r.ok) say(`${r.lock ?? names} was no longer ours at the end (owner ${r.owner ?? 'none'})`);
  }
  await client.close().catch((e: unknown) => say(`closing: ${(e as Error).message}`));
  return status;
}
