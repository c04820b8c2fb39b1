/**
 * The TLS client port against connections that never finish a handshake
 * [LP-14]: plain TCP connects that close without a ClientHello, and
 * connects that send nothing at all, cost the `dlock up` process no file
 * descriptor once they are gone (the first at once, the second after the
 * handshake deadline); the log says so a few times, not once per connect;
 * and a real TLS client is served after the flood.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/client/client.js';
import { run, type Running } from '../helpers/dlock-process.js';
import { eventually } from '../helpers/line-client.js';

const hasOpenssl = spawnSync('sh', ['-c', 'command -v openssl']).status === 0;
const hasProc = existsSync('/proc/self/fd');
const dir = mkdtempSync(join(tmpdir(), 'dlock-tls-hs-'));
const cert = join(dir, 'cert.pem');
const key = join(dir, 'key.pem');
let proc: Running | null = null;
let port = 0;

/** Open file descriptors of the dlock process. */
const fds = (): number => readdirSync(`/proc/${proc?.child.pid}/fd`).length;

/** A plain TCP connect to the TLS port; resolves once connected. */
function tcp(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ port, host: '127.0.0.1' });
    s.on('connect', () => resolve(s));
    s.on('error', reject);
  });
}

beforeAll(async () => {
  if (!hasOpenssl || !hasProc) return;
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  proc = run(['up', '--no-tui', '--quiet', '--port', '0', '--followers', '1', '--first-token', '1', '--tls-cert', cert, '--tls-key', key]);
  await eventually(() => /^ready /m.test(proc?.out() ?? '') || proc?.child.exitCode !== null, 'the ready line', 15_000);
  const m = /^ready leader=127\.0\.0\.1:(\d+)/m.exec(proc.out());
  if (m === null) throw new Error(`dlock up did not get ready:\n${proc.out()}\n${proc.err()}`);
  port = Number(m[1]);
}, 30_000);
afterAll(async () => {
  if (proc !== null && proc.child.exitCode === null) {
    proc.child.kill('SIGTERM');
    await proc.exit;
  }
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!hasOpenssl || !hasProc)('TLS handshakes that never happen [LP-14]', () => {
  it('connects that close without a ClientHello, and silent ones, leave no descriptor behind; a TLS client is then served', async () => {
    const ca = readFileSync(cert);
    // A client served before the flood, so the baseline includes what serving one costs.
    const warm = await connect({ port, tls: { ca } });
    await warm.close();
    await eventually(() => fds() > 0, 'the process to show its descriptors');
    const baseline = fds();
    const t0 = performance.now();
    // 600 connect-and-close, 50 at a time.
    for (let round = 0; round < 12; round++) {
      const batch = await Promise.all(Array.from({ length: 50 }, () => tcp()));
      for (const s of batch) s.destroy(); // a FIN, nothing sent
    }
    // Released when the FIN arrives, well before the 5 s handshake deadline.
    await eventually(() => fds() <= baseline + 5, `the descriptors of 600 closed connects to be released (baseline ${baseline}, now ${fds()})`, 4000, 50);
    // 40 that connect and send nothing: the handshake deadline closes them.
    const silent = await Promise.all(Array.from({ length: 40 }, () => tcp()));
    const closed = silent.map((s) => new Promise<void>((resolve) => s.on('close', () => resolve())));
    await Promise.race([
      Promise.all(closed),
      new Promise((_, reject) => setTimeout(() => reject(new Error('silent connects still open 15 s later: no handshake deadline')), 15_000)),
    ]);
    await eventually(() => fds() <= baseline + 5, `the descriptors of 40 silent connects to be released (baseline ${baseline}, now ${fds()})`, 5000, 50);
    // A real client is served.
    const c = await connect({ port, tls: { ca } });
    expect((await c.preempt('after-flood')).ok).toBe(true);
    await c.close();
    // The log: a line per source per interval, not 640.
    const seconds = (performance.now() - t0) / 1000;
    const lines = proc?.out().split('\n').filter((l) => /TLS handshake/.test(l)) ?? [];
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(Math.ceil(seconds / 10) + 2);
  }, 60_000);

  it('a TLS client that half-closes right after its handshake still gets every reply [LP-2]', async () => {
    const ca = readFileSync(cert);
    for (let i = 0; i < 20; i++) {
      const text = await new Promise<string>((resolve, reject) => {
        const s = tlsConnect({ port, host: '127.0.0.1', ca, servername: 'localhost' }, () => s.end(`preempt hc-${i}\ncheck hc-${i}\nping\n`));
        let got = '';
        s.setEncoding('utf8').on('data', (d: string) => (got += d));
        s.on('close', () => resolve(got));
        s.on('error', reject);
      });
      const lines = text.split('\n').filter((l) => l !== '');
      expect(lines, text).toHaveLength(4);
      expect(lines[1]).toMatch(new RegExp(`^PreemptLock Success owner=\\d+ token=\\d+$`));
      expect(lines[2]).toMatch(/^CheckLock:Lock:\d+ token=\d+$/);
      expect(lines[3]).toBe('PONG');
    }
  });
});
