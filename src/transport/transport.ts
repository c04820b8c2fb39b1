/**
 * A link between two nodes that carries codec frames (src/codec/frame.ts).
 *
 * Guarantees every implementation gives:
 *  - ordering: frames arrive in the order `send` was called, never reordered
 *    or duplicated; a link that cannot keep that closes instead;
 *  - batching: frames sent during one event-loop turn travel as one encoded
 *    batch (one postMessage or one socket write), flushed by setImmediate;
 *  - threading: a Transport is used from the one thread that created it;
 *    handlers run on that thread, one batch at a time, in arrival order;
 *  - closing: `onClose` fires once, whether this side closed or the peer went
 *    away; frames sent after that are dropped.
 *
 * Implementations: transport-port.ts (MessagePort between worker threads),
 * transport-memory.ts (in-process pair for tests; same codec round trip).
 */
import { encodeFrame, type Frame, type Wire } from '../codec/frame.js';
import { DelayFloor } from './link-delay.js';

export interface Transport {
  /**
   * Queue a frame for this turn's batch. A Frame is encoded at once (the
   * object may be changed afterwards); a frame meant for several links is
   * encoded once by the caller (encodeFrame) and passed as its Wire text.
   */
  send(frame: Frame | Wire): void;
  /** Receive each decoded batch. Set once, before frames arrive. */
  onFrames(handler: (frames: Frame[]) => void): void;
  onClose(handler: (reason: string) => void): void;
  close(): void;
  readonly closed: boolean;
  /** How late frames that carry `t` arrive, beyond the link's fastest crossing (link-delay.ts); sampled as they arrive. */
  readonly delay: DelayFloor;
}

/**
 * Fault injection (--chaos delay, src/host/threads/chaos.ts): while `until` is ahead,
 * every link of this thread holds its batches `ms` before sending them,
 * still in order. One per thread (module state is per worker).
 */
export const linkDelay = { ms: 0, until: 0 };

/**
 * Shared batching and close bookkeeping; subclasses move encoded batches.
 */
export abstract class BatchingTransport implements Transport {
  private out: Wire[] = [];
  private scheduled = false;
  private frameHandler: ((frames: Frame[]) => void) | null = null;
  /** Batches held by linkDelay, in order; later batches queue behind them. */
  private delayed: string[] = [];
  private delayTimer: NodeJS.Timeout | null = null;
  private closeHandler: ((reason: string) => void) | null = null;
  closed = false;
  readonly delay = new DelayFloor();

  /** Move one encoded batch (encodeBatch's format: frames joined by LF). */
  protected abstract write(batch: string): void;
  protected abstract shut(): void;

  send(frame: Frame | Wire): void {
    if (this.closed) return;
    this.out.push(typeof frame === 'string' ? frame : encodeFrame(frame));
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.closed || this.out.length === 0) return;
    const batch = this.out.join('\n');
    this.out = [];
    if (this.delayed.length > 0 || (linkDelay.ms > 0 && performance.now() < linkDelay.until)) {
      this.delayed.push(batch);
      this.delayTimer ??= setTimeout(this.releaseDelayed, linkDelay.ms);
      return;
    }
    this.write(batch);
  };

  private readonly releaseDelayed = (): void => {
    this.delayTimer = null;
    const held = this.delayed;
    this.delayed = [];
    if (!this.closed) for (const b of held) this.write(b);
  };

  /** Frames that arrived before onFrames() was set (a TCP link's first batch may come with its handshake's last frame). */
  private early: Frame[] = [];

  onFrames(handler: (frames: Frame[]) => void): void {
    this.frameHandler = handler;
    if (this.early.length > 0) {
      const frames = this.early;
      this.early = [];
      handler(frames);
    }
  }

  onClose(handler: (reason: string) => void): void {
    this.closeHandler = handler;
  }

  protected deliver(frames: Frame[]): void {
    if (this.closed) return;
    for (const f of frames) if ((f as { t?: number }).t !== undefined) this.delay.sample((f as { t: number }).t);
    if (this.frameHandler === null) this.early.push(...frames); // handed over, in order, by onFrames()
    else this.frameHandler(frames);
  }

  /** Mark closed and tell the owner, once. */
  protected ended(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.out = [];
    this.closeHandler?.(reason);
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    if (this.delayTimer !== null) clearTimeout(this.delayTimer);
    this.releaseDelayed();
    this.shut();
    this.ended('closed by this side');
  }
}
