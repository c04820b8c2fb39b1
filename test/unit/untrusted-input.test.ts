/**
 * What comes from a socket or from etcd is checked before use (fuzzed with
 * fast-check): the link decoder turns any text into a frame whose every
 * field is well-formed, or a CodecError, never another exception; every
 * command it lets through, and every command that passes commandError, the
 * lock table applies without throwing and with its invariants kept; an op
 * the table does not know changes nothing. Beside them, the rules a leader
 * applies to a node's forwards, and the parsers of what etcd holds.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CodecError, decodeFrame, encodeFrame, type Frame } from '../../src/codec/frame.js';
import { commandError } from '../../src/core/command-check.js';
import { apply, createState, restore, snapshot, type Command, type TableState } from '../../src/core/lock-table.js';
import { parseMember } from '../../src/replication/etcd-members.js';
import { forwardError } from '../../src/replication/forward-check.js';
import { parseLeaderInfo } from '../../src/replication/etcd-election.js';

const OPS = ['preempt', 'acquire', 'release', 'renew', 'disconnect', 'session', 'resume', 'revoke', 'expire', 'floor', 'timeout', 'bogus', '__proto__', 'constructor'];
const FIELDS = ['op', 'client', 'lock', 'ttl', 'timeout', 'deadline', 'limits', 'gen', 'hash', 'target', 'node', 'token', 'extra'];

/** Values a field may hold on the wire: right ones, wrong types, out of range. */
const value: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(0, 1, -1, 10001, 20002, 2 ** 31, 2 ** 53, 1.5, 86_400_000, 86_400_001, null, true, '', 'a', 'l', 'lock 1', 'x\n', 'ü', 'a'.repeat(300)),
  fc.integer({ min: -5, max: 40_000 }),
  fc.string({ maxLength: 12 }),
  fc.constant('0'.repeat(64)),
  fc.constant({ maxLocksPerClient: 2, maxWaitersPerLock: 2 }),
  fc.constant({ maxLocksPerClient: 2, maxWaitersPerLock: 2, maxLocks: 3 }),
  fc.constant({ maxLocksPerClient: 0 }),
  fc.constant([1, 2]),
);

/** Commands that pass commandError, on a few clients and locks so that they interact. */
const goodCommand: fc.Arbitrary<Command> = fc
  .record({
    op: fc.constantFrom('preempt', 'acquire', 'release', 'renew', 'disconnect', 'session', 'resume', 'revoke', 'expire', 'floor', 'timeout'),
    client: fc.constantFrom(10001, 10002, 20001, 30001),
    target: fc.constantFrom(10001, 10002, 20001, 30001),
    lock: fc.constantFrom('a', 'b', 'c'),
    ttl: fc.option(fc.integer({ min: 1, max: 50 }), { nil: null }),
    timeout: fc.option(fc.integer({ min: 0, max: 50 }), { nil: null }),
    token: fc.integer({ min: 1, max: 40 }),
    hash: fc.constantFrom('0'.repeat(64), 'f'.repeat(64)),
    node: fc.integer({ min: 0, max: 3 }),
    limits: fc.option(fc.record({ maxLocksPerClient: fc.integer({ min: 1, max: 3 }), maxWaitersPerLock: fc.integer({ min: 1, max: 3 }), maxLocks: fc.integer({ min: 1, max: 4 }) }), { nil: undefined }),
  })
  .map((r): Command => {
    switch (r.op) {
      case 'preempt':
        return { op: 'preempt', client: r.client, lock: r.lock, ttl: r.ttl, ...(r.limits === undefined ? {} : { limits: r.limits }) };
      case 'acquire':
        return { op: 'acquire', client: r.client, lock: r.lock, ttl: r.ttl, timeout: r.timeout, ...(r.limits === undefined ? {} : { limits: r.limits }) };
      case 'release':
        return { op: 'release', client: r.client, lock: r.lock };
      case 'renew':
        return { op: 'renew', client: r.client, lock: r.lock, ttl: r.ttl ?? 10 };
      case 'disconnect':
        return { op: 'disconnect', client: r.client };
      case 'session':
        return { op: 'session', client: r.client, hash: r.hash };
      case 'resume':
        return { op: 'resume', client: r.client, target: r.target, hash: r.hash, node: r.node };
      case 'revoke':
        return { op: 'revoke', lock: r.lock };
      case 'expire':
        return { op: 'expire', lock: r.lock, token: r.token };
      case 'floor':
        return { op: 'floor', token: r.token };
      default:
        return { op: 'timeout', client: r.client, lock: r.lock };
    }
  });

/**
 * Objects shaped like commands: well-formed ones, the same with one field
 * changed to any value, dropped, or one added, and any op with any fields.
 */
