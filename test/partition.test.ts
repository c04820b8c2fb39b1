/**
 * Partitions between hosts (issue 13): three hosts made of network
 * namespaces on a bridge, one `dlock node` process each, etcd on the
 * bridge. The leader's host is cut off (its link set down):
 *  - the partitioned leader cannot renew its etcd lease and stops
 *    (fail-stop) before etcd can expire it, so it answers no more writes;
 *  - the majority side elects another leader and carries on;
 *  - the cut-off node's clients' session locks end once its lease has
 *    expired, as documented; its leases stay [LP-5, LP-8].
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, type Running } from './helpers/dlock-process.js';
import { EtcdCluster, hasEtcd } from './helpers/etcd.js';
import { ClientPool, eventually, type LineClient } from './helpers/line-client.js';
import { canMakeHosts, Hosts } from './helpers/netns.js';

const TOKEN = 'partition-test-token';

describe.skipIf(!hasEtcd || !canMakeHosts)('a partition between hosts', () => {
  const hosts = new Hosts(`dlp${process.pid % 1000}`, `10.231.${process.pid % 200}`);
  let etcd: EtcdCluster;
  const nodes: Array<{ name: string; proc: Running; addr: string; port: number }> = [];
  const pool = new ClientPool();

  async function client(i: number): Promise<LineClient> {
    const n = nodes[i]!;
    const c = await pool.openAt(n.port, n.addr);
    expect(await c.ask(`auth ${TOKEN}`)).toBe('Auth Success');
    return c;
  }

  beforeAll(async () => {
    hosts.make(3);
    etcd = await EtcdCluster.start(1, hosts.gateway);
    for (const [i, h] of hosts.hosts.entries()) {
      const name = `h${i}`;
      const proc = run(['node', '--etcd', etcd.endpoints.join(','), '--name', name, '--host', h.addr, '--cluster', 'part', '--auth-token', TOKEN, '--first-token', '1'], undefined, process.env, h.ns);
      await eventually(() => /^ready /m.test(proc.out()) || proc.child.exitCode !== null, `${name} ready`, 20_000);
      const m = /address=[\d.]+:(\d+)/.exec(proc.out());
      if (m === null) throw new Error(`${name} did not start:\n${proc.out()}\n${proc.err()}`);
      nodes.push({ name, proc, addr: h.addr, port: Number(m[1]) });
    }
  }, 90_000);
  afterAll(async () => {
    pool.closeAll();
    for (const n of nodes) if (n.proc.child.exitCode === null) n.proc.child.kill('SIGKILL');
    await etcd?.stop();
    hosts.remove();
  });

  it('the cut-off leader stops; the majority carries on; its clients\' session locks end when its lease does', async () => {
    let leadIndex = -1;
    for (let i = 0; i < nodes.length; i++) {
      const c = await client(i);
      if (/ role: leader$/.test(await c.ask('whoami'))) leadIndex = i;
    }
    expect(leadIndex).toBeGreaterThanOrEqual(0);
    const onLead = await client(leadIndex);
    expect(await onLead.ask('preempt p-session')).toMatch(/^PreemptLock Success/);
    expect(await onLead.ask('preempt p-lease ttl=60000')).toMatch(/^PreemptLock Success/);
    const other = (leadIndex + 1) % nodes.length;
    const w = await client(other);
    const t0 = Date.now();
    hosts.link(leadIndex, false); // the partition
    // Fail-stop: it cannot renew its etcd lease, so it stops before etcd expires it (ttl 3 s).
    const cut = nodes[leadIndex]!;
    await eventually(() => cut.proc.child.exitCode !== null, 'the partitioned leader to stop', 10_000, 50);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(cut.proc.err()).toMatch(/no etcd lease renewal confirmed for \d+ ms|etcd lease lost/);
    // The majority side elects another leader and goes on.
    expect(await w.ask('preempt p-after', 15_000)).toMatch(new RegExp(`^PreemptLock Success owner=${w.id} token=\\d+$`));
    await eventually(async () => (await w.ask('check p-session')) === 'CheckLock:Free', "the cut-off node's session lock released", 10_000, 100);
    expect(await w.ask('check p-lease')).toMatch(new RegExp(`^CheckLock:Lock:${onLead.id} `));
    hosts.link(leadIndex, true);
  }, 60_000);
});
