/**
 * Authentication [LP-15]: on every node of a cluster started
 * with a token, with real TCP; the client library and `dlock client` with a
 * token; and `dlock up` refusing a non-loopback address without one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthError, connect } from '../../src/client/client.js';
import type { Cluster } from '../../src/host/threads/cluster.js';
import { MAX_AUTH_FAILURES } from '../../src/server/auth.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { run, up } from '../helpers/dlock-process.js';
import { eventually, LineClient } from '../helpers/line-client.js';

const TOKEN = 's3cr3t-Tok3n';
let t: TestCluster;
let cluster: Cluster;
let logs: string[];
const port = (name: string): number => t.port(name);

beforeAll(async () => {
  t = await startCluster(1, 0, { authToken: TOKEN });
  ({ cluster, all: logs } = t);
});
afterAll(async () => {
  await cluster.close();
});

describe('a cluster with an auth token [LP-15]', () => {
  for (const node of ['leader', 'follower-1']) {
    it(`${node}: greets first; only auth, ping, help and quit before a successful auth; then everything`, async () => {
      const c = await LineClient.open(port(node));
      expect(c.greeting).toMatch(new RegExp(`^client_id: \\d+ node: ${node}$`));
      for (const req of ['preempt a1', 'acquire a1 timeout=0', 'release a1', 'renew a1 ttl=5', 'check a1', 'validate a1 1', 'whoami']) {
        expect(await c.ask(req), req).toBe('Error: authentication required');
      }
      expect(await c.ask('ping')).toBe('PONG');
      expect(await c.ask('help')).toMatch(/^Help: .*auth <token>/);
      expect(await c.ask(`auth ${TOKEN}x`)).toBe('Auth Failed');
      expect(await c.ask('preempt a1')).toBe('Error: authentication required');
      // Pipelined: the auth is decided in order, before what follows it.
      c.write(`auth ${TOKEN}\npreempt auth-${node}\ncheck auth-${node}\n`);
      expect(await c.next()).toBe('Auth Success');
      const granted = await c.next();
      const m = new RegExp(`^PreemptLock Success owner=${c.id} token=(\\d+)$`).exec(granted);
      expect(m, granted).not.toBeNull();
      expect(await c.next()).toBe(`CheckLock:Lock:${c.id} token=${m?.[1]}`);
      c.close();
    });
  }

  it(`closes the connection after ${MAX_AUTH_FAILURES} wrong tokens, and nothing it sent changed a lock`, async () => {
    const c = await LineClient.open(port('follower-1'));
    c.write('auth a\npreempt x1\nauth b\nauth c\npreempt x2\n');
    expect(await c.next()).toBe('Auth Failed');
    expect(await c.next()).toBe('Error: authentication required');
    expect(await c.next()).toBe('Auth Failed');
    expect(await c.next()).toBe('Auth Failed');
    await c.waitClosed();
    expect(c.pending).toEqual([]); // nothing after the third failure
    const d = await LineClient.open(port('leader'));
    expect(await d.ask(`auth ${TOKEN}`)).toBe('Auth Success');
    expect(await d.ask('check x1')).toBe('CheckLock:Free');
    expect(await d.ask('check x2')).toBe('CheckLock:Free');
    d.close();
    // Logged as the per-source throttle says (its window's first failure, and the one that blocks), not once per guess.
    await eventually(() => logs.some((l) => /^follower-1: client \d+ \(127\.0\.0\.1:\d+\): wrong auth token: failure 1 from 127\.0\.0\.1 in this window, 1 of 3 on this connection$/.test(l)), 'the log line');
    expect(logs.filter((l) => /^follower-1: .*wrong auth token/.test(l))).toHaveLength(1);
  });

  it('never echoes or logs the token', async () => {
    const c = await LineClient.open(port('leader'));
    expect(await c.ask(`auth ${TOKEN} extra`)).toBe('Error: auth takes one word, the token; usage: auth <token>');
    expect(await c.ask('auth')).toBe('Error: auth needs the auth token; usage: auth <token>');
    expect(await c.ask(`auth ${TOKEN}`)).toBe('Auth Success');
    c.close();
    await eventually(() => logs.some((l) => /^leader: Request \d+: auth$/.test(l)), 'the auth request logged');
    expect(logs.filter((l) => l.includes('s3cr3t'))).toEqual([]);
  });

  it('the client library sends the token and names a refusal', async () => {
    const ok = await connect({ port: port('follower-1'), authToken: TOKEN });
    expect((await ok.preempt('lib-auth')).ok).toBe(true);
    await ok.close();
    await expect(connect({ port: port('follower-1'), authToken: 'wrong' })).rejects.toThrow(AuthError);
    await expect(connect({ port: port('follower-1'), authToken: 'two words' })).rejects.toThrow(/one word/);
    const none = await connect({ port: port('follower-1') });
    await expect(none.preempt('lib-noauth')).rejects.toThrow(/authentication required/);
    await none.close();
  });
});

describe('dlock with an auth token', () => {
  it('dlock up refuses a non-loopback address without a token, unless --insecure', async () => {
    const env = { ...process.env };
    delete env['DLOCK_AUTH_TOKEN'];
    const refused = run(['up', '--no-tui', '--port', '0', '--host', '0.0.0.0'], undefined, env);
    expect(await refused.exit).toBe(2); // a usage error
    expect(refused.err()).toMatch(/refusing to listen on 0\.0\.0\.0 without --auth-token \(or DLOCK_AUTH_TOKEN\): anyone who can reach it could take any lock; add --insecure to do it anyway/);
    const bad = run(['up', '--no-tui', '--port', '0', '--auth-token', 'a b'], undefined, env);
    expect(await bad.exit).toBe(2);
    expect(bad.err()).toMatch(/--auth-token \(or DLOCK_AUTH_TOKEN\) must be one word/);
    const insecure = await up(['--no-tui', '--host', '0.0.0.0', '--insecure'], env);
    insecure.proc.child.kill('SIGTERM');
    expect(await insecure.proc.exit).toBe(0);
  });

  it('DLOCK_AUTH_TOKEN protects every node of dlock up; dlock client sends it', async () => {
    const env = { ...process.env, DLOCK_AUTH_TOKEN: TOKEN };
    const { proc, ports } = await up(['--no-tui', '--host', '0.0.0.0'], env); // allowed: there is a token
    try {
      const c = await LineClient.open(ports['follower-2'] as number);
      expect(await c.ask('preempt cli-auth')).toBe('Error: authentication required');
      c.close();
      const client = run(['client', '--port', String(ports['follower-2'])], 'preempt cli-auth\ncheck cli-auth\n', env);
      expect(await client.exit).toBe(0);
      expect(client.out()).toMatch(/PreemptLock Success owner=\d+ token=1/);
      const wrong = run(['client', '--port', String(ports['leader']), '--auth-token', 'nope'], 'ping\n', env);
      expect(await wrong.exit).toBe(2); // no node to ask: refused
      expect(wrong.err()).toMatch(/refused the auth token \(Auth Failed\)/);
    } finally {
      proc.child.kill('SIGTERM');
      expect(await proc.exit).toBe(0);
    }
  });
});
