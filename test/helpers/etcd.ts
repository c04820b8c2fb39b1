/**
 * Real etcd members for tests (no mock etcd): Debian's
 * etcd-server, started on free loopback ports with data directories in a
 * temp dir, one member or a cluster of several. Members can be killed
 * (SIGKILL) and started again on the same ports and data, to lose and
 * regain quorum.
 *
 * Secured etcd (start's `security`): clients over TLS (https:// client
 * URLs; with `client`, etcd --client-cert-auth requires a certificate the
 * CA signed), and etcd's user auth (a root user, users each with a role
 * limited to one prefix, then auth enabled). Peers stay plain http.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3, Range } from 'etcd3';
import { etcd3Options, plainEtcd, type EtcdAccess } from '../../src/replication/etcd-access.js';
import { eventually } from './line-client.js';

export const hasEtcd = spawnSync('sh', ['-c', 'command -v etcd']).status === 0;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

/** PEM files for an etcd serving clients over TLS. */
export interface EtcdTlsFiles {
  /** The CA that signed etcd's certificate (and, with `client`, the clients' ones). */
  ca: string;
  serverCert: string;
  serverKey: string;
  /** Require client certificates (--client-cert-auth --trusted-ca-file ca); this one is the helper's own, and `access`'s. */
  client?: { cert: string; key: string };
}

/** etcd's user auth, set up once the members are healthy. */
export interface EtcdAuthSetup {
  rootPassword: string;
  /** etcd's --auth-token-ttl, s: a token not used for this long is forgotten (etcd's default: 300). */
  tokenTtlS?: number;
  /** Each user gets a role of its own name with readwrite on `prefix` only. */
  users?: Array<{ name: string; password: string; prefix: string }>;
}

