/**
 * `dlock admin locks|clients|revoke LOCK|health`: the admin API
 * (admin-http.ts) from the shell. Prints a table (or, with --json, the
 * API's JSON); exit 0 on success, 1 when revoke found the lock not held or
 * health is not ok, 2 when the API could not be reached or refused.
 */
import type { LockRow } from '../node/node.js';
import type { ClientRow } from './admin-http.js';

export interface AdminCommandOptions {
  action: 'locks' | 'clients' | 'revoke' | 'health';
  lock: string;
  host: string;
  port: number;
  token: string | null;
  prefix: string;
  limit: number;
  json: boolean;
  out?: NodeJS.WritableStream;
  err?: NodeJS.WritableStream;
}

export async function adminCommand(o: AdminCommandOptions): Promise<number> {
  const out = o.out ?? process.stdout;
  const err = o.err ?? process.stderr;
  const base = `http://${o.host}:${o.port}`;
  const headers: Record<string, string> = o.token === null ? {} : { authorization: `Bearer ${o.token}` };
  const path =
    o.action === 'locks' ? `/locks?prefix=${encodeURIComponent(o.prefix)}&limit=${Math.min(o.limit, 1000)}` : o.action === 'clients' ? `/clients?limit=${Math.min(o.limit, 1000)}` : o.action === 'health' ? '/health' : `/locks/${encodeURIComponent(o.lock)}/revoke`;
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, { method: o.action === 'revoke' ? 'POST' : 'GET', headers });
  } catch (e) {
    err.write(`dlock admin: cannot reach the admin API at ${base}: ${((e as Error).cause as Error | undefined)?.message ?? (e as Error).message}\n`);
    return 2;
  }
  const body = (await res.json().catch(() => null)) as Record<string, unknown> | null;
  if (body === null) {
    err.write(`dlock admin: ${base}${path} answered ${res.status} with no JSON\n`);
    return 2;
  }
  if (o.json) out.write(`${JSON.stringify(body)}\n`);
  if (o.action === 'health') {
    if (!o.json) out.write(`${res.ok ? 'ok' : 'not ok'}: ${String(body['reason'])}\n`);
    return res.ok ? 0 : 1;
  }
  if (!res.ok) {
    const hint = res.status === 401 ? '; give it with --admin-token, --admin-token-file or DLOCK_ADMIN_TOKEN' : '';
    err.write(`dlock admin: ${String(body['error'] ?? res.statusText)}${hint} (HTTP ${res.status})\n`);
    return 2;
  }
  if (o.json) return o.action === 'revoke' && body['revoked'] !== true ? 1 : 0;
  if (o.action === 'revoke') {
    out.write(body['revoked'] === true ? `revoked ${o.lock} from client ${String(body['owner'])} (token ${String(body['token'])})\n` : `${o.lock} was not held\n`);
    return body['revoked'] === true ? 0 : 1;
  }
  if (o.action === 'locks') {
    const rows = body['locks'] as LockRow[];
    out.write(`${'LOCK'.padEnd(24)} ${'OWNER'.padStart(10)} ${'TOKEN'.padStart(18)} ${'TTL LEFT'.padStart(10)} WAITERS\n`);
    for (const r of rows) out.write(`${r.lock.padEnd(24)} ${String(r.owner).padStart(10)} ${String(r.token).padStart(18)} ${(r.ttlLeft === null ? 'session' : `${r.ttlLeft} ms`).padStart(10)} ${r.waiters.length}${r.value === undefined ? '' : ` value=${r.value}`}${r.holders === undefined ? '' : ` ${r.limit === null || r.limit === undefined ? 'shared' : `held=${r.holders.length}/${r.limit}`} holders=${r.holders.join(',')}`}\n`);
    if (body['next'] !== null) out.write(`(more: --prefix and --limit narrow it; the API pages with after=${String(body['next'])})\n`);
    return 0;
  }
  const rows = body['clients'] as ClientRow[];
  out.write(`${'CLIENT'.padStart(10)} ${'NODE'.padEnd(12)} ${'ADDRESS'.padEnd(22)} ${'LOCKS'.padStart(6)} WAITING ON\n`);
  for (const c of rows) out.write(`${String(c.client).padStart(10)} ${c.node.padEnd(12)} ${c.remote.padEnd(22)} ${String(c.locks).padStart(6)} ${c.waiting ?? ''}\n`);
  return 0;
}
