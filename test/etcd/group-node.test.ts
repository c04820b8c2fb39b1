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
import { dumpOnFailure, run, startNode, type ReadyNode } from '../helpers/dlock-process.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { ClientPool, eventually } from '../helpers/line-client.js';

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
    const lease = await holder.ask('preempt leased ttl=60000 value=10.0.0.5:8080'); // [LP-18] a value, kept with the lease
    const token = Number(/token=(\d+)/.exec(lease)?.[1]);
    expect(lease).toMatch(new RegExp(`^PreemptLock Success owner=${holder.id} token=\\d+$`));
    const onLeader = await pool.open(lead.port);
    expect(await onLeader.ask('preempt leader-session')).toMatch(/^PreemptLock Success/);
    // [LP-20, LP-21, LP-22] several holders and several locks, as leases and as the primary's client's session holds
    expect(await holder.ask('preempt readers shared ttl=60000')).toMatch(/^PreemptLock Success/);
    expect(await onLeader.ask('preempt readers shared')).toMatch(/^PreemptLock Success/);
    expect(await holder.ask('preempt slots limit=2 ttl=60000')).toMatch(/^PreemptLock Success/);
    const both = Number(/token=(\d+)/.exec(await holder.ask('preempt pair/a pair/b ttl=60000'))?.[1]);
    const reader = await pool.open(others[1]!.port);
    await eventually(async () => (await reader.ask('check leased')).startsWith(`CheckLock:Lock:${holder.id} token=${token} `), 'the lease on the other secondary', 5000, 50);
    // [LP-19] A watch of the primary's client's session lock, on a secondary: answered when the failover ends that session.
    const watcher = await pool.open(others[1]!.port);
    watcher.write(`watch leader-session token=${/token=(\d+)/.exec(await reader.ask('check leader-session'))?.[1]}\n`);
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
    expect(await watcher.next(10_000)).toBe('WatchLock:Free');
    expect(await reader.ask('check leased')).toMatch(new RegExp(`^CheckLock:Lock:${holder.id} token=${token} ttl=\\d+ value=10\\.0\\.0\\.5:8080$`));
    expect(await reader.ask('sync')).toBe('Sync Success'); // [LP-17] through the new primary
    // The dead node's client's shared hold ended with its session; the leases stayed [LP-8, LP-20, LP-21, LP-22].
    expect(await reader.ask('check readers')).toMatch(new RegExp(`^CheckLock:Shared:1 token=\\d+ owners=${holder.id}$`));
    expect(await reader.ask('check slots')).toMatch(new RegExp(`^CheckLock:Held:1/2 token=\\d+ owners=${holder.id}$`));
    for (const l of ['pair/a', 'pair/b']) expect(await reader.ask(`check ${l}`)).toMatch(new RegExp(`^CheckLock:Lock:${holder.id} token=${both} ttl=\\d+$`));
    const after = Number(/token=(\d+)/.exec(await writer.ask('preempt after-failover-2'))?.[1]);
    expect(after).toBeGreaterThan(token); // [LP-7]
    // The killed node again, under its name: a new member that catches up and serves.
    const back = await start(lead.name);
    const again = await pool.open(back.port);
    await eventually(async () => (await again.ask('check leased')).startsWith(`CheckLock:Lock:${holder.id} token=${token} `), 'the lease on the node back', 20_000, 100);
    expect(await again.ask('check leased')).toMatch(/ value=10\.0\.0\.5:8080$/); // [LP-18] caught up with the value
    expect(await again.ask('check slots')).toMatch(new RegExp(`^CheckLock:Held:1/2 token=\\d+ owners=${holder.id}$`)); // and with the holds
    await eventually(async () => (await again.ask('preempt through-the-new-member', 10_000)).startsWith('PreemptLock Success'), 'a write through it', 20_000, 100);
    // dlock status reads the configuration: the primary and the secondaries, each live node's role from it.
    let out = '';
    await eventually(async () => {
      const st = run(['status', '--etcd', etcd.endpoints.join(','), '--cluster', 'group']);
      expect(await st.exit).toBe(0);
      out = st.out();
      return /^cluster group \(group protocol\): configuration \d+, primary \S+, secondaries \S+, \S+$/m.test(out);
    }, 'the three members in dlock status', 20_000, 200);
    const running = nodes.filter((n) => n.proc.child.exitCode === null && n.proc.child.signalCode === null);
    const now = (await leaderOf(running)) as Node;
    expect(out).toMatch(new RegExp(`primary ${now.name}\\.\\d+, `));
    for (const n of running) expect(out).toMatch(new RegExp(`^${n.name} .* ${n === now ? 'leader' : 'follower'} +\\S+ +yes$`, 'm'));
    expect(out).toMatch(new RegExp(`^${lead.name} .* - +- +no$|^${lead.name} .* (leader|follower) +\\S+ +yes$`, 'm'));
  }, 120_000);

  it('[LP-7] every member killed (no data dir): the nodes back say why they wait; --reseed starts a new group whose tokens are above every earlier one', async () => {
    const live = nodes.filter((n) => n.proc.child.exitCode === null && n.proc.child.signalCode === null);
    expect(live.length).toBeGreaterThanOrEqual(3);
    const c = await pool.open(live[0]!.port);
    const before = Number(/token=(\d+)/.exec(await c.ask('preempt before-the-loss ttl=60000', 10_000))?.[1]);
    expect(before).toBeGreaterThan(0);
    // Refused while a member of the configuration is live.
    const early = run(['node', '--etcd', etcd.endpoints.join(','), '--name', 'gr', '--cluster', 'group', '--replication', 'group', '--reseed']);
    expect(await early.exit).toBe(1);
    expect(early.err()).toMatch(/still live: a new group would serve beside/);
    for (const n of live) n.proc.child.kill('SIGKILL');
    await Promise.all(live.map((n) => n.proc.exit));
    // One back without --reseed: a learner of a group with no live member says so, and the way out.
    const g1 = await start('g1');
    await eventually(() => /waiting to join configuration \d+: none of its members .* is live in etcd\. If every one is lost, start one node with --reseed/.test(g1.proc.out() + g1.proc.err()), 'the waiting learner\'s warning', 20_000, 100);
    const g2 = { name: 'g2', ...(await startNode(['--etcd', etcd.endpoints.join(','), '--name', 'g2', '--cluster', 'group', '--replication', 'group', '--node-ttl', '4', '--reseed'], process.env, 40_000)) };
    nodes.push(g2);
    expect(g2.proc.out() + g2.proc.err()).toMatch(/reseeded: configuration \d+ has this node alone, at a token space above every earlier one; what only .* held is lost/);
    // Both serve; the lease was lost with every member, and tokens rise [LP-7].
    for (const n of [g2, g1]) {
      const cl = await pool.open(n.port);
      await eventually(async () => (await cl.ask('check before-the-loss', 5000)) === 'CheckLock:Free', `a read through ${n.name}`, 20_000, 100);
      let token = 0;
      await eventually(async () => {
        const r = await cl.ask(`preempt after-the-loss-${n.name}`, 10_000);
        token = Number(/^PreemptLock Success owner=\d+ token=(\d+)$/.exec(r)?.[1] ?? 0);
        return token > 0;
      }, `a write through ${n.name}`, 20_000, 100);
      expect(token).toBeGreaterThan(before);
    }
  }, 120_000);

  it('refuses the etcd engine\'s flags, with the reason, instead of ignoring them', async () => {
    for (const engine of [[], ['--replication', 'group']]) {
      const first = run(['node', '--etcd', etcd.endpoints.join(','), '--name', 'gx', '--cluster', 'group', ...engine, '--first-token', '5']);
      expect(await first.exit).toBe(2);
      expect(first.err()).toContain('--first-token goes with --replication etcd: the group protocol\'s tokens come from its configuration version');
    }
    const reseedEtcd = run(['node', '--etcd', etcd.endpoints.join(','), '--name', 'gx', '--cluster', 'group', '--replication', 'etcd', '--reseed']);
    expect(await reseedEtcd.exit).toBe(2);
    expect(reseedEtcd.err()).toContain('--reseed goes with --replication group');
  });
});
