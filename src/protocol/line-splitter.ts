/**
 * Byte framing for the line protocol [LP-2]: chunks in, lines out.
 *
 * Takes chunks (never a socket), keeps a partial line across chunks without
 * converting to strings, strips the line end (LF or CRLF), and enforces a cap
 * on the line length excluding its line end [LP-13] as soon as the partial
 * line proves too long, so a client cannot make the node buffer without bound
 * by never sending LF. After `too-long` the splitter is spent.
 *
 * Used by the node (requests) and by the client library (replies).
 * Threading: single-threaded; one splitter per connection.
 */

const LF = 0x0a;
const CR = 0x0d;

export type SplitStatus = 'ok' | 'too-long';

export class LineSplitter {
  private readonly parts: Buffer[] = [];
  private partLen = 0;
  private spent = false;
  /**
   * Bytes received but not yet split because the consumer asked to stop
   * (its onLine returned false): they are split on resume(). Bounded by
   * what arrives before the consumer pauses its socket.
   */
  private backlog: Buffer | null = null;

  /** The cap; a consumer may raise it between lines (a node link does once its peer authenticated). */
  constructor(public maxLine: number) {}

  /**
   * Feed a chunk; `onLine` is called for every complete line (without its line
   * end), in order. The Buffer passed to `onLine` may share memory with the
   * chunk: copy it to keep it. Returns `too-long` once a line exceeds the cap;
   * lines before it in the same chunk have been emitted.
   */
  push(chunk: Buffer, onLine: (line: Buffer) => boolean | void): SplitStatus {
    if (this.spent) return 'too-long';
    if (this.backlog !== null) {
      // Still stopped: keep the order, split later.
      this.backlog = Buffer.concat([this.backlog, chunk]);
      return 'ok';
    }
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(LF, start);
      if (nl === -1) break;
      let line: Buffer;
      if (this.partLen === 0) {
        line = chunk.subarray(start, nl);
      } else {
        this.parts.push(chunk.subarray(start, nl));
        line = Buffer.concat(this.parts, this.partLen + nl - start);
        this.parts.length = 0;
        this.partLen = 0;
      }
      start = nl + 1;
      const end = line.length > 0 && line[line.length - 1] === CR ? line.length - 1 : line.length;
      if (end > this.maxLine) return this.fail();
      if (onLine(end === line.length ? line : line.subarray(0, end)) === false) {
        // The consumer has enough for now: keep the rest (a copy: the chunk may be reused).
        if (start < chunk.length) this.backlog = Buffer.from(chunk.subarray(start));
        return 'ok';
      }
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.partLen += rest.length;
      // Decide early: a partial line longer than the cap plus a possible CR
      // can never end well. At exactly cap+1 bytes it may still be CRLF.
      if (this.partLen > this.maxLine + 1) return this.fail();
      // Copy: the caller may reuse the chunk's memory after we return.
      this.parts.push(Buffer.from(rest));
      if (this.partLen === this.maxLine + 1 && rest[rest.length - 1] !== CR) return this.fail();
    }
    return 'ok';
  }

  /**
   * The input ended (a half-close) with nothing kept for resume(): a last
   * line without its line end is a line too [LP-2], a trailing CR on it
   * part of its line end. Nothing more is split after it.
   */
  finish(onLine: (line: Buffer) => boolean | void): SplitStatus {
    if (this.spent || this.backlog !== null || this.partLen === 0) return this.spent ? 'too-long' : 'ok';
    const line = Buffer.concat(this.parts, this.partLen);
    this.parts.length = 0;
    this.partLen = 0;
    this.spent = true;
    const end = line[line.length - 1] === CR ? line.length - 1 : line.length;
    if (end > this.maxLine) return 'too-long';
    onLine(line.subarray(0, end));
    return 'ok';
  }

  /** Whether bytes wait for resume(). */
  get backlogged(): boolean {
    return this.backlog !== null;
  }

  /** Split what was kept when the consumer stopped, as push() would. */
  resume(onLine: (line: Buffer) => boolean | void): SplitStatus {
    const b = this.backlog;
    if (b === null || this.spent) return this.spent ? 'too-long' : 'ok';
    this.backlog = null;
    return this.push(b, onLine);
  }

  /** Bytes of the current partial line (no line end seen yet). */
  get pending(): number {
    return this.partLen;
  }

  private fail(): SplitStatus {
    this.spent = true;
    this.parts.length = 0;
    this.partLen = 0;
    this.backlog = null;
    return 'too-long';
  }
}
