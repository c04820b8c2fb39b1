/**
 * The headless view of `dlock up` (no TTY, or --no-tui): every node's log
 * lines on stdout, each prefixed with the node's name and a time, like the
 * original design's server consoles side by side in one stream.
 *
 * A view only: it consumes node events and never touches the request path.
 * Lines of one batch are written with one write() call.
 */
import type { NodeEvent } from './threads/control.js';
import type { LogLine } from '../replica/node-log.js';
import { timestamp } from '../text.js';

export function formatLogLine(node: string, line: LogLine, width = 10): string {
  return `${node.padEnd(width)} ${timestamp(line.t)} ${line.text}`;
}

/** Past this many bytes waiting in stdout, log lines are dropped (and counted). */
export const HEADLESS_MAX_BUFFERED = 8 << 20;

/**
 * Log lines to `out`. A slow reader (a paused pager, a slow pipe) must not
 * make the process buffer without bound: past HEADLESS_MAX_BUFFERED bytes
 * waiting, lines are dropped, and once the output drains one line says how
 * many were lost.
 */
/** One log line as a JSON object (--log-format json): time (ISO 8601), node, kind, text. */
export function formatJsonLine(node: string, line: LogLine): string {
  return JSON.stringify({ time: new Date(line.t).toISOString(), node, kind: line.kind, msg: line.text });
}

/** What the headless view is: called with node events; `note` prints a line of its own; `flush` writes what it holds. */
export interface HeadlessView {
  (ev: NodeEvent): void;
  /** A line of the process itself (`cluster`, or the node's name), timestamped like the rest. */
  note(node: string, kind: LogLine['kind'], text: string): void;
  /** Write every line still held back for ordering (at exit). */
  flush(): void;
}

/**
 * How long lines are held back so that lines from different nodes come out
 * in time order: each node's thread sends its lines in batches, so a line
 * stamped earlier on one node can reach this thread after a later one of
 * another. Lines are written once they are this old, sorted.
 */
export const HEADLESS_ORDER_MS = 100;

export function headlessView(
  out: NodeJS.WritableStream & { writableLength?: number } = process.stdout,
  maxBuffered = HEADLESS_MAX_BUFFERED,
  format: 'text' | 'json' = 'text',
  holdMs = HEADLESS_ORDER_MS,
): HeadlessView {
  let dropped = 0;
  const fmt = format === 'json' ? formatJsonLine : formatLogLine;
  // A line waits until it is stamped holdMs ago, or arrived holdMs ago
  // (`arrived`, monotonic ms): lines stamped before a wall-clock step back
  // are not held for the step's length. Due lines go out in stamp order.
  let held: Array<{ node: string; line: LogLine; arrived: number }> = [];
  let timer: NodeJS.Timeout | null = null;
  out.on('drain', () => {
    if (dropped === 0) return;
    out.write(`${fmt('cluster', { t: Date.now(), kind: 'warn', text: `${dropped} log lines dropped: the output was not being read fast enough` })}\n`);
    dropped = 0;
  });
  /** Write the held lines that are due, in stamp order (stable: one node's stay in its order). */
  const release = (all = false): void => {
    const stamped = all ? Infinity : Date.now() - holdMs;
    const arrivedBy = all ? Infinity : performance.now() - holdMs;
    const isDue = (h: { line: LogLine; arrived: number }): boolean => h.line.t <= stamped || h.arrived <= arrivedBy;
    const due = held.filter(isDue);
    if (due.length === 0) return;
    held = held.filter((h) => !isDue(h));
    due.sort((a, b) => a.line.t - b.line.t);
    if ((out.writableLength ?? 0) > maxBuffered) {
      dropped += due.length;
      return;
    }
    let text = '';
    for (const h of due) text += `${fmt(h.node, h.line)}\n`;
    out.write(text);
  };
  const schedule = (): void => {
    if (timer !== null || held.length === 0) return;
    timer = setTimeout(() => {
      timer = null;
      release();
      schedule();
    }, holdMs);
    timer.unref();
  };
  const view = ((ev: NodeEvent) => {
    if (ev.type !== 'log') return; // state changes show up as log lines already
    const arrived = performance.now();
    for (const line of ev.lines) held.push({ node: ev.node, line, arrived });
    release();
    schedule();
  }) as HeadlessView;
  view.note = (node, kind, text) => view({ type: 'log', node, lines: [{ t: Date.now(), kind, text }] });
  view.flush = () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    release(true);
  };
  return view;
}
