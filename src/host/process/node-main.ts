/**
 * `dlock node`: one node as its own process (step 3), for a
 * cluster across hosts on etcd. The node runs on this process's main
 * thread: its index and a block of client ids come from its registration
 * in etcd under its name, etcd's election decides whether it leads, and
 * other nodes reach it over its TCP link port.
 *
 * Prints one `ready node=NAME index=I address=HOST:PORT link=HOST:PORT first-client=ID role=ROLE` line
 * once it serves clients; SIGTERM/SIGINT answer what was read, leave the
 * cluster and exit 0. A node that can no longer renew its etcd lease stops
 * serving before etcd could expire it (fail-stop: its clients are answered
 * and closed), then rejoins as a new run of the same name once etcd answers.
 */
import { Etcd3 } from 'etcd3';
import type { Server as HttpServer } from 'node:http';
import { advertisedAdmin, startAdmin, type AdminListen } from '../../admin/admin-http.js';
import { NodeAdmin } from '../../admin/admin-node.js';
import { headlessView } from '../headless.js';
import { clientIdFor, MAX_NODE_INDEX, newIdCounter, setOrdinalLimit, setOrdinalsUsed } from '../../replica/client-ids.js';
import type { Limits } from '../../server/limits.js';
import { NodeLog } from '../../replica/node-log.js';
import { createServer, type Server, type Socket } from 'node:net';
import { endAndDiscard } from '../../server/connection.js';
import { ERR_NODE_STOPPED, EtcdNode } from '../node-etcd.js';
import { withDeadline } from '../../replication/deadline.js';
import { describeEtcd, etcd3Options, etcdErrorHint, etcdErrorText, type EtcdAccess } from '../../replication/etcd-access.js';
import { claimEngine, EngineMismatchError } from '../../replication/etcd-engine.js';
import { EtcdMembership } from '../../replication/etcd-members.js';
import { serveUntilSignal, SHUTDOWN_DRAIN_MS } from '../threads/up.js';
import type { FsyncMode } from '../../store/store.js';

export interface NodeMainOptions {
  /** How to reach etcd (URLs, TLS, auth). */
  etcd: EtcdAccess;
  cluster: string;
  name: string;
  host: string;
  port: number;
  quiet: boolean;
  authToken: string | null;
  limits: Limits;
  /** A new cluster's first token; undefined: from etcd's revision (EtcdLog.firstToken). */
  firstToken: number | undefined;
  /** The node's etcd lease, seconds (EtcdMembership). */
  nodeTtlS: number;
  /** Clients and node links over TLS (certificate and key, PEM); `ca`: the CA that signed every node's certificate (links are mutual TLS). */
  tls: { cert: string; key: string; ca: string | null } | null;
  /** The secret nodes prove to each other (--cluster-secret-file); null: the one kept in etcd. */
  clusterSecret?: string | null;
  /** --http-port, --http-host, --admin-token: the admin API (null: none). */
  admin?: AdminListen | null;
  /** --log-format: text (default) or json, one object per line. */
  logFormat?: 'text' | 'json';
  /** --replication: `etcd` (the log in etcd, the default) or `group` (experimental: host/group-node-main.ts). */
  replication?: 'etcd' | 'group';
  /** --reseed (group only): every member of the stored configuration is lost; start a new group with this node (config.ts reseed()). */
  reseed?: boolean;
  /** --data-dir (group only): this node's log on disk (store/group-store.ts); null: in memory. */
  dataDir?: string | null;
  /** --fsync, with --data-dir (store.ts FsyncMode). */
  fsync?: FsyncMode;
  /** --min-secondaries (group only): the fewest secondaries a primary takes writes with (pacifica.ts Group). */
  minSecondaries?: number;
}

