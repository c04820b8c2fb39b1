/**
 * `npm run bench:tui`: does an open TUI slow the broker?
 *
 * Runs the same load (the load generator in its own process) against
 * `dlock up --followers 2` headless and with the TUI open in a real terminal
 * (tmux, 160x48), alternating the two so machine noise hits both, and
 * reports the median ops/s of each and their ratio. While the TUI is under
 * load it samples the screen twice to show that it keeps updating.
 *
 *   npm run bench:tui -- [--reps 3] [--seconds 4] [--log]   (--log: log every request, as by default)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { LoadResult, Scenario } from './loadgen.js';

const CLI = fileURLToPath(new URL('../ui/cli.js', import.meta.url));
const LOADGEN = fileURLToPath(new URL('./loadgen.js', import.meta.url));

const argv = process.argv.slice(2);
const opt = (name: string, def: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i === -1 ? def : (argv[i + 1] ?? def);
};
const reps = Number(opt('reps', '3'));
const seconds = Number(opt('seconds', '4'));
const logRequests = argv.includes('--log');
const flags = logRequests ? [] : ['--quiet'];

if (spawnSync('sh', ['-c', 'command -v tmux']).status !== 0) {
  process.stderr.write('bench:tui needs tmux (apt-get install tmux)\n');
  process.exit(1);
}

interface Running {
  ports: Record<string, number>;
  screen: () => string;
  stop: () => Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function headless(): Promise<Running> {
  const child: ChildProcess = spawn(process.execPath, [CLI, 'up', '--no-tui', '--port', '0', '--followers', '2', ...flags], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const ready = await new Promise<string>((resolve, reject) => {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      if (out.length < 1 << 16) out += d; // keep draining the pipe, keep the start
      const m = /^ready (.*)$/m.exec(out);
      if (m !== null) resolve(m[1] as string);
    });
    child.once('exit', (code) => reject(new Error(`dlock up exited ${code}`)));
  });
  const ports = Object.fromEntries(ready.split(' ').map((p) => [p.split('=')[0], Number(p.split(':').pop())]));
  return {
    ports,
    screen: () => '',
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

async function tui(): Promise<Running> {
  const sock = `dlock-bench-${process.pid}`;
  const tmux = (...args: string[]): string => spawnSync('tmux', ['-L', sock, ...args], { encoding: 'utf8' }).stdout;
  tmux('-f', '/dev/null', 'new-session', '-d', '-s', 'b', '-x', '160', '-y', '48', `${process.execPath} ${CLI} up --port 0 --followers 2 ${flags.join(' ')}`);
  const screen = (): string => tmux('capture-pane', '-p', '-t', 'b');
  const deadline = performance.now() + 20_000;
  let ports: Record<string, number> = {};
  while (performance.now() < deadline) {
    const s = screen();
    if (/● follower-2 up/.test(s)) {
      let last = '';
      for (const line of s.split('\n')) {
        const n = /● (leader|follower-\d+) /.exec(line);
        if (n !== null) last = n[1] as string;
        const a = /│ +127\.0\.0\.1:(\d+)/.exec(line);
        if (a !== null && last !== '' && ports[last] === undefined) ports[last] = Number(a[1]);
      }
      if (Object.keys(ports).length === 3) break;
      ports = {};
    }
    await sleep(100);
  }
  if (Object.keys(ports).length !== 3) throw new Error(`the TUI did not come up:\n${screen()}`);
  return {
    ports,
    screen,
    stop: async () => {
      tmux('send-keys', '-t', 'b', 'q');
      const end = performance.now() + 10_000;
      while (performance.now() < end && tmux('list-sessions').includes('b:')) await sleep(100);
      tmux('kill-server');
    },
  };
}

function load(ports: number[], scenario: Scenario, depth: number): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const args = [LOADGEN, '--ports', ports.join(','), '--scenario', scenario, '--conns', '50', '--depth', String(depth), '--seconds', String(seconds), '--warmup', '1'];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as LoadResult) : reject(new Error(`loadgen exited ${code}`))));
  });
}

const cases: Array<{ name: string; scenario: Scenario; depth: number }> = [
  { name: 'check via followers, depth 16', scenario: 'check', depth: 16 },
  { name: 'preempt+release via followers', scenario: 'cycle', depth: 1 },
];
const results: Record<string, { headless: number[]; tui: number[] }> = {};
const updates: string[] = [];

for (let rep = 0; rep < reps; rep++) {
  for (const mode of rep % 2 === 0 ? (['headless', 'tui'] as const) : (['tui', 'headless'] as const)) {
    const run = mode === 'tui' ? await tui() : await headless();
    try {
      for (const c of cases) {
        process.stderr.write(`rep ${rep + 1}/${reps} ${mode}: ${c.name}…\n`);
        const followers = [run.ports['follower-1'] as number, run.ports['follower-2'] as number];
        const pending = load(followers, c.scenario, c.depth);
        if (mode === 'tui') {
          // Is the screen still updating under load? Sample the status bar twice.
          await sleep(1500);
          const a = /(\d+) ops\/s/.exec(run.screen())?.[1];
          await sleep(1000);
          const b = /(\d+) ops\/s/.exec(run.screen())?.[1];
          updates.push(`${c.name}: status bar read ${a} then ${b} ops/s`);
        }
        const r = await pending;
        const slot = (results[c.name] ??= { headless: [], tui: [] });
        slot[mode].push(r.opsPerSec);
      }
    } finally {
      await run.stop();
    }
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};
process.stdout.write(`TUI vs headless, ${reps} alternating runs of ${seconds}s, 50 connections, request logging ${logRequests ? 'on' : 'off (--quiet)'}\n`);
process.stdout.write(`${'scenario'.padEnd(34)}${'headless ops/s'.padStart(16)}${'TUI ops/s'.padStart(12)}${'TUI/headless'.padStart(14)}\n`);
for (const [name, r] of Object.entries(results)) {
  const h = median(r.headless);
  const t = median(r.tui);
  process.stdout.write(`${name.padEnd(34)}${String(h).padStart(16)}${String(t).padStart(12)}${(t / h).toFixed(2).padStart(14)}\n`);
}
for (const u of updates) process.stdout.write(`screen under load: ${u}\n`);
