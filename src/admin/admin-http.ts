/**
 * The admin API over HTTP (issue 14 §2), for operators and their tools:
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
 * token configured those endpoints are refused (403). It listens on
 * loopback unless told otherwise (--http-host).
 *
 * Threading: the thread that serves it (the main thread of `dlock up`).
 * What it shows comes from an AdminSource (admin-cluster.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { LockRow } from '../node/node.js';

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
  log: (kind: 'info' | 'warn', text: string) => void;
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

export function serveAdmin(source: AdminSource, o: AdminOptions): Promise<Server> {
  const want = o.adminToken === null ? null : digest(o.adminToken);
  const authorized = (req: IncomingMessage): boolean => {
    if (want === null) return false;
    const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    return m !== null && timingSafeEqual(digest(m[1] as string), want); // equal-length digests: constant time
  };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
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
    if (!authorized(req)) {
      o.log('warn', `admin API: ${req.method ?? '?'} ${path} from ${req.socket.remoteAddress ?? '?'} without the admin token`);
      res.setHeader('www-authenticate', 'Bearer');
      return send(res, 401, { error: 'send the admin token: Authorization: Bearer TOKEN' });
    }
    if (revoke !== null) {
      if (req.method !== 'POST') return send(res, 405, { error: 'use POST' });
      const lock = decodeURIComponent(revoke[1] as string);
      o.log('warn', `admin API: revoke ${lock} (from ${req.socket.remoteAddress ?? '?'})`);
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

/** Where to serve it: --http-host, --http-port, --admin-token. */
export interface AdminListen {
  host: string;
  port: number;
  token: string | null;
}

/**
 * Serve the admin API for `source` as `dlock up` and `dlock node` do, and
 * log where (and what it refuses without a token); its address is for the
 * ready line (` http=HOST:PORT`).
 */
export async function startAdmin(source: AdminSource, a: AdminListen, log: AdminOptions['log']): Promise<{ server: Server; address: string }> {
  const server = await serveAdmin(source, { host: a.host, port: a.port, adminToken: a.token, log });
  const addr = server.address();
  const address = `${a.host}:${typeof addr === 'object' && addr !== null ? addr.port : a.port}`;
  log('info', `admin API on http://${address} (/health, /metrics${a.token === null ? '; no --admin-token: /locks, /clients and revoke are refused' : ', /locks, /clients, POST /locks/NAME/revoke'})`);
  return { server, address };
}
