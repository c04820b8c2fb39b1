/**
 * LP-16, resuming a client, against a real cluster (leader + two followers
 * in worker threads, clients over TCP): the secret is replicated as a hash
 * with the table, so a client can come back on any node, and across a
 * failover; its leases are its own again, its session locks are not.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { eventually, LineClient } from '../helpers/line-client.js';

let t: TestCluster;
const open: LineClient[] = [];

async function client(node: string): Promise<LineClient> {
  const c = await LineClient.open(t.port(node));
  open.push(c);
  return c;
}

/** `session` on `c`: its id and secret. */
async function session(c: LineClient): Promise<{ id: number; secret: string }> {
  const reply = await c.ask('session');
  const m = /^Session client_id=(\d+) secret=(\S+)$/.exec(reply);
  if (m === null) throw new Error(`not a session reply: ${reply}`);
  return { id: Number(m[1]), secret: m[2] as string };
}

beforeAll(async () => {
  t = await startCluster(2, 0, { logRequests: true });
});
afterAll(async () => {
  for (const c of open) c.close();
  await t.cluster.close();
});

describe('LP-16 resuming a client', () => {
  it('a client comes back on another node: its leases are its own, its session locks ended with its connection', async () => {
    const a = await client('follower-1');
    const { id, secret } = await session(a);
    expect(id).toBe(a.id);
    expect(secret.length).toBeGreaterThanOrEqual(22); // at least 128 bits, base64url
    expect(await a.ask('preempt r-lease ttl=60000')).toMatch(/^PreemptLock Success/);
    expect(await a.ask('preempt r-session')).toMatch(/^PreemptLock Success/);
    a.close();
    const b = await client('follower-2');
    await eventually(async () => (await b.ask('check r-session')) === 'CheckLock:Free', 'the session lock released');
    expect(await b.ask(`resume ${id} ${secret}`)).toBe(`Resume Success client_id=${id}`);
    expect(await b.ask('whoami')).toBe(`client_id: ${id} node: follower-2`);
    expect(await b.ask('renew r-lease ttl=60000')).toMatch(/^RenewLock Success token=\d+$/); // [LP-10] its own again
    expect(await b.ask('release r-lease')).toBe('ReleaseLock Success');
    // The secret is in no log line.
    expect(t.all.some((l) => l.includes(secret))).toBe(false);
  });

  it('a client that left holding no lease has nothing to resume: its secret is forgotten', async () => {
    const a = await client('leader');
    const { id, secret } = await session(a);
    expect(await a.ask('preempt r-gone')).toMatch(/^PreemptLock Success/); // a session lock: it ends with the connection
    a.close();
    const b = await client('leader');
    await eventually(async () => (await b.ask('check r-gone')) === 'CheckLock:Free', 'the session lock released');
    expect(await b.ask(`resume ${id} ${secret}`)).toBe('Resume Failed');
  });

  it('session ttl=<ms>: a client that holds nothing stays resumable that long after its connection ends, on any node [LP-16]', async () => {
    const a = await client('follower-1');
    const made = /^Session client_id=(\d+) secret=(\S+)$/.exec(await a.ask('session ttl=60000'));
    if (made === null) throw new Error('no session reply');
    const [, id, secret] = made as unknown as [string, string, string];
    a.close();
    const b = await client('follower-2');
    expect(await b.ask(`resume ${id} ${secret}`)).toBe(`Resume Success client_id=${id}`);
    expect(await b.ask('preempt r-ttl ttl=60000')).toMatch(new RegExp(`^PreemptLock Success owner=${id} token=\\d+$`));
    expect(await b.ask('release r-ttl')).toBe('ReleaseLock Success');
    // The forward and the entry carried the ttl through every node's checks: no node stopped.
    expect(t.all.some((l) => /stopped unexpectedly|malformed/.test(l))).toBe(false);
    expect(t.all.some((l) => l.includes(secret))).toBe(false);
    // A ttl that is not one: a clear error [LP-12].
    expect(await b.ask('session ttl=0')).toBe('Error: ttl must be a whole number of milliseconds from 1 to 86400000, got "0"');
  });

  it('a wrong or unknown pair is refused, and counts as a failed auth [LP-15]', async () => {
    const a = await client('leader');
    const { id } = await session(a);
    const b = await client('leader');
    expect(await b.ask(`resume ${id} not-the-secret`)).toBe('Resume Failed');
    expect(await b.ask('resume 99999999 whatever')).toBe('Resume Failed');
    expect(await b.ask('whoami')).toBe(`client_id: ${b.id} node: leader`);
    // [LP-15] the third failure (as for `auth`) closes the connection; its own id is no pair either.
    expect(await b.ask(`resume ${b.id} whatever`)).toBe('Resume Failed');
    await b.waitClosed();
    // Malformed: a clear error, and the secret-like word is not echoed [LP-12].
    const c = await client('leader');
    expect(await c.ask('resume')).toBe('Error: resume needs a client id; usage: resume <client_id> <secret>');
    expect(await c.ask('resume x1 s')).toBe('Error: client id must be a positive whole number, got "x1"; usage: resume <client_id> <secret>');
    expect(await c.ask(`resume ${id} s extra`)).toBe('Error: resume takes two words, the client id and its secret; usage: resume <client_id> <secret>');
  });

  it('resuming while the old connection is open closes it, and ends its session locks [LP-8]', async () => {
    const a = await client('follower-1');
    const { id, secret } = await session(a);
    expect(await a.ask('preempt r-old-session')).toMatch(/^PreemptLock Success/);
    const b = await client('leader');
    expect(await b.ask(`resume ${id} ${secret}`)).toBe(`Resume Success client_id=${id}`);
    await a.waitClosed();
    expect(await b.ask('check r-old-session')).toBe('CheckLock:Free');
    // The old connection's close, after the resume, ends nothing of the new one's.
    expect(await b.ask('preempt r-new-session')).toMatch(new RegExp(`^PreemptLock Success owner=${id} `));
    await eventually(() => t.all.some((l) => l.includes(`client ${id} resumed on another connection`)), 'the old connection closed');
    const c = await client('follower-2');
    await eventually(async () => (await c.ask('check r-new-session')).startsWith(`CheckLock:Lock:${id} `), 'the new session lock visible everywhere');
    expect(await c.ask('check r-new-session')).toMatch(new RegExp(`^CheckLock:Lock:${id} `));
  });

  it('a connection that holds locks as the client it was greeted as cannot become another', async () => {
    const a = await client('leader');
    const { id, secret } = await session(a);
    expect(await a.ask('preempt r-busy-lease ttl=60000')).toMatch(/^PreemptLock Success/); // something to resume for
    a.close();
    const b = await client('leader');
    expect(await b.ask('preempt r-busy')).toMatch(/^PreemptLock Success/);
    expect(await b.ask(`resume ${id} ${secret}`)).toMatch(/^Error: resume must come first on its connection/);
    expect(await b.ask('whoami')).toBe(`client_id: ${b.id} node: leader`);
  });

  it('requests after a resume, pipelined, are made as the resumed client', async () => {
    const a = await client('follower-2');
    const { id, secret } = await session(a);
    expect(await a.ask('preempt r-pipe ttl=60000')).toMatch(/^PreemptLock Success/);
    a.close();
    const b = await client('follower-1');
    b.write(`resume ${id} ${secret}\nrenew r-pipe ttl=60000\nwhoami\n`);
    expect(await b.next()).toBe(`Resume Success client_id=${id}`);
    expect(await b.next()).toMatch(/^RenewLock Success/);
    expect(await b.next()).toBe(`client_id: ${id} node: follower-1`);
  });

  it('the secret survives a failover: it is replicated, not kept by the node that made it', async () => {
    const a = await client('leader');
    const { id, secret } = await session(a);
    expect(await a.ask('preempt r-failover ttl=60000')).toMatch(/^PreemptLock Success/);
    await t.cluster.kill('leader');
    await a.waitClosed();
    await t.logged('cluster', /promoted to leader/, 10_000);
    const lead = t.cluster.nodes.find((n) => n.role === 'leader');
    if (lead === undefined) throw new Error('no leader after failover');
    const b = await LineClient.open(lead.port);
    open.push(b);
    expect(await b.ask(`resume ${id} ${secret}`)).toBe(`Resume Success client_id=${id}`);
    expect(await b.ask('release r-failover')).toBe('ReleaseLock Success');
  });
});
