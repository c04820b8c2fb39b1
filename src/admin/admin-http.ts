/**
 * The admin API over HTTP, for operators and their tools:
 *
 *   GET  /health                  200 when every node has its state and a leader leads; 503 with the reason
 *   GET  /metrics                 Prometheus text (prom-client)
 *   GET  /locks?prefix=&limit=&after=   the locks, by name, paged (JSON)
 *   GET  /clients?limit=&after=   the connected clients, paged (JSON)
 *   POST /locks/NAME/revoke       force-release NAME: logged and replicated; the next
 *                                 grant gets a higher token, the former owner's renew
 *                                 and release fail
 *
 * Everything but /health and /metrics needs `Authorization: Bearer TOKEN`
 * with the --admin-token, compared in constant time; without an admin
 * token configured those endpoints are refused (403). Wrong tokens are
 * counted per source address (AuthThrottle): a source that sent too many
 * lately gets 429 with Retry-After, even with the right token, until its
 * window ends. It listens on loopback unless told otherwise (--http-host).
 *
 * Every request must name the API in its Host header: an IP literal,
 * `localhost`, or a name given with --http-allowed-host; any other name is
 * 421 (a page on another site that rebinds its name to this address
 * cannot read /metrics or /health). A revoke's NAME is checked as the
 * protocol checks lock names [LP-12]: a bad one is 400 with the reason,
 * neither logged nor replicated.
 *
 * Threading: the thread that serves it (the main thread of `dlock up`).
 * What it shows comes from an AdminSource (host/threads/admin-cluster.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { AuthThrottle } from '../server/auth.js';
import { LogThrottle, sourceOf } from '../server/log-throttle.js';
import type { LockRow } from '../node/node.js';
import { lockNameError } from '../protocol/request.js';
import { isLoopback } from '../transport/hosts.js';

export interface ClientRow {
  node: string;
  client: number;
  remote: string;
  locks: number;
  waiting: string | null;
}

/** Where the admin API's answers come from. */
export interface AdminSource {
  health(): Promise<{ ok: boolean; reason: string; nodes: Array<{ name: string; role: string; up: boolean }> }>;
  /** Prometheus text exposition. */
  metrics(): Promise<{ contentType: string; text: string }>;
  /** Every lock, up to LOCKS_MAX (the API sorts them by name and pages them). */
  locks(): Promise<LockRow[]>;
  clients(): Promise<ClientRow[]>;
  /** The grant revoked (owner null: the lock was not held), or an error text. */
  revoke(lock: string): Promise<{ owner: number | null; token: number | null } | string>;
}

/** What the source cannot answer now (no leader, a node rejoining): 503, as /health says, rather than 500. */
export class UnavailableError extends Error {
  override readonly name = 'UnavailableError';
}

export interface AdminOptions {
  host: string;
  port: number;
  /** Bearer token for everything but /health and /metrics; null: those endpoints are refused. */
  adminToken: string | null;
  /** Host names besides IP literals and localhost that requests may name (--http-allowed-host); compared without case. */
  allowedHosts?: readonly string[];
  log: (kind: 'info' | 'warn', text: string) => void;
}

/** A name --http-allowed-host takes: a DNS name (letters, digits, `-`, `.`), without a port. */
export const ALLOWED_HOST_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/;

/**
 * The host a Host header names, lower-case, without its port, brackets or
 * a final dot; null when it is not a host[:port] at all.
 */
export function hostOf(header: string): string | null {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) {
    const m = /^\[([0-9a-f:.]+)\](?::\d{1,5})?$/.exec(h);
    return m !== null && isIP(m[1] as string) === 6 ? (m[1] as string) : null;
  }
  const m = /^([^:[\]]+)(?::\d{1,5})?$/.exec(h);
  if (m === null) return null;
  const name = m[1] as string;
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

/** Whether the API answers a request whose Host header names `host` (see hostOf): an IP literal, localhost, or an allowed name. */
export function hostAllowed(host: string, allowed: ReadonlySet<string>): boolean {
  return isIP(host) !== 0 || host === 'localhost' || allowed.has(host);
}

/** Locks a source lists for one request at most. */
export const LOCKS_MAX = 1_000_000;

const PAGE_DEFAULT = 100;
const PAGE_MAX = 1000;

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** `limit` and `after` of a paged list: a page of rows after `after`, and where the next page starts (null: none). */
function page<T>(rows: T[], key: (row: T) => string, url: URL): { rows: T[]; next: string | null } | string {
  const limitText = url.searchParams.get('limit');
  const limit = limitText === null ? PAGE_DEFAULT : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > PAGE_MAX) return `limit must be a whole number from 1 to ${PAGE_MAX}`;
  const after = url.searchParams.get('after');
  const from = after === null ? rows : rows.filter((r) => key(r) > after);
  const out = from.slice(0, limit);
  return { rows: out, next: from.length > limit && out.length > 0 ? key(out[out.length - 1] as T) : null };
}

