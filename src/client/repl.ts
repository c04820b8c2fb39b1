/**
 * `dlock client` without a request: the original design's interactive
 * client, done right.
 *
 * Shows the greeting (our client id), a `distributeLock:>` prompt on a
 * terminal, and every request and reply with a timestamp (with --json, each
 * pair as one JSON object). Lines are sent as typed (the node parses and
 * judges them) and pipelined: when stdin is a pipe, all lines go out at
 * once and the pairs are printed in order. At the end of input it says
 * `quit`, waits for the last reply, and exits 0; 1 if the node closed the
 * connection first; 2 if it could not connect.
 *
 * On a terminal, input goes through readline: line editing (←, →, Home,
 * End, Ctrl+U, Ctrl+W) and history (↑, ↓). A reply that comes while a line
 * is being typed is printed above it, and the prompt and the typed text are
 * drawn again below it, so output never runs into the input. There each
 * request is shown when sent and each reply when it comes, so a waiting
 * request is seen waiting, and Ctrl+C cancels it (see interact()).
 */
import { createInterface, type Interface } from 'node:readline';
import { timestamp } from '../text.js';
import { connect, ConnectionClosedError, type DlockClient, type TlsClientOptions } from './client.js';
import { replyObject } from './oneshot.js';

export interface ReplOptions {
  host: string;
  port: number;
  input?: NodeJS.ReadableStream;
  output?: NodeJS.WritableStream;
  /** Show the prompt, with line editing (default: when input is a terminal). */
  prompt?: boolean;
  /** --auth-token / DLOCK_AUTH_TOKEN: sent first [LP-15]. */
  authToken?: string | null;
  /** --tls / --tls-ca: connect over TLS. */
  tls?: TlsClientOptions | null;
  /** --json: each request and reply as one JSON object per line. */
  json?: boolean;
}

export const PROMPT = 'distributeLock:> ';

export async function repl(opts: ReplOptions): Promise<number> {
  const input = opts.input ?? process.stdin;
  const out = opts.output ?? process.stdout;
  const interactive = opts.prompt ?? Boolean((input as NodeJS.ReadStream).isTTY);
  const json = opts.json ?? false;
  const open = (): Promise<DlockClient> => connect({ host: opts.host, port: opts.port, authToken: opts.authToken ?? null, tls: opts.tls ?? null });
  let client: DlockClient;
  try {
    client = await open();
  } catch (err) {
    process.stderr.write(`dlock client: ${(err as Error).message}\n`);
    return 2;
  }
  if (!json) out.write(`connected to ${client.nodeLabel} at ${opts.host}:${opts.port}\nclient_id: ${client.id}\n`);

  const rl = interactive
    ? createInterface({ input, output: out, terminal: true, prompt: PROMPT, historySize: 1000, removeHistoryDuplicates: true })
    : createInterface({ input, terminal: false });
  let rlClosed = false;
  rl.once('close', () => (rlClosed = true));
  /** Print `text` (whole lines); on a terminal, above the line being typed, which is drawn again. */
  const print = (text: string): void => {
    if (!interactive) {
      out.write(text);
      return;
    }
    out.write('\r\u001b[K'); // to the start of the prompt's line, and clear it
    out.write(text);
    if (!rlClosed) rl.prompt(true); // the prompt and what was typed so far, cursor kept
  };
  let quitSent = false;
  let lostConnection = false;
  /** A connection this client closed itself (Ctrl+C on a waiting request): not a lost one. */
  const ownClose = new WeakSet<DlockClient>();
  const watch = (c: DlockClient): void => {
    c.onClose(() => {
      if (ownClose.has(c)) return;
      if (!quitSent) lostConnection = true;
      rl.close();
    });
  };
  watch(client);
  if (interactive) rl.prompt();

  if (!interactive) {
    // A pipe: every line goes out at once; the pairs are printed in request order.
    let printed: Promise<void> = Promise.resolve();
    rl.on('line', (line) => {
      if (line.trim() === '' || client.closed) return;
      if (/^\s*quit\s*$/i.test(line)) quitSent = true;
      const reply = client.raw(line).then(
        (r) => r,
        (err: Error) => (err instanceof ConnectionClosedError ? null : `(${err.message})`),
      );
      printed = printed.then(async () => {
        const r = await reply;
        if (json) print(`${JSON.stringify(r === null ? { request: line, ok: false, error: 'connection closed by the node' } : replyObject(line, r))}\n`);
        else print(`${shownTime()} Request: ${line}\n${r === null ? 'connection closed by the node' : `${shownTime()} Response: ${r}`}\n`);
      });
    });
    await new Promise<void>((resolve) => rl.once('close', resolve));
    await printed;
  } else {
    await interact(rl, print, json, () => client, (c) => (client = c), open, ownClose, watch, () => (quitSent = true));
  }
  quitSent = true; // our own goodbye at the end of input is not a lost connection
  if (!client.closed) await client.close();
  if (interactive) out.write('\n');
  return lostConnection ? 1 : 0;
}

