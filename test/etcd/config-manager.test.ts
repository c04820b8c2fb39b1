/**
 * The configuration managers (src/config/): the same contract cases run
 * against the in-process manager and against etcd's, on a real etcd
 * member. PacificA's rule: a configuration changes only by
 * compare-and-swap on its version, so of two proposals from the same
 * configuration exactly one wins, and every value read is checked.
 */
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, configProblem, type ConfigManager, type GroupConfig } from '../../src/config/config.js';
import { EtcdConfig } from '../../src/config/etcd.js';
import { ConfigStore, MemoryConfig } from '../../src/config/memory.js';
import { MessageChannel } from 'node:worker_threads';
import { PortConfig, serveConfig } from '../../src/config/port.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';
import { eventually } from '../helpers/line-client.js';

const v1: GroupConfig = { version: 1, primary: 'a', secondaries: ['b', 'c'] };
const v2b: GroupConfig = { version: 2, primary: 'b', secondaries: ['c'] };
const v2c: GroupConfig = { version: 2, primary: 'c', secondaries: ['b'] };

/** `pair()` makes two managers over one stored configuration, as two nodes of a group. */
function contract(name: string, pair: () => Promise<[ConfigManager, ConfigManager]>): void {
  describe(`the ${name} configuration manager`, () => {
    it('starts empty; the first proposal wins from nothing, a second one from nothing loses and learns the winner', async () => {
      const [m, n] = await pair();
      expect(await m.current()).toBeNull();
      expect(await m.propose(null, v1)).toEqual({ won: true, current: v1 });
      expect(await n.propose(null, { version: 1, primary: 'b', secondaries: [] })).toEqual({ won: false, current: v1 });
      expect(await n.current()).toEqual(v1);
    });

    it('refuses a version that does not follow, and a configuration that is not one', async () => {
      const [m] = await pair();
      await expect(m.propose(null, { ...v1, version: 2 })).rejects.toThrow(/version 2 cannot follow none: it must be 1/);
      await m.propose(null, v1);
      await expect(m.propose(v1, { ...v2b, version: 3 })).rejects.toThrow(RangeError);
      await expect(m.propose(v1, { version: 2, primary: 'b', secondaries: ['b'] })).rejects.toThrow(/b is named twice/);
      await expect(m.propose(v1, { version: 2, primary: 'no spaces', secondaries: [] })).rejects.toThrow(/primary is not a node name/);
      expect(await m.current()).toEqual(v1);
    });

    it('of two proposals from one configuration, exactly one wins, and both learn which', async () => {
      const [m, n] = await pair();
      await m.propose(null, v1);
      const [a, b] = await Promise.all([m.propose(v1, v2b), n.propose(v1, v2c)]);
      expect([a.won, b.won].filter(Boolean)).toHaveLength(1);
      const winner = a.won ? v2b : v2c;
      expect(a.current).toEqual(winner);
      expect(b.current).toEqual(winner);
      // A proposal from a configuration that is no longer stored loses.
      expect((await m.propose(v1, { ...v2b, primary: 'a', secondaries: [] })).won).toBe(false);
    });

    it('a watch reports the stored configuration, then each later one in order', async () => {
      const [m, n] = await pair();
      await m.propose(null, v1);
      const seen: GroupConfig[] = [];
      const errors: Error[] = [];
      const stop = n.watch((c) => seen.push(c), (e) => errors.push(e));
      await eventually(() => seen.length === 1, 'the stored configuration');
      await m.propose(v1, v2b);
      const v3: GroupConfig = { version: 3, primary: 'b', secondaries: ['c', 'a'] };
      await m.propose(v2b, v3);
      await eventually(() => seen.length === 3, 'both changes');
      expect(seen).toEqual([v1, v2b, v3]);
      expect(errors).toEqual([]);
      stop();
      await m.propose(v3, { version: 4, primary: 'c', secondaries: [] });
      await m.current();
      expect(seen).toHaveLength(3);
    });
  });
}

contract('in-process', () => {
  const store = new ConfigStore();
  return Promise.resolve([new MemoryConfig(store), new MemoryConfig(store)]);
});

// A worker's view of dlock up's manager: the same store, reached over a MessagePort.
contract('in-process, over a MessagePort', () => {
  const store = new ConfigStore();
  const over = (): PortConfig => {
    const { port1, port2 } = new MessageChannel();
    serveConfig(port2, new MemoryConfig(store));
    return new PortConfig(port1);
  };
  return Promise.resolve([over(), over()]);
});

