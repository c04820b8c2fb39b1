/**
 * Stopping `dlock node` (SIGTERM), on both engines, as an operator does it:
 *  - with an idle client that keeps its side open (as `nc` does), the node
 *    answers what is owed, closes idle connections at once and exits 0 with
 *    no drain deadline waited out and no reply said to be owed [LP-2];
 *  - with etcd stopped (SIGSTOP), the goodbye to etcd (unused client ids,
 *    the live key, the election key) is given up after a bound, each thing
 *    not done is said, and the node exits 0 within seconds instead of
 *    hanging on etcd;
 *  - on the group protocol, a secondary takes itself out of the
 *    configuration before it exits, so no write waits for its lease.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Etcd3 } from 'etcd3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dumpOnFailure, groupWhole, startNode, type ReadyNode } from '../helpers/dlock-process.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { LineClient } from '../helpers/line-client.js';

/** A client that connects and sends nothing, and keeps its side open after the node's FIN; resolves `gone` at that FIN. */
async function idleClient(port: number): Promise<{ gone: Promise<void>; destroy: () => void }> {
  const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  s.on('data', () => undefined);
  const gone = new Promise<void>((resolve) => s.on('end', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('error', reject);
  });
  return { gone, destroy: () => s.destroy() };
}

describe.skipIf(!hasEtcd).each(['etcd', 'group'] as const)('SIGTERM of dlock node --replication %s', (engine) => {
  let etcd: EtcdCluster;
  const nodes: Array<ReadyNode & { name: string }> = [];
  dumpOnFailure(() => nodes);
  const start = async (name: string, cluster = `stop-${engine}`): Promise<ReadyNode & { name: string }> => {
    const n = { name, ...(await startNode(['--etcd', etcd.endpoints.join(','), '--name', name, '--cluster', cluster, '--replication', engine, '--node-ttl', '2'], process.env, 40_000)) };
    nodes.push(n);
    return n;
  };
  beforeAll(async () => {
    etcd = await EtcdCluster.start(1);
  }, 60_000);
  afterAll(async () => {
    etcd?.resume(0);
    for (const n of nodes) if (n.proc.child.exitCode === null) n.proc.child.kill('SIGKILL');
    await etcd?.stop();
  });

  it('closes an idle connection at once and exits 0, with nothing said to be owed', async () => {
    const n = await start('st1');
    const idle = await idleClient(n.port);
    const t0 = performance.now();
    n.proc.child.kill('SIGTERM');
    expect(await n.proc.exit).toBe(0);
    const ms = performance.now() - t0;
    process.stdout.write(`${engine}: SIGTERM with an idle client: exited after ${Math.round(ms)} ms\n`);
    await idle.gone;
    idle.destroy();
    expect(n.proc.out()).not.toMatch(/owed/);
    expect(ms).toBeLessThan(4000); // the drain deadline alone was 5 s
  }, 60_000);

  it.skipIf(engine === 'etcd')('a secondary is out of the configuration by the time it exits, so no write waits for its lease', async () => {
    const cluster = 'stop-leave';
    const a = await start('la', cluster);
    const b = await start('lb', cluster);
    await groupWhole([a, b]);
    const member = /member=(\S+)/.exec(b.proc.out())?.[1];
    expect(member).toMatch(/^lb\./);
    const c = await LineClient.open(a.port);
    b.proc.child.kill('SIGTERM');
    expect(await b.proc.exit).toBe(0);
    // Read at once: the primary alone would have taken it out only once its lease from it lapsed (1.5 s).
    const client = new Etcd3({ hosts: etcd.endpoints });
    try {
      const config = JSON.parse((await client.get(`/dlock/${cluster}/config`).string()) ?? 'null') as { primary: string; secondaries: string[] };
      expect(config.secondaries).not.toContain(member);
    } finally {
      client.close();
    }
    expect(b.proc.out()).toMatch(/left: configuration \d+ without this node/);
    const t0 = performance.now();
    expect(await c.ask('preempt after-leave')).toMatch(/^PreemptLock Success/);
    expect(performance.now() - t0).toBeLessThan(1000);
    c.close();
  }, 60_000);

  it.skipIf(engine === 'etcd')('with --data-dir a secondary stays in the configuration as it stops, to take its place back on its directory', async () => {
    const cluster = 'stop-durable';
    const dirs = mkdtempSync(join(tmpdir(), 'dlock-stop-durable-'));
    try {
      const withDir = async (name: string): Promise<ReadyNode & { name: string }> => {
        const n = { name, ...(await startNode(['--etcd', etcd.endpoints.join(','), '--name', name, '--cluster', cluster, '--replication', 'group', '--node-ttl', '2', '--data-dir', join(dirs, name)], process.env, 40_000)) };
        nodes.push(n);
        return n;
      };
      const a = await withDir('da');
      const b = await withDir('db');
      await groupWhole([a, b]);
      const member = /member=(\S+)/.exec(b.proc.out())?.[1];
      b.proc.child.kill('SIGTERM');
      expect(await b.proc.exit).toBe(0);
      expect(b.proc.out()).not.toMatch(/left: configuration/);
      const client = new Etcd3({ hosts: etcd.endpoints });
      try {
        const config = JSON.parse((await client.get(`/dlock/${cluster}/config`).string()) ?? 'null') as { secondaries: string[] };
        expect(config.secondaries).toContain(member);
      } finally {
        client.close();
      }
      a.proc.child.kill('SIGTERM');
      expect(await a.proc.exit).toBe(0);
    } finally {
      rmSync(dirs, { recursive: true, force: true });
    }
  }, 60_000);

  it('with etcd stopped, says what it could not do and exits 0 within seconds', async () => {
    const n = await start('st2');
    etcd.pause(0);
    try {
      const t0 = performance.now();
      n.proc.child.kill('SIGTERM');
      expect(await n.proc.exit).toBe(0);
      const ms = performance.now() - t0;
      process.stdout.write(`${engine}: SIGTERM with etcd stopped: exited after ${Math.round(ms)} ms\n`);
      const out = n.proc.out();
      expect(out).toMatch(/not done: leaving the cluster: etcd did not answer within \d+ ms; this node's live key ends with its lease/);
      expect(out).toMatch(/not done: handing back unused client ids: etcd did not answer/);
      expect(ms).toBeLessThan(8000); // it used to hang on etcd: 25 s and more
    } finally {
      etcd.resume(0);
    }
  }, 60_000);
});
