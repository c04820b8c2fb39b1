/**
 * Client-id counters that survive restarts [LP-4]: with a data directory,
 * "a new client never gets the id of a restored lease's owner", and ids are
 * never reused in the cluster's life, which now spans restarts.
 *
 * Counters live in the main thread (shared with the node workers, which
 * bump them with Atomics). This file reserves a block of ordinals per node
 * index ahead of use: on start each counter begins at its last reservation,
 * which is above every ordinal handed out before, and a new reservation is
 * written (fsynced, renamed) before any client connects. A timer extends a
 * reservation when its counter gets within half a block of it. A crash loses
 * at most the unused rest of a block: ids jump, never repeat.
 *
 * Threading: the main thread.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { newIdCounter, ordinalsUsed, setOrdinalsUsed, type IdCounter } from '../replica/client-ids.js';
import { StoreError } from './store-file.js';

export const ID_BLOCK = 100_000;

export class IdReservations {
  private readonly file: string;
  private readonly reserved = new Map<number, number>();
  private readonly counters = new Map<number, IdCounter>();
  private timer: NodeJS.Timeout | null = null;

  constructor(dir: string) {
    this.file = join(dir, 'ids.json');
    if (existsSync(this.file)) {
      try {
        const data = JSON.parse(readFileSync(this.file, 'utf8')) as { v: number; next: Record<string, number> };
        for (const [k, v] of Object.entries(data.next)) this.reserved.set(Number(k), v);
      } catch (err) {
        throw new StoreError(`${this.file} is unreadable (${(err as Error).message}); client ids could repeat, so dlock will not start. Restore it or move the directory away`);
      }
    }
  }

  /** The shared counter for node `index`, starting above everything handed out before. */
  counter(index: number): IdCounter {
    let c = this.counters.get(index);
    if (c === undefined) {
      c = newIdCounter();
      setOrdinalsUsed(c, this.reserved.get(index) ?? 0);
      this.counters.set(index, c);
      this.reserved.set(index, ordinalsUsed(c) + ID_BLOCK);
      this.save();
    }
    return c;
  }

  /** Extend reservations that are running out; called every `ms`. */
  start(ms = 200): void {
    this.timer = setInterval(() => {
      let grew = false;
      for (const [index, c] of this.counters) {
        const r = this.reserved.get(index) ?? 0;
        if (ordinalsUsed(c) > r - ID_BLOCK / 2) {
          this.reserved.set(index, r + ID_BLOCK);
          grew = true;
        }
      }
      if (grew) this.save();
    }, ms);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * A clean stop, once no node can hand out an id any more (every worker
   * has ended): each reservation shrinks to what was used, so the next run
   * goes on right after the last id, and ids grow with the clients served,
   * not with restarts. A crash never gets here: the next run then starts
   * past the whole reservation.
   */
  handBack(): void {
    this.stop();
    for (const [index, c] of this.counters) this.reserved.set(index, ordinalsUsed(c));
    this.save();
  }

  private save(): void {
    const next: Record<string, number> = {};
    for (const [k, v] of this.reserved) next[String(k)] = v;
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, `${JSON.stringify({ v: 1, next })}\n`);
    const fd = openSync(tmp, 'r');
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, this.file);
  }
}
