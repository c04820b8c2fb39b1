/**
 * Every rule of shared/protocol.md against a real cluster (leader + two
 * followers in worker threads, clients over TCP). Each test uses its own
 * lock names so tests do not see each other's locks.
 */
import { connect as netConnect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from '../../src/host/threads/cluster.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { eventually, LineClient } from '../helpers/line-client.js';
import { onFreeBase } from '../helpers/ports.js';

let t: TestCluster;
const open: LineClient[] = [];
const NODES = ['leader', 'follower-1', 'follower-2'] as const;

async function client(node: (typeof NODES)[number] = 'leader'): Promise<LineClient> {
  const c = await LineClient.open(t.port(node));
  open.push(c);
  return c;
}

/** Wait until the leader's table shows `n` waiters on `lock`. */
async function waiters(lock: string, n: number): Promise<void> {
  await eventually(async () => (await t.cluster.locks('leader')).find((r) => r.lock === lock)?.waiters.length === n, `${n} waiters on ${lock}`);
}

beforeAll(async () => {
  t = await startCluster(2);
});
afterAll(async () => {
  for (const c of open) c.close();
  await t.cluster.close();
});

describe('LP-1 ports', () => {
  it('leader on the base port, follower i on base+i, bound to 127.0.0.1', async () => {
    const { value: cluster } = await onFreeBase((base) => Cluster.start({ followers: 2, port: base, host: '127.0.0.1' }));
    try {
      const [l, f1, f2] = cluster.nodes;
      expect(f1?.port).toBe((l?.port ?? 0) + 1);
      expect(f2?.port).toBe((l?.port ?? 0) + 2);
      expect(cluster.readyLine()).toBe(`ready leader=127.0.0.1:${l?.port} follower-1=127.0.0.1:${f1?.port} follower-2=127.0.0.1:${f2?.port}`);
      const c = await LineClient.open(f2?.port ?? 0);
      expect(c.greeting).toMatch(/node: follower-2$/);
      c.close();
    } finally {
      await cluster.close();
    }
  });
});

describe('LP-2 framing', () => {
  it('pipelined requests get one reply each, in order; blank lines get none; CRLF works', async () => {
    const c = await client('follower-1');
    const lines: string[] = [];
    for (let i = 0; i < 200; i++) lines.push(i % 3 === 0 ? `preempt lp2-${i}` : i % 3 === 1 ? `check lp2-${i - 1}` : 'ping');
    c.write(`${lines.join('\r\n')}\r\n\n   \n`);
    for (let i = 0; i < 200; i++) {
      const r = await c.next();
      if (i % 3 === 0) expect(r).toMatch(new RegExp(`^PreemptLock Success owner=${c.id} token=\\d+$`));
      else if (i % 3 === 1) expect(r).toMatch(new RegExp(`^CheckLock:Lock:${c.id} token=\\d+$`));
      else expect(r).toBe('PONG');
    }
    // the blank lines produced nothing: the next reply is the next request's
    expect(await c.ask('whoami')).toBe(c.greeting);
  });

  it('a half-closed client gets every reply, then the node closes', async () => {
    const c = await client('follower-2');
    c.write('preempt lp2-half\ncheck lp2-half\nping\n');
    c.socket.end();
    expect(await c.next()).toMatch(/^PreemptLock Success/);
    expect(await c.next()).toMatch(/^CheckLock:Lock:/);
    expect(await c.next()).toBe('PONG');
    await c.waitClosed();
    // and its session lock went with it [LP-8]
    const d = await client();
    await eventually(async () => (await d.ask('check lp2-half')) === 'CheckLock:Free', 'lp2-half to be released');
  });

  it('a client that pipelines far more than a connection queues, then half-closes, still gets every reply in order', async () => {
    // 3000 requests: the node parses 256 ahead and keeps the rest of the
    // bytes (LP-13); the FIN must not end its input before those are parsed.
    const c = await client('follower-1');
    let batch = '';
    for (let i = 0; i < 3000; i++) batch += i % 2 === 0 ? 'ping\n' : `check lp2-many-${i}\n`;
    c.write(batch);
    c.socket.end();
    await c.waitClosed(20_000);
    const replies = c.pending;
    expect(replies).toHaveLength(3000);
    for (const [i, r] of replies.entries()) expect(r).toBe(i % 2 === 0 ? 'PONG' : 'CheckLock:Free');
  });
});

describe('LP-3 greeting, LP-4 client ids', () => {
  it('greets first with the id and node name; whoami repeats it', async () => {
    for (const node of NODES) {
      const c = await client(node);
      expect(c.greeting).toMatch(new RegExp(`^client_id: \\d+ node: ${node}$`));
      expect(await c.ask('WHOAMI')).toBe(c.greeting);
    }
  });

  it('the k-th client of node i gets (i+1)*10000+k; ids are never reused', async () => {
    const seen = new Set<number>();
    for (const [i, node] of NODES.entries()) {
      const first = await client(node);
      first.close();
      const second = await client(node);
      expect(Math.floor(first.id / 10000)).toBe(i + 1);
      expect(second.id).toBe(first.id + 1); // closing the first did not free its id
      for (const id of [first.id, second.id]) {
        expect(seen.has(id)).toBe(false);
        seen.add(id);
      }
    }
  });

  it('no request can name another client: the id is the connection', async () => {
    const a = await client('follower-1');
    const b = await client('follower-2');
    expect(await a.ask('preempt lp4')).toMatch(/^PreemptLock Success/);
    // the original design trusted an id sent by the client; here there is no such field
    // a second word is a second lock's name [LP-22], never a client: releasing both fails, naming the lock not held
    expect(await b.ask(`release lp4 ${a.id}`)).toBe(`ReleaseLock Failed owner=${a.id} lock=lp4`);
    expect(await b.ask(`release lp4 owner=${a.id}`)).toMatch(/^Error: unknown option "owner"/);
    expect(await b.ask('release lp4')).toBe(`ReleaseLock Failed owner=${a.id}`);
    expect(await b.ask('check lp4')).toMatch(new RegExp(`^CheckLock:Lock:${a.id} `));
  });
});

describe('LP-5 mutual exclusion', () => {
  it('concurrent preempts of one lock from every node: exactly one wins', async () => {
    const cs = await Promise.all([...NODES, ...NODES, ...NODES].map((n) => client(n)));
    const replies = await Promise.all(cs.map((c) => c.ask('preempt lp5')));
    const winners = replies.filter((r) => r.startsWith('PreemptLock Success'));
    expect(winners).toHaveLength(1);
    const owner = /owner=(\d+)/.exec(winners[0] ?? '')?.[1];
    for (const r of replies) if (!r.startsWith('PreemptLock Success')) expect(r).toBe(`PreemptLock Failed owner=${owner}`);
    for (const node of NODES) expect((await t.cluster.locks(node)).find((x) => x.lock === 'lp5')?.owner).toBe(Number(owner));
  });
});

describe('LP-6 idempotent preempt, LP-7 tokens', () => {
  it('the owner preempting or acquiring again gets the same token; ttl sets a lease', async () => {
    const c = await client('follower-1');
    const first = await c.ask('preempt lp6');
    const token = /token=(\d+)/.exec(first)?.[1];
    expect(await c.ask('preempt lp6')).toBe(first);
    expect(await c.ask('acquire lp6')).toBe(`AcquireLock Success owner=${c.id} token=${token}`);
    expect(await c.ask('preempt lp6 ttl=60000')).toBe(first);
    expect(await c.ask('check lp6')).toMatch(new RegExp(`^CheckLock:Lock:${c.id} token=${token} ttl=(59\\d{3}|60000)$`));
    // not counted: one release frees it
    expect(await c.ask('release lp6')).toBe('ReleaseLock Success');
    expect(await c.ask('check lp6')).toBe('CheckLock:Free');
  });

  it('every grant, on any lock through any node, has a larger token', async () => {
    const cs = await Promise.all(NODES.map((n) => client(n)));
    let last = 0;
    let grants = 0;
    for (let i = 0; i < 30; i++) {
      const c = cs[i % 3] as LineClient;
      const r = await c.ask(`preempt lp7-${i % 4}`);
      if (!r.startsWith('PreemptLock Success')) {
        await (cs.find((x) => r.endsWith(`owner=${x.id}`)) as LineClient).ask(`release lp7-${i % 4}`);
        continue;
      }
      // Each is a new grant (every lock is released after it), so its token
      // is strictly larger: a repeated token fails here.
      const tok = Number(/token=(\d+)/.exec(r)?.[1]);
      expect(tok).toBeGreaterThan(last);
      last = tok;
      grants++;
      expect(await c.ask(`release lp7-${i % 4}`)).toBe('ReleaseLock Success');
    }
    expect(grants).toBe(30);
  });

  it('validate is Valid only for the current grant; Stale names the current owner and token', async () => {
    const a = await client('leader');
    const b = await client('follower-2');
    expect(await b.ask('validate lp7v 1')).toBe('ValidateLock Stale owner=none');
    const t1 = Number(/token=(\d+)/.exec(await a.ask('preempt lp7v'))?.[1]);
    expect(await b.ask(`validate lp7v ${t1}`)).toBe('ValidateLock Valid');
    await a.ask('release lp7v');
    const t2 = Number(/token=(\d+)/.exec(await b.ask('preempt lp7v'))?.[1]);
    expect(t2).toBeGreaterThan(t1);
    expect(await a.ask(`validate lp7v ${t1}`)).toBe(`ValidateLock Stale owner=${b.id} token=${t2}`);
  });
});

describe('LP-8 sessions and leases', () => {
  it('a session lock is released when its connection breaks', async () => {
    const a = await client('follower-1');
    const b = await client('follower-2');
    expect(await a.ask('preempt lp8s')).toMatch(/^PreemptLock Success/);
    a.socket.destroy();
    await eventually(async () => (await b.ask('check lp8s')) === 'CheckLock:Free', 'lp8s released');
  });

  it('quit answers Bye, closes, and ignores what follows', async () => {
    const a = await client('follower-1');
    a.write('preempt lp8q\nquit\nping\n');
    expect(await a.next()).toMatch(/^PreemptLock Success/);
    expect(await a.next()).toBe('Bye');
    await a.waitClosed();
    expect(a.pending).toEqual([]);
    const b = await client();
    await eventually(async () => (await b.ask('check lp8q')) === 'CheckLock:Free', 'lp8q released');
  });

  it('a lease survives its connection and expires ttl ms after its grant, never before', async () => {
    const a = await client('follower-1');
    const b = await client('follower-2');
    const sent = performance.now();
    expect(await a.ask('preempt lp8l ttl=300')).toMatch(/^PreemptLock Success/);
    a.socket.destroy();
    await a.closed;
    expect(await b.ask('check lp8l')).toMatch(new RegExp(`^CheckLock:Lock:${a.id} token=\\d+ ttl=\\d+$`));
    await eventually(async () => (await b.ask('check lp8l')) === 'CheckLock:Free', 'lease to expire');
    expect(performance.now() - sent).toBeGreaterThanOrEqual(300);
    await t.logged('leader', /^broadcast to remove lock_map lp8l$/);
  });

  it('renew moves the end of the lease; renewing a session lock makes it a lease', async () => {
    const a = await client('leader');
    const b = await client('follower-1');
    const token = /token=(\d+)/.exec(await a.ask('preempt lp8r'))?.[1];
    expect(await a.ask('renew lp8r ttl=60000')).toBe(`RenewLock Success token=${token}`);
    a.socket.destroy();
    await a.closed;
    // still held after the connection is gone: it is a lease now
    expect(await b.ask('check lp8r')).toMatch(/ ttl=\d+$/);
    // and only its (gone) owner could release it [LP-10]
    expect(await b.ask('release lp8r')).toBe(`ReleaseLock Failed owner=${a.id}`);
  });

  it('a waiter whose connection breaks is withdrawn: the lock does not go to it', async () => {
    const holder = await client('leader');
    const waiter = await client('follower-1');
    const other = await client('follower-2');
    await holder.ask('preempt lp8w');
    waiter.write('acquire lp8w\n');
    await waiters('lp8w', 1);
    waiter.socket.resetAndDestroy(); // RST: the connection broke
    await waiters('lp8w', 0);
    expect(await holder.ask('release lp8w')).toBe('ReleaseLock Success');
    expect(await other.ask('check lp8w')).toBe('CheckLock:Free');
  });

  it('a waiter that half-closes stops waiting: a Timeout naming the owner, then the close [LP-2, LP-9 as amended]', async () => {
    const holder = await client('leader');
    const waiter = await client('follower-2');
    await holder.ask('preempt lp8h');
    waiter.write('acquire lp8h\n');
    await waiters('lp8h', 1);
    waiter.socket.end();
    // Before LP-9's amendment the node kept the wait and answered it on the grant.
    expect(await waiter.next()).toBe(`AcquireLock Timeout owner=${holder.id}`);
    await waiter.waitClosed();
    await waiters('lp8h', 0);
    expect(await holder.ask('release lp8h')).toBe('ReleaseLock Success');
    expect(await holder.ask('check lp8h')).toBe('CheckLock:Free'); // nobody was granted it
  });
});

describe('LP-9 waiting', () => {
  it('waiters on one lock are granted first come, first served, across nodes', async () => {
    const holder = await client('leader');
    await holder.ask('preempt lp9');
    const order = [await client('follower-1'), await client('follower-2'), await client('leader'), await client('follower-1')];
    for (const [i, w] of order.entries()) {
      w.write('acquire lp9\n');
      await waiters('lp9', i + 1);
    }
    let prev = holder;
    let lastToken = 0;
    for (const w of order) {
      expect(await prev.ask('release lp9')).toBe('ReleaseLock Success');
      const r = await w.next();
      const m = new RegExp(`^AcquireLock Success owner=${w.id} token=(\\d+)$`).exec(r);
      expect(m).not.toBeNull();
      expect(Number(m?.[1])).toBeGreaterThan(lastToken);
      lastToken = Number(m?.[1]);
      prev = w;
    }
  });

  it('timeout ends the wait with the current owner; timeout=0 does not wait', async () => {
    const holder = await client('follower-2');
    const w = await client('follower-1');
    await holder.ask('preempt lp9t');
    expect(await w.ask('acquire lp9t timeout=0')).toBe(`AcquireLock Timeout owner=${holder.id}`);
    const sent = performance.now();
    expect(await w.ask('acquire lp9t timeout=150')).toBe(`AcquireLock Timeout owner=${holder.id}`);
    expect(performance.now() - sent).toBeGreaterThanOrEqual(150);
    await waiters('lp9t', 0);
    expect(await w.ask('acquire lp9free timeout=0')).toMatch(/^AcquireLock Success/);
  });

  it('requests after a waiting acquire wait behind it, then run in order', async () => {
    const holder = await client('leader');
    const w = await client('follower-2');
    await holder.ask('preempt lp9o');
    w.write('acquire lp9o ttl=60000\nrelease lp9o\nping\n');
    await waiters('lp9o', 1);
    // a full round trip on the same node shows nothing leaked past the acquire
    expect(await (await client('follower-2')).ask('ping')).toBe('PONG');
    expect(w.pending).toEqual([]);
    // the release behind the acquire must not have run yet: the holder still has it
    expect(await holder.ask('check lp9o')).toMatch(new RegExp(`^CheckLock:Lock:${holder.id} `));
    await holder.ask('release lp9o');
    expect(await w.next()).toMatch(new RegExp(`^AcquireLock Success owner=${w.id} token=\\d+$`));
    expect(await w.next()).toBe('ReleaseLock Success');
    expect(await w.next()).toBe('PONG');
  });

  it('acquire with ttl, granted after a wait, is a lease from the grant', async () => {
    const holder = await client('leader');
    const w = await client('follower-1');
    await holder.ask('preempt lp9l');
    w.write('acquire lp9l ttl=60000\n');
    await waiters('lp9l', 1);
    await holder.ask('release lp9l');
    expect(await w.next()).toMatch(/^AcquireLock Success/);
    expect(await holder.ask('check lp9l')).toMatch(new RegExp(`^CheckLock:Lock:${w.id} token=\\d+ ttl=(59\\d{3}|60000)$`));
  });
});

describe('LP-10 owners only', () => {
  it('release and renew by anyone else fail and name the owner; nothing changes', async () => {
    const a = await client('follower-1');
    const b = await client('leader');
    expect(await b.ask('release lp10')).toBe('ReleaseLock Failed owner=none');
    expect(await b.ask('renew lp10 ttl=10')).toBe('RenewLock Failed owner=none');
    const r = await a.ask('preempt lp10');
    expect(await b.ask('release lp10')).toBe(`ReleaseLock Failed owner=${a.id}`);
    expect(await b.ask('renew lp10 ttl=10')).toBe(`RenewLock Failed owner=${a.id}`);
    expect(await b.ask('check lp10')).toBe(`CheckLock:Lock:${a.id} token=${/token=(\d+)/.exec(r)?.[1]}`);
  });
});

describe('LP-11 reads', () => {
  it('read-your-writes: a pipelined check right after a write on a follower sees it', async () => {
    const a = await client('follower-2');
    a.write('preempt lp11\ncheck lp11\nrelease lp11\ncheck lp11\n');
    expect(await a.next()).toMatch(/^PreemptLock Success/);
    expect(await a.next()).toMatch(new RegExp(`^CheckLock:Lock:${a.id} `));
    expect(await a.next()).toBe('ReleaseLock Success');
    expect(await a.next()).toBe('CheckLock:Free');
  });

  it('once a write is answered, every replica has it', async () => {
    const a = await client('follower-1');
    const readers = await Promise.all(NODES.map((n) => client(n)));
    expect(await a.ask('preempt lp11b')).toMatch(/^PreemptLock Success/);
    for (const r of readers) expect(await r.ask('check lp11b')).toMatch(new RegExp(`^CheckLock:Lock:${a.id} `));
  });
});

describe('LP-12 errors keep the connection', () => {
  it('answers each bad request with Error: and changes nothing', async () => {
    const a = await client('follower-1');
    await a.ask('preempt lp12');
    const bad = [
      ['bogus', /^Error: unknown command "bogus"; expected one of: preempt, /],
      ['preempt', /^Error: preempt needs a lock name; usage: preempt <lock> \[<lock>…\] \[shared\|limit=<n>\] \[ttl=<ms>\] \[value=<v>\]$/],
      ['preempt a a', /^Error: lock "a" named twice: name each lock once/],
      ['preempt lp12x ttl=0', /^Error: ttl must be a whole number of milliseconds from 1 to 86400000, got "0"$/],
      ['preempt lp12x ttl=1.5', /^Error: ttl must be/],
      ['acquire lp12x timeout=-1', /^Error: timeout must be/],
      ['acquire lp12x wait=5', /^Error: unknown option "wait": acquire takes timeout, ttl/],
      ['renew lp12', /^Error: renew needs ttl=<ms>/],
      ['release lp12 lp12', /^Error: lock "lp12" named twice/],
      ['validate lp12 abc', /^Error: token must be a positive whole number/],
      [`check ${'n'.repeat(256)}`, /^Error: bad lock name .* 1 to 255 bytes/],
      ['check a\u0001b', /^Error: bad lock name/],
    ] as const;
    for (const [line, re] of bad) expect(await a.ask(line)).toMatch(re);
    // invalid UTF-8 too
    a.write(Buffer.from([0x70, 0x69, 0xc3, 0x28, 0x0a]));
    expect(await a.next()).toBe('Error: request is not valid UTF-8 text');
    // still open, still the owner, nothing else created
    expect(await a.ask('check lp12')).toMatch(new RegExp(`^CheckLock:Lock:${a.id} `));
    expect(await a.ask('check lp12x')).toBe('CheckLock:Free');
  });
});

describe('LP-13 limits', () => {
  it('a line over 4096 bytes gets Error: line too long, then the close releases its locks', async () => {
    const a = await client('follower-2');
    await a.ask('preempt lp13');
    a.write(`ping\n${'z'.repeat(5000)}\nping\n`);
    expect(await a.next()).toBe('PONG');
    expect(await a.next()).toBe('Error: line too long');
    await a.waitClosed();
    expect(a.pending).toEqual([]);
    const b = await client('leader');
    await eventually(async () => (await b.ask('check lp13')) === 'CheckLock:Free', 'lp13 released');
  });

  it('exactly 4096 bytes is a line, not a limit breach', async () => {
    const a = await client('leader');
    const line = `check ${'q'.repeat(4096 - 6)}`;
    expect(Buffer.byteLength(line)).toBe(4096);
    expect(await a.ask(line)).toMatch(/^Error: bad lock name/);
    expect(await a.ask('ping')).toBe('PONG');
  });

  it('a client that stops reading is paused, not buffered without bound; nothing is lost [LP-14]', async () => {
    const node = 'follower-1';
    const stuck = netConnect({ port: t.port(node), host: '127.0.0.1' });
    await new Promise<void>((resolve) => stuck.once('connect', () => resolve()));
    stuck.pause(); // never read
    // `help` turns 5 request bytes into ~190 reply bytes: 1 MB asks for ~37 MB.
    const N = 200_000;
    const chunk = 'help\n'.repeat(10_000);
    for (let i = 0; i < N / 10_000; i++) stuck.write(chunk);
    const replyBytes = (await (await client(node)).ask('help')).length + 1;
    // Wait until the node stops making progress on this client (it has paused).
    let last = '';
    await eventually(
      async () => {
        const s = await t.cluster.stats(node);
        const now = `${s.bufferedBytes}/${s.owedReplies}`;
        const settled = now === last && s.bufferedBytes > 0;
        last = now;
        return settled;
      },
      'the node to pause this client',
      20_000,
      100,
    );
    const held = await t.cluster.stats(node);
    // Bounded by one read chunk's worth of replies, far below the ~37 MB owed.
    expect(held.bufferedBytes + held.owedReplies * replyBytes).toBeLessThan(8 << 20);
    expect(N * replyBytes).toBeGreaterThan(30 << 20);
    // a bystander is served meanwhile
    const by = await client(node);
    expect(await by.ask('preempt lp13by')).toMatch(/^PreemptLock Success/);
    expect(await by.ask('ping')).toBe('PONG');
    // start reading: every reply arrives, in full
    let got = 0;
    let tail = '';
    let wrong = 0;
    stuck.setEncoding('utf8');
    const done = new Promise<void>((resolve) => {
      stuck.on('data', (d: string) => {
        const lines = (tail + d).split('\n');
        tail = lines.pop() ?? '';
        for (const l of lines) {
          if (l.startsWith('client_id:')) continue;
          if (!l.startsWith('Help: ')) wrong++;
          got++;
        }
        if (got === N) resolve();
      });
    });
    stuck.resume();
    await done;
    expect(wrong).toBe(0);
    stuck.destroy();
  });
});

describe('LP-14 no client harms another', () => {
  it('garbage, long lines and abrupt closes on one connection leave others and their locks alone', async () => {
    const by = await client('leader');
    const r = await by.ask('preempt lp14');
    for (const node of NODES) {
      const bad = await client(node);
      bad.write(Buffer.from([0, 1, 2, 0xff, 0x0a, 0x0d, 0x0a]));
      bad.write('release lp14\nrenew lp14 ttl=1\npreempt lp14\n');
      bad.write('x'.repeat(9000));
      await bad.waitClosed();
    }
    expect(await by.ask('check lp14')).toBe(`CheckLock:Lock:${by.id} token=${/token=(\d+)/.exec(r)?.[1]}`);
    expect(await by.ask('ping')).toBe('PONG');
  });
});
