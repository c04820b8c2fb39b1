/**
 * Partitions on the group protocol (`dlock node --replication group`):
 * three hosts made of network namespaces, each with two links, one to the
 * nodes' own network (clients and node links) and one to etcd's (a member
 * in this namespace), so that a host can be cut off from its peers and not
 * from etcd, from etcd and not from its peers, or from everything. A
 * partition is a link set down.
 *
 * In each case no two primaries serve at once, and no acknowledged write
 * is lost [LP-5]. "Serving" is read from the nodes' logs, each line timed
 * on arrival on this process's monotonic clock: a primary stops when a
 * lease lapses (it then proposes a configuration without that secondary),
 * a new one starts at "now the primary"; the protocol puts graceMs −
 * leaseMs (750 ms across hosts) between the two. Log lines arrive a little
 * after they happen, so a line is placed after a cut by its configuration
 * version, not by its arrival. Leases are counted on the monotonic clock:
 * where libfaketime is installed, the host cut off from everything also has
 * its wall clock stepped back 90 s as it is cut, and still stops in time.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dumpOnFailure, run, type Running } from '../helpers/dlock-process.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { ClientPool, eventually, type LineClient } from '../helpers/line-client.js';
import { LIBFAKETIME, movableClock, moveClock } from '../helpers/faketime.js';
import { canMakeHosts, Hosts, type SecondNetwork } from '../helpers/netns.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface Node {
  name: string;
  proc: Running;
  addr: string;
  port: number;
  /** Every line it logged, timed on arrival (performance.now()). */
  lines: Array<{ at: number; text: string }>;
  /** Its wall clock's libfaketime file, or null without libfaketime. */
  clock: string | null;
}

