/**
 * Transport over TCP (or TLS), for nodes in separate processes on separate
 * hosts: the same codec frames as the in-process link
 * (transport-port.ts), one frame a line, a batch per socket write.
 *
 * - Decoding takes chunks (LineSplitter, as the client protocol does), and
 *   caps a frame's size. A frame that is too long, or does not decode, or
 *   comes before authentication, closes the link with the reason; it never
 *   throws into the node (design rule 4).
 * - Authentication (link-auth.ts): the accepting side sends `challenge`,
 *   the connecting side proves its role's secret with `auth`, the accepting
 *   side proves it back with `welcome`. Neither side hands its owner a link
 *   before the other's proof passed: `listen`'s onLink gets only links
 *   that authenticated, with their role, and `connect` resolves only once
 *   the peer proved the secret. Until then frames are capped at
 *   PRE_AUTH_FRAME_BYTES, and the whole handshake (TLS's too) must end
 *   within `handshakeMs`, or the socket is destroyed: a peer without the
 *   secret holds nothing for long (no frame buffer, no link slot).
 * - TLS is mutual: the listener asks for a certificate and refuses any not
 *   signed by the cluster's CA; the connecting side presents its own and
 *   checks the listener's against the same CA. A failed TLS handshake
 *   destroys its socket at once.
 * - Caps: at most `maxLinks` open connections on a listener, and at most
 *   `maxPending` of them not yet authenticated; past either, a new
 *   connection is destroyed at once. Failed handshakes are logged once per
 *   source per window (AuthThrottle), never per connection.
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
import { connect as netConnect, createServer as netCreateServer, isIP, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, createServer as tlsCreateServer } from 'node:tls';
import { CodecError, decodeFrame, type Frame, type LinkRole } from '../codec/frame.js';
import { LogThrottle, sourceOf } from '../server/log-throttle.js';
import { LineSplitter } from '../protocol/line-splitter.js';
import { linkProof, newNonce, proofMatches, type LinkKeys } from './link-auth.js';
import { BatchingTransport } from './transport.js';

/** A snapshot part of 50,000 locks is a few MB; anything far past that is not ours. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;
/** Frames before the peer proved the secret: a handshake frame is under 200 bytes. */
export const PRE_AUTH_FRAME_BYTES = 1024;
export const HEARTBEAT_MS = 500;
export const DEAD_AFTER_MS = 3000;
/** The whole handshake (TCP accepted, TLS, challenge, auth, welcome) within this, ms. */
export const HANDSHAKE_MS = 5000;
/** Open connections on one link listener, at most: nodes (at most 99) and observers. */
export const MAX_LINKS = 256;
/** Of those, not yet authenticated, at most. */
export const MAX_PENDING_LINKS = 32;
/** Refused handshakes from one source are logged once per this, ms. */
const REFUSAL_LOG_MS = 10_000;

export interface TcpLinkOptions {
  heartbeatMs?: number;
  deadAfterMs?: number;
  maxFrameBytes?: number;
  /** See HANDSHAKE_MS. */
  handshakeMs?: number;
}

/** The connecting side: who it is, and the secret that proves it (link-auth.ts). TLS: the cluster's CA, and this side's certificate. */
export interface TcpConnectOptions extends TcpLinkOptions {
  role: LinkRole;
  secret: string;
  tls?: { ca: string; cert?: string; key?: string } | null;
}

/** The accepting side: the secrets it takes, TLS (mutual: `ca` signs every peer's certificate), caps and where to log refusals. */
export interface TcpListenOptions extends TcpLinkOptions {
  keys: LinkKeys;
  tls?: { cert: string; key: string; ca: string } | null;
  maxLinks?: number;
  maxPending?: number;
  /** Refused handshakes, once per source per window. */
  log?: (kind: 'warn', text: string) => void;
}

/** A link that could not be opened: the peer is not who it must be, or did not answer in time. */
export class LinkAuthError extends Error {
  override readonly name = 'LinkAuthError';
  readonly code = 'ERR_LINK_AUTH';
}


/** Where a handshake stands: the acceptor waits for `auth`, the connector for `challenge` then `welcome`; `open` once both proofs passed. */
type Handshake =
  | { side: 'acceptor'; keys: LinkKeys; server: string }
  | { side: 'connector'; role: LinkRole; secret: string; server: string | null; client: string; opened: (err: Error | null) => void }
  | 'open';

export class TcpTransport extends BatchingTransport {
  private readonly splitter: LineSplitter;
  private lastIn = performance.now();
  private lastOut = performance.now();
  private readonly timer: NodeJS.Timeout;
  private handshakeTimer: NodeJS.Timeout | null;
  private drainHandler: (() => void) | null = null;
  private handshake: Handshake;
  private readonly maxFrame: number;
  /** The peer's role, proved by its handshake (accepting side); the connecting side's own role there. */
  role: LinkRole | null = null;
  /** The peer's address, host:port. */
  readonly remote: string;

