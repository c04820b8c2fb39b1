/**
 * `dlock client [options] REQUEST…`: one request, for scripts. Prints the reply (or, with --json, the reply as an object) and
 * exits with what it means:
 *
 *   0  success: a grant, a release, a renew, a check, Valid, PONG, …
 *   1  the lock said no: `Failed`, `Timeout`, `Stale` (and `Auth Failed`,
 *      `Resume Failed`)
 *   2  an `Error:` reply, or no node to ask (cannot connect, refused token)
 *
 * A session lock taken this way ends when the command exits (LP-8): one-shot
 * `preempt` and `acquire` want `ttl=`.
 *
 * One client across calls [LP-16]: `dlock client session` asks for
 * `session ttl=…` (DEFAULT_SESSION_TTL_MS unless the request names one)
 * and prints `export DLOCK_SESSION=<id>:<secret>` for a shell to eval;
 * with DLOCK_SESSION set, every other call resumes that client first, so
 * a lease taken by one call can be renewed and released by the next. The
 * secret travels in the environment, never on a command line (`ps`), and
 * nodes log `resume` without it.
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
  /** Where DLOCK_SESSION is read (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** How long a client made by `dlock client session` stays resumable after each call ends, unless the request says (ttl=). */
export const DEFAULT_SESSION_TTL_MS = 600_000;

/** DLOCK_SESSION's `<id>:<secret>`, or a message saying what is wrong with it. */
export function parseSessionVar(v: string): { id: number; secret: string } | string {
  const m = /^(\d{1,16}):(\S+)$/.exec(v);
  if (m === null) return 'DLOCK_SESSION is not <client id>:<secret> (set it with: eval "$(dlock client session)")';
  return { id: Number(m[1]), secret: m[2] as string };
}

export async function oneShot(o: OneShotOptions): Promise<number> {
  const out = o.out ?? process.stdout;
  const err = o.err ?? process.stderr;
  const env = o.env ?? process.env;
  const making = o.words[0] === 'session';
  // `dlock client session`: a client that outlives this call [LP-16].
  const request = making && !o.words.some((w) => w.startsWith('ttl=')) ? [...o.words, `ttl=${DEFAULT_SESSION_TTL_MS}`].join(' ') : o.words.join(' ');
  const sessionVar = making ? undefined : env['DLOCK_SESSION'];
  const session = sessionVar === undefined || sessionVar === '' ? null : parseSessionVar(sessionVar);
  if (typeof session === 'string') {
    if (o.json) out.write(`${JSON.stringify({ request, ok: false, error: session })}\n`);
    err.write(`dlock client: ${session}\n`);
    return EXIT_ERROR;
  }
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
    if (session !== null) {
      const resumed = await client.raw(`resume ${session.id} ${session.secret}`);
      if (resumed !== `Resume Success client_id=${session.id}`) {
        const why = resumed === 'Resume Failed' ? `client ${session.id} cannot be resumed: its session ended (its ttl ran out while it held nothing, or the secret is wrong); make a new one with: eval "$(dlock client session)"` : resumed;
        if (o.json) out.write(`${JSON.stringify({ request, ok: false, error: `DLOCK_SESSION: ${why}` })}\n`);
        err.write(`dlock client: DLOCK_SESSION: ${why}\n`);
        client.abort();
        return EXIT_ERROR;
      }
    }
    reply = await client.raw(request);
  } catch (e) {
    err.write(`dlock client: ${(e as Error).message}\n`);
    client.abort();
    return EXIT_ERROR;
  }
  const made = making ? /^Session client_id=(\d+) secret=(\S+)$/.exec(reply) : null;
  if (made !== null && !o.json) out.write(`export DLOCK_SESSION=${made[1]}:${made[2]}\n`);
  else out.write(o.json ? `${JSON.stringify(replyObject(request, reply))}\n` : `${reply}\n`);
  await client.close().catch((e: unknown) => err.write(`dlock client: closing: ${(e as Error).message}\n`));
  return exitCodeOf(reply);
}
