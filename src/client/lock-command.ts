/**
 * `dlock lock NAME [--ttl MS] [--timeout MS] [--value V] -- COMMAND [ARGS…]`, as `etcdctl lock` and `consul lock` do: hold the lock while the
 * command runs. With `--value`, the lock shows V while the command holds
 * it (LP-18): leader election for a command, others `check` who leads and
 * where (etcd's `Campaign` with a value).
 *
 *  - acquire NAME as a lease (waiting up to --timeout), kept renewed by the
 *    client library, which reconnects and resumes across a node's restart
 *    or a failover (LP-16): a broken connection is not a lost lock;
 *  - run COMMAND with DLOCK_LOCK (the name) and DLOCK_TOKEN (the fencing
 *    token, LP-7: pass it to what the command writes to) in its
 *    environment, stdin/stdout/stderr its own;
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
 * shell says it: 127 not found, 126 not executable.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { connect, LockNotAcquiredError, type ConnectOptions, type DlockClient, type KeptLease } from './client.js';

export interface LockCommandOptions extends ConnectOptions {
  lock: string;
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
  let lease: KeptLease;
  try {
    lease = await client.keepLease(o.lock, { ttl: o.ttl, ...(o.timeout === undefined ? {} : { timeout: o.timeout }), ...(o.value === undefined ? {} : { value: o.value }) });
  } catch (e) {
    client.abort();
    if (e instanceof LockNotAcquiredError) {
      say(`${o.lock} is held by ${e.owner ?? 'someone'}; not acquired within ${o.timeout ?? 0} ms`);
      return 1;
    }
    say(`could not acquire ${o.lock}: ${(e as Error).message}`);
    return 2;
  }

  const [file, ...args] = o.command as [string, ...string[]];
  const child = spawn(file, args, { stdio: 'inherit', env: { ...process.env, DLOCK_LOCK: o.lock, DLOCK_TOKEN: String(lease.token) } });
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
    await lease.release().catch((e: unknown) => say(`releasing ${o.lock}: ${(e as Error).message}`));
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
    say(`lost ${o.lock} (${lost.message}); stopping the command: SIGTERM, then SIGKILL after ${o.graceMs} ms`);
    child.kill('SIGTERM');
    killTimer = setTimeout(() => child.kill('SIGKILL'), o.graceMs);
  });

  const status = await exited;
  process.off('SIGINT', forward);
  process.off('SIGTERM', forward);
  if (killTimer !== null) clearTimeout(killTimer);
  if ((await Promise.race([lease.lost, Promise.resolve('held' as const)])) === 'held') {
    const r = await lease.release().catch((e: unknown) => {
      say(`releasing ${o.lock}: ${(e as Error).message}`);
      return null;
    });
    if (r !== null && !r.ok) say(`${o.lock} was no longer ours at the end (owner ${r.owner ?? 'none'})`);
  }
  await client.close().catch((e: unknown) => say(`closing: ${(e as Error).message}`));
  return status;
}