  private constructor(
    private readonly socket: Socket,
    handshake: Exclude<Handshake, 'open'>,
    opts: TcpLinkOptions,
  ) {
    super();
    this.handshake = handshake;
    this.maxFrame = opts.maxFrameBytes ?? MAX_FRAME_BYTES;
    this.splitter = new LineSplitter(PRE_AUTH_FRAME_BYTES);
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.drainHandler?.());
    socket.on('error', (err: NodeJS.ErrnoException) => this.fail(`socket error: ${err.code ?? err.message}`));
    socket.on('close', () => this.fail('peer closed the link'));
    const handshakeMs = opts.handshakeMs ?? HANDSHAKE_MS;
    this.handshakeTimer = setTimeout(() => this.fail(`no handshake within ${handshakeMs} ms`), handshakeMs);
    this.handshakeTimer.unref();
    const heartbeat = opts.heartbeatMs ?? HEARTBEAT_MS;
    const deadAfter = opts.deadAfterMs ?? DEAD_AFTER_MS;
    this.timer = setInterval(() => {
      const now = performance.now();
      if (now - this.lastIn > deadAfter) {
        this.fail(`nothing from the peer for ${Math.round(now - this.lastIn)} ms (heartbeats stopped)`);
        return;
      }
      if (this.handshake === 'open' && now - this.lastOut >= heartbeat) this.send({ v: 1, type: 'ping', t: Math.round(now) });
    }, Math.max(10, Math.floor(heartbeat / 2)));
    this.timer.unref();
    if (handshake.side === 'acceptor') this.send({ v: 1, type: 'challenge', nonce: handshake.server });
  }

  /**
   * Connect to a node's link port as `role`: resolves once the peer has
   * proved the same secret (its `welcome`); rejects with LinkAuthError if
   * it does not within the handshake's time, or proves another.
   */
  static connect(host: string, port: number, opts: TcpConnectOptions): Promise<TcpTransport> {
    return new Promise((resolve, reject) => {
      const tls = opts.tls ?? null;
      const socket =
        tls === null
          ? netConnect({ host, port })
          : tlsConnect({ host, port, ca: tls.ca, ...(tls.cert === undefined ? {} : { cert: tls.cert }), ...(tls.key === undefined ? {} : { key: tls.key }), servername: isIP(host) !== 0 ? undefined : host, minVersion: 'TLSv1.2' });
      const ready = tls === null ? 'connect' : 'secureConnect';
      const onError = (err: Error): void => reject(err);
      socket.once('error', onError);
      // The TCP (and TLS) handshake within the link's handshake time too: a
      // listener that accepts and never answers must not hold the caller.
      const handshakeMs = opts.handshakeMs ?? HANDSHAKE_MS;
      socket.setTimeout(handshakeMs, () => socket.destroy(new LinkAuthError(`no ${tls === null ? 'TCP' : 'TLS'} handshake with ${host}:${port} within ${handshakeMs} ms`)));
      socket.once(ready, () => {
        socket.off('error', onError);
        socket.setTimeout(0);
        let t: TcpTransport | null = null;
        t = new TcpTransport(
          socket,
          {
            side: 'connector',
            role: opts.role,
            secret: opts.secret,
            server: null,
            client: newNonce(),
            opened: (err) => {
              if (err === null && t !== null) resolve(t);
              else reject(err ?? new LinkAuthError('link closed'));
            },
          },
          opts,
        );
        t.role = opts.role;
      });
    });
  }

  /**
   * Accept links: `onLink` gets each only once its peer has authenticated
   * (`role` set); a peer that does not, in time, is dropped unseen.
   */
  static listen(host: string, port: number, opts: TcpListenOptions, onLink: (t: TcpTransport) => void): Promise<Server> {
    // Refusals are logged, not counted against a source: a node that
    // shares an address with an attacker must still be able to link (and a
    // guess at a 128-bit secret gains nothing from speed).
    const throttle = new LogThrottle(REFUSAL_LOG_MS);
    let pending = 0;
    const maxPending = opts.maxPending ?? MAX_PENDING_LINKS;
    const refused = (source: string, why: string): void => {
      const due = throttle.event(sourceOf(source));
      if (due !== null) opts.log?.('warn', `node link from ${sourceOf(source)} refused: ${why}${due.suppressed > 0 ? ` (and ${due.suppressed} more refusals from it since the last line)` : ''}`);
    };
    const take = (s: Socket): void => {
      const source = s.remoteAddress ?? '?';
      if (pending >= maxPending) {
        s.destroy();
        refused(source, `${maxPending} links are already authenticating (a flood?)`);
        return;
      }
      pending++;
      let counted = true;
      const uncount = (): void => {
        if (counted) pending--;
        counted = false;
      };
      const t = new TcpTransport(s, { side: 'acceptor', keys: opts.keys, server: newNonce() }, opts);
      t.onAuth = (err) => {
        uncount();
        if (err === null) onLink(t);
        else refused(source, err);
      };
      s.once('close', uncount);
    };
    const tls = opts.tls ?? null;
    const server: Server =
      tls === null
        ? netCreateServer(take)
        : tlsCreateServer({ cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: true, rejectUnauthorized: true, handshakeTimeout: opts.handshakeMs ?? HANDSHAKE_MS, minVersion: 'TLSv1.2' }, take);
    if (tls !== null) {
      // A failed TLS handshake (no certificate, one the CA did not sign, a
      // peer that never sent a ClientHello): with this listener Node leaves
      // the socket open, so destroy it here, or each holds a descriptor.
      server.on('tlsClientError', (err: Error, s: Socket) => {
        const source = s.remoteAddress ?? '?';
        s.destroy();
        refused(source, `TLS handshake failed: ${err.message}`);
      });
    }
    server.maxConnections = opts.maxLinks ?? MAX_LINKS;
    server.on('drop', (d?: { remoteAddress?: string }) => refused(d?.remoteAddress ?? '?', `${server.maxConnections} links are open, the most a node takes`));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        resolve(server);
      });
    });
  }

  /** Accepting side: told once whether the peer authenticated (null) or why not. */
  private onAuth: ((err: string | null) => void) | null = null;

  /** Bytes written to the socket and not yet sent (backpressure). */
  get backlog(): number {
    return this.socket.writableLength;
  }

  /** Called when the socket's buffer has drained. */
  onDrain(handler: () => void): void {
    this.drainHandler = handler;
  }

  protected write(batch: string): void {
    this.lastOut = performance.now();
    this.socket.write(`${batch}\n`);
  }

  protected shut(): void {
    clearInterval(this.timer);
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    this.socket.end();
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.lastIn = performance.now();
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
      if (this.handshake !== 'open') {
        bad = this.shake(this.handshake, f);
        return bad === null;
      }
      if (f.type === 'ping') {
        if (f.t !== undefined) this.delay.sample(f.t); // the link's delay floor, between forwards too
        return true;
      }
      if (f.type === 'challenge' || f.type === 'auth' || f.type === 'welcome') {
        bad = `${f.type} frame after the handshake`;
        return false;
      }
      frames.push(f);
      return true;
    });
    if (frames.length > 0) this.deliver(frames);
    if (status === 'too-long') bad = `frame longer than ${this.splitter.maxLine} bytes${this.handshake === 'open' ? '' : ' before the handshake ended'}`;
    if (bad !== null) this.fail(bad);
  }

  /** One handshake frame: null when it passed (the link may then be open), else why the link must close. */
  private shake(h: Exclude<Handshake, 'open'>, f: Frame): string | null {
    if (h.side === 'acceptor') {
      if (f.type !== 'auth') return `${f.type} frame before auth`;
      const secrets = f.role === 'node' ? [h.keys.node] : h.keys.observer;
      // Each secret is tried (in constant time each); the one that passed signs the welcome.
      const secret = secrets.find((x) => proofMatches([x], f.proof, 'connector', f.role, h.server, f.nonce));
      if (secret === undefined) return `wrong proof for the ${f.role} role (is the cluster secret the same on every node?)`;
      this.send({ v: 1, type: 'welcome', proof: linkProof(secret, 'acceptor', f.role, h.server, f.nonce) });
      this.role = f.role;
      this.opened();
      this.onAuth?.(null);
      this.onAuth = null;
      return null;
    }
    if (h.server === null) {
      if (f.type !== 'challenge') return `${f.type} frame before the challenge`;
      h.server = f.nonce;
      this.send({ v: 1, type: 'auth', role: h.role, nonce: h.client, proof: linkProof(h.secret, 'connector', h.role, h.server, h.client) });
      return null;
    }
    if (f.type !== 'welcome') return `${f.type} frame before welcome`;
    if (!proofMatches([h.secret], f.proof, 'acceptor', h.role, h.server, h.client)) return 'the peer did not prove the cluster secret: not a node of this cluster';
    this.opened();
    h.opened(null);
    return null;
  }

  /** Both proofs passed: full-size frames, no handshake deadline. */
  private opened(): void {
    this.handshake = 'open';
    this.splitter.maxLine = this.maxFrame;
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
  }

  private fail(reason: string): void {
    if (this.closed) return;
    clearInterval(this.timer);
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.socket.destroy();
    const h = this.handshake;
    this.handshake = 'open';
    if (h !== 'open') {
      if (h.side === 'connector') h.opened(new LinkAuthError(`link handshake with ${this.remote} failed: ${reason}`));
      else {
        this.onAuth?.(reason);
        this.onAuth = null;
      }
    }
    this.ended(reason);
  }
}

/** Every socket `server` takes from now on, while it is open (for closeListener). */
export function trackSockets(server: Server): ReadonlySet<Socket> {
  const open = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    open.add(s);
    s.once('close', () => open.delete(s));
  });
  return open;
}

/**
 * Stop listening. server.close() waits for every socket it took (links,
 * observers, handshakes under way): after `graceMs` those left are
 * destroyed and this resolves with how many were (0 if it closed in time).
 */
export function closeListener(server: Server, sockets: ReadonlySet<Socket>, graceMs: number): Promise<number> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      const left = sockets.size;
      for (const s of sockets) s.destroy();
      resolve(left);
    }, graceMs);
    timer.unref();
    server.close(() => {
      clearTimeout(timer);
      resolve(0);
    });
  });
}
