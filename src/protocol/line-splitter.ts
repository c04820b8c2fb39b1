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

  constructor(readonly maxLine: number) {}

  /**
   * Feed a chunk; `onLine` is called for every complete line (without its line
   * end), in order. The Buffer passed to `onLine` may share memory with the
   * chunk: copy it to keep it. Returns `too-long` once a line exceeds the cap;
   * lines before it in the same chunk have been emitted.
   */
  push(chunk: Buffer, onLine: (line: Buffer) => void): SplitStatus {
    if (this.spent) return 'too-long';
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
      onLine(end === line.length ? line : line.subarray(0, end));
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

  /** Bytes of the current partial line (no line end seen yet). */
  get pending(): number {
    return this.partLen;
  }

  private fail(): SplitStatus {
    this.spent = true;
    this.parts.length = 0;
    this.partLen = 0;
    return 'too-long';
  }
}
