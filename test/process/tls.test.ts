/**
 * TLS: `dlock up --tls-cert --tls-key` serves every node over
 * TLS; the client library and `dlock client` connect with TLS and verify
 * the certificate; plain TCP to a TLS port gets nowhere and harms no one.
 * The certificate is made at test time with openssl (installed by .ci/run).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/client/client.js';
import { run, up, type Running } from '../helpers/dlock-process.js';

const hasOpenssl = spawnSync('sh', ['-c', 'command -v openssl']).status === 0;
const dir = mkdtempSync(join(tmpdir(), 'dlock-tls-'));
const cert = join(dir, 'cert.pem');
const key = join(dir, 'key.pem');
let proc: Running | null = null;
let ports: Record<string, number> = {};

beforeAll(async () => {
  if (!hasOpenssl) return;
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  ({ proc, ports } = await up(['--no-tui', '--tls-cert', cert, '--tls-key', key]));
}, 30_000);
afterAll(async () => {
  if (proc !== null) {
    proc.child.kill('SIGTERM');
    await proc.exit;
  }
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!hasOpenssl)('dlock up over TLS', () => {
  it('every node speaks the protocol over TLS; the client library verifies the certificate', async () => {
    const ca = readFileSync(cert);
    for (const node of ['leader', 'follower-1', 'follower-2']) {
      const c = await connect({ port: ports[node] as number, tls: { ca } });
      expect(c.node).toBe(node);
      expect((await c.preempt(`tls-${node}`)).ok).toBe(true);
      expect(await c.raw(`check tls-${node}`)).toMatch(new RegExp(`^CheckLock:Lock:${c.id} token=1?\\d*$`));
      await c.close();
    }
    // Without the CA the self-signed certificate is refused, by the client.
    await expect(connect({ port: ports['leader'] as number, tls: {} })).rejects.toThrow(/self[- ]signed certificate/);
    // The wrong name is refused too.
    await expect(connect({ port: ports['leader'] as number, tls: { ca, servername: 'example.com' } })).rejects.toThrow(/altnames|does not match|not in the cert/i);
  });

  it('a plain TCP client gets no greeting and is closed; a bad handshake harms no other client [LP-14]', async () => {
    const ca = readFileSync(cert);
    const good = await connect({ port: ports['follower-1'] as number, tls: { ca } });
    const text = await new Promise<string>((resolve) => {
      const s = netConnect({ port: ports['follower-1'] as number, host: '127.0.0.1' });
      let got = '';
      s.setEncoding('latin1').on('data', (d: string) => (got += d));
      s.on('connect', () => s.write('preempt tls-plain\n'));
      s.on('close', () => resolve(got));
      s.on('error', () => {}); // the close that follows is what counts
    });
    expect(text).not.toMatch(/client_id:/);
    expect(await good.raw('check tls-plain')).toBe('CheckLock:Free');
    expect(await good.raw('ping')).toBe('PONG');
    await good.close();
    // And raw TLS, as `openssl s_client` would: the greeting first [LP-3].
    const greeting = await new Promise<string>((resolve, reject) => {
      const s = tlsConnect({ port: ports['leader'] as number, host: '127.0.0.1', ca, servername: 'localhost' });
      s.setEncoding('utf8').once('data', (d: string) => {
        s.destroy();
        resolve(d);
      });
      s.on('error', reject);
    });
    expect(greeting).toMatch(/^client_id: \d+ node: leader\n/);
  });

  it('dlock client --tls --tls-ca connects; a missing or bad PEM file is a clear error', async () => {
    const c = run(['client', '--port', String(ports['follower-2']), '--tls', '--tls-ca', cert], 'preempt tls-cli\ncheck tls-cli\n');
    expect(await c.exit).toBe(0);
    expect(c.out()).toMatch(/PreemptLock Success owner=\d+ token=\d+/);
    const noCa = run(['client', '--port', String(ports['follower-2']), '--tls'], 'ping\n');
    expect(await noCa.exit).toBe(2); // no node it could trust: as one it cannot reach
    expect(noCa.err()).toMatch(/self[- ]signed certificate/);
    writeFileSync(join(dir, 'junk.pem'), 'not a certificate');
    const junk = run(['up', '--no-tui', '--port', '0', '--tls-cert', join(dir, 'junk.pem'), '--tls-key', key]);
    expect(await junk.exit).toBe(1);
    expect(junk.err()).toMatch(/--tls-cert .*junk\.pem: not a PEM file/);
    const half = run(['up', '--no-tui', '--port', '0', '--tls-cert', cert]);
    expect(await half.exit).toBe(2); // a usage error
    expect(half.err()).toMatch(/--tls-cert and --tls-key go together/);
  });
});
