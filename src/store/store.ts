/**
 * Where the leader keeps the log on disk, so that a restart
 * with the same data directory restores the lock table, leases, the token
 * counter and (with ids-file.ts) the client-id counters.
 *
 * The log holds the same encoded entry frames the followers get; the table
 * is a deterministic state machine, so a snapshot plus the entries after it
 * rebuild exactly the state the leader had (lock-table.ts).
 *
 * Ordering: append() is called in sequence order; flush() makes every entry
 * appended before it durable per the fsync mode, and the leader answers no
 * write before the flush that covers it. Threading: the leader's thread
 * only; calls are synchronous (one write and at most one fsync per flush).
 *
 * Implementation: store-file.ts.
 */
import type { Snapshot } from '../core/lock-table.js';
import type { Frame } from '../codec/frame.js';

/**
 * always: one fsync per entry; batch: one fsync per flush (group commit:
 * every entry of an event-loop turn); off: write only (survives a process
 * crash, not an operating-system crash or power loss).
 */
export type FsyncMode = 'always' | 'batch' | 'off';
export const FSYNC_MODES: readonly FsyncMode[] = ['always', 'batch', 'off'];

export interface Restored {
  /** The newest intact snapshot, if any. */
  snapshot: { seq: number; state: Snapshot } | null;
  /** Entries after it, in order, each the next sequence number. */
  entries: Array<Extract<Frame, { type: 'entry' }>>;
  /** A torn or corrupt tail that was cut off: how many bytes, after which seq. */
  cut: { bytes: number; afterSeq: number; file: string } | null;
}

export interface Store {
  readonly dir: string;
  /** Read what is on disk (once, before appending). Cuts a torn tail off the files. */
  load(): Restored;
  /** Take the directory over as a promoted leader whose state is at `seq` (failover). */
  adopt(seq: number, state: Snapshot): void;
  /** Queue one encoded entry frame (its text is written as one record). */
  append(seq: number, text: string): void;
  /** Write what is queued and make it durable per the mode. Returns the last seq written. */
  flush(): number;
  /** Entries logged since the last snapshot (to decide when to take one). */
  readonly sinceSnapshot: number;
  /** Write a snapshot of the state at `seq` (everything up to it flushed) and drop older files. */
  checkpoint(seq: number, state: Snapshot): void;
  close(): void;
}
