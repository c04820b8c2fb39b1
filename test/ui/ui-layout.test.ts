/**
 * The TUI's pure parts, without a terminal: layout (as text snapshots),
 * the keymap that drives hints and the palette, and the view model.
 */
import { describe, expect, it } from 'vitest';
import { Keymap, keyLabel } from '../../ui/keymap.js';
import { layout, renderText, type Focus, type Layout, type Mode, type Rect } from '../../ui/layout.js';
import { ClusterModel, LogBuffer, sparkline } from '../../ui/model.js';
import { clip, wrap } from '../../ui/text.js';

const three = ['leader', 'follower-1', 'follower-2'];
const focus: Focus = { part: 'editor', node: 'leader' };
const mode = (over: Partial<Mode> = {}): Mode => ({ nodes: three, zoom: false, panelTab: 'terminal', ...over });

function inside(r: Rect, cols: number, rows: number): boolean {
  return r.left >= 0 && r.top >= 0 && r.left + r.width <= cols && r.top + r.height <= rows;
}
const overlap = (a: Rect, b: Rect): boolean => a.left < b.left + b.width && b.left < a.left + a.width && a.top < b.top + b.height && b.top < a.top + a.height;

/** Every region is on screen and no two overlap. */
function checkTiling(l: Layout): void {
  const rects = [l.sidebar, l.tabs, l.panel, l.status, ...l.panes.flatMap((p) => [p.log, p.locks])].filter((r): r is Rect => r !== null && r.width > 0 && r.height > 0);
  for (const r of rects) expect(inside(r, l.cols, l.rows)).toBe(true);
  for (let i = 0; i < rects.length; i++) for (let j = i + 1; j < rects.length; j++) expect(overlap(rects[i] as Rect, rects[j] as Rect)).toBe(false);
}

describe('layout', () => {
  it('160x48: side bar, three editor groups side by side, panel, status bar', async () => {
    const l = layout(160, 48, focus, mode());
    expect(l.editorMode).toBe('grid');
    expect(l.panes.map((p) => p.node)).toEqual(three);
    expect(l.sidebar).toEqual({ left: 0, top: 0, width: 30, height: 47 });
    expect(l.status).toEqual({ left: 0, top: 47, width: 160, height: 1 });
    // side by side: same top, increasing left, together spanning the editor width
    expect(new Set(l.panes.map((p) => p.log.top)).size).toBe(1);
    expect(l.panes.reduce((w, p) => w + p.log.width, 0)).toBe(130);
    checkTiling(l);
    await expect(renderText(l)).toMatchFileSnapshot('./layouts/160x48.txt');
  });

  it('80x24: still usable, the editor collapses to the focused node', async () => {
    const l = layout(80, 24, { part: 'editor', node: 'follower-1' }, mode());
    expect(l.editorMode).toBe('single');
    expect(l.panes.map((p) => p.node)).toEqual(['follower-1']);
    expect(l.sidebar?.width).toBe(22);
    expect(l.panel?.height).toBe(8);
    const p = l.panes[0];
    expect(p?.log.height).toBeGreaterThanOrEqual(5);
    expect(p?.locks.height).toBeGreaterThanOrEqual(5);
    checkTiling(l);
    await expect(renderText(l)).toMatchFileSnapshot('./layouts/80x24.txt');
  });

  it('zoom shows one node full-size; a wide pane puts log and lock map side by side', () => {
    const l = layout(160, 48, { part: 'editor', node: 'follower-2' }, mode({ zoom: true }));
    expect(l.panes.map((p) => p.node)).toEqual(['follower-2']);
    const p = l.panes[0];
    expect(p?.log.top).toBe(p?.locks.top);
    expect((p?.log.left ?? 0) + (p?.log.width ?? 0)).toBe(p?.locks.left);
    checkTiling(l);
  });

  it('more nodes than fit side by side make a grid, with no hole in the last row', async () => {
    const nodes = ['leader', ...Array.from({ length: 6 }, (_, i) => `follower-${i + 1}`)];
    const l = layout(160, 60, focus, mode({ nodes }));
    expect(l.editorMode).toBe('grid');
    expect(l.panes).toHaveLength(7);
    const rows = [...new Set(l.panes.map((p) => p.log.top))];
    expect(rows.length).toBeGreaterThan(1);
    const last = l.panes.filter((p) => p.log.top === rows[rows.length - 1]);
    const right = Math.max(...last.map((p) => p.locks.left + p.locks.width));
    expect(right).toBe(160);
    checkTiling(l);
    await expect(renderText(l)).toMatchFileSnapshot('./layouts/160x60-7-nodes.txt');
  });

  it('narrow and short screens drop the side bar and the panel before the editor', () => {
    const l = layout(60, 15, focus, mode());
    expect(l.sidebar).toBeNull();
    expect(l.panel).toBeNull();
    expect(l.panes).toHaveLength(1);
    checkTiling(l);
  });

  it('is a pure function: same input, same output; sizes tile for many sizes', () => {
    expect(layout(123, 37, focus, mode())).toEqual(layout(123, 37, focus, mode()));
    for (const cols of [40, 70, 80, 100, 119, 120, 160, 200]) {
      for (const rows of [12, 16, 24, 30, 40, 48, 60]) {
        for (const zoom of [false, true]) checkTiling(layout(cols, rows, focus, mode({ zoom })));
      }
    }
  });
});

