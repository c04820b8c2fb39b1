/**
 * Base ports for tests that must name one (LP-1: node i listens on base+i).
 *
 * A port the kernel hands out for `listen(0)` lies in the ephemeral range
 * (32768-60999 on Linux), where every other test's client sockets take their
 * local ports too: base+1 may be taken a moment later. So a named base is
 * drawn below that range, and a start that still meets EADDRINUSE is retried
 * on another draw.
 */

/** A random base in [20000, 32000), below Linux's ephemeral range. */
export function baseBelowEphemeral(): number {
  return 20000 + Math.floor(Math.random() * 12000);
}

/**
 * Calls `start(base)` on fresh bases until one does not fail with
 * EADDRINUSE (at most `attempts` draws); any other error is thrown at once.
 */
export async function onFreeBase<T>(start: (base: number) => Promise<T>, attempts = 5): Promise<{ base: number; value: T }> {
  let last: Error | null = null;
  for (let i = 0; i < attempts; i++) {
    const base = baseBelowEphemeral();
    try {
      return { base, value: await start(base) };
    } catch (err) {
      if (!(err instanceof Error) || !/EADDRINUSE/.test(err.message)) throw err;
      last = err;
    }
  }
  throw new Error(`no free base port in ${attempts} draws: ${last?.message ?? ''}`);
}
