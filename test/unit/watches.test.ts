/**
 * A node's watches [LP-19] (src/node/watches.ts), on a real lock table
 * and a stand-in connection: which change answers a watch, and when the
 * state a watch names makes it answer at once or wait.
 */
import { describe, expect, it } from 'vitest';
import { apply, check, createState, restore, snapshot, type Command, type TableState } from '../../src/core/lock-table.js';
import { formatCheck } from '../../src/protocol/reply.js';
import { parseRequest, type Request } from '../../src/protocol/request.js';
import type { ClientConnection, Ticket } from '../../src/server/connection.js';
import { Watches } from '../../src/node/watches.js';

function setup(): { state: () => TableState; run: (cmd: Command) => void; load: (s: TableState) => void; watch: (line: string) => { answers: Array<[string, number]> }; w: Watches } {
  let state = createState();
  let seq = 0;
  const w = new Watches({ table: () => state, checkText: (lock) => formatCheck(check(state, lock, 0)), readSeq: () => seq });
  return {
    state: () => state,
    run: (cmd) => {
      const out = apply(state, cmd, 0);
      if (out.changed) w.changed(++seq, out.changes);
    },
    load: (s) => {
      state = s;
      w.loaded(++seq);
    },
    watch: (line) => {
      const answers: Array<[string, number]> = [];
      const conn = { resolveWatch: (_t: Ticket, text: string, at: number) => answers.push([text, at]) } as unknown as ClientConnection;
      w.add(conn, {} as Ticket, parseRequest(line) as Extract<Request, { verb: 'watch' }>);
      return { answers };
    },
    w,
  };
}

describe('watches [LP-19]', () => {
  it('a change of holder answers, at its seq; a renewal or another lock does not', () => {
    const t = setup();
    t.run({ op: 'preempt', client: 10001, lock: 'a', ttl: 100 });
    const x = t.watch('watch a');
    t.run({ op: 'renew', client: 10001, lock: 'a', ttl: 500 });
    t.run({ op: 'preempt', client: 10001, lock: 'b', ttl: null });
    expect(x.answers).toEqual([]);
    t.run({ op: 'release', client: 10001, lock: 'a' });
    expect(x.answers).toEqual([['WatchLock:Free', 4]]);
    expect(t.w.size).toBe(0);
  });

  it('token= of a grant this node has not applied yet waits until it has, then judges as on arrival', () => {
    const t = setup();
    const later = t.watch('watch a token=2'); // token 2 not granted here yet
    const other = t.watch('watch a token=1');
    t.run({ op: 'preempt', client: 10001, lock: 'a', ttl: null }); // token 1: 2 still not applied
    expect(later.answers).toEqual([]);
    expect(other.answers).toEqual([]); // applied now, and a is as named: it waits for a change
    t.run({ op: 'preempt', client: 10001, lock: 'z', ttl: null }); // token 2 is z's: a is not at token 2
    expect(later.answers).toEqual([['WatchLock:Lock:10001 token=1', 2]]);
    t.run({ op: 'release', client: 10001, lock: 'a' });
    expect(other.answers).toEqual([['WatchLock:Free', 3]]);
    const held = t.watch('watch z token=2'); // as named: waits for a change
    expect(held.answers).toEqual([]);
    t.run({ op: 'release', client: 10001, lock: 'z' });
    expect(held.answers).toEqual([['WatchLock:Free', 4]]);
  });

  it('a snapshot loaded answers the watches whose lock has another holder in it', () => {
    const t = setup();
    t.run({ op: 'preempt', client: 10001, lock: 'a', ttl: null });
    const kept = t.watch('watch a');
    const gone = t.watch('watch b free');
    const other = createState(5);
    apply(other, { op: 'preempt', client: 10001, lock: 'a', ttl: null }, 0); // token 5: another grant
    apply(other, { op: 'preempt', client: 20001, lock: 'b', ttl: null }, 0);
    t.load(restore(snapshot(other)));
    expect(kept.answers).toEqual([['WatchLock:Lock:10001 token=5', 2]]);
    expect(gone.answers).toEqual([['WatchLock:Lock:20001 token=6', 2]]);
  });

  it('a half-close or a timeout answers WatchLock Timeout; a closed connection is dropped silently', () => {
    const t = setup();
    const answers: string[] = [];
    const conn = { resolveWatch: (_t: Ticket, text: string) => answers.push(text) } as unknown as ClientConnection;
    t.w.add(conn, {} as Ticket, parseRequest('watch a') as Extract<Request, { verb: 'watch' }>);
    t.w.timeOut(conn);
    expect(answers).toEqual(['WatchLock Timeout']);
    t.w.add(conn, {} as Ticket, parseRequest('watch a') as Extract<Request, { verb: 'watch' }>);
    t.w.drop(conn);
    t.run({ op: 'preempt', client: 10001, lock: 'a', ttl: null });
    expect(answers).toEqual(['WatchLock Timeout']);
    expect(t.w.size).toBe(0);
  });
});
