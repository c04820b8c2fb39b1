/**
 * `npm run chaos [-- --seconds N] [--grants N] [--chaos SPEC] [--clients N] [--locks N] [--followers N] [--etcd]`:
 * the safety harness for as long as asked (N seconds, or until N grants,
 * whichever comes first), then a summary; exit status 1 on any violation.
 *
 * `npm run chaos -- --procs [--seconds N] [--grants N] [--replication group]`: three `dlock node`
 * processes on a 3-member etcd instead (procs.ts), with process kills
 * (-9) of the leader and of any node, pauses (SIGSTOP) longer than the
 * election lease and than the node ttl, wall clocks stepped ±90 s (while
 * running and on restart) and run at ×1.5 and ×0.7 on the leader, and, as
 * root, hosts cut off by network partitions.
 *
 * `--timeline FILE`: after a run with violations, every line the nodes
 * logged, on the harness's clock, goes to FILE (the report shows only the
 * lines around the first violation). SAFETY_LOG=1 adds each request.
 */
import { writeFileSync } from 'node:fs';
import { EtcdCluster } from '../helpers/etcd.js';
import { DEFAULT_CHAOS, report, runSafety, type SafetyResult } from './run.js';

const argv = process.argv.slice(2);
const value = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i === -1 ? undefined : argv[i + 1];
};
const num = (name: string, def: number): number => {
  const v = value(name);
  const n = v === undefined ? def : Number(v);
  if (!Number.isFinite(n) || n <= 0) {
    process.stderr.write(`chaos: --${name} must be a positive number, got ${v}\n`);
    process.exit(2);
  }
  return n;
};

const seconds = num('seconds', 60);
const timelineFile = value('timeline');
const keepTimeline = (r: SafetyResult): void => {
  if (timelineFile === undefined || r.report.violations === 0) return;
  writeFileSync(timelineFile, r.timeline.map((l) => `@${l.at.toFixed(1)} ${l.node}: ${l.text}\n`).join(''));
  process.stderr.write(`chaos: the whole timeline is in ${timelineFile}\n`);
};
if (argv.includes('--procs')) {
  const { ALL_PROC_FAULTS, runSafetyProcs } = await import('./procs.js');
  process.stderr.write(`chaos: ${seconds}s${value('grants') === undefined ? '' : ` or ${value('grants')} grants`} against three dlock node processes on a 3-member etcd, with kills, partitions, pauses and moved clocks\n`);
  const r = await runSafetyProcs({
    seconds,
    grants: value('grants') === undefined ? undefined : num('grants', 1),
    faults: ALL_PROC_FAULTS,
    clients: num('clients', 24),
    locks: num('locks', 24),
    replication: value('replication') === 'group' ? 'group' : 'etcd',
    onProgress: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(report(r, `faults injected ${JSON.stringify(r.faults)}; elections after the first ${r.failovers}; process restarts ${r.restarts}`));
  keepTimeline(r);
  process.exit(r.report.violations === 0 ? 0 : 1);
}
const grants = value('grants') === undefined ? undefined : num('grants', 1);
const chaos = value('chaos') ?? DEFAULT_CHAOS;
process.stderr.write(`chaos: ${seconds}s${grants === undefined ? '' : ` or ${grants} grants`} against leader + ${num('followers', 2)} followers${argv.includes('--etcd') ? ' on etcd' : ''} under ${chaos}\n`);
// --etcd: start a local etcd member (Debian's etcd-server) and run the cluster on it.
const etcd = argv.includes('--etcd') ? await EtcdCluster.start(1) : null;
const r = await runSafety({
  etcd: etcd === null ? null : { access: etcd.access, cluster: 'chaos' },
  seconds,
  grants,
  chaos,
  followers: num('followers', 2),
  clients: num('clients', 24),
  locks: num('locks', 24),
  onProgress: (line) => process.stderr.write(`${line}\n`),
});
process.stdout.write(report(r, `faults injected ${JSON.stringify(r.faults)}; failovers ${r.failovers}; follower restarts ${r.restarts}`));
keepTimeline(r);
await etcd?.stop();
process.exitCode = r.report.violations === 0 ? 0 : 1;
