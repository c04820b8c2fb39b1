/**
 * `dlock node --replication group` through an etcd outage (docs/design.md):
 * etcd keeps only the configuration, so while it is stopped (SIGSTOP: its
 * connections hang, the harder case) every member goes on serving, past
 * its own etcd lease. A secondary killed during the outage cannot be
 * removed: writes wait and are answered with an error [LP-2], never with a
 * grant that only some members hold [LP-11]. etcd back, the group drops
 * the dead member and writes go on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dumpOnFailure, startNode, type ReadyNode } from '../helpers/dlock-process.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { ClientPool, eventually } from '../helpers/line-client.js';

type Node = ReadyNode & { name: string; http: string };

/** The admin API's /health of a node: its status and its reason. */
async function health(n: Node): Promise<{ status: number; ok: boolean; reason: string }> {
  const r = await fetch(`${n.http}/health`);
  const body = (await r.json()) as { ok: boolean; reason: string };
  return { status: r.status, ok: body.ok, reason: body.reason };
}

describe.skipIf(!hasEtcd)('the group protocol while etcd is stopped', () => {
  let etcd: EtcdCluster;
  const nodes: Node[] = [];
  dumpOnFailure(() => nodes);
  const pool = new ClientPool();
  const output = (n: Node): string => n.proc.out() + n.proc.err();

  beforeAll(async () => {
    etcd = await EtcdCluster.start(1);
    for (const name of ['o1', 'o2', 'o3']) {
      const n = { name, ...(await startNode(['--etcd', etcd.endpoints.join(','), '--name', name, '--cluster', 'outage', '--replication', 'group', '--node-ttl', '2', '--http-port', '0', '--admin-token', 'outage-admin-token'], process.env, 40_000)) };
      const http = / http=(127\.0\.0\.1:\d+) /.exec(n.proc.out())?.[1];
      if (http === undefined) throw new Error(`no http= on the ready line:\n${n.proc.out()}`);
      nodes.push({ ...n, http: `http://${http}` });
    }
  }, 90_000);
  afterAll(async () => {
    pool.closeAll();
    etcd?.resume(0);
    for (const n of nodes) if (n.proc.child.exitCode === null) n.proc.child.kill('SIGKILL');
    await etcd?.stop();
  });

  it('every member serves past its etcd lease; a member lost meanwhile makes writes fail, never succeed on part of the group; etcd back, writes go on', async () => {
    const clients = await Promise.all(nodes.map((n) => pool.open(n.port)));
    for (const [i, c] of clients.entries()) {
      // Every node a secondary or the primary: it writes, and reads (a learner being added cannot yet).
      await eventually(async () => (await c.ask(`preempt warm-${i}`, 10_000)).startsWith('PreemptLock Success') && (await c.ask(`check warm-${i}`)).startsWith('CheckLock:Lock:'), `a write and a read through ${nodes[i]?.name}`, 20_000, 100);
    }
    const primaryAt = clients.findIndex((c) => / role: leader$/.test(c.greeting));
    expect(primaryAt).toBeGreaterThanOrEqual(0);
    // /health says what each one is.
    for (const [i, n] of nodes.entries()) {
      const h = await health(n);
      expect(h.status, h.reason).toBe(200);
      expect(h.reason).toMatch(i === primaryAt ? /^the primary of configuration \d+, with a lease from every secondary/ : /^a secondary of configuration \d+; primary \S+ leads/);
    }
    etcd.pause(0);
    // Writes and reads through every node, until every node has lost its etcd lease, and after.
    let round = 0;
    const serve = async (): Promise<void> => {
      round++;
      for (const [i, c] of clients.entries()) {
        const lock = `outage-${i}-${round}`;
        expect(await c.ask(`preempt ${lock}`, 5000)).toMatch(new RegExp(`^PreemptLock Success owner=${c.id} token=\\d+$`));
        expect(await c.ask(`check ${lock}`, 5000)).toMatch(new RegExp(`^CheckLock:Lock:${c.id} token=\\d+$`));
        expect(await c.ask(`release ${lock}`, 5000)).toBe('ReleaseLock Success');
      }
    };
    await eventually(async () => {
      await serve();
      return nodes.every((n) => /etcd lease lost \(.*\): still serving/.test(output(n)));
    }, 'every node past its etcd lease, serving', 20_000, 50);
    for (let k = 0; k < 20; k++) await serve();
    for (const n of nodes) expect((await health(n)).status).toBe(200); // etcd is not who decides
    // A secondary killed while etcd is stopped: nobody can remove it, so nothing commits, and every write is answered with an error [LP-2].
    const victim = (primaryAt + 1) % nodes.length;
    nodes[victim]?.proc.child.kill('SIGKILL');
    const primary = clients[primaryAt]!;
    const t0 = performance.now();
    const reply = await primary.ask('preempt while-a-member-is-lost', 15_000);
    expect(reply).toMatch(/^Error: /);
    expect(performance.now() - t0).toBeLessThan(12_000);
    // The primary's /health says no write can be taken, and why.
    const h = await health(nodes[primaryAt]!);
    expect(h.status).toBe(503);
    expect(h.reason).toMatch(/^the primary of configuration \d+, without a lease from every secondary: writes wait until one is removed$/);
    // etcd back: the dead member is removed and writes go on through the survivors.
    etcd.resume(0);
    for (const [i, first] of clients.entries()) {
      if (i === victim) continue;
      // The race for the new configuration may leave this node out for a while: it then closes its clients (their sessions were ended [LP-8]), and a client connects again.
      let c = first;
      await eventually(async () => {
        if (c.ended) c = await pool.open(nodes[i]!.port);
        const r = await c.ask(`preempt after-outage-${i}`, 10_000).catch((err: Error) => `closed: ${err.message}`);
        return r.startsWith('PreemptLock Success');
      }, `a write through ${nodes[i]?.name} once etcd is back`, 40_000, 200);
    }
    for (const [i, n] of nodes.entries()) if (i !== victim) await eventually(() => /registered again in etcd/.test(output(n)), `${n.name} registered again`, 30_000, 100);
    const text = await (await fetch(`${nodes[primaryAt]!.http}/metrics`)).text();
    expect(text).toMatch(/^dlock_node_rejoins_total\{node="\S+"\} 1$/m);
  }, 150_000);
});
