/**
 * A half-close ends a wait [LP-2, LP-9 as amended]: a client
 * that holds session locks, waits in `acquire` and then half-closes (as
 * `printf … | nc` does, or a crashed client's kernel with its FIN) gets
 * `AcquireLock Timeout owner=…` at once, then every later request it sent
 * is answered, the connection closes, and its session locks are released
 * [LP-8]. On the leader and on a follower alike.
 */
import { spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { ClientPool, eventually, LineClient } from '../helpers/line-client.js';

let t: TestCluster;
const pool = new ClientPool();
const open = (port: number): Promise<LineClient> => pool.open(port);
beforeAll(async () => {
  t = await startCluster(1);
});
afterAll(async () => {
  pool.closeAll();
  await t.cluster.close();
});

describe('half-close while an acquire waits', () => {
  for (const node of ['leader', 'follower-1']) {
    it(`on ${node}: the acquire is answered as a timeout at once, the rest answered, the connection closed, its session locks released`, async () => {
      const holder = await open(t.port('leader'));
      const x = await open(t.port(node));
      const reader = await open(t.port(node));
      const busy = `hc-busy-${node}`;
      const mine = `hc-mine-${node}`;
      expect(await holder.ask(`preempt ${busy}`)).toMatch(/^PreemptLock Success/);
      expect(await x.ask(`preempt ${mine}`)).toMatch(/^PreemptLock Success/);
      x.write(`acquire ${busy}\nping\n`);
      await eventually(async () => (await t.cluster.locks('leader')).find((r) => r.lock === busy)?.waiters.length === 1, 'the wait');
      x.socket.end(); // FIN: no more requests
      // The reply must not wait until `busy` is released (possibly never).
      expect(await x.next(3000)).toBe(`AcquireLock Timeout owner=${holder.id}`);
      expect(await x.next()).toBe('PONG');
      await x.waitClosed();
      await eventually(async () => (await reader.ask(`check ${mine}`)) === 'CheckLock:Free', 'its session lock released');
      expect((await t.cluster.locks('leader')).find((r) => r.lock === busy)?.waiters).toEqual([]);
      expect(await holder.ask(`check ${busy}`)).toMatch(new RegExp(`^CheckLock:Lock:${holder.id} `));
    });
  }

  it('an acquire read before the half-close but started after it does not wait: granted if free, else a timeout [LP-9]', async () => {
    const holder = await open(t.port('leader'));
    expect(await holder.ask('preempt hc-held')).toMatch(/^PreemptLock Success/);
    const x = await open(t.port('follower-1'));
    // The second acquire is read with the first, and starts only after the FIN.
    x.socket.end('acquire hc-held timeout=60000\nacquire hc-free timeout=60000\nacquire hc-held\n');
    expect(await x.next(3000)).toBe(`AcquireLock Timeout owner=${holder.id}`);
    expect(await x.next(3000)).toMatch(new RegExp(`^AcquireLock Success owner=${x.id} token=\\d+$`));
    expect(await x.next(3000)).toBe(`AcquireLock Timeout owner=${holder.id}`);
    await x.waitClosed();
  });
});

describe('a last line cut off by the half-close [LP-2 as amended]', () => {
  const rawSend = (port: number, bytes: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port }, () => s.end(bytes)); // the bytes, then FIN
      let out = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (out += d));
      s.on('error', reject);
      s.on('close', () => resolve(out));
    });

  it('is a request too, on the leader and on a follower; a trailing CR is part of its line end; a blank one is none', async () => {
    for (const node of ['leader', 'follower-1']) {
      const [greeting, reply] = (await rawSend(t.port(node), 'check lp2-cut')).split('\n');
      expect(greeting).toMatch(/^client_id: \d+ node: /);
      expect(reply).toBe('CheckLock:Free');
      expect((await rawSend(t.port(node), 'ping\ncheck lp2-cut\r')).split('\n').slice(1)).toEqual(['PONG', 'CheckLock:Free', '']);
      expect((await rawSend(t.port(node), 'ping\n  ')).split('\n').slice(1)).toEqual(['PONG', '']);
    }
  });

  it.skipIf(spawnSync('sh', ['-c', 'command -v nc']).status !== 0)('with nc -N, as a script would send it', async () => {
    const r = spawnSync('sh', ['-c', `printf 'check lp2-nc' | nc -N 127.0.0.1 ${t.port('follower-1')}`], { encoding: 'utf8', timeout: 10_000 });
    expect(r.stdout.split('\n').slice(1, 2)).toEqual(['CheckLock:Free']);
  });
});
