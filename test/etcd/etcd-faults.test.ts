/**
 * etcd faults under three `dlock node` processes, on a real
 * 3-member etcd:
 *  - losing one member (etcd's Raft leader, the worst one) costs at most
 *    one dlock election, and every request sent meanwhile is answered;
 *  - losing quorum makes writes fail with a clear `Error:`, not a hang;
 *    reads are refused once the node cannot show it is in contact with
 *    etcd, and a node that lost its etcd lease stops serving (fail-stop),
 *    refusing connections with the reason [LP-8, LP-11];
 *  - service resumes when quorum returns: each node rejoins, leases taken
 *    before are kept, session locks of the closed connections are gone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dumpOnFailure, run, type Running } from '../helpers/dlock-process.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { ClientPool, eventually, firstLine, firstLineIs } from '../helpers/line-client.js';

interface Node {
  name: string;
  proc: Running;
  port: number;
}

describe.skipIf(!hasEtcd)('etcd faults: three dlock node processes on a 3-member etcd', () => {
  let etcd: EtcdCluster;
  const nodes: Node[] = [];
  dumpOnFailure(() => nodes);
  const pool = new ClientPool();

  beforeAll(async () => {
    etcd = await EtcdCluster.start(3);
    for (const name of ['n1', 'n2', 'n3']) {
      const proc = run(['node', '--replication', 'etcd', '--etcd', etcd.endpoints.join(','), '--name', name, '--cluster', 'faults', '--first-token', '1']);
      await eventually(() => /^ready /m.test(proc.out()) || proc.child.exitCode !== null, `${name}'s ready line`, 20_000);
      const m = /address=127\.0\.0\.1:(\d+)/.exec(proc.out());
      if (m === null) throw new Error(`dlock node ${name} did not get ready:\n${proc.out()}\n${proc.err()}`);
      nodes.push({ name, proc, port: Number(m[1]) });
    }
  }, 60_000);
  afterAll(async () => {
    pool.closeAll();
    for (const n of nodes) if (n.proc.child.exitCode === null) n.proc.child.kill('SIGKILL');
    await etcd?.stop();
  });

  const elections = (): number => nodes.reduce((n, x) => n + (x.proc.out().match(/elected leader/g)?.length ?? 0), 0);

  it('losing one member (the etcd leader) costs at most one election; every request is answered', async () => {
    const clients = await Promise.all(nodes.map((n) => pool.open(n.port)));
    for (const c of clients) expect(await c.ask(`preempt one-${c.id}`)).toMatch(/^PreemptLock Success/);
    const before = elections();
    const victim = await etcd.leader();
    expect(victim).toBeGreaterThanOrEqual(0);
    // Writes through every node, one at a time each, across the loss.
    let stop = false;
    const replies: string[] = [];
    let slowest = 0;
    const loads = clients.map(async (c, i) => {
      for (let k = 0; !stop; k++) {
        const t = Date.now();
        // An unanswered request fails the test here (10 s), never hangs it.
        replies.push(await c.ask(`preempt one-${i}-${k}`, 10_000));
        replies.push(await c.ask(`release one-${i}-${k}`, 10_000));
        slowest = Math.max(slowest, Date.now() - t);
      }
    });
    await eventually(() => replies.length >= 30, 'writes before the loss', 10_000);
    const t0 = Date.now();
    await etcd.kill(victim);
    await eventually(() => replies.length >= 60 && Date.now() - t0 > 4000, 'writes across the loss', 20_000, 50);
    // After the loss, every node takes writes again.
    const mark = replies.length;
    await eventually(() => replies.slice(mark).filter((r) => /^PreemptLock Success/.test(r)).length >= 30, 'writes after the loss', 20_000, 50);
    stop = true;
    await Promise.all(loads);
    for (const r of replies) expect(r).toMatch(/^(PreemptLock Success|ReleaseLock Success|Error: )/);
    expect(elections() - before).toBeLessThanOrEqual(1);
    expect(slowest).toBeLessThan(10_000);
    await etcd.restart(victim);
  }, 60_000);

  it('losing quorum: writes get Error:, reads are refused, the nodes stop serving; all resumes when quorum returns', async () => {
    const c = await pool.open(nodes[0]!.port);
    const lease = await c.ask('preempt q-lease ttl=120000');
    expect(lease).toMatch(/^PreemptLock Success/);
    expect(await c.ask('preempt q-session')).toMatch(/^PreemptLock Success/);
    const reader = await pool.open(nodes[1]!.port);
    // Another node's replica has it once it has applied that entry (LP-11 promises read-your-writes on the node that answered).
    await eventually(async () => new RegExp(`^CheckLock:Lock:${c.id} `).test(await reader.ask('check q-lease')), 'the lease on the other node');
    // Quorum lost: two of three members gone.
    const alive = await etcd.leader();
    const gone = [0, 1, 2].filter((i) => i !== alive).slice(0, 2);
    for (const i of gone) await etcd.kill(i);
    const t0 = Date.now();
    // A write: a clear Error: within the node lease's bound (jeopardy comes
    // 2 s before the 10 s ttl), not a hang.
    const w = await c.ask('preempt q-write', 15_000);
    expect(w).toMatch(/^Error: this node lost contact with etcd \(unreachable, or without quorum\) and stopped serving; the request may or may not have been applied$/);
    expect(Date.now() - t0).toBeLessThan(12_000);
    await c.waitClosed(3000); // its session is over [LP-8]
    // Reads: answered from the replica only while the node can show recent
    // contact with etcd (half the node ttl), then refused or closed; never
    // a hang, and what they show is the committed state [LP-11].
    let r = '';
    for (;;) {
      r = await reader.ask('check q-lease', 15_000).catch((err: unknown) => `closed: ${(err as Error).message}`);
      if (!r.startsWith('CheckLock:')) break;
      expect(r).toMatch(new RegExp(`^CheckLock:Lock:${c.id} `));
      expect(Date.now() - t0).toBeLessThan(10_000);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(r).toMatch(/^Error: (no contact with etcd for \d+ ms \(unreachable, or without quorum\): this node's replica may be that stale|this node lost contact with etcd)|^closed: /);
    // Every node refuses new connections with the reason, and closes them.
    for (const n of nodes) {
      await eventually(() => firstLineIs(n.port, /^Error: /), `${n.name} refusing`, 15_000, 200);
      const f = await firstLine(n.port);
      expect(f).toEqual({ line: 'Error: this node lost contact with etcd (unreachable, or without quorum) and stopped serving; it rejoins the cluster once etcd answers: retry or use another node', closed: true });
    }
    for (const n of nodes) expect(n.proc.child.exitCode).toBeNull(); // stopped serving, not exited
    // Quorum returns: every node rejoins and serves.
    for (const i of gone) await etcd.restart(i);
    const back = Date.now();
    for (const n of nodes) await eventually(() => firstLineIs(n.port, /^client_id: \d+ node: /), `${n.name} serving again`, 30_000, 200);
    const resumed = Date.now() - back;
    const again = await Promise.all(nodes.map((n) => pool.open(n.port)));
    for (const a of again) expect(await a.ask(`preempt q-after-${a.id}`, 10_000)).toMatch(new RegExp(`^PreemptLock Success owner=${a.id} token=\\d+$`));
    // The lease taken before is kept; the session lock of the closed connection is gone [LP-8].
    const tok = /token=(\d+)/.exec(lease)?.[1];
    for (const a of again) {
      expect(await a.ask('check q-lease')).toMatch(new RegExp(`^CheckLock:Lock:${c.id} token=${tok} ttl=\\d+$`));
      expect(await a.ask('check q-session')).toBe('CheckLock:Free');
      expect(await a.ask('check q-write')).toMatch(/^CheckLock:(Free|Lock:\d+ token=\d+)$/); // may or may not have been applied, as it said
    }
    expect(resumed).toBeLessThan(30_000);
    for (const n of nodes) expect(n.proc.out()).toMatch(/rejoined the cluster after \d+ ms/);
  }, 90_000);
});

