/**
 * The `dlock` command as a user runs it: child processes, real TCP, real
 * `nc`, and the interactive client's prompt in a real terminal (tmux).
 */
import { spawnSync } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, run, up, type Running } from '../helpers/dlock-process.js';
import { eventually, LineClient } from '../helpers/line-client.js';

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

describe('dlock up (headless)', () => {
  let proc: Running;
  let ports: Record<string, number>;
  let holder: LineClient; // holds cli-lock for the tests below
  beforeAll(async () => {
    ({ proc, ports } = await up());
  });
  afterAll(() => {
    holder.close();
    if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
  });

  it('prints one ready line naming every node, after every node listens', () => {
    expect(proc.out().match(/^ready /gm)).toHaveLength(1);
    expect(Object.keys(ports)).toEqual(['leader', 'follower-1', 'follower-2']);
    const listening = proc.out().split('\n').filter((l) => / listening on 127\.0\.0\.1:\d+$/.test(l));
    expect(listening).toHaveLength(3);
    expect(proc.out().indexOf('ready ')).toBeGreaterThan(proc.out().lastIndexOf('listening on'));
  });

  it('logs every node\'s lines on stdout prefixed with its name and a time', async () => {
    const c = await LineClient.open(ports['follower-1'] as number);
    holder = c;
    expect(await c.ask('preempt cli-lock')).toBe(`PreemptLock Success owner=${c.id} token=1`);
    const stamp = '\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3}';
    await eventually(() => new RegExp(`^leader +${stamp} broadcast new lock_map cli-lock ${c.id} token=1$`, 'm').test(proc.out()), 'leader broadcast line');
    await eventually(() => new RegExp(`^follower-2 ${stamp} UpdateLockmap cli-lock ${c.id}$`, 'm').test(proc.out()), 'follower-2 update line');
    await eventually(() => new RegExp(`^follower-1 ${stamp} Request ${c.id}: preempt cli-lock$`, 'm').test(proc.out()), 'request line');
    await eventually(() => new RegExp(`^follower-1 ${stamp} Response ${c.id}: PreemptLock Success owner=${c.id} token=1$`, 'm').test(proc.out()), 'response line');
    await eventually(() => new RegExp(`^follower-1 ${stamp} Connect from 127\\.0\\.0\\.1:\\d+ client_id=${c.id}$`, 'm').test(proc.out()), 'connect line');
  });

  it('dlock client, piped, prints the id and each request and response with a time, then exits 0', async () => {
    const client = run(['client', '--port', String(ports['follower-2'])], 'check cli-lock\n\npreempt cli-lock\nbogus\n');
    expect(await client.exit).toBe(0);
    const o = client.out();
    expect(o).toMatch(/^connected to follower-2 at 127\.0\.0\.1:\d+\nclient_id: 30001\n/);
    const ts = '\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d';
    expect(o).toMatch(new RegExp(`${ts} Request: check cli-lock\\n${ts} Response: CheckLock:Lock:20001 token=1\\n`));
    expect(o).toMatch(new RegExp(`${ts} Request: preempt cli-lock\\n${ts} Response: PreemptLock Failed owner=20001\\n`));
    expect(o).toMatch(new RegExp(`${ts} Request: bogus\\n${ts} Response: Error: unknown command "bogus"`));
    expect(o).not.toContain('distributeLock:>'); // no prompt when piped
  });

  it.skipIf(!has('nc'))('nc, as in the README: greeting, replies, and the node closes after a half-close', async () => {
    const nc = spawnSync('nc', ['-N', '127.0.0.1', String(ports['leader'])], { input: 'check cli-lock\nping\n', encoding: 'utf8', timeout: 10_000 });
    expect(nc.status).toBe(0);
    expect(nc.stdout).toMatch(/^client_id: 1000\d node: leader\nCheckLock:Lock:20001 token=1\nPONG\n$/);
  });

  it.skipIf(!has('tmux'))('dlock client in a terminal shows the distributeLock:> prompt and answers', async () => {
    // A private tmux server (-L) so nothing else on the machine can interfere.
    const sock = `dlock-test-${process.pid}`;
    const tmux = (...args: string[]): string => {
      const r = spawnSync('tmux', ['-L', sock, ...args], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    tmux('-f', '/dev/null', 'new-session', '-d', '-s', 'c', '-x', '120', '-y', '30');
    try {
      tmux('set-option', '-t', 'c', 'remain-on-exit', 'on'); // keep the screen if the client exits
      tmux('respawn-pane', '-k', '-t', 'c', `${process.execPath} ${CLI} client --port ${ports['leader']}`);
      const screen = (): string => tmux('capture-pane', '-p', '-t', 'c');
      // capture-pane drops the prompt's trailing space
      await eventually(() => /distributeLock:>$/m.test(screen()), 'the prompt');
      expect(screen()).toMatch(/client_id: 1000\d/);
      tmux('send-keys', '-t', 'c', 'preempt tmux-lock', 'Enter');
      await eventually(() => /Response: PreemptLock Success owner=1000\d token=\d+\ndistributeLock:>$/m.test(screen()), 'the reply and a new prompt');
      expect(screen()).toMatch(/\d\d:\d\d:\d\d Request: preempt tmux-lock/);
      tmux('send-keys', '-t', 'c', 'quit', 'Enter');
      await eventually(() => /Response: Bye/.test(screen()), 'Bye');
    } finally {
      spawnSync('tmux', ['-L', sock, 'kill-server']);
    }
  });

  it.skipIf(!has('tmux'))('dlock client in a terminal edits the line, keeps history, and prints a late reply above the line being typed', async () => {
    const sock = `dlock-test-edit-${process.pid}`;
    const tmux = (...args: string[]): string => {
      const r = spawnSync('tmux', ['-L', sock, ...args], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const other = await LineClient.open(ports['leader'] as number);
    expect(await other.ask('preempt tmux-held')).toMatch(/^PreemptLock Success/);
    tmux('-f', '/dev/null', 'new-session', '-d', '-s', 'c', '-x', '120', '-y', '30');
    try {
      tmux('set-option', '-t', 'c', 'remain-on-exit', 'on');
      tmux('respawn-pane', '-k', '-t', 'c', `${process.execPath} ${CLI} client --port ${ports['leader']}`);
      const screen = (): string => tmux('capture-pane', '-p', '-t', 'c');
      await eventually(() => /distributeLock:>$/m.test(screen()), 'the prompt');
      // Editing: a stray x removed at the start (Home, Delete), the end typed on (End).
      tmux('send-keys', '-t', 'c', 'xpreempt tmux-ed', 'Home', 'DC', 'End', 'it', 'Enter');
      await eventually(() => /Request: preempt tmux-edit\n.*Response: PreemptLock Success/m.test(screen()), 'the edited request answered');
      // History: Up brings it back; Ctrl+U clears it again.
      tmux('send-keys', '-t', 'c', 'Up');
      await eventually(() => /distributeLock:> preempt tmux-edit$/m.test(screen()), 'the last line from history');
      tmux('send-keys', '-t', 'c', 'C-u');
      await eventually(() => /distributeLock:>$/m.test(screen()), 'the line cleared');
      // A reply that comes while a line is being typed goes above it.
      tmux('send-keys', '-t', 'c', 'acquire tmux-held', 'Enter');
      tmux('send-keys', '-t', 'c', 'pin');
      await eventually(() => /distributeLock:> pin$/m.test(screen()), 'the half-typed line');
      expect(await other.ask('release tmux-held')).toBe('ReleaseLock Success');
      await eventually(() => /Response: AcquireLock Success owner=1000\d token=\d+\ndistributeLock:> pin$/m.test(screen()), 'the late reply above the typed line');
      tmux('send-keys', '-t', 'c', 'g', 'Enter');
      await eventually(() => /Request: ping\n.*Response: PONG/m.test(screen()), 'the finished line sent');
      tmux('send-keys', '-t', 'c', 'quit', 'Enter');
      await eventually(() => /Response: Bye/.test(screen()), 'Bye');
    } finally {
      other.close();
      spawnSync('tmux', ['-L', sock, 'kill-server']);
    }
  });

  it.skipIf(!has('tmux'))('dlock client in a terminal shows a waiting request and what is queued behind it; Ctrl+C cancels it and the next request connects again [LP-8, LP-9]', async () => {
    const sock = `dlock-test-wait-${process.pid}`;
    const tmux = (...args: string[]): string => {
      const r = spawnSync('tmux', ['-L', sock, ...args], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const holder = await LineClient.open(ports['follower-1'] as number);
    expect(await holder.ask('preempt tmux-wait')).toMatch(/^PreemptLock Success/);
    tmux('-f', '/dev/null', 'new-session', '-d', '-s', 'c', '-x', '160', '-y', '30');
    try {
      tmux('set-option', '-t', 'c', 'remain-on-exit', 'on');
      // Through a shell that prints the exit status (tmux's own pane status can lag the exit).
      tmux('respawn-pane', '-k', '-t', 'c', `sh -c '${process.execPath} ${CLI} client --port ${ports['leader']}; echo "exited $?"'`);
      const screen = (): string => tmux('capture-pane', '-p', '-t', 'c');
      await eventually(() => /distributeLock:>$/m.test(screen()), 'the prompt');
      const first = /client_id: (\d+)/.exec(screen())?.[1];
      tmux('send-keys', '-t', 'c', 'preempt tmux-mine', 'Enter');
      await eventually(() => /Response: PreemptLock Success owner=\d+/.test(screen()), 'a session lock of its own');
      tmux('send-keys', '-t', 'c', 'acquire tmux-wait', 'Enter');
      await eventually(() => /Request: acquire tmux-wait\nwaiting: acquire tmux-wait \(Ctrl\+C cancels it/m.test(screen()), 'the waiting request shown');
      tmux('send-keys', '-t', 'c', 'check tmux-mine', 'Enter');
      await eventually(() => /Request: check tmux-mine\n\(queued behind: acquire tmux-wait\)/m.test(screen()), 'the queued request shown');
      tmux('send-keys', '-t', 'c', 'C-c');
      await eventually(() => /\^C: cancelled 2 waiting requests by closing the connection/.test(screen()), 'the cancel said');
      expect(screen()).toMatch(/Cancelled: acquire tmux-wait\n.*Cancelled: check tmux-mine/m);
      // Its connection closed: its session lock is released [LP-8], and its acquire no longer waits [LP-9].
      await eventually(async () => (await holder.ask('check tmux-mine')) === 'CheckLock:Free', 'the cancelled client\'s session lock released');
      expect(await holder.ask('release tmux-wait')).toBe('ReleaseLock Success');
      expect(await holder.ask('check tmux-wait')).toBe('CheckLock:Free'); // not granted to the cancelled acquire
      tmux('send-keys', '-t', 'c', 'ping', 'Enter');
      await eventually(() => /connected again to leader\nclient_id: (\d+)\n.*Request: ping\n.*Response: PONG/m.test(screen()), 'a new connection for the next request');
      expect(/connected again to leader\nclient_id: (\d+)/.exec(screen())?.[1]).not.toBe(first);
      // Ctrl+C with nothing waiting and nothing typed quits, with status 0.
      tmux('send-keys', '-t', 'c', 'C-c');
      await eventually(() => /^exited 0$/m.test(screen()), 'the client exited 0').catch((err: unknown) => {
        throw new Error(`${(err as Error).message}\n${screen()}`);
      });
    } finally {
      holder.close();
      spawnSync('tmux', ['-L', sock, 'kill-server']);
    }
  });

  it('SIGTERM closes it cleanly with status 0', async () => {
    proc.child.kill('SIGTERM');
    expect(await proc.exit).toBe(0);
    expect(proc.out()).toMatch(/SIGTERM, shutting down/);
  });
});

describe('dlock up lifecycle and errors', () => {
  it('--quiet logs connections but nothing per write (no request, reply or replication lines); SIGINT exits 0', async () => {
    const { proc, ports } = await up(['--quiet', '--no-tui']);
    const c = await LineClient.open(ports['follower-1'] as number);
    expect(await c.ask('preempt quiet-lock')).toMatch(/^PreemptLock Success/);
    expect(await c.ask('release quiet-lock')).toBe('ReleaseLock Success');
    c.close();
    await eventually(() => new RegExp(`Disconnect client_id=${c.id}`).test(proc.out()), 'the disconnect line');
    // Per-write lines cost more than the write itself under load (README, Benchmarks).
    expect(proc.out()).not.toMatch(/Request|Response|lock_map|UpdateLockmap|RemoveLockmap/);
    expect(proc.out()).toMatch(new RegExp(`Connect from 127\\.0\\.0\\.1:\\d+ client_id=${c.id}`));
    proc.child.kill('SIGINT');
    expect(await proc.exit).toBe(0);
  });

  it('a port in use is a clear error and a non-zero exit', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as AddressInfo).port;
    const proc = run(['up', '--port', String(port), '--followers', '0']);
    expect(await proc.exit).toBe(1);
    expect(proc.err()).toMatch(/could not start the cluster: .*EADDRINUSE.*--port/);
    await new Promise((resolve) => blocker.close(resolve));
  });

  it('--data-dir where no directory can be made fails at once with the reason, never hangs', async () => {
    const t0 = performance.now();
    const proc = run(['up', '--no-tui', '--port', '0', '--data-dir', '/proc/dlock-cannot-be-here/data']);
    expect(await proc.exit).toBe(1); // the test's own timeout catches a hang
    expect(proc.err()).toMatch(/could not start the cluster: --data-dir \/proc\/dlock-cannot-be-here\/data cannot be used: ENOENT/);
    expect(performance.now() - t0).toBeLessThan(10_000);
  });

  it('bad flags are refused with the reason', async () => {
    // Usage errors: exit status 2, the reason, and where to read more (not the whole help).
    const a = run(['up', '--followers', '-1']);
    expect(await a.exit).toBe(2);
    expect(a.err()).toMatch(/--followers must be a whole number from 0 to 98/);
    const b = run(['up', '--port', '70000']);
    expect(await b.exit).toBe(2);
    expect(b.err()).toMatch(/--port must be/);
    const c = run(['frobnicate']);
    expect(await c.exit).toBe(2);
    expect(c.err()).toBe("dlock: Unknown argument: frobnicate\nRun 'dlock --help' for usage.\n"); // not a command: dlock's own help
  });

  it('dlock client to a port with no node says so and exits 2', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve)); // now nothing listens there
    const c = run(['client', '--port', String(port)], 'ping\n');
    expect(await c.exit).toBe(2);
    expect(c.err()).toMatch(/dlock client: cannot connect to 127\.0\.0\.1:\d+/);
  });

  it('--help describes up and client', async () => {
    const h = run(['up', '--help']);
    expect(await h.exit).toBe(0);
    expect(h.out()).toMatch(/--followers/);
    expect(h.out()).toMatch(/--port/);
    expect(h.out()).toMatch(/--no-tui|--tui/);
  });
});
