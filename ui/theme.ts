/**
 * The TUI's colours, chosen to read on dark and light terminal themes alike
 *. Pure.
 *
 * Two rules:
 * - Never black text (SGR 30) or a black background: on a dark theme the
 *   one vanishes, on a light theme the other swallows the default text.
 *   Emphasis uses inverse video, which every terminal draws in its own
 *   colours.
 * - Secondary text (counts, inactive tabs, unfocused borders, info log
 *   lines) is gray (SGR 90, "bright black") only where the terminal has at
 *   least 16 colours. blessed reduces gray to colour 0, black, on an
 *   8-colour terminal, so there secondary text keeps the default colour.
 *
 * blessed cannot read ncurses 6's extended terminfo entries (tmux-256color
 * on Debian, for one) and then assumes 8 colours: terminalColors() also
 * believes $TERM and $COLORTERM.
 */

/** How many colours the terminal has: what blessed read from terminfo, or what $TERM / $COLORTERM say, whichever is more. */
export function terminalColors(tputColors: number, env: NodeJS.ProcessEnv): number {
  const term = env['TERM'] ?? '';
  const colorterm = env['COLORTERM'] ?? '';
  const fromEnv = /-(256color|direct)$/.test(term) || /^(truecolor|24bit)$/i.test(colorterm) ? 256 : /-(16color)$/.test(term) ? 16 : 0;
  return Math.max(tputColors, fromEnv);
}

export interface Theme {
  /** The terminal's colour count this theme was made for. */
  colors: number;
  /** A blessed colour name for secondary text, or null for the terminal's default. */
  secondary: string | null;
  /** `s` (already escaped) as secondary text, in blessed tags. */
  dim: (s: string) => string;
  /** Border colour of a focused part, and of the others (null: the default). */
  border: (active: boolean) => string | null;
}

export function theme(colors: number): Theme {
  const secondary = colors >= 16 ? 'gray' : null;
  return {
    colors,
    secondary,
    dim: (s) => (secondary === null || s === '' ? s : `{${secondary}-fg}${s}{/${secondary}-fg}`),
    border: (active) => (active ? 'cyan' : secondary),
  };
}
