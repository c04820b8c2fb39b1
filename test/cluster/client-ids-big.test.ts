/**
 * Client ids past 2^31 [LP-4]: a node whose ordinal counter is just below
 * 2^31 keeps greeting clients with distinct, valid ids past it (over real
 * TCP), and a data directory's reservation past 2^31 is counted on from.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ClientIdAllocator, clientIdFor, newIdCounter, nodeOfClient, setOrdinalLimit } from '../../src/replica/client-ids.js';
import { NodeLog } from '../../src/replica/node-log.js';
import { IdReservations } from '../../src/store/ids-file.js';
import { primaryNode } from '../helpers/port-node.js';
import { LineClient } from '../helpers/line-client.js';

const START = 2 ** 31 - 3;

/** Set a counter, whichever integer array it is (the test runs against either). */
function setCounter(counter: ReturnType<typeof newIdCounter>, k: number): void {
  const c = counter as unknown as Int32Array | BigInt64Array;
  if (c instanceof BigInt64Array) Atomics.store(c, 0, BigInt(k));
  else Atomics.store(c, 0, k);
}

describe('client ids past 2^31 [LP-4]', () => {
  it('a node whose counter starts just below 2^31 greets clients past it with distinct valid ids', async () => {
    const idCounter = newIdCounter();
    setCounter(idCounter, START);
    const node = primaryNode({ name: 'leader', index: 3, log: new NodeLog(() => {}), idCounter });
    const port = await node.listen('127.0.0.1', 0);
    const clients: LineClient[] = [];
    try {
      for (let i = 0; i < 6; i++) clients.push(await LineClient.open(port));
      const ids = clients.map((c) => c.id);
      expect(ids).toEqual(Array.from({ length: 6 }, (_, i) => clientIdFor(3, START + 1 + i)));
      expect(new Set(ids).size).toBe(6);
      for (const id of ids) {
        expect(Number.isSafeInteger(id)).toBe(true);
        expect(nodeOfClient(id)).toBe(3);
      }
      expect(await clients[5]?.ask('whoami')).toBe(`client_id: ${ids[5]} node: leader`);
    } finally {
      for (const c of clients) c.close();
      await node.close();
    }
  });

  it('an allocator counts on past 2^31, and ids.json reservations past it are kept', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dlock-ids-big-'));
    try {
      writeFileSync(join(dir, 'ids.json'), `${JSON.stringify({ v: 1, next: { '0': START } })}\n`);
      const ids = new IdReservations(dir);
      const a = new ClientIdAllocator(0, ids.counter(0));
      const got = Array.from({ length: 5 }, () => a.next());
      expect(got).toEqual(Array.from({ length: 5 }, (_, i) => clientIdFor(0, START + 1 + i)));
      // A restart begins above every ordinal reserved before, past 2^31.
      const again = new ClientIdAllocator(0, new IdReservations(dir).counter(0)).next();
      expect(again).toBeGreaterThan(got[4] as number);
      expect(Number.isSafeInteger(again)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a client id reservation', () => {
  it('no id is handed out past the limit; raising the limit lets ids go on, in order [LP-4]', () => {
    const counter = newIdCounter();
    setOrdinalLimit(counter, 2);
    const ids = new ClientIdAllocator(1, counter);
    expect([ids.next(), ids.next(), ids.next()]).toEqual([20001, 20002, null]);
    setOrdinalLimit(counter, 1); // never lowered
    expect(ids.next()).toBeNull();
    setOrdinalLimit(counter, 3);
    expect(ids.next()).toBe(20003);
  });
});