describe.skipIf(!hasEtcd || !canMakeHosts)('partitions on the group protocol', () => {
  const hosts = new Hosts(`dlg${process.pid % 1000}`, `10.233.${process.pid % 200}`);
  let etcdNet: SecondNetwork;
  let etcd: EtcdCluster;
  const nodes: Node[] = [];
  dumpOnFailure(() => nodes);
  const pool = new ClientPool();
  const clocks = LIBFAKETIME === null ? null : mkdtempSync(join(tmpdir(), 'dlock-gpart-clocks-'));

  const client = (n: Node): Promise<LineClient> => pool.openAt(n.port, n.addr);
  const logged = (n: Node, re: RegExp, since: number): Array<{ at: number; text: string }> => n.lines.filter((l) => l.at >= since && re.test(l.text));

  /** The one node whose greeting says it leads. */
  const primary = async (): Promise<number> => {
    let found = -1;
    await eventually(async () => {
      const leads: number[] = [];
      for (const [i, n] of nodes.entries()) {
        const c = await client(n);
        if (/ role: leader$/.test(c.greeting)) leads.push(i);
        c.close();
      }
      found = leads.length === 1 ? (leads[0] as number) : -1;
      return found >= 0;
    }, 'one primary', 20_000, 100);
    return found;
  };

  /** The configuration versions `n` has logged. */
  const versionsOf = (n: Node): number[] => n.lines.map((l) => /configuration (\d+): /.exec(l.text)).filter((m) => m !== null).map((m) => Number(m[1]));

  /** The latest configuration version, once every node has logged that it is a member of it. */
  const settledVersion = async (): Promise<number> => {
    let latest = 0;
    await eventually(() => {
      latest = Math.max(...nodes.map((n) => Math.max(0, ...versionsOf(n))));
      return nodes.every((n) => n.lines.some((l) => new RegExp(`configuration ${latest}: .*; this node is (the primary|a secondary)$`).test(l.text)));
    }, 'every node a member of the latest configuration', 10_000, 50);
    return latest;
  };

  /** Every node back in the group: a write and a read through each one are answered. */
  const whole = async (tag: string): Promise<void> => {
    for (const n of nodes) {
      await eventually(async () => {
        const c = await client(n);
        try {
          return (await c.ask(`preempt ${tag}-${n.name}`, 10_000)).startsWith('PreemptLock Success') && (await c.ask(`check ${tag}-${n.name}`)).startsWith('CheckLock:Lock:');
        } finally {
          c.close();
        }
      }, `a write and a read through ${n.name} (${tag})`, 40_000, 200);
    }
  };

  beforeAll(async () => {
    hosts.make(3);
    etcdNet = hosts.addNetwork(`10.234.${process.pid % 200}`);
    etcd = await EtcdCluster.start(1, etcdNet.gateway);
    for (const [i, h] of hosts.hosts.entries()) {
      const name = `q${i}`;
      const clock = clocks === null ? null : join(clocks, name);
      const proc = run(['node', '--etcd', etcd.endpoints.join(','), '--name', name, '--host', h.addr, '--cluster', 'gpart', '--replication', 'group', '--node-ttl', '2', '--insecure'], undefined, clock === null ? process.env : movableClock(clock), h.ns);
      const n: Node = { name, proc, addr: h.addr, port: 0, lines: [], clock };
      let partial = '';
      const onData = (d: string): void => {
        partial += d;
        const ls = partial.split('\n');
        partial = ls.pop() ?? '';
        for (const l of ls) n.lines.push({ at: performance.now(), text: l });
      };
      proc.child.stdout.on('data', onData);
      proc.child.stderr.on('data', onData);
      await eventually(() => /^ready /m.test(proc.out()) || proc.child.exitCode !== null, `${name} ready`, 30_000);
      const m = /address=[\d.]+:(\d+)/.exec(proc.out());
      if (m === null) throw new Error(`${name} did not start:\n${proc.out()}\n${proc.err()}`);
      n.port = Number(m[1]);
      nodes.push(n);
    }
    await whole('start');
  }, 120_000);
  // A failed case leaves no link down for the next.
  afterEach(() => {
    for (let i = 0; i < hosts.hosts.length; i++) {
      hosts.link(i, true);
      etcdNet.link(i, true);
    }
  });
  afterAll(async () => {
    pool.closeAll();
    for (const n of nodes) if (n.proc.child.exitCode === null) n.proc.child.kill('SIGKILL');
    await etcd?.stop();
    hosts.remove();
    if (clocks !== null) rmSync(clocks, { recursive: true, force: true });
  });

  it('a secondary cut off from its peers: the primary removes it and writes go on; the secondary never leads', async () => {
    const p = await primary();
    const s = (p + 1) % 3;
    const at = nodes[p] as Node;
    const cut = nodes[s] as Node;
    const c = await client(at);
    const t0 = performance.now();
    hosts.link(s, false);
    await eventually(async () => (await c.ask('preempt after-secondary-cut', 10_000)).startsWith('PreemptLock Success'), 'a write through the primary', 20_000, 100);
    // Log lines reach this process a little later than they happen (the node orders them first).
    await eventually(() => logged(at, new RegExp(`proposing configuration \\d+: primary ${at.name}\\.\\d+, secondaries (?!.*${cut.name}\\.)`), t0).length > 0, 'the primary proposes a configuration without it', 5000, 50);
    // Cut off (its clients too), it learns from etcd that it is out, and never leads.
    await eventually(() => logged(cut, /^.*configuration \d+: .*; this node is a learner$/, t0).length > 0, 'the cut secondary learns it is out', 10_000, 100);
    expect(logged(cut, /now the primary/, t0)).toEqual([]);
    hosts.link(s, true);
    await whole('secondary-back');
  }, 120_000);

  it('the primary cut off from its secondaries, not from etcd: it removes them first; neither of them leads; nothing acknowledged is lost', async () => {
    const p = await primary();
    const at = nodes[p] as Node;
    const c = await client(at);
    const acked = await c.ask('preempt acked-before-cut ttl=600000');
    expect(acked).toMatch(/^PreemptLock Success/);
    const t0 = performance.now();
    hosts.link(p, false);
    // It lapses first (its lease, 1.5 s, is shorter than their grace, 2.25 s) and reaches etcd; they learn from etcd that they are out.
    await eventually(() => logged(at, new RegExp(`configuration \\d+: primary ${at.name}\\.\\d+, secondaries none; this node is the primary`), t0).length > 0, 'the primary alone in a new configuration', 15_000, 100);
    for (const [i, n] of nodes.entries()) {
      if (i === p) continue;
      const o = await client(n);
      await eventually(async () => /^Error: this node is catching up to join/.test(await o.ask('preempt while-cut', 10_000)), `${n.name} refuses writes`, 10_000, 100);
      expect(logged(n, /now the primary/, t0)).toEqual([]);
    }
    hosts.link(p, true);
    await whole('primary-back');
    const r = await client(nodes[(p + 1) % 3] as Node);
    expect(await r.ask('check acked-before-cut')).toMatch(new RegExp(`^CheckLock:Lock:${c.id} token=${/token=(\d+)/.exec(acked)?.[1]} ttl=\\d+$`));
  }, 120_000);

  it('the primary cut off from etcd, not from its secondaries: nothing changes, every node serves', async () => {
    const p = await primary();
    const before = await settledVersion();
    const t0 = performance.now();
    etcdNet.link(p, false);
    const clients = await Promise.all(nodes.map((n) => client(n)));
    // Past its etcd lease (node ttl 2 s) and well past the group's lease: writes and reads through every node.
    const until = performance.now() + 6000;
    let round = 0;
    while (performance.now() < until) {
      round++;
      for (const [i, cl] of clients.entries()) {
        expect(await cl.ask(`preempt etcd-cut-${i}-${round}`, 5000)).toMatch(/^PreemptLock Success/);
        expect(await cl.ask(`check etcd-cut-${i}-${round}`, 5000)).toMatch(new RegExp(`^CheckLock:Lock:${cl.id} `));
      }
    }
    for (const n of nodes) {
      expect(versionsOf(n).filter((v) => v > before)).toEqual([]);
      expect(logged(n, /now the primary/, t0)).toEqual([]);
    }
    await eventually(() => logged(nodes[p] as Node, /etcd lease lost .*still serving/, t0).length > 0, 'the primary says it serves on without etcd', 5000, 50);
    etcdNet.link(p, true);
    await eventually(() => logged(nodes[p] as Node, /registered again in etcd/, t0).length > 0, 'registered again', 40_000, 200);
    await whole('etcd-back');
  }, 120_000);

  it('the primary\'s host cut off from everything: a secondary leads only after the old primary stopped; nothing acknowledged is lost; the old one comes back as a member', async () => {
    const p = await primary();
    const old = nodes[p] as Node;
    const c = await client(old);
    const acked = await c.ask('preempt acked-before-isolation ttl=600000');
    expect(acked).toMatch(/^PreemptLock Success/);
    const before = await settledVersion();
    const t0 = performance.now();
    hosts.link(p, false);
    etcdNet.link(p, false);
    // An NTP step back as it is cut: a lease read on the wall clock would look 90 s younger.
    if (old.clock !== null) moveClock(old.clock, '-90s');
    const lapse = new RegExp(`proposing configuration (\\d+): primary ${old.name}\\.`);
    const lapsed = (): Array<{ at: number; text: string }> => old.lines.filter((l) => Number(lapse.exec(l.text)?.[1] ?? 0) > before);
    const survivors = nodes.filter((_, i) => i !== p);
    await eventually(() => survivors.some((n) => logged(n, /now the primary/, t0).length > 0) && lapsed().length > 0, 'a secondary takes over, and the old primary\'s lapse is logged', 20_000, 100);
    const started = Math.min(...survivors.flatMap((n) => logged(n, /now the primary/, t0).map((l) => l.at)));
    // The old primary stopped serving when its first lease lapsed: it then proposed a configuration after `before` without that secondary.
    const stopped = lapsed()[0];
    expect(stopped, 'the old primary logs the lapse of its lease').toBeDefined();
    expect(started - (stopped as { at: number }).at, 'time between the old primary stopping and the new one starting, ms').toBeGreaterThan(300);
    for (const n of survivors) {
      const cl = await client(n);
      await eventually(async () => (await cl.ask(`preempt isolated-${n.name}`, 10_000)).startsWith('PreemptLock Success'), `a write through ${n.name}`, 20_000, 100);
      expect(await cl.ask('check acked-before-isolation')).toMatch(new RegExp(`^CheckLock:Lock:${c.id} token=${/token=(\d+)/.exec(acked)?.[1]} ttl=\\d+$`));
    }
    hosts.link(p, true);
    etcdNet.link(p, true);
    if (old.clock !== null) moveClock(old.clock, '+0');
    // Back, it learns it is out: it closes its clients (their sessions were ended) and joins again.
    await c.waitClosed(20_000);
    await whole('isolated-back');
  }, 120_000);
});
