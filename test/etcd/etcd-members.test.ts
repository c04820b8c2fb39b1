/**
 * Node membership and liveness on real etcd: indexes given once
 * per name and kept across restarts, client-id blocks that never repeat
 * [LP-4], one live process per name, a dead node seen leaving when its
 * lease expires, and fail-stop: a node that cannot renew its lease is told
 * to stop serving before etcd can expire it.
 */
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdMembership, ID_BLOCK, NameInUseError, type MemberInfo } from '../../src/replication/etcd-members.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { eventually } from '../helpers/line-client.js';

describe.skipIf(!hasEtcd)('EtcdMembership', () => {
  let etcd: EtcdCluster;
  const clients: Etcd3[] = [];
  const client = (): Etcd3 => {
    const c = new Etcd3({ hosts: etcd.endpoints });
    clients.push(c);
    return c;
  };
  const info = (port: number): Omit<MemberInfo, 'name' | 'index'> => ({ address: `127.0.0.1:${port}`, link: `127.0.0.1:${port + 1000}` });
  beforeAll(async () => {
    etcd = await EtcdCluster.start(1);
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await etcd.stop();
  });

  it('gives each name an index once; a restart under its name keeps it and its client ids go on above the last block [LP-4]', async () => {
    const a = new EtcdMembership(client(), 'idx', 'node-a', undefined, etcd.access);
    const b = new EtcdMembership(client(), 'idx', 'node-b', undefined, etcd.access);
    const [ja, jb] = await Promise.all([a.join(info(1), () => {}), b.join(info(2), () => {})]);
    expect(new Set([ja.index, jb.index])).toEqual(new Set([0, 1]));
    expect(ja.firstOrdinal).toBe(0);
    await a.leave();
    const again = new EtcdMembership(client(), 'idx', 'node-a', undefined, etcd.access);
    const j2 = await again.join(info(1), () => {});
    expect(j2.index).toBe(ja.index);
    expect(j2.firstOrdinal).toBe(ID_BLOCK); // above every ordinal the first run could have used
    await again.extend(ID_BLOCK + ID_BLOCK / 2 + 1); // past half the block: the next is reserved
    const third = new EtcdMembership(client(), 'idx', 'node-c', undefined, etcd.access);
    expect((await third.join(info(3), () => {})).index).toBe(2);
    await Promise.all([again.leave(), b.leave(), third.leave()]);
    const fourth = new EtcdMembership(client(), 'idx', 'node-a', undefined, etcd.access);
    expect((await fourth.join(info(1), () => {})).firstOrdinal).toBe(3 * ID_BLOCK);
    await fourth.leave();
  });

  it('a second live process under one name is refused', async () => {
    const a = new EtcdMembership(client(), 'dup', 'same', undefined, etcd.access);
    await a.join(info(1), () => {});
    const b = new EtcdMembership(client(), 'dup', 'same', undefined, etcd.access);
    await expect(b.join(info(2), () => {})).rejects.toBeInstanceOf(NameInUseError);
    await a.leave();
  });

  it('a node that stops renewing (a crash) is seen leaving once its lease expires', async () => {
    const watcher = new EtcdMembership(client(), 'live', 'observer', 2, etcd.access);
    const doomed = new EtcdMembership(client(), 'live', 'doomed', 1, etcd.access);
    await watcher.join(info(1), () => {});
    await doomed.join(info(2), () => {});
    let live: string[] = [];
    await watcher.watch((m) => {
      live = m.map((x) => x.name).sort();
    });
    expect(live).toEqual(['doomed', 'observer']);
    const t0 = Date.now();
    doomed.abandon();
    await eventually(() => live.length === 1, 'doomed to leave', 5000, 20);
    expect(live).toEqual(['observer']);
    // Its ttl, plus etcd's lease checks and a poll (300 ms); 2.7 s was seen with every test running at once on 2 cores.
    expect(Date.now() - t0).toBeLessThan(1000 + 3000);
    await watcher.leave();
  });

  it('a new run that replaced its earlier one between two reads is not reported as leaving', async () => {
    // The leader ends the sessions of a node that leaves, by its index: a
    // leave reported after the new run took clients ended theirs (chaos
    // --procs: an acquire withdrawn and never answered). The new run ends
    // its earlier run's sessions itself (replication-etcd.ts).
    const watcher = new EtcdMembership(client(), 'rerun', 'observer', 2, etcd.access);
    const node = new EtcdMembership(client(), 'rerun', 'n', 2, etcd.access);
    await watcher.join(info(1), () => {});
    await node.join(info(2), () => {});
    const seen: Array<Record<string, string>> = [];
    await watcher.watch((m) => seen.push(Object.fromEntries(m.map((x) => [x.name, x.link]))));
    expect(seen).toEqual([{ observer: info(1).link, n: info(2).link }]);
    // The new run's key replaces the earlier run's in one write (under its
    // own lease), so no read can fall between them.
    const raw = client();
    const lease = raw.lease(5, { autoKeepAlive: false });
    const id = await lease.grant();
    node.abandon();
    const key = '/dlock/rerun/live/n';
    const before = JSON.parse((await raw.get(key).string()) ?? '{}') as MemberInfo;
    await raw.put(key).value(JSON.stringify({ ...before, link: '127.0.0.1:9' })).lease(id).exec();
    await eventually(() => seen.some((s) => s['n'] === '127.0.0.1:9'), 'the new run seen', 5000, 20);
    expect(seen.every((s) => s['n'] !== undefined)).toBe(true); // never reported gone
    await lease.revoke();
    await watcher.leave();
  });

  it('fail-stop: with etcd gone, jeopardy fires before the lease could have expired there', async () => {
    const own = await EtcdCluster.start(1);
    const c = new Etcd3({ hosts: own.endpoints });
    try {
      const m = new EtcdMembership(c, 'jeop', 'n', 2, own.access);
      let why: string | null = null;
      let at = 0;
      await m.join(info(1), (w) => {
        why = w;
        at = Date.now();
      });
      await new Promise((r) => setTimeout(r, 300)); // a renewal or so
      const lastConfirmed = Date.now();
      await own.kill(0);
      await eventually(() => why !== null, 'jeopardy', 5000, 20);
      expect(why).toMatch(/no etcd lease renewal confirmed for \d+ ms \(ttl 2000 ms\)|etcd lease lost/);
      // Before the 2 s lease could have run out since its last confirmed renewal.
      expect(at - lastConfirmed).toBeLessThan(2000);
    } finally {
      c.close();
      await own.stop();
    }
  });
});
