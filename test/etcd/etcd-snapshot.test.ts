/**
 * Snapshots in etcd and the log compacted behind them, on a real
 * etcd member: a table in parts under the request limit loads back equal;
 * after compaction a node loads the snapshot and follows the log from its
 * revision, and one that needs entries the log no longer holds is told so
 * (LogGapError), never handed a gap; a new leader still numbers on.
 */
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, createState, snapshot } from '../../src/core/lock-table.js';
import { compactBehind, encodeParts, loadSnapshot, saveSnapshot } from '../../src/replication/etcd-snapshot.js';
import { EtcdLog, LogGapError } from '../../src/replication/etcd-log.js';
import type { LogEntry } from '../../src/replica/state-machine.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { eventually } from '../helpers/line-client.js';

const preempt = (i: number): LogEntry['cmd'] => ({ op: 'preempt', client: 10001 + (i % 7), lock: `lock-${i}`, ttl: i % 3 === 0 ? 60_000 : null });

describe.skipIf(!hasEtcd)('snapshots in etcd', () => {
  let etcd: EtcdCluster;
  let client: Etcd3;
  const logs: EtcdLog[] = [];
  beforeAll(async () => {
    etcd = await EtcdCluster.start(1);
    client = new Etcd3({ hosts: etcd.endpoints });
  });
  afterAll(async () => {
    for (const l of logs) await l.close();
    client.close();
    await etcd.stop();
  });

  it('a table of 30,000 locks goes in parts under the limit and loads back equal', async () => {
    const state = createState(5);
    for (let i = 0; i < 30_000; i++) apply(state, { op: 'preempt', client: 10001 + (i % 7), lock: `lock-${i}`, ttl: i % 3 === 0 ? 60_000 : null }, 1000 + i);
    apply(state, { op: 'acquire', client: 20001, lock: 'lock-7', ttl: null, timeout: null }, 99_999);
    const parts = encodeParts(snapshot(state), 30_001, 256 * 1024);
    expect(parts.length).toBeGreaterThan(1);
    for (const p of parts) expect(p.length).toBeLessThanOrEqual(256 * 1024);
    const meta = await saveSnapshot(client, 'big', snapshot(state), { seq: 30_001, revision: 1, batch: 1 }, 256 * 1024);
    expect(meta.parts).toBe(parts.length);
    const loaded = await loadSnapshot(client, 'big');
    expect(loaded?.meta).toEqual(meta);
    expect(snapshot(loaded!.state)).toEqual(snapshot(state));
    expect(loaded!.state.waiting).toEqual(state.waiting);
    // A newer snapshot replaces it, parts and all.
    await saveSnapshot(client, 'big', snapshot(createState(9)), { seq: 30_002, revision: 2, batch: 2 });
    expect((await client.getAll().prefix('/dlock/big/snap/').keys()).length).toBe(2); // latest + its one part
  });

  it('after compaction: a joining node loads the snapshot and follows on; an old reader gets LogGapError; a new leader numbers on', async () => {
    const leader = new EtcdLog({ etcd: etcd.access, cluster: 'cmp', node: 'a', electionTtlS: 1 });
    logs.push(leader);
    await leader.lead(() => {});
    // 40 batches, one entry each, applied to the leader's own table as it goes.
    const table = createState(1);
    let last = { revision: 0, seq: 0, batch: 0 };
    for (let i = 1; i <= 40; i++) {
      const r = await leader.append([{ at: 1000 + i, cmd: preempt(i), from: 0, req: 0 }]);
      apply(table, preempt(i), 1000 + i);
      last = { revision: r.revision, seq: r.seqs[1], batch: i };
    }
    const meta = await saveSnapshot(client, 'cmp', snapshot(table), { seq: last.seq, revision: last.revision, batch: last.batch });
    expect(await compactBehind(client, 'cmp', meta)).toBe(39); // the last batch stays
    for (let i = 41; i <= 45; i++) await leader.append([{ at: 1000 + i, cmd: preempt(i), from: 0, req: 0 }]);

    // A joining node: snapshot, then the log from its revision.
    const joiner = new EtcdLog({ etcd: etcd.access, cluster: 'cmp', node: 'b', electionTtlS: 1 });
    logs.push(joiner);
    const snap = await loadSnapshot(client, 'cmp');
    const got: LogEntry[] = [];
    await joiner.tail({ revision: snap!.meta.revision, nextSeq: snap!.meta.seq + 1 }, (b) => got.push(...b.entries), (err) => {
      throw err;
    });
    await eventually(() => got.length === 5, 'the 5 entries after the snapshot');
    expect(got.map((e) => e.seq)).toEqual([41, 42, 43, 44, 45]);
    for (const e of got) apply(snap!.state, e.cmd, e.at);
    for (let i = 41; i <= 45; i++) apply(table, preempt(i), 1000 + i);
    expect(snapshot(snap!.state)).toEqual(snapshot(table));

    // A node that needs seq 1 from the start: the log cannot give it, and says so.
    let gap: Error | null = null;
    const old = new EtcdLog({ etcd: etcd.access, cluster: 'cmp', node: 'c', electionTtlS: 1 });
    logs.push(old);
    await old.tail({ revision: 0, nextSeq: 1 }, () => {
      throw new Error('handed entries across a gap');
    }, (err) => {
      gap = err;
    });
    expect(gap).toBeInstanceOf(LogGapError);

    // The leader goes; the next one finds the log's end past the compaction.
    await leader.close();
    const next = new EtcdLog({ etcd: etcd.access, cluster: 'cmp', node: 'd', electionTtlS: 1 });
    logs.push(next);
    expect((await next.lead(() => {})).lastSeq).toBe(45);
    expect((await next.append([{ at: 2000, cmd: preempt(46), from: 0, req: 0 }])).seqs).toEqual([46, 46]);
  });
});
