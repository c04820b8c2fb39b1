/**
 * A member's log on disk for the group protocol (replication/pacifica.ts,
 * `--data-dir`): everything it acknowledged or sent, so that a group whose
 * every member is killed at once comes back with every write it committed.
 *
 *   member         which cluster and name the directory belongs to, and
 *                  the member ids its runs had (a restart takes their
 *                  places in the configuration: config.ts replaceRuns)
 *   snap-<S>.json  an `install` frame: the table and each origin's last
 *                  request id applied, at seq S (made in `seqVersion`)
 *   log-<S>        `prepare` frames, one per write(): the log from
 *                  prevSeq + 1 on, as it is now
 *
 * Records are store-file.ts's (a CRC, a space, the text, LF), and every
 * record is a frame of the one codec (codec/frame.ts): what is read back is
 * checked field by field as a frame from a socket is.
 *
 * A `prepare` record says what the log holds from its first entry on: it
 * replaces any later entries read before it (a follower that dropped a
 * tail its primary lacked). load() replays the newest snapshot it can read
 * and the records after it; a record that does not read, or leaves a gap,
 * or does not match the entry before it, ends the log there (cut off, as
 * store-file.ts does).
 *
 * Ordering: the host writes what each ready() hands it to persist at once
 * and holds every ack and every commit until the disk has what it covers
 * (group-host.ts): per the fsync mode (store.ts), `always` flushes each
 * write, `batch` syncs in the background (sync(): one fdatasync covers
 * every write before it, while the event loop goes on), and `off` never
 * syncs (it survives a process crash, not a machine's).
 *
 * Threading: the node's thread; every call is synchronous but sync(),
 * whose fdatasync runs on libuv's pool (a file it covers is closed only
 * once it is done).
 */
