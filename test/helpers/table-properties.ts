/**
 * Properties every workload of the pure lock table must keep, shared by
 * the property tests of each kind of lock (test/unit/lock-table.test.ts,
 * test/unit/coordination.test.ts): a replica restored from a snapshot
 * (through the codec) and fed the rest of the log reaches the leader's
 * state, and a command that reports no change leaves the state as it was.
 */
import { expect } from 'vitest';
import { decodeSnapshot, encodeSnapshot } from '../../src/codec/frame.js';
import { apply, createState, restore, snapshot, type Command, type Snapshot, type TableState } from '../../src/core/lock-table.js';

/** A snapshot as a link or a snapshot file carries it. */
export const viaCodec = (s: Snapshot): Snapshot => decodeSnapshot(JSON.parse(JSON.stringify(encodeSnapshot(s))));

/** Apply `steps` (a command and the log time that passes before it) on a leader; cut its log of changes at `cutSeed`; a replica from the snapshot there plus the rest equals the leader. */
export function replaysFromSnapshot(steps: ReadonlyArray<readonly [Command, number]>, cutSeed: number, invariants: (s: TableState) => void): void {
  const leader = createState();
  const log: Array<[Command, number]> = [];
  let now = 0;
  for (const [cmd, dt] of steps) {
    now += dt;
    if (apply(leader, cmd, now).changed) log.push([cmd, now]); // only changes are replicated
  }
  const cut = log.length === 0 ? 0 : cutSeed % (log.length + 1);
  const prefix = createState();
  for (const [cmd, at] of log.slice(0, cut)) apply(prefix, cmd, at);
  const replica = restore(viaCodec(snapshot(prefix)));
  for (const [cmd, at] of log.slice(cut)) apply(replica, cmd, at);
  expect(snapshot(replica)).toEqual(snapshot(leader));
  invariants(replica);
}

/** Apply `steps`: every command that reports no change leaves the state exactly as it was. */
export function unchangedWhenNoChange(steps: ReadonlyArray<readonly [Command, number]>): void {
  const s = createState();
  let now = 0;
  for (const [cmd, dt] of steps) {
    now += dt;
    const before = JSON.stringify(encodeSnapshot(snapshot(s)));
    const out = apply(s, cmd, now);
    if (!out.changed) expect(JSON.stringify(encodeSnapshot(snapshot(s)))).toBe(before);
  }
}
