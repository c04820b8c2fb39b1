/**
 * The client port against a guessing or hoarding client [LP-14, LP-15,
 * LP-16], on real clusters over real TCP. Each test connects from its own
 * loopback source address (127.0.0.N: Linux routes all of 127/8 to lo), so
 * what one test does to a source's throttle or slots touches no other test.
 *
 *  - a connection that has not authenticated within --auth-timeout is told
 *    so and closed, and its --max-clients slot is free again;
 *  - one source address holds at most --max-clients-per-source connections;
 *  - the failure that closes a connection ends it: nothing it sent after
 *    runs, pipelined or not (auth and resume);
 *  - failures are counted per source across connections: once a source is
 *    blocked, even the right token is refused until its window ends, and
 *    the log says so a bounded number of times.
 */
import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SOURCE_FAILURES_PER_WINDOW } from '../../src/server/auth.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { eventually, LineClient } from '../helpers/line-client.js';

const TOKEN = 'cp-auth-token-1';
const hasNc = spawnSync('sh', ['-c', 'command -v nc']).status === 0;

/** Every line a connection gets until the node closes it (greeting included). */
async function allLines(c: LineClient, timeoutMs = 5000): Promise<string[]> {
  await c.waitClosed(timeoutMs);
  const out: string[] = [];
  while (c.pending.length > 0) out.push(await c.next());
  return out;
}

async function authed(port: number, from: string): Promise<LineClient> {
  const c = await LineClient.open(port, '127.0.0.1', from);
  expect(await c.ask(`auth ${TOKEN}`)).toBe('Auth Success');
  return c;
}

describe('--auth-timeout [LP-14, LP-15]', () => {
  let t: TestCluster;
  const open: LineClient[] = [];
  beforeAll(async () => {
    t = await startCluster(0, 0, { authToken: TOKEN, logRequests: false, limits: { maxClients: 4, authTimeoutMs: 700 } });
  });
  afterAll(async () => {
    for (const c of open) c.close();
    await t.cluster.close();
  });

  it('a connection that never authenticates gets one Error line and is closed, freeing its slot; an authed one stays', async () => {
    const port = t.port('leader');
    const good = await authed(port, '127.0.0.11');
    open.push(good);
    const idle: LineClient[] = [];
    for (let i = 0; i < 3; i++) idle.push(await LineClient.open(port, '127.0.0.1', '127.0.0.11'));
    open.push(...idle);
    // The node is full (4 of 4): one more is refused.
    const refused = LineClient.raw(port, '127.0.0.1', '127.0.0.12');
    open.push(refused);
    expect(await allLines(refused)).toEqual([expect.stringMatching(/^Error: too many connections to this node/)]);
    // Each idle one is told why, then closed.
    for (const c of idle) {
      expect(await allLines(c, 5000)).toEqual([expect.stringMatching(/^Error: authentication timed out: no successful auth within 700 ms; closing$/)]);
    }
    // Its slot is free (once the node has seen the sockets close, a moment
    // after the client does): a new client is greeted and may authenticate.
    const got: LineClient[] = [];
    await eventually(
      async () => {
        try {
          got.push(await authed(port, '127.0.0.12'));
          return true;
        } catch (err) {
          if (/too many connections/.test((err as Error).message)) return false;
          throw err;
        }
      },
      'a slot freed by the timed-out connections',
      3000,
      20,
    );
    const next = got[0] as LineClient;
    open.push(next);
    expect(await next.ask('ping')).toBe('PONG');
    // The client that authenticated in time was not closed.
    expect(good.ended).toBe(false);
    expect(await good.ask('ping')).toBe('PONG');
    await t.logged('leader', /^client \d+ \(127\.0\.0\.11:\d+\): authentication timed out after 700 ms; closing$/);
  });
});

describe('--max-clients-per-source [LP-14]', () => {
  let t: TestCluster;
  const open: LineClient[] = [];
  beforeAll(async () => {
    t = await startCluster(0, 0, { logRequests: false, limits: { maxClientsPerSource: 5 } });
  });
  afterAll(async () => {
    for (const c of open) c.close();
    await t.cluster.close();
  });

  it('one address holds at most N connections; one more gets an Error line, no greeting and no id; others are served', async () => {
    const port = t.port('leader');
    const five: LineClient[] = [];
    for (let i = 0; i < 5; i++) five.push(await LineClient.open(port, '127.0.0.1', '127.0.0.21'));
    open.push(...five);
    const sixth = LineClient.raw(port, '127.0.0.1', '127.0.0.21');
    open.push(sixth);
    expect(await allLines(sixth)).toEqual(['Error: too many connections from 127.0.0.21 (limit 5 per source address); close one first']);
    // Another source is not affected.
    const other = await LineClient.open(port, '127.0.0.1', '127.0.0.22');
    open.push(other);
    expect(await other.ask('ping')).toBe('PONG');
    // A refused connect used no client id: the next client greeted gets the next one.
    const ids = [...five.map((c) => c.id), other.id];
    const again = await LineClient.open(port, '127.0.0.1', '127.0.0.23');
    open.push(again);
    expect(again.id).toBe(Math.max(...ids) + 1);
    // One of the five closes: its address may connect again.
    (five[0] as LineClient).close();
    await eventually(async () => {
      const c = LineClient.raw(port, '127.0.0.1', '127.0.0.21');
      open.push(c);
      const first = await c.next().catch(() => '');
      return first.startsWith('client_id: ');
    }, 'a slot of 127.0.0.21 free again');
  });

  it('a flood of refused connects from one address writes a few log lines, not one per connect', async () => {
    const port = t.port('leader');
    const keep: LineClient[] = [];
    for (let i = 0; i < 5; i++) keep.push(await LineClient.open(port, '127.0.0.1', '127.0.0.24'));
    open.push(...keep);
    const t0 = performance.now();
    const flood: LineClient[] = [];
    for (let i = 0; i < 200; i++) flood.push(LineClient.raw(port, '127.0.0.1', '127.0.0.24'));
    for (const c of flood) expect(await allLines(c)).toEqual([expect.stringMatching(/^Error: too many connections from 127\.0\.0\.24 /)]);
    const seconds = (performance.now() - t0) / 1000;
    await t.logged('leader', /^refused \d+ connection\(s\) from 127\.0\.0\.24: 5 open, the limit \(--max-clients-per-source\)/);
    const lines = (t.logs.get('leader') ?? []).filter((l) => l.includes('from 127.0.0.24') && l.startsWith('refused'));
    expect(lines.length).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
  });
});

