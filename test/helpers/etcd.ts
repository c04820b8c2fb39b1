/**
 * Real etcd members for tests (issue 13: no mock etcd): Debian's
 * etcd-server, started on free loopback ports with data directories in a
 * temp dir, one member or a cluster of several. Members can be killed
 * (SIGKILL) and started again on the same ports and data, to lose and
 * regain quorum.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from './line-client.js';

export const hasEtcd = spawnSync('sh', ['-c', 'command -v etcd']).status === 0;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

interface Member {
  name: string;
  host: string;
  /** The network namespace it runs in (helpers/netns.ts); undefined: this one. */
  netns: string | undefined;
  clientPort: number;
  peerPort: number;
  dir: string;
  proc: ChildProcess | null;
  log: string;
}

export class EtcdCluster {
  private constructor(
    private readonly members: Member[],
    private readonly root: string,
  ) {}

  /** Client URLs of every member, for the etcd3 client's `hosts`. */
  get endpoints(): string[] {
    return this.members.map((m) => `http://${m.host}:${m.clientPort}`);
  }

  /**
   * `host`: the address members listen on (a test bridge's, for nodes in
   * network namespaces), or one per member with the namespace it runs in
   * (an etcd member on each test host). Ports are picked free here, which
   * holds for a namespace of its own too.
   */
  static async start(size = 1, host: string | Array<{ addr: string; ns: string }> = '127.0.0.1'): Promise<EtcdCluster> {
    // A port found free here can be taken by another process before etcd
    // binds it (tests and benches start clusters side by side): then start
    // again on other ports.
    for (let attempt = 1; ; attempt++) {
      try {
        return await EtcdCluster.startOnce(size, host);
      } catch (err) {
        if (attempt >= 3 || !/address already in use/.test((err as Error).message)) throw err;
      }
    }
  }

  private static async startOnce(size: number, host: string | Array<{ addr: string; ns: string }>): Promise<EtcdCluster> {
    const root = mkdtempSync(join(tmpdir(), 'dlock-etcd-'));
    const members: Member[] = [];
    for (let i = 0; i < size; i++) {
      const at = typeof host === 'string' ? { addr: host, ns: undefined } : (host[i] as { addr: string; ns: string });
      members.push({ name: `m${i}`, host: at.addr, netns: at.ns, clientPort: await freePort(), peerPort: await freePort(), dir: join(root, `m${i}`), proc: null, log: '' });
    }
    const c = new EtcdCluster(members, root);
    for (const m of members) c.spawn(m, 'new');
    try {
      await Promise.all(members.map((m) => c.healthy(m)));
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  private spawn(m: Member, state: 'new' | 'existing'): void {
    const peers = this.members.map((x) => `${x.name}=http://${x.host}:${x.peerPort}`).join(',');
    const args = [
      '--name', m.name,
      '--data-dir', m.dir,
      '--listen-client-urls', `http://${m.host}:${m.clientPort}`,
      '--advertise-client-urls', `http://${m.host}:${m.clientPort}`,
      '--listen-peer-urls', `http://${m.host}:${m.peerPort}`,
      '--initial-advertise-peer-urls', `http://${m.host}:${m.peerPort}`,
      '--initial-cluster', peers,
      '--initial-cluster-state', state,
      '--initial-cluster-token', `dlock-test-${process.pid}`,
      // etcd's defaults (100 ms, 1 s): shorter ones made elections flap
      // when the tests load this 2-core machine, and every node then
      // fail-stopped for want of a leader to renew its lease.
      '--heartbeat-interval', '100',
      '--election-timeout', '1000',
      // A member that was cut off does not depose the leader when it comes
      // back (Raft's pre-vote; etcd 3.4 has it off by default): the README
      // asks the same of an operator's etcd.
      '--pre-vote',
    ];
    const proc = m.netns === undefined ? spawn('etcd', args, { stdio: ['ignore', 'ignore', 'pipe'] }) : spawn('ip', ['netns', 'exec', m.netns, 'etcd', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    // If this process ends without stop() (a run that threw), its etcd members go with it.
    const reap = (): void => {
      proc.kill('SIGKILL');
    };
    process.once('exit', reap);
    proc.once('exit', () => process.off('exit', reap));
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => {
      m.log = (m.log + d).slice(-20_000);
    });
    m.proc = proc;
  }

  /** Wait until the member answers /health with true. */
  private async healthy(m: Member, timeoutMs = 15_000): Promise<void> {
    try {
      await eventually(
        async () => {
          if (m.proc?.exitCode !== null) throw new Error(`etcd ${m.name} exited: ${m.log.slice(-2000)}`);
          try {
            const r = await fetch(`http://${m.host}:${m.clientPort}/health`);
            return r.ok && ((await r.json()) as { health?: string }).health === 'true';
          } catch (err) {
            if ((err as Error).name !== 'TypeError') throw err; // not listening yet: fetch failed
            return false;
          }
        },
        `etcd ${m.name} healthy`,
        timeoutMs,
        50,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${m.log.slice(-2000)}`);
    }
  }

  /** Which member is etcd's Raft leader now (asked of every member that answers), or -1. */
  async leader(): Promise<number> {
    const ids: string[] = [];
    let leader = '';
    for (const m of this.members) {
      if (m.proc === null) {
        ids.push('');
        continue;
      }
      const r = await fetch(`http://${m.host}:${m.clientPort}/v3/maintenance/status`, { method: 'POST', body: '{}' });
      const st = (await r.json()) as { header?: { member_id?: string }; leader?: string };
      ids.push(st.header?.member_id ?? '');
      if (st.leader !== undefined && st.leader !== '0') leader = st.leader;
    }
    return leader === '' ? -1 : ids.indexOf(leader);
  }

  /** SIGKILL member `i`, as a crash would. */
  async kill(i: number): Promise<void> {
    const m = this.members[i] as Member;
    const p = m.proc;
    if (p === null || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGKILL');
    });
    m.proc = null;
  }

  /** Start member `i` again with its data, and wait until the cluster says it is healthy. */
  async restart(i: number): Promise<void> {
    const m = this.members[i] as Member;
    this.spawn(m, 'existing');
    await this.healthy(m);
  }

  async stop(): Promise<void> {
    for (let i = 0; i < this.members.length; i++) await this.kill(i);
    rmSync(this.root, { recursive: true, force: true });
  }
}