/** At most one log line per source per this long about refused Host headers and requests without a token. */
const LOG_INTERVAL_MS = 10_000;

export function serveAdmin(source: AdminSource, o: AdminOptions): Promise<Server> {
  const want = o.adminToken === null ? null : digest(o.adminToken);
  const authorized = (req: IncomingMessage): boolean => {
    if (want === null) return false;
    const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    return m !== null && timingSafeEqual(digest(m[1] as string), want); // equal-length digests: constant time
  };
  const allowedHosts = new Set((o.allowedHosts ?? []).map((h) => hostOf(h) ?? h.toLowerCase()));
  // Wrong bearer tokens per source address; one throttle for this server. Threading: the serving thread.
  const throttle = new AuthThrottle();
  const hostLog = new LogThrottle(LOG_INTERVAL_MS);
  const noTokenLog = new LogThrottle(LOG_INTERVAL_MS);
  const retryIn = (ms: number): number => Math.max(1, Math.ceil(ms / 1000));
  /** 429 while `from` is blocked: no token is checked, the right one included. */
  const tooMany = (res: ServerResponse, retryMs: number): void => {
    res.setHeader('retry-after', String(retryIn(retryMs)));
    send(res, 429, { error: `too many failed admin token attempts from this address; retry in ${retryIn(retryMs)} s` });
  };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const from = sourceOf(req.socket.remoteAddress);
    // DNS rebinding: the Host header must name this API, on every path.
    const hostHeader = req.headers.host;
    if (hostHeader === undefined) return send(res, 400, { error: 'no Host header: send one naming this API (an IP address, localhost or an --http-allowed-host name)' });
    const host = hostOf(hostHeader);
    if (host === null || !hostAllowed(host, allowedHosts)) {
      const due = hostLog.event(from);
      if (due !== null) o.log('warn', `admin API: refused a request from ${from} for Host ${JSON.stringify(hostHeader.slice(0, 100))}${due.suppressed > 0 ? ` (${due.suppressed} more refused since the last line)` : ''}; allow a name with --http-allowed-host`);
      return send(res, 421, { error: `Host ${JSON.stringify(hostHeader.slice(0, 100))} is not allowed: the admin API answers to an IP address, localhost or a name given with --http-allowed-host` });
    }
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    if (path === '/health') {
      if (req.method !== 'GET') return send(res, 405, { error: 'use GET' });
      const h = await source.health();
      return send(res, h.ok ? 200 : 503, h);
    }
    if (path === '/metrics') {
      if (req.method !== 'GET') return send(res, 405, { error: 'use GET' });
      const m = await source.metrics();
      res.writeHead(200, { 'content-type': m.contentType });
      res.end(m.text);
      return;
    }
    const revoke = /^\/locks\/([^/]+)\/revoke$/.exec(path);
    if (path !== '/locks' && path !== '/clients' && revoke === null) return send(res, 404, { error: `no ${path}: the admin API has /health, /metrics, /locks, /clients and POST /locks/NAME/revoke` });
    if (o.adminToken === null) return send(res, 403, { error: 'this endpoint needs an admin token: start with --admin-token (or DLOCK_ADMIN_TOKEN)' });
    if (!throttle.allowed(from)) {
      // Blocked: refused without a check, and counted (the throttle's contract); its log line came when it was blocked.
      const retryMs = throttle.retryAfterMs(from);
      if (throttle.failed(from).log) o.log('warn', `admin API: ${from} is refused for ${retryIn(retryMs)} s more (wrong admin tokens)`);
      return tooMany(res, retryMs);
    }
    if (!authorized(req)) {
      if (req.headers.authorization === undefined) {
        // No token at all is no guess: not counted, and logged a line per source per interval.
        const due = noTokenLog.event(from);
        if (due !== null) o.log('warn', `admin API: ${req.method ?? '?'} ${path} from ${from} without the admin token${due.suppressed > 0 ? ` (${due.suppressed} more since the last line)` : ''}`);
        res.setHeader('www-authenticate', 'Bearer');
        return send(res, 401, { error: 'send the admin token: Authorization: Bearer TOKEN' });
      }
      const f = throttle.failed(from);
      if (f.log) {
        const blocked = f.blocked ? `; ${from} is refused for ${retryIn(throttle.retryAfterMs(from))} s` : '';
        o.log('warn', `admin API: ${req.method ?? '?'} ${path} from ${from}: wrong admin token: failure ${f.count} from ${from} in this window${f.unlogged > 0 ? ` (${f.unlogged} not logged)` : ''}${blocked}`);
      }
      if (f.blocked) return tooMany(res, throttle.retryAfterMs(from));
      res.setHeader('www-authenticate', 'Bearer');
      return send(res, 401, { error: 'send the admin token: Authorization: Bearer TOKEN' });
    }
    if (revoke !== null) {
      if (req.method !== 'POST') return send(res, 405, { error: 'use POST' });
      // NAME as the protocol takes lock names [LP-12]: nothing else is logged or replicated.
      let lock: string;
      try {
        lock = decodeURIComponent(revoke[1] as string);
      } catch (err) {
        if (!(err instanceof URIError)) throw err;
        return send(res, 400, { error: 'bad percent-escape in the lock name: NAME is the lock name, percent-encoded as UTF-8' });
      }
      const bad = lockNameError(lock);
      if (bad !== null) return send(res, 400, { error: bad });
      o.log('warn', `admin API: revoke ${lock} (from ${from})`);
      const r = await source.revoke(lock);
      if (typeof r === 'string') return send(res, 502, { lock, error: r });
      return send(res, 200, { lock, revoked: r.owner !== null, owner: r.owner, token: r.token });
    }
    if (req.method !== 'GET') return send(res, 405, { error: 'use GET' });
    if (path === '/locks') {
      const prefix = url.searchParams.get('prefix') ?? '';
      // By name, for paging (a node's lock map lists large tables in table order).
      const all = (await source.locks()).filter((l) => l.lock.startsWith(prefix)).sort((a, b) => (a.lock < b.lock ? -1 : a.lock > b.lock ? 1 : 0));
      const p = page(all, (l) => l.lock, url);
      if (typeof p === 'string') return send(res, 400, { error: p });
      return send(res, 200, { locks: p.rows, next: p.next });
    }
    const key = (c: ClientRow): string => String(c.client).padStart(16, '0');
    const all = (await source.clients()).sort((a, b) => a.client - b.client);
    const p = page(all, key, url);
    if (typeof p === 'string') return send(res, 400, { error: p });
    return send(res, 200, { clients: p.rows, next: p.next === null ? null : p.next });
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      o.log('warn', `admin API: ${req.method ?? '?'} ${req.url ?? '?'} failed: ${(err as Error).message}`);
      if (!res.headersSent) send(res, err instanceof UnavailableError ? 503 : 500, { error: (err as Error).message });
      else res.end();
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/** Where to serve it: --http-host, --http-port, --admin-token, --http-allowed-host. */
export interface AdminListen {
  host: string;
  port: number;
  token: string | null;
  /** --http-allowed-host: names requests may give in Host besides IP literals and localhost. */
  allowedHosts?: readonly string[];
}

/**
 * Serve the admin API for `source` as `dlock up` and `dlock node` do, and
 * log where (and what it refuses without a token); its address is for the
 * ready line (` http=HOST:PORT`).
 */
export async function startAdmin(source: AdminSource, a: AdminListen, log: AdminOptions['log']): Promise<{ server: Server; address: string }> {
  const server = await serveAdmin(source, { host: a.host, port: a.port, adminToken: a.token, allowedHosts: a.allowedHosts ?? [], log });
  const addr = server.address();
  const address = `${a.host}:${typeof addr === 'object' && addr !== null ? addr.port : a.port}`;
  log('info', `admin API on http://${address} (/health, /metrics${a.token === null ? '; no --admin-token: /locks, /clients and revoke are refused' : ', /locks, /clients, POST /locks/NAME/revoke'})`);
  return { server, address };
}

/**
 * The admin address to advertise in etcd for `dlock admin --etcd`, given
 * where the API listens (`address`, HOST:PORT as startAdmin returns it)
 * and the host the node serves clients on: a wildcard bind is advertised
 * on the node's host, and a loopback bind only when the node's host is
 * loopback too (another host reaching "127.0.0.1" would reach itself, and
 * send it the admin token). Null: nothing other hosts could reach.
 */
export function advertisedAdmin(address: string, nodeHost: string): string | null {
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at);
  const port = address.slice(at + 1);
  if (host === '0.0.0.0' || host === '::' || host === '') return nodeHost === '0.0.0.0' || nodeHost === '::' || nodeHost === '' ? null : `${nodeHost}:${port}`;
  if (isLoopback(host) && !isLoopback(nodeHost)) return null;
  return address;
}
