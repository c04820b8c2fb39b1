/**
 * Fuzzing a live cluster over TCP: at least 100k generated and
 * mutated request lines, valid ones with broken arguments, random bytes,
 * invalid UTF-8, NUL and other control bytes, huge numbers, very long names
 * and lines, each connection's bytes cut at random points. Checked against
 * ../shared/protocol.md:
 *  - [LP-2] every non-blank line gets exactly one reply, in order;
 *  - [LP-12] a broken request gets `Error: …` and the connection stays open;
 *  - [LP-13] a line over 4096 bytes gets `Error: line too long`, then the
 *    connection closes;
 *  - [LP-14] no node crashes, and a bystander keeps its locks (the fuzz aims
 *    at their names too) and gets correct answers throughout.
 * Seeded, so a failure can be replayed: FUZZ_SEED=n npm test.
 */
import { isUtf8 } from 'node:buffer';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { LineClient } from '../helpers/line-client.js';
import { mulberry32 } from '../helpers/prng.js';

const SEED = Number(process.env['FUZZ_SEED'] ?? Date.now() % 1_000_000);
const rng = mulberry32;
const random = rng(SEED);
const int = (n: number): number => Math.floor(random() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;

/** What a line must get back. */
type Expect = 'ok' | 'error' | 'any';
interface Line {
  bytes: Buffer;
  expect: Expect;
}

const BYSTANDER_LOCKS = ['fz-held', 'fz-lease'];
const names = (): string => pick([...BYSTANDER_LOCKS, 'fz-a', 'fz-b', 'fz-c', `fz-${int(50)}`, 'ü-lock', '🔒']);
const ms = (): string => String(pick([0, 1, 5, 20, 86_400_000, int(1000) + 1]));

/** A valid request (never `quit`, never an acquire that could wait forever). */
function valid(): string {
  switch (int(9)) {
    case 0:
      return `preempt ${names()}${random() < 0.5 ? ` ttl=${int(500) + 1}` : ''}`;
    case 1:
      return `acquire ${names()} timeout=${int(30)}${random() < 0.3 ? ` ttl=${int(500) + 1}` : ''}`;
    case 2:
      return `release ${names()}`;
    case 3:
      return `renew ${names()} ttl=${int(500) + 1}`;
    case 4:
      return `check ${names()}`;
    case 5:
      return `validate ${names()} ${int(1e6) + 1}`;
    case 6:
      return pick(['ping', 'PING', 'whoami', 'help', 'Check fz-a', 'auth anything']); // no token on this node: any is accepted
    case 7:
      return `\t preempt   ${names()}  \r`; // extra blanks and a CR [LP-2]
    default:
      return `check ${'x'.repeat(255)}`; // the longest name [LP-12]
  }
}

/** A request that must be refused with `Error: …` [LP-12]. */
function broken(): Buffer {
  const t = Buffer.from;
  switch (int(16)) {
    case 0:
      return t(pick(['preempt', 'acquire', 'release', 'renew fz-a', 'validate fz-a', 'check', 'renew fz-a 5']));
    case 1:
      return t(`${pick(['ping', 'whoami', 'help'])} extra`);
    case 2:
      return t(`preempt ${names()} ttl=${pick(['-1', '0', '1.5', '1e3', '99999999999999999999', '86400001', '', 'abc', '0x10'])}`);
    case 3:
      return t(`acquire ${names()} timeout=5 timeout=6`);
    case 4:
      return t(`preempt ${names()} owner=${int(99999)}`); // the original design's hole: no client-sent ids
    case 5: {
      const n = names();
      return t(`release ${n} ${int(99999)} ${n}`); // a lock named twice [LP-22]
    }
    case 6:
      return t(`check ${'n'.repeat(256 + int(3000))}`); // too long a name
    case 7:
      return Buffer.concat([t('preempt fz-'), t([0]), t('nul')]); // NUL
    case 8:
      // A C0 control byte inside the name (not tab, a word separator; not
      // LF; not CR, which ends a CRLF line when last).
      return Buffer.concat([t('check fz-'), t([pick([0x01, 0x07, 0x08, 0x0b, 0x0c, 0x1b, 0x1f, 0x7f])]), t('x')]);
    case 9:
      return Buffer.concat([t('preempt '), t([0xc3, 0x28, 0xff, 0xfe])]); // invalid UTF-8
    case 10:
      return t([0xff, 0xfe, 0xfd]);
    case 11:
      return t(`${pick(['lock', 'get', 'SET', 'authx', 'preemptx', 'releaseall', '\u00a0ping'])} fz-a`);
    case 12:
      return t(`validate ${names()} ${pick(['0', '-3', 'x', '99999999999999999999', '1.0'])}`);
    case 13:
      return t(`renew ${names()}`);
    case 14:
      return t(`check fz-a\u0085b`); // C1 control [LP-12]
    default:
      return t(`acquire ${names()} ttl=5 bogus=1`);
  }
}

/** Random bytes with no LF; may be anything, including blank. */
function noise(): Buffer {
  const b = Buffer.alloc(int(120));
  for (let i = 0; i < b.length; i++) {
    let x = int(256);
    if (x === 0x0a) x = 0x20;
    b[i] = x;
  }
  return b;
}

/**
 * Flip, insert or delete a few bytes of a valid request. Not of an
 * acquire: a word it breaks in two may be a second lock's name [LP-22],
 * and an acquire of several locks without its timeout may rightly wait
 * for as long as the connection lives.
 */
function mutated(): Buffer {
  let text = valid();
  while (text.startsWith('acquire')) text = valid();
  const b = [...Buffer.from(text)];
  for (let k = int(3) + 1; k > 0; k--) {
    const i = int(b.length + 1);
    const byte = int(256) === 0x0a ? 0x00 : int(256);
    const r = int(3);
    if (r === 0 && b.length > 0) b[Math.min(i, b.length - 1)] = byte === 0x0a ? 0 : byte;
    else if (r === 1) b.splice(i, 0, byte === 0x0a ? 0 : byte);
    else b.splice(i, 1);
  }
  return Buffer.from(b.map((x) => (x === 0x0a ? 0x20 : x)));
}

function line(): Line {
  const r = random();
  if (r < 0.35) return { bytes: Buffer.from(valid()), expect: 'ok' };
  if (r < 0.7) return { bytes: broken(), expect: 'error' };
  if (r < 0.85) return { bytes: mutated(), expect: 'any' };
  return { bytes: noise(), expect: 'any' };
}

/** Not a request at all: no reply [LP-2]. */
function blank(bytes: Buffer): boolean {
  const end = bytes.length > 0 && bytes[bytes.length - 1] === 0x0d ? bytes.length - 1 : bytes.length;
  return isUtf8(bytes.subarray(0, end)) && /^[ \t]*$/.test(bytes.subarray(0, end).toString('utf8'));
}
/** A line that would be `quit`: the generators do not make one, noise almost never does. */
const isQuit = (bytes: Buffer): boolean => /^[ \t]*quit[ \t]*\r?$/i.test(bytes.toString('latin1'));

interface Outcome {
  lines: number;
  checked: number;
  closedByNode: boolean;
}

/**
 * One fuzz connection: its lines (and maybe a last, overlong one) sent in
 * random cuts while the replies are read, then every reply checked.
 */
async function fuzzConnection(port: number, count: number): Promise<Outcome> {
  const script: Line[] = [];
  for (let i = 0; i < count; i++) {
    const l = line();
    if (!isQuit(l.bytes)) script.push(l);
  }
  const overlong = random() < 0.1 ? Buffer.alloc(4097 + int(10_000), 0x61) : null; // [LP-13]
  const parts = script.map((l) => Buffer.concat([l.bytes, Buffer.from('\n')]));
  if (overlong !== null) parts.push(overlong, Buffer.from('\nping\n'));
  const bytes = Buffer.concat(parts);
  const expected = script.filter((l) => !blank(l.bytes));

  const socket = connect({ port, host: '127.0.0.1' });
  socket.setNoDelay(true);
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (text += d));
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('error', () => {}); // the node may close on an overlong line while we still write; 'close' follows
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  // Cut at random points: 1 byte, a few, or large pieces.
  for (let at = 0; at < bytes.length; ) {
    const n = pick([1, 2, 3, 7, 64, 500, 4096]);
    if (socket.destroyed) break; // the node closed it (an overlong line [LP-13]): no drain will come
    if (!socket.write(bytes.subarray(at, at + n))) await new Promise((r) => (socket.once('drain', r), socket.once('close', r)));
    at += n;
    if (int(8) === 0) await new Promise((r) => setImmediate(r));
  }
  const want = expected.length + 1 + (overlong === null ? 0 : 1); // + the greeting (+ line too long)
  if (overlong === null) {
    // Wait for every reply, then close from this side.
    const deadline = Date.now() + 30_000;
    while (text.split('\n').length - 1 < want) {
      if (Date.now() > deadline) throw new Error(`seed ${SEED}: ${text.split('\n').length - 1} of ${want} replies after 30 s`);
      await new Promise((r) => setTimeout(r, 5));
    }
    socket.end();
  }
  await closed;
  const replies = text.split('\n');
  expect(replies.pop(), `seed ${SEED}: a reply ends with LF`).toBe('');
  expect(replies[0], `seed ${SEED}: greeting`).toMatch(/^client_id: \d+ node: \S+$/);
  // [LP-2] one reply per non-blank line, in order; [LP-13] the overlong line's, then close.
  expect(replies.length, `seed ${SEED}: reply count`).toBe(want);
  let checked = 0;
  for (const [i, l] of expected.entries()) {
    const reply = replies[i + 1] as string;
    const what = `seed ${SEED}: ${JSON.stringify(l.bytes.toString('latin1').slice(0, 80))} -> ${JSON.stringify(reply.slice(0, 120))}`;
    if (l.expect === 'error') expect(reply, what).toMatch(/^Error: \S/);
    else if (l.expect === 'ok') expect(reply, what).not.toMatch(/^Error:/);
    expect(reply, what).not.toMatch(/[\u0000-\u0008\u000b-\u001f]/); // replies quote input, never echo raw control bytes
    checked++;
  }
  if (overlong !== null) expect(replies.at(-1), `seed ${SEED}: overlong`).toBe('Error: line too long');
  return { lines: script.length + (overlong === null ? 0 : 1), checked, closedByNode: overlong !== null };
}

