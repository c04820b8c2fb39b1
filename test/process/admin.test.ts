/**
 * The admin API over HTTP and `dlock admin`, with real
 * requests against a real `dlock up --http-port 0 --admin-token …`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, up, type Running } from '../helpers/dlock-process.js';
import { eventually, LineClient } from '../helpers/line-client.js';

const TOKEN = 'admin-secret-token';
let proc: Running;
let ports: Record<string, number>;
let base = '';
const open: LineClient[] = [];

async function client(node: string): Promise<LineClient> {
  const c = await LineClient.open(ports[node] as number);
  open.push(c);
  return c;
}
const auth = { authorization: `Bearer ${TOKEN}` };
const get = async (path: string, headers: Record<string, string> = auth): Promise<{ status: number; body: Record<string, unknown> }> => {
  const r = await fetch(`${base}${path}`, { headers });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
};

beforeAll(async () => {
  ({ proc, ports } = await up(['--no-tui', '--http-port', '0', '--admin-token', TOKEN, '--log-format', 'json']));
  base = `http://127.0.0.1:${ports['http']}`;
});
afterAll(() => {
  for (const c of open) c.close();
  if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
});

describe('the admin API', () => {
  it('GET /health: 200 with every node and the leader', async () => {
    const h = await get('/health', {});
    expect(h.status).toBe(200);
    expect(h.body).toMatchObject({ ok: true, nodes: [{ name: 'leader', role: 'leader', up: true }, { name: 'follower-1', up: true }, { name: 'follower-2', up: true }] });
  });

  it('GET /metrics: Prometheus text, each series labelled with its node', async () => {
    const c = await client('follower-1');
    expect(await c.ask('preempt adm-m')).toMatch(/^PreemptLock Success/);
    expect(await c.ask('preempt adm-m2 ttl=0')).toMatch(/^Error:/);
    const r = await fetch(`${base}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await r.text();
    expect(text).toMatch(/^dlock_requests_total\{verb="preempt",result="ok",node="follower-1"\} [1-9]\d*$/m);
    expect(text).toMatch(/^dlock_requests_total\{verb="invalid",result="error",node="follower-1"\} [1-9]\d*$/m);
    expect(text).toMatch(/^dlock_request_duration_seconds_bucket\{le="\+Inf",verb="preempt",node="follower-1"\} [1-9]\d*$/m);
    expect(text).toMatch(/^dlock_locks\{node="leader"\} [1-9]\d*$/m);
    expect(text).toMatch(/^dlock_follower_lag_entries\{follower="follower-1",node="leader"\} \d+$/m);
    expect(text).toMatch(/^dlock_failovers_total 0$/m);
    // Commit latency: the leader's entries wait for every follower's ack.
    expect(text).toMatch(/^dlock_commit_latency_seconds_count\{node="leader"\} [1-9]\d*$/m);
    expect(text).toMatch(/^dlock_commit_latency_seconds_bucket\{le="\+Inf",node="leader"\} [1-9]\d*$/m);
  });

  it('everything else needs the admin token, compared as a whole', async () => {
    expect((await get('/locks', {})).status).toBe(401);
    expect((await get('/locks', { authorization: `Bearer ${TOKEN}x` })).status).toBe(401);
    expect((await get('/clients', { authorization: 'Basic abc' })).status).toBe(401);
    const r = await fetch(`${base}/locks/adm-m/revoke`, { method: 'POST' });
    expect(r.status).toBe(401);
    expect((await get('/nothing-here')).status).toBe(404);
  });

  it('GET /locks pages by name, with a prefix; GET /clients lists the connected clients', async () => {
    const c = await client('follower-2');
    for (const n of ['adm-p1', 'adm-p2', 'adm-p3']) expect(await c.ask(`preempt ${n} ttl=60000`)).toMatch(/^PreemptLock Success/);
    const first = await get('/locks?prefix=adm-p&limit=2');
    expect(first.status).toBe(200);
    expect((first.body['locks'] as Array<{ lock: string }>).map((l) => l.lock)).toEqual(['adm-p1', 'adm-p2']);
    expect(first.body['next']).toBe('adm-p2');
    const second = await get('/locks?prefix=adm-p&limit=2&after=adm-p2');
    expect(second.body).toMatchObject({ locks: [{ lock: 'adm-p3', owner: c.id, waiters: [] }], next: null });
    expect((await get('/locks?limit=0')).status).toBe(400);
    const clients = (await get('/clients?limit=1000')).body['clients'] as Array<{ client: number; node: string; locks: number }>;
    expect(clients).toContainEqual(expect.objectContaining({ client: c.id, node: 'follower-2', locks: 3 }));
  });

  it('POST /locks/NAME/revoke: the lock is freed, the next grant gets a higher token, the former owner\'s renew and release fail', async () => {
    const owner = await client('follower-1');
    const granted = await owner.ask('preempt adm-r ttl=60000');
    const token = Number(/token=(\d+)/.exec(granted)?.[1]);
    const r = await fetch(`${base}/locks/adm-r/revoke`, { method: 'POST', headers: auth });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ lock: 'adm-r', revoked: true, owner: owner.id, token });
    expect(await owner.ask('renew adm-r ttl=60000')).toBe('RenewLock Failed owner=none');
    const next = await client('follower-2');
    const again = await next.ask('preempt adm-r');
    expect(Number(/token=(\d+)/.exec(again)?.[1])).toBeGreaterThan(token);
    expect(await owner.ask('release adm-r')).toBe(`ReleaseLock Failed owner=${next.id}`);
    const none = await fetch(`${base}/locks/adm-none/revoke`, { method: 'POST', headers: auth });
    expect(await none.json()).toEqual({ lock: 'adm-none', revoked: false, owner: null, token: null });
    // Logged, as JSON lines (--log-format json): every line of stdout but the ready line is one object.
    const logged = (): Array<{ msg: string; node: string; time: string }> => proc.out().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; node: string; time: string });
    await eventually(() => logged().some((l) => l.node === 'leader' && /^admin: revoked adm-r from client \d+ \(token \d+\)$/.test(l.msg)), 'the revoke logged');
    expect(proc.out().split('\n').filter((l) => l !== '' && !l.startsWith('{') && !l.startsWith('ready '))).toEqual([]);
  });
});

describe('dlock lock and a revoke', () => {
  it('a lock revoked mid-run stops the command (SIGTERM), and dlock lock says why', async () => {
    const l = run(['lock', '--port', String(ports['follower-1']), '--ttl', '900', 'adm-job', '--', 'sh', '-c', 'echo started; trap "echo got TERM; exit 143" TERM; while :; do sleep 0.05; done']);
    await eventually(() => l.out().includes('started'), 'the command started', 10_000);
    const r = await fetch(`${base}/locks/adm-job/revoke`, { method: 'POST', headers: auth });
    expect(await r.json()).toMatchObject({ lock: 'adm-job', revoked: true });
    expect(await l.exit).toBe(143);
    expect(l.out()).toMatch(/got TERM/);
    expect(l.err()).toMatch(/^dlock lock: lost adm-job \(lease on adm-job lost: renew refused: lock adm-job is held by nobody\)/m);
  });
});

describe('dlock admin', () => {
  const admin = (args: string[], env: NodeJS.ProcessEnv = { ...process.env, DLOCK_ADMIN_TOKEN: TOKEN }): Running => run(['admin', ...args, '--http-port', String(ports['http'])], undefined, env);

  it('locks, clients and revoke from the shell, with exit statuses', async () => {
    const c = await client('leader');
    expect(await c.ask('preempt adm-cli ttl=60000')).toMatch(/^PreemptLock Success/);
    const locks = admin(['locks', '--prefix', 'adm-cli']);
    expect(await locks.exit).toBe(0);
    expect(locks.out()).toMatch(new RegExp(`^adm-cli +${c.id} +\\d+ +\\d+ ms 0$`, 'm'));
    const clients = admin(['clients']);
    expect(await clients.exit).toBe(0);
    expect(clients.out()).toMatch(new RegExp(`^ +${c.id} leader `, 'm'));
    const revoked = admin(['revoke', 'adm-cli']);
    expect(await revoked.exit).toBe(0);
    expect(revoked.out()).toMatch(new RegExp(`^revoked adm-cli from client ${c.id} \\(token \\d+\\)\\n$`));
    const again = admin(['revoke', 'adm-cli']);
    expect(await again.exit).toBe(1);
    // [LP-21] a semaphore's holders and count; a revoke ends every hold
    const d = await client('leader');
    expect(await c.ask('preempt adm-sem limit=3 ttl=60000')).toMatch(/^PreemptLock Success/);
    const newest = Number(/token=(\d+)/.exec(await d.ask('preempt adm-sem limit=3'))?.[1]);
    const sem = admin(['locks', '--prefix', 'adm-sem']);
    expect(await sem.exit).toBe(0);
    expect(sem.out()).toMatch(new RegExp(`^adm-sem +${d.id} +${newest} +session 0 held=2/3 holders=${c.id},${d.id}$`, 'm'));
    const revokedAll = admin(['revoke', 'adm-sem']);
    expect(await revokedAll.exit).toBe(0);
    expect(revokedAll.out()).toBe(`revoked adm-sem from client ${d.id} (token ${newest})\n`);
    expect(await c.ask('check adm-sem')).toBe('CheckLock:Free');
    const noToken = admin(['locks'], { ...process.env, DLOCK_ADMIN_TOKEN: '' });
    expect(await noToken.exit).toBe(2);
    expect(noToken.err()).toMatch(/send the admin token.*; give it with --admin-token, --admin-token-file or DLOCK_ADMIN_TOKEN \(HTTP 401\)\n$/);
  });
});
