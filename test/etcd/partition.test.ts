/**
 * Partitions between hosts: three hosts made of network
 * namespaces on a bridge, each with an etcd member and a `dlock node`
 * process. The leader's host is cut off (its link set down), etcd member
 * and all:
 *  - the partitioned leader cannot renew its etcd lease (its member is in
 *    the minority) and stops serving (fail-stop) before etcd can expire
 *    the lease, so it answers no more writes;
 *  - the majority side (two etcd members, two nodes) elects another leader
 *    and carries on;
 *  - the cut-off node's clients' session locks end once its lease has
 *    expired, as documented; its leases stay [LP-5, LP-8];
 *  - when the link comes back, the cut-off node rejoins and serves the
 *    majority's state.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dumpOnFailure, run, type Running } from '../helpers/dlock-process.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { ClientPool, eventually, type LineClient } from '../helpers/line-client.js';
import { canMakeHosts, Hosts } from '../helpers/netns.js';

const TOKEN = 'partition-test-token';

describe.skipIf(!hasEtcd || !canMakeHosts)('a partition between hosts', () => {
  const hosts = new Hosts(`dlp${process.pid % 1000}`, `10.231.${process.pid % 200}`);
  let etcd: EtcdCluster;
  const nodes: Array<{ name: string; proc: Running; addr: string; port: number }> = [];
  dumpOnFailure(() => nodes);
  const pool = new ClientPool();

  async function client(i: number): Promise<LineClient> {
    const n = nodes[i]!;
    const c = await pool.openAt(n.port, n.addr);
    expect(await c.ask(`auth ${TOKEN}`)).toBe('Auth Success');
    return c;
  }

  beforeAll(async () => {
    hosts.make(3);
    etcd = await EtcdCluster.start(3, hosts.hosts); // a member on each host
    for (const [i, h] of hosts.hosts.entries()) {
      const name = `h${i}`;
      const proc = run(['node', '--replication', 'etcd', '--etcd', etcd.endpoints.join(','), '--name', name, '--host', h.addr, '--cluster', 'part', '--auth-token', TOKEN, '--first-token', '1'], undefined, process.env, h.ns);
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
    const t0 = performance.now();
    hosts.link(leadIndex, false); // the partition
    // Fail-stop: it cannot renew its etcd lease, so it stops serving before etcd expires it (ttl 10 s; it stops at 8 s).
    const cut = nodes[leadIndex]!;
    await eventually(() => /stopping: (no etcd lease renewal confirmed for \d+ ms|etcd lease lost)/.test(cut.proc.out()), 'the partitioned leader to stop serving', 15_000, 50);
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(cut.proc.child.exitCode).toBeNull(); // it waits to rejoin
    // The majority side elects another leader and goes on: a write through
    // each of its nodes is answered (a node whose watch of the log, or whose
    // lease renewals, sat on the cut-off etcd member used to stall).
    // Alone it is answered 5-7 s after the cut (the old leader's election
    // key expires, extended once more when etcd's own leader was on the cut
    // host); with every etcd test running at once on 2 cores it once took
    // over 15 s, hence the budget.
    const after = await w.ask('preempt p-after', 30_000);
    expect(after).toMatch(new RegExp(`^PreemptLock Success owner=${w.id} token=\\d+$`));
    const third = await client((leadIndex + 2) % nodes.length);
    expect(await third.ask('preempt p-third', 30_000)).toMatch(new RegExp(`^PreemptLock Success owner=${third.id} token=\\d+$`));
    await eventually(async () => (await w.ask('check p-session')) === 'CheckLock:Free', "the cut-off node's session lock released", 20_000, 100);
    expect(await w.ask('check p-lease')).toMatch(new RegExp(`^CheckLock:Lock:${onLead.id} `));
    // The link comes back: the old connection is closed, and the node
    // rejoins (a new etcd lease) and serves what the majority wrote.
    hosts.link(leadIndex, true);
    await onLead.waitClosed(15_000);
    await eventually(() => /rejoined the cluster after \d+ ms/.test(cut.proc.out()), 'the cut-off node to rejoin', 30_000, 100);
    // Its reads wait for its contact with etcd to be recent again (half the
    // node ttl): until then they are refused, saying how stale they may be.
    // Under heavy load a rejoined node can miss its renewal margin and stop
    // again (fail-stop: it closes its clients, and its port greets with the
    // reason until it rejoins once more): then the test connects again.
    let back: LineClient | null = null;
    let seen = '';
    const read = async (): Promise<string> => {
      try {
        back ??= await client(leadIndex);
        return await back.ask('check p-after');
      } catch (err) {
        if (!/connection closed|bad greeting "Error: this node lost contact with etcd/.test((err as Error).message)) throw err;
        back = null;
        return 'Error: no contact with etcd (stopped again; reconnecting)';
      }
    };
    // A stopping node answers what it still reads with ERR_NODE_STOPPED.
    await eventually(async () => !/^Error: (no contact with etcd|this node lost contact with etcd)/.test((seen = await read())), 'reads served again', 30_000, 200);
    const served = back as LineClient | null;
    if (served === null) throw new Error('unreachable: a read was served');
    expect(seen).toBe(`CheckLock:Lock:${w.id} token=${/token=(\d+)/.exec(after)?.[1]}`);
    expect(await served.ask('check p-session')).toBe('CheckLock:Free');
    // The first write after the rejoin goes over a new link to the leader, which checks the node in etcd
    // first (up to 3 s when etcd is slow, then a retry): under full-suite load that took longer than 5 s.
    expect(await served.ask('preempt p-back', 30_000)).toMatch(new RegExp(`^PreemptLock Success owner=${served.id} token=\\d+$`));
  }, 120_000);
});
