/**
 * A node's Prometheus metrics: requests by verb and result,
 * request latency, commit latency, and, read when scraped, what the node holds (locks,
 * waiters, clients) and how far its replication is (applied and committed
 * seq; on the leader each follower's lag).
 *
 * The request path only adds to plain numbers: a counter per verb and
 * result, and histogram buckets per verb (prom-client's label children hash
 * their labels on every observation, which cost the one-process cluster
 * about 5% more CPU per request, measured side by side). When scraped, they
 * are handed over in prom-client's own JSON form (the one its
 * getMetricsAsJSON gives), with the node as a label, and the main thread
 * merges every node's with prom-client's AggregatorRegistry into the
 * Prometheus text the admin API serves (host/threads/admin-cluster.ts).
 *
 * Threading: the node's thread.
 */
export type Result = 'ok' | 'no' | 'error';
const RESULTS: readonly Result[] = ['ok', 'no', 'error'];

/** Latency buckets, seconds (upper bounds; +Inf follows). */
export const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5] as const;

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

/** One metric family as prom-client's getMetricsAsJSON gives it (what AggregatorRegistry.aggregate takes). */
export interface MetricJson {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  aggregator: 'sum';
  values: Array<{ value: number; labels: Record<string, string | number>; metricName?: string }>;
}

/** Seconds in LATENCY_BUCKETS: per bucket (not cumulative, the last +Inf), sum and count. Adding is a few number operations. */
class Histogram {
  private readonly buckets = new Float64Array(LATENCY_BUCKETS.length + 1);
  private sum = 0;
  private count = 0;

  observe(s: number): void {
    let i = 0;
    while (i < LATENCY_BUCKETS.length && s > (LATENCY_BUCKETS[i] as number)) i++;
    this.buckets[i] = (this.buckets[i] as number) + 1;
    this.sum += s;
    this.count++;
  }

  /** Its series as prom-client's JSON gives them: cumulative buckets, sum and count, each with `labels`. */
  values(name: string, labels: Record<string, string | number>): MetricJson['values'] {
    const out: MetricJson['values'] = [];
    let cumulative = 0;
    for (let i = 0; i <= LATENCY_BUCKETS.length; i++) {
      cumulative += this.buckets[i] as number;
      out.push({ value: cumulative, metricName: `${name}_bucket`, labels: { le: i < LATENCY_BUCKETS.length ? (LATENCY_BUCKETS[i] as number) : '+Inf', ...labels } });
    }
    out.push({ value: this.sum, metricName: `${name}_sum`, labels }, { value: this.count, metricName: `${name}_count`, labels });
    return out;
  }
}

interface PerVerb {
  /** Replies by result: ok, no, error. */
  results: Float64Array;
  latency: Histogram;
}

export class NodeMetrics {
  private readonly verbs = new Map<string, PerVerb>();
  private readonly commitLatency = new Histogram();
  /**
   * The entry being timed from its apply here to its commit: one at a time,
   * so a sample per commit round, and nothing per write beyond a compare.
   */
  private timing: { seq: number; t: number } | null = null;

  constructor(
    readonly node: string,
    private readonly observe: () => Observed,
  ) {}

  /** One reply sent: its verb, what it said, and how long since its request was read (ms). */
  answered(verb: string, result: Result, ms: number): void {
    let v = this.verbs.get(verb);
    if (v === undefined) this.verbs.set(verb, (v = { results: new Float64Array(3), latency: new Histogram() }));
    const r = result === 'ok' ? 0 : result === 'no' ? 1 : 2;
    v.results[r] = (v.results[r] as number) + 1;
    v.latency.observe(ms / 1000);
  }

  /** Entry `seq` was applied here; `commit`: the commit index now. */
  entryApplied(seq: number, commit: number): void {
    if (this.timing === null && seq > commit) this.timing = { seq, t: performance.now() };
  }

  /** The commit index reached `seq`. */
  committed(seq: number): void {
    const timing = this.timing;
    if (timing === null || seq < timing.seq) return;
    this.timing = null;
    this.commitLatency.observe((performance.now() - timing.t) / 1000);
  }

  /** Everything, in prom-client's JSON form, each series labelled with this node. */
  json(): MetricJson[] {
    const node = this.node;
    const requests: MetricJson = { name: 'dlock_requests_total', help: 'Requests answered, by verb and result (ok, no: Failed/Timeout/Stale, error: an Error reply).', type: 'counter', aggregator: 'sum', values: [] };
    for (const [verb, v] of this.verbs) RESULTS.forEach((result, i) => void requests.values.push({ value: v.results[i] as number, labels: { verb, result, node } }));
    const name = 'dlock_request_duration_seconds';
    const latency: MetricJson = { name, help: 'From a request read to its reply written (a write: committed on every replica), by verb.', type: 'histogram', aggregator: 'sum', values: [] };
    for (const [verb, v] of this.verbs) latency.values.push(...v.latency.values(name, { verb, node }));
    const cname = 'dlock_commit_latency_seconds';
    const commit: MetricJson = {
      name: cname,
      help: 'From a log entry applied on this node to the commit index covering it: every follower has it (in process), or etcd has it (on etcd; a follower applies only committed entries). Sampled: one entry per commit round.',
      type: 'histogram',
      aggregator: 'sum',
      values: this.commitLatency.values(cname, { node }),
    };
    const o = this.observe();
    const gauge = (n: string, help: string, value: number): MetricJson => ({ name: n, help, type: 'gauge', aggregator: 'sum', values: [{ value, labels: { node } }] });
    const lag: MetricJson = { name: 'dlock_follower_lag_entries', help: 'On the leader: entries each follower has yet to acknowledge (replication lag).', type: 'gauge', aggregator: 'sum', values: [] };
    for (const [follower, acked] of Object.entries(o.followers ?? {})) lag.values.push({ value: Math.max(0, o.applied - acked), labels: { follower, node } });
    return [
      requests,
      latency,
      commit,
      gauge('dlock_locks', "Locks held in this node's replica.", o.locks),
      gauge('dlock_waiters', "Clients waiting in acquire, in this node's replica.", o.waiters),
      gauge('dlock_clients', 'Client connections to this node.', o.clients),
      gauge('dlock_applied_seq', 'Last log entry this node applied.', o.applied),
      gauge('dlock_commit_seq', 'Commit index this node knows: replies reflecting up to it may be sent.', o.commit),
      lag,
    ];
  }
}
