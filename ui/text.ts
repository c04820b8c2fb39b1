/**
 * Fitting text into panes: clip with an ellipsis, or wrap. Pure; lengths are
 * in UTF-16 units, which is what blessed counts for the characters dlock's
 * logs contain (names are shown as received, escaped by the renderer).
 */

/** `s` cut to `n` columns, with … when something was cut. */
export function clip(s: string, n: number): string {
  if (n <= 0) return '';
  return s.length <= n ? s : `${s.slice(0, Math.max(0, n - 1))}…`;
}

/**
 * `text` as rows of at most `width`: broken at the last space that fits (a
 * word, a number or a token is never split while it fits on a row of its
 * own), else hard; continuation rows indented by two. At most `max` rows;
 * the last one is clipped.
 */
export function wrap(text: string, width: number, max: number): string[] {
  const rows: string[] = [];
  let rest = text;
  let room = width;
  while (rest.length > room && rows.length < max - 1) {
    let cut = rest.lastIndexOf(' ', room);
    if (cut <= 0) cut = room;
    rows.push(rows.length === 0 ? rest.slice(0, cut) : `  ${rest.slice(0, cut)}`);
    rest = rest.slice(cut).trimStart();
    room = width - 2;
  }
  rows.push(rows.length === 0 ? rest : `  ${rest}`);
  return rows.map((r) => clip(r, width));
}
