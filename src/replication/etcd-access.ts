/**
 * How to reach etcd: its client URLs, TLS (the CA that signed etcd's
 * certificate, and this client's certificate and key for an etcd started
 * with --client-cert-auth) and etcd's user auth (a user and its password,
 * for which etcd hands out a token). Every etcd client dlock makes takes
 * one EtcdAccess: the etcd3 gRPC clients (etcd-client.ts, `dlock status`,
 * the observer of `dlock tui`) and the HTTP gateway calls of the lease
 * keepalive (etcd-lease.ts), so a node, `dlock up --etcd`, `dlock status`
 * and `dlock tui` reach a secured etcd alike.
 *
 * An EtcdAccess is plain data (strings, PEM text): it crosses to worker
 * threads by structured clone. It holds a secret (the password): nothing
 * here puts it in a message (describeEtcd, etcdErrorHint), and callers
 * must not log the object.
 *
 * Threading: any.
 */
import { rootCertificates } from 'node:tls';
import type { IOptions } from 'etcd3';

export interface EtcdTls {
  /** PEM: the CA(s) etcd's certificate must chain to; null: the system's roots. */
  ca: string | null;
  /** PEM: this client's certificate and its key (both or neither); for etcd's --client-cert-auth. */
  cert: string | null;
  key: string | null;
}

export interface EtcdAuth {
  user: string;
  password: string;
}

export interface EtcdAccess {
  /** Client URLs, all http:// or all https:// (https:// exactly when tls is set). */
  endpoints: string[];
  tls: EtcdTls | null;
  auth: EtcdAuth | null;
}

/** An EtcdAccess that cannot work (mixed schemes, a certificate without its key, …): the reason. */
export class EtcdAccessError extends Error {
  override readonly name = 'EtcdAccessError';
  readonly code = 'ERR_ETCD_ACCESS';
}

/** An open etcd (no TLS, no auth) at these URLs: tests and the in-tree benches. */
export function plainEtcd(endpoints: string[]): EtcdAccess {
  return { endpoints: [...endpoints], tls: null, auth: null };
}

/**
 * Throws EtcdAccessError unless `a` can be used: at least one URL, one
 * scheme for all (one set of gRPC credentials serves every member), TLS
 * settings exactly with https://, a certificate with its key, a user name
 * and a password that are not empty.
 */
export function checkEtcdAccess(a: EtcdAccess): void {
  if (a.endpoints.length === 0) throw new EtcdAccessError('no etcd URL given');
  const https = a.endpoints.filter((u) => u.startsWith('https://')).length;
  if (https !== 0 && https !== a.endpoints.length) throw new EtcdAccessError('etcd URLs must all be http:// or all https://');
  if (https === 0 && a.tls !== null) throw new EtcdAccessError('TLS settings for etcd need https:// URLs');
  if (a.tls !== null && (a.tls.cert === null) !== (a.tls.key === null)) throw new EtcdAccessError('the client certificate and key for etcd go together');
  if (a.auth !== null && (a.auth.user === '' || a.auth.password === '')) throw new EtcdAccessError('an etcd user needs a name and a password');
}

/**
 * The etcd3 client's options for `a` (hosts, credentials, auth). With
 * https:// and no CA given, the system's roots verify etcd's certificate,
 * as etcdctl does. `authDeadlineMs` bounds the call that trades the
 * password for a token: the etcd3 client makes it before any other call
 * of the client, on one member after another, and without a deadline a
 * member cut off by a partition would hold every call behind it.
 */
export function etcd3Options(a: EtcdAccess, authDeadlineMs = 3000): Pick<IOptions, 'hosts' | 'credentials' | 'auth'> {
  checkEtcdAccess(a);
  const out: Pick<IOptions, 'hosts' | 'credentials' | 'auth'> = { hosts: [...a.endpoints] };
  if (a.tls !== null) {
    muteIpServernameWarning();
    out.credentials = {
      rootCertificate: Buffer.from(a.tls.ca ?? rootCertificates.join('\n')),
      ...(a.tls.cert === null ? {} : { certChain: Buffer.from(a.tls.cert) }),
      ...(a.tls.key === null ? {} : { privateKey: Buffer.from(a.tls.key) }),
    };
  }
  if (a.auth !== null) {
    // grpc-js takes a deadline only as an absolute time and turns it back
    // into a timer of (deadline − Date.now()) as the call starts, in the
    // same turn: the wait is authDeadlineMs whatever the wall clock reads.
    // Its API leaves no way to give the interval itself.
    out.auth = { username: a.auth.user, password: a.auth.password, callOptions: () => ({ deadline: Date.now() + authDeadlineMs }) };
  }
  return out;
}

