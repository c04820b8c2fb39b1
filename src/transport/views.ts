/**
 * Views for an observer (`dlock tui --etcd`, the chaos harness
 * across processes): on a node's authenticated link, every VIEW_MS, a
 * `view` frame with the node's stats, its lock map (at most `locks` rows)
 * and its log lines since the last view (at most VIEW_LOG_MAX; older ones
 * are dropped, and said so). A view is skipped while the observer has not
 * read the last ones (the link's backlog), so a slow observer costs the
 * node a bounded buffer, never its clients' time. src/observe.ts is the
 * other end.
 *
 * Threading: the node's thread. Ordering: views in the order sent.
 */
import type { ViewLock } from '../codec/frame.js';
import type { NodeLog } from '../replica/node-log.js';
import type { TcpTransport } from './transport-tcp.js';

const VIEW_MS = 500;
const VIEW_LOCKS_MAX = 100_000;
const VIEW_LOG_MAX = 2000;
const VIEW_BACKLOG_MAX = 4 * 1024 * 1024;

export interface Viewed {
  log: NodeLog;
  stats(): Record<string, unknown>;
  lockMap(limit: number): ViewLock[];
}

/** Serve views on `t`; the caller calls the function returned when `t` closes (it owns the link's close handler). */
export function serveViews(t: TcpTransport, locks: number, node: Viewed): () => void {
  let lines: Array<{ t: number; kind: string; text: string }> = [];
  let dropped = 0;
  const untap = node.log.tap((batch) => {
    lines.push(...batch);
    if (lines.length > VIEW_LOG_MAX) {
      dropped += lines.length - VIEW_LOG_MAX;
      lines = lines.slice(-VIEW_LOG_MAX);
    }
  });
  const send = (): void => {
    if (t.closed || t.backlog > VIEW_BACKLOG_MAX) return;
    const log = dropped === 0 ? lines : [{ t: Date.now(), kind: 'warn', text: `(${dropped} log lines not shown: the observer fell behind)` }, ...lines];
    lines = [];
    dropped = 0;
    t.send({ v: 1, type: 'view', stats: node.stats(), locks: node.lockMap(Math.min(locks, VIEW_LOCKS_MAX)), log });
  };
  const timer = setInterval(send, VIEW_MS);
  timer.unref();
  send();
  return () => {
    clearInterval(timer);
    untap();
  };
}
