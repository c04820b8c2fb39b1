/**
 * Fencing tokens that keep rising across runs of a cluster that keeps
 * nothing else [LP-7]. A memory-only `dlock up` starts with an empty table
 * each run; if its tokens started at 1 again, a resource fenced by an
 * earlier run would see a token it has seen before. The clock cannot be
 * the floor (a clock stepped back would repeat tokens), so this file keeps
 * it: a reservation of token numbers, written ahead of use.
 *
 * On start a run begins at the reservation the file holds (above every
 * token any earlier run could have issued) and writes a new one a block
 * higher (fsynced, renamed) before the cluster serves. While the run lives,
 * extend() moves the reservation up a block once the table's next token is
 * within half a block of it; with a block of 2^32 tokens that half is
 * hours of grants at any rate dlock reaches, against a check every second.
 * A crash loses at most the unused rest of a block: tokens jump, never
 * repeat. 2^53 / 2^32 leaves two million runs.
 *
 * Threading: the main thread. One file per cluster address: two clusters
 * never share one (they could not listen on the same port at once).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { StoreError } from './store-file.js';

export const TOKEN_BLOCK = 2 ** 32;

/** Where a memory-only cluster listening at host:port keeps its token floor: $XDG_STATE_HOME/dlock, else ~/.local/state/dlock. */
export function tokenFloorFile(host: string, port: number, env: NodeJS.ProcessEnv = process.env): string {
  const base = env['XDG_STATE_HOME'] !== undefined && env['XDG_STATE_HOME'] !== '' ? env['XDG_STATE_HOME'] : join(homedir(), '.local', 'state');
  return join(base, 'dlock', `tokens-${host.replace(/[^A-Za-z0-9.-]/g, '_')}-${port}.json`);
}

export class TokenFloor {
  private reserved: number;

  /** Reads the file (a missing one is a first run) and reserves the first block; throws StoreError when it cannot. */
  constructor(private readonly file: string) {
    let floor = 1;
    let text: string | null = null;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new StoreError(`cannot read the token floor ${file} (${(err as Error).message}); give --data-dir or --first-token`);
    }
    if (text !== null) {
      const parsed = parseFloor(text);
      if (parsed === null) throw new StoreError(`the token floor ${file} is unreadable; fencing tokens could repeat, so dlock will not start. Remove it only if no resource is fenced by this cluster's tokens, or give --first-token`);
      floor = parsed;
    }
    this.first = floor;
    this.reserved = floor;
    this.save(floor + TOKEN_BLOCK);
  }

  /** The first token of this run's empty table. */
  readonly first: number;

  /** Called with the table's next token: moves the reservation up once it is within half a block. */
  extend(nextToken: number): void {
    if (nextToken > this.reserved - TOKEN_BLOCK / 2) this.save(Math.max(this.reserved, nextToken) + TOKEN_BLOCK);
  }

  private save(reserved: number): void {
    if (!Number.isSafeInteger(reserved)) throw new StoreError(`the token floor ${this.file} has reached 2^53; give --first-token`);
    try {
      mkdirSync(dirname(this.file), { recursive: true });
      const tmp = `${this.file}.tmp`;
      writeFileSync(tmp, `${JSON.stringify({ v: 1, next: reserved })}\n`);
      const fd = openSync(tmp, 'r');
      fsyncSync(fd);
      closeSync(fd);
      renameSync(tmp, this.file);
    } catch (err) {
      throw new StoreError(`cannot keep the token floor ${this.file} (${(err as Error).message}); give --data-dir or --first-token`);
    }
    this.reserved = reserved;
  }
}

function parseFloor(text: string): number | null {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    if (err instanceof SyntaxError) return null;
    throw err;
  }
  if (typeof data !== 'object' || data === null) return null;
  const next = (data as { next?: unknown }).next;
  return typeof next === 'number' && Number.isSafeInteger(next) && next >= 1 ? next : null;
}
