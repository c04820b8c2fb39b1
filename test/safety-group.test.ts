/**
 * The safety checker against `dlock up --replication group`: the same
 * harness and checker as test/safety.test.ts, the nodes on the group
 * protocol between worker threads (the primary's thread and the
 * secondaries' killed, links delayed, clients dropped). A bounded run:
 * `npm run chaos -- --replication group` runs it as long as asked.
 */
import { describe, expect, it } from 'vitest';
import { summary } from './safety/checker.js';
import { around, runSafety } from './safety/run.js';

describe('a bounded chaos run on the group protocol', () => {
  it('at least 5k grants under primary and secondary kills, link delays and dropped clients: no violations', async () => {
    const r = await runSafety({ grants: 5000, seconds: 90, followers: 2, clients: 24, locks: 24, chaos: 'kill-leader@1s,kill-follower@2s,delay@2s:5ms,drop-client@700ms', group: true });
    process.stdout.write(`safety on the group protocol: ${r.seconds.toFixed(1)} s, faults ${JSON.stringify(r.faults)}, takeovers ${r.failovers}, restarts ${r.restarts}\n${summary(r.report)}\n`);
    expect(r.report.violations, [summary(r.report), ...around(r)].join('\n')).toBe(0);
    expect(r.report.grants).toBeGreaterThanOrEqual(5000);
    expect(r.counters.resumes).toBeGreaterThan(0); // clients came back for their leases [LP-16]
    // The faults happened: a primary was killed and another took over, nodes restarted.
    expect(r.faults['kill-leader'] ?? 0).toBeGreaterThanOrEqual(1);
    expect(r.failovers).toBeGreaterThanOrEqual(1);
    expect(r.restarts).toBeGreaterThanOrEqual(1);
    expect(r.replicas.nodes).toBe(3);
  }, 150_000);
});