describe('keymap', () => {
  const make = (): { km: Keymap; ran: string[] } => {
    const ran: string[] = [];
    const km = new Keymap();
    km.register({ id: 'next', title: 'Focus next part', keys: ['tab'], scope: 'global', hint: 'next part', run: () => ran.push('next') });
    km.register({ id: 'palette', title: 'Show command palette', keys: ['C-p', 'f1'], scope: 'global', hint: 'palette', run: () => ran.push('palette') });
    km.register({ id: 'scroll', title: 'Scroll log up', keys: ['up'], scope: 'editor', hint: 'scroll', run: () => ran.push('scroll') });
    km.register({ id: 'select', title: 'Select previous node', keys: ['up'], scope: 'explorer', hint: 'select', run: () => ran.push('select') });
    km.register({ id: 'add', title: 'Cluster: add a follower', keys: [], scope: 'global', run: () => ran.push('add') });
    return { km, ran };
  };

  it('one key runs the focused part\'s action first, then a global one', () => {
    const { km, ran } = make();
    km.forKey('up', 'editor')?.run();
    km.forKey('up', 'explorer')?.run();
    km.forKey('f1', 'panel')?.run();
    expect(km.forKey('up', 'panel')).toBeUndefined();
    expect(ran).toEqual(['scroll', 'select', 'palette']);
  });

  it('status bar hints come from the same registry, for the focused part', () => {
    const { km } = make();
    expect(km.hints('editor')).toBe('↑ scroll  Tab next part  ^P palette');
    expect(km.hints('explorer')).toBe('↑ select  Tab next part  ^P palette');
    expect(keyLabel('S-tab')).toBe('⇧Tab');
  });

  it('the palette lists every action and filters by subsequence', () => {
    const { km } = make();
    expect(km.search('')).toHaveLength(5);
    expect(km.search('add fol').map((a) => a.id)).toEqual(['add']);
    expect(km.search('cmdpal').map((a) => a.id)).toEqual(['palette']);
    expect(km.search('zzz')).toEqual([]);
    km.unregister('add');
    expect(km.search('add')).toEqual([]);
  });
});

describe('view model', () => {
  it('a log keeps at most its cap, newest last, and windows from the end', () => {
    const b = new LogBuffer(100);
    for (let i = 0; i < 1000; i++) b.push([{ t: i, kind: 'req', text: `line ${i}` }]);
    expect(b.length).toBe(100);
    expect(b.total).toBe(1000);
    expect(b.window(3).map((l) => l.text)).toEqual(['line 997', 'line 998', 'line 999']);
    expect(b.window(2, 10).map((l) => l.text)).toEqual(['line 988', 'line 989']);
    expect(b.window(500, 0)).toHaveLength(100); // never past the cap
  });

  it('sorts nodes, routes events, computes ops/s and lag', () => {
    const m = new ClusterModel();
    m.onEvent({ type: 'state', node: 'follower-2', state: 'up', address: '127.0.0.1:3' });
    m.onEvent({ type: 'state', node: 'leader', state: 'up', address: '127.0.0.1:1' });
    m.onEvent({ type: 'state', node: 'follower-10', state: 'starting', address: null });
    expect(m.names()).toEqual(['leader', 'follower-2', 'follower-10']);
    m.onEvent({ type: 'log', node: 'leader', lines: [{ t: 1, kind: 'repl', text: 'broadcast new lock_map a 10001' }] });
    m.onEvent({ type: 'log', node: 'cluster', lines: [{ t: 1, kind: 'error', text: 'follower-2 stopped' }] });
    expect(m.node('leader').log.window(5).map((l) => l.text)).toEqual(['broadcast new lock_map a 10001']);
    expect(m.output.window(10).map((l) => l.text)).toContain('follower-2 stopped');
    const stats = (name: string, applied: number, requests: number) => ({ name, role: 'follower' as const, address: null, clients: 1, locks: 0, waiters: 0, applied, commit: 0, bufferedBytes: 0, owedReplies: 0, requests });
    m.applyStats([stats('leader', 10, 100), stats('follower-2', 7, 50)], 1000);
    m.applyStats([stats('leader', 12, 400), stats('follower-2', 12, 250)], 2000);
    expect(m.opsPerSec).toBe(500);
    expect(m.lag('follower-2')).toBe(0);
    expect(m.summary()).toMatchObject({ up: 2, total: 3, clients: 2 });
  });

  it('a paused log stays still while lines arrive', () => {
    const m = new ClusterModel();
    const v = m.node('leader');
    v.log.push([{ t: 0, kind: 'info', text: 'a' }]);
    v.paused = true;
    m.onEvent({ type: 'log', node: 'leader', lines: [{ t: 1, kind: 'info', text: 'b' }, { t: 2, kind: 'info', text: 'c' }] });
    expect(v.back).toBe(2);
    expect(v.log.window(1, v.back).map((l) => l.text)).toEqual(['a']);
  });

  it('sparkline scales to the largest value', () => {
    expect(sparkline([0, 1, 2, 4, 8], 5)).toBe('▁▁▂▄█');
    expect(sparkline([5, 5], 10)).toBe('██');
    expect(sparkline([], 4)).toBe('');
  });
});

describe('text fitting', () => {
  it('clips with an ellipsis', () => {
    expect(clip('abcdef', 4)).toBe('abc…');
    expect(clip('abc', 4)).toBe('abc');
    expect(clip('abc', 0)).toBe('');
  });

  it('wraps at spaces, indents continuations, never exceeds the width or the row limit', () => {
    expect(wrap('12:00:00.000 broadcast new lock_map lock01 20001 token=1', 30, 10)).toEqual(['12:00:00.000 broadcast new', '  lock_map lock01 20001', '  token=1']);
    expect(wrap('x'.repeat(25), 10, 10)).toEqual(['xxxxxxxxxx', '  xxxxxxxx', '  xxxxxxx']);
    expect(wrap('short', 10, 3)).toEqual(['short']);
    const rows = wrap('a b c d e f g h i j k l m n o p', 6, 2);
    expect(rows).toHaveLength(2);
    for (const r of rows) expect(r.length).toBeLessThanOrEqual(6);
  });
});