export async function runNode(o: NodeMainOptions): Promise<number> {
  if (o.replication === 'group') return (await import('./group-node-main.js')).runGroupNode(o);
  const view = headlessView(undefined, undefined, o.logFormat ?? 'text');
  const log = new NodeLog((lines) => view({ type: 'log', node: o.name, lines }), !o.quiet);
  // Index and client-id block from etcd, before the node exists (ids are made from its index).
  // With a deadline: an etcd that takes the connection and never answers
  // (no quorum, a TLS peer that stalls) is an error here, not a hang.
  const client = new Etcd3({ ...etcd3Options(o.etcd), dialTimeout: PREPARE_MS });
  let prepared: { index: number; firstOrdinal: number; reservedTo: number };
  try {
    // Before registering, so that a node refused for its engine leaves nothing in etcd (the engine checks again as it starts).
    await withDeadline(claimEngine(client.namespace(`/dlock/${o.cluster}/`), o.cluster, 'etcd'), PREPARE_MS, 'checking the cluster\'s engine');
    prepared = await withDeadline(new EtcdMembership(client, o.cluster, o.name).prepare(), PREPARE_MS, 'registering this node');
  } catch (err) {
    if (err instanceof EngineMismatchError) {
      process.stderr.write(`dlock node: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`dlock node: cannot register with etcd at ${describeEtcd(o.etcd)}: ${etcdErrorText(o.etcd, err as Error)}\n`);
    return 1;
  } finally {
    client.close();
  }
  if (prepared.index > MAX_NODE_INDEX) {
    process.stderr.write(`dlock node: the cluster ${o.cluster} has given ${prepared.index} node indexes; at most ${MAX_NODE_INDEX + 1} names can join it\n`);
    return 1;
  }
  const idCounter = newIdCounter();
  setOrdinalsUsed(idCounter, prepared.firstOrdinal);
  setOrdinalLimit(idCounter, prepared.reservedTo); // never an id past what etcd keeps reserved
  const index = prepared.index;
  /** Across runs, for the admin API's metrics. */
  const counts = { elections: 0, rejoins: 0 };
  const make = (): EtcdNode =>
    new EtcdNode({
      name: o.name, index, log, idCounter, ...(o.firstToken === undefined ? {} : { firstToken: o.firstToken }), authToken: o.authToken, limits: o.limits, etcd: o.etcd, cluster: o.cluster, linkHost: o.host, reserveIds: true, nodeTtlS: o.nodeTtlS,
      tls: o.tls === null ? null : { cert: o.tls.cert, key: o.tls.key }, tlsCa: o.tls?.ca ?? null,
      clusterSecret: o.clusterSecret ?? null, adminToken: o.admin?.token ?? null,
      onStop: (why) => void rejoin(why),
      onElected: () => void counts.elections++,
    });
  // The node serving now (null while rejoining), and what answers its port meanwhile.
  let current: EtcdNode | null = make();
  let refusing: Server | null = null;
  let shuttingDown = false;
  let port: number;
  try {
    await current.start();
    port = await current.listen(o.host, o.port);
  } catch (err) {
    log.flush();
    const mismatch = err instanceof EngineMismatchError;
    process.stderr.write(mismatch ? `dlock node: ${err.message}\n` : `dlock node: could not start: ${(err as Error).message}${etcdErrorHint(o.etcd, err as Error)}\n`);
    await current.close().catch((closeErr: unknown) => process.stderr.write(`dlock node: ${(closeErr as Error).message}\n`));
    return mismatch ? 2 : 1;
  }
  // The admin API answers for whichever run serves (none while rejoining: /health says 503 and why).
  let admin: { server: HttpServer; address: string } | null = null;
  if (o.admin !== undefined && o.admin !== null) {
    const a = o.admin;
    try {
      admin = await startAdmin(new NodeAdmin(o.name, () => current, counts), a, (kind, text) => log.line(kind, text));
    } catch (err) {
      log.flush();
      process.stderr.write(`dlock node: could not serve the admin API: ${(err as Error).message}\n`);
      await current.close().catch((closeErr: unknown) => process.stderr.write(`dlock node: ${(closeErr as Error).message}\n`));
      return 1;
    }
    const advertised = advertisedAdmin(admin.address, o.host);
    if (advertised === null) log.line('info', `the admin API on ${admin.address} is not advertised in etcd: other hosts could not reach it (dlock admin --etcd will not find it)`);
    else await current.advertiseAdmin(advertised).catch((err: unknown) => log.line('warn', `advertising the admin API in etcd: ${(err as Error).message}`));
  }
  log.flush();

  /**
   * The node fail-stopped (it lost etcd: jeopardy; see EtcdNode.failStop).
   * The process stays: its port refuses clients with the reason, and a new
   * node (same name and index, a new etcd lease) starts as soon as etcd
   * answers, as a restarted process would, and then serves on the port
   * again (service resumes when quorum returns).
   */
  async function rejoin(why: string): Promise<void> {
    current = null;
    if (shuttingDown) return;
    const since = performance.now();
    log.line('warn', `rejoining the cluster once etcd answers (stopped: ${why})`);
    log.flush();
    refusing = await refuseClients(o.host, port, `Error: ${ERR_NODE_STOPPED}; it rejoins the cluster once etcd answers: retry or use another node\n`).catch((err: unknown) => {
      log.line('error', `cannot hold port ${port} while rejoining: ${(err as Error).message}`);
      return null;
    });
    while (!shuttingDown) {
      const node = make();
      const started = await withDeadline(node.start(), REJOIN_ATTEMPT_MS, 'rejoining').then(
        () => true,
        async (err: unknown) => {
          log.line('warn', `rejoining: ${(err as Error).message}; trying again`);
          await node.abandon();
          return false;
        },
      );
      if (!started) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        continue;
      }
      if (shuttingDown) {
        await node.close();
        return;
      }
      await closeServer(refusing);
      refusing = null;
      try {
        await node.listen(o.host, port);
      } catch (err) {
        log.line('error', `rejoined, but cannot listen on port ${port} again: ${(err as Error).message}`);
        await node.abandon();
        continue;
      }
      current = node;
      const advertised = admin === null ? null : advertisedAdmin(admin.address, o.host);
      if (advertised !== null) await node.advertiseAdmin(advertised).catch((err: unknown) => log.line('warn', `advertising the admin API in etcd: ${(err as Error).message}`));
      counts.rejoins++;
      log.line('warn', `rejoined the cluster after ${Math.round(performance.now() - since)} ms; serving on ${o.host}:${port}`);
      log.flush();
      return;
    }
  }

  return serveUntilSignal(
    { who: o.name, command: 'dlock node', doing: 'answering what was received, then leaving the cluster', view },
    async () => {
      shuttingDown = true;
      admin?.server.close();
      await closeServer(refusing);
      const node = current;
      if (node === null) return;
      await node.drain(SHUTDOWN_DRAIN_MS);
      await node.close();
    },
    `ready node=${o.name} index=${index} address=${o.host}:${port} link=${current.linkEndpoint} first-client=${clientIdFor(index, prepared.firstOrdinal + 1)} role=${await current.settledRole()}${admin === null ? '' : ` http=${admin.address}`}`,
  );
}

/** Registering at start (prepare()): etcd may accept the connection and not answer (no quorum), ms. */
const PREPARE_MS = 30_000;

/** One rejoin attempt: etcd may accept the connection and not answer (no quorum). */
const REJOIN_ATTEMPT_MS = 20_000;

/** Each refusing server's open sockets (closeServer destroys them). */
const sockets = new WeakMap<Server, Set<Socket>>();

/** While no node serves the port: every connection gets `line` and is closed (no greeting, no id: never a client). */
function refuseClients(host: string, port: number, line: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const open = new Set<Socket>();
    const server = createServer((socket) => {
      open.add(socket);
      socket.once('close', () => open.delete(socket));
      socket.on('error', (err: Error) => void err); // the client went first; nothing to answer
      endAndDiscard(socket, line);
    });
    sockets.set(server, open);
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/**
 * Close a server and every socket it still has: a peer that went away
 * without a FIN (its host cut off) would otherwise hold close() for good,
 * and with it the rejoin waiting to take the port back.
 */
function closeServer(server: Server | null): Promise<void> {
  if (server === null) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    for (const socket of sockets.get(server) ?? []) socket.destroy();
  });
}
