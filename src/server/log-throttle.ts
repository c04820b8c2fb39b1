/**
 * Log lines about events a client can cause at will (a failed TLS
 * handshake, a refused connect), at most one per key (a source address)
 * per interval: the first event of an interval is logged at once, the
 * rest are counted into the next line for that key. So a flood writes a
 * bounded number of lines per source however many connections it makes,
 * and the first event of each is still seen when it happens [LP-14].
 *
 * Intervals run on the monotonic clock (performance.now). Memory is
 * bounded: past MAX_KEYS the oldest key is forgotten (its next event is
 * logged as a first one).
 *
 * Threading: the thread that made it.
 */
const MAX_KEYS = 10_000;

export class LogThrottle {
  private readonly keys = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /**
   * One event for `key`: null when no line is due (it is counted), else
   * how many events of this key no line showed since its last one.
   */
  event(key: string): { suppressed: number } | null {
    const now = this.now();
    const k = this.keys.get(key);
    if (k !== undefined && now - k.at < this.intervalMs) {
      k.suppressed++;
      return null;
    }
    const suppressed = k?.suppressed ?? 0;
    if (k !== undefined) this.keys.delete(key); // re-inserted last: the map stays in order of last line
    else if (this.keys.size >= MAX_KEYS) {
      const oldest = this.keys.keys().next().value;
      if (oldest !== undefined) this.keys.delete(oldest);
    }
    this.keys.set(key, { at: now, suppressed: 0 });
    return { suppressed };
  }
}

/** A socket's source address, without the IPv4-mapped IPv6 prefix, so that one host is one source whichever way it connects. */
export function sourceOf(address: string | undefined): string {
  if (address === undefined) return '?';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
