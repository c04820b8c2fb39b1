/**
 * `watch` [LP-19] on one node: node-local, never logged. A watch waits for
 * the first change to its lock that this node applies after it read the
 * request (a grant, a release, an expiry: a new holder or none), and is
 * answered with `WatchLock:` and what `check` then shows, at the seq of
 * that change, so its connection sends it once that seq is committed
 * (the read rule, LP-11: a watch shows committed state only). A renewal
 * changes no holder and wakes no watch.
 *
 * `free` or `token=<t>` (with `holders=<k>`) name the state the client
 * last saw: a lock whose state is not that one answers at once, as a
 * `check` would, closing the gap between a `check` and a `watch`. A node
 * that has not yet applied the grant of token t (its next token is not
 * above t) first waits until it has. `timeout` runs on the monotonic
 * clock; a watch that times out, or whose client half-closes, is answered
 * `WatchLock Timeout`.
 *
 * Threading: the node's thread. Ordering: watches of one lock are
 * answered in the order they were made, all at the same change.
 */
import { holding, type LockChange, type TableState } from '../core/lock-table.js';
import type { Request } from '../protocol/request.js';
import type { ClientConnection, Ticket } from '../server/connection.js';

export const WATCH_TIMEOUT = 'WatchLock Timeout';

type WatchRequest = Extract<Request, { verb: 'watch' }>;

interface Watch {
  conn: ClientConnection;
  ticket: Ticket;
  req: WatchRequest;
  /** Who holds the lock as this watch last saw it: `owner:token`, or '' for free. */
  seen: string;
  timer: NodeJS.Timeout | null;
}

/** What the node gives its watches: its table, its reads, and where a read's reply must wait. */
export interface Watched {
  /** The table now (a snapshot load replaces it). */
  table(): TableState;
  /** `check <lock>`'s reply now (`CheckLock:…`). */
  checkText(lock: string): string;
  /** The seq a read of `lock` must wait for (ReadIndex). */
  readSeq(lock: string): number;
}

export class Watches {
  private readonly byLock = new Map<string, Watch[]>();
  /** Watches naming a token this node has not applied the grant of yet. */
  private readonly awaiting = new Set<Watch>();
  private readonly byConn = new Map<ClientConnection, Watch>();

  constructor(private readonly node: Watched) {}

  get size(): number {
    return this.byConn.size;
  }

  /** How many watches wait on `lock` here (those waiting for a token's grant too): for the lock map. */
  on(lock: string): number {
    let n = this.byLock.get(lock)?.length ?? 0;
    for (const w of this.awaiting) if (w.req.lock === lock) n++;
    return n;
  }

  /** Who holds `lock` now: the key a change is judged by. */
  private holder(lock: string): string {
    const h = holding(this.node.table(), lock);
    return h === null ? '' : `${h.owner}:${h.token}:${h.holders}`; // a holder joining or leaving changes it [LP-20]; a renewal does not
  }

  /** Whether the lock's state is not the one the request names (none named: never). */
  private differs(req: WatchRequest): boolean {
    if (req.expect === null) return false;
    const h = holding(this.node.table(), req.lock);
    if ('free' in req.expect) return h !== null;
    if (h === null || h.token !== req.expect.token) return true;
    return req.expect.holders !== null && req.expect.holders !== h.holders; // [LP-20, LP-21] how many hold it
  }

  add(conn: ClientConnection, ticket: Ticket, req: WatchRequest): void {
    const w: Watch = { conn, ticket, req, seen: this.holder(req.lock), timer: null };
    this.byConn.set(conn, w);
    if (req.expect !== null && 'token' in req.expect && this.node.table().nextToken <= req.expect.token) {
      this.awaiting.add(w); // [LP-19] the grant of t is not applied here yet
    } else if (this.differs(req)) {
      this.answer(w, this.node.readSeq(req.lock));
      return;
    } else {
      this.listen(w);
    }
    if (req.timeout !== null) {
      w.timer = setTimeout(() => this.end(w, WATCH_TIMEOUT), req.timeout);
      w.timer.unref();
    }
  }

  private listen(w: Watch): void {
    const list = this.byLock.get(w.req.lock);
    if (list === undefined) this.byLock.set(w.req.lock, [w]);
    else list.push(w);
  }

  /** The entry at `seq` made `changes`, applied here. */
  changed(seq: number, changes: readonly LockChange[]): void {
    if (this.byConn.size === 0) return;
    for (const c of changes) {
      const list = this.byLock.get(c.lock);
      if (list === undefined) continue;
      const now = this.holder(c.lock);
      const due = list.filter((w) => w.seen !== now);
      if (due.length === 0) continue; // a renewal: the same holder
      for (const w of due) this.answer(w, seq);
    }
    if (this.awaiting.size > 0) this.tokensMoved(seq);
  }

  /** Watches whose token is now applied: judged as on arrival. */
  private tokensMoved(seq: number): void {
    for (const w of [...this.awaiting]) {
      if (w.req.expect === null || !('token' in w.req.expect) || this.node.table().nextToken <= w.req.expect.token) continue;
      this.awaiting.delete(w);
      w.seen = this.holder(w.req.lock);
      if (this.differs(w.req)) this.answer(w, Math.max(seq, this.node.readSeq(w.req.lock)));
      else this.listen(w);
    }
  }

  /** The table was replaced by a snapshot at `seq`: a watch whose lock has another holder now is answered. */
  loaded(seq: number): void {
    if (this.byConn.size === 0) return;
    for (const [lock, list] of [...this.byLock]) {
      const now = this.holder(lock);
      for (const w of list.filter((x) => x.seen !== now)) this.answer(w, seq);
    }
    if (this.awaiting.size > 0) this.tokensMoved(seq);
  }

  /** Answer `w` with its lock's state now, to leave once `seq` is committed. */
  private answer(w: Watch, seq: number): void {
    this.forget(w);
    w.conn.resolveWatch(w.ticket, `WatchLock:${this.node.checkText(w.req.lock).slice('CheckLock:'.length)}`, seq);
  }

  /** End `w` unanswered by a change: with `text` (a timeout), or silently when its connection is gone. */
  private end(w: Watch, text: string | null): void {
    this.forget(w);
    if (text !== null) w.conn.resolveWatch(w.ticket, text, 0);
  }

  /** The watch of `conn`, if any, ends as a timeout (its client half-closed, or the node drains it) [LP-2]. */
  timeOut(conn: ClientConnection): void {
    const w = this.byConn.get(conn);
    if (w !== undefined) this.end(w, WATCH_TIMEOUT);
  }

  /** `conn` closed: its watch, if any, is dropped. */
  drop(conn: ClientConnection): void {
    const w = this.byConn.get(conn);
    if (w !== undefined) this.end(w, null);
  }

  private forget(w: Watch): void {
    if (w.timer !== null) clearTimeout(w.timer);
    w.timer = null;
    this.byConn.delete(w.conn);
    this.awaiting.delete(w);
    const list = this.byLock.get(w.req.lock);
    if (list === undefined) return;
    const i = list.indexOf(w);
    if (i !== -1) list.splice(i, 1);
    if (list.length === 0) this.byLock.delete(w.req.lock);
  }
}
