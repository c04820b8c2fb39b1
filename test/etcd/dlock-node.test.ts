/**
 * `dlock node` (step 3): every node its own process, on a real
 * etcd member. The walkthrough across three processes; `kill -9` of the
 * leader's process: another node takes over within the node-lease TTL
 * plus a second, no acknowledged grant is lost and tokens still rise;
 * `kill -9` of a follower's process: its clients' session locks are
 * released once its lease expires, and leases survive [LP-5, LP-7, LP-8].
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dumpOnFailure, run, type Running } from '../helpers/dlock-process.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { ClientPool, eventually, type LineClient } from '../helpers/line-client.js';
import { ID_BLOCK } from '../../src/replication/etcd-members.js';

interface Node {
  name: string;
  proc: Running;
  port: number;
}

describe.skipIf(!hasEtcd)('dlock node: one process per node, on etcd', () => {
  let etcd: EtcdCluster;
  const nodes: Node[] = [];
  dumpOnFailure(() => nodes);
  const pool = new ClientPool();

  async function start(name: string): Promise<Node> {
    const proc = run(['node', '--replication', 'etcd', '--etcd', etcd.endpoints.join(','), '--name', name, '--cluster', 'procs', '--first-token', '1']);
    await eventually(() => /^ready /m.test(proc.out()) || proc.child.exitCode !== null, `${name}'s ready line`, 20_000);
    const m = /^ready node=(\S+) index=(\d+) address=127\.0\.0\.1:(\d+) link=127\.0\.0\.1:\d+ first-client=\d+ role=(leader|follower)$/m.exec(proc.out());
    if (m === null) throw new Error(`dlock node ${name} did not get ready:\n${proc.out()}\n${proc.err()}`);
    const n = { name, proc, port: Number(m[3]) };
    nodes.push(n);
    return n;
  }

  /** The node that says it leads (its greeting names its role: formatGreeting). */
  async function leader(): Promise<Node | undefined> {
    for (const n of nodes.filter((x) => x.proc.child.exitCode === null && x.proc.child.signalCode === null)) {
      const c = await pool.open(n.port);
      const me = await c.ask('whoami');
      c.close();
      if (/ role: leader$/.test(me)) return n;
    }
    return undefined;
  }

  beforeAll(async () => {
    etcd = await EtcdCluster.start(1);
    for (const name of ['n1', 'n2', 'n3']) await start(name);
  }, 60_000);
  afterAll(async () => {
    pool.closeAll();
    for (const n of nodes) if (n.proc.child.exitCode === null) n.proc.child.kill('SIGKILL');
    await etcd.stop();
  });

  it('the walkthrough across three processes', async () => {
    const [a, b, c] = (await Promise.all(nodes.map((n) => pool.open(n.port)))) as [LineClient, LineClient, LineClient];
    // The ready line names the role: n1, started first, leads.
    expect(nodes.map((n) => / role=(leader|follower)$/m.exec(n.proc.out())?.[1])).toEqual(['leader', 'follower', 'follower']);
    // Indexes are given in join order: n1 0, n2 1, n3 2, so the ids are the walkthrough's.
    expect([a.id, b.id, c.id]).toEqual([10001, 20001, 30001]);
    expect(await a.ask('preempt lock01')).toBe('PreemptLock Success owner=10001 token=1');
    // Reads come from each node's replica [LP-11]: on etcd another node applies an answered
    // write a few ms after it is in etcd, so a read through it may lag that much.
    await eventually(async () => (await b.ask('check lock01')) === 'CheckLock:Lock:10001 token=1', 'n2 shows lock01', 2000, 10);
    expect(await b.ask('preempt lock01')).toBe('PreemptLock Failed owner=10001');
    expect(await b.ask('preempt lock02')).toBe('PreemptLock Success owner=20001 token=2');
    expect(await b.ask('release lock02')).toBe('ReleaseLock Success');
    expect(await c.ask('preempt lock02')).toBe('PreemptLock Success owner=30001 token=3');
    expect(await c.ask('preempt lock03 ttl=60000')).toBe('PreemptLock Success owner=30001 token=4');
    await eventually(async () => /^CheckLock:Lock:30001 token=4 ttl=\d+$/.test(await a.ask('check lock03')), 'n1 shows lock03', 2000, 10);
  });

  it('[LP-17] sync then check through another node shows every write answered before it, where a plain check may lag', async () => {
    const [, b, c] = (await Promise.all(nodes.map((n) => pool.open(n.port)))) as [LineClient, LineClient, LineClient];
    let lagged = 0;
    for (let i = 0; i < 100; i++) {
      const grant = await c.ask(`preempt fresh-${i}`);
      expect(grant).toMatch(new RegExp(`^PreemptLock Success owner=${c.id} token=\\d+$`));
      const held = `CheckLock:Lock:${c.id} token=${/token=(\d+)/.exec(grant)?.[1]}`;
      b.write(`check fresh-${i}\nsync\ncheck fresh-${i}\n`);
      if ((await b.next()) !== held) lagged++; // LP-11 allows it
      expect(await b.next()).toBe('Sync Success');
      expect(await b.next()).toBe(held);
    }
    console.log(`plain checks that lagged a write answered through another node: ${lagged} of 100; after sync: 0`);
  });

  it('dlock status prints every node with its role, applied seq and liveness, and who leads', async () => {
    const lead = (await leader()) as Node;
    let out = '';
    await eventually(
      async () => {
        const st = run(['status', '--etcd', etcd.endpoints.join(','), '--cluster', 'procs']);
        expect(await st.exit).toBe(0);
        out = st.out();
        // Every node has published the whole log as applied.
        const end = /the log ends at seq (\d+)/.exec(out)?.[1];
        return end !== undefined && nodes.every((n) => new RegExp(`^${n.name} +\\d +127\\.0\\.0\\.1:${n.port} +127\\.0\\.0\\.1:\\d+ +(leader|follower) +${end} +yes$`, 'm').test(out));
      },
      'every node in dlock status, caught up',
      10_000,
      200,
    );
    expect(out).toMatch(new RegExp(`^cluster procs: leader ${lead.name}; the log ends at seq [1-9]\\d*\n`));
    expect(out).toMatch(new RegExp(`^${lead.name} .* leader +\\d+ +yes$`, 'm'));
    const bad = run(['status', '--etcd', 'http://127.0.0.1:1', '--cluster', 'procs']);
    expect(await bad.exit).toBe(2);
    expect(bad.err()).toMatch(/^dlock status: cannot read the cluster from etcd at http:\/\/127\.0\.0\.1:1: /);
  }, 30_000);

  it('dlock client and dlock lock find the nodes in etcd (--etcd, or $DLOCK_ETCD when no port is named), the leader first', async () => {
    const lead = (await leader()) as Node;
    const one = run(['client', '--etcd', etcd.endpoints.join(','), '--cluster', 'procs', 'check', 'lock03']);
    expect(await one.exit).toBe(0);
    expect(one.out()).toMatch(/^CheckLock:Lock:30001 token=4 ttl=\d+$/m);
    // $DLOCK_ETCD alone: the leader's greeting names it (interactive, piped).
    const env = { ...process.env, DLOCK_ETCD: etcd.endpoints.join(','), DLOCK_PORT: undefined };
    const piped = run(['client', '--cluster', 'procs'], 'whoami\n', env);
    expect(await piped.exit).toBe(0);
    expect(piped.out()).toMatch(new RegExp(`^connected to ${lead.name} \\(leader\\) at 127\\.0\\.0\\.1:${lead.port}$`, 'm'));
    // A port named wins over $DLOCK_ETCD.
    const other = nodes.find((n) => n !== lead && n.proc.child.exitCode === null) as Node;
    const named = run(['client', '--port', String(other.port), '--cluster', 'procs', 'whoami'], undefined, env);
    expect(await named.exit).toBe(0);
    expect(named.out()).toMatch(new RegExp(`node: ${other.name}\\b`));
    const held = run(['lock', '--etcd', etcd.endpoints.join(','), '--cluster', 'procs', '--ttl', '5000', 'etcd-found', '--', 'sh', '-c', 'echo "token $DLOCK_TOKEN"']);
    expect(await held.exit).toBe(0);
    expect(held.out()).toMatch(/^token \d+$/m);
    const none = run(['client', '--etcd', etcd.endpoints.join(','), '--cluster', 'nobody-here', 'check', 'x']);
    expect(await none.exit).toBe(2);
    expect(none.err()).toMatch(/^dlock client: no live node of cluster nobody-here in etcd at /);
  }, 30_000);

  it('kill -9 of the leader\'s process: another takes over within the node ttl + 1 s; nothing acknowledged is lost; tokens rise', async () => {
    const lead = await leader();
    expect(lead).toBeDefined();
    const onLead = await pool.open((lead as Node).port);
    expect(await onLead.ask('preempt k-session')).toMatch(/^PreemptLock Success/);
    const granted = await onLead.ask('preempt k-lease ttl=60000');
    const other = nodes.find((n) => n !== lead && n.proc.child.exitCode === null) as Node;
    const w = await pool.open(other.port);
    const t0 = performance.now();
    (lead as Node).proc.child.kill('SIGKILL');
    const after = await w.ask('preempt k-after', 15_000);
    const took = performance.now() - t0;
    expect(after).toMatch(new RegExp(`^PreemptLock Success owner=${w.id} token=(\\d+)$`));
    expect(Number(/token=(\d+)/.exec(after)?.[1])).toBeGreaterThan(Number(/token=(\d+)/.exec(granted)?.[1])); // [LP-7]
    expect(took).toBeLessThan(10_000 + 1000); // the node lease's ttl (10 s) and a second (the election's 2 s ttl makes it ~2 s)
    // Liveness as it is: its key stays in etcd until its lease ends, but dlock status shows it down at once.
    const st = run(['status', '--etcd', etcd.endpoints.join(','), '--cluster', 'procs']);
    expect(await st.exit).toBe(0);
    expect(st.out()).toMatch(new RegExp(`^${(lead as Node).name} +\\d +\\S+ +\\S+ +\\S+ +\\S+ +down$`, 'm'));
    const leaseToken = Number(/token=(\d+)/.exec(granted)?.[1]);
    expect(await w.ask('check k-lease')).toMatch(new RegExp(`^CheckLock:Lock:${onLead.id} token=${leaseToken} ttl=\\d+$`)); // the lease survives
    expect(await w.ask('check lock03')).toMatch(/^CheckLock:Lock:30001 token=4 /); // acknowledged before: kept
    // Its client's session lock ends once its etcd lease has expired [LP-8].
    await eventually(async () => (await w.ask('check k-session')) === 'CheckLock:Free', 'the dead node\'s session lock released', 20_000, 100);
  });

  it('kill -9 of a follower\'s process: its session locks are released once its lease expires; leases survive', async () => {
    const lead = await leader();
    const follower = nodes.find((n) => n !== lead && n.proc.child.exitCode === null && n.proc.child.signalCode === null) as Node;
    const onF = await pool.open(follower.port);
    expect(await onF.ask('preempt f-session')).toMatch(/^PreemptLock Success/);
    expect(await onF.ask('preempt f-lease ttl=60000')).toMatch(/^PreemptLock Success/);
    const viewer = await pool.open((lead as Node).port);
    follower.proc.child.kill('SIGKILL');
    await eventually(async () => (await viewer.ask('check f-session')) === 'CheckLock:Free', 'the session lock released', 20_000, 100);
    expect(await viewer.ask('check f-lease')).toMatch(new RegExp(`^CheckLock:Lock:${onF.id} `));
    const st = run(['status', '--etcd', etcd.endpoints.join(','), '--cluster', 'procs']);
    expect(await st.exit).toBe(0);
    expect(st.out()).toMatch(new RegExp(`^${follower.name} +\\d +- +- +- +- +no$`, 'm')); // gone, as etcd sees it
    // Back under its name: it keeps its index, and its new clients' ids are new [LP-4].
    const back = await start(follower.name);
    // Its earlier run's key was gone by now (the session lock was released): no wait was announced.
    expect(back.proc.out()).not.toMatch(/waiting for this name's earlier run/);
    const again = await pool.open(back.port);
    expect(again.id).not.toBe(onF.id);
    expect(Math.floor(again.id / 10000) === Math.floor(onF.id / 10000) || again.id > 1_000_000).toBe(true);
    expect(await again.ask('check f-lease')).toMatch(new RegExp(`^CheckLock:Lock:${onF.id} `));
  }, 40_000);

  it('a node restarted right after kill -9 says at once that it waits for its earlier run\'s lease, and for how long at most', async () => {
    const lead = await leader();
    const victim = nodes.find((n) => n !== lead && n.proc.child.exitCode === null && n.proc.child.signalCode === null) as Node;
    victim.proc.child.kill('SIGKILL');
    await victim.proc.exit;
    const t0 = performance.now();
    const proc = run(['node', '--replication', 'etcd', '--etcd', etcd.endpoints.join(','), '--name', victim.name, '--cluster', 'procs', '--first-token', '1']);
    nodes.push({ name: victim.name, proc, port: 0 });
    await eventually(() => /waiting for this name's earlier run to end: .* within \d+ s at most/.test(proc.out()), 'the wait announced', 5000, 20);
    expect(performance.now() - t0).toBeLessThan(5000);
    // And then it serves, once the earlier run's lease is gone.
    await eventually(() => /^ready /m.test(proc.out()), 'ready after the wait', 30_000, 100);
  }, 45_000);

  it('client ids grow with the clients served, not with restarts: a clean stop hands back its unused ids, a crash skips at most a block [LP-4]', async () => {
    const runOnce = async (): Promise<{ proc: Running; first: number; port: number }> => {
      const proc = run(['node', '--replication', 'etcd', '--etcd', etcd.endpoints.join(','), '--name', 'ids', '--cluster', 'procs', '--first-token', '1', '--node-ttl', '2']);
      nodes.push({ name: 'ids', proc, port: 0 });
      await eventually(() => /^ready /m.test(proc.out()) || proc.child.exitCode !== null, 'ready', 30_000, 50);
      const m = /^ready node=ids index=\d+ address=127\.0\.0\.1:(\d+) link=\S+ first-client=(\d+) /m.exec(proc.out());
      if (m === null) throw new Error(`not ready:\n${proc.out()}\n${proc.err()}`);
      return { proc, first: Number(m[2]), port: Number(m[1]) };
    };
    const clients = async (port: number, n: number): Promise<number[]> => {
      const ids: number[] = [];
      for (let i = 0; i < n; i++) {
        const c = await pool.open(port);
        ids.push(c.id);
        c.close();
      }
      return ids;
    };
    const a = await runOnce();
    expect(await clients(a.port, 3)).toEqual([a.first, a.first + 1, a.first + 2]);
    a.proc.child.kill('SIGTERM');
    expect(await a.proc.exit).toBe(0);
    // Clean stops: the next run goes on right after the last id handed out.
    const b = await runOnce();
    expect(b.first).toBe(a.first + 3);
    await clients(b.port, 1);
    b.proc.child.kill('SIGTERM');
    expect(await b.proc.exit).toBe(0);
    const c = await runOnce();
    expect(c.first).toBe(a.first + 4);
    // A crash: the rest of its block is skipped, no more (ids never repeat).
    c.proc.child.kill('SIGKILL');
    await c.proc.exit;
    const d = await runOnce();
    expect(d.first).toBeGreaterThan(c.first);
    expect(d.first).toBeLessThanOrEqual(c.first + ID_BLOCK);
    d.proc.child.kill('SIGTERM');
    expect(await d.proc.exit).toBe(0);
  }, 90_000);
});
