/**
 * `dlock node --replication group --min-secondaries 1`: a floor on the
 * group's size. Three processes on a real etcd member; both secondaries
 * paused (SIGSTOP) past their leases, so the primary removes them. With
 * the floor, the primary then acknowledges no write it alone would hold
 * (each is answered `Error:` within the leader wait, and never applied),
 * while it still answers reads [LP-11]; once a secondary is back and
 * added, writes are acknowledged again. Without the floor the same
 * primary would go on alone (docs/across-hosts.md, "Two failures in a
 * row"; test/unit/pacifica-scenarios.test.ts shows both cases).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dumpOnFailure, killAll, startNode, type ReadyNode } from '../helpers/dlock-process.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { ClientPool, eventually } from '../helpers/line-client.js';

type Node = ReadyNode & { name: string };

describe.skipIf(!hasEtcd)('dlock node --replication group --min-secondaries 1', () => {
  let etcd: EtcdCluster;
  const nodes: Node[] = [];
  dumpOnFailure(() => nodes);
  const pool = new ClientPool();

  beforeAll(async () => {
    etcd = await EtcdCluster.start(1);
    for (const name of ['f1', 'f2', 'f3']) {
      nodes.push({ name, ...(await startNode(['--etcd', etcd.endpoints.join(','), '--name', name, '--cluster', 'floor', '--replication', 'group', '--node-ttl', '4', '--min-secondaries', '1'], process.env, 40_000)) });
    }
  }, 90_000);
  afterAll(async () => {
    pool.closeAll();
    killAll(nodes);
    await etcd?.stop();
  });

  it('alone, the primary acknowledges no write and still answers reads; with a secondary back, it writes again', async () => {
    const [a, b, c] = nodes as [Node, Node, Node];
    // Writes through each node once all three are in the group.
    for (const n of [a, b, c]) {
      const cl = await pool.open(n.port);
      await eventually(async () => (await cl.ask(`preempt floor-${n.name}`, 10_000)).startsWith('PreemptLock Success'), `a write through ${n.name}`, 20_000, 100);
      cl.close();
    }
    let lead: Node | undefined;
    await eventually(async () => {
      for (const n of [a, b, c]) if (/ role: leader$/.test((await pool.open(n.port)).greeting)) lead = n;
      return lead !== undefined;
    }, 'the primary', 10_000, 100);
    const primary = lead as Node;
    const [s1, s2] = [a, b, c].filter((n) => n !== primary) as [Node, Node];
    const client = await pool.open(primary.port);
    expect(await client.ask('preempt floor-before ttl=60000')).toMatch(/^PreemptLock Success/);
    // Both secondaries paused past their leases: the primary removes them.
    s1.proc.child.kill('SIGSTOP');
    s2.proc.child.kill('SIGSTOP');
    await eventually(async () => /secondaries none; this node is the primary/.test(primary.proc.out()), 'the primary removing its lapsed secondaries', 20_000, 100);
    expect(primary.proc.out()).toMatch(/holds 0 secondaries, fewer than --min-secondaries 1: writes wait for a secondary to be added/);
    // Alone: no write is acknowledged; each is answered with an error, and none is applied.
    let refused = '';
    await eventually(async () => (refused = await client.ask('preempt floor-alone', 15_000)).startsWith('Error:'), 'a write refused while alone', 30_000, 100);
    expect(refused).toMatch(/^Error: /);
    expect(await client.ask('check floor-alone')).toBe('CheckLock:Free');
    expect(await client.ask('check floor-before')).toMatch(/^CheckLock:Lock:\d+ token=\d+ ttl=\d+$/); // reads go on [LP-11]
    // One secondary back: it rejoins, is added, and writes are acknowledged again.
    s1.proc.child.kill('SIGCONT');
    await eventually(async () => (await client.ask('preempt floor-after', 10_000)).startsWith('PreemptLock Success'), 'a write once a secondary is back', 40_000, 200);
    s2.proc.child.kill('SIGCONT');
  }, 120_000);
});
