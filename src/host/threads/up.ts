/**
 * `dlock up` headless (no TTY, or --no-tui): logs to stdout, one `ready …`
 * line once every node listens, SIGINT/SIGTERM close it cleanly with exit
 * status 0. In a terminal, ui/tui.ts runs instead.
 */
import type { Limits } from '../../server/limits.js';
import { headlessView, type HeadlessView } from '../headless.js';
import { Chaos, type ChaosAction } from './chaos.js';
import { Cluster, type ClusterOptions } from './cluster.js';
import { tokenFloorFile } from '../../store/token-floor.js';
import type { NodeEvent } from './control.js';
import type { FsyncMode } from '../../store/store.js';
import type { EtcdAccess } from '../../replication/etcd-access.js';
import type { Server } from 'node:http';
import { startAdmin as serveAdminAt, type AdminListen } from '../../admin/admin-http.js';
import { ClusterAdmin } from './admin-cluster.js';

export interface UpOptions {
  followers: number;
  port: number;
  host: string;
  quiet: boolean;
  /** --data-dir (null: nothing kept but the token floor), --fsync, --first-token (undefined: the default, see ClusterOptions.firstToken). */
  dataDir: string | null;
  /** --chaos, parsed (null: none). */
  chaos: ChaosAction[] | null;
  fsync: FsyncMode;
  firstToken: number | undefined;
  /** --auth-token or DLOCK_AUTH_TOKEN (null: none). */
  authToken: string | null;
  /** --max-clients, --max-locks-per-client, --max-waiters, --line-timeout, --slow-client-timeout. */
  limits: Limits;
  /** --tls-cert and --tls-key, read (null: plain TCP). */
  tls: { cert: string; key: string } | null;
  /** --etcd URLs with the --etcd-* TLS and auth flags, --cluster and --cluster-secret-file (null: the in-process log). */
  etcd?: { access: EtcdAccess; cluster: string; clusterSecret?: string | null } | null;
  /** --http-port, --http-host, --admin-token: the admin API (null: none). */
  admin?: AdminListen | null;
  /** --log-format: text (default) or json, one object per line. */
  logFormat?: 'text' | 'json';
  /** --replication group: the group protocol in process (ClusterOptions.group). */
  group?: boolean;
  /** --min-secondaries, with `group` (ClusterOptions.minSecondaries). */
  minSecondaries?: number;
}

/** Serve the admin API for `cluster`, if asked; its address for the ready line. */
export function startAdmin(cluster: Cluster, opts: UpOptions): Promise<{ server: Server; address: string } | null> {
  const a = opts.admin ?? null;
  if (a === null) return Promise.resolve(null);
  return serveAdminAt(new ClusterAdmin(cluster), a, (kind, text) => cluster.notice(kind, text));
}

/** On SIGTERM / SIGINT, how long requests already read may take to be answered. */
export const SHUTDOWN_DRAIN_MS = 5000;

/** Start the --chaos schedule, if any; its events are cluster notices. */
export function startChaos(cluster: Cluster, opts: UpOptions): Chaos | null {
  if (opts.chaos === null) return null;
  const chaos = new Chaos(cluster, opts.chaos, (text) => cluster.notice('warn', text));
  chaos.start();
  return chaos;
}

/** What Cluster.start takes from the command line. */
export function clusterOptions(opts: UpOptions, onEvent: (ev: NodeEvent) => void): ClusterOptions {
  return {
    followers: opts.followers,
    port: opts.port,
    host: opts.host,
    logRequests: !opts.quiet,
    onEvent,
    dataDir: opts.dataDir,
    fsync: opts.fsync,
    authToken: opts.authToken,
    limits: opts.limits,
    tls: opts.tls,
    etcd: opts.etcd ?? null,
    group: opts.group ?? false,
    minSecondaries: opts.minSecondaries ?? 0,
    // Memory-only on a fixed port: the floor that keeps tokens rising across runs [LP-7].
    tokenFloor: opts.dataDir === null && (opts.etcd ?? null) === null && opts.port !== 0 ? tokenFloorFile(opts.host, opts.port) : null,
    ...(opts.firstToken === undefined ? {} : { firstToken: opts.firstToken }),
  };
}

export async function up(opts: UpOptions): Promise<number> {
  const view = headlessView(undefined, undefined, opts.logFormat ?? 'text');
  let cluster: Cluster;
  try {
    cluster = await Cluster.start(clusterOptions(opts, view));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // The code does not survive the trip from the worker (comlink sends name and message only).
    const inUse = e.code === 'EADDRINUSE' || /\bEADDRINUSE\b/.test(e.message);
    const hint = inUse ? ' (a port is in use: pick another base with --port, or --port 0 for free ports)' : '';
    process.stderr.write(`dlock up: could not start the cluster: ${e.message}${hint}\n`);
    return 1;
  }
  let admin: Awaited<ReturnType<typeof startAdmin>>;
  try {
    admin = await startAdmin(cluster, opts);
  } catch (err) {
    process.stderr.write(`dlock up: could not serve the admin API: ${(err as Error).message}\n`);
    await cluster.close(SHUTDOWN_DRAIN_MS);
    return 1;
  }
  const chaos = startChaos(cluster, opts);
  return serveUntilSignal(
    { who: 'cluster', command: 'dlock up', doing: 'no new connections or requests; answering what was received', view },
    async () => {
      await chaos?.stop();
      admin?.server.close();
      await cluster.close(SHUTDOWN_DRAIN_MS);
    },
    `${cluster.readyLine()}${admin === null ? '' : ` http=${admin.address}`}`,
  );
}

/**
 * Print `ready`, then run until SIGINT or SIGTERM and `shutdown()` once;
 * resolves with the exit status (0, or 1 if the shutdown failed). The
 * handlers are installed before the ready line: a supervisor may signal as
 * soon as it reads it, and a SIGTERM before the handlers exist kills the
 * process uncleaned (seen in the auth test on a loaded machine: exit by
 * signal, not 0). Shared by `dlock up` and `dlock node`.
 */
export function serveUntilSignal(say: { who: string; command: string; doing: string; view?: HeadlessView }, shutdown: () => Promise<void>, ready: string): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    // Through the view, timestamped and in order with the nodes' lines; what it holds is written before exit.
    const done = (status: number): void => {
      say.view?.flush();
      resolve(status);
    };
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      const text = `${signal}, shutting down: ${say.doing}`;
      if (say.view !== undefined) say.view.note(say.who, 'warn', text);
      else process.stdout.write(`${say.who}: ${text}\n`);
      shutdown().then(
        () => done(0),
        (err: unknown) => {
          process.stderr.write(`${say.command}: shutdown failed: ${(err as Error).message}\n`);
          done(1);
        },
      );
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
    say.view?.flush(); // the nodes' lines so far (listening on …) before the ready line
    process.stdout.write(`${ready}\n`);
  });
}
