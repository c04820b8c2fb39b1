/**
 * Transport over TCP (or TLS), for nodes in separate processes on separate
 * hosts (issue 13): the same codec frames as the in-process link
 * (transport-port.ts), one frame a line, a batch per socket write.
 *
 * - Decoding takes chunks (LineSplitter, as the client protocol does), and
 *   caps a frame's size. A frame that is too long, or does not decode, or
 *   comes before authentication, closes the link with the reason; it never
 *   throws into the node (design rule 4).
 * - Authentication: the side that connects sends `auth` with the cluster's
 *   token first; the side that accepts compares it in constant time
 *   (AuthGate) and hands over no frame before it passed. TLS is the
 *   socket's (tls.connect / tls.createServer), below all of this.
 * - Heartbeats: a `ping` goes out when nothing else was sent for
 *   `heartbeatMs`; a link on which nothing arrived for `deadAfterMs` is
 *   closed. So a peer that hangs, or a network that drops everything (a
 *   partition), ends the link instead of leaving it open and silent.
 *   Pings are the transport's own: never handed to the owner.
 * - Backpressure: `backlog` is the bytes the socket has not yet written and
 *   `onDrain` fires when it empties, so a sender (a leader streaming a
 *   snapshot to a slow follower) can wait instead of buffering without
 *   bound. Reading needs no pause: frames are handled synchronously, one
 *   chunk at a time.
 *
 * Ordering and threading: as every Transport (transport.ts).
 */
import { connect as netConnect, createServer as netCreateServer, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, createServer as tlsCreateServer } from 'node:tls';
import { CodecError, decodeFrame, encodeFrame, type Frame } from '../codec/frame.js';
import { AuthGate } from '../node/auth.js';
import { LineSplitter } from '../protocol/line-splitter.js';
import { BatchingTransport } from './transport.js';

/** A snapshot part of 50,000 locks is a few MB; anything far past that is not ours. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;
export const HEARTBEAT_MS = 500;
export const DEAD_AFTER_MS = 3000;

export interface TcpLinkOptions {
  /** The cluster's token between nodes; null: none (loopback only, as for clients). */
  authToken: string | null;
  heartbeatMs?: number;
  deadAfterMs?: number;
  maxFrameBytes?: number;
}

const PING = encodeFrame({ v: 1, type: 'ping' });

export class TcpTransport extends BatchingTransport {
  private readonly splitter: LineSplitter;
  private lastIn = Date.now();
  private lastOut = Date.now();
  private readonly timer: NodeJS.Timeout;
  private drainHandler: (() => void) | null = null;
  /** Accepting side: frames are held back until the peer's `auth` passed. */
  private gate: AuthGate | null | 'open';

  /**
   * @param gate accepting side: the token the peer must send first (null:
   *   any `auth` passes, but one must come first); connecting side: 'open'.
   */
  private constructor(
    private readonly socket: Socket,
    gate: AuthGate | null | 'open',
    opts: TcpLinkOptions,
  ) {
    super();
    this.gate = gate;
    this.splitter = new LineSplitter(opts.maxFrameBytes ?? MAX_FRAME_BYTES);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.drainHandler?.());
    socket.on('error', (err: NodeJS.ErrnoException) => this.fail(`socket error: ${err.code ?? err.message}`));
    socket.on('close', () => this.fail('peer closed the link'));
    const heartbeat = opts.heartbeatMs ?? HEARTBEAT_MS;
    const deadAfter = opts.deadAfterMs ?? DEAD_AFTER_MS;
    this.timer = setInterval(() => {
      const now = Date.now();
      if (now - this.lastIn > deadAfter) {
        this.fail(`nothing from the peer for ${now - this.lastIn} ms (heartbeats stopped)`);
        return;
      }
      if (now - this.lastOut >= heartbeat) this.send(PING);
    }, Math.max(10, Math.floor(heartbeat / 2)));
    this.timer.unref();
  }

  /** Connect to a node's link port; the first frame says the token. */
  static connect(host: string, port: number, opts: TcpLinkOptions & { tls?: { ca: string } | null }): Promise<TcpTransport> {
    return new Promise((resolve, reject) => {
      const socket =
        opts.tls === undefined || opts.tls === null
          ? netConnect({ host, port })
          : tlsConnect({ host, port, ca: opts.tls.ca, servername: host === '127.0.0.1' ? undefined : host, minVersion: 'TLSv1.2' });
      const ready = opts.tls === undefined || opts.tls === null ? 'connect' : 'secureConnect';
      const onError = (err: Error): void => reject(err);
      socket.once('error', onError);
      socket.once(ready, () => {
        socket.off('error', onError);
        const t = new TcpTransport(socket, 'open', opts);
        t.send({ v: 1, type: 'auth', token: opts.authToken ?? '' });
        resolve(t);
      });
    });
  }

  /**
   * Accept links: `onLink` gets each once its TCP (and TLS) handshake is
   * done; its frames are handed over only after the peer's `auth` passed.
   */
  static listen(host: string, port: number, opts: TcpLinkOptions & { tls?: { cert: string; key: string } | null }, onLink: (t: TcpTransport) => void): Promise<Server> {
    const gate = opts.authToken === null ? null : new AuthGate(opts.authToken);
    const server: Server =
      opts.tls === undefined || opts.tls === null
        ? netCreateServer((s) => onLink(new TcpTransport(s, gate, opts)))
        : tlsCreateServer({ cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2' }, (s) => onLink(new TcpTransport(s, gate, opts)));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        resolve(server);
      });
    });
  }

  /** Bytes written to the socket and not yet sent (backpressure). */
  get backlog(): number {
    return this.socket.writableLength;
  }

  /** Called when the socket's buffer has drained. */
  onDrain(handler: () => void): void {
    this.drainHandler = handler;
  }

  protected write(batch: string): void {
    this.lastOut = Date.now();
    this.socket.write(`${batch}\n`);
  }

  protected shut(): void {
    clearInterval(this.timer);
    this.socket.end();
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.lastIn = Date.now();
    const frames: Frame[] = [];
    let bad: string | null = null;
    const status = this.splitter.push(chunk, (line) => {
      if (line.length === 0) return true;
      let f: Frame;
      try {
        f = decodeFrame(line.toString('utf8'));
      } catch (err) {
        if (!(err instanceof CodecError)) throw err;
        bad = `bad frame: ${err.message}`;
        return false;
      }
      if (this.gate !== 'open') {
        // The first frame must be `auth`, with the right token.
        if (f.type !== 'auth') {
          bad = `${f.type} frame before auth`;
          return false;
        }
        if (this.gate !== null && !this.gate.check(f.token)) {
          bad = 'wrong auth token';
          return false;
        }
        this.gate = 'open';
        return true;
      }
      if (f.type === 'ping' || f.type === 'auth') return true;
      frames.push(f);
      return true;
    });
    if (frames.length > 0) this.deliver(frames);
    if (status === 'too-long') bad = `frame longer than ${this.splitter.maxLine} bytes`;
    if (bad !== null) this.fail(bad);
  }

  private fail(reason: string): void {
    if (this.closed) return;
    clearInterval(this.timer);
    this.socket.destroy();
    this.ended(reason);
  }
}