let t: TestCluster;
beforeAll(async () => {
  t = await startCluster(1);
});
afterAll(async () => {
  await t.cluster.close();
});

describe(`fuzzing a live cluster (seed ${SEED})`, () => {
  it('100k+ generated and mutated lines: every line answered as the protocol says, no crash, a bystander untouched', async () => {
    const bystander = await LineClient.open(t.port('follower-1'));
    const held = await bystander.ask('preempt fz-held');
    const lease = await bystander.ask('preempt fz-lease ttl=600000');
    expect(held).toMatch(/^PreemptLock Success owner=\d+ token=\d+$/);
    expect(lease).toMatch(/^PreemptLock Success owner=\d+ token=\d+$/);
    const tokenOf = (s: string): string => (/ token=(\d+)/.exec(s) as RegExpExecArray)[1] as string;

    let lines = 0;
    let closes = 0;
    let bystanderAnswers = 0;
    let fuzzing = true;
    // The bystander keeps working throughout, on the node being fuzzed too [LP-14].
    const watch = (async (): Promise<void> => {
      while (fuzzing) {
        expect(await bystander.ask('check fz-held')).toBe(`CheckLock:Lock:${bystander.id} token=${tokenOf(held)}`);
        expect(await bystander.ask('ping')).toBe('PONG');
        expect(await bystander.ask(`preempt fz-own-${bystanderAnswers % 3}`)).toMatch(new RegExp(`^PreemptLock Success owner=${bystander.id} `));
        bystanderAnswers += 3;
      }
    })();
    const ports = [t.port('leader'), t.port('follower-1')];
    const PER = 250;
    const CONNS = 410; // x 250 lines: over 100k
    let nextConn = 0;
    const worker = async (): Promise<void> => {
      while (nextConn < CONNS) {
        const i = nextConn++;
        const o = await fuzzConnection(ports[i % 2] as number, PER);
        lines += o.lines;
        if (o.closedByNode) closes++;
      }
    };
    try {
      await Promise.all(Array.from({ length: 6 }, () => worker()));
    } finally {
      fuzzing = false;
      await watch;
    }

    expect(lines).toBeGreaterThanOrEqual(100_000);
    expect(closes).toBeGreaterThan(0); // overlong lines were sent, and closed their connections
    expect(bystanderAnswers).toBeGreaterThan(0);
    // No node died [LP-14]; each still answers; the bystander's locks are its own, with their tokens.
    expect((t.logs.get('cluster') ?? []).filter((l) => /stopped unexpectedly/.test(l))).toEqual([]);
    for (const port of ports) {
      const c = await LineClient.open(port);
      expect(await c.ask('ping')).toBe('PONG');
      expect(await c.ask('check fz-held')).toBe(`CheckLock:Lock:${bystander.id} token=${tokenOf(held)}`);
      expect(await c.ask('check fz-lease')).toMatch(new RegExp(`^CheckLock:Lock:${bystander.id} token=${tokenOf(lease)} ttl=\\d+$`));
      c.close();
    }
    bystander.close();
  }, 240_000);
});
