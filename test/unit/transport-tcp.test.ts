/**
 * The TCP link between nodes: real sockets on loopback. Frames and batches
 * cross in order, whatever the chunking; a peer proves its role's secret
 * (challenge, auth, welcome) before anything it sends reaches the owner,
 * and the secret itself never crosses the link; a bad, oversized or
 * unauthenticated frame closes that link and nothing else; nothing is held
 * for a peer that does not authenticate (a deadline, a small frame cap,
 * caps on connections); heartbeats keep an idle link up and end a silent
 * one; backpressure is visible; TLS is mutual.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrame, type Frame, type LinkRole } from '../../src/codec/frame.js';
import { linkProof, newNonce } from '../../src/transport/link-auth.js';
import { LinkAuthError, TcpTransport, type TcpListenOptions } from '../../src/transport/transport-tcp.js';
import { hasOpenssl, makeTestCa } from '../helpers/certs.js';
import { eventually } from '../helpers/line-client.js';

const SECRET = 'cluster-secret-0123456789';
const ADMIN = 'admin-token-abcdefghij';
const KEYS = { node: SECRET, observer: [SECRET, ADMIN] };

const servers: Server[] = [];
const links: TcpTransport[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const l of links.splice(0)) l.close();
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

interface Accepted {
  port: number;
  links: TcpTransport[];
  got: Frame[][];
  closed: string[];
  logged: string[];
}

async function accept(opts: Partial<TcpListenOptions> = {}): Promise<Accepted> {
  const a: Accepted = { port: 0, links: [], got: [], closed: [], logged: [] };
  const server = await TcpTransport.listen('127.0.0.1', 0, { keys: KEYS, log: (_k, text) => a.logged.push(text), ...opts }, (t) => {
    links.push(t);
    a.links.push(t);
    const mine: Frame[] = [];
    a.got.push(mine);
    t.onFrames((fs) => mine.push(...fs));
    t.onClose((why) => a.closed.push(why));
  });
  servers.push(server);
  a.port = (server.address() as AddressInfo).port;
  return a;
}

/** A raw socket and the lines it receives. */
async function raw(port: number): Promise<{ s: Socket; lines: string[] }> {
  const s = connect({ host: '127.0.0.1', port });
  sockets.push(s);
  const lines: string[] = [];
  let buf = '';
  s.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) !== -1) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  await new Promise((r) => s.once('connect', r));
  return { s, lines };
}

/** The handshake by hand: the challenge read, an `auth` proving `secret` as `role` written. */
async function shake(r: { s: Socket; lines: string[] }, secret = SECRET, role: LinkRole = 'node'): Promise<void> {
  await eventually(() => r.lines.length > 0, 'the challenge');
  const challenge = JSON.parse(r.lines[0] as string) as { type: string; nonce: string };
  expect(challenge.type).toBe('challenge');
  const nonce = newNonce();
  r.s.write(`${encodeFrame({ v: 1, type: 'auth', role, nonce, proof: linkProof(secret, 'connector', role, challenge.nonce, nonce) })}\n`);
}

const closedBy = (s: Socket): Promise<void> => new Promise((r) => (s.destroyed ? r() : s.once('close', () => r())));

const entry = (seq: number): Frame => ({ v: 1, type: 'entry', seq, at: 1000 + seq, cmd: { op: 'preempt', client: 10001, lock: `t${seq}`, ttl: null }, from: 0, req: seq });

