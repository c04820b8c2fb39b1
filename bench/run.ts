/**
 * `npm run bench`: a first cut (issue 4 grows it into the full matrix with
 * Redis and live-mutex side by side, JSON results and a chart).
 *
 * Starts `dlock up --quiet --no-tui --port 0` as a child process, then runs
 * each scenario with the load generator in a separate process, and prints
 * ops/s and latency percentiles. `--seconds N` sets the measured window;
 * `--smoke` runs every scenario for a fraction of a second (used by tests).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { LoadResult, Scenario } from './loadgen.js';

const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const LOADGEN = fileURLToPath(new URL('./loadgen.js', import.meta.url));

interface Case {
  name: string;
  scenario: Scenario;
  via: 'followers' | 'leader';
  conns: number;
  depth: number;
}

const CASES: Case[] = [
  { name: 'check via followers', scenario: 'check', via: 'followers', conns: 50, depth: 1 },
  { name: 'check via leader', scenario: 'check', via: 'leader', conns: 50, depth: 1 },
  { name: 'check via followers, depth 16', scenario: 'check', via: 'followers', conns: 50, depth: 16 },
  { name: 'preempt+release via followers', scenario: 'cycle', via: 'followers', conns: 50, depth: 1 },
  { name: 'preempt+release via leader', scenario: 'cycle', via: 'leader', conns: 50, depth: 1 },
  { name: 'contended preempt via followers', scenario: 'contended', via: 'followers', conns: 16, depth: 1 },
];

function startCluster(): Promise<{ stop: () => Promise<void>; leader: number; followers: number[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'up', '--quiet', '--no-tui', '--port', '0', '--followers', '2'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /^ready (.*)$/m.exec(out);
      if (m === null) return;
      child.stdout.removeAllListeners('data');
      child.stdout.resume();
      const ports = Object.fromEntries((m[1] as string).split(' ').map((p) => [p.split('=')[0], Number(p.split(':').pop())]));
      const stop = (): Promise<void> =>
        new Promise((done) => {
          child.once('exit', () => done());
          child.kill('SIGTERM');
        });
      resolve({ stop, leader: ports['leader'] as number, followers: [ports['follower-1'] as number, ports['follower-2'] as number] });
    });
    child.once('exit', (code) => reject(new Error(`dlock up exited with ${code} before it was ready:\n${out}`)));
  });
}

function load(ports: number[], c: Case, seconds: number): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const args = [LOADGEN, '--ports', ports.join(','), '--scenario', c.scenario, '--conns', String(c.conns), '--depth', String(c.depth), '--seconds', String(seconds), '--warmup', String(Math.min(1, seconds / 3))];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`loadgen exited with ${code}`));
      else resolve(JSON.parse(out) as LoadResult);
    });
  });
}

const smoke = process.argv.includes('--smoke');
const secIdx = process.argv.indexOf('--seconds');
const seconds = smoke ? 0.3 : secIdx === -1 ? 3 : Number(process.argv[secIdx + 1]);

const cluster = await startCluster();
const rows: Array<[string, LoadResult]> = [];
try {
  for (const c of CASES) {
    process.stderr.write(`running ${c.name} (${c.conns} connections, depth ${c.depth}, ${seconds}s)…\n`);
    const r = await load(c.via === 'leader' ? [cluster.leader] : cluster.followers, c, seconds);
    rows.push([c.name, r]);
  }
} finally {
  await cluster.stop();
}

const pad = (s: string | number, n: number): string => String(s).padStart(n);
process.stdout.write(`${'scenario'.padEnd(34)}${pad('conns', 6)}${pad('depth', 6)}${pad('ops/s', 10)}${pad('p50 µs', 9)}${pad('p99 µs', 9)}${pad('p99.9 µs', 10)}${pad('errors', 8)}\n`);
for (const [name, r] of rows) {
  process.stdout.write(`${name.padEnd(34)}${pad(r.conns, 6)}${pad(r.depth, 6)}${pad(r.opsPerSec, 10)}${pad(r.p50us, 9)}${pad(r.p99us, 9)}${pad(r.p999us, 10)}${pad(r.errors, 8)}\n`);
}
if (rows.some(([, r]) => r.requests === 0 || r.errors > 0)) {
  process.stderr.write('bench: a scenario completed no request or got errors\n');
  process.exitCode = 1;
}
