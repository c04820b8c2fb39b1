/**
 * How the commands that talk to etcd (`dlock node`, `dlock up --etcd`,
 * `dlock status`, `dlock tui`) take how to reach it: --etcd URLs, and
 * etcdctl's flags for a secured etcd, one option set and one check for
 * every command:
 *
 *   --etcd-cacert FILE          the CA that signed etcd's certificate (https://)
 *   --etcd-cert FILE --etcd-key FILE
 *                               this client's certificate (etcd --client-cert-auth)
 *   --etcd-user NAME            an etcd user; its password from
 *   --etcd-password-file FILE   or from $DLOCK_ETCD_PASSWORD (never a flag
 *                               value: `ps` shows flags to every user)
 *
 * Contract of etcdAccessOf: it throws EtcdFlagError (or SecretFileError)
 * with the reason, which yargs' check turns into a usage error (exit 2),
 * or returns the EtcdAccess: every file read and checked (PEM that parses,
 * a certificate that matches its key), so nothing fails later for a flag.
 * The same flags give the same object (read once per process: the check
 * and the command's handler share it, and a warning about a file's mode is
 * printed once).
 *
 * Threading: the main thread; synchronous.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { checkEtcdAccess, EtcdAccessError, type EtcdAccess } from '../replication/etcd-access.js';
import { readSecretFile } from '../secrets.js';

/** A flag for etcd that cannot be used, with the reason (a usage error). */
export class EtcdFlagError extends Error {
  override readonly name = 'EtcdFlagError';
  readonly code = 'ERR_ETCD_FLAG';
}

/** The environment variable that may hold --etcd-user's password. */
export const ETCD_PASSWORD_ENV = 'DLOCK_ETCD_PASSWORD';

/** The --etcd-* options, the same on every command that talks to etcd. */
export const ETCD_ACCESS_OPTIONS = {
  'etcd-cacert': { type: 'string', describe: 'with https:// etcd URLs: trust etcd\'s certificate if this CA signed it (PEM file; default: the system\'s CAs)' },
  'etcd-cert': { type: 'string', describe: 'with https:// etcd URLs: this client\'s certificate for etcd (PEM file; for etcd --client-cert-auth); needs --etcd-key' },
  'etcd-key': { type: 'string', describe: 'the private key of --etcd-cert (PEM file)' },
  'etcd-user': { type: 'string', describe: `an etcd user (etcd auth enabled): its name only; the password comes from --etcd-password-file or $${ETCD_PASSWORD_ENV}` },
  'etcd-password-file': { type: 'string', describe: `with --etcd-user: a file holding its password (default: $${ETCD_PASSWORD_ENV})` },
} as const;

const FLAGS = Object.keys(ETCD_ACCESS_OPTIONS) as Array<keyof typeof ETCD_ACCESS_OPTIONS>;

export interface EtcdFlags {
  etcd: string;
  'etcd-cacert'?: string | undefined;
  'etcd-cert'?: string | undefined;
  'etcd-key'?: string | undefined;
  'etcd-user'?: string | undefined;
  'etcd-password-file'?: string | undefined;
}

/**
 * `--etcd`'s URLs, or an error saying what it takes. A bare HOST:PORT (as
 * etcdctl takes it) gets `scheme`: http, or https when TLS flags are given.
 */
export function etcdUrls(value: string, scheme: 'http' | 'https' = 'http'): string[] {
  const urls = value
    .split(',')
    .filter((u) => u !== '')
    .map((u) => (/^([^/\s:]+|\[[0-9a-fA-F:.]+\]):\d{1,5}$/.test(u) ? `${scheme}://${u}` : u));
  if (urls.length === 0 || !urls.every((u) => /^https?:\/\/[^/\s]+\/?$/.test(u))) throw new EtcdFlagError(`--etcd takes etcd client URLs or HOST:PORT, comma-separated (http://HOST:PORT, or https:// for TLS), got ${JSON.stringify(value)}`);
  return urls.map((u) => u.replace(/\/$/, ''));
}

/** For a command where --etcd is optional (dlock up): the --etcd-* flags need it. */
export function checkEtcdFlagsNeedEtcd(a: Omit<EtcdFlags, 'etcd'> & { etcd?: string | undefined }): void {
  const given = FLAGS.filter((f) => a[f] !== undefined);
  if (a.etcd === undefined && given.length > 0) throw new EtcdFlagError(`--${given[0] as string} goes with --etcd`);
}

const made = new Map<string, EtcdAccess>();