describe('TcpTransport', () => {
  it('carries frames both ways in order once both sides proved the secret; pings are its own', async () => {
    const a = await accept({ heartbeatMs: 20, deadAfterMs: 1000 });
    const c = await TcpTransport.connect('127.0.0.1', a.port, { role: 'node', secret: SECRET, heartbeatMs: 20, deadAfterMs: 1000 });
    links.push(c);
    await eventually(() => a.links.length === 1, 'the link handed over once authenticated');
    expect(a.links[0]?.role).toBe('node');
    const back: Frame[] = [];
    c.onFrames((fs) => back.push(...fs));
    c.onClose(() => {});
    for (let i = 1; i <= 500; i++) c.send(entry(i));
    await eventually(() => a.got[0]?.length === 500, 'the 500 frames');
    expect(a.got[0]?.map((f) => (f.type === 'entry' ? f.seq : -1))).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
    a.links[0]?.send({ v: 1, type: 'commit', seq: 500 });
    await eventually(() => back.length === 1, 'the commit back');
    expect(back).toEqual([{ v: 1, type: 'commit', seq: 500 }]);
    // Idle for 10 heartbeats: pings flow, none is handed over, the link stays.
    const before = a.got[0]?.length;
    await eventually(() => c.backlog === 0, 'idle');
    const t0 = performance.now();
    await eventually(() => performance.now() - t0 > 250, 'ten heartbeats', 2000, 50);
    expect(a.got[0]?.length).toBe(before);
    expect(c.closed || a.links[0]?.closed).toBe(false);
  });

  it('takes frames however the bytes are chunked', async () => {
    const a = await accept();
    const r = await raw(a.port);
    await shake(r);
    await eventually(() => a.links.length === 1, 'authenticated');
    let text = '';
    for (let i = 1; i <= 300; i++) text += `${encodeFrame(entry(i))}\n`;
    const bytes = Buffer.from(text);
    // Split at pseudo-random points, one write a turn.
    let at = 0;
    let seed = 7;
    while (at < bytes.length) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const n = 1 + (seed % 97);
      r.s.write(bytes.subarray(at, at + n));
      at += n;
      await new Promise((res) => setImmediate(res));
    }
    await eventually(() => a.got[0]?.length === 300, 'all 300 frames');
    expect(a.got[0]?.map((f) => (f.type === 'entry' ? f.seq : -1))).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
  });

  it('a bad frame or a frame too long after the handshake closes that link only, with the reason', async () => {
    const a = await accept({ maxFrameBytes: 1000 });
    const good = await TcpTransport.connect('127.0.0.1', a.port, { role: 'node', secret: SECRET });
    links.push(good);
    good.onFrames(() => {});
    good.onClose(() => {});
    const cases: Array<[string, RegExp]> = [
      ['{"v":1,"type":"entry"\n', /^bad frame: /],
      ['{"v":9,"type":"ping"}\n', /^bad frame: unsupported frame version 9/],
      [`${'x'.repeat(2000)}`, /^frame longer than 1000 bytes$/],
      // A command the lock table could not apply never reaches the owner (the decoder checks every field).
      ['{"v":1,"type":"forward","req":0,"cmd":{"op":"bogus"}}\n', /^bad frame: malformed forward frame: unknown op "bogus"/],
      ['{"v":1,"type":"forward","req":1,"cmd":{"op":"release","client":20002}}\n', /missing lock/],
      [`${encodeFrame({ v: 1, type: 'challenge', nonce: newNonce() })}\n`, /^challenge frame after the handshake$/],
    ];
    for (const [text, why] of cases) {
      const r = await raw(a.port);
      await shake(r);
      await eventually(() => r.lines.length >= 2, 'the welcome');
      r.s.write(text);
      await closedBy(r.s);
      expect(a.closed.at(-1)).toMatch(why);
    }
    expect(a.got.slice(1).flat()).toEqual([]);
    good.send(entry(1));
    await eventually(() => a.got[0]?.length === 1, 'the good link');
    expect(good.closed).toBe(false);
  });

  it('before the handshake: any other frame, a wrong proof, a client token, or a big frame closes the socket, and the owner never sees it', async () => {
    const a = await accept();
    const cases: Array<[(r: { s: Socket; lines: string[] }) => Promise<void>, RegExp]> = [
      [async (r) => void r.s.write(`${encodeFrame({ v: 1, type: 'commit', seq: 1 })}\n`), /commit frame before auth/],
      // The old handshake: the clients' token in clear. The link port never takes a token.
      [async (r) => void r.s.write('{"v":1,"type":"auth","token":"client-token"}\n'), /malformed auth frame/],
      [(r) => shake(r, 'the-clients-auth-token-guess'), /wrong proof for the node role/],
      // The admin token proves the observer role only: its proof is refused for a node.
      [(r) => shake(r, ADMIN, 'node'), /wrong proof for the node role/],
      // A frame of 60 MiB before auth was read and parsed whole: now 1 KiB is the most before the handshake.
      [async (r) => void r.s.write(Buffer.alloc(64 * 1024, 0x61)), /frame longer than 1024 bytes before the handshake ended/],
    ];
    for (const [act] of cases) {
      const r = await raw(a.port);
      await eventually(() => r.lines.length > 0, 'the challenge');
      await act(r);
      await closedBy(r.s);
    }
    expect(a.links).toEqual([]);
    // Five refusals from one source: the first is logged, the rest are counted into later lines, not one line each.
    await eventually(() => a.logged.length > 0, 'the refusal logged');
    expect(a.logged[0]).toMatch(/^node link from 127\.0\.0\.1 refused: commit frame before auth/);
    expect(a.logged.length).toBe(1);
    // Each case's reason shows in a fresh listener's first line.
    for (const [act, why] of cases) {
      const b = await accept();
      const r = await raw(b.port);
      await eventually(() => r.lines.length > 0, 'the challenge');
      await act(r);
      await closedBy(r.s);
      await eventually(() => b.logged.length === 1, 'the refusal logged');
      expect(b.logged[0]).toMatch(why);
    }
  });

  it('an observer proves the admin token or the cluster secret, and is handed over as an observer', async () => {
    const a = await accept();
    for (const secret of [ADMIN, SECRET]) {
      const c = await TcpTransport.connect('127.0.0.1', a.port, { role: 'observer', secret });
      links.push(c);
    }
    await eventually(() => a.links.length === 2, 'both observers');
    expect(a.links.map((t) => t.role)).toEqual(['observer', 'observer']);
    await expect(TcpTransport.connect('127.0.0.1', a.port, { role: 'observer', secret: 'client-token-not-a-secret' })).rejects.toThrow(LinkAuthError);
  });

  it('a listener that does not know the secret learns nothing, and the connecting side refuses it', async () => {
    // A rogue listener (an address written into etcd's election value): it
    // sends a challenge, records what comes, and answers a forged welcome.
    const received: string[] = [];
    const rogue = createServer((s) => {
      s.write(`${encodeFrame({ v: 1, type: 'challenge', nonce: newNonce() })}\n`);
      s.setEncoding('utf8').on('data', (d: string) => {
        received.push(d);
        s.write(`${encodeFrame({ v: 1, type: 'welcome', proof: linkProof('a-guess-at-the-secret', 'acceptor', 'node', 'x'.repeat(32), 'y'.repeat(32)) })}\n`);
      });
    });
    servers.push(rogue);
    await new Promise<void>((r) => rogue.listen(0, '127.0.0.1', r));
    const port = (rogue.address() as AddressInfo).port;
    await expect(TcpTransport.connect('127.0.0.1', port, { role: 'node', secret: SECRET })).rejects.toThrow(/did not prove the cluster secret/);
    expect(received.join('')).toMatch(/"type":"auth"/);
    expect(received.join('')).not.toContain(SECRET);
    // One that never answers: connect gives up within the handshake time, with a named error.
    const mute = createServer(() => {});
    servers.push(mute);
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
    await expect(TcpTransport.connect('127.0.0.1', (mute.address() as AddressInfo).port, { role: 'node', secret: SECRET, handshakeMs: 200 })).rejects.toThrow(LinkAuthError);
  });

  it('nothing is held for a peer that does not authenticate: a deadline, then caps on waiting and open links', async () => {
    // One byte every 100 ms kept a link open for 40 s: now the whole handshake has a deadline.
    const a = await accept({ handshakeMs: 300 });
    const r = await raw(a.port);
    const trickle = setInterval(() => r.s.write('{'), 100);
    const t0 = performance.now();
    await closedBy(r.s);
    clearInterval(trickle);
    expect(performance.now() - t0).toBeLessThan(2000);
    await eventually(() => a.logged.some((l) => /no handshake within 300 ms/.test(l)), 'the deadline logged');
    // At most maxPending connections may be authenticating: the next is dropped at once.
    const b = await accept({ maxPending: 3 });
    const waiting = await Promise.all([1, 2, 3].map(() => raw(b.port)));
    await Promise.all(waiting.map((w) => eventually(() => w.lines.length === 1, 'challenged')));
    const over = await raw(b.port);
    await closedBy(over.s);
    expect(over.lines).toEqual([]);
    expect(waiting.every((w) => !w.s.destroyed)).toBe(true);
    // Once they go, a real node gets in.
    for (const w of waiting) w.s.destroy();
    await eventually(async () => {
      const c = await TcpTransport.connect('127.0.0.1', b.port, { role: 'node', secret: SECRET }).catch(() => null);
      if (c !== null) links.push(c);
      return c !== null;
    }, 'a node links once the waiting ones went');
    // At most maxLinks open, authenticated or not.
    const c = await accept({ maxLinks: 2 });
    for (let i = 0; i < 2; i++) links.push(await TcpTransport.connect('127.0.0.1', c.port, { role: 'node', secret: SECRET }));
    const third = await raw(c.port);
    await closedBy(third.s);
    expect(third.lines).toEqual([]);
  });

  it('a peer that goes silent is closed after deadAfterMs (a hung process, or a partition)', async () => {
    const a = await accept({ heartbeatMs: 20, deadAfterMs: 200 });
    const r = await raw(a.port);
    await shake(r);
    await eventually(() => a.links.length === 1, 'authenticated');
    const t0 = performance.now();
    await eventually(() => a.closed.length === 1, 'the silent link closed', 3000);
    expect(a.closed[0]).toMatch(/^nothing from the peer for \d+ ms \(heartbeats stopped\)$/);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(150);
  });

  it('backpressure: bytes a peer does not read show as backlog, and onDrain fires once it reads', async () => {
    const a = await accept({ deadAfterMs: 10_000 });
    const r = await raw(a.port);
    await shake(r);
    await eventually(() => a.links.length === 1, 'accepted');
    r.s.pause(); // a slow follower: reads nothing
    const t = a.links[0] as TcpTransport;
    let drained = 0;
    t.onDrain(() => drained++);
    const big = { v: 1, type: 'commit', seq: 1 } as const;
    for (let i = 0; i < 200_000; i++) t.send(big);
    await eventually(() => t.backlog > 0, 'a backlog');
    r.s.resume();
    await eventually(() => drained > 0 && t.backlog === 0, 'the drain');
  });
});

