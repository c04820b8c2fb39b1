/**
 * One engine per cluster: `/dlock/<cluster>/engine` in etcd says whether a
 * cluster runs the log in etcd or the group protocol, and a node started
 * with the other one refuses to start. Two engines on one cluster would
 * keep two lock tables with a sequencer each, so one lock could be held
 * twice [LP-3]. Against a real etcd member: the mark itself
 * (src/replication/etcd-engine.ts), then `dlock node` processes.
 */
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { claimEngine, EngineMismatchError } from '../../src/replication/etcd-engine.js';
import { run, startNode, type ReadyNode } from '../helpers/dlock-process.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { ClientPool } from '../helpers/line-client.js';

describe.skipIf(!hasEtcd)('the engine a cluster on etcd runs', () => {
  let etcd: EtcdCluster;
  let client: Etcd3;
  const nodes: ReadyNode[] = [];
  const pool = new ClientPool();

  beforeAll(async () => {
    etcd = await EtcdCluster.start(1);
    client = new Etcd3({ hosts: etcd.endpoints });
  }, 60_000);
  afterAll(async () => {
    pool.closeAll();
    for (const n of nodes) if (n.proc.child.exitCode === null) n.proc.child.kill('SIGKILL');
    client?.close();
    await etcd?.stop();
  });

  it('a new cluster is marked by its first node; the same engine passes, the other is refused', async () => {
    const ns = client.namespace('/dlock/fresh/');
    await claimEngine(ns, 'fresh', 'group');
    expect(await ns.get('engine').string()).toBe('group');
    await claimEngine(ns, 'fresh', 'group');
    await expect(claimEngine(ns, 'fresh', 'etcd')).rejects.toThrow(EngineMismatchError);
    await expect(claimEngine(ns, 'fresh', 'etcd')).rejects.toThrow(/cluster fresh runs --replication group \(marked in etcd\), not etcd/);
  });

  it('a cluster made before the mark is known by its keys, and marked as it is', async () => {
    const old = client.namespace('/dlock/old-etcd/');
    await old.put('log/00000000000000000001').value('x');
    await expect(claimEngine(old, 'old-etcd', 'group')).rejects.toThrow(/runs --replication etcd \(from the keys it keeps in etcd\)/);
    await claimEngine(old, 'old-etcd', 'etcd');
    expect(await old.get('engine').string()).toBe('etcd');
    const snap = client.namespace('/dlock/old-snap/');
    await snap.put('snap/latest').value('{}');
    await expect(claimEngine(snap, 'old-snap', 'group')).rejects.toThrow(EngineMismatchError);
    const group = client.namespace('/dlock/old-group/');
    await group.put('config').value('{}');
    await expect(claimEngine(group, 'old-group', 'etcd')).rejects.toThrow(/runs --replication group/);
  });

  it('a mark dlock did not write is an error, not a guess', async () => {
    const ns = client.namespace('/dlock/odd/');
    await ns.put('engine').value('raft');
    await expect(claimEngine(ns, 'odd', 'group')).rejects.toThrow(/reads "raft", which is neither etcd nor group/);
    await expect(claimEngine(ns, 'odd', 'etcd')).rejects.toThrow(EngineMismatchError);
  });

  for (const [first, second] of [['etcd', 'group'], ['group', 'etcd']] as const) {
    it(`dlock node --replication ${second} on a cluster that runs ${first}: refuses to start, says why, and the cluster's lock stays held once`, async () => {
      const cluster = `mixed-${first}`;
      const a = await startNode(['--etcd', etcd.endpoints.join(','), '--name', 'a', '--cluster', cluster, '--replication', first], process.env, 40_000);
      nodes.push(a);
      const c = await pool.open(a.port);
      expect(await c.ask('preempt only-once')).toMatch(/^PreemptLock Success/);
      const b = run(['node', '--etcd', etcd.endpoints.join(','), '--name', 'b', '--cluster', cluster, '--replication', second]);
      expect(await b.exit).toBe(2);
      expect(b.err()).toContain(`cluster ${cluster} runs --replication ${first}`);
      expect(b.out()).not.toMatch(/^ready /m);
      // Refused before it registered: no name taken.
      expect(await client.namespace(`/dlock/${cluster}/`).get('names/b').string()).toBeNull();
      expect(await c.ask('check only-once')).toMatch(new RegExp(`^CheckLock:Lock:${c.id} `));
      c.close();
    }, 60_000);
  }
});
