/**
 * What every bounded chaos run in `npm test` must show: no violation, the
 * grants asked for, clients that came back for their leases [LP-16], and
 * proof that the faults happened (a run without them proves nothing), with
 * a line for the CI log saying what was survived.
 */
import { expect } from 'vitest';
import { summary } from '../../tools/safety/checker.js';
import { around, type SafetyResult } from '../../tools/safety/run.js';

export function expectSafeRun(r: SafetyResult, label: string, grants: number, failoversAre = 'failovers'): void {
  process.stdout.write(`${label}: ${r.seconds.toFixed(1)} s, faults ${JSON.stringify(r.faults)}, ${failoversAre} ${r.failovers}, restarts ${r.restarts}\n${summary(r.report)}\n`);
  expect(r.report.violations, [summary(r.report), ...around(r)].join('\n')).toBe(0);
  expect(r.report.grants).toBeGreaterThanOrEqual(grants);
  expect(r.counters.resumes).toBeGreaterThan(0); // clients came back for their leases [LP-16]
  expect(r.faults['kill-leader'] ?? 0).toBeGreaterThanOrEqual(1);
  expect(r.failovers).toBeGreaterThanOrEqual(1);
  expect(r.restarts).toBeGreaterThanOrEqual(1);
  expect(r.replicas.nodes).toBe(3);
}
