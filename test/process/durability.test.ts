/**
 * `dlock up --data-dir` as a user runs it: a child process,
 * real TCP, `kill -9`, and a restart with the same directory. No
 * acknowledged grant or lease is lost, tokens only go up [LP-7], client ids
 * are never reused [LP-4], and session locks of connections that no longer
 * exist are released at start [LP-8].
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { appendFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { eventually, LineClient } from '../helpers/line-client.js';

const CLI = fileURLToPath(new URL('../../dist/ui/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'dlock-data-'));
const procs: ChildProcessWithoutNullStreams[] = [];
afterAll(() => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

interface Up {
  child: ChildProcessWithoutNullStreams;
  out: () => string;
  err: () => string;
  exit: Promise<number | null>;
  ports: Record<string, number>;
}

async function up(args: string[]): Promise<Up> {
  const child = spawn(process.execPath, [CLI, 'up', '--no-tui', '--port', '0', ...args], { stdio: 'pipe' });
  procs.push(child);
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await eventually(() => /^ready /m.test(out) || child.exitCode !== null, 'the ready line', 15_000);
  const ports: Record<string, number> = {};
  for (const part of /^ready (.*)$/m.exec(out)?.[1]?.split(' ') ?? []) ports[part.split('=')[0] as string] = Number(part.split(':').pop());
  return { child, out: () => out, err: () => err, exit, ports };
}

const tokenOf = (reply: string): number => Number(/ token=(\d+)/.exec(reply)?.[1] ?? NaN);

describe('dlock up --data-dir', () => {
  const N = 500;
  const granted = new Map<string, string>(); // lock -> "owner token"
  let holderId = 0;
  let maxToken = 0;

  it('kill -9 loses no acknowledged grant or lease; session locks are released at start and logged', async () => {
    const a = await up(['--quiet', '--data-dir', dir]);
    const c = await LineClient.open(a.ports['follower-1'] as number);
    holderId = c.id;
    let batch = '';
    for (let i = 0; i < N; i++) batch += `preempt d${i} ttl=600000${i % 3 === 0 ? ` value=v${i}` : ''}\n`; // [LP-18] some with a value
    c.write(`${batch}preempt d-session\n`);
    for (let i = 0; i < N; i++) {
      const reply = await c.next(10_000); // acknowledged: on disk and on every follower
      expect(reply).toMatch(new RegExp(`^PreemptLock Success owner=${c.id} token=\\d+$`));
      granted.set(`d${i}`, `${c.id} ${tokenOf(reply)}`);
      maxToken = Math.max(maxToken, tokenOf(reply));
    }
    maxToken = Math.max(maxToken, tokenOf(await c.next()));
    a.child.kill('SIGKILL');
    expect(await a.exit).toBeNull(); // killed, no clean shutdown
    c.close();

    const b = await up(['--quiet', '--data-dir', dir]);
    expect(b.out()).toMatch(new RegExp(`restored from ${dir}: snapshot at seq 0 \\+ ${N + 1} entries: seq ${N + 1}, ${N + 1} locks \\(${N} leases\\), next token ${maxToken + 1}`));
    expect(b.out()).toMatch(/released 1 session lock\(s\) and withdrew the waiters of 1 client\(s\) from before the restart/);
    const r = await LineClient.open(b.ports['follower-2'] as number);
    expect(r.id).not.toBe(holderId); // [LP-4]
    for (const [lock, ownerToken] of granted) {
      const [owner, token] = ownerToken.split(' ');
      const i = Number(lock.slice(1));
      expect(await r.ask(`check ${lock}`)).toMatch(new RegExp(`^CheckLock:Lock:${owner} token=${token} ttl=\\d+${i % 3 === 0 ? ` value=v${i}` : ''}$`));
    }
    expect(await r.ask('check d-session')).toBe('CheckLock:Free');
    expect(tokenOf(await r.ask('preempt d-after'))).toBe(maxToken + 1); // [LP-7] on from where it was
    r.close();
    b.child.kill('SIGTERM');
    expect(await b.exit).toBe(0);
  });

  it('a torn tail is cut at the last intact record and the loss reported; new ids never repeat old ones', async () => {
    const log = readdirSync(dir).filter((f) => f.startsWith('log-')).sort().pop() as string;
    const torn = '0badc0de {"v":1,"type":"ent'; // a write cut short by a crash
    appendFileSync(join(dir, log), torn);
    const c = await up(['--quiet', '--data-dir', dir]);
    expect(c.out()).toMatch(new RegExp(`cut ${torn.length} bytes of a torn or corrupt tail of ${log} after seq \\d+; entries in them are lost`));
    const r = await LineClient.open(c.ports['leader'] as number);
    expect(r.id).toBeGreaterThan(100_000); // past the reservation of the first run: never an old id
    const [owner, token] = (granted.get('d0') as string).split(' ');
    expect(await r.ask('check d0')).toMatch(new RegExp(`^CheckLock:Lock:${owner} token=${token} ttl=\\d+ value=v0$`));
    expect(tokenOf(await r.ask('preempt d-third'))).toBe(maxToken + 2);
    r.close();
    c.child.kill('SIGTERM');
    expect(await c.exit).toBe(0);
  });

  it('shared holds, semaphores and several locks at once survive kill -9; a session hold among them ends [LP-20, LP-21, LP-22]', async () => {
    const fresh = mkdtempSync(join(tmpdir(), 'dlock-kinds-'));
    try {
      const a = await up(['--quiet', '--data-dir', fresh]);
      const c = await LineClient.open(a.ports['follower-1'] as number);
      const d = await LineClient.open(a.ports['follower-2'] as number);
      const t1 = tokenOf(await c.ask('preempt k-shared shared ttl=600000'));
      expect(await d.ask('preempt k-shared shared')).toMatch(/^PreemptLock Success/); // a session hold: ends with the run
      const t2 = tokenOf(await c.ask('preempt k-sem limit=3 ttl=600000'));
      const t3 = tokenOf(await d.ask('preempt k-sem limit=3 ttl=600000'));
      const t4 = tokenOf(await c.ask('preempt k-a k-b k-c ttl=600000 value=batch7'));
      a.child.kill('SIGKILL');
      expect(await a.exit).toBeNull();
      c.close();
      d.close();
      const b = await up(['--quiet', '--data-dir', fresh]);
      const r = await LineClient.open(b.ports['leader'] as number);
      expect(await r.ask('check k-shared')).toBe(`CheckLock:Shared:1 token=${t1} owners=${c.id}`);
      expect(await r.ask('check k-sem')).toBe(`CheckLock:Held:2/3 token=${t3} owners=${c.id},${d.id}`);
      expect(await r.ask(`validate k-sem ${t2}`)).toBe('ValidateLock Valid');
      for (const l of ['k-a', 'k-b', 'k-c']) expect(await r.ask(`check ${l}`)).toMatch(new RegExp(`^CheckLock:Lock:${c.id} token=${t4} ttl=\\d+ value=batch7$`));
      expect(tokenOf(await r.ask('preempt k-after'))).toBeGreaterThan(t4); // [LP-7]
      r.close();
      b.child.kill('SIGTERM');
      expect(await b.exit).toBe(0);
    } finally {
      rmSync(fresh, { recursive: true, force: true });
    }
  });

  it('client ids go on from the last one handed out after a clean stop, not from the end of a reservation [LP-4]', async () => {
    const fresh = mkdtempSync(join(tmpdir(), 'dlock-ids-'));
    try {
      const ids: number[] = [];
      for (let run = 0; run < 3; run++) {
        const u = await up(['--quiet', '--followers', '0', '--data-dir', fresh]);
        const c = await LineClient.open(u.ports['leader'] as number);
        ids.push(c.id);
        c.close();
        u.child.kill('SIGTERM');
        expect(await u.exit).toBe(0);
      }
      expect(ids).toEqual([10001, 10002, 10003]);
    } finally {
      rmSync(fresh, { recursive: true, force: true });
    }
  });

  it('a directory that cannot be used is a clear error and exit status 1', async () => {
    const file = join(dir, 'not-a-dir');
    writeFileSync(file, 'x');
    const d = await up(['--data-dir', file]);
    expect(await d.exit).toBe(1);
    expect(d.err()).toMatch(/dlock up: could not start the cluster: --data-dir .*not-a-dir is not a directory/);
  });

  it('without a data dir on port 0, tokens start at 1: no floor is kept for an address that is new each run [LP-7]', async () => {
    // A fixed port keeps a token floor instead: test/process/token-floor.test.ts.
    const e = await up(['--quiet', '--followers', '0']);
    const c = await LineClient.open(e.ports['leader'] as number);
    expect(tokenOf(await c.ask('preempt first'))).toBe(1);
    c.close();
    e.child.kill('SIGTERM');
    expect(await e.exit).toBe(0);
  });
});
