/**
 * A node's log: lines a person can follow, batched.
 *
 * Nodes log connections, requests, replies and replication as they happen;
 * the lines are buffered and handed to the sink at most every `intervalMs`
 * (or when `maxBatch` lines are waiting), so a busy node sends one message
 * per batch to the main thread rather than one per line, and views (headless
 * stdout, the TUI) never sit in the request path.
 *
 * Threading: used from the node's own thread only. Ordering: lines reach the
 * sink in the order they were logged.
 */
export type LogKind = 'info' | 'conn' | 'req' | 'reply' | 'repl' | 'warn' | 'error';

export interface LogLine {
  /** Wall-clock ms when it was logged. */
  t: number;
  kind: LogKind;
  text: string;
}

export type LogSink = (lines: LogLine[]) => void;

export class NodeLog {
  private buf: LogLine[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly taps = new Set<LogSink>();

  /**
   * @param requests log every request, reply and replicated lock change
   *   (`--quiet` turns it off: under load these lines cost more CPU than
   *   the writes they describe; see the README's Benchmarks)
   */
  constructor(
    private readonly sink: LogSink,
    readonly requests = true,
    private readonly intervalMs = 50,
    private readonly maxBatch = 2000,
  ) {}

  line(kind: LogKind, text: string): void {
    // The wall clock: a log line's time is for people (and orders one
    // process's nodes' lines in its headless output); nothing is measured
    // or decided from it.
    this.buf.push({ t: Date.now(), kind, text });
    if (this.buf.length >= this.maxBatch) this.flush();
    else if (this.timer === null) this.timer = setTimeout(this.flush, this.intervalMs);
  }

  readonly flush = (): void => {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.buf.length === 0) return;
    const lines = this.buf;
    this.buf = [];
    this.sink(lines);
    for (const tap of this.taps) tap(lines);
  };

  /** Also hand every batch to `tap` (an observer of a node on etcd), until the returned function is called. */
  tap(tap: LogSink): () => void {
    this.taps.add(tap);
    return () => this.taps.delete(tap);
  }
}
