/**
 * The Store in a directory (store.ts):
 *
 *   snap-<S>.json   the table at seq S: one record
 *   log-<S>         the entries after S, one record each, appended
 *
 * A record is one line: the CRC-32 of the JSON text in hex, a space, the
 * JSON text. JSON never holds a raw LF, so a line is a record; a line that
 * is cut short or whose CRC does not match is where the intact log ends.
 * load() replays the newest snapshot it can read and every log from that
 * seq on; at a bad record it truncates that file there, deletes any later
 * log (it cannot continue a broken one) and reports the bytes cut.
 *
 * A snapshot is written to a temporary file, fsynced and renamed, then a new
 * log is started, then older files are removed: a crash at any point leaves
 * an older snapshot with the logs that continue it.
 */
import { closeSync, existsSync, fdatasyncSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Snapshot } from '../core/lock-table.js';
import { decodeFrame, decodeSnapshot, encodeSnapshot, type Frame, type WireSnapshot } from '../codec/frame.js';
import type { FsyncMode, Restored, Store } from './store.js';

/** The data directory cannot be used; the message says why and what to do. */
export class StoreError extends Error {
  override readonly name = 'StoreError';
  readonly code = 'ERR_DATA_DIR';
}

/** One record: the CRC-32 of `json` in hex, a space, `json`, LF (a line: JSON never holds a raw LF). */
export const record = (json: string): string => `${crc32(json).toString(16).padStart(8, '0')} ${json}\n`;

/** The JSON of an intact record line, or null. */
export function unrecord(line: string): string | null {
  if (line.length < 10 || line[8] !== ' ') return null;
  const json = line.slice(9);
  return crc32(json).toString(16).padStart(8, '0') === line.slice(0, 8) ? json : null;
}

/** The numbers N of the files named `${prefix}N${suffix}`, rising. */
export const numbered = (files: string[], prefix: string, suffix = ''): number[] =>
  files
    .filter((f) => f.startsWith(prefix) && f.endsWith(suffix) && /^\d+$/.test(f.slice(prefix.length, f.length - suffix.length)))
    .map((f) => Number(f.slice(prefix.length, f.length - suffix.length)))
    .sort((a, b) => a - b);

/** The intact part of log `file` (its text `text`) ends at character `offset`: cut the rest off, durably. Returns the bytes cut. */
export function cutLog(file: string, text: string, offset: number): number {
  const fd = openSync(file, 'r+');
  ftruncateSync(fd, Buffer.byteLength(text.slice(0, offset)));
  fsyncSync(fd);
  closeSync(fd);
  return Buffer.byteLength(text.slice(offset));
}

/** A checkpoint at `seq` is on disk: drop the snapshots and logs before it. */
export function dropBefore(dir: string, seq: number): void {
  const files = readdirSync(dir);
  for (const s of numbered(files, 'snap-', '.json')) if (s < seq) unlinkSync(join(dir, `snap-${s}.json`));
  for (const s of numbered(files, 'log-')) if (s < seq) unlinkSync(join(dir, `log-${s}`));
}

/** fsync a directory: the names created or renamed in it are on disk. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  fsyncSync(fd);
  closeSync(fd);
}

/** Write `text` to `file` whole or not at all: a temporary file, fsynced, renamed, and the directory fsynced. */
export function writeAtomically(dir: string, file: string, text: string): void {
  const tmp = join(dir, `${file}.tmp`);
  writeFileSync(tmp, text);
  const fd = openSync(tmp, 'r');
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, join(dir, file));
  fsyncDir(dir);
}

/**
 * `mkdir -p`, one level at a time. Node's recursive mkdirSync retries
 * forever where a parent exists but refuses new entries with ENOENT (under
 * /proc, for one): `--data-dir /proc/x` hung instead of failing.
 */
function makeDirs(dir: string): void {
  const missing: string[] = [];
  for (let d = resolve(dir); !existsSync(d); d = dirname(d)) {
    missing.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of missing) mkdirSync(d);
}

/** Make sure `dir` is a directory we can write, creating it if missing; StoreError says why not. */
export function prepareDataDir(dir: string): void {
  try {
    makeDirs(dir);
    if (!statSync(dir).isDirectory()) throw new StoreError(`--data-dir ${dir} is not a directory`);
    const probe = join(dir, `.probe-${process.pid}`);
    writeFileSync(probe, 'ok');
    unlinkSync(probe);
  } catch (err) {
    if (err instanceof StoreError) throw err;
    throw new StoreError(`--data-dir ${dir} cannot be used: ${(err as Error).message}`);
  }
}

export class FileStore implements Store {
  private fd: number | null = null;
  private queued: string[] = [];
  private lastQueued = 0;
  private lastWritten = 0;
  sinceSnapshot = 0;

  constructor(
    readonly dir: string,
    private readonly mode: FsyncMode,
  ) {}

