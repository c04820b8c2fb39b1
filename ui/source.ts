/**
 * What the view (ui/tui.ts) shows and drives, behind one interface:
 *
 * - source-cluster.ts: the one-process cluster `dlock up` starts and owns
 *   (its nodes can be killed, restarted and added from the view);
 * - source-etcd.ts: nodes running as their own processes on etcd, which
 *   `dlock tui --etcd` attaches to and only watches (each node serves
 *   views to an authenticated observer, src/observe.ts).
 *
 * Threading: the main thread. Ordering: `onEvent` calls for one node come
 * in the order that node logged them.
 */
import type { NodeEvent } from '../src/host/threads/control.js';
import type { LockRow, NodeStats } from '../src/node/node.js';

export interface SourceNode {
  name: string;
  host: string;
  port: number;
  /** 'node': a node on etcd, whose role is the election's (the view shows it from the node's stats). */
  role: 'leader' | 'follower' | 'node';
}

/** Kill, restart, add: only where the view owns the nodes. */
export interface SourceControl {
  addFollower(): Promise<SourceNode>;
  kill(name: string): Promise<void>;
  restart(name: string): Promise<void>;
}

export interface ViewSource {
  /** The splash's words while start() runs. */
  readonly starting: string;
  /** What the quit action says it does. */
  readonly quitTitle: string;
  /** Start (or attach); resolves with the line to note once it has. */
  start(onEvent: (ev: NodeEvent) => void): Promise<string>;
  /** The nodes now, for the terminal to connect to. */
  nodes(): SourceNode[];
  /** Stats and lock maps (at most `limit` rows) of the nodes `live` says are up; polled twice a second. */
  poll(live: (name: string) => boolean, limit: number): Promise<{ stats: NodeStats[]; locks: Array<[string, LockRow[]]> }>;
  readonly control: SourceControl | null;
  close(): Promise<void>;
}
