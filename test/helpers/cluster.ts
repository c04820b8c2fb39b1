/**
 * A real cluster for tests: worker threads from the build, TCP on free
 * ports, every node's log lines collected for assertions.
 */
import { Cluster, type ClusterOptions } from '../../src/host/threads/cluster.js';
import type { NodeEvent } from '../../src/host/threads/control.js';
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
