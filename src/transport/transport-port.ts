/**
 * Transport over a worker_threads MessagePort: each batch is one
 * postMessage of the codec's encoded text (the bytes a TCP link would carry),
 * so the structured clone copies one string per batch instead of walking
 * an object graph per frame.
 */
import type { MessagePort } from 'node:worker_threads';
import { CodecError, decodeBatch, type Frame } from '../codec/frame.js';
import { BatchingTransport } from './transport.js';

/** Sent alone (not a batch) by the side that closes, so the peer learns of it. */
const CLOSE = '\u0000close';

export class PortTransport extends BatchingTransport {
  constructor(private readonly port: MessagePort) {
    super();
    port.on('message', (data: unknown) => {
      if (data === CLOSE) {
        this.port.close();
        this.ended('peer closed the link');
        return;
      }
      if (typeof data !== 'string') {
        this.ended(`unexpected ${typeof data} on link`);
        this.port.close();
        return;
      }
      // A batch that does not decode closes the link, as on TCP: never a crash of this thread.
      let frames: Frame[];
      try {
        frames = decodeBatch(data);
      } catch (err) {
        if (!(err instanceof CodecError)) throw err;
        this.port.close();
        this.ended(`bad frame: ${err.message}`);
        return;
      }
      this.deliver(frames);
    });
    // 'close' fires when either end's port is closed or its thread exits.
    port.on('close', () => this.ended('link port closed'));
  }

  protected write(batch: string): void {
    this.port.postMessage(batch);
  }

  protected shut(): void {
    this.port.postMessage(CLOSE);
    this.port.close();
  }
}
