/**
 * dlock on a secured etcd (README "Securing etcd"), against real etcd
 * members (never a mock), with certificates made by openssl at test time:
 *
 * - etcd serving clients over TLS with --client-cert-auth: `dlock node`s
 *   given --etcd-cacert/--etcd-cert/--etcd-key join, forward and replicate
 *   writes, and keep their etcd leases (renewed over https with the client
 *   certificate); `dlock status` reads the cluster; a node without the
 *   client certificate exits at once with the reason.
 * - etcd with user auth, and a `dlock` user whose role has readwrite on
 *   /dlock/<cluster>/ only: nodes with --etcd-user and a password file
 *   work, status works with $DLOCK_ETCD_PASSWORD, a wrong password or a
 *   cluster outside the role's prefix is a clear error; the node's etcd
 *   client carries both the auth token and the require-leader metadata,
 *   and authenticates again when etcd has forgotten its token (etcd's
 *   --auth-token-ttl is 2 s here, so the nodes live through that too); the
 *   lease keepalive needs no token; snapshots and the compaction behind
 *   them work with the prefix-only role.
 * - The --etcd-* argument checks of every command, through the built CLI.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Etcd3 } from 'etcd3';
import { createState, snapshot } from '../../src/core/lock-table.js';
import { nodeEtcdClient } from '../../src/replication/etcd-client.js';
import { gatewayPost } from '../../src/replication/etcd-gateway.js';
import { LeaseKeeper } from '../../src/replication/etcd-lease.js';
import { compactBehind, loadSnapshot, saveSnapshot } from '../../src/replication/etcd-snapshot.js';
import type { EtcdAccess } from '../../src/replication/etcd-access.js';
import { hasOpenssl, makeTestCa, type TestCa } from '../helpers/certs.js';
import { dumpOnFailure, run, up, type Running } from '../helpers/dlock-process.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { ClientPool, eventually } from '../helpers/line-client.js';

interface Node {
  name: string;
  proc: Running;
  port: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The environment without a password for etcd (so a test that wants none gets none). */
function envWithout(): NodeJS.ProcessEnv {
  const e = { ...process.env };
  delete e['DLOCK_ETCD_PASSWORD'];
  return e;
}

/** Start `dlock node` with `flags`; resolves once it is ready (or throws with its output). */
async function startNode(nodes: Node[], name: string, flags: string[], env: NodeJS.ProcessEnv = envWithout()): Promise<Node> {
  // --node-ttl 2: a node whose renewals etcd does not confirm stops within 1.4 s (jeopardy), so a broken keepalive shows.
  const proc = run(['node', '--replication', 'etcd', ...flags, '--name', name, '--first-token', '1', '--node-ttl', '2'], undefined, env);
  const n = { name, proc, port: 0 };
  nodes.push(n);
  await eventually(() => /^ready /m.test(proc.out()) || proc.child.exitCode !== null, `${name}'s ready line`, 30_000);
  const m = /^ready node=\S+ .*address=127\.0\.0\.1:(\d+) /m.exec(proc.out());
  if (m === null) throw new Error(`dlock node ${name} did not get ready:\n${proc.out()}\n${proc.err()}`);
  n.port = Number(m[1]);
  return n;
}

/** A write through each node is answered, and seen on the other; neither node stopped for want of renewals. */
async function writesReplicate(pool: ClientPool, a: Node, b: Node, tag: string): Promise<void> {
  const ca = await pool.open(a.port);
  const cb = await pool.open(b.port);
  expect(await ca.ask(`preempt ${tag}-a ttl=60000`, 15_000)).toMatch(new RegExp(`^PreemptLock Success owner=${ca.id} token=\\d+$`));
  expect(await cb.ask(`preempt ${tag}-b ttl=60000`, 15_000)).toMatch(new RegExp(`^PreemptLock Success owner=${cb.id} token=\\d+$`));
  // Reads on the other node may lag its commit by a moment.
  await eventually(async () => (await cb.ask(`check ${tag}-a`)).startsWith(`CheckLock:Lock:${ca.id} `), `${tag}-a seen on ${b.name}`, 5000, 50);
  await eventually(async () => (await ca.ask(`check ${tag}-b`)).startsWith(`CheckLock:Lock:${cb.id} `), `${tag}-b seen on ${a.name}`, 5000, 50);
}

