/**
 * The in-process link (src/transport/transport-port.ts) carries the codec's
 * text between worker threads: a batch that does not decode closes the
 * link with the reason, as a TCP link does, and never throws out of the
 * port's message handler (that would stop the node's thread).
 */
import { MessageChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { PortTransport } from '../../src/transport/transport-port.js';
import { eventually } from '../helpers/line-client.js';

describe('PortTransport', () => {
  it('a batch that does not decode closes the link with the reason; the thread goes on', async () => {
    const { port1, port2 } = new MessageChannel();
    const t = new PortTransport(port1);
    const got: unknown[] = [];
    let closed: string | null = null;
    t.onFrames((fs) => got.push(...fs));
    t.onClose((reason) => (closed = reason));
    // A forward whose command the codec refuses (an unknown field).
    port2.postMessage(JSON.stringify({ v: 1, type: 'forward', req: 1, cmd: { op: 'session', client: 10001, hash: 'a'.repeat(64), secret: 'x' } }));
    await eventually(() => closed !== null, 'the link closed', 2000, 10);
    expect(closed).toMatch(/^bad frame: /);
    expect(got).toEqual([]);
    port2.close();
  });
});
