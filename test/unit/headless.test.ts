/**
 * The headless view never buffers without bound behind a slow reader.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { headlessView } from '../../src/host/headless.js';
import { eventually } from '../helpers/line-client.js';

describe('headless view', () => {
  it('prefixes lines with the node and a time', () => {
    const out = new PassThrough();
    headlessView(out)({ type: 'log', node: 'follower-1', lines: [{ t: Date.UTC(2026, 0, 2, 3, 4, 5, 6), kind: 'repl', text: 'UpdateLockmap lock01 10001' }] });
    expect(String(out.read())).toMatch(/^follower-1 \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UpdateLockmap lock01 10001\n$/);
  });

  it('drops lines past the bound while nobody reads, then says how many', async () => {
    const out = new PassThrough({ highWaterMark: 1024 });
    const view = headlessView(out, 4096);
    const line = { t: 0, kind: 'req' as const, text: 'x'.repeat(100) };
    for (let i = 0; i < 1000; i++) view({ type: 'log', node: 'leader', lines: [line] });
    // about 4 KiB was accepted, not 100 KiB
    expect(out.writableLength).toBeLessThan(8192);
    // the reader comes back: everything buffered arrives, then the count of what was lost
    let text = '';
    out.setEncoding('utf8');
    out.on('data', (d: string) => (text += d));
    await new Promise<void>((resolve) => out.once('drain', () => setImmediate(resolve)));
    const m = /(\d+) log lines dropped: the output was not being read fast enough/.exec(text);
    expect(m).not.toBeNull();
    const written = text.split('\n').filter((l) => l.startsWith('leader')).length;
    expect(written + Number(m?.[1])).toBe(1000);
  });
});

describe('headless view, ordering', () => {
  it('writes the lines of different nodes in time order, even when a later one arrives first', async () => {
    const out = new PassThrough();
    out.setEncoding('utf8');
    let text = '';
    out.on('data', (d: string) => (text += d));
    const view = headlessView(out, undefined, 'text', 50);
    const now = Date.now();
    view({ type: 'log', node: 'follower-2', lines: [{ t: now - 20, kind: 'repl', text: 'second' }] });
    view({ type: 'log', node: 'leader', lines: [{ t: now - 30, kind: 'repl', text: 'first' }] });
    view.note('cluster', 'warn', 'third');
    view.flush();
    await new Promise((resolve) => setImmediate(resolve));
    expect(text.split('\n').filter((l) => l !== '').map((l) => l.split(' ').pop())).toEqual(['first', 'second', 'third']);
    expect(text).toMatch(/^cluster +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} third$/m); // its own lines are timestamped too
  });

  it('a line stamped ahead of the wall clock (a clock stepped back since) is written within the hold, not held for the step', async () => {
    const out = new PassThrough();
    out.setEncoding('utf8');
    let text = '';
    out.on('data', (d: string) => (text += d));
    const view = headlessView(out, undefined, 'text', 50);
    view({ type: 'log', node: 'leader', lines: [{ t: Date.now() + 90_000, kind: 'repl', text: 'before-the-step' }] });
    const t0 = performance.now();
    await eventually(() => text.includes('before-the-step'), 'the line written', 2000);
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});
