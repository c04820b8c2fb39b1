/**
 * Where the CPU goes, measured from outside: the kernel's per-process
 * accounting (/proc/<pid>/stat, user and system time of all its threads),
 * and a summary of V8 CPU profiles (`node --cpu-prof`, one file per thread).
 *
 * Used by bench/run.ts: every case reports the server's CPU time per
 * request (dlock's whole process, or redis-server's), so a ratio of
 * throughputs can be read next to a ratio of costs; `--profile DIR` keeps
 * dlock's profiles in DIR and prints each thread's hottest functions.
 * Linux only (/proc); elsewhere the CPU columns stay empty.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Clock ticks per second of /proc's times (USER_HZ). */
const HZ = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch (err) {
    process.stderr.write(`bench: getconf CLK_TCK failed (${(err as Error).message}); assuming 100\n`);
    return 100;
  }
})();

export interface CpuTimes {
  /** seconds of user and system CPU, all threads */
  user: number;
  sys: number;
}

/** The process's CPU so far, or null when /proc cannot tell (not Linux, or it exited). */
export function cpuTimes(pid: number): CpuTimes | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  // Fields after the command name (which may hold spaces, so split after its ')').
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(f[11]) / HZ, sys: Number(f[12]) / HZ };
}

/** CPU used by `pid` while `work` runs, as cores busy (user, sys) over its wall time. */
export async function cpuDuring<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; cores: CpuTimes | null }> {
  const before = cpuTimes(pid);
  const t0 = process.hrtime.bigint();
  const result = await work();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const after = cpuTimes(pid);
  if (before === null || after === null || wall <= 0) return { result, cores: null };
  return { result, cores: { user: (after.user - before.user) / wall, sys: (after.sys - before.sys) / wall } };
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

/**
 * Each thread's hottest functions by self time, from the .cpuprofile files
 * in `dir`. Percentages are of the thread's busy samples; `idle` is the
 * share of samples the thread spent waiting in its event loop.
 */
export function summarizeProfiles(dir: string, top = 12): string {
  let out = '';
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort();
  for (const file of files) {
    const p = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { nodes: ProfileNode[]; samples: number[] };
    const frames = new Map(p.nodes.map((n) => [n.id, n.callFrame]));
    const self = new Map<string, number>();
    for (const id of p.samples) {
      const cf = frames.get(id);
      if (cf === undefined) continue;
      const where = cf.url === '' ? '' : ` ${cf.url.split('/').slice(-2).join('/')}:${cf.lineNumber + 1}`;
      const key = `${cf.functionName === '' ? '(anonymous)' : cf.functionName}${where}`;
      self.set(key, (self.get(key) ?? 0) + 1);
    }
    const total = p.samples.length;
    const idle = self.get('(idle)') ?? 0;
    self.delete('(idle)');
    const busy = total - idle;
    // Thread 0 is the main thread; the cluster starts the leader first, then follower-1, -2, …
    out += `${file}: ${total} samples, ${((100 * idle) / Math.max(1, total)).toFixed(0)}% idle\n`;
    for (const [k, n] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      out += `  ${((100 * n) / Math.max(1, busy)).toFixed(1).padStart(5)}%  ${k}\n`;
    }
  }
  return out;
}
