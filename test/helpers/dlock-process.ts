/**
 * `dlock` as a child process, as a user runs it: its output collected, its
 * exit awaited, and `dlock up` waited for until its ready line.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { beforeEach } from 'vitest';
import { eventually } from './line-client.js';

/**
 * The built CLI; DLOCK_TEST_CLI names another build's (an earlier commit's
 * dist/ui/cli.js), to see a test fail on the code before a fix.
 */
export const CLI = process.env['DLOCK_TEST_CLI'] ?? fileURLToPath(new URL('../../dist/ui/cli.js', import.meta.url));

export interface Running {
  child: ChildProcessWithoutNullStreams;
  out: () => string;
  err: () => string;
  exit: Promise<number | null>;
}

/** `netns`: run it on a test host, inside that network namespace (helpers/netns.ts). */
export function run(args: string[], input?: string, env: NodeJS.ProcessEnv = process.env, netns?: string): Running {
  const child = netns === undefined ? spawn(process.execPath, [CLI, ...args], { stdio: 'pipe', env }) : spawn('ip', ['netns', 'exec', netns, process.execPath, CLI, ...args], { stdio: 'pipe', env });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  if (input !== undefined) child.stdin.end(input);
  return { child, out: () => out, err: () => err, exit };
}

/** Start `dlock up` headless on free ports; resolve with its node ports. On the group protocol (`--replication group` in `extra`), tokens come from the configuration version. */
export async function up(extra: string[] = [], env?: NodeJS.ProcessEnv): Promise<{ proc: Running; ports: Record<string, number> }> {
  // --first-token 1 so tests can name tokens (port 0 keeps no token floor, so the default is 1 too).
  const first = extra.join(' ').includes('--replication group') ? [] : ['--first-token', '1'];
  const proc = run(['up', '--port', '0', '--followers', '2', ...first, ...extra], undefined, env);
  await eventually(() => /^ready /m.test(proc.out()) || proc.child.exitCode !== null, 'the ready line', 15_000);
  const line = /^ready (.*)$/m.exec(proc.out())?.[1];
  if (line === undefined) throw new Error(`dlock up did not get ready:\n${proc.out()}\n${proc.err()}`);
  const ports: Record<string, number> = {};
  for (const part of line.split(' ')) {
    const [name, addr] = part.split('=');
    ports[name as string] = Number(addr?.split(':')[1]);
  }
  return { proc, ports };
}

/**
 * Print each process's output when a test in this file fails (always with
 * DLOCK_TEST_DUMP=1): CI keeps only the console, and a failure across
 * processes cannot be explained from the assertion alone.
 */
/** End every node process a test started, paused ones (SIGSTOP) included: continued, then killed if still running. */
export function killAll(nodes: Iterable<{ proc: Running }>): void {
  for (const n of nodes) {
    n.proc.child.kill('SIGCONT');
    if (n.proc.child.exitCode === null) n.proc.child.kill('SIGKILL');
  }
}

export function dumpOnFailure(procs: () => Iterable<{ name: string; proc: Running }>): void {
  const dump = (): void => {
    for (const n of procs()) console.log(`--- ${n.name} exit=${n.proc.child.exitCode}\n${n.proc.out()}\n${n.proc.err()}`);
  };
  beforeEach((ctx) => {
    if (process.env.DLOCK_TEST_DUMP !== undefined) ctx.onTestFinished(dump);
    else ctx.onTestFailed(dump);
  });
}

/** A `dlock node` as `run` starts it, once ready: its client port and its link port. */
export interface ReadyNode {
  proc: Running;
  port: number;
  link: number;
}

/**
 * Start `dlock node` with `args` and wait for its ready line (or its exit):
 * throws with its output when it did not get ready within `timeoutMs`.
 */
export async function startNode(args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 30_000): Promise<ReadyNode> {
  const proc = run(['node', ...args], undefined, env);
  await eventually(() => /^ready /m.test(proc.out()) || proc.child.exitCode !== null, 'the ready line', timeoutMs);
  const m = /^ready node=\S+ index=\d+ address=[^\s:]+:(\d+) link=[^\s:]+:(\d+) /m.exec(proc.out());
  if (m === null) throw new Error(`dlock node ${args.join(' ')} did not get ready:\n${proc.out()}\n${proc.err()}`);
  return { proc, port: Number(m[1]), link: Number(m[2]) };
}

/**
 * On the group protocol a node starts as a learner and takes writes once
 * it is a member of the configuration: wait until every one of `nodes` has
 * logged that it is the primary or a secondary in the latest configuration
 * version any of them logged.
 */
export async function groupWhole(nodes: Array<{ proc: Running }>, timeoutMs = 30_000): Promise<void> {
  const line = /configuration (\d+): .*; this node is (the primary|a secondary|a learner)$/gm;
  await eventually(
    () => {
      const last = nodes.map((n) => {
        let at = { version: 0, role: '' };
        for (const m of n.proc.out().matchAll(line)) at = { version: Number(m[1]), role: m[2] as string };
        return at;
      });
      const latest = Math.max(...last.map((l) => l.version));
      return last.every((l) => l.version === latest && l.role !== 'a learner');
    },
    'every node a member of the latest configuration',
    timeoutMs,
    50,
  );
}
