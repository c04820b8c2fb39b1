/**
 * The admin API on `dlock node` (across hosts): the same
 * endpoints as `dlock up`'s, for one node process on a real etcd member,
 * with real requests. /health is 200 while the node has its state and a
 * leader, and 503 with the reason when it has lost etcd, until it has
 * rejoined.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dumpOnFailure, run, type Running } from '../helpers/dlock-process.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { eventually, LineClient } from '../helpers/line-client.js';

const TOKEN = 'node-admin-token';
const auth = { authorization: `Bearer ${TOKEN}` };

describe.skipIf(!hasEtcd)('the admin API on dlock node', () => {
  let etcd: EtcdCluster;
  const nodes: Array<{ name: string; proc: Running }> = [];
  dumpOnFailure(() => nodes);
  const open: LineClient[] = [];
  let base = '';
  let port = 0;
  const get = async (path: string, headers: Record<string, string> = auth): Promise<{ status: number; body: Record<string, unknown> }> => {
    const r = await fetch(`${base}${path}`, { headers });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };

  beforeAll(async () => {
    etcd = await EtcdCluster.start(1);
    // A short node ttl: it stops serving within 2 s of losing etcd.
    const proc = run(['node', '--replication', 'etcd', '--etcd', etcd.endpoints.join(','), '--name', 'a1', '--cluster', 'admin', '--first-token', '1', '--node-ttl', '3', '--http-port', '0', '--admin-token', TOKEN, '--log-format', 'json']);
    nodes.push({ name: 'a1', proc });
    await eventually(() => /^ready /m.test(proc.out()) || proc.child.exitCode !== null, 'the ready line', 20_000);
    const m = /^ready node=a1 index=\d+ address=127\.0\.0\.1:(\d+) link=\S+ first-client=\d+ role=leader http=(127\.0\.0\.1:\d+)$/m.exec(proc.out());
    if (m === null) throw new Error(`no ready line with http=:\n${proc.out()}\n${proc.err()}`);
    port = Number(m[1]);
    base = `http://${m[2]}`;
  }, 60_000);
  afterAll(async () => {
    for (const c of open) c.close();
    for (const n of nodes) if (n.proc.child.exitCode === null) n.proc.child.kill('SIGKILL');
    await etcd?.stop();
  });

  it('health, metrics (commit latency, elections and rejoins included), locks, clients and revoke, as on dlock up', async () => {
    const h = await get('/health', {});
    expect(h.status).toBe(200);
    expect(h.body).toMatchObject({ ok: true, nodes: [{ name: 'a1', role: 'leader', up: true }] });
    const c = await LineClient.open(port);
    open.push(c);
    expect(await c.ask('preempt admin-lock')).toBe(`PreemptLock Success owner=${c.id} token=1`);
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toMatch(/^dlock_requests_total\{verb="preempt",result="ok",node="a1"\} 1$/m);
    // The leader's entry waited for etcd's txn: a commit latency was sampled.
    expect(text).toMatch(/^dlock_commit_latency_seconds_count\{node="a1"\} [1-9]\d*$/m);
    expect(text).toMatch(/^dlock_locks\{node="a1"\} 1$/m);
    expect(text).toMatch(/^dlock_leader_elections_total\{node="a1"\} 1$/m);
    expect(text).toMatch(/^dlock_node_rejoins_total\{node="a1"\} 0$/m);
    expect((await get('/locks', {})).status).toBe(401); // the token is needed, as on dlock up
    expect((await get('/locks?prefix=admin')).body).toMatchObject({ locks: [{ lock: 'admin-lock', owner: c.id, token: 1 }], next: null });
    expect((await get('/clients')).body).toMatchObject({ clients: [{ node: 'a1', client: c.id, locks: 1, waiting: null }] });
    const r = await fetch(`${base}/locks/admin-lock/revoke`, { method: 'POST', headers: auth });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ lock: 'admin-lock', revoked: true, owner: c.id, token: 1 });
    expect(await c.ask('release admin-lock')).toBe('ReleaseLock Failed owner=none');
    expect(await c.ask('preempt admin-lock')).toBe(`PreemptLock Success owner=${c.id} token=2`); // a higher token [LP-7]
    const logged = (): Array<{ msg: string }> => nodes[0]!.proc.out().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string });
    await eventually(() => logged().some((l) => /admin API: revoke admin-lock/.test(l.msg)), 'the revoke in the JSON log');
  });

  it('/health is 503 with the reason once the node has lost etcd, and 200 again once it has rejoined (a peer that never closes does not hold it up)', async () => {
    await etcd.kill(0); // the only member: no etcd at all
    let h = { status: 0, body: {} as Record<string, unknown> };
    await eventually(async () => (h = await get('/health', {})).status === 503, '/health to say 503', 10_000, 100);
    expect(h.body['ok']).toBe(false);
    expect(String(h.body['reason'])).toMatch(/^(no contact with etcd for \d+ ms|stopped( serving|\b.*rejoining))/);
    // Stopped, it answers what it can no longer serve with 503 too, not 500.
    await eventually(async () => (await get('/locks')).status === 503, '/locks to say 503 while rejoining', 10_000, 100);
    expect(String((await get('/locks')).body['error'])).toMatch(/a1 is not serving: it rejoins the cluster once etcd answers/);
    // A peer that never closes its side (as one whose host was cut off):
    // it must not keep the node from taking its port back.
    const silent = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    silent.on('error', () => {});
    let said = '';
    silent.setEncoding('utf8').on('data', (d: string) => (said += d));
    await eventually(() => said.includes('\n'), 'the stopped node\'s answer');
    expect(said).toMatch(/^Error: this node lost contact with etcd/);
    await etcd.restart(0);
    await eventually(async () => (h = await get('/health', {})).status === 200, '/health 200 again', 30_000, 200);
    expect(h.body).toMatchObject({ ok: true, nodes: [{ name: 'a1', up: true }] });
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toMatch(/^dlock_node_rejoins_total\{node="a1"\} 1$/m);
    const back = await LineClient.open(port);
    open.push(back);
    expect(await back.ask('check admin-lock')).toMatch(/^CheckLock:/);
    silent.destroy();
    expect(text).toMatch(/^dlock_leader_elections_total\{node="a1"\} 2$/m); // it leads again, alone
  }, 60_000);

  it('after the leader\'s process is killed, a survivor\'s /health says no leader can take writes while etcd still names the dead one', async () => {
    const start = async (name: string): Promise<string> => {
      const proc = run(['node', '--replication', 'etcd', '--etcd', etcd.endpoints.join(','), '--name', name, '--cluster', 'admin-kill', '--http-port', '0', '--admin-token', TOKEN]);
      nodes.push({ name, proc });
      await eventually(() => /^ready /m.test(proc.out()) || proc.child.exitCode !== null, `${name} ready`, 20_000);
      const m = / http=(127\.0\.0\.1:\d+)$/m.exec(proc.out());
      if (m === null) throw new Error(`no ready line with http=:\n${proc.out()}\n${proc.err()}`);
      return `http://${m[1]}`;
    };
    await start('k1'); // leads (first in the election), with the default node ttl (10 s)
    const survivor = await start('k2');
    const health = async (): Promise<{ status: number; reason: string }> => {
      const r = await fetch(`${survivor}/health`);
      return { status: r.status, reason: String(((await r.json()) as Record<string, unknown>)['reason']) };
    };
    await eventually(async () => (await health()).status === 200, 'the survivor healthy, a leader leading', 15_000, 100);
    expect((await health()).reason).toMatch(/a leader leads/);
    const killed = performance.now();
    nodes.find((n) => n.name === 'k1')?.proc.child.kill('SIGKILL');
    let h = { status: 0, reason: '' };
    const seen: string[] = [];
    await eventually(async () => { h = await health(); seen.push(`${Math.round(performance.now() - killed)} ${h.status} ${h.reason.slice(0, 60)}`); return h.status === 503; }, '/health to say no leader can take writes', 6000, 50).catch((err: unknown) => {
      process.stdout.write(seen.join('\n') + '\n');
      throw new Error(`${(err as Error).message}; last: ${JSON.stringify(h)}`);
    });
    expect(h.reason).toMatch(/^no leader can take writes: k1, named in etcd, has not answered on its link for \d+ ms/);
    // Said while etcd still names k1 the leader: the etcd view alone would have said "a leader leads".
    // Its lease ends, the survivor is elected, and says so.
    await eventually(async () => (h = await health()).status === 200, 'the survivor leads', 30_000, 200);
    expect(h.reason).toMatch(/leads/);
  }, 60_000);

  it('dlock admin finds the admin API in etcd (--etcd, or $DLOCK_ETCD without --http-port), on either engine', async () => {
    for (const engine of ['group', 'etcd'] as const) {
      const cluster = `admin-find-${engine}`;
      const starts: Array<{ name: string; admin: boolean }> = [{ name: `f1-${engine}`, admin: true }, { name: `f2-${engine}`, admin: true }];
      const ports: number[] = [];
      for (const s of starts) {
        const proc = run(['node', '--replication', engine, '--etcd', etcd.endpoints.join(','), '--name', s.name, '--cluster', cluster, '--http-port', '0', '--admin-token', TOKEN]);
        nodes.push({ name: s.name, proc });
        await eventually(() => /^ready /m.test(proc.out()) || proc.child.exitCode !== null, `${s.name} ready`, 20_000);
        ports.push(Number(/address=127\.0\.0\.1:(\d+)/.exec(proc.out())?.[1]));
      }
      const c = await LineClient.open(ports[0] as number);
      open.push(c);
      expect(await c.ask('preempt found-in-etcd ttl=60000')).toMatch(/^PreemptLock Success/);
      const locks = run(['admin', 'locks', '--etcd', etcd.endpoints.join(','), '--cluster', cluster, '--admin-token', TOKEN]);
      expect(await locks.exit, locks.err()).toBe(0);
      expect(locks.out()).toMatch(/found-in-etcd/);
      const viaEnv = run(['admin', 'health', '--cluster', cluster, '--admin-token', TOKEN], undefined, { ...process.env, DLOCK_ETCD: etcd.endpoints.join(',') });
      expect(await viaEnv.exit, viaEnv.err()).toBe(0);
      expect(viaEnv.out()).toMatch(/ok|leads/);
    }
    // A cluster whose nodes serve no admin API: said, exit 2.
    const none = run(['admin', 'health', '--etcd', etcd.endpoints.join(','), '--cluster', 'admin-kill-nobody']);
    expect(await none.exit).toBe(2);
    expect(none.err()).toMatch(/no live node of cluster admin-kill-nobody .* serves the admin API \(start dlock node with --http-port\)/);
    const both = run(['admin', 'health', '--etcd', etcd.endpoints.join(','), '--http-port', '9080']);
    expect(await both.exit).toBe(2);
    expect(both.err()).toMatch(/--etcd and --http-port: give one or the other/);
  }, 90_000);
});
