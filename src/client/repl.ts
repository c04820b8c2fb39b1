/**
 * `dlock client`: the original design's interactive client, done right.
 *
 * Shows the greeting (our client id), a `distributeLock:>` prompt on a
 * terminal, and every request and reply with a timestamp. Lines are sent as
 * typed (the node parses and judges them) and pipelined: when stdin is a
 * pipe, all lines go out at once and the pairs are printed in order. At the
 * end of input it says `quit`, waits for the last reply, and exits 0.
 */
import { createInterface } from 'node:readline';
import { timestamp } from '../../ui/headless.js';
import { connect, ConnectionClosedError, type DlockClient, type TlsClientOptions } from './client.js';

export interface ReplOptions {
  host: string;
  port: number;
  input?: NodeJS.ReadableStream;
  output?: NodeJS.WritableStream;
  /** Show the prompt (default: when input is a terminal). */
  prompt?: boolean;
  /** --auth-token / DLOCK_AUTH_TOKEN: sent first [LP-15]. */
  authToken?: string | null;
  /** --tls / --tls-ca: connect over TLS. */
  tls?: TlsClientOptions | null;
}

export const PROMPT = 'distributeLock:> ';

export async function repl(opts: ReplOptions): Promise<number> {
  const input = opts.input ?? process.stdin;
  const out = opts.output ?? process.stdout;
  const interactive = opts.prompt ?? Boolean((input as NodeJS.ReadStream).isTTY);
  let client: DlockClient;
  try {
    client = await connect({ host: opts.host, port: opts.port, authToken: opts.authToken ?? null, tls: opts.tls ?? null });
  } catch (err) {
    process.stderr.write(`dlock client: ${(err as Error).message}\n`);
    return 1;
  }
  out.write(`connected to ${client.nodeLabel} at ${opts.host}:${opts.port}\nclient_id: ${client.id}\n`);

  const rl = createInterface({ input, terminal: false });
  const prompt = (): void => {
    if (interactive && !client.closed) out.write(PROMPT);
  };
  let printed: Promise<void> = Promise.resolve();
  let quitSent = false;
  let lostConnection = false;
  client.onClose(() => {
    if (!quitSent) lostConnection = true;
    rl.close();
  });
  prompt();

  rl.on('line', (line) => {
    if (line.trim() === '') {
      prompt();
      return;
    }
    if (client.closed) return;
    if (/^\s*quit\s*$/i.test(line)) quitSent = true;
    const reply = client.raw(line).then(
      (r) => r,
      (err: Error) => (err instanceof ConnectionClosedError ? null : `(${err.message})`),
    );
    // Print request/response pairs in request order, however the replies pipeline.
    printed = printed.then(async () => {
      out.write(`${timestamp(Date.now(), false)} Request: ${line}\n`);
      const r = await reply;
      out.write(r === null ? 'connection closed by the node\n' : `${timestamp(Date.now(), false)} Response: ${r}\n`);
      prompt();
    });
  });

  await new Promise<void>((resolve) => rl.once('close', resolve));
  await printed;
  quitSent = true; // our own goodbye at the end of input is not a lost connection
  if (!client.closed) await client.close();
  if (interactive) out.write('\n');
  return lostConnection ? 1 : 0;
}
