/**
 * A group member's log on disk (src/store/group-store.ts) on a real
 * directory: records read back through the one codec, a tail replaced by
 * a later record, checkpoints that keep the uncommitted tail, a torn or
 * corrupt record cut off, the member file; and replaceRuns (config.ts),
 * by which a run back on its data dir takes its earlier run's place.
 */
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { GroupEntry } from '../../src/codec/frame.js';
import { replaceRuns, ReplaceRefusedError } from '../../src/config/config.js';
import { MemoryConfig } from '../../src/config/memory.js';
import { createState, snapshot } from '../../src/core/lock-table.js';
import { GroupStore, readMemberFile, writeMemberFile } from '../../src/store/group-store.js';
import { StoreError } from '../../src/store/store-file.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'dlock-group-store-'));
  dirs.push(d);
  return d;
};

const entry = (seq: number, version = 1, lock = `l${seq}`): GroupEntry => ({ seq, version, at: 1000 + seq, cmd: { op: 'preempt', client: 10001, lock, ttl: 60_000 }, origin: 1, req: seq });

describe('GroupStore', () => {
  it('reads back what was written; a record from an earlier seq replaces the tail after it (a follower that dropped a tail)', () => {
    const dir = tempDir();
    const a = new GroupStore(dir, 'batch');
    expect(a.load()).toEqual({ snapshot: null, entries: [], cut: null });
    a.write(0, [entry(1), entry(2), entry(3), entry(4)]);
    a.write(1, [entry(3, 2, 'other'), entry(4, 2, 'other4')]); // the primary of version 2 lacked 3 and 4 as they were
    a.write(2, [entry(5, 2)]);
    a.close();
    const b = new GroupStore(dir, 'batch').load();
    expect(b.cut).toBeNull();
    expect(b.entries.map((e) => [e.seq, e.version, e.cmd.op === 'preempt' ? e.cmd.lock : ''])).toEqual([[1, 1, 'l1'], [2, 1, 'l2'], [3, 2, 'other'], [4, 2, 'other4'], [5, 2, 'l5']]);
  });

  it('a checkpoint keeps the table and the log after it, in a file of its own; older files go', () => {
    const dir = tempDir();
    const a = new GroupStore(dir, 'always');
    a.load();
    a.write(0, [entry(1), entry(2), entry(3)]);
    const state = createState(100);
    a.checkpoint(2, 1, { state: snapshot(state), applied: [[1, 2]] }, [entry(3)]);
    a.write(1, [entry(4)]);
    a.close();
    expect(readdirSync(dir).sort()).toEqual(['log-2', 'snap-2.json']);
    const b = new GroupStore(dir, 'batch').load();
    expect(b.snapshot).toEqual({ seq: 2, version: 1, snap: { state: snapshot(state), applied: [[1, 2]] } });
    expect(b.entries.map((e) => e.seq)).toEqual([3, 4]);
  });

  it('cuts a torn record, a corrupt one, and one that does not follow the log; writes go on after the cut', () => {
    const dir = tempDir();
    const a = new GroupStore(dir, 'batch');
    a.load();
    a.write(0, [entry(1), entry(2)]);
    a.close();
    appendFileSync(join(dir, 'log-0'), '0000abcd {"v":1,"type":"prepare"'); // torn: no line end
    const b = new GroupStore(dir, 'batch');
    const r = b.load();
    expect(r.entries.map((e) => e.seq)).toEqual([1, 2]);
    expect(r.cut).toMatchObject({ afterSeq: 2, file: 'log-0' });
    b.write(1, [entry(3)]);
    b.close();
    expect(new GroupStore(dir, 'batch').load().entries.map((e) => e.seq)).toEqual([1, 2, 3]);
    // A record that claims a version the log does not have before it: not this log's continuation.
    const c = new GroupStore(dir, 'batch');
    c.load();
    c.write(7, [entry(4, 7)]);
    c.close();
    const d = new GroupStore(dir, 'batch').load();
    expect(d.entries.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(d.cut).not.toBeNull();
    // A record whose text was changed: its CRC no longer matches.
    const e = new GroupStore(dir, 'batch');
    e.load();
    e.write(1, [entry(4)]);
    e.close();
    const log = join(dir, 'log-0');
    writeFileSync(log, readFileSync(log, 'utf8').replace('"l4"', '"l5"'));
    expect(new GroupStore(dir, 'batch').load().entries.map((x) => x.seq)).toEqual([1, 2, 3]);
  });

  it('the member file names the cluster, the node and its runs; a damaged one is refused', () => {
    const dir = tempDir();
    expect(readMemberFile(dir)).toBeNull();
    writeMemberFile(dir, 'c', 'n1', [], 'n1.100');
    writeMemberFile(dir, 'c', 'n1', ['n1.100'], 'n1.200');
    expect(readMemberFile(dir)).toEqual({ cluster: 'c', name: 'n1', runs: ['n1.100', 'n1.200'] });
    writeFileSync(join(dir, 'member'), 'not a record\n');
    expect(() => readMemberFile(dir)).toThrow(StoreError);
  });
});

describe('replaceRuns', () => {
  it('puts the new run where its earlier run was, primary or secondary, by compare-and-swap', async () => {
    const m = new MemoryConfig();
    await m.propose(null, { version: 1, primary: 'a.1', secondaries: ['b.1', 'c.1'] });
    expect(await replaceRuns(m, ['b.1'], 'b.7', new Set())).toEqual({ replaced: 'b.1', current: { version: 2, primary: 'a.1', secondaries: ['c.1', 'b.7'] } });
    expect(await replaceRuns(m, ['a.0', 'a.1'], 'a.9', new Set())).toEqual({ replaced: 'a.1', current: { version: 3, primary: 'a.9', secondaries: ['c.1', 'b.7'] } });
    // Not a member (removed while it was down): nothing to take; it joins as a learner.
    expect(await replaceRuns(m, ['d.1'], 'd.2', new Set())).toEqual({ replaced: null, current: { version: 3, primary: 'a.9', secondaries: ['c.1', 'b.7'] } });
    // An earlier run still live must end first.
    await expect(replaceRuns(m, ['c.1'], 'c.2', new Set(['c.1']))).rejects.toThrow(ReplaceRefusedError);
  });
});
