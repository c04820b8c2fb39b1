/**
 * The safety checker against separate processes: three `dlock
 * node` processes on a 3-member etcd, each (as root) on a host of its own
 * (a network namespace) with an etcd member, under every fault of
 * `npm run chaos -- --procs` once (procs.ts): the leader's process killed
 * (-9), paused longer than the election lease, a running node's wall
 * clock stepped, a host cut off, a node restarted with its clock stepped,
 * a node paused longer than its ttl, the leader's clock run fast or slow,
 * any node killed. Leases are in the workload throughout [LP-8]. A bounded
 * run, on each engine (the group protocol, the default, and the etcd log):
 * `npm run chaos -- --procs` runs it as long as asked.
 */
import { describe, expect, it } from 'vitest';
import { expectSafeRun } from '../helpers/safety-expect.js';
import { ALL_PROC_FAULTS, runSafetyProcs } from '../../tools/safety/procs.js';
import { LIBFAKETIME } from '../helpers/faketime.js';
import { hasEtcd } from '../helpers/etcd.js';
import { canMakeHosts } from '../helpers/netns.js';

describe.skipIf(!hasEtcd)('a bounded chaos run across processes', () => {
  for (const replication of ['group', 'etcd'] as const) it(`--replication ${replication}: at least 5k grants under kills, pauses, moved clocks and partitions, each at least once: no violations, every request answered`, async () => {
    const r = await runSafetyProcs({ grants: 5000, seconds: 60, untilEachFault: true, faults: ALL_PROC_FAULTS, gapMs: 1000, replication });
    // The faults happened: the leader's process was killed and another node elected; and each kind below.
    expectSafeRun(r, 'safety across processes', 5000, 'elections after the first');
    if (canMakeHosts) expect(r.faults['partition'] ?? 0).toBeGreaterThanOrEqual(1);
    for (const f of ['pause-leader', 'pause-node', 'kill-node']) expect(r.faults[f] ?? 0, f).toBeGreaterThanOrEqual(1);
    if (LIBFAKETIME !== null) for (const f of ['clock-step', 'clock-restart', 'clock-rate']) expect(r.faults[f] ?? 0, f).toBeGreaterThanOrEqual(1);
    expect(r.report.hangs).toEqual([]);
  }, 300_000);
});
