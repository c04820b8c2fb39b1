/**
 * The client auth token and the admin token, as every command that takes
 * one reads it: `--auth-token TOKEN` / `--admin-token TOKEN`, or the same
 * from a file (`--auth-token-file FILE` / `--admin-token-file FILE`, read
 * with readSecretFile: one word, trailing newline dropped, a warning when
 * others may read it), else $DLOCK_AUTH_TOKEN / $DLOCK_ADMIN_TOKEN. A file
 * keeps the token out of `ps`, as the variable does, without handing it to
 * every child process.
 *
 * Contract: checkTokenFlags throws (a usage error, exit 2) when a token
 * flag and its file flag are both given, or when a file cannot be used;
 * authTokenOf / adminTokenOf then give the token (file, flag, variable,
 * in that order; null: none). A file is read once per process, so the
 * check and the handler agree and its warning is printed once (stderr).
 *
 * Threading: the main thread; synchronous.
 */
import { readSecretFile } from '../secrets.js';

export const AUTH_TOKEN_FILE_OPTION = { type: 'string', describe: 'read the auth token from this file (one word; keeps it out of ps); not with --auth-token' } as const;
export const ADMIN_TOKEN_FILE_OPTION = { type: 'string', describe: 'read the admin token from this file (one word; keeps it out of ps); not with --admin-token' } as const;

export interface TokenFlags {
  'auth-token'?: string | undefined;
  'auth-token-file'?: string | undefined;
  'admin-token'?: string | undefined;
  'admin-token-file'?: string | undefined;
}

const read = new Map<string, string>();

function fromFile(path: string, flag: string): string {
  const key = `${flag}\0${path}`;
  let secret = read.get(key);
  if (secret === undefined) {
    const f = readSecretFile(path, flag); // throws SecretFileError with the reason
    if (f.warning !== null) process.stderr.write(`dlock: warning: ${f.warning}\n`);
    secret = f.secret;
    read.set(key, secret);
  }
  return secret;
}

function tokenOf(a: TokenFlags, flag: 'auth-token' | 'admin-token', env: string): string | null {
  const file = a[`${flag}-file`];
  if (file !== undefined) return fromFile(file, `--${flag}-file`);
  return a[flag] ?? process.env[env] ?? null;
}

/** Throws the usage error for a token flag given with its file, or a file that cannot be used. */
export function checkTokenFlags(a: TokenFlags): void {
  for (const flag of ['auth-token', 'admin-token'] as const) {
    if (a[flag] !== undefined && a[`${flag}-file`] !== undefined) throw new Error(`--${flag} and --${flag}-file: give one or the other`);
    if (a[`${flag}-file`] === '') throw new Error(`--${flag}-file needs a file`);
  }
  authTokenOf(a);
  adminTokenOf(a);
}

/** --auth-token-file, else --auth-token, else $DLOCK_AUTH_TOKEN, else null. */
export const authTokenOf = (a: TokenFlags): string | null => tokenOf(a, 'auth-token', 'DLOCK_AUTH_TOKEN');

/** --admin-token-file, else --admin-token, else $DLOCK_ADMIN_TOKEN, else null. */
export const adminTokenOf = (a: TokenFlags): string | null => tokenOf(a, 'admin-token', 'DLOCK_ADMIN_TOKEN');
