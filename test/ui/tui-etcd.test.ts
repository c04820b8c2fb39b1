/**
 * `dlock tui --etcd`: the VS Code-style view attached to nodes
 * that run as their own processes on a real etcd member, in tmux, asserted
 * on the screen: every node with its role, their lock maps and log lines
 * (served as views on each node's authenticated link port), the terminal
 * as a client, and a node that stops shown gone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, groupWhole, run, type Running } from '../helpers/dlock-process.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { eventually, LineClient } from '../helpers/line-client.js';
import { hasTmux, Tmux } from '../helpers/tmux.js';
import { Etcd3 } from 'etcd3';
import { readClusterSecret, viewOnce } from '../../src/observe.js';

const TOKEN = 'tui-etcd-token';

describe.skipIf(!hasEtcd || !hasTmux)('dlock tui --etcd', () => {
  let etcd: EtcdCluster;
  const nodes: Array<{ name: string; proc: Running; port: number }> = [];
  let tmux: Tmux;

  beforeAll(async () => {
    etcd = await EtcdCluster.start(1);
    for (const name of ['t1', 't2']) {
      const proc = run(['node', '--etcd', etcd.endpoints.join(','), '--name', name, '--cluster', 'view', '--auth-token', TOKEN]);
      await eventually(() => /^ready /m.test(proc.out()) || proc.child.exitCode !== null, `${name} ready`, 20_000);
      const m = /address=127\.0\.0\.1:(\d+)/.exec(proc.out());
      if (m === null) throw new Error(`${name} did not start:\n${proc.out()}\n${proc.err()}`);
      nodes.push({ name, proc, port: Number(m[1]) });
    }
    await groupWhole(nodes); // dlock node's default, the group protocol: a node takes writes once it is a member
    tmux = new Tmux(120, 34);
  }, 60_000);
  afterAll(async () => {
    tmux?.kill();
    for (const n of nodes) if (n.proc.child.exitCode === null) n.proc.child.kill('SIGKILL');
    await etcd?.stop();
  });

  it('a node serves views only to an observer that proves the cluster secret (kept in etcd here), never to the clients\' token', async () => {
    const link = /link=(\S+)/.exec(nodes[0]!.proc.out())?.[1] as string;
    await expect(viewOnce(link, { secret: 'wrong-secret', tls: null }, 10, 3000)).rejects.toThrow(/did not prove|closed|no view/);
    await expect(viewOnce(link, { secret: TOKEN, tls: null }, 10, 3000)).rejects.toThrow(/did not prove|closed|no view/);
    const client = new Etcd3({ hosts: etcd.endpoints });
    const secret = await readClusterSecret(client, 'view').finally(() => client.close());
    const v = await viewOnce(link, { secret, tls: null }, 10, 3000);
    expect(v.stats['name']).toBe('t1');
    expect(Array.isArray(v.locks)).toBe(true);
  });

  it('shows each node, its role, lock map and log; the terminal is a client; a node that stops is shown gone', async () => {
    const c = await LineClient.open(nodes[1]!.port);
    expect(await c.ask(`auth ${TOKEN}`)).toBe('Auth Success');
    expect(await c.ask('preempt view-lease ttl=60000')).toMatch(/^PreemptLock Success/);
    tmux.start(`DLOCK_AUTH_TOKEN=${TOKEN} ${process.execPath} ${CLI} tui --etcd ${etcd.endpoints.join(',')} --cluster view`);
    // Both nodes, one of them the leader (the election's), both up.
    let s = await tmux.until(/● t\d \(leader\) up[\s\S]*● t\d up|● t\d up[\s\S]*● t\d \(leader\) up/, 'both nodes in the explorer', 15_000);
    expect(s).toMatch(/ 2\/2 up │/);
    // Their lock maps (from each node's own replica) show the lease.
    s = await tmux.until(/view-lease +\d+ +1 +\d+\.\ds[\s\S]*view-lease +\d+ +1 +\d+\.\ds/, 'the lease in both lock maps');
    // A request through a node shows in that node's log pane.
    expect(await c.ask('preempt view-session')).toMatch(/^PreemptLock Success/);
    await tmux.until(/Response \d+: PreemptLock/, 'the request and its reply in the log');
    // Each node's client address, as it published it in etcd.
    for (const n of nodes) expect(tmux.screen()).toContain(`127.0.0.1:${n.port}`);
    // The terminal: a client of the leader, with the cluster's token.
    await tmux.palette('view: terminal');
    await tmux.until(/distributeLock:>/, 'the prompt');
    tmux.keys('check view-lease', 'Enter');
    await tmux.until(/Response: CheckLock:Lock:\d+ token=1 ttl=\d+/, 'the reply in the terminal');
    // A node that stops (SIGTERM: it leaves etcd at once) is shown gone.
    const gone = nodes[1]!;
    gone.proc.child.kill('SIGTERM');
    expect(await gone.proc.exit).toBe(0);
    s = await tmux.until(new RegExp(`⊘ ${gone.name}[^\\n]* gone`), 'the stopped node shown gone', 10_000);
    expect(s).toMatch(/ 1\/1 up │/); // the one that left is not counted (as a dead leader nobody replaces)
    c.close();
  }, 60_000);

  it('a leader killed with -9 is shown down at once, counted against the cluster (2/3 up), and the next leader is logged', async () => {
    for (const name of ['t3', 't4']) {
      const proc = run(['node', '--etcd', etcd.endpoints.join(','), '--name', name, '--cluster', 'view', '--auth-token', TOKEN]);
      await eventually(() => /^ready /m.test(proc.out()) || proc.child.exitCode !== null, `${name} ready`, 20_000);
      const m = /address=127\.0\.0\.1:(\d+)/.exec(proc.out());
      if (m === null) throw new Error(`${name} did not start:\n${proc.out()}\n${proc.err()}`);
      nodes.push({ name, proc, port: Number(m[1]) });
    }
    await groupWhole(nodes.filter((n) => n.proc.child.exitCode === null));
    await tmux.until(/ 3\/3 up │/, 'three nodes up', 15_000);
    const alive = nodes.filter((n) => n.proc.child.exitCode === null);
    let leader: (typeof alive)[number] | undefined;
    await eventually(async () => {
      for (const n of alive) {
        const c = await LineClient.open(n.port);
        if (/ role: leader$/.test(c.greeting)) leader = n;
        c.close();
      }
      return leader !== undefined;
    }, 'the leader', 15_000);
    const dead = leader as (typeof alive)[number];
    dead.proc.child.kill('SIGKILL');
    // Down within the link's heartbeat (3 s), long before its etcd lease (10 s) ends; the bar counts it.
    const s = await tmux.until(new RegExp(`${dead.name}[^\\n]* down[\\s\\S]* 2\\/3 up │`), 'the killed leader shown down, 2/3 up', 4000);
    expect(s).not.toMatch(new RegExp(`● ${dead.name}[^\\n]* up`));
    await tmux.palette('view: output');
    await tmux.until(new RegExp(`${dead.name} is down: its observer link closed`), 'the log says it is down');
    await tmux.until(/no leader can be shown to take writes/, 'the log says no leader is shown');
    // Once its lease ends, another node is elected, and the log names it.
    await tmux.until(new RegExp(`leader: t\\d`), 'the new leader logged', 25_000);
    // After it went down the log shows no leader, so the next one is logged as new (not "was").
    const next = await tmux.until(new RegExp(`no leader can be shown[\\s\\S]*leader: (t\\d)`), 'the next leader logged after', 25_000);
    expect(new RegExp(`no leader can be shown[\\s\\S]*leader: (t\\d)`).exec(next)?.[1]).not.toBe(dead.name);
  }, 90_000);
});
