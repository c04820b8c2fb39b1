/**
 * TLS between `dlock node` processes: with --tls-cert/--tls-key/--tls-ca a
 * node serves clients over TLS and its node links are mutual TLS (each
 * side presents a certificate the CA signed), with the cluster secret from
 * --cluster-secret-file proved inside; a write through a follower reaches
 * the leader that way. Views go to an observer with a certificate and the
 * secret; not to plain TCP, not to TLS without a certificate, not to the
 * clients' token.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/client/client.js';
import { viewOnce } from '../../src/observe.js';
import { run, type Running } from '../helpers/dlock-process.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { eventually } from '../helpers/line-client.js';

const hasOpenssl = spawnSync('sh', ['-c', 'command -v openssl']).status === 0;
const TOKEN = 'node-tls-token';
const SECRET = 'node-tls-cluster-secret-0123456789';

describe.skipIf(!hasEtcd || !hasOpenssl).each(['etcd', 'group'] as const)('dlock node over TLS (--replication %s)', (engine) => {
  const dir = mkdtempSync(join(tmpdir(), 'dlock-node-tls-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  let etcd: EtcdCluster;
  const nodes: Array<{ name: string; proc: Running; port: number; link: string }> = [];

  const secretFile = join(dir, 'cluster-secret');
  beforeAll(async () => {
    writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
    etcd = await EtcdCluster.start(1);
    for (const name of ['s1', 's2']) {
      const proc = run(['node', '--etcd', etcd.endpoints.join(','), '--name', name, '--cluster', `tls-${engine}`, '--auth-token', TOKEN, '--tls-cert', cert, '--tls-key', key, '--tls-ca', cert, '--cluster-secret-file', secretFile, '--replication', engine, ...(engine === 'etcd' ? ['--first-token', '1'] : [])]);
      await eventually(() => /^ready /m.test(proc.out()) || proc.child.exitCode !== null, `${name} ready`, 20_000);
      const m = /address=127\.0\.0\.1:(\d+) link=(\S+)/.exec(proc.out());
      if (m === null) throw new Error(`${name} did not start:\n${proc.out()}\n${proc.err()}`);
      nodes.push({ name, proc, port: Number(m[1]), link: m[2] as string });
    }
  }, 60_000);
  afterAll(async () => {
    for (const n of nodes) if (n.proc.child.exitCode === null) n.proc.child.kill('SIGKILL');
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a write through either node is forwarded over a mutual-TLS link and answered; views go to an observer with a certificate and the secret only', async () => {
    const ca = readFileSync(cert);
    const observer = { secret: SECRET, tls: { ca: ca.toString(), cert: ca.toString(), key: readFileSync(key, 'utf8') } };
    for (const n of nodes) {
      const c = await connect({ port: n.port, tls: { ca }, authToken: TOKEN });
      // On the group protocol s2 may still be joining: its write waits for it (or fails) until it is added.
      await eventually(async () => (await c.preempt(`tls-${n.name}`).catch(() => ({ ok: false }))).ok, `a write through ${n.name}`, 15_000, 100);
      await c.close();
    }
    // Both session locks end with their connections, once s1 has applied that.
    await eventually(async () => (await viewOnce(nodes[0]!.link, observer, 10, 5000)).locks.length === 0, 'the locks released, seen in a view over TLS', 5000, 50);
    expect((await viewOnce(nodes[0]!.link, observer, 10, 5000)).stats['name']).toBe('s1');
    // Plain TCP, TLS without a certificate, or the clients' token: no view.
    await expect(viewOnce(nodes[0]!.link, { secret: SECRET, tls: null }, 10, 3000)).rejects.toThrow();
    await expect(viewOnce(nodes[0]!.link, { secret: SECRET, tls: { ca: ca.toString() } }, 10, 3000)).rejects.toThrow();
    await expect(viewOnce(nodes[0]!.link, { ...observer, secret: TOKEN }, 10, 3000)).rejects.toThrow(/did not prove|closed/);
    for (const n of nodes) expect(n.proc.out()).not.toMatch(/cannot link to the leader/);
  });
});
