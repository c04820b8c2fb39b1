/**
 * Snapshots of the lock table in etcd, and compaction of the log behind
 * them.
 *
 * Keys, under `/dlock/<cluster>/`:
 *   snap/<seq>/<part>   the table at that seq, in parts under etcd's
 *                       request limit (codec snapshot frames: JSON TAB
 *                       base64, as a snapshot crosses a link)
 *   snap/latest         {seq, revision, batch, parts}: written last, so a
 *                       reader never finds a half-written snapshot
 *
 * `revision` is the etcd revision the table reflects (the revision of the
 * batch holding `seq`): a node that loads the snapshot tails the log from
 * there. Compaction deletes the log batches before `batch` (the last batch
 * stays, so a new leader still finds where the numbering goes on) and
 * compacts etcd's history up to `revision`: a tail from an older revision
 * then fails, and its node loads the snapshot instead.
 *
 * Threading: the caller's. Ordering: saveSnapshot's writes land before
 * snap/latest names them.
 */
import { Range, type Etcd3, type Namespace } from 'etcd3';
import { decodeFrame, encodeFrame } from '../codec/frame.js';
import { jsonObject } from './etcd-value.js';
import { restore, snapshotPart, type Snapshot, type TableState } from '../core/lock-table.js';

/** A part's encoded size at most; etcd's default request limit is 1.5 MiB. */
export const MAX_PART_BYTES = 1024 * 1024;
const DIGITS = 16;
const pad = (n: number): string => String(n).padStart(DIGITS, '0');

export interface SnapshotMeta {
  seq: number;
  revision: number;
  /** The log batch holding `seq`. */
  batch: number;
  parts: number;
  /**
   * What else a node's state holds beside the table, as [key, value] pairs
   * (host/node-etcd.ts: the last request id applied per origin, for
   * exactly-once). Absent: none.
   */
  extra?: Array<[number, number]>;
}

const nsOf = (client: Etcd3, cluster: string): Namespace => client.namespace(`/dlock/${cluster}/`);

/** Cut `snap` into encoded parts no bigger than `maxBytes` (halving a part that is too big). */
export function encodeParts(snap: Snapshot, seq: number, maxBytes = MAX_PART_BYTES): string[] {
  const ranges: Array<[number, number]> = [];
  const cut = (from: number, to: number): void => {
    const text = encodeFrame({ v: 1, type: 'snapshot', seq, part: 0, parts: 1, state: snapshotPart(snap, from, to) });
    if (text.length <= maxBytes || to - from <= 1) ranges.push([from, to]);
    else {
      const mid = from + Math.floor((to - from) / 2);
      cut(from, mid);
      cut(mid, to);
    }
  };
  if (snap.count === 0) ranges.push([0, 0]);
  else cut(0, snap.count);
  return ranges.map(([from, to], part) => encodeFrame({ v: 1, type: 'snapshot', seq, part, parts: ranges.length, state: snapshotPart(snap, from, to) }));
}

export async function saveSnapshot(client: Etcd3, cluster: string, snap: Snapshot, meta: Omit<SnapshotMeta, 'parts'>, maxBytes = MAX_PART_BYTES): Promise<SnapshotMeta> {
  const ns = nsOf(client, cluster);
  const parts = encodeParts(snap, meta.seq, maxBytes);
  for (const [i, text] of parts.entries()) await ns.put(`snap/${pad(meta.seq)}/${pad(i)}`).value(text).exec();
  const full: SnapshotMeta = { ...meta, parts: parts.length };
  await ns.put('snap/latest').value(JSON.stringify(full)).exec();
  // Older snapshots are no longer named by snap/latest: remove them.
  await client.delete().range(new Range(`/dlock/${cluster}/snap/0`, `/dlock/${cluster}/snap/${pad(meta.seq)}`)).exec();
  return full;
}

/** The latest snapshot as a table, or null when there is none. */
export async function loadSnapshot(client: Etcd3, cluster: string): Promise<{ meta: SnapshotMeta; state: TableState } | null> {
  const ns = nsOf(client, cluster);
  const latest = await ns.get('snap/latest').string();
  if (latest === null) return null;
  const meta = parseMeta(latest);
  let state: TableState | undefined;
  for (let i = 0; i < meta.parts; i++) {
    const text = await ns.get(`snap/${pad(meta.seq)}/${pad(i)}`).string();
    if (text === null) throw new Error(`snapshot at seq ${meta.seq} lacks part ${i} of ${meta.parts}`);
    const f = decodeFrame(text);
    if (f.type !== 'snapshot' || f.seq !== meta.seq || f.part !== i) throw new Error(`snapshot part ${i} at seq ${meta.seq} is not what its key says`);
    state = state === undefined ? restore(f.state, undefined, meta.parts * f.state.count) : restore(f.state, state);
  }
  if (state === undefined) throw new Error(`snapshot at seq ${meta.seq} has no parts`);
  state.locks.settle();
  return { meta, state };
}

/** A snapshot's meta as etcd holds it, checked field by field (any byte from etcd is). */
export class SnapshotMetaError extends Error {
  override readonly name = 'SnapshotMetaError';
  readonly code = 'ERR_SNAPSHOT_META';
}

function parseMeta(text: string): SnapshotMeta {
  const nat = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  const m = jsonObject(text);
  if (m === null) throw new SnapshotMetaError(`snap/latest is not a JSON object: ${text.slice(0, 100)}`);
  const extra = m['extra'];
  if (!nat(m['seq']) || !nat(m['revision']) || !nat(m['batch']) || !nat(m['parts']) || m['parts'] < 1 || m['parts'] > 100_000) throw new SnapshotMetaError(`snap/latest lacks a seq, revision, batch or parts count: ${text.slice(0, 100)}`);
  if (extra !== undefined && !(Array.isArray(extra) && extra.every((p: unknown) => Array.isArray(p) && p.length === 2 && nat(p[0]) && nat(p[1])))) throw new SnapshotMetaError('snap/latest has a malformed extra');
  return { seq: m['seq'], revision: m['revision'], batch: m['batch'], parts: m['parts'], ...(extra === undefined ? {} : { extra: extra as Array<[number, number]> }) };
}

/**
 * Delete the log batches before the snapshot's and compact etcd's history
 * up to its revision. Returns how many batches went.
 */
export async function compactBehind(client: Etcd3, cluster: string, meta: SnapshotMeta): Promise<number> {
  const r = await client.delete().range(new Range(`/dlock/${cluster}/log/`, `/dlock/${cluster}/log/${pad(meta.batch)}`)).exec();
  try {
    await client.kv.compact({ revision: String(meta.revision) });
  } catch (err) {
    // Compacted up to there (or past it) already: nothing to do.
    if (!/compacted/i.test((err as Error).message)) throw err;
  }
  return Number(r.deleted);
}
