/**
 * The TERMINAL's input line: the editing keys a shell user
 * expects, as readline binds them (emacs mode), and a history. Pure: keys
 * in, text and cursor out; the TUI draws it.
 *
 * Keys are blessed's names: 'left', 'right', 'home', 'end', 'C-a', 'C-e',
 * 'backspace', 'delete', 'C-d', 'C-u', 'C-k', 'C-w', 'M-b', 'M-f', 'up',
 * 'down' (Ctrl+P stays the palette's, as in VS Code's terminal). The cursor is an index into the text (0 … text.length).
 */
export class LineEditor {
  text = '';
  cursor = 0;
  private readonly history: string[] = [];
  /** Position in the history while browsing it (-1: the line being typed). */
  private hist = -1;
  /** The line being typed when browsing started, given back past the newest entry. */
  private draft = '';

  /** Type `s` at the cursor. */
  insert(s: string): void {
    this.text = this.text.slice(0, this.cursor) + s + this.text.slice(this.cursor);
    this.cursor += s.length;
  }

  /** Apply an editing key; false if it is not one (the caller may use it). */
  key(name: string): boolean {
    const t = this.text;
    const c = this.cursor;
    switch (name) {
      case 'left':
      case 'C-b':
        this.cursor = Math.max(0, c - 1);
        return true;
      case 'right':
      case 'C-f':
        this.cursor = Math.min(t.length, c + 1);
        return true;
      case 'home':
      case 'C-a':
        this.cursor = 0;
        return true;
      case 'end':
      case 'C-e':
        this.cursor = t.length;
        return true;
      case 'M-b':
      case 'C-left':
        this.cursor = wordStart(t, c);
        return true;
      case 'M-f':
      case 'C-right':
        this.cursor = wordEnd(t, c);
        return true;
      case 'backspace':
        if (c > 0) this.set(t.slice(0, c - 1) + t.slice(c), c - 1);
        return true;
      case 'delete':
      case 'C-d':
        this.set(t.slice(0, c) + t.slice(c + 1), c);
        return true;
      case 'C-u': // readline's unix-line-discard: what is before the cursor
        this.set(t.slice(c), 0);
        return true;
      case 'C-k':
        this.set(t.slice(0, c), c);
        return true;
      case 'C-w': {
        // unix-word-rubout: back to the previous whitespace
        let i = c;
        while (i > 0 && t[i - 1] === ' ') i--;
        while (i > 0 && t[i - 1] !== ' ') i--;
        this.set(t.slice(0, i) + t.slice(c), i);
        return true;
      }
      case 'up':
        this.browse(-1);
        return true;
      case 'down':
        this.browse(1);
        return true;
      default:
        return false;
    }
  }

  /** Enter: the line, which goes into the history (unless blank or a repeat), and an empty input. */
  take(): string {
    const line = this.text;
    if (line.trim() !== '' && this.history[this.history.length - 1] !== line) this.history.push(line);
    this.clear();
    return line;
  }

  clear(): void {
    this.set('', 0);
    this.hist = -1;
    this.draft = '';
  }

  /**
   * What fits in `width` columns: a window of the text that keeps the
   * cursor in view (the cursor may sit just past the end), and where the
   * cursor is within it.
   */
  view(width: number): { text: string; cursor: number } {
    const w = Math.max(1, width);
    const start = this.cursor < w ? 0 : this.cursor - w + 1;
    return { text: this.text.slice(start, start + w), cursor: this.cursor - start };
  }

  private set(text: string, cursor: number): void {
    this.text = text;
    this.cursor = cursor;
  }

  private browse(step: number): void {
    const h = this.history;
    if (h.length === 0) return;
    if (this.hist === -1) {
      if (step > 0) return;
      this.draft = this.text;
      this.hist = h.length - 1;
    } else {
      this.hist += step;
      if (this.hist < 0) this.hist = 0;
    }
    const line = this.hist >= h.length ? this.draft : (h[this.hist] as string);
    if (this.hist >= h.length) this.hist = -1;
    this.set(line, line.length);
  }
}

function wordStart(t: string, c: number): number {
  let i = c;
  while (i > 0 && t[i - 1] === ' ') i--;
  while (i > 0 && t[i - 1] !== ' ') i--;
  return i;
}

function wordEnd(t: string, c: number): number {
  let i = c;
  while (i < t.length && t[i] === ' ') i++;
  while (i < t.length && t[i] !== ' ') i++;
  return i;
}