describe('failed auth and resume end the connection, and are throttled per source [LP-15, LP-16]', () => {
  let t: TestCluster;
  const open: LineClient[] = [];
  beforeAll(async () => {
    t = await startCluster(1, 0, { authToken: TOKEN, logRequests: false });
  });
  afterAll(async () => {
    for (const c of open) c.close();
    await t.cluster.close();
  });

  it('the audit\'s pipeline: three Auth Failed, the connection closes, and the lock is not granted', async () => {
    const port = t.port('leader');
    const input = `auth w1\nauth w2\nauth w3\nauth ${TOKEN}\npreempt cp-x ttl=60000\n`;
    let text: string;
    if (hasNc) {
      // As the audit ran it: printf … | nc (from its own source address).
      const nc = spawn('nc', ['-s', '127.0.0.31', '127.0.0.1', String(port)], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      nc.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      const exited = new Promise<number | null>((resolve) => nc.on('exit', (code) => resolve(code)));
      nc.stdin.end(input);
      await Promise.race([exited, new Promise((_, reject) => setTimeout(() => reject(new Error(`nc still connected: ${out}`)), 5000))]);
      text = out;
    } else {
      const c = LineClient.raw(port, '127.0.0.1', '127.0.0.31');
      open.push(c);
      c.write(input);
      text = `${(await allLines(c)).join('\n')}\n`;
    }
    const lines = text.split('\n').filter((l) => l !== '');
    expect(lines).toEqual([expect.stringMatching(/^client_id: \d+ node: leader$/), 'Auth Failed', 'Auth Failed', 'Auth Failed']);
    const checker = await authed(port, '127.0.0.32');
    open.push(checker);
    expect(await checker.ask('check cp-x')).toBe('CheckLock:Free');
  });

  it('three failed resumes, pipelined, end the connection: what follows them never runs', async () => {
    for (const node of ['leader', 'follower-1']) {
      const c = await authed(t.port(node), '127.0.0.33');
      open.push(c);
      c.write(`resume 99999001 a\nresume 99999002 b\nresume 99999003 c\npreempt cp-r-${node} ttl=60000\nping\n`);
      expect(await allLines(c)).toEqual(['Resume Failed', 'Resume Failed', 'Resume Failed']);
      const checker = await authed(t.port('leader'), '127.0.0.34');
      open.push(checker);
      expect(await checker.ask(`check cp-r-${node}`)).toBe('CheckLock:Free');
    }
  });

  it(`a source that fails ${SOURCE_FAILURES_PER_WINDOW} times across connections is refused, even with the right token, until its window ends`, async () => {
    const port = t.port('follower-1');
    const from = '127.0.0.35';
    // Authenticated before the flood: it stays, but its resumes are refused once the source is blocked.
    const before = await authed(port, from);
    open.push(before);
    let failures = 0;
    while (failures < SOURCE_FAILURES_PER_WINDOW) {
      const c = await LineClient.open(port, '127.0.0.1', from);
      open.push(c);
      c.write('auth g1\nauth g2\nauth g3\n');
      const got = await allLines(c);
      expect(got.length).toBeGreaterThanOrEqual(1);
      expect(got.every((l) => l === 'Auth Failed')).toBe(true);
      failures += got.length;
    }
    expect(failures).toBe(SOURCE_FAILURES_PER_WINDOW); // the blocking failure closed its connection too
    const right = await LineClient.open(port, '127.0.0.1', from);
    open.push(right);
    right.write(`auth ${TOKEN}\npreempt cp-blocked\n`);
    expect(await allLines(right)).toEqual([expect.stringMatching(/^Error: too many failed auth attempts from this address; retry in \d+ s$/)]);
    expect(await before.ask('resume 99999001 x')).toMatch(/^Error: too many failed auth attempts from this address; retry in \d+ s$/);
    await before.waitClosed();
    // Another address, and the leader (its own throttle), are not affected.
    const other = await authed(port, '127.0.0.36');
    open.push(other);
    expect(await other.ask('check cp-blocked')).toBe('CheckLock:Free');
    const leader = await authed(t.port('leader'), from);
    open.push(leader);
    // A flood of failures from one source: a bounded number of log lines, not one per guess.
    await t.logged('follower-1', new RegExp(`\\(${from.replaceAll('.', '\\.')}:\\d+\\): wrong auth token: .* is refused for \\d+ s; closing$`));
    const lines = (t.logs.get('follower-1') ?? []).filter((l) => l.includes(`(${from}:`) && /auth|resume/.test(l));
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(3);
    expect(lines.some((l) => /refused for \d+ s/.test(l))).toBe(true);
  });
});
