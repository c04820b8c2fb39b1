/**
 * redis-server for side-by-side runs: started by the bench on a free port,
 * persistence off, bound to loopback; null when it is not installed (the
 * bench then says so and runs dlock alone).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect, createServer, type AddressInfo } from 'node:net';

export interface Redis {
  port: number;
  /** redis-server's process id (its CPU time is measured beside dlock's). */
  pid: number;
  version: string;
  /** SHA1 of a loaded script, for EVALSHA. */
  load(script: string): Promise<string>;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Send inline commands, return the first line of each reply (enough for PING, SCRIPT LOAD, INFO lines we read). */
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
      // bulk string: the value is on the next line
      if (first.startsWith('$') && first !== '$-1') {
        const next = buf.indexOf('\r\n', nl + 2);
        if (next === -1) return;
        s.destroy();
        resolve(buf.slice(nl + 2, next));
        return;
      }
      s.destroy();
      resolve(first);
    });
    s.on('error', reject);
    s.write(`${command}\r\n`);
  });
}

export async function startRedis(): Promise<Redis | null> {
  const which = spawnSync('sh', ['-c', 'command -v redis-server']);
  if (which.status !== 0) return null;
  const version = /v=(\S+)/.exec(spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout)?.[1] ?? '?';
  const port = await freePort();
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes', '--loglevel', 'warning'], { stdio: 'ignore' });
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      if ((await ask(port, 'PING')) === '+PONG') break;
    } catch (err) {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`redis-server did not answer on port ${port}: ${(err as Error).message}`);
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    pid: child.pid as number,
    version,
    load: async (script) => {
      const sha = await ask(port, `SCRIPT LOAD "${script.replace(/"/g, '\\"')}"`);
      if (!/^[0-9a-f]{40}$/.test(sha)) throw new Error(`SCRIPT LOAD failed: ${sha}`);
      return sha;
    },
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) {
          resolve();
          return;
        }
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
