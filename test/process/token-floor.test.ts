/**
 * Fencing tokens never repeat across runs, and never come from a clock
 * [LP-7]. A memory-only `dlock up` keeps a token floor
 * (src/store/token-floor.ts): a run restarted with its clock 90 s behind
 * still grants tokens above the earlier run's. A floor it cannot read
 * stops it with a clear error instead of starting at 1.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../bench/free-port.js';
import { TOKEN_BLOCK, TokenFloor, tokenFloorFile } from '../../src/store/token-floor.js';
import { firstVersionAbove, floorOf, MAX_VERSION, SPACE, TokenSpaceError } from '../../src/core/token-space.js';
import { run, type Running } from '../helpers/dlock-process.js';
import { fakeClock, LIBFAKETIME } from '../helpers/faketime.js';
import { eventually, LineClient } from '../helpers/line-client.js';

const state = mkdtempSync(join(tmpdir(), 'dlock-floor-'));
afterAll(() => rmSync(state, { recursive: true, force: true }));

describe('the token floor of a memory-only cluster', () => {
  it('reserves a block ahead of use and moves it up when the table nears it', () => {
    const file = join(state, 'unit', 'tokens.json');
    const a = new TokenFloor(file);
    expect(a.first).toBe(1);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ v: 1, next: 1 + TOKEN_BLOCK });
    a.extend(1000); // far from the reservation: nothing written
    expect(JSON.parse(readFileSync(file, 'utf8')).next).toBe(1 + TOKEN_BLOCK);
    a.extend(TOKEN_BLOCK); // within half a block
    expect(JSON.parse(readFileSync(file, 'utf8')).next).toBe(1 + 2 * TOKEN_BLOCK);
    const b = new TokenFloor(file); // the next run starts above it all
    expect(b.first).toBe(1 + 2 * TOKEN_BLOCK);
  });

  it('a file keyed by address, under $XDG_STATE_HOME', () => {
    expect(tokenFloorFile('127.0.0.1', 9001, { XDG_STATE_HOME: '/s' })).toBe('/s/dlock/tokens-127.0.0.1-9001.json');
    expect(tokenFloorFile('::1', 9001, { XDG_STATE_HOME: '/s' })).toBe('/s/dlock/tokens-__1-9001.json');
  });

  const procs: Running[] = [];
  afterAll(() => {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  });

  async function upOn(port: number, env: NodeJS.ProcessEnv): Promise<Running> {
    const proc = run(['up', '--port', String(port), '--followers', '0', '--quiet'], undefined, env);
    procs.push(proc);
    await eventually(() => /^ready /m.test(proc.out()) || proc.child.exitCode !== null, 'the ready line', 15_000);
    if (!/^ready /m.test(proc.out())) throw new Error(`dlock up did not get ready:\n${proc.out()}\n${proc.err()}`);
    return proc;
  }

  async function grant(port: number, lock: string): Promise<number> {
    const c = await LineClient.open(port);
    const reply = await c.ask(`preempt ${lock}`);
    c.close();
    const m = /^PreemptLock Success owner=\d+ token=(\d+)$/.exec(reply);
    if (m === null) throw new Error(`unexpected reply ${reply}`);
    return Number(m[1]);
  }

  it.skipIf(LIBFAKETIME === null)('a run killed and restarted with its clock 90 s behind grants tokens above the earlier run\'s', async () => {
    const env = { ...process.env, XDG_STATE_HOME: join(state, 'restart') };
    const port = await freePort();
    const first = await upOn(port, env);
    const t1 = await grant(port, 'fenced');
    first.child.kill('SIGKILL'); // no clean stop: the floor was written before it served
    await first.exit;
    const second = await upOn(port, fakeClock('-90s', env));
    const t2 = await grant(port, 'fenced');
    expect(t2).toBeGreaterThan(t1);
    second.child.kill('SIGTERM');
    await second.exit;
  }, 60_000);

  it('an unreadable floor stops it with a clear error, not tokens from 1', async () => {
    const env = { ...process.env, XDG_STATE_HOME: join(state, 'garbled') };
    const port = await freePort();
    const file = tokenFloorFile('127.0.0.1', port, env);
    new TokenFloor(file);
    writeFileSync(file, '{"v":1,"next":"soon"}\n');
    const proc = run(['up', '--port', String(port), '--followers', '0'], undefined, env);
    procs.push(proc);
    expect(await proc.exit).not.toBe(0);
    expect(proc.out() + proc.err()).toContain(`the token floor ${file} is unreadable`);
  }, 30_000);
});

describe('token spaces by configuration version [LP-7]', () => {
  it('version 1 starts at 1 (the walkthrough\'s tokens), each version\'s space lies above the last, the last fits a safe integer', () => {
    expect(floorOf(0)).toBe(1);
    expect(floorOf(1)).toBe(1);
    expect(floorOf(2)).toBe(SPACE + 1);
    expect(floorOf(3) - floorOf(2)).toBe(SPACE);
    expect(floorOf(MAX_VERSION) + SPACE - 1).toBeLessThanOrEqual(Number.MAX_SAFE_INTEGER);
    expect(() => floorOf(MAX_VERSION + 1)).toThrow(TokenSpaceError);
    // The first version whose whole space is at or above a floor.
    expect(firstVersionAbove(1)).toBe(1);
    expect(firstVersionAbove(2)).toBe(2);
    expect(firstVersionAbove(SPACE + 1)).toBe(2);
    expect(firstVersionAbove(SPACE + 2)).toBe(3);
    for (const t of [1, 2, 17, SPACE, SPACE + 1, 5 * SPACE + 3]) expect(floorOf(firstVersionAbove(t))).toBeGreaterThanOrEqual(t);
  });
});
