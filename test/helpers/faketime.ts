/**
 * Moved clocks for tests: Debian's libfaketime (package libfaketime,
 * pulled in by faketime), preloaded into a `dlock` process so that its
 * wall clock (Date.now(), new Date()) reads `spec` (libfaketime's FAKETIME:
 * '-90s', '+90s', '+0 x1.5' for a rate). Its monotonic clock stays the
 * machine's (DONT_FAKE_MONOTONIC=1), as when NTP steps a host's clock.
 */
import { existsSync, writeFileSync } from 'node:fs';

const CANDIDATES = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/faketime/libfaketime.so.1'];

/** The preloadable library, or null when libfaketime is not installed (the tests that need it are skipped). */
export const LIBFAKETIME = CANDIDATES.find((p) => existsSync(p)) ?? null;

/** The environment of a process whose wall clock reads `spec`. */
export function fakeClock(spec: string, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (LIBFAKETIME === null) throw new Error('libfaketime is not installed');
  return { ...env, LD_PRELOAD: LIBFAKETIME, FAKETIME: spec, DONT_FAKE_MONOTONIC: '1', FAKETIME_DONT_RESET: '1' };
}

/**
 * A clock that can be moved while the process runs: libfaketime reads the
 * spec from `file` at every wall-clock read (FAKETIME_NO_CACHE), so
 * writing '-90s' to it steps that process's wall clock back 90 s, as an
 * NTP step would. The monotonic clock stays the machine's.
 */
export function movableClock(file: string, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (LIBFAKETIME === null) throw new Error('libfaketime is not installed');
  if (!existsSync(file)) writeFileSync(file, '+0'); // a restart keeps the clock its file says
  return { ...env, LD_PRELOAD: LIBFAKETIME, FAKETIME_TIMESTAMP_FILE: file, FAKETIME_NO_CACHE: '1', DONT_FAKE_MONOTONIC: '1', FAKETIME_DONT_RESET: '1' };
}

/** Step a movableClock's wall clock to `spec` from the true time ('-90s', '+90s', '+0'). */
export function moveClock(file: string, spec: string): void {
  writeFileSync(file, spec);
}
