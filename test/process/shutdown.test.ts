/**
 * Graceful shutdown, as a user does it: `dlock up --data-dir`
 * as a child process, clients with writes in flight on the leader and a
 * follower, SIGTERM. The node stops accepting, answers every request it had
 * read (in order, then closes the connection), exits 0, and the directory
 * is consistent: a restart restores every lease that was acknowledged.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { up, type Running } from '../helpers/dlock-process.js';
import { eventually, LineClient } from '../helpers/line-client.js';

const dir = mkdtempSync(join(tmpdir(), 'dlock-shutdown-'));
const procs: Running[] = [];
afterAll(() => {
  for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('SIGTERM', () => {
  it('answers the requests already read, closes, exits 0, and leaves a data dir that restores every acknowledged lease', async () => {
    const a = await up(['--no-tui', '--quiet', '--data-dir', dir]);
    procs.push(a.proc);
    const N = 3000;
    const clients = await Promise.all(['leader', 'follower-1'].map((n) => LineClient.open(a.ports[n] as number)));
    for (const [i, c] of clients.entries()) {
      let batch = '';
      for (let k = 0; k < N; k++) batch += `preempt g${i}-${k} ttl=600000\n`;
      c.write(batch);
    }
    // Writes are in flight on both: some answered, most not yet.
    await eventually(() => clients.every((c) => c.pending.length > 0), 'the first replies');
    const answeredBefore = clients.map((c) => c.pending.length);
    a.proc.child.kill('SIGTERM');
    expect(await a.proc.exit).toBe(0);
    expect(a.proc.out()).toMatch(/SIGTERM, shutting down: no new connections or requests; answering what was received/);
    expect(a.proc.out()).toMatch(/^cluster +\S+ \S+ every request read was answered$/m);

    const acknowledged: string[] = [];
    for (const [i, c] of clients.entries()) {
      await c.closed; // the node closed it, after its replies
      const replies = [...c.pending];
      // In order and all successes: a prefix of what was sent [LP-2]; none lost midway.
      expect(replies.length).toBeGreaterThan(0);
      process.stdout.write(`shutdown: ${answeredBefore[i]} answered before SIGTERM, ${replies.length} of ${N} in the end, on client ${i}\n`);
      for (const [k, r] of replies.entries()) {
        expect(r).toMatch(new RegExp(`^PreemptLock Success owner=${c.id} token=\\d+$`));
        acknowledged.push(`g${i}-${k} ${c.id} ${(/token=(\d+)/.exec(r) as RegExpExecArray)[1]}`);
      }
    }
    // Requests in flight at the signal were answered after it.
    expect(clients.some((c, i) => c.pending.length > (answeredBefore[i] as number))).toBe(true);
    // No new connections once it began: the port is closed.
    await expect(
      new Promise((resolve, reject) => {
        const s = connect({ port: a.ports['leader'] as number, host: '127.0.0.1' });
        s.on('connect', () => resolve('connected'));
        s.on('error', reject);
      }),
    ).rejects.toThrow(/ECONNREFUSED/);

    // Consistent: a restart with the same directory has every acknowledged lease, with its owner and token.
    const b = await up(['--no-tui', '--quiet', '--data-dir', dir]);
    procs.push(b.proc);
    const q = await LineClient.open(b.ports['follower-2'] as number);
    let checks = '';
    for (const line of acknowledged) checks += `check ${line.split(' ')[0]}\n`;
    q.write(checks);
    for (const line of acknowledged) {
      const [, owner, token] = line.split(' ');
      expect(await q.next()).toMatch(new RegExp(`^CheckLock:Lock:${owner} token=${token} ttl=\\d+$`));
    }
    q.close();
    b.proc.child.kill('SIGTERM');
    expect(await b.proc.exit).toBe(0);
  }, 60_000);

  it('closes an idle connection at once and ends a wait as a timeout: no drain deadline waited out, no reply owed', async () => {
    const a = await up(['--no-tui']);
    procs.push(a.proc);
    const holder = await LineClient.open(a.ports['leader'] as number);
    expect(await holder.ask('preempt busy')).toMatch(/^PreemptLock Success/);
    // An idle client that, like `nc`, keeps its side open after the node's FIN.
    const idle = connect({ port: a.ports['leader'] as number, host: '127.0.0.1', allowHalfOpen: true });
    const idleClosed = new Promise<void>((resolve) => idle.on('end', () => resolve())); // the node's FIN
    idle.on('data', () => undefined);
    await new Promise<void>((resolve) => idle.on('connect', () => resolve()));
    const waiter = await LineClient.open(a.ports['follower-1'] as number);
    const waiting = waiter.ask('acquire busy', 30_000);
    await eventually(() => /Request \d+: acquire busy/.test(a.proc.out()), 'the acquire read');
    const t0 = performance.now();
    a.proc.child.kill('SIGTERM');
    expect(await a.proc.exit).toBe(0);
    const ms = performance.now() - t0;
    process.stdout.write(`shutdown with an idle connection and a wait: exited after ${Math.round(ms)} ms\n`);
    // [LP-9] the wait is answered: it ends as a timeout, or the holder's
    // connection closed first and released the lock to it (both are
    // replicated orders); [LP-2] nothing was owed, so no deadline (5 s) was waited out.
    expect(await waiting).toMatch(new RegExp(`^AcquireLock (Timeout owner=${holder.id}|Success owner=${waiter.id} token=\\d+)$`));
    await idleClosed;
    idle.destroy();
    expect(a.proc.out()).toMatch(/^cluster +\S+ \S+ every request read was answered$/m);
    expect(a.proc.out()).not.toMatch(/still owed replies/);
    expect(ms).toBeLessThan(4000); // the drain deadline alone was 5 s
  }, 30_000);
});
