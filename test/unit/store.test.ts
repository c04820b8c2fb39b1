/**
 * The file store on a real directory: records, snapshots and
 * compaction, a torn or corrupt tail cut at the last intact record, files a
 * crash can leave between steps, and directories that cannot be used.
 */
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { crc32 } from 'node:zlib';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrame } from '../../src/codec/frame.js';
import { apply, createState, snapshot, type Command } from '../../src/core/lock-table.js';
import { FileStore, StoreError } from '../../src/store/store-file.js';
import { IdReservations, ID_BLOCK } from '../../src/store/ids-file.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'dlock-store-'));
  dirs.push(d);
  return d;
};

const cmd = (i: number): Command => ({ op: 'preempt', client: 10001, lock: `l${i}`, ttl: i % 2 === 0 ? null : 60_000 });
const entry = (seq: number): string => encodeFrame({ v: 1, type: 'entry', seq, at: 1000 + seq, cmd: cmd(seq), from: 0, req: 0 });

/** Append entries from..to and flush. */
function write(store: FileStore, from: number, to: number): void {
  for (let s = from; s <= to; s++) store.append(s, entry(s));
  expect(store.flush()).toBe(to);
}

describe('FileStore', () => {
  it('replays a snapshot and the entries after it; a checkpoint removes the older files', () => {
    const dir = tempDir();
    const a = new FileStore(dir, 'batch');
    expect(a.load()).toEqual({ snapshot: null, entries: [], cut: null });
    a.checkpoint(0, snapshot(createState(500)));
    write(a, 1, 5);
    const state = createState(500);
    for (let s = 1; s <= 5; s++) apply(state, cmd(s), 1000 + s);
    a.checkpoint(5, snapshot(state));
    write(a, 6, 8);
    a.close();
    expect(readdirSync(dir).sort()).toEqual(['log-5', 'snap-5.json']);

    const b = new FileStore(dir, 'batch').load();
    expect(b.snapshot).toEqual({ seq: 5, state: snapshot(state) });
    expect(b.entries.map((e) => e.seq)).toEqual([6, 7, 8]);
    expect(b.entries[0]?.cmd).toEqual(cmd(6));
    expect(b.cut).toBeNull();
  });

  it('cuts a torn tail (a record without its line end) and reports it; appends continue after the cut', () => {
    const dir = tempDir();
    const a = new FileStore(dir, 'always');
    a.load();
    a.checkpoint(0, snapshot(createState()));
    write(a, 1, 3);
    a.close();
    const torn = entry(4).slice(0, 30);
    appendFileSync(join(dir, 'log-0'), `1234abcd ${torn}`);
    const b = new FileStore(dir, 'batch');
    const r = b.load();
    expect(r.entries.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(r.cut).toEqual({ bytes: 9 + torn.length, afterSeq: 3, file: 'log-0' });
    write(b, 4, 4);
    b.close();
    const c = new FileStore(dir, 'batch').load();
    expect(c.entries.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(c.cut).toBeNull();
  });

  it('cuts at a corrupt record (CRC mismatch) and drops everything after it, in that log and later ones', () => {
    const dir = tempDir();
    const a = new FileStore(dir, 'off');
    a.load();
    a.checkpoint(0, snapshot(createState()));
    write(a, 1, 4);
    a.close();
    const lines = readFileSync(join(dir, 'log-0'), 'utf8').split('\n');
    lines[2] = (lines[2] as string).replace('"l3"', '"l9"'); // a flipped byte in seq 3
    writeFileSync(join(dir, 'log-0'), lines.join('\n'));
    writeFileSync(join(dir, 'log-4'), `${'0'.repeat(8)} {}\n`); // a later log cannot continue a broken one
    const r = new FileStore(dir, 'batch').load();
    expect(r.entries.map((e) => e.seq)).toEqual([1, 2]);
    expect(r.cut?.afterSeq).toBe(2);
    expect(readdirSync(dir).sort()).toEqual(['log-0', 'snap-0.json']);
  });

  it('after a crash between starting a new log and writing its snapshot, replays the older snapshot and both logs', () => {
    const dir = tempDir();
    const a = new FileStore(dir, 'batch');
    a.load();
    a.checkpoint(0, snapshot(createState()));
    write(a, 1, 3);
    a.close();
    // as if checkpoint(3) had started log-3 and entries 4 and 5 went there, but snap-3.json never landed
    const rec = (json: string): string => `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`;
    writeFileSync(join(dir, 'log-3'), rec(entry(4)) + rec(entry(5)));
    writeFileSync(join(dir, 'snap-3.json.tmp'), 'half a snapshot');
    const r = new FileStore(dir, 'batch').load();
    expect(r.snapshot?.seq).toBe(0);
    expect(r.entries.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(r.cut).toBeNull();
    expect(readdirSync(dir)).not.toContain('snap-3.json.tmp');
  });

  it('refuses a directory whose log cannot be replayed (no snapshot covers its start) instead of cutting it', () => {
    const dir = tempDir();
    const a = new FileStore(dir, 'batch');
    a.load();
    a.checkpoint(0, snapshot(createState()));
    write(a, 1, 3);
    a.checkpoint(3, snapshot(createState()));
    write(a, 4, 4);
    a.close();
    writeFileSync(join(dir, 'snap-3.json'), 'garbage');
    expect(() => new FileStore(dir, 'batch').load()).toThrow(/no readable snapshot or log covers seq 1\.\.3 .*move the directory away/);
    expect(readFileSync(join(dir, 'log-3'), 'utf8')).toContain('"seq":4'); // nothing was cut
  });

  it('a path that is a file, or cannot be created, is a StoreError naming it', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'file'), 'x');
    expect(() => new FileStore(join(dir, 'file'), 'batch').load()).toThrow(StoreError);
    expect(() => new FileStore(join(dir, 'file'), 'batch').load()).toThrow(/--data-dir .*file is not a directory/);
    expect(() => new FileStore(join(dir, 'file', 'sub'), 'batch').load()).toThrow(/--data-dir .*sub cannot be used/);
  });

  it('adopt (failover) drops what the old leader logged past the promoted node\'s seq', () => {
    const dir = tempDir();
    const a = new FileStore(dir, 'batch');
    a.load();
    a.checkpoint(0, snapshot(createState()));
    write(a, 1, 6); // the old leader logged 6; the promoted follower had 4
    a.close();
    const state = createState();
    for (let s = 1; s <= 4; s++) apply(state, cmd(s), 1000 + s);
    const b = new FileStore(dir, 'batch');
    b.adopt(4, snapshot(state));
    b.append(5, encodeFrame({ v: 1, type: 'entry', seq: 5, at: 2000, cmd: { op: 'release', client: 10001, lock: 'l1' }, from: 0, req: 0 }));
    b.close();
    const r = new FileStore(dir, 'batch').load();
    expect(r.snapshot?.seq).toBe(4);
    expect(r.entries.map((e) => [e.seq, e.cmd.op])).toEqual([[5, 'release']]);
  });
});

describe('IdReservations', () => {
  it('starts each counter above every ordinal handed out before, even without a clean stop', () => {
    const dir = tempDir();
    const a = new IdReservations(dir);
    const c0 = a.counter(0);
    expect(Atomics.load(c0, 0)).toBe(0n);
    Atomics.add(c0, 0, 1234n); // 1234 clients of the leader, then a crash (no stop)
    const b = new IdReservations(dir);
    expect(Atomics.load(b.counter(0), 0)).toBe(BigInt(ID_BLOCK));
    expect(Atomics.load(b.counter(3), 0)).toBe(0n); // a node index never used before
    writeFileSync(join(dir, 'ids.json'), '{');
    expect(() => new IdReservations(dir)).toThrow(/ids\.json is unreadable.*client ids could repeat/);
  });
});