const nearCommand: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  goodCommand.map((c) => ({ ...c }) as Record<string, unknown>),
  fc.tuple(goodCommand, fc.constantFrom(...FIELDS), value, fc.constantFrom('set', 'drop')).map(([c, k, v, how]) => {
    const x: Record<string, unknown> = { ...c };
    if (how === 'drop') delete x[k];
    else x[k] = v;
    return x;
  }),
  fc.tuple(fc.constantFrom(...OPS), fc.dictionary(fc.constantFrom(...FIELDS.slice(1)), value, { maxKeys: 7 })).map(([op, rest]) => ({ ...rest, op })),
);

/** What must hold of any table, whatever was applied to it. */
function invariants(s: TableState): void {
  const owned = new Map<number, number>();
  for (const [name, e] of s.locks) {
    expect(e.token).toBeLessThan(s.nextToken); // [LP-7]
    expect(e.waiters.map((w) => w.client)).not.toContain(e.owner);
    for (const w of e.waiters) expect(s.waiting.get(w.client)).toBe(name);
    owned.set(e.owner, (owned.get(e.owner) ?? 0) + 1);
  }
  expect(new Map([...s.owned].sort())).toEqual(new Map([...owned].sort()));
  for (const [c, lock] of s.waiting) expect(s.locks.waiters(lock).some((w) => w.client === c)).toBe(true);
}

describe('the link decoder takes any text', () => {
  it('returns a well-formed frame or throws CodecError, never anything else', () => {
    const texts = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.json({ maxDepth: 3 }),
      fc.record({ v: fc.constantFrom(1, 2, '1'), type: fc.constantFrom('hello', 'entry', 'forward', 'reply', 'auth', 'challenge', 'welcome', 'observe', 'view', 'snapshot', 'ping', 'nope'), rest: fc.dictionary(fc.constantFrom('seq', 'req', 'at', 'from', 'cmd', 'reply', 'node', 'incarnation', 'role', 'nonce', 'proof', 'locks', 'log', 'stats', 'state', 'part', 'parts'), fc.oneof(value, nearCommand), { maxKeys: 6 }) }).map((r) => JSON.stringify({ ...r.rest, v: r.v, type: r.type })),
    );
    fc.assert(
      fc.property(texts, (text) => {
        let f: Frame;
        try {
          f = decodeFrame(text);
        } catch (err) {
          expect(err).toBeInstanceOf(CodecError);
          return;
        }
        // What passed is a frame the codec itself would write the same way.
        expect(decodeFrame(encodeFrame(f))).toEqual(f);
        if (f.type === 'forward' || f.type === 'entry') expect(commandError(f.cmd)).toBeNull();
      }),
      { numRuns: 3000 },
    );
  });

  it('lets through only commands the lock table can apply: a forward with any near-command', () => {
    fc.assert(
      fc.property(nearCommand, fc.integer({ min: 0, max: 5 }), (cmd, req) => {
        const text = JSON.stringify({ v: 1, type: 'forward', req, cmd });
        let f: Frame;
        try {
          f = decodeFrame(text);
        } catch (err) {
          expect(err).toBeInstanceOf(CodecError);
          expect(commandError(cmd)).not.toBeNull();
          return;
        }
        expect(f.type).toBe('forward');
        const s = createState();
        if (f.type === 'forward') apply(s, f.cmd, 1000); // must not throw
        invariants(s);
      }),
      { numRuns: 3000 },
    );
  });

  it('the frames of the audit are refused: an unknown op, a command with a field missing, the old token auth', () => {
    expect(() => decodeFrame('{"v":1,"type":"forward","req":0,"cmd":{"op":"bogus"}}')).toThrow(/unknown op "bogus"/);
    expect(() => decodeFrame('{"v":1,"type":"forward","req":0,"cmd":{"op":"revoke"}}')).toThrow(/revoke: missing lock/);
    expect(() => decodeFrame('{"v":1,"type":"forward","req":0,"cmd":{"op":"release","client":20002,"lock":"victim lock"}}')).toThrow(/lock must be a lock name/);
    expect(() => decodeFrame('{"v":1,"type":"auth","token":"client-token"}')).toThrow(/malformed auth frame/);
    expect(() => decodeFrame('{"v":1,"type":"hello","node":"x\\ny","incarnation":"2","seq":null}')).toThrow(/malformed hello/);
  });
});

