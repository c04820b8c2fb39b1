/**
 * Built-in fault injection for `dlock up --chaos SPEC`.
 *
 *   SPEC    = ITEM[,ITEM…]
 *   ITEM    = kill-follower@EVERY      kill a random follower's worker
 *           | kill-leader@EVERY        kill the leader's worker (failover)
 *           | delay@EVERY:MS           hold every link frame MS ms, for half of EVERY
 *           | drop-client@EVERY        close a random client connection on a random node
 *   EVERY   = a duration: 500ms, 2s, 1.5s, 1m
 *
 * e.g. `--chaos kill-follower@3s,kill-leader@10s,delay@5s:20ms,drop-client@1s`.
 * Each fault is logged as a cluster event (OUTPUT in the TUI, `cluster` in
 * the headless log). Kills go through the same supervisor paths as real
 * crashes: a follower is restarted, a dead leader is replaced. A kill is
 * skipped while a node is down or a failover runs, so a schedule cannot take
 * the whole cluster down at once.
 *
 * Threading: the main thread; timers only.
 */
import type { Cluster } from './cluster.js';

export type ChaosAction = { kind: 'kill-follower' | 'kill-leader' | 'drop-client'; everyMs: number } | { kind: 'delay'; everyMs: number; delayMs: number };

/** A bad --chaos spec; the message says what was expected. */
export class ChaosSpecError extends Error {
  override readonly name = 'ChaosSpecError';
}

const USAGE = 'expected ACTION@EVERY[:ARG] items separated by commas, e.g. kill-follower@3s,kill-leader@10s,delay@5s:20ms,drop-client@1s';

export function parseDuration(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text.trim());
  if (m === null) return null;
  const n = Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[m[2] as 'ms' | 's' | 'm'];
  return Number.isFinite(n) && n >= 1 ? Math.round(n) : null;
}

export function parseChaos(spec: string): ChaosAction[] {
  const items = spec.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (items.length === 0) throw new ChaosSpecError(`--chaos is empty; ${USAGE}`);
  return items.map((item) => {
    const m = /^([a-z-]+)@([^:]+)(?::(.+))?$/.exec(item);
    if (m === null) throw new ChaosSpecError(`--chaos item "${item}" is malformed; ${USAGE}`);
    const [, kind, every, arg] = m as unknown as [string, string, string, string | undefined];
    const everyMs = parseDuration(every);
    if (everyMs === null || everyMs < 100) throw new ChaosSpecError(`--chaos item "${item}": "${every}" is not a duration of at least 100ms (e.g. 500ms, 2s)`);
    switch (kind) {
      case 'kill-follower':
      case 'kill-leader':
      case 'drop-client':
        if (arg !== undefined) throw new ChaosSpecError(`--chaos item "${item}": ${kind} takes no argument`);
        return { kind, everyMs };
      case 'delay': {
        const delayMs = arg === undefined ? null : parseDuration(arg);
        if (delayMs === null) throw new ChaosSpecError(`--chaos item "${item}": delay needs how long, e.g. delay@5s:20ms`);
        return { kind, everyMs, delayMs };
      }
      default:
        throw new ChaosSpecError(`--chaos item "${item}": unknown action "${kind}"; actions are kill-follower, kill-leader, delay, drop-client`);
    }
  });
}

export class Chaos {
  private readonly timers: NodeJS.Timeout[] = [];
  private stopped = false;
  /** A kill is under way: the next waits until the cluster has recovered. */
  private killing = false;
  private readonly underway = new Set<Promise<void>>();
  /** Faults injected so far, by kind. */
  readonly counts: Record<string, number> = {};

  constructor(
    private readonly cluster: Cluster,
    private readonly actions: ChaosAction[],
    private readonly note: (text: string) => void,
    private readonly random: () => number = Math.random,
  ) {}

  start(): void {
    this.note(`chaos: ${this.actions.map(describe).join(', ')}`);
    for (const a of this.actions) {
      const t = setInterval(() => {
        const p = this.fire(a).finally(() => this.underway.delete(p));
        this.underway.add(p);
      }, a.everyMs);
      this.timers.push(t);
    }
  }

  /** No fault starts after this; resolves once the faults under way have ended. */
  stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers.length = 0;
    return Promise.allSettled([...this.underway]).then(() => undefined);
  }

  private pick<T>(xs: T[]): T | undefined {
    return xs[Math.floor(this.random() * xs.length)];
  }

  private async fire(a: ChaosAction): Promise<void> {
    if (this.stopped) return;
    const c = this.cluster;
    try {
      switch (a.kind) {
        case 'kill-follower':
        case 'kill-leader': {
          if (this.killing || !c.settled) return; // a node is down or a failover runs: let it recover first
          const roles = await c.roles();
          if (this.stopped || this.killing || !c.settled) return; // stopped or changed while roles were read
          const target = a.kind === 'kill-leader' ? roles.find((n) => n.role === 'leader') : this.pick(roles.filter((n) => n.role === 'follower'));
          if (target === undefined) return;
          this.count(a.kind);
          this.note(`chaos: killing ${target.name}`);
          this.killing = true;
          try {
            await c.kill(target.name);
          } finally {
            this.killing = false;
          }
          return;
        }
        case 'delay': {
          const forMs = Math.max(1, Math.floor(a.everyMs / 2));
          this.count(a.kind);
          this.note(`chaos: delaying every link frame by ${a.delayMs} ms for ${forMs} ms`);
          await c.delayLinks(a.delayMs, forMs);
          return;
        }
        case 'drop-client': {
          const node = this.pick(c.nodes);
          if (node === undefined) return;
          const id = await c.dropClient(node.name);
          if (id === null) return;
          this.count(a.kind);
          this.note(`chaos: dropped client ${id} on ${node.name}`);
          return;
        }
      }
    } catch (err) {
      // A node that died meanwhile is the supervisor's business; note and go on.
      this.note(`chaos: ${a.kind} failed: ${(err as Error).message}`);
    }
  }

  private count(kind: string): void {
    this.counts[kind] = (this.counts[kind] ?? 0) + 1;
  }
}

function describe(a: ChaosAction): string {
  return a.kind === 'delay' ? `delay links ${a.delayMs} ms every ${a.everyMs} ms` : `${a.kind} every ${a.everyMs} ms`;
}
