/**
 * A node's lock map as text rows for a pane. Pure.
 *
 * Nothing a user acts on is cut: lock names and fencing tokens (16 digits
 * when seeded from the clock) are shown whole. When the table's columns fit
 * the pane, a lock takes one row under a header; when they do not, every
 * lock takes two and there is no header: the name on its own row (wrapped
 * if it is longer than the pane), then its owner, token and ttl written as
 * replies write them (owner=, token=, ttl=, value=), and its waiters on a row of their own when there are any. Only the
 * waiters list is shortened ("+N" for those left out). The watches waiting
 * on a lock on this node (LP-19) follow its waiters (`watchers=N`). A value (LP-18)
 * ends its lock's row when it fits there, else takes rows of its own under
 * it (at most three; a longer one ends in "…").
 */
import type { LockRow } from '../src/node/node.js';
import { clip, wrap } from './text.js';

/** Column widths: TTL fits "session" and "9999.9s". */
const TTL_W = 7;
const INDENT = '  ';

export interface LockMapText {
  /** Header rows (one, or none in the stacked form). */
  head: string[];
  /** Body rows, at most the room left under the header. */
  body: string[];
  /** Locks not shown: those that did not fit, and those beyond the rows given (`total`). */
  hidden: number;
}

/** The OWNER column: the holder's id; for several holders [LP-20, LP-21], how many (`2/3` with a limit, `2 shared` without). */
export function ownerText(r: LockRow): string {
  if (r.holders === undefined) return String(r.owner);
  return r.limit === null || r.limit === undefined ? `${r.holders.length} shared` : `${r.holders.length}/${r.limit}`;
}

/** `holders=<id>,…` for a lock with several holders, fitted to `room` columns; '' for one holder. */
function holdersText(r: LockRow, room: number): string {
  if (r.holders === undefined || room < 'holders='.length + 2) return ''; // no room: the count in the OWNER column stays
  const list = waitersText(r.holders, room - 'holders='.length);
  return list.startsWith('+') ? '' : `holders=${list}`; // not one id fits: the count says as much
}

function ttlText(r: LockRow): string {
  return r.ttlLeft === null ? 'session' : `${(r.ttlLeft / 1000).toFixed(1)}s`;
}

/** The waiters as fits `room` columns: ids joined by commas, then "+N" for the rest. */
export function waitersText(waiters: readonly number[], room: number): string {
  if (waiters.length === 0) return '';
  const all = waiters.join(',');
  if (all.length <= room) return all;
  let shown = '';
  for (let i = 0; i < waiters.length; i++) {
    const next = shown === '' ? String(waiters[i]) : `${shown},${waiters[i]}`;
    const more = `+${waiters.length - i - 1}`;
    if (`${next},${more}`.length > room) return shown === '' ? clip(`+${waiters.length}`, room) : `${shown},+${waiters.length - i}`;
    shown = next;
  }
  return shown;
}

/**
 * Rows of `width` columns, at most `rows` of them, header included. `total`:
 * how many locks the node holds (`locks` may be the first of them); when
 * some are not shown, the last row says how many.
 */
export function lockMapText(locks: readonly LockRow[], width: number, rows: number, total = locks.length): LockMapText {
  const ownW = Math.max(5, ...locks.map((r) => ownerText(r).length));
  const tokW = Math.max(5, ...locks.map((r) => String(r.token).length));
  const nameW = Math.max(4, ...locks.map((r) => r.lock.length));
  const cols = (r: { owner: string; token: string; ttl: string }): string => `${r.owner.padStart(ownW)} ${r.token.padStart(tokW)} ${r.ttl.padStart(TTL_W)}`;
  const fixed = ownW + 1 + tokW + 1 + TTL_W + 1;
  const flat = nameW + 1 + fixed + 4 <= width; // 4: room for "WAIT" at least
  const headCols = cols({ owner: 'OWNER', token: 'TOKEN', ttl: 'TTL' });
  const head = flat ? [`${'LOCK'.padEnd(nameW)} ${headCols} WAIT`] : [];
  const room = Math.max(0, rows - head.length);
  const fill = (room: number): string[][] => {
    const out: string[][] = [];
    let used = 0;
    for (const r of locks) {
      const lines = rowsOf(r);
      if (used + lines.length > room) break;
      out.push(lines);
      used += lines.length;
    }
    return out;
  };
  const rowsOf = (r: LockRow): string[] => {
    if (flat) {
      const left = `${r.lock.padEnd(nameW)} ${cols({ owner: ownerText(r), token: String(r.token), ttl: ttlText(r) })}`;
      const watched = r.watchers === undefined ? '' : `watchers=${r.watchers}`; // [LP-19] watches waiting on it here
      const waiting = waitersText(r.waiters, width - left.length - 1 - (watched === '' ? 0 : watched.length + 1));
      const held = holdersText(r, width - left.length - 1 - (waiting === '' ? 0 : waiting.length + 1) - (watched === '' ? 0 : watched.length + 1));
      const row = [left, waiting, held, watched].filter((x) => x !== '').join(' ');
      if (r.value === undefined) return [row];
      const value = `value=${r.value}`;
      return row.length + 1 + value.length <= width ? [`${row} ${value}`] : [row, ...valueRows(value, width)];
    }
    // As the protocol's replies write them: owner=, token=, ttl= (each one word, never split).
    const ttl = r.ttlLeft === null ? 'session' : `ttl=${ttlText(r)}`;
    const owner = r.holders === undefined ? `owner=${r.owner}` : `${r.limit === null || r.limit === undefined ? 'shared' : `held=${r.holders.length}/${r.limit}`} ${holdersText(r, width - INDENT.length)}`;
    const lines = [...hardWrap(r.lock, width), ...wrap(`${INDENT}${owner} token=${r.token} ${ttl}${r.watchers === undefined ? '' : ` watchers=${r.watchers}`}${r.value === undefined ? '' : ` value=${r.value}`}`, width, 4)];
    const waiting = `${INDENT}waiting=`;
    if (r.waiters.length > 0) lines.push(waiting + waitersText(r.waiters, width - waiting.length));
    return lines;
  };
  let fitted = fill(room);
  if (fitted.length < total && room > 0) fitted = fill(room - 1); // a row to say how many more
  const hidden = total - fitted.length;
  const body = fitted.flat();
  if (hidden > 0 && room > 0) body.push(`… ${hidden} more`);
  return { head, body, hidden };
}

/** Most rows a value takes under its lock's row; a longer one ends in "…". */
const VALUE_ROWS = 3;

/** `value=<v>` under its lock's row: indented, broken anywhere, at most VALUE_ROWS rows. */
function valueRows(value: string, width: number): string[] {
  const rows = hardWrap(value, Math.max(1, width - INDENT.length)).map((r) => INDENT + r);
  if (rows.length <= VALUE_ROWS) return rows;
  const kept = rows.slice(0, VALUE_ROWS);
  kept[VALUE_ROWS - 1] = clip(`${kept[VALUE_ROWS - 1] as string}…`, width);
  return kept;
}

/** `s` in rows of `width`, broken anywhere (a lock name has no word boundaries to honour). */
function hardWrap(s: string, width: number): string[] {
  const w = Math.max(1, width);
  const out: string[] = [];
  for (let i = 0; i < s.length; i += w) out.push(s.slice(i, i + w));
  return out.length === 0 ? [''] : out;
}
