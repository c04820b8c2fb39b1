/**
 * The request parser: byte chunks in, typed requests or errors out.
 *
 * Modelled on nats.deno's parser: it takes chunks, never a socket, so it can be
 * fed one byte at a time in tests and the connection decides what to do with
 * each item. Items come out in input order, one per non-blank line [LP-2].
 *
 *  - `request`: a well-formed request;
 *  - `error`:   a recoverable bad request, answered with `Error: …` [LP-12];
 *  - `fatal`:   a limit was hit [LP-13]; the parser is spent and the
 *               connection must answer `Error: line too long` and close.
 */
import { isUtf8 } from 'node:buffer';
import { LineSplitter } from './line-splitter.js';
import { MAX_LINE_BYTES, parseRequest, type Request } from './request.js';

export type Parsed =
  | { kind: 'request'; request: Request }
  | { kind: 'error'; message: string }
  | { kind: 'fatal'; message: string };

export const LINE_TOO_LONG = 'line too long';

export class RequestParser {
  private readonly splitter: LineSplitter;
  private spent = false;
  private emit: (item: Parsed) => boolean | void = () => {};
  private readonly onLine = (line: Buffer): boolean | void => {
    if (!isUtf8(line)) return this.emit({ kind: 'error', message: 'request is not valid UTF-8 text' });
    const parsed = parseRequest(line.toString('utf8'));
    if (parsed === null) return; // blank line: not a request [LP-2]
    return this.emit('error' in parsed ? { kind: 'error', message: parsed.error } : { kind: 'request', request: parsed });
  };

  constructor(maxLine = MAX_LINE_BYTES) {
    this.splitter = new LineSplitter(maxLine);
  }

  /** Bytes of a line begun and not yet ended (for the idle-line timeout). */
  get pending(): number {
    return this.spent ? 0 : this.splitter.pending;
  }

  /**
   * Feed a chunk; `emit` is called synchronously for each item, in order.
   * When `emit` returns false the parser stops after that item and keeps
   * the rest of the bytes (and any later chunks) until resume(): so a
   * connection takes only as many requests as it will queue, and a 64 KiB
   * chunk of tiny requests cannot become 13,000 queued items at once.
   */
  push(chunk: Buffer, emit: (item: Parsed) => boolean | void): void {
    if (this.spent) return; // after a fatal item nothing more is read [LP-13]
    this.emit = emit;
    this.check(this.splitter.push(chunk, this.onLine));
  }

  /** Go on with the bytes kept when `emit` last returned false. */
  resume(emit: (item: Parsed) => boolean | void): void {
    if (this.spent) return;
    this.emit = emit;
    this.check(this.splitter.resume(this.onLine));
  }

  /** The input ended: a last line cut off without its line end is a request too [LP-2]. Call once nothing is backlogged. */
  finish(emit: (item: Parsed) => boolean | void): void {
    if (this.spent) return;
    this.emit = emit;
    this.check(this.splitter.finish(this.onLine));
  }

  /** Whether bytes wait for resume(). */
  get backlogged(): boolean {
    return !this.spent && this.splitter.backlogged;
  }

  private check(status: 'ok' | 'too-long'): void {
    if (status === 'too-long') {
      this.spent = true;
      this.emit({ kind: 'fatal', message: LINE_TOO_LONG });
    }
  }
}