/**
 * The time of day printed beside a request or reply. Wall clock on
 * purpose: it is shown to a person, to match their own clock and the
 * nodes' logs; nothing is measured, ordered or named by it (the waiting
 * hint is a timer, and replies come in request order [LP-2]).
 */
const shownTime = (): string => timestamp(Date.now(), false);

/** How long a request waits before the client says it is waiting and how to cancel it. */
export const WAITING_HINT_MS = 500;

/**
 * A terminal: each request is shown as it is sent and each reply as it
 * comes, so a request that waits (an `acquire` on a held lock) is seen
 * waiting; one typed behind it says what it is queued behind. Ctrl+C
 * with a request waiting cancels it the one way the protocol allows, by
 * closing the connection (its session locks are released [LP-8]; a
 * waiting `acquire` ends [LP-9]), as the TUI's TERMINAL does; the next
 * request connects again, as a new client. Ctrl+C with nothing waiting
 * clears the line being typed, and on an empty line quits.
 */
async function interact(
  rl: Interface,
  print: (text: string) => void,
  json: boolean,
  current: () => DlockClient,
  replace: (c: DlockClient) => void,
  open: () => Promise<DlockClient>,
  ownClose: WeakSet<DlockClient>,
  watch: (c: DlockClient) => void,
  quitting: () => void,
): Promise<void> {
  /** Requests sent and not answered, oldest first. */
  const waiting: Array<{ line: string }> = [];
  /** Set by Ctrl+C: the next request connects again. */
  let reconnect: Promise<DlockClient | null> | null = null;
  const clientForNext = (): Promise<DlockClient | null> => {
    const c = current();
    if (!c.closed || !ownClose.has(c)) return Promise.resolve(c.closed ? null : c);
    reconnect ??= open().then(
      (n) => {
        replace(n);
        watch(n);
        reconnect = null;
        print(`connected again to ${n.nodeLabel}\nclient_id: ${n.id}\n`);
        return n;
      },
      (err: unknown) => {
        reconnect = null;
        print(`could not connect again: ${(err as Error).message}\n`);
        return null;
      },
    );
    return reconnect;
  };
  const show = (line: string, r: string | null, cancelled: boolean): void => {
    if (json) print(`${JSON.stringify(r === null ? { request: line, ok: false, error: cancelled ? 'cancelled (Ctrl+C closed the connection)' : 'connection closed by the node' } : replyObject(line, r))}\n`);
    else print(`${shownTime()} ${r === null ? (cancelled ? `Cancelled: ${line}` : 'connection closed by the node') : `Response: ${r}`}\n`);
  };
  rl.on('line', (line) => {
    if (line.trim() === '') {
      rl.prompt();
      return;
    }
    if (/^\s*quit\s*$/i.test(line)) quitting();
    rl.prompt();
    void clientForNext().then(async (c) => {
      if (c === null) return;
      if (!json) print(`${shownTime()} Request: ${line}\n`);
      const ahead = waiting[0];
      if (ahead !== undefined && !json) print(`(queued behind: ${ahead.line})\n`);
      const w = { line };
      waiting.push(w);
      const hint = setTimeout(() => {
        if (waiting[0] === w && !json) print(`waiting: ${line} (Ctrl+C cancels it: the connection closes and its session locks are released)\n`);
      }, WAITING_HINT_MS);
      let r: string | null;
      try {
        r = await c.raw(line);
      } catch (err) {
        r = err instanceof ConnectionClosedError ? null : `(${(err as Error).message})`;
      } finally {
        clearTimeout(hint);
        waiting.splice(waiting.indexOf(w), 1);
      }
      show(line, r, ownClose.has(c));
    });
  });
  rl.on('SIGINT', () => {
    const c = current();
    if (waiting.length > 0 && !c.closed) {
      ownClose.add(c);
      c.destroy();
      print(`^C: cancelled ${waiting.length === 1 ? 'the waiting request' : `${waiting.length} waiting requests`} by closing the connection (client ${c.id}: its session locks are released); the next request connects again\n`);
      return;
    }
    if (rl.line.length > 0) {
      rl.write(null, { ctrl: true, name: 'u' }); // clear what was typed, as a shell does
      return;
    }
    rl.close();
  });
  await new Promise<void>((resolve) => rl.once('close', resolve));
  // Replies still owed at the end of input: wait for them (quit is answered in order).
  const deadline = performance.now() + 10_000;
  while (waiting.length > 0 && !current().closed && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}
