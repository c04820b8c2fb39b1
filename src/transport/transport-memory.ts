/**
 * An in-process pair of transports for tests. Batches still go through the
 * codec (encode on send, decode on delivery) and are delivered on a later
 * turn, like a MessagePort, so tests exercise the same bytes and timing
 * shape as the real links.
 */
import { decodeBatch } from '../codec/frame.js';
import { BatchingTransport } from './transport.js';

export class MemoryTransport extends BatchingTransport {
  peer: MemoryTransport | null = null;
  /** Every encoded batch this side wrote, for assertions. */
  readonly wire: string[] = [];

  protected write(text: string): void {
    this.wire.push(text);
    const peer = this.peer;
    if (peer === null) return;
    setImmediate(() => peer.receive(text));
  }

  private receive(text: string): void {
    this.deliver(decodeBatch(text));
  }

  protected shut(): void {
    const peer = this.peer;
    if (peer !== null) setImmediate(() => peer.ended('peer closed the link'));
  }

  static pair(): [MemoryTransport, MemoryTransport] {
    const a = new MemoryTransport();
    const b = new MemoryTransport();
    a.peer = b;
    b.peer = a;
    return [a, b];
  }
}