/** See the file comment. */
export function etcdAccessOf(a: EtcdFlags): EtcdAccess {
  const key = JSON.stringify([a.etcd, ...FLAGS.map((f) => a[f] ?? null)]);
  const had = made.get(key);
  if (had !== undefined) return had;
  const endpoints = etcdUrls(a.etcd, (['etcd-cacert', 'etcd-cert', 'etcd-key'] as const).some((f) => a[f] !== undefined) ? 'https' : 'http');
  const https = endpoints.filter((u) => u.startsWith('https://')).length;
  if (https !== 0 && https !== endpoints.length) throw new EtcdFlagError('--etcd: give every URL as http:// or every one as https://');
  const tlsFlags = (['etcd-cacert', 'etcd-cert', 'etcd-key'] as const).filter((f) => a[f] !== undefined);
  if (https === 0 && tlsFlags.length > 0) throw new EtcdFlagError(`--${tlsFlags.join(', --')}: etcd over TLS has https:// URLs in --etcd`);
  if ((a['etcd-cert'] === undefined) !== (a['etcd-key'] === undefined)) throw new EtcdFlagError('--etcd-cert and --etcd-key go together');
  let tls: EtcdAccess['tls'] = null;
  if (https > 0) {
    const ca = a['etcd-cacert'] === undefined ? null : pemFile(a['etcd-cacert'], '--etcd-cacert', 'CERTIFICATE');
    if (ca !== null) certOf(ca, '--etcd-cacert', a['etcd-cacert'] as string);
    let cert: string | null = null;
    let privateKey: string | null = null;
    if (a['etcd-cert'] !== undefined && a['etcd-key'] !== undefined) {
      cert = pemFile(a['etcd-cert'], '--etcd-cert', 'CERTIFICATE');
      privateKey = pemFile(a['etcd-key'], '--etcd-key', 'PRIVATE KEY');
      const x509 = certOf(cert, '--etcd-cert', a['etcd-cert']);
      const k = keyOf(privateKey, a['etcd-key']);
      if (!x509.checkPrivateKey(k)) throw new EtcdFlagError(`--etcd-cert ${a['etcd-cert']} and --etcd-key ${a['etcd-key']}: the key is not the certificate's`);
    }
    tls = { ca, cert, key: privateKey };
  }
  const access: EtcdAccess = { endpoints, tls, auth: authOf(a) };
  try {
    checkEtcdAccess(access);
  } catch (err) {
    if (err instanceof EtcdAccessError) throw new EtcdFlagError(err.message);
    throw err;
  }
  made.set(key, access);
  return access;
}

function authOf(a: EtcdFlags): EtcdAccess['auth'] {
  const user = a['etcd-user'];
  const file = a['etcd-password-file'];
  if (user === undefined) {
    if (file !== undefined) throw new EtcdFlagError('--etcd-password-file goes with --etcd-user');
    return null; // $DLOCK_ETCD_PASSWORD alone means nothing: no user to log in as
  }
  if (user.includes(':')) throw new EtcdFlagError(`--etcd-user takes a user name only, not NAME:PASSWORD: a password in a flag shows in \`ps\` to every user of this host. Put it in a file (--etcd-password-file FILE, mode 600) or in $${ETCD_PASSWORD_ENV}`);
  if (!/^\S+$/.test(user)) throw new EtcdFlagError('--etcd-user needs a user name (no spaces)');
  if (file !== undefined) {
    const s = readSecretFile(file, '--etcd-password-file');
    if (s.warning !== null) process.stderr.write(`dlock: warning: ${s.warning}\n`);
    return { user, password: s.secret };
  }
  const env = process.env[ETCD_PASSWORD_ENV];
  if (env === undefined || env === '') throw new EtcdFlagError(`--etcd-user ${user} needs its password: --etcd-password-file FILE, or $${ETCD_PASSWORD_ENV}`);
  return { user, password: env };
}

/** A PEM file's text holding a `kind` block (CERTIFICATE, PRIVATE KEY), or EtcdFlagError. */
function pemFile(path: string, flag: string, kind: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new EtcdFlagError(`${flag} ${path}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  }
  if (!new RegExp(`-----BEGIN [A-Z ]*${kind}-----`).test(text)) throw new EtcdFlagError(`${flag} ${path}: not a PEM file with a ${kind.toLowerCase()}`);
  return text;
}

function certOf(pem: string, flag: string, path: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new EtcdFlagError(`${flag} ${path}: not a certificate that can be read: ${(err as Error).message}`);
  }
}

function keyOf(pem: string, path: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (err) {
    throw new EtcdFlagError(`--etcd-key ${path}: not a private key that can be read (an encrypted key is not supported): ${(err as Error).message}`);
  }
}
