/**
 * `dlock node --replication group --data-dir`: every member of the group's
 * configuration killed at once (kill -9), then each started again on its
 * data dir. Nothing acknowledged is lost: every lease comes back with its
 * owner and token, and the next tokens are above them [LP-7]. The killed
 * runs' clients are gone with their connections, so their session locks
 * end [LP-8]. Each run back takes its earlier run's place in the
 * configuration (config.ts replaceRuns), so the group needs no --reseed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dumpOnFailure, run, startNode, type ReadyNode } from '../helpers/dlock-process.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { ClientPool, eventually } from '../helpers/line-client.js';

type Node = ReadyNode & { name: string };

describe.skipIf(!hasEtcd)('dlock node --replication group --data-dir', () => {
  let etcd: EtcdCluster;
  let root: string;
  const nodes: Node[] = [];
  dumpOnFailure(() => nodes);
  const pool = new ClientPool();
  const args = (name: string): string[] => ['node', '--etcd', etcd.endpoints.join(','), '--name', name, '--cluster', 'durable', '--replication', 'group', '--node-ttl', '3', '--data-dir', join(root, name)];
  const start = async (name: string): Promise<Node> => {
    const n = { name, ...(await startNode(args(name).slice(1), process.env, 60_000)) };
    nodes.push(n);
    return n;
  };
  const alive = (): Node[] => nodes.filter((n) => n.proc.child.exitCode === null && n.proc.child.signalCode === null);

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'dlock-durable-'));
    etcd = await EtcdCluster.start(1);
    for (const name of ['d1', 'd2', 'd3']) await start(name);
  }, 120_000);
  afterAll(async () => {
    pool.closeAll();
    for (const n of alive()) n.proc.child.kill('SIGKILL');
    await etcd?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('[LP-7, LP-8] kill -9 of every member at once: every acknowledged lease is back with its token, tokens rise, the dead clients\' session locks end', async () => {
    const [d1, d2, d3] = nodes as [Node, Node, Node];
    // Every node in the group: a write through each is answered.
    for (const n of [d1, d2, d3]) {
      const c = await pool.open(n.port);
      await eventually(async () => (await c.ask(`preempt joined-${n.name}`, 10_000)).startsWith('PreemptLock Success'), `a write through ${n.name}`, 20_000, 100);
      c.close();
    }
    // Leases through every node, each acknowledged with its owner and token.
    const leases = new Map<string, { owner: number; token: number }>();
    for (const [i, n] of [d1, d2, d3].entries()) {
      const c = await pool.open(n.port);
      for (let k = 0; k < 20; k++) {
        const r = await c.ask(`preempt lease-${i}-${k} ttl=600000`);
        const m = /^PreemptLock Success owner=(\d+) token=(\d+)$/.exec(r);
        expect(m, r).not.toBeNull();
        leases.set(`lease-${i}-${k}`, { owner: Number(m?.[1]), token: Number(m?.[2]) });
      }
    }
    // A session lock, held by a connection that dies with its node.
    const holder = await pool.open(d2.port);
    expect(await holder.ask('preempt held-by-a-session')).toMatch(/^PreemptLock Success/);
    const highest = Math.max(...[...leases.values()].map((l) => l.token));

    for (const n of [d1, d2, d3]) n.proc.child.kill('SIGKILL');
    await Promise.all([d1, d2, d3].map((n) => n.proc.exit));
    const back = await Promise.all(['d1', 'd2', 'd3'].map((name) => start(name)));
    const logs = back.map((n) => n.proc.out() + n.proc.err()).join('\n');
    expect(logs).toMatch(/restored from .*: .* entries after it/);
    expect(logs).toMatch(/took the place of d\d\.\d+, this node's earlier run whose log this is, in configuration \d+/);

    for (const n of back) {
      const c = await pool.open(n.port);
      await eventually(async () => (await c.ask('check held-by-a-session', 5000)) === 'CheckLock:Free', `the dead session's lock released, read through ${n.name}`, 20_000, 100);
      for (const [lock, l] of leases) expect(await c.ask(`check ${lock}`)).toMatch(new RegExp(`^CheckLock:Lock:${l.owner} token=${l.token} ttl=\\d+$`));
      let token = 0;
      await eventually(async () => {
        const r = await c.ask(`preempt after-${n.name}`, 10_000);
        token = Number(/^PreemptLock Success owner=\d+ token=(\d+)$/.exec(r)?.[1] ?? 0);
        return token > 0;
      }, `a write through ${n.name}`, 20_000, 100);
      expect(token).toBeGreaterThan(highest);
    }
  }, 150_000);

  it('a member killed alone comes back on its data dir and serves every lease', async () => {
    const victim = alive().find((n) => n.name === 'd3') as Node;
    const c = await pool.open(alive().find((n) => n !== victim)!.port);
    const r = await c.ask('preempt while-one-is-down ttl=600000', 10_000);
    const token = Number(/token=(\d+)$/.exec(r)?.[1]);
    victim.proc.child.kill('SIGKILL');
    await victim.proc.exit;
    const again = await start('d3');
    const reader = await pool.open(again.port);
    await eventually(async () => new RegExp(`^CheckLock:Lock:\\d+ token=${token} ttl=\\d+$`).test(await reader.ask('check while-one-is-down', 5000)), 'the lease through the node back', 20_000, 100);
    await eventually(async () => (await reader.ask('preempt through-d3-again', 10_000)).startsWith('PreemptLock Success'), 'a write through it', 20_000, 100);
  }, 90_000);

  it('refuses a data dir of another node, and --data-dir without the group protocol', async () => {
    const other = run([...args('d9').slice(0, -1), join(root, 'd1')]);
    expect(await other.exit).toBe(1);
    expect(other.err()).toMatch(/holds the log of node d1 of cluster durable, not d9 of durable/);
    const etcdEngine = run(['node', '--replication', 'etcd', '--etcd', etcd.endpoints.join(','), '--name', 'dx', '--cluster', 'durable', '--data-dir', join(root, 'dx')]);
    expect(await etcdEngine.exit).toBe(2);
    expect(etcdEngine.err()).toContain('--data-dir goes with --replication group');
  });
});
