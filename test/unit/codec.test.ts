/**
 * The inter-node codec and the in-memory transport that round-trips it.
 */
import { describe, expect, it } from 'vitest';
import { CodecError, decodeBatch, decodeFrame, encodeBatch, encodeFrame, type Frame } from '../../src/codec/frame.js';
import { createState, apply, snapshot } from '../../src/core/lock-table.js';
import { MemoryTransport } from '../../src/transport/transport-memory.js';

const state = createState();
apply(state, { op: 'preempt', client: 10001, lock: 'l\u00e9\u{1F512}', ttl: 50 }, 7);
apply(state, { op: 'acquire', client: 20001, lock: 'l\u00e9\u{1F512}', ttl: null, timeout: null }, 8);

const FRAMES: Frame[] = [
  { v: 1, type: 'hello', node: 'follower-1', incarnation: 'abc', seq: null },
  { v: 1, type: 'hello', node: 'follower-2', incarnation: 'def', seq: 41 },
  { v: 1, type: 'resume', seq: 41, to: 44 },
  { v: 1, type: 'snapshot', seq: 3, part: 0, parts: 1, state: snapshot(state) },
  { v: 1, type: 'entry', seq: 4, at: 1_700_000_000_000, cmd: { op: 'acquire', client: 20001, lock: 'a-b\u00e9c', ttl: 5, timeout: null }, from: 0, req: 0 },
  { v: 1, type: 'entry', seq: 5, at: 1, cmd: { op: 'expire', lock: 'x', token: 9 }, from: 0, req: 0 },
  { v: 1, type: 'ack', seq: 5 },
  { v: 1, type: 'commit', seq: 5 },
  { v: 1, type: 'voter' },
  { v: 1, type: 'ping' },
  { v: 1, type: 'challenge', nonce: 'n'.repeat(32) },
  { v: 1, type: 'auth', role: 'node', nonce: 'c'.repeat(32), proof: 'p'.repeat(43) },
  { v: 1, type: 'welcome', proof: 'q'.repeat(43) },
  { v: 1, type: 'view', stats: { name: 'n1' }, locks: [{ lock: 'l', owner: 10001, token: 3, ttlLeft: null, waiters: [20001] }], log: [{ t: 1, kind: 'warn', text: 'a line\nwith an LF' }] },
  { v: 1, type: 'forward', req: 0, cmd: { op: 'disconnect', client: 30001 } },
  { v: 1, type: 'reply', req: 7, seq: 5, reply: { op: 'release', ok: false, owner: null } },
];

describe('codec', () => {
  it('round-trips every frame type, alone and in a batch', () => {
    for (const f of FRAMES) expect(decodeFrame(encodeFrame(f))).toEqual(f);
    const batch = encodeBatch(FRAMES);
    expect(batch.split('\n')).toHaveLength(FRAMES.length); // one line per frame, even with LF in a log line
    expect(decodeBatch(batch)).toEqual(FRAMES);
    expect(decodeBatch('')).toEqual([]);
  });

  it('a prepare carries its entries as JSON.stringify would, each entry\'s text made once for every follower', () => {
    const entries = [
      { seq: 8, version: 3, at: 40, cmd: { op: 'limits' as const, limits: { maxLocksPerClient: 2, maxWaitersPerLock: 1 } }, origin: 0, req: 0 },
      { seq: 9, version: 3, at: 41, cmd: { op: 'preempt' as const, client: 20001, lock: 'l\u00e9\u{1F512}', ttl: null }, origin: 2, req: 7 },
    ];
    const to = (f: string): Frame => ({ v: 1, type: 'prepare', version: 3, from: 'a.1', to: f, prevSeq: 7, prevVersion: 2, entries, commit: 7, sent: 1.5, ackSeen: null, readBase: 0.25 });
    for (const f of ['b.1', 'c.1', 'b.1']) {
      const text = encodeFrame(to(f));
      expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(to(f))));
      expect(decodeFrame(text)).toEqual(to(f));
    }
    // With no entries: a heartbeat or a commit sent on.
    expect(decodeFrame(encodeFrame({ ...to('b.1'), entries: [] } as Frame))).toEqual({ ...to('b.1'), entries: [] });
  });

  it('rejects other versions, unknown types and malformed frames with CodecError', () => {
    expect(() => decodeFrame('{"v":2,"type":"ack","seq":1}')).toThrow(/unsupported frame version 2/);
    expect(() => decodeFrame('{"v":1,"type":"gossip"}')).toThrow(/unknown frame type "gossip"/);
    expect(() => decodeFrame('{"v":1,"type":"ack","seq":-1}')).toThrow(/malformed ack frame/);
    expect(() => decodeFrame('{"v":1,"type":"entry","seq":1,"at":2}')).toThrow(/malformed entry frame/);
    expect(() => decodeFrame('not json')).toThrow(CodecError);
    expect(() => decodeFrame('[1]')).toThrow(CodecError);
  });

  it('carries a snapshot as JSON with its names, then TAB and its numbers in base64; rejects one whose columns disagree', () => {
    const text = encodeFrame({ v: 1, type: 'snapshot', seq: 3, part: 1, parts: 2, state: snapshot(state) });
    const [json, nums, ...more] = text.split('\t');
    expect(more).toEqual([]);
    const raw = JSON.parse(json as string) as { state: { names: string; count: number } };
    expect(raw.state.names).toBe('l\u00e9\u{1F512}');
    expect(raw.state.count).toBe(1);
    expect(Buffer.from(nums as string, 'base64')).toHaveLength(24);
    expect(text).not.toContain('\n'); // a batch splits frames on LF
    const frame = (header: object, payload: string | null = nums as string): string => `${JSON.stringify(header)}${payload === null ? '' : `\t${payload}`}`;
    expect(decodeFrame(frame(raw))).toEqual(decodeFrame(text));
    expect(() => decodeFrame(frame({ ...raw, state: { ...raw.state, count: 2 } }))).toThrow(/snapshot of 2 locks holds 1 names and 1 rows/);
    expect(() => decodeFrame(frame({ ...raw, part: 2 }))).toThrow(/malformed snapshot frame/);
    expect(() => decodeFrame(frame(raw, 'AAAA'))).toThrow(/1 names and 0.125 rows/);
    expect(() => decodeFrame(frame(raw, null))).toThrow(/snapshot frame without its numbers/);
    expect(() => decodeFrame(frame({ v: 1, type: 'ack', seq: 1 }, 'AAAA'))).toThrow(/ack frame with a payload/);
  });
});

describe('memory transport', () => {
  it('delivers frames in order, one encoded batch per event-loop turn', async () => {
    const [a, b] = MemoryTransport.pair();
    const got: Frame[][] = [];
    const arrived = new Promise<void>((resolve) => {
      b.onFrames((frames) => {
        got.push(frames);
        if (got.flat().length === FRAMES.length + 1) resolve();
      });
    });
    for (const f of FRAMES) a.send(f);
    await new Promise((r) => setImmediate(r));
    a.send({ v: 1, type: 'commit', seq: 6 });
    await arrived;
    expect(a.wire).toHaveLength(2);
    expect(got).toEqual([FRAMES, [{ v: 1, type: 'commit', seq: 6 }]]);
  });

  it('tells the peer when one side closes, and drops later sends', async () => {
    const [a, b] = MemoryTransport.pair();
    b.onFrames(() => {});
    const reason = new Promise<string>((resolve) => b.onClose(resolve));
    a.close();
    expect(await reason).toBe('peer closed the link');
    expect(b.closed).toBe(true);
    b.send({ v: 1, type: 'ack', seq: 1 });
    expect(b.wire).toEqual([]);
  });
});
