/**
 * A node's Prometheus metrics (issue 14 §2), through prom-client, in the
 * node's own thread: requests by verb and result, request latency, and, at
 * scrape time, what the node holds (locks, waiters, clients) and how far
 * its replication is (applied and committed seq; on the leader each
 * follower's lag). The admin API (admin/admin-http.ts) serves them; in the
 * one-process cluster the main thread asks each worker for its metrics as
 * JSON and merges them (prom-client's AggregatorRegistry), each series
 * labelled with its node.
 *
 * Cost on the request path: one counter increment and one histogram
 * observation per reply, on label children made once per verb and result.
 *
 * Threading: the node's thread.
 */
import { Counter, Gauge, Histogram, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client';

export type Result = 'ok' | 'no' | 'error';

/** What the gauges read at scrape time. */
export interface Observed {
  locks: number;
  waiters: number;
  clients: number;
  applied: number;
  commit: number;
  /** Leader only: each follower's acknowledged seq. */
  followers?: Record<string, number> | undefined;
}

export class NodeMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter;
  private readonly latency: Histogram;
  private readonly counted = new Map<string, Counter.Internal>();
  private readonly timed = new Map<string, Histogram.Internal<string>>();

  constructor(
    readonly node: string,
    observe: () => Observed,
  ) {
    this.registry.setDefaultLabels({ node });
    this.requests = new Counter({ name: 'dlock_requests_total', help: 'Requests answered, by verb and result (ok, no: Failed/Timeout/Stale, error: an Error reply).', labelNames: ['verb', 'result'], registers: [this.registry] });
    this.latency = new Histogram({
      name: 'dlock_request_duration_seconds',
      help: 'From a request read to its reply written (a write: committed on every replica), by verb.',
      labelNames: ['verb'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers: [this.registry],
    });
    const gauge = (name: string, help: string, read: (o: Observed) => number): void => {
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(read(observe()));
        },
      });
    };
    gauge('dlock_locks', 'Locks held in this node\'s replica.', (o) => o.locks);
    gauge('dlock_waiters', 'Clients waiting in acquire, in this node\'s replica.', (o) => o.waiters);
    gauge('dlock_clients', 'Client connections to this node.', (o) => o.clients);
    gauge('dlock_applied_seq', 'Last log entry this node applied.', (o) => o.applied);
    gauge('dlock_commit_seq', 'Commit index this node knows: replies reflecting up to it may be sent.', (o) => o.commit);
    new Gauge({
      name: 'dlock_follower_lag_entries',
      help: 'On the leader: entries each follower has yet to acknowledge (replication lag).',
      labelNames: ['follower'],
      registers: [this.registry],
      collect() {
        this.reset();
        const o = observe();
        for (const [name, acked] of Object.entries(o.followers ?? {})) this.set({ follower: name }, Math.max(0, o.applied - acked));
      },
    });
  }

  /** One reply sent: its verb, what it said, and how long since its request was read (ms). */
  answered(verb: string, result: Result, ms: number): void {
    const key = `${verb} ${result}`;
    let c = this.counted.get(key);
    if (c === undefined) this.counted.set(key, (c = this.requests.labels(verb, result)));
    c.inc();
    let h = this.timed.get(verb);
    if (h === undefined) this.timed.set(verb, (h = this.latency.labels(verb)));
    h.observe(ms / 1000);
  }

  /** For the main thread to merge (AggregatorRegistry.aggregate). */
  async json(): Promise<MetricObjectWithValues<MetricValue<string>>[]> {
    return (await this.registry.getMetricsAsJSON()) as MetricObjectWithValues<MetricValue<string>>[];
  }
}
