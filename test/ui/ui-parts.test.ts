/**
 * The TUI's details, in its pure parts: the TERMINAL's line
 * editor, lock maps that cut nothing, wrapping that keeps numbers whole,
 * the palette's rows and key names, hints that keep Tab, ^P and quit, and
 * colours that never draw black text. tui.test.ts checks the same on a
 * real screen in tmux.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Keymap, keyName } from '../../ui/keymap.js';
import { LineEditor } from '../../ui/line-editor.js';
import { lockMapText, waitersText } from '../../ui/lockmap.js';
import { paletteEntry, paletteRow, paletteWidth } from '../../ui/palette.js';
import { wrap } from '../../ui/text.js';
import { terminalColors, theme } from '../../ui/theme.js';

const typed = (s: string, ...keys: string[]): LineEditor => {
  const e = new LineEditor();
  e.insert(s);
  for (const k of keys) expect(e.key(k)).toBe(true);
  return e;
};

describe('the TERMINAL input line edits as readline does', () => {
  it('moves with ← → Home End and inserts at the cursor', () => {
    const e = typed('acquire lock01', 'home');
    expect(e.cursor).toBe(0);
    e.key('right');
    e.insert('X');
    expect(e.text).toBe('aXcquire lock01');
    e.key('end');
    e.key('left');
    e.key('backspace');
    expect(e.text).toBe('aXcquire lock1');
    expect(typed('abc', 'left', 'left', 'left', 'left').cursor).toBe(0); // stops at the start
    expect(typed('abc', 'right').cursor).toBe(3); // and at the end
  });

  it('Ctrl+U deletes before the cursor, Ctrl+K after it, Ctrl+W the word before it, Delete the character under it', () => {
    expect(typed('preempt lock01', 'C-u').text).toBe('');
    const u = typed('preempt lock01', 'home', 'M-f', 'C-u');
    expect([u.text, u.cursor]).toEqual([' lock01', 0]);
    expect(typed('preempt lock01 ttl=5', 'C-w').text).toBe('preempt lock01 ');
    expect(typed('preempt lock01  ', 'C-w').text).toBe('preempt ');
    expect(typed('preempt lock01', 'home', 'C-k').text).toBe('');
    expect(typed('abc', 'home', 'delete').text).toBe('bc');
    expect(new LineEditor().key('tab')).toBe(false); // not an editing key: the keymap's
  });

  it('history: ↑ goes back, ↓ forward and then to the line being typed; repeats and blank lines are not kept', () => {
    const e = new LineEditor();
    for (const l of ['check a', 'check a', '  ', 'check b']) {
      e.insert(l);
      e.take();
    }
    e.insert('draft');
    e.key('up');
    expect(e.text).toBe('check b');
    e.key('up');
    e.key('up');
    expect(e.text).toBe('check a');
    e.key('down');
    expect(e.text).toBe('check b');
    e.key('down');
    expect([e.text, e.cursor]).toEqual(['draft', 5]);
  });

  it('a line longer than the panel scrolls with the cursor in view', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), fc.integer({ min: 0, max: 60 }), fc.integer({ min: 1, max: 20 }), (s, at, w) => {
        const e = new LineEditor();
        e.insert(s);
        e.cursor = Math.min(at, s.length);
        const v = e.view(w);
        expect(v.text.length).toBeLessThanOrEqual(w);
        expect(v.cursor).toBeGreaterThanOrEqual(0);
        expect(v.cursor).toBeLessThan(w);
        expect(v.text.slice(0, v.cursor)).toBe(s.slice(e.cursor - v.cursor, e.cursor));
      }),
    );
  });
});

describe('lock maps cut neither names nor tokens', () => {
  const token = 1764512345678901; // seeded from the clock: 16 digits
  const rows = [
    { lock: 'before-deploy-migration', owner: 20001, token, ttlLeft: null, waiters: [] },
    { lock: 'lock01', owner: 10002, token: token + 1, ttlLeft: 4200, waiters: [30001, 30002] },
  ];

  it('one row per lock when the columns fit', () => {
    const t = lockMapText(rows, 80, 10);
    expect(t.head).toEqual(['LOCK                    OWNER            TOKEN     TTL WAIT']);
    expect(t.body).toEqual(['before-deploy-migration 20001 1764512345678901 session', 'lock01                  10002 1764512345678902    4.2s 30001,30002']);
  });

  it('two rows per lock when they do not, and no header: the name whole, then owner, token and ttl labelled; waiters on a third', () => {
    const t = lockMapText(rows, 40, 10);
    expect(t.head).toEqual([]);
    expect(t.body).toEqual(['before-deploy-migration', '  owner=20001 token=1764512345678901', '  session', 'lock01', '  owner=10002 token=1764512345678902', '  ttl=4.2s', '  waiting=30001,30002']);
    expect(lockMapText(rows, 56, 10).body.slice(0, 2)).toEqual(['before-deploy-migration', '  owner=20001 token=1764512345678901 session']);
    for (const r of [...t.head, ...t.body]) expect(r.length).toBeLessThanOrEqual(40);
  });

  it('a value [LP-18] ends its row when it fits, else takes rows of its own under it; the waiters keep their room', () => {
    const valued = [{ ...rows[0]!, value: '10.0.0.5:8080' }, { ...rows[1]!, value: 'x'.repeat(60) }];
    const t = lockMapText(valued, 80, 10);
    expect(t.body).toEqual(['before-deploy-migration 20001 1764512345678901 session value=10.0.0.5:8080', 'lock01                  10002 1764512345678902    4.2s 30001,30002', `  value=${'x'.repeat(60)}`]);
    const long = lockMapText([{ ...rows[1]!, value: 'y'.repeat(300) }], 80, 10).body;
    expect(long).toHaveLength(4);
    expect(long[3]).toMatch(/^ {2}y+…$/);
    expect(lockMapText(valued, 40, 20).body.slice(0, 3)).toEqual(['before-deploy-migration', '  owner=20001 token=1764512345678901', '  session value=10.0.0.5:8080']);
  });

  it('the watches waiting on a lock follow its waiters [LP-19]', () => {
    const watched = [{ ...rows[1]!, watchers: 2 }];
    expect(lockMapText(watched, 80, 10).body).toEqual(['lock01 10002 1764512345678902    4.2s 30001,30002 watchers=2']);
    expect(lockMapText([{ ...rows[0]!, watchers: 1 }], 80, 10).body).toEqual(['before-deploy-migration 20001 1764512345678901 session watchers=1']);
    expect(lockMapText(watched, 40, 10).body.slice(0, 3)).toEqual(['lock01', '  owner=10002 token=1764512345678902', '  ttl=4.2s watchers=2']);
  });

  it('a lock with several holders shows how many in the OWNER column (2/3, 2 shared) and every holder [LP-20, LP-21]', () => {
    const sem = { lock: 'pool', owner: 30001, token: 9, ttlLeft: null, waiters: [40001], holders: [20001, 30001], limit: 3 };
    const shared = { lock: 'doc', owner: 30002, token: 7, ttlLeft: 4200, waiters: [], holders: [20002, 30002], limit: null };
    expect(lockMapText([shared, sem], 80, 10).body).toEqual(['doc  2 shared     7    4.2s holders=20002,30002', 'pool      2/3     9 session 40001 holders=20001,30001']);
    expect(lockMapText([sem], 30, 10).body).toEqual(['pool   2/3     9 session 40001']); // no room for the holders
    expect(lockMapText([{ ...sem, waiters: [] }], 36, 10).body).toEqual(['pool   2/3     9 session']); // room for "+2" only: the count says it
    expect(lockMapText([sem], 24, 10).body).toEqual(['pool', '  held=2/3', '  holders=20001,30001', '  token=9 session', '  waiting=40001']);
  });

  it('says how many did not fit', () => {
    const t = lockMapText(rows, 80, 3, 500);
    expect(t.body).toEqual(['before-deploy-migration 20001 1764512345678901 session', '… 499 more']);
    expect(t.hidden).toBe(499);
  });

  it('every row fits, every name and token shown is whole', () => {
    const row = fc.record({ lock: fc.string({ minLength: 1, maxLength: 70 }), owner: fc.integer({ min: 1, max: 99_999_999 }), token: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), ttlLeft: fc.option(fc.integer({ min: 0, max: 9_999_000 })), waiters: fc.array(fc.integer({ min: 10001, max: 99999 }), { maxLength: 8 }), value: fc.string({ minLength: 1, maxLength: 90 }).filter((v) => !/\s/.test(v)) }, { requiredKeys: ['lock', 'owner', 'token', 'ttlLeft', 'waiters'] });
    fc.assert(
      fc.property(fc.array(row, { maxLength: 6 }), fc.integer({ min: 34, max: 160 }), (locks, width) => {
        const t = lockMapText(locks, width, 100);
        for (const r of [...t.head, ...t.body]) expect(r.length).toBeLessThanOrEqual(width);
        const text = t.body.join('\n');
        for (const l of locks) expect(text).toContain(String(l.token));
        if (t.head.length === 1) for (const l of locks) expect(text).toContain(l.lock); // one row each
        else for (const l of locks) expect(t.body.join('')).toContain(l.lock); // wrapped rows join back to the name
      }),
    );
  });

  it('waiters: as many as fit, then how many more', () => {
    expect(waitersText([10001, 10002, 10003], 40)).toBe('10001,10002,10003');
    expect(waitersText([10001, 10002, 10003], 14)).toBe('10001,10002,+1');
    expect(waitersText([10001, 10002, 10003], 13)).toBe('10001,+2');
    expect(waitersText([10001, 10002, 10003], 3)).toBe('+3');
  });
});

describe('log lines wrap at spaces, never inside a token', () => {
  it('keeps a 16-digit token whole on its row', () => {
    const line = '12:00:00.000 Response 20001: PreemptLock Success owner=20001 token=1764512345678901';
    for (let w = 24; w <= 60; w++) {
      const rows = wrap(line, w, 10);
      expect(rows.some((r) => r.includes('token=1764512345678901'))).toBe(true);
    }
  });
});

describe('the palette and the status bar', () => {
  const km = new Keymap();
  const noop = (): void => {};
  km.register({ id: 'part.next', title: 'Focus next part', keys: ['tab'], scope: 'global', hint: 'next part', run: noop });
  km.register({ id: 'part.prev', title: 'Focus previous part', keys: ['S-tab'], scope: 'global', run: noop });
  km.register({ id: 'palette', title: 'Show command palette', keys: ['C-p', 'f1'], scope: 'global', hint: 'palette', run: noop });
  km.register({ id: 'quit', title: 'Stop the cluster and quit', keys: ['q', 'C-c'], scope: 'global', hint: 'quit', run: noop });
  km.register({ id: 'scroll', title: 'Scroll log up', keys: ['pageup', 'up'], scope: 'editor', hint: 'scroll', run: noop });
  km.register({ id: 'next', title: 'Next node', keys: ['right'], scope: 'editor', hint: 'next node', run: noop });
  km.register({ id: 'kill', title: 'Kill the selected node (a follower restarts; the leader fails over)', keys: ['k'], scope: 'explorer', hint: 'kill', run: noop });

  it('spells keys out as VS Code does', () => {
    expect(['C-p', 'S-tab', 'f1', 'pageup', 'C-o', 'q', 'M-b'].map(keyName)).toEqual(['Ctrl+P', 'Shift+Tab', 'F1', 'Page Up', 'Ctrl+O', 'q', 'Alt+B']);
    expect(paletteEntry(km.all()[2]!)).toEqual({ title: 'Show command palette', keys: 'Ctrl+P / F1' });
  });

  it('is wide enough for its longest entry at 80 columns, and a row is the whole title then its keys', () => {
    const entries = km.all().map(paletteEntry);
    const width = paletteWidth(entries, 80);
    for (const e of entries) {
      const r = paletteRow(e, width - 2);
      expect(r.title).toBe(e.title);
      expect(r.keys).toBe(e.keys);
      expect((r.title + r.gap + r.keys).length).toBe(width - 2);
    }
    const narrow = paletteRow(paletteEntry(km.all()[6]!), 30); // only a screen this narrow clips
    expect(narrow.title).toMatch(/…$/);
    expect(narrow.keys).toBe('k');
  });

  it('hints keep next part, the palette and quit at any width; the part\'s own give way', () => {
    expect(km.hints('editor')).toBe('PgUp scroll  → next node  Tab next part  ^P palette  q quit');
    expect(km.hints('editor', false, 40)).toBe('Tab next part  ^P palette  q quit');
    expect(km.hints('editor', false, 46)).toBe('PgUp scroll  Tab next part  ^P palette  q quit');
    expect(km.hints('editor', true)).toBe('PgUp scroll  → next node  Tab next part  ^P palette  ^C quit');
  });
});

describe('colours that read on dark and light themes', () => {
  it('secondary text is gray only with 16 colours or more, else the default colour', () => {
    expect(theme(8).dim('x')).toBe('x');
    expect(theme(8).border(false)).toBeNull();
    expect(theme(256).dim('x')).toBe('{gray-fg}x{/gray-fg}');
    expect(theme(256).border(true)).toBe('cyan');
  });

  it('believes $TERM and $COLORTERM where blessed misreads terminfo', () => {
    expect(terminalColors(8, { TERM: 'tmux-256color' })).toBe(256);
    expect(terminalColors(8, { TERM: 'xterm', COLORTERM: 'truecolor' })).toBe(256);
    expect(terminalColors(8, { TERM: 'xterm' })).toBe(8);
    expect(terminalColors(256, { TERM: 'dumb' })).toBe(256);
  });
});