let muted = false;

/**
 * The gRPC client sets the TLS ServerName to the host of the URL, an IP
 * address too (https://10.0.0.1:2379), and Node then prints its DEP0123
 * deprecation warning ("Setting the TLS ServerName to an IP address is not
 * permitted by RFC 6066") on the first connection: on stderr of every
 * `dlock node` and `dlock status`, about nothing the user did or can
 * change (the certificate's IP SAN is what is checked). Only that warning
 * is dropped; every other goes on as before. Once per thread.
 */
function muteIpServernameWarning(): void {
  if (muted) return;
  muted = true;
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const code = typeof rest[0] === 'object' && rest[0] !== null ? (rest[0] as { code?: string }).code : rest[1];
    if (code === 'DEP0123') return;
    emit(warning, ...rest);
  }) as typeof process.emitWarning;
}

/** `a` for messages: its URLs and user, never the password. */
export function describeEtcd(a: EtcdAccess): string {
  return `${a.endpoints.join(',')}${a.auth === null ? '' : ` as etcd user ${a.auth.user}`}`;
}

/** An error reaching etcd through `a`, for a message: on one line (gRPC's span several), with etcdErrorHint's hint. */
export function etcdErrorText(a: EtcdAccess, err: Error): string {
  const raw = err.message.replace(/\s+/g, ' ').replace(/ Resolution note: ?$/, '').trim();
  // gRPC's words for "nobody there", said as a person would; other errors as they are.
  const text = /ECONNREFUSED/.test(raw) ? 'nothing answers there (connection refused): is etcd running, and is this its client URL?' : /ETIMEDOUT|Deadline exceeded|DEADLINE_EXCEEDED/i.test(raw) ? `no answer in time (${raw})` : raw;
  return `${text}${etcdErrorHint(a, err)}`;
}

/**
 * A hint for an error reaching etcd through `a`, for the messages of
 * `dlock node` and `dlock status`: what setting likely causes it ('' when
 * nothing fits). Pattern-matched on the messages of gRPC, OpenSSL and etcd.
 */
export function etcdErrorHint(a: EtcdAccess, err: Error): string {
  const m = err.message;
  if (/alert bad certificate|alert certificate required|alert number 4[256]\b|alert handshake failure/i.test(m)) {
    return a.tls?.cert == null ? ' (etcd asks for a client certificate: give --etcd-cert and --etcd-key)' : ' (etcd refused this client certificate: is it signed by the CA etcd trusts, --trusted-ca-file?)';
  }
  if (/unable to verify|self[- ]signed certificate|unable to get (local )?issuer|certificate verify failed/i.test(m)) return ' (etcd\'s certificate is not signed by a trusted CA: give --etcd-cacert)';
  if (/Hostname\/IP does not match|altnames/i.test(m)) return ' (etcd\'s certificate does not name the host of the URL: use a URL its subjectAltName covers)';
  if (/wrong version number|packet length too long|http2|Protocol error|ECONNRESET/i.test(m) && a.tls !== null) return ' (is this etcd serving TLS? its URL would then be https://)';
  if (/authentication failed|invalid user ID or password/i.test(m)) return a.auth === null ? '' : ` (etcd refused user ${a.auth.user} with this password)`;
  if (/user name is empty|user name not found|invalid auth token/i.test(m)) return a.auth === null ? ' (etcd has auth enabled: give --etcd-user and its password)' : '';
  if (/permission denied/i.test(m)) return ' (the etcd user\'s role needs readwrite on the cluster\'s prefix, /dlock/<cluster>/)';
  return '';
}
