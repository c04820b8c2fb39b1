/**
 * The admin API against hostile requests, on a real `dlock up` with real
 * HTTP: a revoke's lock name is checked as the protocol checks lock names
 * (a bad escape, a control character, an oversized name: 400, nothing
 * logged raw, nothing replicated); the Host header must name the node (an
 * IP literal, localhost, or an --http-allowed-host), against DNS
 * rebinding; and wrong bearer tokens are throttled per source, the right
 * one refused too while the source is blocked.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SOURCE_FAILURES_PER_WINDOW } from '../../src/server/auth.js';
import { run, type Running } from '../helpers/dlock-process.js';
import { eventually, LineClient } from '../helpers/line-client.js';

const TOKEN = 'admin-sec-token';
let proc: Running;
let httpPort = 0;
let leaderPort = 0;

/** One request with exactly these headers (fetch would set Host itself). */
function http(method: string, path: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: httpPort, method, path, headers, setHost: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => {
        let body: Record<string, unknown>;
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch {
          // Not JSON (/metrics): keep the text, for the assertions that read it.
          body = { text };
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    req.on('error', reject);
    req.end();
  });
}
const host = { host: `127.0.0.1:${0}` };
const withToken = (token = TOKEN): Record<string, string> => ({ host: `127.0.0.1:${httpPort}`, authorization: `Bearer ${token}` });

beforeAll(async () => {
  proc = run(['up', '--no-tui', '--port', '0', '--followers', '0', '--first-token', '1', '--http-port', '0', '--admin-token', TOKEN,
    '--http-allowed-host', 'dlock.example,Other.Example', '--http-allowed-host', 'third.example']);
  await eventually(() => /^ready /m.test(proc.out()) || proc.child.exitCode !== null, 'the ready line', 15_000);
  const m = /^ready leader=127\.0\.0\.1:(\d+) .*http=127\.0\.0\.1:(\d+)$/m.exec(proc.out());
  if (m === null) throw new Error(`dlock up did not get ready:\n${proc.out()}\n${proc.err()}`);
  leaderPort = Number(m[1]);
  httpPort = Number(m[2]);
  host.host = `127.0.0.1:${httpPort}`;
}, 30_000);
afterAll(async () => {
  if (proc.child.exitCode === null) {
    proc.child.kill('SIGTERM');
    await proc.exit;
  }
});

describe('the Host header (DNS rebinding)', () => {
  it('an IP literal, localhost or an allowed name is served; any other name is refused with 421, on every path', async () => {
    for (const h of [`127.0.0.1:${httpPort}`, '127.0.0.1', 'localhost', `localhost:${httpPort}`, '[::1]:9080', '[::1]', '10.1.2.3:80', 'dlock.example', 'DLOCK.example:8080', 'other.example', 'third.example:1']) {
      expect((await http('GET', '/health', { host: h })).status, h).toBe(200);
    }
    for (const h of ['evil.example', 'evil.example:9080', 'localhost.evil.example', '127.0.0.1.evil.example', 'dlock.example.evil', '[::1', '']) {
      for (const path of ['/health', '/metrics', '/locks']) {
        const r = await http('GET', path, { host: h, authorization: `Bearer ${TOKEN}` });
        expect(r.status, `${h} ${path}`).toBe(421);
        expect(String(r.body['error']), h).toMatch(/Host .* is not allowed: the admin API answers to an IP address, localhost or a name given with --http-allowed-host/);
      }
    }
    // No Host at all: refused too (Node's HTTP/1.1 parser answers 400 before the API sees it).
    expect((await http('GET', '/health', {})).status).toBe(400);
  });
});

describe('POST /locks/NAME/revoke checks NAME as a lock name [LP-12]', () => {
  it('a bad escape, a control character, whitespace or an oversized name is a 400 with the reason; nothing is logged raw or replicated', async () => {
    const c = await LineClient.open(leaderPort);
    try {
      const bad = await http('POST', '/locks/%E0%A4%A/revoke', withToken());
      expect(bad.status).toBe(400);
      expect(String(bad.body['error'])).toMatch(/bad percent-escape in the lock name/);
      const forged = await http('POST', `/locks/x%0Aleader%3A%20forged%20line/revoke`, withToken());
      expect(forged.status).toBe(400);
      expect(String(forged.body['error'])).toMatch(/^bad lock name "x\\nleader: forged line": expected 1 to 255 bytes with no whitespace or control characters$/);
      expect((await http('POST', '/locks/a%20b/revoke', withToken())).status).toBe(400);
      expect((await http('POST', '/locks/a%7Fb/revoke', withToken())).status).toBe(400);
      const long = await http('POST', `/locks/${'n'.repeat(5000)}/revoke`, withToken());
      expect(long.status).toBe(400);
      expect(String(long.body['error'])).toMatch(/expected 1 to 255 bytes/);
      // A good name still works (and is the only revoke logged or replicated).
      expect(await c.ask('preempt adm-sec ttl=60000')).toMatch(/^PreemptLock Success/);
      const ok = await http('POST', '/locks/adm-sec/revoke', withToken());
      expect(ok.status).toBe(200);
      expect(ok.body).toMatchObject({ lock: 'adm-sec', revoked: true, owner: c.id });
      await eventually(() => /admin: revoked adm-sec from client/.test(proc.out()), 'the good revoke logged');
      const lines = proc.out().split('\n');
      expect(lines.filter((l) => /forged/.test(l))).toEqual([]);
      expect(lines.filter((l) => /nnnnnnnnnn/.test(l))).toEqual([]);
      expect(lines.filter((l) => /admin: revoked|admin API: revoke/.test(l)).every((l) => l.includes('adm-sec'))).toBe(true);
      expect(await c.ask(`check ${'n'.repeat(255)}`)).toBe('CheckLock:Free');
    } finally {
      c.close();
    }
  });
});

describe('wrong admin tokens are throttled per source', () => {
  it(`after ${SOURCE_FAILURES_PER_WINDOW} wrong tokens the source gets 429 with Retry-After, even with the right token; /health still answers; the log has a line or two`, async () => {
    expect((await http('GET', '/locks', withToken())).status).toBe(200);
    for (let i = 0; i < SOURCE_FAILURES_PER_WINDOW - 1; i++) expect((await http('GET', '/locks', withToken(`guess-${i}`))).status).toBe(401);
    const last = await http('GET', '/clients', withToken('guess-last'));
    expect(last.status).toBe(429);
    for (const headers of [withToken(), withToken('guess-more')]) {
      const r = await http('GET', '/locks', headers);
      expect(r.status).toBe(429);
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
      expect(Number(r.headers['retry-after'])).toBeLessThanOrEqual(60);
      expect(String(r.body['error'])).toMatch(/^too many failed admin token attempts from this address; retry in \d+ s$/);
    }
    expect((await http('POST', '/locks/x/revoke', withToken())).status).toBe(429);
    expect((await http('GET', '/health', host)).status).toBe(200);
    await eventually(() => /admin API: .*wrong admin token: .* is refused for \d+ s$/m.test(proc.out()), 'the block logged');
    const lines = proc.out().split('\n').filter((l) => /admin API: .*(wrong admin token|is refused for)/.test(l));
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(2);
  });
});
