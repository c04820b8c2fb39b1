/**
 * The group protocol run by GroupHost (src/replication/group-host.ts) with
 * real timers, every frame through the codec: three hosts on an in-memory
 * network with the in-process configuration manager, then on a real etcd
 * member with etcd's. A write commits on every member; the primary's host
 * stopped (its process killed) makes a secondary primary after its grace,
 * with every committed entry; a node back under a new id joins as a
 * learner and is added.
 */
import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame, encodeSnapshot, type Frame } from '../../src/codec/frame.js';
import { apply, createState, restore, snapshot, type TableState } from '../../src/core/lock-table.js';
import type { ConfigManager } from '../../src/config/config.js';
import { EtcdConfig } from '../../src/config/etcd.js';
import { ConfigStore, MemoryConfig } from '../../src/config/memory.js';
import { GroupHost, NotPrimaryError, type EntryData } from '../../src/replication/group-host.js';
import type { Entry } from '../../src/replication/pacifica.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { eventually } from '../helpers/line-client.js';

const TIMING = { leaseMs: 400, graceMs: 600, heartbeatMs: 50 };

/** An in-memory network: frames encoded, decoded and delivered on a later turn; a host taken off drops what is sent to it. */
class Net {
  readonly hosts = new Map<string, GroupHost>();
  /** The type of every frame sent. */
  readonly frames: string[] = [];
  send(to: string, f: Frame): void {
    this.frames.push(f.type);
    const text = encodeFrame(f);
    setImmediate(() => this.hosts.get(to)?.receive(decodeFrame(text)));
  }
}

interface Node {
  id: string;
  host: GroupHost;
  applied: Array<Entry<EntryData>>;
  logs: string[];
}

const data = (req: number): EntryData => ({ at: 0, cmd: { op: 'preempt', lock: `l${req}`, client: 10001, ttl: null }, origin: 0, req });

function scenario(name: string, manager: () => Promise<() => ConfigManager>): void {
  describe(`three hosts, configuration ${name}`, () => {
    const nodes: Node[] = [];
    afterEach(async () => {
      for (const n of nodes.splice(0)) await n.host.close();
    });

    const start = async (net: Net, id: string, make: () => ConfigManager): Promise<Node> => {
      const n: Node = { id, applied: [], logs: [], host: null as unknown as GroupHost };
      n.host = new GroupHost({ id, timing: TIMING, config: make(), links: { send: (to, f) => net.send(to, f) }, apply: (es) => n.applied.push(...es), log: (_k, t) => n.logs.push(t) });
      net.hosts.set(id, n.host);
      nodes.push(n);
      await n.host.start();
      return n;
    };

    it('writes commit everywhere; the primary killed, a secondary takes over with them; the dead node rejoins under a new id', async () => {
      const make = await manager();
      const net = new Net();
      const a = await start(net, 'a.1', make);
      const b = await start(net, 'b.1', make);
      const c = await start(net, 'c.1', make);
      // The first node made the configuration; the others join as learners and are added.
      await eventually(() => a.host.canWrite() && a.host.group.current?.secondaries.length === 2, 'b and c added', 5000);
      expect(() => b.host.propose(data(0))).toThrow(NotPrimaryError);
      for (let i = 1; i <= 20; i++) a.host.propose(data(i));
      await eventually(() => [a, b, c].every((n) => n.applied.length === 20), 'every write applied everywhere', 5000);
      for (const n of [b, c]) expect(n.applied.map((e) => e.data.req)).toEqual(a.applied.map((e) => e.data.req));
      // kill -9 of the primary: nothing more from it.
      net.hosts.delete('a.1');
      await a.host.close();
      const t0 = performance.now();
      await eventually(() => b.host.canWrite() || c.host.canWrite(), 'a secondary takes over', 5000);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(TIMING.graceMs - 60); // not before its grace
      const p = b.host.canWrite() ? b : c;
      p.host.propose(data(21));
      await eventually(() => [b, c].every((n) => n.applied.length === 21), 'a write after the failover, applied on both', 5000);
      // a comes back without its log, under its next id.
      const a2 = await start(net, 'a.2', make);
      await eventually(() => a2.applied.length === 21 && (p.host.group.current?.secondaries.includes('a.2') ?? false), 'a.2 caught up and added', 5000);
      expect(a2.applied.map((e) => e.data.req)).toEqual(p.applied.map((e) => e.data.req));
    }, 20_000);
  });
}

describe('log compaction', () => {
  it('a node that joins after the log was compacted loads the primary\'s table from an install frame, then follows the log', async () => {
    const store = new ConfigStore();
    const net = new Net();
    const tables = new Map<string, TableState>();
    const hosts: GroupHost[] = [];
    const start = async (id: string): Promise<GroupHost> => {
      tables.set(id, createState());
      const host: GroupHost = new GroupHost({
        id,
        timing: TIMING,
        config: new MemoryConfig(store),
        links: { send: (to, f) => net.send(to, f) },
        apply: (es) => {
          for (const e of es) apply(tables.get(id) as TableState, e.data.cmd, e.data.at);
        },
        snapshots: { take: () => ({ state: snapshot(tables.get(id) as TableState), applied: [] }), load: (s) => void tables.set(id, restore(s.state)) },
        compactEvery: 5,
        log: () => undefined,
      });
      net.hosts.set(id, host);
      hosts.push(host);
      await host.start();
      return host;
    };
    const table = (id: string): string => JSON.stringify(encodeSnapshot(snapshot(tables.get(id) as TableState)));
    try {
      const a = await start('a.1');
      await start('b.1');
      await eventually(() => a.canWrite() && a.group.current?.secondaries.length === 1, 'b added', 5000);
      for (let i = 1; i <= 30; i++) a.propose({ at: i, cmd: { op: 'preempt', lock: `k${i}`, client: 10000 + i, ttl: null }, origin: 0, req: 0 });
      await eventually(() => a.group.compactedTo >= 25, 'the log compacted', 5000);
      const sent = net.frames.filter((t) => t === 'install').length;
      await start('c.1');
      await eventually(() => a.group.current?.secondaries.includes('c.1') === true && table('c.1') === table('a.1'), 'c loaded the table and was added', 5000);
      expect(net.frames.filter((t) => t === 'install').length).toBeGreaterThan(sent);
      a.propose({ at: 31, cmd: { op: 'preempt', lock: 'after', client: 20001, ttl: null }, origin: 0, req: 0 });
      await eventually(() => table('c.1') === table('a.1') && table('b.1') === table('a.1') && (tables.get('c.1')?.locks.size ?? 0) === 31, 'the next write on every table', 5000);
    } finally {
      for (const h of hosts) await h.close();
    }
  }, 20_000);
});

scenario('in process', () => {
  const store = new ConfigStore();
  return Promise.resolve(() => new MemoryConfig(store));
});

describe.skipIf(!hasEtcd)('on etcd', () => {
  let etcd: EtcdCluster | null = null;
  const clients: Etcd3[] = [];
  let k = 0;
  afterAll(async () => {
    for (const c of clients) c.close();
    await etcd?.stop();
  });
  scenario('in etcd', async () => {
    etcd ??= await EtcdCluster.start(1);
    const cluster = `group${k++}`;
    const endpoints = etcd.endpoints;
    return () => {
      const c = new Etcd3({ hosts: endpoints });
      clients.push(c);
      return new EtcdConfig(c, cluster);
    };
  });
});
