/**
 * What the TUI shows, kept apart from how: node states, capped logs, lock
 * maps, stats and the ops/s history. Fed by node events (log batches, state
 * changes) and by periodic stats polls; read by the renderer.
 *
 * Threading: main thread. Ordering: log lines keep their arrival order per
 * node; each log keeps at most `cap` lines (older ones are dropped), so
 * memory stays bounded however busy the cluster is.
 */
import type { NodeEvent, NodeState } from '../src/host/threads/control.js';
import type { LogKind, LogLine } from '../src/replica/node-log.js';
import type { LockRow, NodeStats } from '../src/node/node.js';

/** A bounded list of log lines; `dropped` counts what fell off the front. */
export class LogBuffer {
  private lines: LogLine[] = [];
  dropped = 0;
  /** Lines appended since the last clear, including dropped ones. */
  total = 0;

  constructor(readonly cap = 5000) {}

  push(batch: readonly LogLine[]): void {
    this.total += batch.length;
    for (const l of batch) this.lines.push(l);
    // Trim in steps, not per line, so a busy log costs O(1) per line.
    if (this.lines.length > this.cap * 1.25) {
      const cut = this.lines.length - this.cap;
      this.lines = this.lines.slice(cut);
      this.dropped += cut;
    }
  }

  get length(): number {
    return Math.min(this.lines.length, this.cap);
  }

  /** Up to `n` lines ending `back` lines before the newest. */
  window(n: number, back = 0): LogLine[] {
    const end = this.lines.length - back;
    return this.lines.slice(Math.max(this.lines.length - this.cap, end - n, 0), Math.max(0, end));
  }

  clear(): void {
    this.lines = [];
    this.dropped = 0;
    this.total = 0;
  }
}

export interface NodeView {
  name: string;
  state: NodeState;
  address: string | null;
  stats: NodeStats | null;
  locks: LockRow[];
  log: LogBuffer;
  /** Paused: the pane stops following new lines (scrolled back). */
  paused: boolean;
  /** Lines scrolled back from the newest. */
  back: number;
}

/** A node that serves: up, or promoted to leader. */
export const isLive = (state: NodeState): boolean => state === 'up' || state === 'promoted';

const SPARKS = '▁▂▃▄▅▆▇█';

export function sparkline(values: readonly number[], width: number): string {
  const v = values.slice(-width);
  const max = Math.max(1, ...v);
  return v.map((x) => SPARKS[Math.min(SPARKS.length - 1, Math.floor((x / max) * (SPARKS.length - 1)))]).join('');
}

export class ClusterModel {
  readonly nodes = new Map<string, NodeView>();
  readonly output = new LogBuffer(2000);
  opsPerSec = 0;
  readonly opsHistory: number[] = [];
  private lastRequests: { total: number; at: number } | null = null;

  constructor(readonly logCap = 5000) {}

  node(name: string): NodeView {
    let v = this.nodes.get(name);
    if (v === undefined) {
      v = { name, state: 'starting', address: null, stats: null, locks: [], log: new LogBuffer(this.logCap), paused: false, back: 0 };
      this.nodes.set(name, v);
    }
    return v;
  }

  /** Node names in display order: leader, then followers by number. */
  names(): string[] {
    const rank = (n: string): number => (n === 'leader' ? 0 : Number(n.replace(/^follower-/, '')) || 1e6);
    return [...this.nodes.keys()].sort((a, b) => rank(a) - rank(b));
  }

  onEvent(ev: NodeEvent): void {
    if (ev.type === 'state') {
      const v = this.node(ev.node);
      v.state = ev.state;
      if (ev.address !== null) v.address = ev.address;
      // A dead node's numbers are no longer true: show none rather than stale ones.
      if (!isLive(ev.state)) {
        v.stats = null;
        v.locks = [];
      }
      if (ev.state === 'gone') v.address = null;
      this.note(ev.state === 'down' ? 'error' : 'info', `${ev.node} ${ev.state}${ev.address === null ? '' : ` at ${ev.address}`}`);
      return;
    }
    if (ev.node === 'cluster') {
      this.output.push(ev.lines);
      return;
    }
    const v = this.node(ev.node);
    v.log.push(ev.lines);
    // While paused (scrolled back), keep the view still as lines arrive.
    if (v.paused) v.back += ev.lines.length;
  }

  /** A cluster event for the OUTPUT tab. */
  note(kind: LogKind, text: string): void {
    this.output.push([{ t: Date.now(), kind, text }]);
  }

  /** `now`: monotonic ms (performance.now()); rates are measured between calls. */
  applyStats(stats: readonly NodeStats[], now: number): void {
    let total = 0;
    for (const s of stats) {
      const v = this.node(s.name);
      v.stats = s;
      total += s.requests;
    }
    if (this.lastRequests !== null && now > this.lastRequests.at) {
      this.opsPerSec = Math.max(0, Math.round(((total - this.lastRequests.total) * 1000) / (now - this.lastRequests.at)));
      this.opsHistory.push(this.opsPerSec);
      if (this.opsHistory.length > 120) this.opsHistory.shift();
    }
    this.lastRequests = { total, at: now };
  }

  /**
   * The node that leads: the one whose stats say so (after failover, a
   * promoted follower keeps its name), else the one named `leader`.
   */
  leaderName(): string {
    for (const v of this.nodes.values()) if (isLive(v.state) && (v.state === 'promoted' || v.stats?.role === 'leader')) return v.name;
    return 'leader';
  }

  /** Nodes whose stats and lock maps are polled: those up, the promoted leader included. */
  liveNames(): string[] {
    return this.names().filter((n) => isLive(this.node(n).state));
  }

  /**
   * A node's name as views show it: with its role when the name says
   * otherwise (a follower promoted to leader keeps the name `follower-1`).
   */
  label(name: string): string {
    return name !== 'leader' && name === this.leaderName() && isLive(this.node(name).state) ? `${name} (leader)` : name;
  }

  /** Sequence numbers a node is behind the leader. */
  lag(name: string): number | null {
    const leader = this.nodes.get(this.leaderName())?.stats;
    const s = this.nodes.get(name)?.stats;
    if (leader == null || s == null) return null;
    return Math.max(0, leader.applied - s.applied);
  }

  /** Counts for the status bar: nodes up of those in the cluster (gone ones are not), clients on live nodes, the leader's locks. */
  summary(): { leader: string; up: number; total: number; clients: number; locks: number } {
    let up = 0;
    let total = 0;
    let clients = 0;
    for (const v of this.nodes.values()) {
      if (v.state === 'gone') continue;
      total++;
      if (isLive(v.state)) up++;
      clients += v.stats?.clients ?? 0;
    }
    const leader = this.nodes.get(this.leaderName());
    return { leader: leader?.address ?? 'leader', up, total, clients, locks: leader?.stats?.locks ?? 0 };
  }
}
