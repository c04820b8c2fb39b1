/**
 * Control calls to workers always end (DEVELOPERS.md rule 7): a call to a
 * worker that never answers times out, and a worker that dies fails every
 * call in flight, with real worker threads.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { clientIdFor, nodeOfClient } from '../../src/replica/client-ids.js';
import { WorkerCallError, WorkerHandle, type WorkerExit } from '../../src/host/threads/worker-handle.js';

const dir = mkdtempSync(join(tmpdir(), 'dlock-worker-'));
function workerFile(name: string, body: string): URL {
  const file = join(dir, name);
  writeFileSync(file, body);
  return pathToFileURL(file);
}

interface Api {
  hang(): Promise<void>;
}

describe('WorkerHandle', () => {
  it('a call the worker never answers fails with ERR_WORKER_TIMEOUT', async () => {
    const silent = workerFile('silent.mjs', 'setInterval(() => {}, 1000);\n'); // never exposes an API
    const exits: WorkerExit[] = [];
    const h = new WorkerHandle<Api>('silent', silent, {}, (e) => exits.push(e));
    const err = await h.call('hang', (r) => r.hang(), 200).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkerCallError);
    expect((err as WorkerCallError).code).toBe('ERR_WORKER_TIMEOUT');
    expect((err as Error).message).toBe('silent: hang timed out after 200 ms');
    await h.terminate();
    expect(exits).toHaveLength(1);
  });

  it('a worker that dies fails every call in flight at once, and later calls too', async () => {
    const dying = workerFile('dying.mjs', "setTimeout(() => { throw new Error('boom'); }, 100);\n");
    const exits: WorkerExit[] = [];
    const h = new WorkerHandle<Api>('dying', dying, {}, (e) => exits.push(e));
    const started = performance.now();
    const calls = [1, 2, 3].map(() => h.call('hang', (r) => r.hang(), 30_000).catch((e: unknown) => e));
    const errs = await Promise.all(calls);
    expect(performance.now() - started).toBeLessThan(10_000); // not the 30 s deadline
    for (const e of errs) {
      expect(e).toBeInstanceOf(WorkerCallError);
      expect((e as WorkerCallError).code).toBe('ERR_WORKER_EXITED');
    }
    const exit = await h.exited;
    expect(exit.error?.message).toBe('boom');
    expect(exits).toEqual([exit]);
    const later = await h.call('hang', (r) => r.hang()).catch((e: unknown) => e);
    expect((later as WorkerCallError).code).toBe('ERR_WORKER_EXITED');
  });

  it('a call made while the worker is being terminated fails with ERR_WORKER_EXITED, and the handle says it is not up', async () => {
    const idle = workerFile('idle.mjs', 'setInterval(() => {}, 1000);\n');
    const h = new WorkerHandle<Api>('idle', idle, {}, () => {});
    expect(h.up).toBe(true);
    const ending = h.terminate();
    // Between the start of terminate() and the exit event: the remote is released.
    expect(h.up).toBe(false);
    const err = await h.call('hang', (r) => r.hang(), 5000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkerCallError);
    expect((err as WorkerCallError).code).toBe('ERR_WORKER_EXITED');
    expect((err as Error).message).toBe('idle is being ended; cannot hang');
    await ending;
    expect(h.up).toBe(false);
  });
});

describe('client ids [LP-4]', () => {
  it('follow the original scheme up to 9999 clients per node, then stay unique', () => {
    expect(clientIdFor(0, 1)).toBe(10001);
    expect(clientIdFor(1, 1)).toBe(20001);
    expect(clientIdFor(2, 9999)).toBe(39999);
    expect(clientIdFor(0, 10000)).toBe(10000001);
    expect(clientIdFor(1, 10000)).toBe(10000002);
    const seen = new Set<number>();
    for (const node of [0, 1, 2, 50, 98]) {
      for (const k of [1, 2, 9998, 9999, 10000, 10001, 123456, 9_999_999]) {
        const id = clientIdFor(node, k);
        expect(seen.has(id)).toBe(false);
        seen.add(id);
        expect(nodeOfClient(id)).toBe(node);
      }
    }
    expect(() => clientIdFor(99, 1)).toThrow(RangeError);
    expect(() => clientIdFor(0, 0)).toThrow(RangeError);
  });
});
