/**
 * `dlock node --replication group` (experimental, docs/design.md): three
 * processes on a real etcd member, the writes between the nodes, etcd
 * keeping the configuration. Writes through a secondary are seen on every
 * node [LP-5, LP-11]; the primary's process killed (-9), another takes
 * over and writes go on, the lease kept and the dead node's session lock
 * released [LP-8]; the node started again under its name is a new member
 * that catches up and serves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dumpOnFailure, run, startNode, type ReadyNode } from './helpers/dlock-process.js';
import { EtcdCluster, hasEtcd } from './helpers/etcd.js';
import { ClientPool, eventually } from './helpers/line-client.js';

type Node = ReadyNode & { name: string };

describe.skipIf(!hasEtcd)('dlock node --replication group', () => {
  let etcd: EtcdCluster;
  const nodes: Node[] = [];
  dumpOnFailure(() => nodes);
  const pool = new ClientPool();

  const start = async (name: string): Promise<Node> => {
    const n = { name, ...(await startNode(['--etcd', etcd.endpoints.join(','), '--name', name, '--cluster', 'group', '--replication', 'group', '--node-ttl', '4'], process.env, 40_000)) };
    nodes.push(n);
    return n;
  };
  const leaderOf = async (among: Node[]): Promise<Node | undefined> => {
    for (const n of among) {
      const c = await pool.open(n.port);
      const me = c.greeting;
      c.close();
      if (/ role: leader$/.test(me)) return n;
    }
    return undefined;
  };

  beforeAll(async () => {
    etcd = await EtcdCluster.start(1);
    for (const name of ['g1', 'g2', 'g3']) await start(name);
  }, 90_000);
  afterAll(async () => {
    pool.closeAll();
    for (const n of nodes) if (n.proc.child.exitCode === null) n.proc.child.kill('SIGKILL');
    await etcd?.stop();
  });

  it('writes through every node, a failover with every acknowledged lock, and a rejoin', async () => {
    const [g1, g2, g3] = nodes as [Node, Node, Node];
    // Every node is in the group once the others joined: a write through each is answered.
    for (const n of [g1, g2, g3]) {
      const c = await pool.open(n.port);
      await eventually(async () => (await c.ask(`preempt first-${n.name}`, 10_000)).startsWith('PreemptLock Success'), `a write through ${n.name}`, 15_000, 100);
      c.close();
    }
    const lead = (await leaderOf([g1, g2, g3])) as Node;
    expect(lead).toBeDefined();
    const others = [g1, g2, g3].filter((n) => n !== lead);
    const holder = await pool.open(others[0]!.port);
    const lease = await holder.ask('preempt leased ttl=60000');
    const token = Number(/token=(\d+)/.exec(lease)?.[1]);
    expect(lease).toMatch(new RegExp(`^PreemptLock Success owner=${holder.id} token=\\d+$`));
    const onLeader = await pool.open(lead.port);
    expect(await onLeader.ask('preempt leader-session')).toMatch(/^PreemptLock Success/);
    const reader = await pool.open(others[1]!.port);
    await eventually(async () => (await reader.ask('check leased')).startsWith(`CheckLock:Lock:${holder.id} token=${token} `), 'the lease on the other secondary', 5000, 50);
    // kill -9 of the primary's process.
    lead.proc.child.kill('SIGKILL');
    await lead.proc.exit;
    const t0 = performance.now();
    const writer = await pool.open(others[1]!.port);
    await eventually(async () => (await writer.ask('preempt after-failover', 10_000)).startsWith('PreemptLock Success'), 'a write after the failover', 20_000, 100);
    const failoverMs = performance.now() - t0;
    expect(failoverMs).toBeLessThan(15_000);
    // The lease is kept with its token; the dead node's client's session lock ends [LP-8].
    await eventually(async () => (await reader.ask('check leader-session')) === 'CheckLock:Free', 'the dead node\'s session lock released', 10_000, 100);
    expect(await reader.ask('check leased')).toMatch(new RegExp(`^CheckLock:Lock:${holder.id} token=${token} ttl=\\d+$`));
    const after = Number(/token=(\d+)/.exec(await writer.ask('preempt after-failover-2'))?.[1]);
    expect(after).toBeGreaterThan(token); // [LP-7]
    // The killed node again, under its name: a new member that catches up and serves.
    const back = await start(lead.name);
    const again = await pool.open(back.port);
    await eventually(async () => (await again.ask('check leased')).startsWith(`CheckLock:Lock:${holder.id} token=${token} `), 'the lease on the node back', 20_000, 100);
    await eventually(async () => (await again.ask('preempt through-the-new-member', 10_000)).startsWith('PreemptLock Success'), 'a write through it', 20_000, 100);
  }, 120_000);

  it('refuses what it does not support yet, with the reason, instead of ignoring it', async () => {
    const proc = run(['node', '--etcd', etcd.endpoints.join(','), '--name', 'gx', '--cluster', 'group', '--replication', 'group', '--http-port', '0']);
    expect(await proc.exit).toBe(2);
    expect(proc.err()).toContain('--replication group does not support --http-port yet');
  });
});