import { closeSync, existsSync, fdatasync, fdatasyncSync, fsyncSync, openSync, readdirSync, readFileSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { CodecError, decodeFrame, encodeFrame, type Frame, type GroupEntry } from '../codec/frame.js';
import type { Snapshot } from '../core/lock-table.js';
import type { FsyncMode } from './store.js';
import { cutLog, dropBefore, fsyncDir, numbered, prepareDataDir, record, StoreError, unrecord, writeAtomically } from './store-file.js';

/** A state machine's snapshot: the table, and each origin's last request id applied. */
export interface GroupSnapshot {
  state: Snapshot;
  applied: Array<[number, number]>;
}

export interface GroupRestored {
  /** The newest intact snapshot: the state at `seq`, whose entry was made in `version`. */
  snapshot: { seq: number; version: number; snap: GroupSnapshot } | null;
  /** The entries after it, in seq order (not known to be committed). */
  entries: GroupEntry[];
  /** A torn, corrupt or inconsistent tail that was cut off. */
  cut: { bytes: number; afterSeq: number; file: string } | null;
}

/** Who the directory belongs to. */
export interface GroupMemberFile {
  cluster: string;
  name: string;
  /** The member ids of the runs that kept this log, oldest first. */
  runs: string[];
}

/** A frame's sender and receiver in a record: no link is involved. */
const DISK = 'disk';
/** The runs a member file remembers. */
const MAX_RUNS = 16;

/** An intact record's frame, or null (a cut). */
function readRecord(line: string): Frame | null {
  const json = unrecord(line);
  if (json === null) return null;
  try {
    return decodeFrame(json);
  } catch (err) {
    if (err instanceof CodecError) return null;
    throw err;
  }
}

/** The member file, or null when there is none; StoreError when it does not read. */
export function readMemberFile(dir: string): GroupMemberFile | null {
  const file = join(dir, 'member');
  if (!existsSync(file)) return null;
  const json = unrecord(readFileSync(file, 'utf8').replace(/\n$/, ''));
  let m: unknown = null;
  if (json !== null) {
    try {
      m = JSON.parse(json);
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err;
    }
  }
  const x = m as Partial<GroupMemberFile> | null;
  if (x === null || typeof x !== 'object' || typeof x.cluster !== 'string' || typeof x.name !== 'string' || !Array.isArray(x.runs) || !x.runs.every((r) => typeof r === 'string')) {
    throw new StoreError(`${file} is damaged: it should say which node this data dir belongs to; move the directory away to start this node empty`);
  }
  return { cluster: x.cluster, name: x.name, runs: [...x.runs] };
}

/** Record that run `id` keeps this directory now (before it takes an earlier run's place anywhere). */
export function writeMemberFile(dir: string, cluster: string, name: string, earlier: readonly string[], id: string): GroupMemberFile {
  const m: GroupMemberFile = { cluster, name, runs: [...earlier.filter((r) => r !== id), id].slice(-MAX_RUNS) };
  prepareDataDir(dir);
  writeAtomically(dir, 'member', record(JSON.stringify(m)));
  return m;
}

export class GroupStore {
  private fd: number | null = null;
  private queued: string[] = [];
  /** fdatasyncs under way (sync()), and the files they cover that were replaced meanwhile: closed once none is. */
  private syncing = 0;
  private retired: number[] = [];

  constructor(
    readonly dir: string,
    readonly mode: FsyncMode,
  ) {}

  /** Read what is on disk (once, before writing); cuts a bad tail off its file. */
  load(): GroupRestored {
    prepareDataDir(this.dir);
    const files = readdirSync(this.dir);
    for (const f of files) if (f.endsWith('.tmp')) unlinkSync(join(this.dir, f)); // a write cut short
    let snapshot: GroupRestored['snapshot'] = null;
    for (const s of numbered(files, 'snap-', '.json').reverse()) {
      const f = readRecord(readFileSync(join(this.dir, `snap-${s}.json`), 'utf8').replace(/\n$/, ''));
      if (f === null || f.type !== 'install' || f.seq !== s) continue; // unreadable: an older one and more log will do
      snapshot = { seq: f.seq, version: f.seqVersion, snap: { state: f.state, applied: f.applied } };
      break;
    }
    const base = snapshot?.seq ?? 0;
    const entries: GroupEntry[] = [];
    const versionAt = (seq: number): number => (seq === base ? (snapshot?.version ?? 0) : (entries[seq - base - 1] as GroupEntry).version);
    let cut: GroupRestored['cut'] = null;
    const logs = numbered(files, 'log-');
    const first = logs.filter((s) => s <= base).pop();
    const use = logs.filter((s) => s >= (first ?? 0));
    if (use.length > 0 && (use[0] as number) > base) {
      throw new StoreError(`${this.dir}: no readable snapshot or log covers seq ${base + 1}..${use[0]}; move the directory away to start this node empty`);
    }
    for (const [i, start] of use.entries()) {
      const file = join(this.dir, `log-${start}`);
      const text = readFileSync(file, 'utf8');
      let offset = 0;
      while (offset < text.length) {
        const nl = text.indexOf('\n', offset);
        const f = nl === -1 ? null : readRecord(text.slice(offset, nl));
        const last = base + entries.length;
        // A record must start at or before the log's end, after what the snapshot holds or matching it.
        const fits = f !== null && f.type === 'prepare' && f.prevSeq <= last && (f.prevSeq < base || versionAt(f.prevSeq) === f.prevVersion);
        if (!fits) {
          cut = { bytes: cutLog(file, text, offset), afterSeq: last, file: `log-${start}` };
          break;
        }
        const p = f as Extract<Frame, { type: 'prepare' }>;
        const from = Math.max(p.prevSeq + 1, base + 1);
        entries.length = from - base - 1; // what this record says follows replaces what was read before
        for (const e of p.entries) if (e.seq >= from) entries.push(e);
        offset = (nl as number) + 1;
      }
      if (cut !== null) {
        for (const later of use.slice(i + 1)) unlinkSync(join(this.dir, `log-${later}`)); // nothing can follow a break
        break;
      }
    }
    const current = use.filter((s) => existsSync(join(this.dir, `log-${s}`))).pop() ?? base;
    this.fd = openSync(join(this.dir, `log-${current}`), 'a');
    return { snapshot, entries, cut };
  }

  /** The log from `entries[0].seq` on is now `entries` (the entry before it was made in `prevVersion`). Durable at flush(). */
  write(prevVersion: number, entries: readonly GroupEntry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    const version = Math.max(1, ...entries.map((e) => e.version), prevVersion);
    this.queued.push(record(encodeFrame({ v: 1, type: 'prepare', version, from: DISK, to: DISK, prevSeq: first.seq - 1, prevVersion, entries: [...entries], commit: 0, sent: 0, ackSeen: null, readBase: null })));
    if (this.mode === 'always') this.flush();
  }

  /** Write what is queued and make it durable per the mode. */
  flush(): void {
    if (this.writeQueued() && this.mode !== 'off') fdatasyncSync(this.fd as number);
  }

  /** Write what is queued to the file, without waiting for the disk (sync() does). Whether anything was written. */
  writeQueued(): boolean {
    if (this.queued.length === 0) return false;
    if (this.fd === null) throw new StoreError('the log is not open');
    const buf = Buffer.from(this.queued.join(''));
    this.queued = [];
    let off = 0;
    while (off < buf.length) off += writeSync(this.fd, buf, off);
    return true;
  }

  /** Everything written before this call reaches the disk, then `done` runs (on a later turn); an error there is the disk's. */
  sync(done: (err: Error | null) => void): void {
    if (this.fd === null) throw new StoreError('the log is not open');
    this.syncing++;
    fdatasync(this.fd, (err) => {
      if (--this.syncing === 0) for (const fd of this.retired.splice(0)) closeSync(fd);
      done(err);
    });
  }

  /** Close a file this store no longer writes, once no sync() covers it. */
  private retire(fd: number): void {
    if (this.syncing > 0) this.retired.push(fd);
    else closeSync(fd);
  }

  /**
   * The state machine's snapshot at `seq` (the entry there made in
   * `version`) stands for the log up to it; `tail` is the log after it
   * (prevVersion: `version`). A crash at any point leaves an older
   * snapshot with the logs that continue it.
   */
  checkpoint(seq: number, version: number, snap: GroupSnapshot, tail: readonly GroupEntry[]): void {
    this.flush();
    const install: Frame = { v: 1, type: 'install', version: Math.max(1, version), from: DISK, to: DISK, seq, seqVersion: version, sent: 0, ackSeen: null, state: snap.state, applied: snap.applied };
    writeAtomically(this.dir, `snap-${seq}.json`, record(encodeFrame(install)));
    // The log after it goes to a new file that continues this snapshot.
    if (this.fd !== null) this.retire(this.fd);
    writeFileSync(join(this.dir, `log-${seq}`), '');
    this.fd = openSync(join(this.dir, `log-${seq}`), 'a');
    this.write(version, tail);
    this.flush();
    if (this.mode !== 'off') fsyncSync(this.fd);
    fsyncDir(this.dir);
    dropBefore(this.dir, seq);
  }

  close(): void {
    if (this.fd === null) return;
    this.flush();
    this.retire(this.fd);
    this.fd = null;
  }
}