describe('a snapshot frame is checked before a table is built from it', () => {
  it('a snapshot with any field changed is refused (CodecError) or restores without throwing', () => {
    const base = createState();
    apply(base, { op: 'preempt', client: 10001, lock: 'a', ttl: null }, 0);
    apply(base, { op: 'preempt', client: 10002, lock: 'b', ttl: 100 }, 0);
    apply(base, { op: 'acquire', client: 20001, lock: 'a', ttl: null, timeout: 50 }, 0);
    apply(base, { op: 'session', client: 10002, hash: 'e'.repeat(64) }, 0);
    const text = encodeFrame({ v: 1, type: 'snapshot', seq: 4, part: 0, parts: 1, state: snapshot(base) });
    const tab = text.indexOf('\t');
    const json = JSON.parse(text.slice(0, tab)) as { state: Record<string, unknown> };
    const nums = text.slice(tab + 1);
    const paths = ['nextToken', 'count', 'names', 'waiters', 'sessions'];
    fc.assert(
      fc.property(fc.constantFrom(...paths), fc.oneof(value, fc.json({ maxDepth: 2 }).map((j) => JSON.parse(j) as unknown), fc.constant([[0, [[20001, null, 'x']]]]), fc.constant([[9, [[20001, null, 50]]]]), fc.constant('a\n\nb'), fc.constant('a b\nc'), fc.constant('a\na')), fc.boolean(), (path, v, cutNums) => {
        const state = { ...json.state, [path]: v };
        const mutated = `${JSON.stringify({ ...json, state })}\t${cutNums ? nums.slice(0, 8) : nums}`;
        let f: Frame;
        try {
          f = decodeFrame(mutated);
        } catch (err) {
          expect(err).toBeInstanceOf(CodecError);
          return;
        }
        if (f.type === 'snapshot') invariants(restore(f.state));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('the lock table applies whatever passes commandError', () => {
  it('any sequence of well-formed commands and near-commands: nothing throws, invariants hold, tokens rise [LP-7]', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.oneof(goodCommand, nearCommand), fc.integer({ min: 0, max: 20 })), { maxLength: 150 }), (steps) => {
        const s = createState();
        let now = 0;
        let lastToken = 0;
        for (const [cmd, dt] of steps) {
          now += dt;
          if (commandError(cmd) !== null) continue; // what the replication skips
          const before = s.nextToken;
          const out = apply(s, cmd as Command, now);
          expect(s.nextToken).toBeGreaterThanOrEqual(before);
          for (const t of [out.reply, ...out.wakes.map((w) => w.reply)]) {
            if (t !== null && 'token' in t && t.op !== 'revoke' && t.token !== null && t.token > lastToken) lastToken = t.token;
          }
          expect(s.nextToken).toBeGreaterThan(lastToken);
          invariants(s);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('an op the table does not know changes nothing and throws nothing', () => {
    const s = createState();
    apply(s, { op: 'preempt', client: 10001, lock: 'a', ttl: null }, 0);
    const before = JSON.stringify(snapshot(s).names);
    const out = apply(s, { op: 'bogus' } as unknown as Command, 1);
    expect(out).toEqual({ reply: null, changed: false, wakes: [], changes: [], waits: null });
    expect(JSON.stringify(snapshot(s).names)).toBe(before);
  });

  it('the cluster-wide cap refuses a new lock, not a lock the client holds or a wait (--max-locks)', () => {
    const s = createState();
    const limits = { maxLocksPerClient: 10, maxWaitersPerLock: 10, maxLocks: 2 };
    expect(apply(s, { op: 'preempt', client: 10001, lock: 'a', ttl: null, limits }, 0).reply).toMatchObject({ ok: true });
    expect(apply(s, { op: 'preempt', client: 10002, lock: 'b', ttl: 100, limits }, 0).reply).toMatchObject({ ok: true });
    expect(apply(s, { op: 'preempt', client: 10003, lock: 'c', ttl: null, limits }, 0).reply).toEqual({ op: 'refused', message: 'the cluster holds 2 locks, its limit (--max-locks); try again once some are released' });
    expect(apply(s, { op: 'preempt', client: 10001, lock: 'a', ttl: 50, limits }, 0).reply).toMatchObject({ ok: true }); // its own: nothing new
    expect(apply(s, { op: 'acquire', client: 10003, lock: 'a', ttl: null, timeout: null, limits }, 0).waits).toEqual({ client: 10003, lock: 'a' });
    expect(apply(s, { op: 'release', client: 10002, lock: 'b' }, 0).reply).toMatchObject({ ok: true });
    expect(apply(s, { op: 'preempt', client: 10004, lock: 'c', ttl: null, limits }, 0).reply).toMatchObject({ ok: true });
  });
});

describe("a leader takes from a node's link only that node's clients' writes", () => {
  const s = createState();
  apply(s, { op: 'session', client: 20001, hash: 'a'.repeat(64) }, 0);
  apply(s, { op: 'resume', client: 30001, target: 20001, hash: 'a'.repeat(64), node: 2 }, 0); // client 20001 now lives on node 2
  it('its own clients, a client resumed onto it, or one it forwarded a resume for', () => {
    expect(forwardError(s, { op: 'preempt', client: 30002, lock: 'x', ttl: null }, 2, new Set())).toBeNull();
    expect(forwardError(s, { op: 'release', client: 20001, lock: 'x' }, 2, new Set())).toBeNull();
    expect(forwardError(s, { op: 'renew', client: 40007, lock: 'x', ttl: 5 }, 2, new Set([40007]))).toBeNull();
    expect(forwardError(s, { op: 'revoke', lock: 'x' }, 2, new Set())).toBeNull();
    expect(forwardError(s, { op: 'resume', client: 30003, target: 10001, hash: 'b'.repeat(64), node: 2 }, 2, new Set())).toBeNull();
  });
  it('a disconnect of a connection its client moved on from, which the table ignores, from any node [LP-16]', () => {
    // 20001 is at generation 1 on node 2: node 1's close of generation-0 connection is stale, and harmless.
    expect(forwardError(s, { op: 'disconnect', client: 20001, gen: 1 }, 2, new Set())).toBeNull(); // its own, current
    expect(apply(createState(), { op: 'disconnect', client: 20009, gen: 3 }, 0).changed).toBe(false); // no session: ignored
    expect(forwardError(s, { op: 'disconnect', client: 20009, gen: 3 }, 2, new Set())).toBeNull(); // sent again after a failover: its session gone
    // A current connection's end belongs to its node alone.
    expect(forwardError(s, { op: 'disconnect', client: 20001, gen: 1 }, 0, new Set())).toMatch(/client 20001 is not node 0's/);
    expect(forwardError(s, { op: 'disconnect', client: 10001 }, 2, new Set())).toMatch(/client 10001 is not node 2's/);
  });
  it('not another node\'s client, not a resume for another node, no expire, no limits of its own', () => {
    expect(forwardError(s, { op: 'release', client: 20002, lock: 'victim-lock' }, 2, new Set())).toMatch(/client 20002 is not node 2's/);
    expect(forwardError(s, { op: 'session', client: 30005, hash: 'c'.repeat(64) }, 1, new Set())).toMatch(/client 30005 is not node 1's/);
    expect(forwardError(s, { op: 'resume', client: 30003, target: 10001, hash: 'b'.repeat(64), node: 1 }, 2, new Set())).toMatch(/a resume for node 1/);
    expect(forwardError(s, { op: 'expire', lock: 'x', token: 3 }, 2, new Set())).toMatch(/sequencer's own/);
    expect(forwardError(s, { op: 'floor', token: 2 ** 40 }, 2, new Set())).toMatch(/sequencer's own/); // [LP-7] a node cannot push tokens up for the cluster
    expect(forwardError(s, { op: 'preempt', client: 30002, lock: 'x', ttl: null, limits: { maxLocksPerClient: 1e9, maxWaitersPerLock: 1e9 } }, 2, new Set())).toMatch(/limits/);
  });
});

describe('what etcd holds is parsed, not trusted', () => {
  it('an election value that is not a leader is no leader', () => {
    expect(parseLeaderInfo('{"name":"n1","index":0,"link":"127.0.0.1:4000"}')).toEqual({ name: 'n1', index: 0, link: '127.0.0.1:4000' });
    for (const v of [undefined, '', 'not json', '[]', 'null', '{"name":"n1"}', '{"name":"n1","index":-1,"link":"h:1"}', '{"name":"n1","index":0,"link":"nohost"}', '{"name":1,"index":0,"link":"h:1"}']) expect(parseLeaderInfo(v)).toBeNull();
  });
  it('a live key that is not a member is left out', () => {
    expect(parseMember('{"name":"n1","index":1,"address":"127.0.0.1:1","link":"127.0.0.1:2","applied":3,"leads":false}')).toEqual({ name: 'n1', index: 1, address: '127.0.0.1:1', link: '127.0.0.1:2', applied: 3, leads: false });
    // The admin API's address, which dlock admin --etcd connects to: HOST:PORT or nothing.
    const base = '"name":"n1","index":1,"address":"127.0.0.1:1","link":"127.0.0.1:2"';
    expect(parseMember(`{${base},"admin":"127.0.0.1:9080"}`)?.admin).toBe('127.0.0.1:9080');
    for (const admin of ['"http://evil/"', '"127.0.0.1"', '"a b:1"', '9080', '"h:123456"', `"${'h'.repeat(300)}:1"`]) expect(parseMember(`{${base},"admin":${admin}}`)).toBeNull();
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
        const m = parseMember(text);
        if (m !== null) expect(typeof m.name === 'string' && Number.isSafeInteger(m.index) && typeof m.link === 'string').toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});
