/**
 * dlock from scripts, as a user's shell would run it: the
 * built CLI as a child process against a real `dlock up`.
 *  - `dlock client REQUEST`: the reply, and an exit status that says what
 *    it means (0 success, 1 Failed/Timeout/Stale, 2 Error or no node);
 *    --json; DLOCK_HOST / DLOCK_PORT;
 *  - usage errors: one line and a pointer to --help;
 *  - `dlock lock NAME -- COMMAND`: the command runs holding the lock, with
 *    DLOCK_LOCK and DLOCK_TOKEN, and its status is ours; a lock lost
 *    mid-run stops the command; `--shared` [LP-20], `--limit N` [LP-21]
 *    and several names [LP-22], and their usage errors.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, up, type Running } from '../helpers/dlock-process.js';
import { eventually, LineClient } from '../helpers/line-client.js';

let proc: Running;
let ports: Record<string, number>;
let holder: LineClient;
let heldToken = 0;

beforeAll(async () => {
  ({ proc, ports } = await up());
  holder = await LineClient.open(ports['leader'] as number);
  const r = await holder.ask('preempt s-held');
  expect(r).toMatch(/^PreemptLock Success/);
  heldToken = Number(/token=(\d+)/.exec(r)?.[1]);
});
afterAll(() => {
  holder.close();
  if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
});

const client = (args: string[], env: NodeJS.ProcessEnv = process.env): Running => run(['client', '--port', String(ports['follower-1']), ...args], undefined, env);

describe('dlock client REQUEST (one-shot)', () => {
  it('prints the reply; exit 0 on success, 1 when the lock says no, 2 on an Error reply', async () => {
    const ok = client(['preempt', 's-one', 'ttl=60000']);
    expect(await ok.exit).toBe(0);
    expect(ok.out()).toMatch(/^PreemptLock Success owner=\d+ token=\d+\n$/);
    const no = client(['preempt', 's-held']);
    expect(await no.exit).toBe(1);
    expect(no.out()).toBe(`PreemptLock Failed owner=${holder.id}\n`);
    const stale = client(['validate', 's-held', String(heldToken + 1000)]);
    expect(await stale.exit).toBe(1);
    const valid = client(['validate', 's-held', String(heldToken)]);
    expect(await valid.exit).toBe(0);
    const free = client(['check', 's-nobody']);
    expect(await free.exit).toBe(0);
    expect(free.out()).toBe('CheckLock:Free\n');
    const synced = client(['sync']); // [LP-17]
    expect(await synced.exit).toBe(0);
    expect(synced.out()).toBe('Sync Success\n');
    const valued = client(['preempt', 's-valued', 'ttl=60000', 'value=10.0.0.5:8080']); // [LP-18] a lease: it outlives the call
    expect(await valued.exit).toBe(0);
    const shown = client(['check', 's-valued']);
    expect(await shown.exit).toBe(0);
    expect(shown.out()).toMatch(/^CheckLock:Lock:\d+ token=\d+ ttl=\d+ value=10\.0\.0\.5:8080\n$/);
    const bad = client(['preempt']);
    expect(await bad.exit).toBe(2);
    expect(bad.out()).toBe('Error: preempt needs a lock name; usage: preempt <lock> [<lock>…] [shared|limit=<n>] [ttl=<ms>] [value=<v>]\n');
  });

  it('[LP-20, LP-21, LP-22] several names, shared and limit=: 0 when granted, 1 when refused (a refusal for several names names the lock), 2 on an Error', async () => {
    const both = client(['preempt', 's-m1', 's-m2', 'ttl=60000']);
    expect(await both.exit).toBe(0);
    const [, owner, token] = /^PreemptLock Success owner=(\d+) token=(\d+)\n$/.exec(both.out()) ?? [];
    expect(token).toBeDefined();
    const shown = client(['check', 's-m2']);
    expect(await shown.exit).toBe(0);
    expect(shown.out()).toMatch(new RegExp(`^CheckLock:Lock:${owner} token=${token} ttl=\\d+\n$`));
    const blocked = client(['preempt', 's-m3', 's-held']);
    expect(await blocked.exit).toBe(1);
    expect(blocked.out()).toBe(`PreemptLock Failed owner=${holder.id} lock=s-held\n`);
    const waited = client(['acquire', 's-m3', 's-held', 'timeout=0']);
    expect(await waited.exit).toBe(1);
    expect(waited.out()).toBe(`AcquireLock Timeout owner=${holder.id} lock=s-held\n`);
    const notOurs = client(['--json', 'release', 's-m1', 's-m2']); // another client's: all or nothing
    expect(await notOurs.exit).toBe(1);
    expect(JSON.parse(notOurs.out())).toEqual({ request: 'release s-m1 s-m2', reply: `ReleaseLock Failed owner=${owner} lock=s-m1`, ok: false, op: 'release', owner: Number(owner), lock: 's-m1' });
    const shared = client(['preempt', 's-sh', 'shared', 'ttl=60000']);
    expect(await shared.exit).toBe(0);
    const joined = client(['acquire', 's-sh', 'shared', 'timeout=0', 'ttl=60000']);
    expect(await joined.exit).toBe(0);
    const sharedCheck = client(['check', 's-sh']);
    expect(await sharedCheck.exit).toBe(0);
    expect(sharedCheck.out()).toMatch(/^CheckLock:Shared:2 token=\d+ owners=\d+,\d+\n$/);
    const sem = client(['preempt', 's-sem', 'limit=1', 'ttl=60000']);
    expect(await sem.exit).toBe(0);
    const full = client(['preempt', 's-sem', 'limit=1']);
    expect(await full.exit).toBe(1);
    expect(full.out()).toMatch(/^PreemptLock Failed owner=\d+\n$/);
    const otherLimit = client(['preempt', 's-sem', 'limit=2']);
    expect(await otherLimit.exit).toBe(2);
    expect(otherLimit.out()).toBe('Error: s-sem is held with limit=1\n');
  });

  it('[LP-16] one client across calls: `dlock client session` exports DLOCK_SESSION, and later calls act as that client', async () => {
    const made = client(['session']);
    expect(await made.exit).toBe(0);
    const m = /^export DLOCK_SESSION=(\d+):(\S+)\n$/.exec(made.out());
    if (m === null) throw new Error(`not an export line: ${JSON.stringify(made.out())}`);
    const [, id, secret] = m as unknown as [string, string, string];
    const env = { ...process.env, DLOCK_SESSION: `${id}:${secret}` };
    // The lease one call takes, through one node, the next calls renew and release through another.
    const take = run(['client', '--port', String(ports['follower-2']), 'preempt', 'deploy', 'ttl=60000'], undefined, env);
    expect(await take.exit).toBe(0);
    expect(take.out()).toMatch(new RegExp(`^PreemptLock Success owner=${id} token=\\d+\n$`));
    const renew = client(['renew', 'deploy', 'ttl=60000'], env);
    expect(await renew.exit).toBe(0);
    expect(renew.out()).toMatch(/^RenewLock Success token=\d+\n$/);
    const release = client(['release', 'deploy'], env);
    expect(await release.exit).toBe(0);
    expect(release.out()).toBe('ReleaseLock Success\n');
    // Holding nothing between calls, it is still that client (the session's ttl keeps it resumable).
    const again = client(['preempt', 'deploy', 'ttl=60000'], env);
    expect(await again.exit).toBe(0);
    expect(again.out()).toMatch(new RegExp(`^PreemptLock Success owner=${id} `));
    expect((await (async () => { const r = client(['release', 'deploy'], env); await r.exit; return r.out(); })())).toBe('ReleaseLock Success\n');
    // The secret is in no node's log line, and no node stopped on the way.
    expect(proc.out() + proc.err()).not.toContain(secret);
    expect(proc.out()).not.toMatch(/stopped unexpectedly/);
    // A DLOCK_SESSION that is not one: a clear error, and nothing sent.
    const bad = client(['check', 'deploy'], { ...process.env, DLOCK_SESSION: 'nonsense' });
    expect(await bad.exit).toBe(2);
    expect(bad.err()).toContain('DLOCK_SESSION is not <client id>:<secret>');
  });

  it('--json prints the reply as an object', async () => {
    const j = client(['--json', 'check', 's-held']);
    expect(await j.exit).toBe(0);
    expect(JSON.parse(j.out())).toEqual({ request: 'check s-held', reply: expect.stringMatching(/^CheckLock:Lock:/), ok: true, held: true, owner: holder.id, token: expect.any(Number), ttlLeft: null });
    const e = client(['--json', 'release', 's-held']);
    expect(await e.exit).toBe(1);
    expect(JSON.parse(e.out())).toMatchObject({ request: 'release s-held', ok: false, op: 'release', owner: holder.id });
  });

  it('reads DLOCK_HOST and DLOCK_PORT', async () => {
    const env = { ...process.env, DLOCK_HOST: '127.0.0.1', DLOCK_PORT: String(ports['follower-2']) };
    const w = run(['client', 'whoami'], undefined, env);
    expect(await w.exit).toBe(0);
    expect(w.out()).toMatch(/^client_id: \d+ node: follower-2\n$/);
  });

  it('exits 2 when no node answers', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const c = run(['client', '--port', String(port), 'ping']);
    expect(await c.exit).toBe(2);
    expect(c.err()).toMatch(/^dlock client: cannot connect to 127\.0\.0\.1:\d+/);
  });
});

describe('usage errors', () => {
  it('are one line and a pointer to --help, with exit status 2', async () => {
    const u = run(['up', '--followers', 'abc']);
    expect(await u.exit).toBe(2);
    expect(u.err()).toBe("dlock: --followers must be a whole number from 0 to 98\nRun 'dlock up --help' for usage.\n");
    const l = run(['lock', 'x']);
    expect(await l.exit).toBe(2);
    expect(l.err()).toBe("dlock: name the command to run after --, e.g. dlock lock jobs -- ./run.sh\nRun 'dlock lock --help' for usage.\n");
    // The pointer names a command only when one was given; a flag's value is not one.
    const frob = run(['frob']);
    expect(await frob.exit).toBe(2);
    expect(frob.err()).toBe("dlock: Unknown argument: frob\nRun 'dlock --help' for usage.\n");
    const cfg = run(['--config', 'x.json', 'up']);
    expect(await cfg.exit).toBe(2);
    expect(cfg.err()).toMatch(/\nRun 'dlock up --help' for usage\.\n$/);
    const none = run([]);
    expect(await none.exit).toBe(2);
    expect(none.err()).toBe("dlock: name a command: up, node, status, tui, client, lock, watch, admin\nRun 'dlock --help' for usage.\n");
  });

  it('dlock --version is dlock\'s own, whatever the directory it runs in', async () => {
    const own = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    const v = run(['--version']);
    expect(await v.exit).toBe(0);
    expect(v.out()).toBe(`${own}\n`);
  });

  it('--etcd takes HOST:PORT as etcdctl does, and DLOCK_ETCD stands for it', async () => {
    // Nothing listens on port 1: the error names the URL it made.
    const bare = run(['status', '--etcd', '127.0.0.1:1']);
    expect(await bare.exit).toBe(2);
    // Said as a person would, not as gRPC's "14 UNAVAILABLE: No connection established. Last error: …".
    expect(bare.err()).toBe('dlock status: cannot read the cluster from etcd at http://127.0.0.1:1: nothing answers there (connection refused): is etcd running, and is this its client URL?\n');
    const env = run(['status'], undefined, { ...process.env, DLOCK_ETCD: '127.0.0.1:1' });
    expect(await env.exit).toBe(2);
    expect(env.err()).toMatch(/^dlock status: cannot read the cluster from etcd at http:\/\/127\.0\.0\.1:1: /);
  });

  it('npm run chaos parses its flags as dlock does: --help is usage, an unknown flag an error', async () => {
    const chaos = fileURLToPath(new URL('../../dist/tools/safety/cli.js', import.meta.url));
    const help = spawnSync(process.execPath, [chaos, '--help'], { encoding: 'utf8', timeout: 20_000 });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/--procs/);
    const bad = spawnSync(process.execPath, [chaos, '--frob'], { encoding: 'utf8', timeout: 20_000 });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe("chaos: Unknown argument: frob\nRun 'npm run chaos -- --help' for usage.\n");
  });
});

describe('dlock watch NAME [LP-19]', () => {
  it('prints the state now, then each new one, one line each; --count stops; --json prints objects', async () => {
    const w = run(['watch', '--port', String(ports['follower-2']), 's-watched', '--count', '3']);
    await eventually(() => w.out() === 'Free\n', 'the state now');
    const token = /token=(\d+)/.exec(await holder.ask('preempt s-watched value=a%20b'))?.[1];
    await eventually(() => w.out().split('\n').length === 3, 'the grant');
    expect(await holder.ask('release s-watched')).toBe('ReleaseLock Success');
    expect(await w.exit).toBe(0);
    expect(w.out()).toBe(`Free\nLock:${holder.id} token=${token} value=a%20b\nFree\n`);
    const j = run(['watch', '--port', String(ports['follower-1']), 's-held', '--count', '1', '--json']);
    expect(await j.exit).toBe(0);
    expect(JSON.parse(j.out())).toEqual({ lock: 's-held', held: true, owner: holder.id, token: heldToken, ttlLeft: null });
    const bad = run(['watch', 's-x', '--count', '0']);
    expect(await bad.exit).toBe(2);
    expect(bad.err()).toBe("dlock: --count must be a whole number of at least 1\nRun 'dlock watch --help' for usage.\n");
  });
});

describe('dlock lock NAME -- COMMAND', () => {
  const lock = (args: string[]): Running => run(['lock', '--port', String(ports['follower-2']), ...args]);

  it('runs the command holding the lock, with DLOCK_LOCK and DLOCK_TOKEN, then releases it and exits with its status', async () => {
    const script = 'test "$DLOCK_LOCK" = s-job && test "$DLOCK_TOKEN" -gt 0 && echo "held $DLOCK_LOCK $DLOCK_TOKEN" && exit 7';
    const l = lock(['s-job', '--', 'sh', '-c', script]);
    expect(await l.exit).toBe(7);
    const m = /^held s-job (\d+)\n$/.exec(l.out());
    expect(m).not.toBe(null);
    // While it ran, the cluster held it with that token; now it is free.
    expect(await holder.ask('check s-job')).toBe('CheckLock:Free');
    expect(await holder.ask(`validate s-job ${m?.[1]}`)).toBe('ValidateLock Stale owner=none');
  });

  it('with --value, the lock shows the value while the command holds it (leader election for a command) [LP-18]', async () => {
    const done = join(mkdtempSync(join(tmpdir(), 'dlock-lead-')), 'done');
    const l = lock(['s-leads', '--value', '10.0.0.5:8080', '--', 'sh', '-c', `echo leading; while [ ! -e ${done} ]; do sleep 0.05; done`]);
    await eventually(() => l.out().includes('leading'), 'the command to run');
    expect(await holder.ask('sync')).toBe('Sync Success');
    expect(await holder.ask('check s-leads')).toMatch(/^CheckLock:Lock:\d+ token=\d+ ttl=\d+ value=10\.0\.0\.5:8080$/);
    writeFileSync(done, '');
    expect(await l.exit).toBe(0);
    expect(await holder.ask('sync')).toBe('Sync Success');
    expect(await holder.ask('check s-leads')).toBe('CheckLock:Free');
    const bad = lock(['s-leads', '--value', '', '--', 'true']);
    expect(await bad.exit).toBe(2); // a usage error
    expect(bad.err()).toBe("dlock: value must be 1 to 1024 bytes once percent-encoded, got 0\nRun 'dlock lock --help' for usage.\n");
  });

  it('--shared: commands holding the lock shared run at once; one holding it alone waits for them [LP-20]', async () => {
    const done = join(mkdtempSync(join(tmpdir(), 'dlock-shared-')), 'done');
    const reader = (): Running => lock(['s-doc', '--shared', '--', 'sh', '-c', `echo "reading $DLOCK_LOCK $DLOCK_TOKEN"; while [ ! -e ${done} ]; do sleep 0.05; done`]);
    const [r1, r2] = [reader(), reader()];
    await eventually(() => r1.out().startsWith('reading') && r2.out().startsWith('reading'), 'both readers running', 10_000);
    const tokens = [r1, r2].map((r) => Number(/^reading s-doc (\d+)\n$/.exec(r.out())?.[1]));
    expect(tokens[0]).not.toBe(tokens[1]); // [LP-7] each its own
    expect(await holder.ask('sync')).toBe('Sync Success');
    expect(await holder.ask('check s-doc')).toMatch(new RegExp(`^CheckLock:Shared:2 token=${Math.max(...(tokens as [number, number]))} owners=\\d+,\\d+$`));
    const writer = lock(['s-doc', '--', 'sh', '-c', 'echo "alone $DLOCK_TOKEN"']);
    // [LP-20] a shared request is refused while the lock is held shared only when an earlier waiter wants it alone: the writer.
    const probe = await LineClient.open(ports['leader'] as number);
    await eventually(
      async () => {
        const r = await probe.ask('preempt s-doc shared');
        if (r.startsWith('PreemptLock Success')) expect(await probe.ask('release s-doc')).toBe('ReleaseLock Success');
        return r.startsWith('PreemptLock Failed');
      },
      'the writer waiting',
      10_000,
    );
    probe.close();
    expect(writer.out()).toBe('');
    writeFileSync(done, '');
    expect([await r1.exit, await r2.exit]).toEqual([0, 0]);
    expect(await writer.exit).toBe(0);
    const alone = Number(/^alone (\d+)\n$/.exec(writer.out())?.[1]);
    expect(alone).toBeGreaterThan(Math.max(...(tokens as [number, number])));
    expect(await holder.ask('sync')).toBe('Sync Success');
    expect(await holder.ask('check s-doc')).toBe('CheckLock:Free');
  });

  it('--limit N: at most N commands hold it at once; the next runs once one ends [LP-21]', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dlock-limit-'));
    const slot = (name: string): Running => lock(['s-pool', '--limit', '2', '--', 'sh', '-c', `echo "in $DLOCK_TOKEN"; while [ ! -e ${join(dir, name)} ]; do sleep 0.05; done`]);
    const [p1, p2] = [slot('1'), slot('2')];
    await eventually(() => p1.out().startsWith('in') && p2.out().startsWith('in'), 'two holders running', 10_000);
    expect(await holder.ask('sync')).toBe('Sync Success');
    expect(await holder.ask('check s-pool')).toMatch(/^CheckLock:Held:2\/2 token=\d+ owners=\d+,\d+$/);
    const turnedAway = lock(['s-pool', '--limit', '2', '--timeout', '200', '--', 'sh', '-c', 'echo ran']);
    expect(await turnedAway.exit).toBe(1);
    expect(turnedAway.out()).toBe('');
    expect(turnedAway.err()).toMatch(/^dlock lock: s-pool is held by \d+; not acquired within 200 ms\n$/);
    const p3 = slot('3');
    // Its request has reached the node (and is logged) while both slots are taken.
    const asked = (): number => [...proc.out().matchAll(/ Request \d+: acquire s-pool limit=2 ttl=10000$/gm)].length;
    await eventually(() => asked() === 3, 'the third request at the node', 10_000);
    expect(p3.out()).toBe('');
    writeFileSync(join(dir, '1'), '');
    expect(await p1.exit).toBe(0);
    await eventually(() => p3.out().startsWith('in'), 'the third running', 10_000);
    expect(await holder.ask('sync')).toBe('Sync Success');
    expect(await holder.ask('check s-pool')).toMatch(/^CheckLock:Held:2\/2 /);
    writeFileSync(join(dir, '2'), '');
    writeFileSync(join(dir, '3'), '');
    expect([await p2.exit, await p3.exit]).toEqual([0, 0]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('several names: all of them at once with one token, DLOCK_LOCK the names; one held elsewhere: exit 1 naming it, nothing taken [LP-22]', async () => {
    const done = join(mkdtempSync(join(tmpdir(), 'dlock-several-')), 'done');
    const l = lock(['s-a', 's-b', 's-c', '--', 'sh', '-c', `echo "held $DLOCK_LOCK|$DLOCK_TOKEN"; while [ ! -e ${done} ]; do sleep 0.05; done`]);
    await eventually(() => l.out().startsWith('held'), 'the command to run', 10_000);
    const token = /^held s-a s-b s-c\|(\d+)\n$/.exec(l.out())?.[1];
    expect(token).toBeDefined();
    expect(await holder.ask('sync')).toBe('Sync Success');
    const shown: string[] = [];
    for (const n of ['s-a', 's-b', 's-c']) shown.push(await holder.ask(`check ${n}`));
    const owner = /^CheckLock:Lock:(\d+) /.exec(shown[0] as string)?.[1];
    for (const line of shown) expect(line).toMatch(new RegExp(`^CheckLock:Lock:${owner} token=${token} ttl=\\d+$`));
    const blocked = lock(['s-d', 's-held', '--timeout', '200', '--', 'sh', '-c', 'echo ran']);
    expect(await blocked.exit).toBe(1);
    expect(blocked.out()).toBe('');
    expect(blocked.err()).toBe(`dlock lock: s-held is held by ${holder.id}; not acquired within 200 ms\n`);
    writeFileSync(done, '');
    expect(await l.exit).toBe(0);
    expect(await holder.ask('sync')).toBe('Sync Success');
    for (const n of ['s-a', 's-b', 's-c', 's-d']) expect(await holder.ask(`check ${n}`)).toBe('CheckLock:Free');
  });

  it('--shared with --limit, --value with either, or several names with either: a usage error, exit 2', async () => {
    const cases: Array<[string[], string]> = [
      [['s-u', '--shared', '--limit', '2'], '--shared and --limit name two kinds of hold: give one'],
      [['s-u', '--shared', '--value', 'v'], '--value is for a lock held alone, not with --shared (LP-18)'],
      [['s-u', '--limit', '3', '--value', 'v'], '--value is for a lock held alone, not with --limit (LP-18)'],
      [['s-u', 's-v', '--limit', '3'], 'several locks are held alone, all or nothing: --limit goes with one name (LP-22)'],
      [['s-u', 's-v', '--shared'], 'several locks are held alone, all or nothing: --shared goes with one name (LP-22)'],
      [['s-u', '--limit', '0'], '--limit must be a whole number from 1 to 10000'],
      [['s-u', 's-u'], 'lock s-u named twice: name each lock once'],
    ];
    const runs = cases.map(([args]) => lock([...args, '--', 'sh', '-c', 'echo ran']));
    for (const [i, r] of runs.entries()) {
      expect(await r.exit).toBe(2);
      expect(r.out()).toBe('');
      expect(r.err()).toBe(`dlock: ${cases[i]?.[1]}\nRun 'dlock lock --help' for usage.\n`);
    }
  });

  it('waits for a held lock up to --timeout, then exits 1 without running the command', async () => {
    const l = lock(['s-held', '--timeout', '200', '--', 'sh', '-c', 'echo ran']);
    expect(await l.exit).toBe(1);
    expect(l.out()).toBe('');
    expect(l.err()).toBe(`dlock lock: s-held is held by ${holder.id}; not acquired within 200 ms\n`);
  });

  it('a command that cannot be run exits as a shell\'s would: 127 not found, 126 not executable; the lock is released', async () => {
    const missing = lock(['s-missing', '--', '/nonexistent/cmd']);
    expect(await missing.exit).toBe(127);
    expect(missing.err()).toMatch(/cannot run \/nonexistent\/cmd/);
    const dir = mkdtempSync(join(tmpdir(), 'dlock-lock-'));
    const file = join(dir, 'not-executable.sh');
    writeFileSync(file, 'echo ran\n', { mode: 0o644 });
    const notExec = lock(['s-missing', '--', file]);
    expect(await notExec.exit).toBe(126);
    rmSync(dir, { recursive: true, force: true });
    expect(await holder.ask('check s-missing')).toBe('CheckLock:Free');
  });

  it('stops the command when the lock is lost mid-run (SIGTERM), and says why', async () => {
    // The only way to the cluster goes through a proxy that the test cuts.
    const socks = new Set<Socket>();
    const proxy: Server = createServer((down) => {
      const upSock = netConnect({ port: ports['follower-2'] as number, host: '127.0.0.1' });
      socks.add(down).add(upSock);
      down.pipe(upSock).pipe(down);
      for (const s of [down, upSock]) s.on('error', () => s.destroy()).on('close', () => (down.destroy(), upSock.destroy()));
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const l = run(['lock', '--port', String((proxy.address() as AddressInfo).port), '--ttl', '900', 's-cut', '--', 'sh', '-c', 'echo started; trap "echo got TERM; exit 143" TERM; while :; do sleep 0.05; done']);
    await eventually(() => l.out().includes('started'), 'the command started', 10_000);
    proxy.close();
    for (const s of socks) s.destroy();
    expect(await l.exit).toBe(143);
    expect(l.out()).toMatch(/got TERM/);
    expect(l.err()).toMatch(/^dlock lock: lost s-cut \(lease on s-cut lost: not renewed before its end/m);
  });
});
