/**
 * The TypeScript client library against a real cluster.
 */
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, ConnectionClosedError, LockLostError, LockNotAcquiredError, ProtocolError, ServerError, type DlockClient } from '../../src/index.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { eventually, LineClient } from '../helpers/line-client.js';

let t: TestCluster;
const clients: DlockClient[] = [];
async function open(node = 'follower-1'): Promise<DlockClient> {
  const c = await connect({ port: t.port(node) });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  t = await startCluster(2);
});
afterAll(async () => {
  for (const c of clients) c.destroy();
  await t.cluster.close();
});

describe('client library', () => {
  it('knows its id and node, and returns typed results for every verb', async () => {
    const a = await open('follower-1');
    const b = await open('follower-2');
    expect(a.node).toBe('follower-1');
    expect(Math.floor(a.id / 10000)).toBe(2);
    expect(await a.whoami()).toEqual({ client: a.id, node: 'follower-1', leads: false });
    await a.ping();
    expect(await a.help()).toMatch(/^preempt <lock>/);

    const g = await a.preempt('c1');
    if (!g.ok) throw new Error('expected a grant');
    expect(g).toEqual({ op: 'preempt', ok: true, owner: a.id, token: g.token });
    expect(await b.preempt('c1')).toEqual({ op: 'preempt', ok: false, owner: a.id });
    expect(await b.check('c1')).toEqual({ held: true, owner: a.id, token: g.token, ttlLeft: null });
    expect(await b.validate('c1', g.token)).toEqual({ valid: true });
    expect(await b.validate('c1', g.token + 1000)).toEqual({ valid: false, owner: a.id, token: g.token });
    expect(await b.release('c1')).toEqual({ op: 'release', ok: false, owner: a.id });
    expect(await b.renew('c1', 100)).toEqual({ op: 'renew', ok: false, owner: a.id });
    expect(await a.renew('c1', 60_000)).toEqual({ op: 'renew', ok: true, token: g.token });
    expect(await b.acquire('c1', { timeout: 0 })).toEqual({ op: 'acquire', ok: false, owner: a.id });
    expect(await a.release('c1')).toEqual({ op: 'release', ok: true });
    expect(await b.check('c1')).toEqual({ held: false });
    expect(await b.validate('c1', g.token)).toEqual({ valid: false, owner: null, token: null });
    expect(await b.release('c1')).toEqual({ op: 'release', ok: false, owner: null });
  });

  it('pipelines: many calls in flight resolve in order', async () => {
    const a = await open('follower-2');
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => (i % 2 === 0 ? a.preempt(`pipe-${i}`) : a.check(`pipe-${i - 1}`))));
    results.forEach((r, i) => {
      if (i % 2 === 0) expect(r).toMatchObject({ op: 'preempt', ok: true, owner: a.id });
      else expect(r).toMatchObject({ held: true, owner: a.id });
    });
  });

  it('acquire waits and is granted when the holder releases', async () => {
    const a = await open('leader');
    const b = await open('follower-1');
    await a.preempt('c-wait');
    const pending = b.acquire('c-wait', { ttl: 60_000 });
    await eventually(async () => (await t.cluster.locks('leader')).find((r) => r.lock === 'c-wait')?.waiters.length === 1, 'b to wait');
    await a.release('c-wait');
    expect(await pending).toMatchObject({ op: 'acquire', ok: true, owner: b.id });
  });

  it('errors are typed: TypeError/RangeError before sending bad arguments, ConnectionClosedError after close', async () => {
    const a = await open();
    await expect(a.raw('bogus')).resolves.toMatch(/^Error: unknown command/);
    await expect(a.preempt('has space')).rejects.toBeInstanceOf(TypeError);
    await expect(a.preempt('x', { ttl: 0 })).rejects.toBeInstanceOf(RangeError);
    await expect(a.acquire('x', { timeout: 1.5 })).rejects.toBeInstanceOf(RangeError);
    await expect(a.validate('x', 0)).rejects.toBeInstanceOf(RangeError);
    await expect(a.raw('two\nlines')).rejects.toBeInstanceOf(TypeError);
    await expect(a.preempt('x'.repeat(256))).rejects.toBeInstanceOf(TypeError);
    // raw() passes the node's Error: line through; the connection stays usable
    const err = await a.raw('preempt');
    expect(err).toMatch(/^Error: preempt needs a lock name/);
    await a.ping();
    await a.close();
    expect(a.closed).toBe(true);
    await expect(a.ping()).rejects.toBeInstanceOf(ConnectionClosedError);
  });

  it('an Error: reply to a typed call rejects with ServerError carrying the message', async () => {
    // A stand-in node that greets and then rejects everything.
    const server = createServer((sock) => {
      sock.write('client_id: 10001 node: leader\n');
      sock.on('data', () => sock.write('Error: leader unavailable; the request was not applied\n'));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const c = await connect({ port });
    const err = await c.preempt('x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServerError);
    expect((err as ServerError).message).toBe('leader unavailable; the request was not applied');
    expect((err as ServerError).code).toBe('ERR_DLOCK_SERVER');
    c.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it('a reply it cannot parse rejects with ProtocolError', async () => {
    const server = createServer((sock) => {
      sock.write('client_id: 10001 node: leader\n');
      sock.on('data', () => sock.write('PreemptLock Maybe\n'));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const c = await connect({ port: (server.address() as AddressInfo).port });
    await expect(c.preempt('x')).rejects.toBeInstanceOf(ProtocolError);
    c.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it('close() says quit and releases session locks', async () => {
    const a = await open('follower-2');
    const b = await open('leader');
    await a.preempt('c-close');
    await a.close();
    await eventually(async () => !(await b.check('c-close')).held, 'c-close released');
  });

  it('a connection that fails to open rejects with ConnectionClosedError', async () => {
    const probe = await LineClient.open(t.port('leader'));
    probe.close();
    // port 1 on loopback: nothing listens there
    await expect(connect({ port: 1 })).rejects.toBeInstanceOf(ConnectionClosedError);
  });
});

describe('keepLease', () => {
  it('keeps a short lease alive well past its ttl, then releases it', async () => {
    const a = await open('follower-1');
    const b = await open('follower-2');
    const lease = await a.keepLease('kl', { ttl: 150 });
    const start = performance.now();
    // across several ttl periods, the lock stays ours with the same token
    await eventually(async () => {
      const c = await b.check('kl');
      expect(c).toMatchObject({ held: true, owner: a.id, token: lease.token });
      return performance.now() - start > 600;
    }, 'four ttl periods to pass', 5000, 25);
    expect(await lease.release()).toEqual({ op: 'release', ok: true });
    expect(await lease.lost).toBeNull();
    expect(await b.check('kl')).toEqual({ held: false });
  });

  it('tells the caller when the lease is lost (connection closed)', async () => {
    const a = await open('leader');
    let told: LockLostError | null = null;
    const lease = await a.keepLease('kl2', { ttl: 5000, onLost: (e) => (told = e) });
    a.destroy();
    const err = await lease.lost;
    expect(err).toBeInstanceOf(LockLostError);
    expect(told).toBe(err);
    expect(err?.message).toMatch(/connection closed/);
    // Releasing a lost lease resolves (a `finally` may always call it), saying it released nothing.
    expect(await lease.release()).toEqual({ op: 'release', ok: false, owner: null });
    expect(await lease.release()).toEqual({ op: 'release', ok: false, owner: null });
  });

  it('reports a lock it could not get within the timeout', async () => {
    const a = await open('leader');
    const b = await open('follower-1');
    await a.preempt('kl3');
    await expect(b.keepLease('kl3', { ttl: 1000, timeout: 50 })).rejects.toBeInstanceOf(LockNotAcquiredError);
  });
});
