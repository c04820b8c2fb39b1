/**
 * The request parser, fed as a socket would feed it: whole, one byte at a
 * time, and split at random points. [LP-2, LP-12, LP-13]
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LineSplitter } from '../../src/protocol/line-splitter.js';
import { RequestParser, type Parsed } from '../../src/protocol/parser.js';
import { HELP_LINE, MAX_LINE_BYTES, parseRequest } from '../../src/protocol/request.js';

function parseChunks(chunks: Buffer[]): Parsed[] {
  const p = new RequestParser();
  const out: Parsed[] = [];
  for (const c of chunks) p.push(c, (item) => out.push(item));
  return out;
}

const bytewise = (b: Buffer): Buffer[] => [...b].map((x) => Buffer.from([x]));

const SAMPLE = Buffer.from(
  'preempt lock01\r\ncheck lock01\n\n   \t \r\nACQUIRE q timeout=0 ttl=5\nrelease x\nrenew x ttl=9\nvalidate x 12\nwhoami\nPing\nhelp\nquit\nfoo\n' +
    'check \u00e9t\u00e9\n',
);

describe('framing [LP-2]', () => {
  it('one byte at a time gives the same items as one chunk', () => {
    const whole = parseChunks([SAMPLE]);
    expect(parseChunks(bytewise(SAMPLE))).toEqual(whole);
    expect(whole.map((i) => (i.kind === 'request' ? i.request.verb : i.kind))).toEqual([
      'preempt', 'check', 'acquire', 'release', 'renew', 'validate', 'whoami', 'ping', 'help', 'quit', 'error', 'check',
    ]);
  });

  it('random splits give the same items', () => {
    const whole = parseChunks([SAMPLE]);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: SAMPLE.length }), { maxLength: 20 }), (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let prev = 0;
        for (const p of points) {
          chunks.push(SAMPLE.subarray(prev, p));
          prev = p;
        }
        chunks.push(SAMPLE.subarray(prev));
        expect(parseChunks(chunks)).toEqual(whole);
      }),
      { numRuns: 500 },
    );
  });

  it('a multi-byte UTF-8 character split across chunks is kept whole', () => {
    const items = parseChunks(bytewise(Buffer.from('check \u00e9t\u00e9\u{1F512}\n')));
    expect(items).toEqual([{ kind: 'request', request: { verb: 'check', lock: '\u00e9t\u00e9\u{1F512}' } }]);
  });

  it('blank and whitespace-only lines are not requests', () => {
    expect(parseChunks([Buffer.from('\n\r\n \t \n\t\r\n')])).toEqual([]);
  });

  it('a line without its LF yet is kept, not parsed', () => {
    const p = new RequestParser();
    const out: Parsed[] = [];
    p.push(Buffer.from('ping'), (i) => out.push(i));
    expect(out).toEqual([]);
    p.push(Buffer.from('\n'), (i) => out.push(i));
    expect(out).toEqual([{ kind: 'request', request: { verb: 'ping' } }]);
  });

  it('invalid UTF-8 is a recoverable error and the next line still parses', () => {
    const items = parseChunks([Buffer.from([0x63, 0xff, 0xfe, 0x0a]), Buffer.from('ping\n')]);
    expect(items[0]).toEqual({ kind: 'error', message: 'request is not valid UTF-8 text' });
    expect(items[1]).toEqual({ kind: 'request', request: { verb: 'ping' } });
  });
});

describe('line length limit [LP-13]', () => {
  const line = (n: number): string => `check ${'x'.repeat(n - 6)}`;

  it('accepts exactly 4096 bytes with LF or CRLF, fed byte by byte', () => {
    for (const end of ['\n', '\r\n']) {
      const items = parseChunks(bytewise(Buffer.from(`${line(MAX_LINE_BYTES)}${end}ping\n`)));
      // a 4090-byte lock name is a bad name (LP-12), but the line itself is fine
      expect(items.map((i) => i.kind)).toEqual(['error', 'request']);
    }
  });

  it('rejects 4097 bytes as soon as they arrive, without waiting for LF', () => {
    const p = new RequestParser();
    const out: Parsed[] = [];
    const bytes = Buffer.from(line(MAX_LINE_BYTES + 1));
    for (let i = 0; i < bytes.length - 1; i++) p.push(bytes.subarray(i, i + 1), (x) => out.push(x));
    expect(out).toEqual([]);
    p.push(bytes.subarray(bytes.length - 1), (x) => out.push(x));
    expect(out).toEqual([{ kind: 'fatal', message: 'line too long' }]);
    // spent: nothing more comes out
    p.push(Buffer.from('ping\n'), (x) => out.push(x));
    expect(out).toHaveLength(1);
  });

  it('4096 bytes plus a CR waits for the LF; plus another byte is too long', () => {
    const base = line(MAX_LINE_BYTES);
    expect(parseChunks([Buffer.from(`${base}\r`)])).toEqual([]);
    expect(parseChunks([Buffer.from(`${base}\rx`)])).toEqual([{ kind: 'fatal', message: 'line too long' }]);
    expect(parseChunks([Buffer.from(`${base}x\n`)])).toEqual([{ kind: 'fatal', message: 'line too long' }]);
  });

  it('lines before the long one in the same chunk still come out first', () => {
    const items = parseChunks([Buffer.from(`ping\n${'y'.repeat(5000)}`)]);
    expect(items).toEqual([{ kind: 'request', request: { verb: 'ping' } }, { kind: 'fatal', message: 'line too long' }]);
  });

  it('the splitter never holds more than the cap plus one byte of a partial line', () => {
    const s = new LineSplitter(16);
    expect(s.push(Buffer.from(`${'a'.repeat(16)}\r`), () => {})).toBe('ok'); // may still be CRLF
    expect(s.pending).toBe(17);
    expect(s.push(Buffer.from('a'), () => {})).toBe('too-long');
    expect(s.pending).toBe(0);
    const t = new LineSplitter(16);
    expect(t.push(Buffer.from('a'.repeat(17)), () => {})).toBe('too-long'); // 17th byte is not CR
  });
});

describe('requests and errors [LP-12]', () => {
  const ok = (line: string): unknown => parseRequest(line);
  const err = (line: string): string => {
    const r = parseRequest(line);
    if (r === null || !('error' in r)) throw new Error(`expected an error for ${JSON.stringify(line)}, got ${JSON.stringify(r)}`);
    return r.error;
  };

  it('parses every verb, case-insensitively, with options in any order', () => {
    expect(ok('preempt lock01')).toEqual({ verb: 'preempt', lock: 'lock01', ttl: null });
    expect(ok('PREEMPT Lock01 ttl=30000')).toEqual({ verb: 'preempt', lock: 'Lock01', ttl: 30000 });
    expect(ok('acquire l ttl=5 timeout=0')).toEqual({ verb: 'acquire', lock: 'l', ttl: 5, timeout: 0 });
    expect(ok('acquire l')).toEqual({ verb: 'acquire', lock: 'l', ttl: null, timeout: null });
    expect(ok('Release l')).toEqual({ verb: 'release', lock: 'l' });
    expect(ok('renew l ttl=86400000')).toEqual({ verb: 'renew', lock: 'l', ttl: 86400000 });
    expect(ok('check l')).toEqual({ verb: 'check', lock: 'l' });
    expect(ok('validate l 42')).toEqual({ verb: 'validate', lock: 'l', token: 42 });
    for (const v of ['whoami', 'ping', 'help', 'quit']) expect(ok(`  ${v.toUpperCase()}\t`)).toEqual({ verb: v });
  });

  it('lock names are case-sensitive and may be any 1-255 bytes without whitespace or controls', () => {
    expect(ok('check A/b:c=d')).toEqual({ verb: 'check', lock: 'A/b:c=d' });
    expect(ok(`check ${'\u00e9'.repeat(127)}`)).toMatchObject({ lock: '\u00e9'.repeat(127) }); // 254 bytes
    expect(err(`check ${'\u00e9'.repeat(128)}`)).toMatch(/^bad lock name .*1 to 255 bytes/); // 256 bytes
    expect(err(`check ${'x'.repeat(256)}`)).toMatch(/^bad lock name/);
    expect(ok(`check ${'x'.repeat(255)}`)).toMatchObject({ verb: 'check' });
    expect(err('check a\u0000b')).toMatch(/^bad lock name "a\\u0000b"/);
    expect(err('check a\u0085b')).toMatch(/^bad lock name/);
    expect(err('check a\u00a0b')).toMatch(/^bad lock name/); // NBSP is whitespace
    expect(err('check a\rb')).toMatch(/^bad lock name/);
  });

  it('names what is wrong and what was expected', () => {
    expect(err('frobnicate x')).toBe('unknown command "frobnicate"; expected one of: preempt, acquire, release, renew, check, validate, auth, whoami, sync, watch, session, resume, ping, help, quit');
    expect(err('preempt')).toBe('preempt needs a lock name; usage: preempt <lock> [<lock>…] [shared|limit=<n>] [ttl=<ms>] [value=<v>]');
    expect(err('validate l')).toBe('validate needs a token; usage: validate <lock> <token>');
    expect(err('check a b')).toBe('unexpected argument "b"; usage: check <lock>');
    expect(err('ping now')).toBe('unexpected argument "now"; usage: ping');
    expect(err('release l ttl=5')).toBe('unknown option "ttl": release takes no options; usage: release <lock> [<lock>…]');
    expect(err('preempt l timeout=5')).toBe('unknown option "timeout": preempt takes ttl, value, limit; usage: preempt <lock> [<lock>…] [shared|limit=<n>] [ttl=<ms>] [value=<v>]');
    expect(err('renew l')).toBe('renew needs ttl=<ms>; usage: renew <lock> ttl=<ms>');
    expect(err('preempt l ttl=5 ttl=6')).toBe('option ttl given twice; usage: preempt <lock> [<lock>…] [shared|limit=<n>] [ttl=<ms>] [value=<v>]');
    expect(err('validate l 0')).toMatch(/^token must be a positive whole number, got "0"/);
    expect(err('validate l -3')).toMatch(/^token must be a positive whole number/);
    expect(err('validate l 99999999999999999999')).toMatch(/^token must be a positive whole number/);
  });

  it('ttl and timeout are whole milliseconds in range', () => {
    for (const bad of ['0', '-1', '1.5', '1e3', '', ' ', '86400001', '0x10', '+5', '99999999999999999999']) {
      expect(err(`preempt l ttl=${bad}`)).toMatch(/^ttl must be a whole number of milliseconds from 1 to 86400000/);
    }
    expect(err('acquire l timeout=86400001')).toMatch(/^timeout must be a whole number of milliseconds from 0 to 86400000/);
    expect(ok('acquire l timeout=0')).toMatchObject({ timeout: 0 });
    expect(ok('preempt l ttl=1')).toMatchObject({ ttl: 1 });
  });

  it('quotes client words safely: bounded, one line, control characters escaped', () => {
    const e = err(`x${'y'.repeat(100)}\u0007`);
    expect(e).not.toMatch(/[\u0000-\u001f]/);
    expect(e.length).toBeLessThan(200);
  });

  it('help lists every verb on one line', () => {
    expect(HELP_LINE).toMatch(/^Help: preempt .*acquire .*release .*renew .*check .*validate .*whoami .*ping .*help .*quit$/);
    expect(HELP_LINE).not.toContain('\n');
  });

  it('never throws on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (s) => {
        const r = parseRequest(s.replace(/[\r\n]/g, ''));
        if (r !== null && 'error' in r) expect(r.error).not.toMatch(/[\n\r]/);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('stopping and resuming [LP-13]', () => {
  const verbsOf = (items: Parsed[]): string[] => items.map((p) => (p.kind === 'request' ? p.request.verb : p.kind));

  it('stops after the item its consumer refuses more than, keeps the rest and later chunks in order, and resumes', () => {
    const p = new RequestParser();
    const got: Parsed[] = [];
    const upTo = (n: number) => (item: Parsed): boolean => {
      got.push(item);
      return got.length < n;
    };
    p.push(Buffer.from('ping\nwhoami\nhelp\nbogus\ncheck a\nping\nqu'), upTo(2));
    expect(verbsOf(got)).toEqual(['ping', 'whoami']);
    expect(p.backlogged).toBe(true);
    p.push(Buffer.from('it\nping\n'), upTo(99)); // still stopped: kept behind the rest
    expect(verbsOf(got)).toEqual(['ping', 'whoami']);
    p.resume(upTo(4));
    expect(verbsOf(got)).toEqual(['ping', 'whoami', 'help', 'error']);
    p.resume(upTo(99));
    expect(verbsOf(got)).toEqual(['ping', 'whoami', 'help', 'error', 'check', 'ping', 'quit', 'ping']);
    expect(p.backlogged).toBe(false);
  });

  it('fed one byte at a time and stopped after every item, it yields the same items', () => {
    const text = 'preempt a ttl=5\r\n\nacquire b timeout=0\nrelease a\nnope\ncheck b\nvalidate a 7\n';
    const whole: Parsed[] = [];
    new RequestParser().push(Buffer.from(text), (i) => void whole.push(i));
    const p = new RequestParser();
    const got: Parsed[] = [];
    const one = (item: Parsed): boolean => {
      got.push(item);
      return false; // one item, then stop
    };
    for (const byte of Buffer.from(text)) {
      p.push(Buffer.from([byte]), one);
      while (p.backlogged) p.resume(one);
    }
    expect(got).toEqual(whole);
  });

  it('a line too long in the kept bytes is still fatal, once reached', () => {
    const p = new RequestParser();
    const got: Parsed[] = [];
    p.push(Buffer.from(`ping\n${'x'.repeat(MAX_LINE_BYTES + 1)}\nping\n`), (i) => {
      got.push(i);
      return false;
    });
    expect(verbsOf(got)).toEqual(['ping']);
    p.resume((i) => void got.push(i));
    expect(got.at(-1)).toEqual({ kind: 'fatal', message: 'line too long' });
    expect(p.backlogged).toBe(false);
  });
});

describe('values [LP-18]', () => {
  it('preempt and acquire take value=<v>: 1 to 1024 bytes, no whitespace or control characters', () => {
    expect(parseRequest('preempt leader/svc value=10.0.0.5:8080')).toEqual({ verb: 'preempt', lock: 'leader/svc', ttl: null, value: '10.0.0.5:8080' });
    expect(parseRequest('acquire l value=a=b%20c ttl=5 timeout=0')).toEqual({ verb: 'acquire', lock: 'l', ttl: 5, timeout: 0, value: 'a=b%20c' });
    expect(parseRequest('preempt l')).toEqual({ verb: 'preempt', lock: 'l', ttl: null }); // no value: none, not an empty one
    expect(parseRequest(`preempt l value=${'é'.repeat(512)}`)).toMatchObject({ value: 'é'.repeat(512) }); // 1024 bytes
    const err = (line: string): string => (parseRequest(line) as { error: string }).error;
    expect(err(`preempt l value=${'é'.repeat(512)}x`)).toMatch(/^bad value ".*": expected 1 to 1024 bytes with no whitespace or control characters \(percent-encode the rest\)$/);
    expect(err('preempt l value=')).toBe('bad value "": expected 1 to 1024 bytes with no whitespace or control characters (percent-encode the rest)');
    expect(err('acquire l value=a\u0001')).toMatch(/^bad value/);
    expect(err('preempt l value=a value=a')).toBe('option value given twice; usage: preempt <lock> [<lock>…] [shared|limit=<n>] [ttl=<ms>] [value=<v>]');
    expect(err('renew l ttl=5 value=a')).toMatch(/^unknown option "value": renew takes ttl/);
    expect(HELP_LINE).toContain('preempt <lock> [<lock>…] [shared|limit=<n>] [ttl=<ms>] [value=<v>]');
  });
});

describe('sync [LP-17]', () => {
  it('takes no argument or option', () => {
    expect(parseRequest('sync')).toEqual({ verb: 'sync' });
    expect(parseRequest('SYNC')).toEqual({ verb: 'sync' });
    expect((parseRequest('sync now') as { error: string }).error).toBe('unexpected argument "now"; usage: sync');
    expect((parseRequest('sync ttl=5') as { error: string }).error).toBe('unknown option "ttl": sync takes no options; usage: sync');
    expect(HELP_LINE).toContain('| sync |');
  });
});

describe('several holders and several locks [LP-20, LP-21, LP-22]', () => {
  const err = (line: string): string => (parseRequest(line) as { error: string }).error;

  it('[LP-20] shared, [LP-21] limit=<n> from 1 to 10000', () => {
    expect(parseRequest('preempt l shared')).toEqual({ verb: 'preempt', lock: 'l', ttl: null, shared: true });
    expect(parseRequest('acquire l shared timeout=5 ttl=9')).toEqual({ verb: 'acquire', lock: 'l', ttl: 9, timeout: 5, shared: true });
    expect(parseRequest('acquire l limit=3')).toEqual({ verb: 'acquire', lock: 'l', ttl: null, timeout: null, limit: 3 });
    expect(parseRequest('preempt l limit=10000')).toMatchObject({ limit: 10000 });
    expect(err('preempt l limit=0')).toBe('limit must be a whole number from 1 to 10000, got "0"');
    expect(err('preempt l limit=10001')).toMatch(/^limit must be a whole number from 1 to 10000/);
    expect(err('preempt l shared shared')).toMatch(/^shared given twice/);
    expect(err('preempt l shared limit=2')).toMatch(/^shared and limit= name two kinds of hold; give one/);
    expect(err('preempt l shared value=v')).toMatch(/^a value is for a lock held by one client alone, not with shared/);
    expect(err('acquire l limit=2 value=v')).toMatch(/^a value is for a lock held by one client alone, not with limit=/);
    expect(err('release l limit=2')).toMatch(/^unknown option "limit": release takes no options/);
    expect(err('check l shared')).toBe('unexpected argument "shared"; usage: check <lock>');
  });

  it('[LP-22] 2 to 16 distinct names for preempt, acquire and release', () => {
    expect(parseRequest('preempt a b c ttl=5')).toEqual({ verb: 'preempt', lock: 'a', ttl: 5, locks: ['a', 'b', 'c'] });
    expect(parseRequest('acquire a b timeout=0 value=v')).toEqual({ verb: 'acquire', lock: 'a', ttl: null, timeout: 0, value: 'v', locks: ['a', 'b'] });
    expect(parseRequest('release a b')).toEqual({ verb: 'release', lock: 'a', locks: ['a', 'b'] });
    const names = Array.from({ length: 16 }, (_, i) => `n${i}`);
    expect(parseRequest(`preempt ${names.join(' ')}`)).toMatchObject({ locks: names });
    expect(err(`preempt ${names.join(' ')} n16`)).toMatch(/^preempt takes at most 16 lock names, got 17/);
    expect(err('preempt a b a')).toMatch(/^lock "a" named twice: name each lock once/);
    expect(err('release a a')).toMatch(/^lock "a" named twice/);
    expect(err('acquire a b shared')).toMatch(/^several locks are held alone: shared goes with one lock/);
    expect(err('acquire a b limit=2')).toMatch(/^several locks are held alone: limit= goes with one lock/);
    expect(err('preempt a b\u0001')).toMatch(/^bad lock name/);
    // a typo never becomes a hold of several locks
    expect(err('release foo shared')).toMatch(/^release takes lock names only: a hold is released whatever its kind/);
    expect(err('acquire db SHARED')).toMatch(/^write shared in lowercase/);
    expect(err('acquire a timeout 5000')).toMatch(/^"timeout" needs =<value>: options are key=value/);
    expect(err('preempt a TTL')).toMatch(/^"TTL" needs =<value>/);
    expect(parseRequest('preempt timeout b')).toMatchObject({ locks: ['timeout', 'b'] }); // named first, it is a lock's name
  });
});
