/**
 * The original walkthrough (shared/seed report, section 2), with TLS on
 * every hop: three `dlock node` processes on an etcd that serves clients
 * over TLS with --client-cert-auth and user auth (dlock's user limited to
 * its cluster's prefix), node links over mutual TLS (--tls-ca) with the
 * cluster secret from a file, clients over TLS with the auth token from a
 * file. The same greetings, replies and tokens as in process.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Client } from '../../src/client/client.js';
import { hasOpenssl, makeTestCa, type TestCa } from '../helpers/certs.js';
import { dumpOnFailure, groupWhole, startNode, type ReadyNode } from '../helpers/dlock-process.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { eventually } from '../helpers/line-client.js';

const TOKEN = 'walkthrough-clients-token';
const PASSWORD = 'walkthrough-etcd-password';

/** A node of this test: a started `dlock node` and its name. */
type Node = ReadyNode & { name: string };

describe.skipIf(!hasEtcd || !hasOpenssl)('the walkthrough with TLS on every hop', () => {
  let certs: TestCa;
  let etcd: EtcdCluster;
  const nodes: Node[] = [];
  const clients: Client[] = [];
  dumpOnFailure(() => nodes);

  beforeAll(async () => {
    certs = makeTestCa();
    etcd = await EtcdCluster.start(1, '127.0.0.1', {
      tls: { ca: certs.ca, serverCert: certs.serverCert, serverKey: certs.serverKey, client: { cert: certs.clientCert, key: certs.clientKey } },
      auth: { rootPassword: 'root-password', users: [{ name: 'dlock', password: PASSWORD, prefix: '/dlock/secure/' }] },
    });
    const file = (name: string, text: string): string => {
      const p = join(certs.dir, name);
      writeFileSync(p, `${text}\n`, { mode: 0o600 });
      return p;
    };
    const flags = [
      ...etcd.cliFlags(), '--etcd-user', 'dlock', '--etcd-password-file', file('etcd-password', PASSWORD), '--cluster', 'secure',
      '--auth-token-file', file('token', TOKEN), '--cluster-secret-file', file('cluster-secret', 'walkthrough-cluster-secret-0123456789'),
      // One certificate for every node here (good for server and client auth); --tls-ca signs it.
      '--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-ca', certs.ca,
    ];
    for (const name of ['leader', 'follower-1', 'follower-2']) nodes.push({ name, ...(await startNode([...flags, '--name', name, '--node-ttl', '4'])) });
    // dlock node's default, the group protocol: each node takes writes once it is a member.
    await groupWhole(nodes);
  }, 120_000);
  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    for (const n of nodes) if (n.proc.child.exitCode === null) n.proc.child.kill('SIGKILL');
    await etcd?.stop();
    certs?.remove();
  });

  it('reproduces every step with the protocol replies', async () => {
    const ca = readFileSync(certs.ca);
    const open = async (n: Node): Promise<Client> => {
      const c = await connect({ port: n.port, tls: { ca }, authToken: TOKEN });
      clients.push(c);
      return c;
    };
    const [leader, f1, f2] = nodes as [Node, Node, Node];
    const a = await open(leader);
    expect(a.id).toBe(10001);
    expect(await a.raw('preempt lock01')).toBe('PreemptLock Success owner=10001 token=1');
    const b = await open(f1);
    expect(b.id).toBe(20001);
    // A read on another node may trail the write by the time its replica applies it [LP-11].
    await eventually(async () => (await b.raw('check lock01')) === 'CheckLock:Lock:10001 token=1', 'lock01 on follower-1');
    expect(await b.raw('preempt lock01')).toBe('PreemptLock Failed owner=10001');
    expect(await b.raw('preempt lock02')).toBe('PreemptLock Success owner=20001 token=2');
    const c2 = await open(f2);
    expect(c2.id).toBe(30001);
    expect(await c2.raw('preempt lock02')).toBe('PreemptLock Failed owner=20001');
    expect(await b.raw('release lock02')).toBe('ReleaseLock Success');
    expect(await c2.raw('preempt lock02')).toBe('PreemptLock Success owner=30001 token=3');
    await eventually(async () => (await a.raw('check lock02')) === 'CheckLock:Lock:30001 token=3', 'lock02 on the leader');
    // Writes through every node for twice the node TTL: the nodes' etcd
    // leases are renewed all along (over gRPC: etcd's HTTP gateway refuses
    // client certificates when user auth is on), so no election flaps and
    // no node stops.
    const t0 = performance.now();
    for (let i = 0; performance.now() - t0 < 2 * 4000; i++) {
      for (const [k, c] of [a, b, c2].entries()) {
        expect(await c.raw(`preempt tick-${k}`)).toMatch(/^PreemptLock Success/);
        expect(await c.raw(`release tick-${k}`)).toBe('ReleaseLock Success');
      }
    }
    for (const n of nodes) expect(n.proc.out()).not.toMatch(/no longer the leader|stopping:|rejoining/);
    // One primary all along: the first.
    expect(nodes.map((n) => n.proc.out().match(/now the primary/g)?.length ?? 0)).toEqual([1, 0, 0]);
    // Every write through a follower crossed a mutual-TLS link; none was refused.
    for (const n of nodes) expect(n.proc.out()).not.toMatch(/node link from .* refused|cannot link|no link to/);
    expect(f1.proc.out()).toMatch(/linked to leader\.\d+ at /);
  }, 60_000);
});
