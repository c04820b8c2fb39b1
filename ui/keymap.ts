/**
 * One registry of actions drives the key bindings, the status bar's hints
 * and the command palette (as lazygit and k9s do): an action is registered
 * once with its title, keys and scope, and each of those three reads it.
 *
 * Threading: main thread (the TUI). Ordering: actions list in registration
 * order; search ranks by match quality, then that order.
 */
import type { Part } from './layout.js';

export interface Action {
  id: string;
  /** What the palette shows. */
  title: string;
  /** blessed key names, e.g. 'C-p', 'f1', 'S-tab'. None: palette only. */
  keys: readonly string[];
  /** Where the keys work: one part of the screen, or everywhere. */
  scope: Part | 'global';
  /** Short text for the status bar; actions without one are not hinted. */
  hint?: string;
  run: () => void;
}

/** How a key is written in hints: C-p → ^P, S-tab → ⇧Tab. */
export function keyLabel(key: string): string {
  if (key.startsWith('C-')) return `^${key.slice(2).toUpperCase()}`;
  if (key.startsWith('S-')) return `⇧${keyLabel(key.slice(2))}`;
  const named: Record<string, string> = { tab: 'Tab', enter: 'Enter', escape: 'Esc', pageup: 'PgUp', pagedown: 'PgDn', up: '↑', down: '↓', left: '←', right: '→' };
  return named[key] ?? (key.length === 1 ? key : key.toUpperCase());
}

/**
 * How a key is written in the palette, spelled out as VS Code does:
 * C-p → Ctrl+P, S-tab → Shift+Tab, f1 → F1, pageup → Page Up.
 */
export function keyName(key: string): string {
  const chord = (k: string): string => (k.length === 1 ? k.toUpperCase() : keyName(k));
  if (key.startsWith('C-')) return `Ctrl+${chord(key.slice(2))}`;
  if (key.startsWith('S-')) return `Shift+${chord(key.slice(2))}`;
  if (key.startsWith('M-')) return `Alt+${chord(key.slice(2))}`;
  const named: Record<string, string> = { tab: 'Tab', enter: 'Enter', escape: 'Esc', pageup: 'Page Up', pagedown: 'Page Down', up: '↑', down: '↓', left: '←', right: '→', home: 'Home', end: 'End' };
  return named[key] ?? (/^f\d+$/.test(key) ? key.toUpperCase() : key);
}

/** A key that types a character (`q`, `k`), as opposed to Tab, arrows or Ctrl chords. */
const isPrintable = (key: string): boolean => key.length === 1;

export class Keymap {
  private readonly actions: Action[] = [];

  register(action: Action): void {
    const at = this.actions.findIndex((a) => a.id === action.id);
    if (at === -1) this.actions.push(action);
    else this.actions[at] = action;
  }

  unregister(prefix: string): void {
    for (let i = this.actions.length - 1; i >= 0; i--) if ((this.actions[i] as Action).id.startsWith(prefix)) this.actions.splice(i, 1);
  }

  all(): readonly Action[] {
    return this.actions;
  }

  /** The action a key runs when `part` has the focus: that part's first, then global ones. */
  forKey(key: string, part: Part): Action | undefined {
    return this.actions.find((a) => a.scope === part && a.keys.includes(key)) ?? this.actions.find((a) => a.scope === 'global' && a.keys.includes(key));
  }

  /**
   * Status bar hints for the focused part, fitted to `width` columns: its
   * own actions, then global ones, each with its first key that works
   * there (the palette shows them all). The global ones (next part, the
   * palette, quit) are always kept: the part's own are dropped from the
   * end when they do not fit. While `typing` (the TERMINAL's input line has
   * the focus), a printable key types itself, so `q` is not offered as quit
   * there.
   */
  hints(part: Part, typing = false, width = Infinity): string {
    const hint = (a: Action): string | null => {
      const key = a.keys.find((k) => !typing || !isPrintable(k));
      return a.hint !== undefined && key !== undefined ? `${keyLabel(key)} ${a.hint}` : null;
    };
    const own = this.actions.filter((a) => a.scope === part).map(hint).filter((h) => h !== null);
    const global = this.actions.filter((a) => a.scope === 'global').map(hint).filter((h) => h !== null);
    const joined = (xs: string[]): string => xs.join('  ');
    const kept = [...own];
    while (kept.length > 0 && joined([...kept, ...global]).length > width) kept.pop();
    return joined([...kept, ...global]);
  }

  /**
   * Palette search: every query character must appear in the title in order
   * (case-insensitive); contiguous and early matches rank first.
   */
  search(query: string): Action[] {
    const q = query.trim().toLowerCase();
    if (q === '') return [...this.actions];
    const scored: Array<{ a: Action; score: number; i: number }> = [];
    this.actions.forEach((a, i) => {
      const title = a.title.toLowerCase();
      const direct = title.indexOf(q);
      if (direct !== -1) {
        scored.push({ a, score: direct, i });
        return;
      }
      let pos = -1;
      let gaps = 0;
      for (const ch of q) {
        const next = title.indexOf(ch, pos + 1);
        if (next === -1) return;
        gaps += next - pos - 1;
        pos = next;
      }
      scored.push({ a, score: 1000 + gaps, i });
    });
    return scored.sort((x, y) => x.score - y.score || x.i - y.i).map((s) => s.a);
  }
}
