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
 * drawn again below it, so output never runs into the input.
 */
import { createInterface } from 'node:readline';
import { timestamp } from '../headless.js';
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
  let client: DlockClient;
  try {
    client = await connect({ host: opts.host, port: opts.port, authToken: opts.authToken ?? null, tls: opts.tls ?? null });
  } catch (err) {
    process.stderr.write(`dlock client: ${(err as Error).message}\n`);
    return 2;
  }
  if (!json) out.write(`connected to ${client.nodeLabel} at ${opts.host}:${opts.port}\nclient_id: ${client.id}\n`);

  const rl = interactive
    ? createInterface({ input, output: out, terminal: true, prompt: PROMPT, historySize: 1000, removeHistoryDuplicates: true })
    : createInterface({ input, terminal: false });
  /** Print `text` (whole lines); on a terminal, above the line being typed, which is drawn again. */
  const print = (text: string): void => {
    if (!interactive) {
      out.write(text);
      return;
    }
    out.write('\r\u001b[K'); // to the start of the prompt's line, and clear it
    out.write(text);
    if (!client.closed) rl.prompt(true); // the prompt and what was typed so far, cursor kept
  };
  let printed: Promise<void> = Promise.resolve();
  let quitSent = false;
  let lostConnection = false;
  client.onClose(() => {
    if (!quitSent) lostConnection = true;
    rl.close();
  });
  if (interactive) rl.prompt();

  rl.on('line', (line) => {
    if (line.trim() === '') {
      if (interactive) rl.prompt();
      return;
    }
    if (client.closed) return;
    if (/^\s*quit\s*$/i.test(line)) quitSent = true;
    const reply = client.raw(line).then(
      (r) => r,
      (err: Error) => (err instanceof ConnectionClosedError ? null : `(${err.message})`),
    );
    if (interactive) rl.prompt();
    // Print request/response pairs in request order, however the replies pipeline.
    printed = printed.then(async () => {
      const r = await reply;
      if (json) print(`${JSON.stringify(r === null ? { request: line, ok: false, error: 'connection closed by the node' } : replyObject(line, r))}\n`);
      else print(`${timestamp(Date.now(), false)} Request: ${line}\n${r === null ? 'connection closed by the node' : `${timestamp(Date.now(), false)} Response: ${r}`}\n`);
    });
  });

  await new Promise<void>((resolve) => rl.once('close', resolve));
  await printed;
  quitSent = true; // our own goodbye at the end of input is not a lost connection
  if (!client.closed) await client.close();
  if (interactive) out.write('\n');
  return lostConnection ? 1 : 0;
}