  load(): Restored {
    prepareDataDir(this.dir);
    const files = readdirSync(this.dir);
    for (const f of files) if (f.endsWith('.tmp')) unlinkSync(join(this.dir, f)); // a snapshot cut short
    let snapshot: Restored['snapshot'] = null;
    for (const s of numbered(files, 'snap-', '.json').reverse()) {
      const json = unrecord(readFileSync(join(this.dir, `snap-${s}.json`), 'utf8').replace(/\n$/, ''));
      if (json === null) continue; // unreadable: an older one and more log will do
      const snap = JSON.parse(json) as { seq: number; state: WireSnapshot };
      snapshot = { seq: snap.seq, state: decodeSnapshot(snap.state) };
      break;
    }
    let seq = snapshot?.seq ?? 0;
    const entries: Restored['entries'] = [];
    let cut: Restored['cut'] = null;
    const logs = numbered(files, 'log-');
    // The logs that continue the snapshot: from the newest one starting at or before it.
    const first = logs.filter((s) => s <= seq).pop();
    const use = logs.filter((s) => s >= (first ?? 0));
    if (use.length > 0 && (use[0] as number) > seq) {
      // Refuse rather than cut: truncating would destroy what is left.
      const bad = numbered(files, 'snap-', '.json').map((s) => `snap-${s}.json`);
      throw new StoreError(
        `${this.dir}: no readable snapshot or log covers seq ${seq + 1}..${use[0]} (${bad.length > 0 ? `${bad.join(', ')} unreadable` : 'no snapshot'}); move the directory away to start empty`,
      );
    }
    for (const [i, start] of use.entries()) {
      const file = join(this.dir, `log-${start}`);
      if (cut !== null) {
        unlinkSync(file); // after a break nothing can follow
        continue;
      }
      const text = readFileSync(file, 'utf8');
      let offset = 0;
      while (offset < text.length) {
        const nl = text.indexOf('\n', offset);
        const json = nl === -1 ? null : unrecord(text.slice(offset, nl));
        let entry: Extract<Frame, { type: 'entry' }> | null = null;
        if (json !== null) {
          const f = decodeFrame(json);
          if (f.type === 'entry') entry = f;
        }
        if (entry === null || entry.seq > seq + 1) {
          // Torn (no line end), corrupt (CRC), or not the next entry: the intact log ends here.
          cut = { bytes: cutLog(file, text, offset), afterSeq: seq, file: `log-${start}` };
          break;
        }
        if (entry.seq === seq + 1) {
          entries.push(entry);
          seq = entry.seq;
        }
        offset = (nl as number) + 1;
      }
      if (cut !== null) for (const later of use.slice(i + 1)) unlinkSync(join(this.dir, `log-${later}`));
      if (cut !== null) break;
    }
    // Append to the newest log left, or start one after the snapshot.
    const current = use.filter((s) => existsSync(join(this.dir, `log-${s}`))).pop() ?? snapshot?.seq ?? 0;
    this.fd = openSync(join(this.dir, `log-${current}`), 'a');
    this.lastQueued = seq;
    this.lastWritten = seq;
    this.sinceSnapshot = seq - (snapshot?.seq ?? 0);
    return { snapshot, entries, cut };
  }

  /**
   * Take the directory over at failover, as the new leader with the state at
   * `seq`: the old leader may have logged entries past `seq` that were never
   * answered (they lacked this node's acknowledgement), and this log must not
   * replay them. Deletes every log from `seq` on and every snapshot after it,
   * then writes a snapshot at `seq` (which removes the older files).
   */
  adopt(seq: number, state: Snapshot): void {
    prepareDataDir(this.dir);
    const files = readdirSync(this.dir);
    for (const s of numbered(files, 'log-')) if (s >= seq) unlinkSync(join(this.dir, `log-${s}`));
    for (const s of numbered(files, 'snap-', '.json')) if (s > seq) unlinkSync(join(this.dir, `snap-${s}.json`));
    this.lastQueued = seq;
    this.lastWritten = seq;
    this.checkpoint(seq, state);
  }

  append(seq: number, text: string): void {
    this.queued.push(record(text));
    this.lastQueued = seq;
    this.sinceSnapshot++;
    if (this.mode === 'always') this.flush();
  }

  flush(): number {
    if (this.queued.length === 0) return this.lastWritten;
    if (this.fd === null) throw new StoreError('the log is not open');
    const buf = Buffer.from(this.queued.join(''));
    this.queued = [];
    let off = 0;
    while (off < buf.length) off += writeSync(this.fd, buf, off);
    if (this.mode !== 'off') fdatasyncSync(this.fd);
    this.lastWritten = this.lastQueued;
    return this.lastWritten;
  }

  checkpoint(seq: number, state: Snapshot): void {
    this.flush();
    const name = `snap-${seq}.json`;
    const tmp = join(this.dir, `${name}.tmp`);
    writeFileSync(tmp, record(JSON.stringify({ seq, state: encodeSnapshot(state) })));
    const tfd = openSync(tmp, 'r');
    fsyncSync(tfd);
    closeSync(tfd);
    renameSync(tmp, join(this.dir, name));
    // New entries go to a log that continues this snapshot.
    if (this.fd !== null) closeSync(this.fd);
    this.fd = openSync(join(this.dir, `log-${seq}`), 'a');
    fsyncDir(this.dir); // the renames and the new log are in the directory
    dropBefore(this.dir, seq);
    this.sinceSnapshot = 0;
  }

  close(): void {
    if (this.fd === null) return;
    this.flush();
    closeSync(this.fd);
    this.fd = null;
  }
}
