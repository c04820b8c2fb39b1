/**
 * What every bounded chaos run in `npm test` must show: no violation, the
 * grants asked for, clients that came back for their leases [LP-16], every
 * kind of hold granted and judged (expectEveryKind), and
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
  expectEveryKind(r);
  expect(r.faults['kill-leader'] ?? 0).toBeGreaterThanOrEqual(1);
  expect(r.failovers).toBeGreaterThanOrEqual(1);
  expect(r.restarts).toBeGreaterThanOrEqual(1);
  expect(r.replicas.nodes).toBe(3);
}

/**
 * Every kind of hold was granted in the run, so its checks judged
 * something: shared holds [LP-20], semaphores [LP-21], several locks at
 * once [LP-22], and reads after refusals of several (all or nothing).
 */
export function expectEveryKind(r: SafetyResult): void {
  const k = r.report.kinds;
  for (const kind of ['alone', 'shared', 'semaphore', 'several'] as const) expect(k[kind], `${kind} grants`).toBeGreaterThan(0);
  expect(k.sharedPeak, 'shared holds at once').toBeGreaterThanOrEqual(2);
  expect(k.atLimit, 'grants that filled a semaphore').toBeGreaterThan(0);
  expect(r.report.partialReads.judged, 'reads after a refusal of several').toBeGreaterThan(0);
}
