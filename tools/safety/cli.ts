/**
 * `npm run chaos [-- --seconds N] [--grants N] [--chaos SPEC] [--clients N] [--locks N] [--followers N] [--etcd]`:
 * the safety harness for as long as asked (N seconds, or until N grants,
 * whichever comes first), then a summary; exit status 1 on any violation.
 *
 * `npm run chaos -- --procs [--seconds N] [--grants N] [--replication etcd]`: three `dlock node`
 * processes on a 3-member etcd instead (procs.ts), on the group protocol
 * (the default of `dlock node`) or the etcd log engine, with process kills
 * (-9) of the leader and of any node, pauses (SIGSTOP) longer than the
 * election lease and than the node ttl, wall clocks stepped ±90 s (while
 * running and on restart) and run at ×1.5 and ×0.7 on the leader, and, as
 * root, hosts cut off by network partitions. With the group protocol and
 * `--data-dir`, each node keeps its log in a data dir of its own, and the
 * schedule adds kill-all: every node killed (-9) at once and started again.
 *
 * `--timeline FILE`: after a run with violations, every line the nodes
 * logged, on the harness's clock, goes to FILE (the report shows only the
 * lines around the first violation). SAFETY_LOG=1 adds each request.
 */
import { writeFileSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { EtcdCluster } from '../../test/helpers/etcd.js';
import { DEFAULT_CHAOS, report, runSafety, type SafetyResult } from './run.js';

const positive = (name: string) => (v: number): number => {
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number, got ${v}`);
  return v;
};
// The same parsing as the dlock command: unknown flags and --help are not a chaos run.
const a = await yargs(hideBin(process.argv))
  .scriptName('npm run chaos --')
  .usage('$0 [--seconds N] [--grants N] [--chaos SPEC] [--clients N] [--locks N] [--followers N] [--etcd | --replication group]\n$0 --procs [--seconds N] [--grants N] [--replication group|etcd] [--data-dir] [--timeline FILE]')
  .option('seconds', { type: 'number', default: 60, coerce: positive('seconds'), describe: 'run this long (or until --grants)' })
  .option('grants', { type: 'number', coerce: positive('grants'), describe: 'stop after this many grants' })
  .option('chaos', { type: 'string', describe: `faults of the in-process run (default ${DEFAULT_CHAOS})` })
  .option('clients', { type: 'number', default: 24, coerce: positive('clients') })
  .option('locks', { type: 'number', default: 24, coerce: positive('locks') })
  .option('followers', { type: 'number', default: 2, coerce: positive('followers') })
  .option('etcd', { type: 'boolean', default: false, describe: 'the in-process cluster on a local etcd member' })
  .option('procs', { type: 'boolean', default: false, describe: 'three dlock node processes on a 3-member etcd' })
  .option('data-dir', { type: 'boolean', default: false, describe: 'with --procs on the group protocol: each node keeps its log in a data dir, and every node is also killed at once (kill-all)' })
  .option('replication', { choices: ['etcd', 'group', 'primary-backup'] as const, describe: 'the nodes\' engine: with --procs group (default) or etcd; in process primary-backup (default) or group' })
  .check((x) => {
    if (x.procs && x.replication === 'primary-backup') throw new Error('--replication primary-backup is the in-process engine; with --procs give etcd or group');
    if (!x.procs && x.replication === 'etcd') throw new Error('--replication etcd is for --procs; in process give --etcd for the cluster on etcd');
    if (x['data-dir'] && !(x.procs && x.replication !== 'etcd')) throw new Error('--data-dir goes with --procs on the group protocol (not --replication etcd, whose log is etcd\'s)');
    if (x.replication === 'group' && x.etcd) throw new Error('--replication group in process keeps its configuration in process: leave out --etcd');
    return true;
  })
  .option('timeline', { type: 'string', describe: 'after a run with violations, write every line the nodes logged here' })
  .strict()
  .fail((msg, err) => {
    process.stderr.write(`chaos: ${msg ?? err?.message ?? 'bad usage'}\nRun 'npm run chaos -- --help' for usage.\n`);
    process.exit(2);
  })
  .help()
  .parseAsync();
const value = (name: 'grants' | 'chaos' | 'timeline'): string | undefined => (a[name] === undefined ? undefined : String(a[name]));
const num = (name: 'seconds' | 'clients' | 'locks' | 'followers' | 'grants', def: number): number => (a[name] as number | undefined) ?? def;
const seconds = num('seconds', 60);
const timelineFile = value('timeline');
const keepTimeline = (r: SafetyResult): void => {
  if (timelineFile === undefined || r.report.violations === 0) return;
  writeFileSync(timelineFile, r.timeline.map((l) => `@${l.at.toFixed(1)} ${l.node}: ${l.text}\n`).join(''));
  process.stderr.write(`chaos: the whole timeline is in ${timelineFile}\n`);
};
if (a.procs) {
  const { ALL_PROC_FAULTS, runSafetyProcs } = await import('./procs.js');
  process.stderr.write(`chaos: ${seconds}s${value('grants') === undefined ? '' : ` or ${value('grants')} grants`} against three dlock node processes on a 3-member etcd, with kills, partitions, pauses and moved clocks\n`);
  const r = await runSafetyProcs({
    seconds,
    grants: value('grants') === undefined ? undefined : num('grants', 1),
    faults: a['data-dir'] ? [...ALL_PROC_FAULTS, 'kill-all'] : ALL_PROC_FAULTS,
    dataDir: a['data-dir'],
    clients: num('clients', 24),
    locks: num('locks', 24),
    replication: a.replication === 'etcd' ? 'etcd' : 'group',
    onProgress: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(report(r, `faults injected ${JSON.stringify(r.faults)}; elections after the first ${r.failovers}; process restarts ${r.restarts}`));
  keepTimeline(r);
  process.exit(r.report.violations === 0 ? 0 : 1);
}
const grants = value('grants') === undefined ? undefined : num('grants', 1);
const chaos = value('chaos') ?? DEFAULT_CHAOS;
process.stderr.write(`chaos: ${seconds}s${grants === undefined ? '' : ` or ${grants} grants`} against leader + ${num('followers', 2)} followers${a.etcd ? ' on etcd' : a.replication === 'group' ? ' on the group protocol' : ''} under ${chaos}\n`);
// --etcd: start a local etcd member (Debian's etcd-server) and run the cluster on it.
const etcd = a.etcd ? await EtcdCluster.start(1) : null;
const r = await runSafety({
  etcd: etcd === null ? null : { access: etcd.access, cluster: 'chaos' },
  group: a.replication === 'group',
  seconds,
  grants,
  chaos,
  followers: num('followers', 2),
  clients: num('clients', 24),
  locks: num('locks', 24),
  onProgress: (line) => process.stderr.write(`${line}\n`),
});
process.stdout.write(report(r, `faults injected ${JSON.stringify(r.faults)}; failovers ${r.failovers}; nodes restarted or replaced ${r.restarts}`));
keepTimeline(r);
await etcd?.stop();
process.exitCode = r.report.violations === 0 ? 0 : 1;
