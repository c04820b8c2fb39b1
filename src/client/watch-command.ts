/**
 * `dlock watch NAME [--count N] [--json]` [LP-19]: print the lock's state
 * now, then each new one (a new holder, or free) as this node commits it,
 * one line each, until Ctrl+C or N states. A line is what `check` shows
 * after `CheckLock:` (`Free`, `Lock:20001 token=57 ttl=9000
 * value=10.0.0.5:8080`; a value percent-encoded, as on the line); with
 * --json, an object per line. States, not events: a grant and a release
 * between two may go unseen.
 *
 * Exit status: 0 after --count states or an interrupt; 2 when the node
 * cannot be reached or the connection is lost.
 */
import { formatCheck } from '../protocol/reply.js';
import { connect, encodeValue, type ConnectOptions, type DlockClient } from './client.js';

export interface WatchCommandOptions extends ConnectOptions {
  lock: string;
  json: boolean;
  /** Stop after this many states (the first is the state now); undefined: until interrupted. */
  count: number | undefined;
  out?: NodeJS.WritableStream;
  err?: NodeJS.WritableStream;
}

export async function watchCommand(o: WatchCommandOptions): Promise<number> {
  const out = o.out ?? process.stdout;
  const err = o.err ?? process.stderr;
  let client: DlockClient;
  try {
    client = await connect(o);
  } catch (e) {
    err.write(`dlock watch: ${(e as Error).message}\n`);
    return 2;
  }
  const stop = new AbortController();
  const interrupted = (): void => stop.abort(new Error('interrupted'));
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  let shown = 0;
  try {
    for await (const s of client.watch(o.lock, { signal: stop.signal })) {
      const line = o.json ? JSON.stringify({ lock: o.lock, ...s }) : formatCheck(s.held && s.value !== undefined ? { ...s, value: encodeValue(s.value) } : s).slice('CheckLock:'.length);
      out.write(`${line}\n`);
      if (o.count !== undefined && ++shown >= o.count) break;
    }
    return 0;
  } catch (e) {
    if (stop.signal.aborted) return 0;
    err.write(`dlock watch: ${(e as Error).message}\n`);
    return 2;
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    client.abort();
  }
}
