/**
 * The log on etcd (first part): real etcd members from Debian's
 * etcd-server on free loopback ports, never a mock. A leader's appends are
 * group-committed and read back in order by any node; a deposed leader
 * cannot append (its txn is guarded by its election key); a new leader
 * numbers on from the log's end; losing one of three members changes
 * nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeposedError, EtcdLog, type Batch } from '../../src/replication/etcd-log.js';
import type { LogEntry } from '../../src/replica/state-machine.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { eventually } from '../helpers/line-client.js';

const cmd = (i: number): LogEntry['cmd'] => ({ op: 'preempt', client: 10001, lock: `e${i}`, ttl: null });
const entry = (i: number): Omit<LogEntry, 'seq'> => ({ at: 1000 + i, cmd: cmd(i), from: 0, req: i });

/** Every entry a tail delivers, in delivery order. */
async function reader(log: EtcdLog, after = 0, nextSeq = 1): Promise<{ entries: LogEntry[]; batches: Batch[] }> {
  const out = { entries: [] as LogEntry[], batches: [] as Batch[] };
  await log.tail(
    { revision: after, nextSeq },
    (b) => {
      out.batches.push(b);
      out.entries.push(...b.entries);
    },
    (err) => {
      throw err;
    },
  );
  return out;
}

describe.skipIf(!hasEtcd)('EtcdLog on one etcd member', () => {
  let etcd: EtcdCluster;
  const logs: EtcdLog[] = [];
  const open = (node: string, cluster: string): EtcdLog => {
    const l = new EtcdLog({ etcd: etcd.access, cluster, node, electionTtlS: 1 });
    logs.push(l);
    return l;
  };
  beforeAll(async () => {
    etcd = await EtcdCluster.start(1);
  });
  afterAll(async () => {
    for (const l of logs) await l.close();
    await etcd.stop();
  });

  it('group commit: concurrent appends share txns, and every reader sees every entry once, in seq order', async () => {
    const leader = open('n1', 'gc');
    await leader.lead(() => {});
    const before = await reader(open('r1', 'gc'));
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => leader.append([entry(i)])));
    // Seqs are gap-free and in call order.
    expect(results.map((r) => r.seqs[0])).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    // Fewer txns than appends: one in flight, the rest batched behind it.
    const revisions = new Set(results.map((r) => r.revision));
    expect(revisions.size).toBeLessThan(200);
    await eventually(() => before.entries.length === 200, 'the watching reader to see all 200');
    const late = await reader(open('r2', 'gc')); // a reader that starts after: the range read
    for (const r of [before, late]) {
      expect(r.entries.map((e) => e.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
      expect(r.entries.map((e) => e.req)).toEqual(Array.from({ length: 200 }, (_, i) => i));
      expect(r.entries[7]).toEqual({ seq: 8, at: 1007, cmd: cmd(7), from: 0, req: 7 });
    }
    expect(late.batches.map((b) => b.revision)).toEqual([...revisions].sort((a, b) => a - b));
    // A tail from a revision gets exactly what came after it.
    const mid = late.batches[0] as Batch;
    const rest = await reader(open('r3', 'gc'), mid.revision, (mid.entries.at(-1) as LogEntry).seq + 1);
    expect(rest.entries[0]?.seq).toBe((mid.entries[mid.entries.length - 1] as LogEntry).seq + 1);
    expect(rest.entries.at(-1)?.seq).toBe(200);
  });

  it('a deposed leader cannot append: its election key is gone, so its guarded txn fails; the new leader numbers on', async () => {
    const a = open('a', 'fence');
    const b = open('b', 'fence');
    let aLost = false;
    await a.lead(() => {
      aLost = true;
    });
    await a.append([entry(1), entry(2)]);
    const bElected = b.lead(() => {});
    // Depose a behind its back, as an expired lease would (a paused or
    // partitioned leader does not hear of it in time): delete its election key.
    let candidates: Record<string, string> = {};
    await eventually(async () => Object.keys((candidates = await a.client.getAll().prefix('/dlock/fence/election/').strings())).length === 2, "b's candidacy");
    const aKey = Object.keys(candidates).find((k) => candidates[k] === 'a'); // a candidate's value is its node name
    expect(aKey).toBeDefined();
    await a.client.delete().key(aKey as string).exec();
    const { lastSeq } = await bElected;
    expect(lastSeq).toBe(2);
    expect(a.leads).toBe(true); // a still believes it leads…
    await expect(a.append([entry(3)])).rejects.toBeInstanceOf(DeposedError); // …but etcd refuses it
    expect(a.leads).toBe(false);
    const r = await b.append([entry(4)]);
    expect(r.seqs).toEqual([3, 3]);
    const all = await reader(open('r', 'fence'));
    expect(all.entries.map((e) => [e.seq, e.req])).toEqual([
      [1, 1],
      [2, 2],
      [3, 4],
    ]);
    expect(aLost || !a.leads).toBe(true);
  });

  it('a late reader catches up in pages (more batches than one page holds), in order, then follows the watch', async () => {
    const leader = open('p', 'pages');
    await leader.lead(() => {});
    for (let i = 1; i <= 20; i++) await leader.append([entry(i)]); // one batch each
    const late = await reader(open('pr', 'pages'));
    expect(late.batches.length).toBe(20);
    expect(late.entries.map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    await leader.append([entry(21)]);
    await eventually(() => late.entries.length === 21, 'the watched 21st');
  });

  it('a follower cannot append at all', async () => {
    const f = open('f', 'nolead');
    await expect(f.append([entry(1)])).rejects.toBeInstanceOf(DeposedError);
  });
});

describe.skipIf(!hasEtcd)('EtcdLog on three etcd members', () => {
  it('an append while etcd has no leader is sent again, not failed: it lands once quorum is back', async () => {
    const etcd = await EtcdCluster.start(3);
    // A long election lease and append budget: the fault outlasts the etcd3 client's own retries.
    const leader = new EtcdLog({ etcd: etcd.access, cluster: 'nl', node: 'n1', electionTtlS: 10, appendTimeoutMs: 15_000 });
    try {
      await leader.lead(() => {});
      await leader.append([entry(1)]);
      await etcd.kill(1);
      await etcd.kill(2);
      // The survivor knows it has no leader: it refuses at once ("no leader").
      await eventually(async () => (await etcd.leader()) === -1, 'etcd without a leader', 10_000);
      const landed = leader.append([entry(2)]);
      let failed: unknown = null;
      landed.catch((err: unknown) => (failed = err));
      // The fault lasts 3 s, longer than the etcd3 client's retries (about 1 s): the append must still be waiting.
      await new Promise((resolve) => setTimeout(resolve, 3000));
      expect(failed).toBe(null);
      await etcd.restart(1);
      expect((await landed).seqs).toEqual([2, 2]);
    } finally {
      await leader.close();
      await etcd.stop();
    }
  });

  it('losing one member, etcd\'s own leader (the worst case): appends and reads go on; with it back, nothing is missing', async () => {
    const etcd = await EtcdCluster.start(3);
    const leader = new EtcdLog({ etcd: etcd.access, cluster: 'ha', node: 'n1', electionTtlS: 2 });
    const follower = new EtcdLog({ etcd: etcd.access, cluster: 'ha', node: 'n2', electionTtlS: 2 });
    try {
      await leader.lead(() => {});
      const seen = await reader(follower);
      await leader.append([entry(1)]);
      // Appends during etcd's election are refused ("no leader") and must
      // be sent again, not cost this leader its leadership.
      const lost = await etcd.leader();
      await etcd.kill(lost);
      for (let i = 2; i <= 20; i++) await leader.append([entry(i)]);
      await eventually(() => seen.entries.length === 20, 'the reader to see 20 entries', 10_000);
      await etcd.restart(lost);
      await leader.append([entry(21)]);
      await eventually(() => seen.entries.length === 21, 'the 21st', 10_000);
      expect(seen.entries.map((e) => e.seq)).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
    } finally {
      await leader.close();
      await follower.close();
      await etcd.stop();
    }
  });
});
