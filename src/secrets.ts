/**
 * Secrets read from files (`--auth-token-file`, `--admin-token-file`,
 * `--cluster-secret-file`, `--etcd-password-file`), so that no secret has to
 * appear in a command line (`ps` shows those to every user of the host) or
 * in the environment of every child process.
 *
 * The contract of a secret file: its text, with trailing whitespace (the
 * newline an editor or `echo` leaves) removed, is the secret; it must then
 * be one word (no whitespace, not empty) of at least `minLength`
 * characters. A file that others may read is accepted with a warning, as
 * ssh would not, because CI and container secrets are often mounted 0644.
 *
 * Threading: any; synchronous (read once, at start).
 */
import { readFileSync, statSync } from 'node:fs';

/** A secret file that cannot be used, with the reason (the command prints it and exits). */
export class SecretFileError extends Error {
  override readonly name = 'SecretFileError';
  readonly code = 'ERR_SECRET_FILE';
}

/** A file this large is not a token: refuse it rather than read it into memory. */
const MAX_SECRET_FILE_BYTES = 4096;

export interface SecretFile {
  secret: string;
  /** Set when group or others may read the file: the caller prints it as a warning. */
  warning: string | null;
}

export function readSecretFile(path: string, flag: string, minLength = 1): SecretFile {
  let size: number;
  let mode: number;
  try {
    const st = statSync(path);
    size = st.size;
    mode = st.mode;
  } catch (err) {
    throw new SecretFileError(`${flag} ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  if (size > MAX_SECRET_FILE_BYTES) throw new SecretFileError(`${flag} ${path}: ${size} bytes; a secret file holds one word (at most ${MAX_SECRET_FILE_BYTES} bytes)`);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new SecretFileError(`${flag} ${path}: ${(err as Error).message}`);
  }
  const secret = text.replace(/\s+$/u, '');
  if (secret === '' || /\s/u.test(secret)) throw new SecretFileError(`${flag} ${path}: the file must hold one word (no whitespace inside, not empty)`);
  if (secret.length < minLength) throw new SecretFileError(`${flag} ${path}: the secret is ${secret.length} characters; use at least ${minLength} (e.g. openssl rand -base64 32)`);
  const warning = (mode & 0o077) !== 0 ? `${flag} ${path} can be read by other users (mode ${(mode & 0o777).toString(8)}); chmod 600 it` : null;
  return { secret, warning };
}
