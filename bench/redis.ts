/**
 * redis-server for side-by-side runs: started by the bench on a free port,
 * persistence off, bound to loopback; null when it is not installed (the
 * bench then says so and runs dlock alone). With `replicas`, that many more
 * redis-servers replicate it (`--replicaof`), for the like-for-like
 * comparison with dlock's replicated writes: `WAIT <replicas> 0` after each
 * write answers once every replica has it (the like-for-like comparison).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { onFreePort } from './free-port.js';

export interface Redis {
  port: number;
  /** How many replicas follow it (0: none). */
  replicas: number;
  /** redis-server's process id (its CPU time is measured beside dlock's). */
  pid: number;
  version: string;
  /** SHA1 of a loaded script, for EVALSHA. */
  load(script: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Send one inline command and return its reply: a status or integer line as
 * is (`+PONG`), or a bulk string's whole value, read to the length its
 * `$N` header gives (SCRIPT LOAD's SHA, INFO's many lines).
 */
function ask(port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' });
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\r\n');
      if (nl === -1) return;
      const first = buf.slice(0, nl);
      const bulk = /^\$(\d+)$/.exec(first);
      if (bulk !== null) {
        const len = Number(bulk[1]);
        const body = Buffer.from(buf.slice(nl + 2));
        if (body.length < len) return;
        s.destroy();
        resolve(body.subarray(0, len).toString('utf8'));
        return;
      }
      s.destroy();
      resolve(first);
    });
    s.on('error', reject);
    // Something else may hold the port and never answer: don't wait forever.
    s.setTimeout(2_000, () => {
      s.destroy();
      reject(new Error(`no answer to ${command.split(' ')[0]} within 2 s`));
    });
    s.write(`${command}\r\n`);
  });
}

/** redis-server on `port` once it answers PING; null when it exited first (the port was taken). */
async function startOn(port: number, extra: string[] = []): Promise<ChildProcess | null> {
  // Replication without files (diskless sync and load), and the working
  // directory the system's temp dir: no dump.rdb left in the repository.
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes', '--loglevel', 'warning', '--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0', '--repl-diskless-load', 'on-empty-db', ...extra];
  const child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'], cwd: tmpdir() });
  let err = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  const deadline = performance.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      process.stderr.write(`redis-server exited on port ${port}: ${err.trim()}\n`);
      return null;
    }
    const pong = await ask(port, 'PING').catch((e: unknown) => {
      if (performance.now() <= deadline) return null;
      child.kill('SIGKILL');
      throw new Error(`redis-server did not answer on port ${port}: ${(e as Error).message}`);
    });
    if (pong === '+PONG') return child;
    await new Promise((r) => setTimeout(r, 50));
  }
}

const stopChild = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve();
      return;
    }
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });

export async function startRedis(replicas = 0): Promise<Redis | null> {
  const which = spawnSync('sh', ['-c', 'command -v redis-server']);
  if (which.status !== 0) return null;
  const version = /v=(\S+)/.exec(spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout)?.[1] ?? '?';
  const { port, server } = await onFreePort('redis-server', (p) => startOn(p));
  const followers: ChildProcess[] = [];
  try {
    for (let i = 0; i < replicas; i++) followers.push((await onFreePort('redis-server replica', (p) => startOn(p, ['--replicaof', '127.0.0.1', String(port)]))).server);
    // Replicating once the primary counts them all as online.
    const deadline = performance.now() + 15_000;
    for (;;) {
      const info = await ask(port, 'INFO replication');
      if ((info.match(/^slave\d+:.*state=online/gm) ?? []).length >= replicas) break;
      if (performance.now() > deadline) throw new Error(`redis replicas not online after 15 s:\n${info}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (err) {
    await Promise.all([server, ...followers].map(stopChild));
    throw err;
  }
  return {
    port,
    replicas,
    pid: server.pid as number,
    version,
    load: async (script) => {
      const sha = await ask(port, `SCRIPT LOAD "${script.replace(/"/g, '\\"')}"`);
      if (!/^[0-9a-f]{40}$/.test(sha)) throw new Error(`SCRIPT LOAD failed: ${sha}`);
      return sha;
    },
    stop: async () => {
      await Promise.all([...followers, server].map(stopChild));
    },
  };
}