describe('PortConfig', () => {
  it('turns a message that is not a configuration into an error, never a configuration', async () => {
    const { port1, port2 } = new MessageChannel();
    const m = new PortConfig(port1);
    const seen: GroupConfig[] = [];
    const errors: Error[] = [];
    port2.on('message', (req: { id: number; op: string }) => {
      if (req.op === 'watch') {
        port2.postMessage({ op: 'config', value: { version: 'one', primary: 'a', secondaries: [] } });
        port2.postMessage({ id: req.id, ok: true, value: null });
      } else port2.postMessage({ id: req.id, ok: true, value: { version: 1, primary: 'a b', secondaries: [] } });
    });
    m.watch((c) => seen.push(c), (e) => errors.push(e));
    await expect(m.current()).rejects.toThrow(ConfigError);
    await eventually(() => errors.length === 1, 'the watch error');
    expect(errors[0]?.message).toMatch(/not one: version is not a whole number/);
    expect(seen).toEqual([]);
    await m.close();
    port2.close();
  });
});

describe('configProblem', () => {
  it('names what is wrong', () => {
    expect(configProblem(v1)).toBeNull();
    expect(configProblem(null)).toBe('not an object');
    expect(configProblem({ ...v1, extra: 1 })).toBe('unknown field "extra"');
    expect(configProblem({ ...v1, version: 0 })).toBe('version is not a whole number >= 1');
    expect(configProblem({ ...v1, secondaries: 'b' })).toMatch(/^secondaries is not a list/);
    expect(configProblem({ ...v1, secondaries: ['a'] })).toBe('a is named twice');
  });
});

describe.skipIf(!hasEtcd)('on etcd', () => {
  let etcd: EtcdCluster;
  const clients: Etcd3[] = [];
  const managers: EtcdConfig[] = [];
  let k = 0;
  beforeAll(async () => {
    etcd = await EtcdCluster.start(1);
  }, 60_000);
  afterAll(async () => {
    for (const m of managers) await m.close();
    for (const c of clients) c.close();
    await etcd?.stop();
  });
  /** Two managers on two clients (two nodes), on a cluster name of their own. */
  const pair = (): Promise<[EtcdConfig, EtcdConfig]> => {
    const cluster = `cfg${k++}`;
    const made = [0, 1].map(() => {
      const c = new Etcd3({ hosts: etcd.endpoints });
      clients.push(c);
      const m = new EtcdConfig(c, cluster);
      managers.push(m);
      return m;
    });
    return Promise.resolve(made as [EtcdConfig, EtcdConfig]);
  };

  contract('etcd', pair);

  it('a stored value that is not a configuration is a ConfigError when read, and an error to a watch that then goes on', async () => {
    const [m, n] = await pair();
    const cluster = `cfg${k - 1}`;
    const raw = clients[clients.length - 1] as Etcd3;
    await raw.put(`/dlock/${cluster}/config`).value('{"version":1,"primary":"a","secondaries":["a"]}');
    await expect(m.current()).rejects.toThrow(ConfigError);
    await expect(m.current()).rejects.toThrow(`the configuration at /dlock/${cluster}/config is not one: a is named twice`);
    await expect(m.propose(null, v1)).rejects.toThrow(ConfigError); // loses, and cannot say to what
    const seen: GroupConfig[] = [];
    const errors: Error[] = [];
    n.watch((c) => seen.push(c), (e) => errors.push(e));
    await eventually(() => errors.length === 1, 'the bad value reported');
    await raw.put(`/dlock/${cluster}/config`).value('not json');
    await eventually(() => errors.length === 2, 'the next bad value reported');
    expect(errors[1]?.message).toBe(`the configuration at /dlock/${cluster}/config is not JSON`);
    await raw.put(`/dlock/${cluster}/config`).value(JSON.stringify({ secondaries: ['b', 'c'], primary: 'a', version: 1 })); // equal, not canonical
    await eventually(() => seen.length === 1, 'a good value delivered after the bad ones');
    expect(seen[0]).toEqual(v1);
    // A compare on bytes cannot match a value written in another form: a clear error, not endless losing.
    await expect(m.propose(v1, v2b)).rejects.toThrow(/not in dlock's canonical form/);
  });
});