export interface EtcdSecurity {
  tls?: EtcdTlsFiles;
  auth?: EtcdAuthSetup;
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
    private readonly security: EtcdSecurity = {},
  ) {}

  /** Client URLs of every member, for the etcd3 client's `hosts` (https:// with TLS). */
  get endpoints(): string[] {
    return this.members.map((m) => this.urlOf(m));
  }

  private urlOf(m: Member): string {
    return `${this.security.tls === undefined ? 'http' : 'https'}://${m.host}:${m.clientPort}`;
  }

  /** How to reach these members with full rights: TLS with the helper's client certificate, and the root user with auth. */
  get access(): EtcdAccess {
    return this.security.auth === undefined ? this.accessAs(null) : this.accessAs({ user: 'root', password: this.security.auth.rootPassword });
  }

  /** How to reach these members as `auth` (null: no user), with the helper's TLS settings. */
  accessAs(auth: { user: string; password: string } | null): EtcdAccess {
    const tls = this.security.tls;
    if (tls === undefined) return { ...plainEtcd(this.endpoints), auth };
    const read = (p: string): string => readFileSync(p, 'utf8');
    return { endpoints: this.endpoints, tls: { ca: read(tls.ca), cert: tls.client === undefined ? null : read(tls.client.cert), key: tls.client === undefined ? null : read(tls.client.key) }, auth };
  }

  /** `dlock` flags for these members: --etcd and, with TLS, --etcd-cacert (and the client certificate's flags). */
  cliFlags(): string[] {
    const tls = this.security.tls;
    const flags = ['--etcd', this.endpoints.join(',')];
    if (tls !== undefined) flags.push('--etcd-cacert', tls.ca);
    if (tls?.client !== undefined) flags.push('--etcd-cert', tls.client.cert, '--etcd-key', tls.client.key);
    return flags;
  }

  /**
   * `host`: the address members listen on (a test bridge's, for nodes in
   * network namespaces), or one per member with the namespace it runs in
   * (an etcd member on each test host). Ports are picked free here, which
   * holds for a namespace of its own too.
   */
  static async start(size = 1, host: string | Array<{ addr: string; ns: string }> = '127.0.0.1', security: EtcdSecurity = {}): Promise<EtcdCluster> {
    // A port found free here can be taken by another process before etcd
    // binds it (tests and benches start clusters side by side): then start
    // again on other ports.
    for (let attempt = 1; ; attempt++) {
      try {
        return await EtcdCluster.startOnce(size, host, security);
      } catch (err) {
        if (attempt >= 3 || !/address already in use/.test((err as Error).message)) throw err;
      }
    }
  }

  private static async startOnce(size: number, host: string | Array<{ addr: string; ns: string }>, security: EtcdSecurity): Promise<EtcdCluster> {
    const root = mkdtempSync(join(tmpdir(), 'dlock-etcd-'));
    const members: Member[] = [];
    for (let i = 0; i < size; i++) {
      const at = typeof host === 'string' ? { addr: host, ns: undefined } : (host[i] as { addr: string; ns: string });
      members.push({ name: `m${i}`, host: at.addr, netns: at.ns, clientPort: await freePort(), peerPort: await freePort(), dir: join(root, `m${i}`), proc: null, log: '' });
    }
    const c = new EtcdCluster(members, root, security);
    for (const m of members) c.spawn(m, 'new');
    try {
      await Promise.all(members.map((m) => c.healthy(m)));
      if (security.auth !== undefined) await c.enableAuth(security.auth);
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  /** Users, roles, then auth on (the root user with the root role, as `etcdctl auth enable` requires). */
  private async enableAuth(auth: EtcdAuthSetup): Promise<void> {
    const client = new Etcd3(etcd3Options(this.accessAs(null)));
    try {
      await client.user('root').create(auth.rootPassword);
      await client.role('root').create();
      await client.user('root').addRole('root');
      for (const u of auth.users ?? []) {
        await client.role(u.name).create();
        await client.role(u.name).grant({ permission: 'Readwrite', range: Range.prefix(u.prefix) });
        await client.user(u.name).create(u.password);
        await client.user(u.name).addRole(u.name);
      }
      await client.auth.authEnable({});
    } finally {
      client.close();
    }
  }

  /** GET or POST (with `body`) `path` on member `m`'s client URL; with TLS, with the CA and the helper's client certificate. */
  private async call(m: Member, path: string, body?: string): Promise<{ ok: boolean; json: unknown }> {
    const tls = this.security.tls;
    if (tls === undefined) {
      const r = await fetch(`${this.urlOf(m)}${path}`, body === undefined ? {} : { method: 'POST', body });
      return { ok: r.ok, json: await r.json() };
    }
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        `${this.urlOf(m)}${path}`,
        { method: body === undefined ? 'GET' : 'POST', ca: readFileSync(tls.ca), ...(tls.client === undefined ? {} : { cert: readFileSync(tls.client.cert), key: readFileSync(tls.client.key) }), signal: AbortSignal.timeout(5000) },
        (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (d: string) => (text += d));
          res.on('error', reject);
          res.on('end', () => {
            try {
              resolve({ ok: (res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300, json: JSON.parse(text) });
            } catch (err) {
              reject(err as Error);
            }
          });
        },
      );
      req.on('error', (err: Error) => reject(Object.assign(new TypeError(`fetch failed: ${err.message}`), { cause: err })));
      req.end(body);
    });
  }

  private spawn(m: Member, state: 'new' | 'existing'): void {
    const peers = this.members.map((x) => `${x.name}=http://${x.host}:${x.peerPort}`).join(',');
    const args = [
      '--name', m.name,
      '--data-dir', m.dir,
      '--listen-client-urls', this.urlOf(m),
      '--advertise-client-urls', this.urlOf(m),
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
    const tls = this.security.tls;
    if (tls !== undefined) {
      args.push('--cert-file', tls.serverCert, '--key-file', tls.serverKey);
      if (tls.client !== undefined) args.push('--client-cert-auth', '--trusted-ca-file', tls.ca);
    }
    if (this.security.auth?.tokenTtlS !== undefined) args.push('--auth-token-ttl', String(this.security.auth.tokenTtlS));
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
            const r = await this.call(m, '/health');
            return r.ok && (r.json as { health?: string }).health === 'true';
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
      const r = await this.call(m, '/v3/maintenance/status', '{}');
      const st = r.json as { header?: { member_id?: string }; leader?: string };
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

  /** Freeze member `i` (SIGSTOP; resume() continues it): it answers nothing, its connections stay open. */
  pause(i: number): void {
    const p = (this.members[i] as Member).proc;
    if (p === null || p.exitCode !== null || !p.kill('SIGSTOP')) throw new Error(`etcd member ${i} is not running`);
  }

  resume(i: number): void {
    const p = (this.members[i] as Member).proc;
    if (p === null || p.exitCode !== null || !p.kill('SIGCONT')) throw new Error(`etcd member ${i} is not running`);
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
