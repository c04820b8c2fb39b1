/**
 * The client library's conveniences against a real node:
 * withLock, `await using`, the AbortSignal of a held lock, acquiring with
 * retry and a cancelling signal, and errors that carry their cause.
 */
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, ConnectionClosedError, LockNotAcquiredError, type DlockClient } from '../../src/client/client.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let t: TestCluster;
let other: DlockClient;

beforeAll(async () => {
  t = await startCluster(1);
  other = await connect({ port: t.port('leader') });
});
afterAll(async () => {
  await other.close();
  await t.cluster.close();
});

const open = (): Promise<DlockClient> => connect({ port: t.port('follower-1') });

describe('the client library', () => {
  it('withLock runs fn with the token and releases in finally, also when fn throws', async () => {
    const c = await open();
    const seen = await c.withLock('api-with', async ({ token, signal }) => {
      expect((await other.check('api-with'))).toMatchObject({ held: true, owner: c.id, token });
      expect(signal.aborted).toBe(false);
      return token;
    }, { ttl: 5000 });
    expect(seen).toBeGreaterThan(0);
    expect(await other.check('api-with')).toEqual({ held: false });
    await expect(c.withLock('api-with', () => Promise.reject(new Error('boom')), { ttl: 5000 })).rejects.toThrow('boom');
    expect(await other.check('api-with')).toEqual({ held: false });
    await c.close();
  });

  it('await using: the lease is released and the client closed at the end of the block', async () => {
    {
      await using c = await open();
      await using lease = await c.keepLease('api-using', { ttl: 5000 });
      expect(await other.check('api-using')).toMatchObject({ held: true, token: lease.token });
    }
    expect(await other.check('api-using')).toEqual({ held: false });
  });

  it('a held lock\'s signal aborts, with the LockLostError as reason, when it is lost', async () => {
    const c = await open();
    const lease = await c.keepLease('api-signal', { ttl: 5000 });
    const aborted = new Promise<unknown>((resolve) => lease.signal.addEventListener('abort', () => resolve(lease.signal.reason)));
    c.destroy(); // the connection breaks, and this client does not reconnect
    expect(await aborted).toMatchObject({ name: 'LockLostError', code: 'ERR_DLOCK_LOST' });
  });

  it('acquiring retries with a delay, and a signal cancels the wait', async () => {
    const c = await open();
    expect((await other.preempt('api-retry')).ok).toBe(true);
    await expect(c.keepLease('api-retry', { ttl: 5000, timeout: 0, retry: { retries: 2, delayMs: 10 } })).rejects.toBeInstanceOf(LockNotAcquiredError);
    // Released between two tries: a later try gets it.
    const gotIt = c.keepLease('api-retry', { ttl: 5000, timeout: 0, retry: { retries: 50, delayMs: 20 } });
    await other.release('api-retry');
    const lease = await gotIt;
    expect(await other.check('api-retry')).toMatchObject({ held: true, owner: c.id });
    await lease.release();
    // A wait cancelled by its signal rejects with the signal's reason.
    expect((await other.preempt('api-retry')).ok).toBe(true);
    const ac = new AbortController();
    const waiting = c.keepLease('api-retry', { ttl: 5000, signal: ac.signal });
    ac.abort(new Error('no longer needed'));
    await expect(waiting).rejects.toThrow('no longer needed');
    await other.release('api-retry');
    await c.close();
  });

  it('a connection error carries the system error as cause and its code; a deliberate close is not an error', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const err = await connect({ port }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionClosedError);
    expect(err).toMatchObject({ code: 'ECONNREFUSED', cause: { code: 'ECONNREFUSED' } });
    const c = await open();
    const told = new Promise<Error | null>((resolve) => c.onClose(resolve));
    await c.close();
    expect(await told).toBe(null);
  });
});
