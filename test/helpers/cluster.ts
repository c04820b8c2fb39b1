/**
 * A real cluster for tests: worker threads from the build, TCP on free
 * ports, every node's log lines collected for assertions.
 */
import { Cluster, type ClusterOptions } from '../../src/host/threads/cluster.js';
import type { NodeEvent } from '../../src/host/threads/control.js';
import { afterAll, beforeAll, describe } from 'vitest';
import { eventually } from './line-client.js';

export interface TestCluster {
  cluster: Cluster;
  port: (name: string) => number;
  /** Log lines so far, per node. */
  logs: Map<string, string[]>;
  /** Every log line so far, as `node: text`. */
  all: string[];
  /** Wait until `node` has logged a line matching `re`. */
  logged: (node: string, re: RegExp, timeoutMs?: number) => Promise<void>;
}

export async function startCluster(followers = 2, port = 0, more: Partial<ClusterOptions> = {}): Promise<TestCluster> {
  const logs = new Map<string, string[]>();
  const all: string[] = [];
  const onEvent = (ev: NodeEvent): void => {
    let list = logs.get(ev.node);
    if (list === undefined) logs.set(ev.node, (list = []));
    if (ev.type === 'log') {
      for (const l of ev.lines) {
        list.push(l.text);
        all.push(`${ev.node}: ${l.text}`);
      }
    } else list.push(`state ${ev.state}`);
  };
  // Tokens from 1, so tests can name them (the default seeds them from the clock).
  const cluster = await Cluster.start({ host: '127.0.0.1', firstToken: 1, ...more, followers, port, onEvent });
  const port_ = (name: string): number => {
    const n = cluster.nodes.find((x) => x.name === name);
    if (n === undefined) throw new Error(`no node ${name}`);
    return n.port;
  };
  const logged = (node: string, re: RegExp, timeoutMs = 5000): Promise<void> =>
    eventually(() => (logs.get(node) ?? []).some((l) => re.test(l)), `${node} to log ${re}`, timeoutMs);
  return { cluster, port: port_, logs, all, logged };
}

/**
 * A describe block per in-process engine (primary/backup, then the group
 * protocol), each with a cluster of `followers` started before its tests
 * (every run in the group's configuration) and closed after. `cluster()`
 * gives that block's cluster; `followers()` the nodes that do not lead,
 * as each node says (on the group protocol the engine decides).
 */
export function onBothEngines(title: string, body: (cluster: () => TestCluster, followers: () => Promise<string[]>) => void, followers = 2): void {
  for (const group of [false, true]) {
    describe(`${title} (${group ? 'group protocol' : 'primary/backup'})`, () => {
      let t: TestCluster | undefined;
      beforeAll(async () => {
        t = await startCluster(followers, 0, group ? { group, firstToken: undefined } : {});
        const started = t;
        await eventually(() => started.cluster.settled, 'every run in the configuration', 10_000);
      }, 30_000);
      afterAll(async () => {
        await t?.cluster.close();
      });
      const cluster = (): TestCluster => {
        if (t === undefined) throw new Error('the cluster did not start');
        return t;
      };
      body(cluster, async () => (await cluster().cluster.roles()).filter((r) => r.role !== 'leader').map((r) => r.name));
    });
  }
}