describe.skipIf(!hasOpenssl)('TcpTransport over mutual TLS', () => {
  it('takes only peers whose certificate the cluster CA signed; failed handshakes hold no socket', async () => {
    const cluster = makeTestCa('cluster-ca');
    const other = makeTestCa('other-ca');
    try {
      const read = (f: string): string => readFileSync(f, 'utf8');
      const ca = read(cluster.ca);
      // Node certificates (good for server and client auth, as a node is both), and one another CA signed.
      const n1 = { cert: read(cluster.serverCert), key: read(cluster.serverKey) };
      const n2 = n1;
      const rogue = { cert: read(other.serverCert), key: read(other.serverKey) };
      const a = await accept({ tls: { ...n1, ca }, handshakeMs: 1000 });
      const c = await TcpTransport.connect('127.0.0.1', a.port, { role: 'node', secret: SECRET, tls: { ca, ...n2 } });
      links.push(c);
      c.send(entry(1));
      await eventually(() => a.got[0]?.length === 1, 'the frame over mutual TLS');
      // No certificate, or one another CA signed: refused in the TLS handshake, though the secret is right.
      await expect(TcpTransport.connect('127.0.0.1', a.port, { role: 'node', secret: SECRET, tls: { ca } })).rejects.toThrow();
      await expect(TcpTransport.connect('127.0.0.1', a.port, { role: 'node', secret: SECRET, tls: { ca, ...rogue } })).rejects.toThrow();
      // Plain TCP that never sends a ClientHello, and one that sends garbage: destroyed, not left in CLOSE-WAIT.
      const fds = (): number => readdirSync('/proc/self/fd').length;
      const before = fds();
      const plain: Socket[] = [];
      for (let i = 0; i < 50; i++) {
        const r = await raw(a.port);
        if (i % 2 === 0) r.s.write('{"v":1,"type":"auth"}\n');
        else r.s.end();
        plain.push(r.s);
      }
      await Promise.all(plain.map(closedBy));
      await eventually(() => fds() <= before + 2, 'the descriptors of failed handshakes released', 5000, 50);
      expect(a.got.length).toBe(1);
      await eventually(() => a.logged.some((l) => /TLS handshake failed/.test(l)), 'a TLS failure logged');
      expect(a.logged.length).toBeLessThan(5); // per source, not per connection
      // A TLS client without a certificate is refused too, at the TLS layer.
      const bare = tlsConnect({ host: '127.0.0.1', port: a.port, ca, servername: 'localhost' });
      bare.on('error', () => {});
      await new Promise((r) => bare.once('close', r));
      expect(a.got.length).toBe(1);
    } finally {
      cluster.remove();
      other.remove();
    }
  });
});
