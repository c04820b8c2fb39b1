/**
 * The safety checker against separate processes (issue 13): three `dlock
 * node` processes on a 3-member etcd, each (as root) on a host of its own
 * (a network namespace) with an etcd member; the leader's process killed
 * (-9), then a host cut off by a partition, then any node killed. A
 * bounded run: `npm run chaos -- --procs` runs it as long as asked.
 */
import { describe, expect, it } from 'vitest';
import { summary } from './safety/checker.js';
import { runSafetyProcs } from './safety/procs.js';
import { around } from './safety/run.js';
import { hasEtcd } from './helpers/etcd.js';
import { canMakeHosts } from './helpers/netns.js';

describe.skipIf(!hasEtcd)('a bounded chaos run across processes', () => {
  it('at least 5k grants under process kills (the leader first) and partitions: no violations', async () => {
    const r = await runSafetyProcs({ grants: 5000, seconds: 120, faults: ['kill-leader', 'partition', 'kill-node'], gapMs: 1000 });
    process.stdout.write(`safety across processes: ${r.seconds.toFixed(1)} s, faults ${JSON.stringify(r.faults)}, elections after the first ${r.failovers}, restarts ${r.restarts}\n${summary(r.report)}\n`);
    expect(r.report.violations, [summary(r.report), ...around(r)].join('\n')).toBe(0);
    expect(r.report.grants).toBeGreaterThanOrEqual(5000);
    expect(r.counters.resumes).toBeGreaterThan(0); // clients came back for their leases [LP-16]
    // The faults happened: the leader's process was killed and another node elected.
    expect(r.faults['kill-leader'] ?? 0).toBeGreaterThanOrEqual(1);
    expect(r.failovers).toBeGreaterThanOrEqual(1);
    expect(r.restarts).toBeGreaterThanOrEqual(1);
    if (canMakeHosts) expect(r.faults['partition'] ?? 0).toBeGreaterThanOrEqual(1);
    expect(r.replicas.nodes).toBe(3);
  }, 240_000);
});
