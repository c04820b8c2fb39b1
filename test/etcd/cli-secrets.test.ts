/**
 * The built `dlock` command, as a user runs it: tokens read from files
 * (`--auth-token-file`, `--admin-token-file`) on every command that takes
 * the token, refused together with the token flag; and `dlock node` with
 * the same limit flags as `dlock up`, checked the same way.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { run, type Running } from '../helpers/dlock-process.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { eventually, LineClient } from '../helpers/line-client.js';

const dir = mkdtempSync(join(tmpdir(), 'dlock-cli-secrets-'));
const TOKEN = 'file-auth-token-1';
const ADMIN = 'file-admin-token-1';
const file = (name: string, text: string, mode: number): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  chmodSync(p, mode);
  return p;
};
const authFile = file('auth', `${TOKEN}\n`, 0o600);
const openAuthFile = file('auth-open', `${TOKEN}\n`, 0o644);
const adminFile = file('admin', `${ADMIN}\n`, 0o600);
const wrongFile = file('wrong', 'not-the-token\n', 0o600);
const emptyFile = file('empty', '\n', 0o600);
const env = (): NodeJS.ProcessEnv => {
  const e = { ...process.env };
  delete e['DLOCK_AUTH_TOKEN'];
  delete e['DLOCK_ADMIN_TOKEN'];
  return e;
};
const procs: Running[] = [];
afterAll(() => {
  for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

async function upWith(args: string[]): Promise<{ proc: Running; leader: number; http: number | null }> {
  const proc = run(['up', '--no-tui', '--quiet', '--port', '0', '--followers', '0', '--first-token', '1', ...args], undefined, env());
  procs.push(proc);
  await eventually(() => /^ready /m.test(proc.out()) || proc.child.exitCode !== null, 'the ready line', 15_000);
  const m = /^ready leader=127\.0\.0\.1:(\d+)(?: http=127\.0\.0\.1:(\d+))?$/m.exec(proc.out());
  if (m === null) throw new Error(`dlock up did not get ready:\n${proc.out()}\n${proc.err()}`);
  return { proc, leader: Number(m[1]), http: m[2] === undefined ? null : Number(m[2]) };
}

describe('--auth-token-file and --admin-token-file', () => {
  it('every command that takes a token refuses it together with its file', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['up', '--no-tui', '--port', '0', '--auth-token', TOKEN, '--auth-token-file', authFile], /--auth-token and --auth-token-file: give one or the other/],
      [['up', '--no-tui', '--port', '0', '--http-port', '0', '--admin-token', ADMIN, '--admin-token-file', adminFile], /--admin-token and --admin-token-file: give one or the other/],
      [['node', '--etcd', 'http://127.0.0.1:1', '--name', 'n1', '--auth-token', TOKEN, '--auth-token-file', authFile], /--auth-token and --auth-token-file: give one or the other/],
      [['node', '--etcd', 'http://127.0.0.1:1', '--name', 'n1', '--http-port', '0', '--admin-token', ADMIN, '--admin-token-file', adminFile], /--admin-token and --admin-token-file: give one or the other/],
      [['client', '--auth-token', TOKEN, '--auth-token-file', authFile, 'ping'], /--auth-token and --auth-token-file: give one or the other/],
      [['lock', 'x', '--auth-token', TOKEN, '--auth-token-file', authFile, '--', 'true'], /--auth-token and --auth-token-file: give one or the other/],
      [['admin', 'locks', '--admin-token', ADMIN, '--admin-token-file', adminFile], /--admin-token and --admin-token-file: give one or the other/],
      [['tui', '--etcd', 'http://127.0.0.1:1', '--auth-token', TOKEN, '--auth-token-file', authFile], /--auth-token and --auth-token-file: give one or the other/],
      [['client', '--auth-token-file', join(dir, 'missing'), 'ping'], /--auth-token-file .*missing: no such file/],
      [['up', '--no-tui', '--port', '0', '--auth-token-file', emptyFile], /--auth-token-file .*empty: the file must hold one word/],
    ];
    for (const [args, err] of cases) {
      const p = run(args, undefined, env());
      expect(await p.exit, args.join(' ')).toBe(2);
      expect(p.err(), args.join(' ')).toMatch(err);
    }
  });

  it('dlock up takes both tokens from files (warning about a file others may read); client, lock and admin send them from files', async () => {
    const { proc, leader, http } = await upWith(['--auth-token-file', openAuthFile, '--http-port', '0', '--admin-token-file', adminFile]);
    expect(proc.err()).toMatch(/--auth-token-file .*auth-open can be read by other users \(mode 644\); chmod 600 it/);
    expect(proc.err()).not.toMatch(/--admin-token-file/); // 0600: no warning
    const c = await LineClient.open(leader);
    expect(await c.ask('preempt f-x')).toBe('Error: authentication required');
    expect(await c.ask(`auth ${TOKEN}`)).toBe('Auth Success');
    c.close();
    const ok = run(['client', '--port', String(leader), '--auth-token-file', authFile, 'preempt f-lock ttl=60000'], undefined, env());
    expect(await ok.exit).toBe(0);
    expect(ok.out()).toMatch(/^PreemptLock Success owner=\d+ token=\d+$/m);
    const wrong = run(['client', '--port', String(leader), '--auth-token-file', wrongFile, 'ping'], undefined, env());
    expect(await wrong.exit).toBe(2);
    expect(wrong.err()).toMatch(/refused the auth token \(Auth Failed\)/);
    const locked = run(['lock', 'f-run', '--port', String(leader), '--auth-token-file', authFile, '--', 'sh', '-c', 'echo ran'], undefined, env());
    expect(await locked.exit).toBe(0);
    expect(locked.out()).toMatch(/ran/);
    const admin = run(['admin', 'locks', '--http-port', String(http), '--admin-token-file', adminFile, '--json'], undefined, env());
    expect(await admin.exit).toBe(0);
    expect(admin.out()).toMatch(/"lock":"f-lock"/);
  });
});

describe('dlock node takes the limit flags of dlock up', () => {
  it('checks them as dlock up does', async () => {
    for (const [flag, value] of [['--max-clients', '0'], ['--max-clients-per-source', '-1'], ['--auth-timeout', '1.5'], ['--max-waiters', 'x'], ['--line-timeout', '0'], ['--slow-client-timeout', '0'], ['--max-locks-per-client', '0']] as const) {
      for (const cmd of [['node', '--etcd', 'http://127.0.0.1:1', '--name', 'n1'], ['up', '--no-tui', '--port', '0']]) {
        const p = run([...cmd, flag, value], undefined, env());
        expect(await p.exit, `${cmd[0]} ${flag} ${value}`).toBe(2);
        expect(p.err(), `${cmd[0]} ${flag} ${value}`).toMatch(new RegExp(`${flag} must be a whole number of at least 1`));
      }
    }
  });

  describe.skipIf(!hasEtcd)('on etcd', () => {
    let etcd: EtcdCluster;
    afterAll(async () => {
      await etcd?.stop();
    });

    it('--max-clients, --max-clients-per-source and --auth-timeout hold on a dlock node', async () => {
      etcd = await EtcdCluster.start(1);
      const proc = run(['node', '--etcd', etcd.endpoints.join(','), '--name', 'lim1', '--cluster', 'limits-cli', '--quiet',
        '--auth-token-file', authFile, '--max-clients', '3', '--max-clients-per-source', '2', '--auth-timeout', '500'], undefined, env());
      procs.push(proc);
      await eventually(() => /^ready /m.test(proc.out()) || proc.child.exitCode !== null, 'the ready line', 20_000);
      const m = /address=127\.0\.0\.1:(\d+)/.exec(proc.out());
      if (m === null) throw new Error(`dlock node did not start:\n${proc.out()}\n${proc.err()}`);
      const port = Number(m[1]);
      const a = await LineClient.open(port, '127.0.0.1', '127.0.0.41');
      const b = await LineClient.open(port, '127.0.0.1', '127.0.0.41');
      expect(await a.ask(`auth ${TOKEN}`)).toBe('Auth Success');
      expect(await b.ask(`auth ${TOKEN}`)).toBe('Auth Success');
      const third = LineClient.raw(port, '127.0.0.1', '127.0.0.41');
      await third.waitClosed();
      expect(third.pending).toEqual(['Error: too many connections from 127.0.0.41 (limit 2 per source address); close one first']);
      const c = await LineClient.open(port, '127.0.0.1', '127.0.0.42');
      const full = LineClient.raw(port, '127.0.0.1', '127.0.0.43');
      await full.waitClosed();
      expect(full.pending).toEqual([expect.stringMatching(/^Error: too many connections to this node \(limit 3\)/)]);
      // c never authenticates: closed after --auth-timeout.
      expect(await c.next()).toBe('Error: authentication timed out: no successful auth within 500 ms; closing');
      await c.waitClosed();
      expect(await a.ask('ping')).toBe('PONG');
      a.close();
      b.close();
    }, 60_000);
  });
});
