/**
 * The command palette's text. Pure: matches, selection and
 * size in, rows out; the TUI draws them in a box.
 *
 * The box is as wide as its longest entry (title, then its keys spelled out
 * as VS Code does: Ctrl+P, Shift+Tab) up to the screen's width less a
 * margin, so titles are whole on any screen of 80 columns or more; only a
 * narrower one clips them.
 */
import { keyName, type Action } from './keymap.js';
import { clip } from './text.js';

export interface PaletteEntry {
  title: string;
  /** The keys, spelled out, or '' for a palette-only action. */
  keys: string;
}

export function paletteEntry(a: Pick<Action, 'title' | 'keys'>): PaletteEntry {
  return { title: a.title, keys: a.keys.map(keyName).join(' / ') };
}

/** The palette box's width for these entries on a screen `cols` wide. */
export function paletteWidth(entries: readonly PaletteEntry[], cols: number): number {
  const longest = Math.max(40, ...entries.map((e) => e.title.length + (e.keys === '' ? 0 : e.keys.length + 2)));
  return Math.max(10, Math.min(cols - 4, longest + 2)); // 2: the borders
}

/**
 * An entry as one row of `inner` columns: the title on the left, its keys
 * right-aligned. Returns the two parts (the renderer colours the keys);
 * the title is clipped only when the row cannot hold both.
 */
export function paletteRow(e: PaletteEntry, inner: number): { title: string; gap: string; keys: string } {
  const keys = e.keys === '' ? '' : clip(e.keys, Math.max(0, inner - 6));
  const roomForTitle = keys === '' ? inner : inner - keys.length - 2;
  const title = clip(e.title, Math.max(1, roomForTitle));
  return { title, gap: ' '.repeat(Math.max(keys === '' ? 0 : 2, inner - title.length - keys.length)), keys };
}