/** Both nodes kept their etcd leases past several TTLs (renewals confirmed over the gateway). */
function neverStopped(nodes: Node[]): void {
  for (const n of nodes) {
    expect(n.proc.child.exitCode).toBeNull();
    expect(n.proc.out()).not.toMatch(/rejoining|no etcd lease renewal confirmed/);
  }
}

/** A lease of `ttlS` granted through `client`, renewed by a LeaseKeeper through `access` for `forMs`: its TTL left then (0: expired). */
async function keptAlive(client: Etcd3, access: EtcdAccess, ttlS: number, forMs: number): Promise<{ ttl: number; failure: string | null }> {
  const lease = client.lease(ttlS, { autoKeepAlive: false });
  const id = await lease.grant();
  const keeper = new LeaseKeeper(access, id, ttlS, performance.now(), (why) => void why);
  await sleep(forMs);
  const failure = keeper.lastFailure();
  keeper.stop();
  const r = await client.leaseClient.leaseTimeToLive({ ID: id });
  return { ttl: Number(r.TTL), failure };
}

describe.skipIf(!hasEtcd || !hasOpenssl)('dlock on etcd over TLS with client certificates (--client-cert-auth)', () => {
  let certs: TestCa;
  let etcd: EtcdCluster;
  const nodes: Node[] = [];
  const pool = new ClientPool();
  dumpOnFailure(() => nodes);

  beforeAll(async () => {
    certs = makeTestCa();
    etcd = await EtcdCluster.start(1, '127.0.0.1', { tls: { ca: certs.ca, serverCert: certs.serverCert, serverKey: certs.serverKey, client: { cert: certs.clientCert, key: certs.clientKey } } });
  }, 60_000);
  afterAll(async () => {
    pool.closeAll();
    for (const n of nodes) if (n.proc.child.exitCode === null) n.proc.child.kill('SIGKILL');
    await etcd?.stop();
    certs?.remove();
  });

  it('two nodes join over https with the client certificate; writes through each are answered and replicated; status reads the cluster', async () => {
    expect(etcd.endpoints[0]).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const flags = [...etcd.cliFlags(), '--cluster', 'tls'];
    const a = await startNode(nodes, 't1', flags);
    const b = await startNode(nodes, 't2', flags);
    await writesReplicate(pool, a, b, 'tls');
    await eventually(
      async () => {
        const st = run(['status', ...flags], undefined, envWithout());
        expect(await st.exit).toBe(0);
        return /^t1 .* yes$/m.test(st.out()) && /^t2 .* yes$/m.test(st.out());
      },
      'both nodes live in dlock status',
      10_000,
      200,
    );
    await sleep(3000); // past a node TTL (2 s): renewals over https were confirmed all along
    neverStopped([a, b]);
  }, 90_000);

  it('a node without the client certificate exits at once, saying etcd wants one; so does status', async () => {
    const t0 = performance.now();
    const lone = run(['node', '--replication', 'etcd', '--etcd', etcd.endpoints.join(','), '--etcd-cacert', certs.ca, '--name', 'nocert', '--cluster', 'tls'], undefined, envWithout());
    const code = await lone.exit;
    expect(performance.now() - t0).toBeLessThan(20_000);
    expect(code).toBe(1);
    expect(lone.out()).not.toMatch(/^ready /m);
    expect(lone.err()).toMatch(/^dlock node: cannot register with etcd at https:\/\/127\.0\.0\.1:\d+: .*bad certificate.*\(etcd asks for a client certificate: give --etcd-cert and --etcd-key\)$/m);
    expect(lone.err()).not.toMatch(/DeprecationWarning/); // grpc's TLS ServerName set to an IP: muted (etcd-access.ts)
    const st = run(['status', '--etcd', etcd.endpoints.join(','), '--etcd-cacert', certs.ca, '--cluster', 'tls'], undefined, envWithout());
    expect(await st.exit).toBe(2);
    expect(st.err()).toMatch(/^dlock status: cannot read the cluster from etcd at https:\/\/127\.0\.0\.1:\d+: .*\(etcd asks for a client certificate/m);
  }, 30_000);

  it('the lease keepalive goes over https with the client certificate; without it, no renewal is confirmed and the reason is kept', async () => {
    const client = nodeEtcdClient(etcd.access);
    try {
      const kept = await keptAlive(client, etcd.access, 2, 3500);
      expect(kept.ttl).toBeGreaterThan(0);
      const noCert: EtcdAccess = { ...etcd.access, tls: { ca: etcd.access.tls?.ca ?? null, cert: null, key: null } };
      const lost = await keptAlive(client, noCert, 2, 3500);
      expect(lost.ttl).toBeLessThanOrEqual(0);
      expect(lost.failure).toMatch(/certificate|socket hang up|ECONNRESET/);
    } finally {
      client.close();
    }
  }, 30_000);
});

describe.skipIf(!hasEtcd)('dlock on etcd with user auth: a role limited to /dlock/<cluster>/', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dlock-etcd-auth-'));
  const PASSWORD = 'dlock-etcd-password-1';
  const passwordFile = join(dir, 'etcd-password');
  const wrongFile = join(dir, 'wrong-password');
  let etcd: EtcdCluster;
  const nodes: Node[] = [];
  const pool = new ClientPool();
  dumpOnFailure(() => nodes);
  const userFlags = (): string[] => [...etcd.cliFlags(), '--cluster', 'sec', '--etcd-user', 'dlock'];
  const dlockUser = (): EtcdAccess => etcd.accessAs({ user: 'dlock', password: PASSWORD });

  beforeAll(async () => {
    writeFileSync(passwordFile, `${PASSWORD}\n`);
    chmodSync(passwordFile, 0o600);
    writeFileSync(wrongFile, 'not-the-password\n');
    chmodSync(wrongFile, 0o600);
    etcd = await EtcdCluster.start(1, '127.0.0.1', { auth: { rootPassword: 'root-password-1', tokenTtlS: 2, users: [{ name: 'dlock', password: PASSWORD, prefix: '/dlock/sec/' }, { name: 'dlockup', password: PASSWORD, prefix: '/dlock/up/' }] } });
  }, 60_000);
  afterAll(async () => {
    pool.closeAll();
    for (const n of nodes) if (n.proc.child.exitCode === null) n.proc.child.kill('SIGKILL');
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('two nodes as the dlock user work (writes answered and replicated, leases kept); status works with $DLOCK_ETCD_PASSWORD', async () => {
    const a = await startNode(nodes, 'u1', [...userFlags(), '--etcd-password-file', passwordFile]);
    const b = await startNode(nodes, 'u2', [...userFlags(), '--etcd-password-file', passwordFile]);
    await writesReplicate(pool, a, b, 'auth');
    await eventually(
      async () => {
        const st = run(['status', ...userFlags()], undefined, { ...envWithout(), DLOCK_ETCD_PASSWORD: PASSWORD });
        expect(await st.exit).toBe(0);
        return /^u1 .* yes$/m.test(st.out()) && /^u2 .* yes$/m.test(st.out());
      },
      'both nodes live in dlock status',
      10_000,
      200,
    );
    await sleep(3000);
    neverStopped([a, b]);
  }, 90_000);

  it('dlock up --etcd as a user (every worker\'s node reaches etcd with it): a write on the elected node is answered and seen on every other', async () => {
    const { proc, ports } = await up(['--no-tui', '--quiet', ...etcd.cliFlags(), '--cluster', 'up', '--etcd-user', 'dlockup'], { ...envWithout(), DLOCK_ETCD_PASSWORD: PASSWORD });
    nodes.push({ name: 'up', proc, port: 0 });
    const clients = await Promise.all(Object.values(ports).map((port) => pool.open(port)));
    // Which node etcd's election made leader, from `dlock status` (as the same user); the others follow the log in etcd.
    let leadPort = 0;
    await eventually(async () => {
      const st = run(['status', ...etcd.cliFlags(), '--cluster', 'up', '--etcd-user', 'dlockup', '--json'], undefined, { ...envWithout(), DLOCK_ETCD_PASSWORD: PASSWORD });
      expect(await st.exit).toBe(0);
      const s = JSON.parse(st.out()) as { leader: string | null; nodes: Array<{ name: string; address: string }> };
      leadPort = Number(s.nodes.find((n) => n.name === s.leader)?.address.split(':')[1] ?? 0);
      return leadPort !== 0;
    }, 'an elected node in dlock status', 10_000, 200);
    const l = clients.find((c) => c.socket.remotePort === leadPort) as (typeof clients)[number];
    expect(await l.ask('preempt up-lock ttl=60000', 15_000)).toMatch(new RegExp(`^PreemptLock Success owner=${l.id} token=\\d+$`));
    for (const c of clients) await eventually(async () => (await c.ask('check up-lock')).startsWith(`CheckLock:Lock:${l.id} `), 'the lock seen on every node', 5000, 50);
    proc.child.kill('SIGTERM');
    expect(await proc.exit).toBe(0);
  }, 60_000);

  it('a wrong password, no user, or a cluster outside the role\'s prefix: a clear error, not a hang', async () => {
    const wrong = run(['node', '--replication', 'etcd', ...userFlags(), '--etcd-password-file', wrongFile, '--name', 'bad'], undefined, envWithout());
    expect(await wrong.exit).toBe(1);
    expect(wrong.err()).toMatch(/^dlock node: cannot register with etcd at http:\/\/127\.0\.0\.1:\d+ as etcd user dlock: .*authentication failed.*\(etcd refused user dlock with this password\)$/m);
    expect(wrong.err()).not.toContain('not-the-password');
    const st = run(['status', ...userFlags(), '--etcd-password-file', wrongFile], undefined, envWithout());
    expect(await st.exit).toBe(2);
    expect(st.err()).toMatch(/^dlock status: cannot read the cluster from etcd at .* as etcd user dlock: .*authentication failed/m);
    const anonymous = run(['status', ...etcd.cliFlags(), '--cluster', 'sec'], undefined, envWithout());
    expect(await anonymous.exit).toBe(2);
    expect(anonymous.err()).toMatch(/user name is empty.*\(etcd has auth enabled: give --etcd-user and its password\)$/m);
    const elsewhere = run(['node', '--replication', 'etcd', ...etcd.cliFlags(), '--cluster', 'other', '--etcd-user', 'dlock', '--etcd-password-file', passwordFile, '--name', 'x'], undefined, envWithout());
    expect(await elsewhere.exit).toBe(1);
    expect(elsewhere.err()).toMatch(/permission denied.*\(the etcd user's role needs readwrite on the cluster's prefix, \/dlock\/<cluster>\/\)$/m);
  }, 60_000);

  it('the node\'s etcd client sends the auth token and the require-leader metadata, and logs in again once etcd has forgotten the token', async () => {
    const client = nodeEtcdClient(dlockUser());
    try {
      await client.put('/dlock/sec/probe').value('1').exec();
      const auth = (client as unknown as { pool: { authenticator: { getMetadata: () => Promise<{ get: (k: string) => unknown[] }> } } }).pool.authenticator;
      const before = await auth.getMetadata();
      expect(before.get('hasleader')).toEqual(['true']);
      const token = before.get('token')[0];
      expect(typeof token === 'string' && token.length > 0).toBe(true);
      // Outside the role's prefix: refused (the token is the dlock user's, not root's).
      await expect(client.put('/elsewhere').value('1').exec()).rejects.toThrow(/permission denied/);
      // Idle past --auth-token-ttl (2 s): etcd has forgotten the token, answers
      // "invalid auth token", and the client logs in again and retries.
      await sleep(3500);
      expect(await client.get('/dlock/sec/probe').string()).toBe('1');
      const after = await auth.getMetadata();
      expect(after.get('hasleader')).toEqual(['true']);
      expect(after.get('token')[0]).not.toBe(token);
    } finally {
      client.close();
    }
  }, 60_000);

  it('the lease keepalive needs no token (etcd does not check auth on LeaseKeepAlive); a bogus one is ignored too', async () => {
    const client = nodeEtcdClient(dlockUser());
    try {
      const kept = await keptAlive(client, dlockUser(), 2, 3500);
      expect(kept.ttl).toBeGreaterThan(0);
      const id = await client.lease(5, { autoKeepAlive: false }).grant();
      const r = await gatewayPost(dlockUser(), etcd.endpoints[0] as string, '/v3/lease/keepalive', { ID: id }, 3000, { Authorization: 'bogus-token' });
      expect(r.status).toBe(200);
      expect(Number((r.body as { result?: { TTL?: string } }).result?.TTL)).toBeGreaterThan(0);
    } finally {
      client.close();
    }
  }, 30_000);

  it('snapshots, and the compaction of etcd\'s history behind them, work with the prefix-only role', async () => {
    const client = nodeEtcdClient(dlockUser());
    try {
      const ns = client.namespace('/dlock/sec/');
      const first = await ns.put('log/0000000000000001').value('old').exec();
      const second = await ns.put('log/0000000000000002').value('new').exec();
      const meta = await saveSnapshot(client, 'sec', snapshot(createState()), { seq: 2, revision: Number(second.header.revision), batch: 2 });
      expect(await compactBehind(client, 'sec', meta)).toBe(1);
      expect((await loadSnapshot(client, 'sec'))?.meta.seq).toBe(2);
      // etcd's history up to the snapshot's revision is compacted: a read at an older revision is refused.
      await expect(ns.get('log/0000000000000001').revision(first.header.revision).string()).rejects.toThrow(/compacted/);
    } finally {
      client.close();
    }
  }, 30_000);
});

describe('the --etcd-* flags, checked alike on every command that talks to etcd', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dlock-etcd-flags-'));
  const notPem = join(dir, 'not.pem');
  writeFileSync(notPem, 'hello\n');
  const pw = join(dir, 'pw');
  writeFileSync(pw, 'secret-pw\n');
  chmodSync(pw, 0o600);
  let certs: TestCa | null = null;
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    certs?.remove();
  });
  const HTTPS = 'https://127.0.0.1:1';

  async function usageError(args: string[], message: RegExp, env: NodeJS.ProcessEnv = envWithout()): Promise<void> {
    const p = run(args, undefined, env);
    expect(await p.exit, args.join(' ')).toBe(2);
    expect(p.err(), args.join(' ')).toMatch(message);
    expect(p.err()).toMatch(/Run 'dlock \S+ --help' for usage\./);
  }

  it('refuses a certificate without its key, a missing or non-PEM file, TLS flags with http://, and mixed schemes', async () => {
    await usageError(['node', '--etcd', HTTPS, '--name', 'n', '--etcd-cert', notPem], /^dlock: --etcd-cert and --etcd-key go together$/m);
    await usageError(['node', '--etcd', HTTPS, '--name', 'n', '--etcd-cacert', join(dir, 'missing.pem')], /^dlock: --etcd-cacert \S+missing\.pem: no such file$/m);
    await usageError(['status', '--etcd', HTTPS, '--etcd-cacert', notPem], /^dlock: --etcd-cacert \S+not\.pem: not a PEM file with a certificate$/m);
    await usageError(['status', '--etcd', 'http://127.0.0.1:1', '--etcd-cacert', notPem], /^dlock: --etcd-cacert: etcd over TLS has https:\/\/ URLs in --etcd$/m);
    await usageError(['status', '--etcd', `http://127.0.0.1:1,${HTTPS}`], /^dlock: --etcd: give every URL as http:\/\/ or every one as https:\/\/$/m);
    await usageError(['up', '--no-tui', '--etcd-cacert', notPem], /^dlock: --etcd-cacert goes with --etcd$/m);
  });

  it('refuses --etcd-user NAME:PASSWORD on every command (a flag shows in ps), and a user without a password', async () => {
    const refused = /^dlock: --etcd-user takes a user name only, not NAME:PASSWORD: a password in a flag shows in `ps` to every user of this host\. Put it in a file \(--etcd-password-file FILE, mode 600\) or in \$DLOCK_ETCD_PASSWORD$/m;
    await usageError(['node', '--etcd', 'http://127.0.0.1:1', '--name', 'n', '--etcd-user', 'dlock:secret'], refused);
    await usageError(['status', '--etcd', 'http://127.0.0.1:1', '--etcd-user', 'dlock:secret'], refused);
    await usageError(['tui', '--etcd', 'http://127.0.0.1:1', '--etcd-user', 'dlock:secret'], refused);
    await usageError(['up', '--no-tui', '--port', '0', '--etcd', 'http://127.0.0.1:1', '--etcd-user', 'dlock:secret'], refused);
    await usageError(['status', '--etcd', 'http://127.0.0.1:1', '--etcd-user', 'dlock'], /^dlock: --etcd-user dlock needs its password: --etcd-password-file FILE, or \$DLOCK_ETCD_PASSWORD$/m);
    await usageError(['status', '--etcd', 'http://127.0.0.1:1', '--etcd-password-file', pw], /^dlock: --etcd-password-file goes with --etcd-user$/m);
    await usageError(['status', '--etcd', 'http://127.0.0.1:1', '--etcd-user', 'dlock', '--etcd-password-file', join(dir, 'nope')], /^dlock: --etcd-password-file \S+nope: no such file$/m);
  });

  it.skipIf(!hasOpenssl)('refuses a client certificate whose key is another one\'s', async () => {
    certs = makeTestCa();
    await usageError(['status', '--etcd', HTTPS, '--etcd-cacert', certs.ca, '--etcd-cert', certs.clientCert, '--etcd-key', certs.serverKey], /^dlock: --etcd-cert \S+ and --etcd-key \S+: the key is not the certificate's$/m);
  });
});
