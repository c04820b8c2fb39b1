/**
 * TLS between `dlock node` processes (issue 13: TLS plus the auth token
 * between nodes): with --tls-cert/--tls-key a node serves clients over TLS
 * and its node links are TLS on the same certificate, so a write through a
 * follower reaches the leader over TLS; views are served over TLS to an
 * observer that trusts the certificate, and not to a plain one.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../src/client/client.js';
import { viewOnce } from '../src/observe.js';
import { run, type Running } from './helpers/dlock-process.js';
import { EtcdCluster, hasEtcd } from './helpers/etcd.js';
import { eventually } from './helpers/line-client.js';

const hasOpenssl = spawnSync('sh', ['-c', 'command -v openssl']).status === 0;
const TOKEN = 'node-tls-token';

describe.skipIf(!hasEtcd || !hasOpenssl)('dlock node over TLS', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dlock-node-tls-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  let etcd: EtcdCluster;
  const nodes: Array<{ name: string; proc: Running; port: number; link: string }> = [];

  beforeAll(async () => {
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
    etcd = await EtcdCluster.start(1);
    for (const name of ['s1', 's2']) {
      const proc = run(['node', '--etcd', etcd.endpoints.join(','), '--name', name, '--cluster', 'tls', '--auth-token', TOKEN, '--tls-cert', cert, '--tls-key', key, '--first-token', '1']);
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

  it('a write through either node is forwarded over a TLS link and answered; views go to a TLS observer only', async () => {
    const ca = readFileSync(cert);
    for (const n of nodes) {
      const c = await connect({ port: n.port, tls: { ca }, authToken: TOKEN });
      expect((await c.preempt(`tls-${n.name}`)).ok).toBe(true);
      await c.close();
    }
    // Both session locks end with their connections, once s1 has applied that.
    await eventually(async () => (await viewOnce(nodes[0]!.link, TOKEN, 10, 5000, ca.toString())).locks.length === 0, 'the locks released, seen in a view over TLS', 5000, 50);
    expect((await viewOnce(nodes[0]!.link, TOKEN, 10, 5000, ca.toString())).stats['name']).toBe('s1');
    await expect(viewOnce(nodes[0]!.link, TOKEN, 10, 3000)).rejects.toThrow(/closed before a view|no view/);
    for (const n of nodes) expect(n.proc.out()).not.toMatch(/cannot link to the leader/);
  });
});
