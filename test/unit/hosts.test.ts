/**
 * Which addresses another host can reach: loopback binds need no token
 * (src/transport/hosts.ts), and the admin address a node advertises in
 * etcd for `dlock admin --etcd` is one other hosts can reach
 * (advertisedAdmin): never loopback for a node on a routable host (the
 * admin token would go to whatever listens on the caller's own loopback),
 * and a wildcard bind on the node's own host.
 */
import { describe, expect, it } from 'vitest';
import { advertisedAdmin } from '../../src/admin/admin-http.js';
import { isLoopback } from '../../src/transport/hosts.js';

describe('hosts', () => {
  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '::ffff:127.0.0.1']) expect(isLoopback(h), h).toBe(true);
    for (const h of ['10.0.0.5', '0.0.0.0', '::', '127.0.0', '1127.0.0.1', 'example.org']) expect(isLoopback(h), h).toBe(false);
  });

  it('advertises an admin API other hosts can reach, or none', () => {
    expect(advertisedAdmin('10.0.0.5:9080', '10.0.0.5')).toBe('10.0.0.5:9080');
    expect(advertisedAdmin('0.0.0.0:9080', '10.0.0.5')).toBe('10.0.0.5:9080');
    expect(advertisedAdmin(':::9080', '10.0.0.5')).toBe('10.0.0.5:9080');
    expect(advertisedAdmin('127.0.0.1:9080', '10.0.0.5')).toBeNull();
    expect(advertisedAdmin('127.0.0.1:9080', '127.0.0.1')).toBe('127.0.0.1:9080'); // one machine: loopback is right
    expect(advertisedAdmin('0.0.0.0:9080', '0.0.0.0')).toBeNull();
  });
});
