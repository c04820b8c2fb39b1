/**
 * What a node tells views (stats, lock map) stays cheap and right however
 * large the table grows: these run on the node's thread while it serves.
 */
import { describe, expect, it } from 'vitest';
import { apply } from '../../src/core/lock-table.js';
import { newIdCounter } from '../../src/replica/client-ids.js';
import { SORTED_LOCK_MAP_MAX } from '../../src/node/node.js';
import { primaryNode, type PortNode } from '../helpers/port-node.js';
import { NodeLog } from '../../src/replica/node-log.js';

function leader(): PortNode {
  return primaryNode({ name: 'leader', index: 0, log: new NodeLog(() => {}), idCounter: newIdCounter() });
}

describe('lock map and stats for views', () => {
  it('a small table is listed sorted by name, with lease time left and waiters', () => {
    const l = leader();
    apply(l.state, { op: 'preempt', client: 10001, lock: 'b', ttl: null }, 0);
    apply(l.state, { op: 'preempt', client: 10002, lock: 'a', ttl: 60_000 }, Date.now());
    apply(l.state, { op: 'acquire', client: 20001, lock: 'b', ttl: null, timeout: null }, 0);
    apply(l.state, { op: 'acquire', client: 30001, lock: 'b', ttl: null, timeout: null }, 0);
    const rows = l.lockMap();
    expect(rows.map((r) => r.lock)).toEqual(['a', 'b']);
    expect(rows[0]?.ttlLeft).toBeGreaterThan(59_000);
    expect(rows[1]).toEqual({ lock: 'b', owner: 10001, token: 1, ttlLeft: null, waiters: [20001, 30001] });
    expect(l.stats()).toMatchObject({ locks: 2, waiters: 2 });
  });

  it('a large table is listed in table order up to the limit, without sorting it all', () => {
    const l = leader();
    const n = SORTED_LOCK_MAP_MAX + 5;
    for (let i = n; i > 0; i--) apply(l.state, { op: 'preempt', client: 10001, lock: `k${i}`, ttl: null }, 0);
    expect(l.lockMap(3).map((r) => r.lock)).toEqual([`k${n}`, `k${n - 1}`, `k${n - 2}`]);
    expect(l.stats().locks).toBe(n);
  });
});
