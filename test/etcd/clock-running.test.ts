/**
 * Wall clocks stepped while `dlock node` processes run (libfaketime reading
 * a file per node: an NTP step, the monotonic clock untouched):
 *  - the leader's clock 90 s back and a follower's 90 s ahead, then the
 *    other way: a lease ends no sooner than its ttl after it was asked for
 *    and does end [LP-8], an `acquire`'s wait lasts its timeout and is
 *    answered [LP-9], writes through the follower are applied once, and a
 *    closed connection's session lock ends [LP-8];
 *  - jeopardy (the etcd engine): with every node's clock stepped back 90 s
 *    at the moment etcd stops answering, every node still stops serving
 *    within its node ttl, and serves again once etcd answers [LP-11]. The
 *    group protocol serves on through an etcd outage by design; its own
 *    leases under a stepped clock are in group-partitions.test.ts.
 * Both engines across hosts run the steps while running.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dumpOnFailure, startNode, type ReadyNode } from '../helpers/dlock-process.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { LIBFAKETIME, movableClock, moveClock } from '../helpers/faketime.js';
import { ClientPool, eventually, firstLine, firstLineIs, type LineClient } from '../helpers/line-client.js';

type Node = ReadyNode & { name: string; clock: string };

const NODE_TTL_S = 4;

for (const engine of ['etcd', 'group'] as const) describe.skipIf(!hasEtcd || LIBFAKETIME === null)(`wall clocks stepped while nodes run (--replication ${engine})`, () => {
  let etcd: EtcdCluster;
  const nodes: Node[] = [];
  dumpOnFailure(() => nodes);
  const pool = new ClientPool();
  const clocks = mkdtempSync(join(tmpdir(), 'dlock-clocks-'));

  beforeAll(async () => {
    etcd = await EtcdCluster.start(1);
    for (const name of ['m1', 'm2', 'm3']) {
      const clock = join(clocks, name);
      const args = ['--etcd', etcd.endpoints.join(','), '--name', name, '--cluster', 'moving', '--replication', engine, ...(engine === 'etcd' ? ['--first-token', '1'] : []), '--node-ttl', String(NODE_TTL_S), '--quiet'];
      nodes.push({ name, clock, ...(await startNode(args, movableClock(clock), 40_000)) });
    }
  }, 90_000);
  afterAll(async () => {
    pool.closeAll();
    for (const n of nodes) if (n.proc.child.exitCode === null) n.proc.child.kill('SIGKILL');
    await etcd?.stop();
    rmSync(clocks, { recursive: true, force: true });
  });

  /** The node whose greeting says it leads, and one that does not. */
  async function roles(): Promise<{ leader: Node; follower: Node }> {
    let leader: Node | undefined;
    let follower: Node | undefined;
    await eventually(
      async () => {
        leader = follower = undefined;
        for (const n of nodes) {
          const g = await firstLine(n.port);
          if (/ role: leader$/.test(g.line)) leader = n;
          else if (/^client_id: /.test(g.line)) follower = n;
        }
        return leader !== undefined && follower !== undefined;
      },
      'a leader and a follower',
      20_000,
      100,
    );
    return { leader: leader as Node, follower: follower as Node };
  }

  for (const [leaderStep, followerStep] of [
    ['-90s', '+90s'],
    ['+90s', '-90s'],
  ] as const) {
    it(`the leader's clock stepped ${leaderStep} and a follower's ${followerStep} while they run: leases, waits, writes and sessions as before`, async () => {
      const { leader, follower } = await roles();
      const c = await pool.open(follower.port);
      const holder = await pool.open(leader.port);
      const lock = `lease${leaderStep}`;
      expect(await holder.ask(`preempt held${leaderStep}`)).toMatch(new RegExp(`^PreemptLock Success owner=${holder.id} `));
      const sent = performance.now();
      expect(await c.ask(`preempt ${lock} ttl=5000`)).toMatch(new RegExp(`^PreemptLock Success owner=${c.id} token=\\d+$`));
      moveClock(leader.clock, leaderStep);
      moveClock(follower.clock, followerStep);
      const readers = [await pool.open(leader.port), await pool.open(follower.port)];
      // A wait lasts its timeout and is answered [LP-9]; a write through the follower is applied once [LP-5].
      const w0 = performance.now();
      expect(await c.ask(`acquire held${leaderStep} timeout=1500`, 10_000)).toBe(`AcquireLock Timeout owner=${holder.id}`);
      expect(performance.now() - w0).toBeGreaterThan(1400);
      const write = await c.ask(`preempt write${leaderStep}`);
      const token = /token=(\d+)$/.exec(write)?.[1];
      expect(token).toBeDefined();
      for (const r of readers) await eventually(async () => (await r.ask(`check write${leaderStep}`)) === `CheckLock:Lock:${c.id} token=${token}`, 'the write everywhere');
      // The lease: held on both nodes until 4.5 s after it was asked for [LP-8]…
      while (performance.now() < sent + 4500) {
        for (const r of readers) expect(await r.ask(`check ${lock}`)).toMatch(new RegExp(`^CheckLock:Lock:${c.id} token=\\d+ ttl=\\d+$`));
        await new Promise((r) => setTimeout(r, 100)); // a read every 100 ms, not a busy loop
      }
      // …and ended once its time is up, on both.
      for (const r of readers) await eventually(async () => (await r.ask(`check ${lock}`)) === 'CheckLock:Free', 'the lease ended', 5000, 50);
      expect(performance.now() - sent).toBeLessThan(9000);
      // A closed connection's session lock ends [LP-8].
      holder.close();
      for (const r of readers) await eventually(async () => (await r.ask(`check held${leaderStep}`)) === 'CheckLock:Free', 'the session lock released', 10_000, 50);
      moveClock(leader.clock, '+0');
      moveClock(follower.clock, '+0');
    }, 60_000);
  }

  it.skipIf(engine === 'group')('jeopardy: every clock stepped back 90 s as etcd stops answering, and every node still stops serving within its node ttl', async () => {
    const readers: LineClient[] = await Promise.all(nodes.map((n) => pool.open(n.port)));
    for (const r of readers) expect(await r.ask('check j')).toBe('CheckLock:Free');
    etcd.pause(0);
    const t0 = performance.now();
    for (const n of nodes) moveClock(n.clock, '-90s');
    try {
      // Every node refuses new connections with the reason, within the ttl
      // (it stops at two thirds of it), measured from the pause.
      const stopped = nodes.map(async (n) => {
        await eventually(() => firstLineIs(n.port, /^Error: this node lost contact with etcd/), `${n.name} refusing`, NODE_TTL_S * 1000 + 3000, 100);
        return performance.now() - t0;
      });
      for (const ms of await Promise.all(stopped)) expect(ms).toBeLessThan(NODE_TTL_S * 1000 + 1000);
    } finally {
      etcd.resume(0);
    }
    // etcd answers again: every node rejoins and serves.
    for (const n of nodes) await eventually(() => firstLineIs(n.port, /^client_id: \d+ node: /), `${n.name} serving again`, 30_000, 200);
    for (const n of nodes) moveClock(n.clock, '+0');
  }, 60_000);
});
