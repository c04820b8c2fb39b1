/**
 * `dlock client [options] REQUEST…`: one request, for scripts (issue 14
 * §3). Prints the reply (or, with --json, the reply as an object) and
 * exits with what it means:
 *
 *   0  success: a grant, a release, a renew, a check, Valid, PONG, …
 *   1  the lock said no: `Failed`, `Timeout`, `Stale` (and `Auth Failed`,
 *      `Resume Failed`)
 *   2  an `Error:` reply, or no node to ask (cannot connect, refused token)
 *
 * A session lock taken this way ends when the command exits (LP-8): one-shot
 * `preempt` and `acquire` want `ttl=`.
 */
import { parseCheck, parseGreeting, parseLockReply, parseValidate, replyResult } from '../protocol/reply.js';
import { connect, type ConnectOptions } from './client.js';

export const EXIT_OK = 0;
export const EXIT_NO = 1;
export const EXIT_ERROR = 2;

/** What a reply line means for the exit status. */
export function exitCodeOf(reply: string): number {
  const r = replyResult(reply);
  return r === 'error' ? EXIT_ERROR : r === 'no' ? EXIT_NO : EXIT_OK;
}

/** The reply as an object: the line, whether it is a success, and its fields where the line has them. */
export function replyObject(request: string, reply: string): Record<string, unknown> {
  const code = exitCodeOf(reply);
  const base: Record<string, unknown> = { request, reply, ok: code === EXIT_OK };
  if (code === EXIT_ERROR) return { ...base, error: reply.slice('Error: '.length) };
  const fields = parseLockReply(reply) ?? parseCheck(reply) ?? parseValidate(reply) ?? parseGreeting(reply);
  if (fields === null) return base;
  const { ok: _ok, ...rest } = fields as Record<string, unknown>;
  return { ...base, ...rest };
}

export interface OneShotOptions extends ConnectOptions {
  words: string[];
  json: boolean;
  out?: NodeJS.WritableStream;
  err?: NodeJS.WritableStream;
}

export async function oneShot(o: OneShotOptions): Promise<number> {
  const out = o.out ?? process.stdout;
  const err = o.err ?? process.stderr;
  const request = o.words.join(' ');
  let client;
  try {
    client = await connect(o);
  } catch (e) {
    if (o.json) out.write(`${JSON.stringify({ request, ok: false, error: (e as Error).message })}\n`);
    err.write(`dlock client: ${(e as Error).message}\n`);
    return EXIT_ERROR;
  }
  let reply: string;
  try {
    reply = await client.raw(request);
  } catch (e) {
    err.write(`dlock client: ${(e as Error).message}\n`);
    client.abort();
    return EXIT_ERROR;
  }
  out.write(o.json ? `${JSON.stringify(replyObject(request, reply))}\n` : `${reply}\n`);
  await client.close().catch((e: unknown) => err.write(`dlock client: closing: ${(e as Error).message}\n`));
  return exitCodeOf(reply);
}
