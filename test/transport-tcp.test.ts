/**
 * The TCP link between nodes (issue 13): real sockets on loopback. Frames
 * and batches cross in order, whatever the chunking; a bad, oversized or
 * unauthenticated frame closes that link and nothing else; heartbeats keep
 * an idle link up and end a silent one; backpressure is visible; TLS works.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrame, type Frame } from '../src/codec/frame.js';
import { TcpTransport, type TcpLinkOptions } from '../src/transport/transport-tcp.js';
import { eventually } from './helpers/line-client.js';

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
}

async function accept(opts: TcpLinkOptions & { tls?: { cert: string; key: string } | null }): Promise<Accepted> {
  const a: Accepted = { port: 0, links: [], got: [], closed: [] };
  const server = await TcpTransport.listen('127.0.0.1', 0, opts, (t) => {
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

async function raw(port: number): Promise<Socket> {
  const s = connect({ host: '127.0.0.1', port });
  sockets.push(s);
  await new Promise((r) => s.once('connect', r));
  return s;
}

const entry = (seq: number): Frame => ({ v: 1, type: 'entry', seq, at: 1000 + seq, cmd: { op: 'preempt', client: 10001, lock: `t${seq}`, ttl: null }, from: 0, req: seq });

describe('TcpTransport', () => {
  it('carries frames both ways in order; pings are its own; auth comes first', async () => {
    const a = await accept({ authToken: 'secret', heartbeatMs: 20, deadAfterMs: 1000 });
    const c = await TcpTransport.connect('127.0.0.1', a.port, { authToken: 'secret', heartbeatMs: 20, deadAfterMs: 1000 });
    links.push(c);
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
    await new Promise((r) => setTimeout(r, 250));
    expect(a.got[0]?.length).toBe(before);
    expect(c.closed || a.links[0]?.closed).toBe(false);
  });

  it('takes frames however the bytes are chunked', async () => {
    const a = await accept({ authToken: null });
    const s = await raw(a.port);
    let text = `${encodeFrame({ v: 1, type: 'auth', token: '' })}\n`;
    for (let i = 1; i <= 300; i++) text += `${encodeFrame(entry(i))}\n`;
    const bytes = Buffer.from(text);
    // Split at pseudo-random points, one write a turn.
    let at = 0;
    let seed = 7;
    while (at < bytes.length) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const n = 1 + (seed % 97);
      s.write(bytes.subarray(at, at + n));
      at += n;
      await new Promise((r) => setImmediate(r));
    }
    await eventually(() => a.got[0]?.length === 300, 'all 300 frames');
    expect(a.got[0]?.map((f) => (f.type === 'entry' ? f.seq : -1))).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
  });

  it('a bad frame, a frame too long, a frame before auth or a wrong token closes that link only, with the reason', async () => {
    const a = await accept({ authToken: 'secret', maxFrameBytes: 1000 });
    const good = await TcpTransport.connect('127.0.0.1', a.port, { authToken: 'secret' });
    links.push(good);
    good.onFrames(() => {});
    good.onClose(() => {});
    const cases: Array<[string, RegExp]> = [
      [`${encodeFrame({ v: 1, type: 'auth', token: 'secret' })}\n{"v":1,"type":"entry"\n`, /^bad frame: /],
      [`${encodeFrame({ v: 1, type: 'auth', token: 'secret' })}\n{"v":9,"type":"ping"}\n`, /^bad frame: unsupported frame version 9/],
      [`${encodeFrame({ v: 1, type: 'auth', token: 'secret' })}\n${'x'.repeat(2000)}`, /^frame longer than 1000 bytes$/],
      [`${encodeFrame({ v: 1, type: 'commit', seq: 1 })}\n`, /^commit frame before auth$/],
      [`${encodeFrame({ v: 1, type: 'auth', token: 'guess' })}\n${encodeFrame({ v: 1, type: 'commit', seq: 1 })}\n`, /^wrong auth token$/],
    ];
    for (const [text, why] of cases) {
      const s = await raw(a.port);
      s.write(text);
      await new Promise((r) => s.once('close', r)); // the node closed it
      expect(a.closed.at(-1)).toMatch(why);
    }
    // Nothing reached the owner from them, and the good link still works.
    expect(a.got.slice(1).flat()).toEqual([]);
    good.send(entry(1));
    await eventually(() => a.got[0]?.length === 1, 'the good link');
    expect(good.closed).toBe(false);
  });

  it('a peer that goes silent is closed after deadAfterMs (a hung process, or a partition)', async () => {
    const a = await accept({ authToken: null, heartbeatMs: 20, deadAfterMs: 200 });
    const s = await raw(a.port);
    s.write(`${encodeFrame({ v: 1, type: 'auth', token: '' })}\n`);
    const t0 = Date.now();
    await eventually(() => a.closed.length === 1, 'the silent link closed', 3000);
    expect(a.closed[0]).toMatch(/^nothing from the peer for \d+ ms \(heartbeats stopped\)$/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
  });

  it('backpressure: bytes a peer does not read show as backlog, and onDrain fires once it reads', async () => {
    const a = await accept({ authToken: null, deadAfterMs: 10_000 });
    const s = await raw(a.port);
    s.write(`${encodeFrame({ v: 1, type: 'auth', token: '' })}\n`);
    s.pause(); // a slow follower: reads nothing
    await eventually(() => a.links.length === 1, 'accepted');
    const t = a.links[0] as TcpTransport;
    let drained = 0;
    t.onDrain(() => drained++);
    const big = { v: 1, type: 'commit', seq: 1 } as const;
    for (let i = 0; i < 200_000; i++) t.send(big);
    await eventually(() => t.backlog > 0, 'a backlog');
    s.resume();
    s.on('data', () => {});
    await eventually(() => drained > 0 && t.backlog === 0, 'the drain');
  });
});

const hasOpenssl = spawnSync('sh', ['-c', 'command -v openssl']).status === 0;

describe.skipIf(!hasOpenssl)('TcpTransport over TLS', () => {
  it('carries frames with the cluster token inside TLS', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dlock-link-tls-'));
    try {
      const key = join(dir, 'key.pem');
      const cert = join(dir, 'cert.pem');
      const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const pem = { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
      const a = await accept({ authToken: 'secret', tls: pem });
      const c = await TcpTransport.connect('127.0.0.1', a.port, { authToken: 'secret', tls: { ca: pem.cert } });
      links.push(c);
      c.onFrames(() => {});
      c.onClose(() => {});
      c.send(entry(1));
      await eventually(() => a.got[0]?.length === 1, 'the frame over TLS');
      // Plain TCP to a TLS link port gets nowhere near the owner.
      const s = await raw(a.port);
      s.write(`${encodeFrame({ v: 1, type: 'auth', token: 'secret' })}\n`);
      await new Promise((done) => s.once('close', done));
      expect(a.got.length).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
