/**
 * `dlock node --replication group` (experimental): one node as its own
 * process on the group protocol (docs/design.md). etcd keeps the
 * configuration (config/etcd.ts), the node's name, index and client-id
 * blocks, its request-id blocks and its live key (its link address); the
 * writes go between the nodes over authenticated TCP links, never through
 * etcd. A run's member id is its name and the first request id of its
 * block (`name.N`), which no earlier run had: a node back after a crash is
 * a new member and joins as a learner. With --data-dir it restores its
 * log, takes its earlier run's place in the configuration (config.ts
 * replaceRuns), and ends that run's clients' sessions before it listens.
 *
 * Prints the same `ready …` line as `dlock node`. SIGTERM/SIGINT answer
 * what was read, hand back unused client ids, leave and exit 0.
 *
 * An etcd outage stops only changes of configuration: who serves is
 * decided by the group's own leases (pacifica.ts), so a node that loses
 * its etcd lease goes on serving and registers again (a new lease, its
 * live key) once etcd answers. Its clients' sessions end when the primary
 * removes it from the configuration, never because of etcd alone [LP-8].
 */
import { Etcd3 } from 'etcd3';
import type { Server as HttpServer } from 'node:http';
import { advertisedAdmin, startAdmin } from '../../admin/admin-http.js';
import { NodeAdmin, type NodeCounts } from '../../admin/admin-node.js';
import type { Namespace } from 'etcd3';
import { replaceRuns, reseed } from '../../config/config.js';
import { GroupStore, readMemberFile, writeMemberFile } from '../../store/group-store.js';
import { StoreError } from '../../store/store-file.js';
import { EtcdConfig } from '../../config/etcd.js';
import { headlessView } from '../headless.js';
import { clientIdFor, MAX_NODE_INDEX, newIdCounter, setOrdinalLimit, setOrdinalsUsed } from '../../replica/client-ids.js';
import { GroupNode } from '../node-group.js';
import { NodeLog } from '../../replica/node-log.js';
import type { NodeMainOptions } from './node-main.js';
import { GOODBYE_MS, withDeadline } from '../../replication/deadline.js';
import { describeEtcd, etcd3Options, etcdErrorText } from '../../replication/etcd-access.js';
import { EtcdMembership, parseMember } from '../../replication/etcd-members.js';
import { clusterSecretFromEtcd } from '../../replication/etcd-secret.js';
import { checkClusterSecret } from '../../transport/link-auth.js';
import { GROUP_TIMING, GroupReplication } from '../../replication/replication-group.js';
import { closeListener, TcpTransport, trackSockets } from '../../transport/transport-tcp.js';
import { serveUntilSignal, SHUTDOWN_DRAIN_MS } from '../threads/up.js';
import { GroupLinks } from './group-links.js';
import { claimEngine, EngineMismatchError } from '../../replication/etcd-engine.js';
import { serveViews } from '../../transport/views.js';


/** One attempt to register again after the etcd lease was lost (etcd may take the connection and not answer). */
const REGISTER_AGAIN_MS = 20_000;

export async function runGroupNode(o: NodeMainOptions): Promise<number> {
  // Not there yet on this engine: refused, never silently ignored.
  const unsupported = [o.firstToken !== undefined ? '--first-token (its tokens come from the configuration version)' : null].filter((x) => x !== null);
  if (unsupported.length > 0) {
    process.stderr.write(`dlock node: --replication group does not support ${unsupported.join(' or ')} yet (docs/design.md); use --replication etcd\n`);
    return 2;
  }
  const view = headlessView(undefined, undefined, o.logFormat ?? 'text');
  const log = new NodeLog((lines) => view({ type: 'log', node: o.name, lines }), !o.quiet);
  const client = new Etcd3({ ...etcd3Options(o.etcd), dialTimeout: 30_000 });
  const ns = client.namespace(`/dlock/${o.cluster}/`);
  let membership = new EtcdMembership(client, o.cluster, o.name, o.nodeTtlS, o.etcd);
  let index: number;
  let firstOrdinal: number;
  let reservedTo: number;
  let firstReq: number;
  let secret: string;
  try {
    await withDeadline(claimEngine(ns, o.cluster, 'group'), 30_000, 'checking the cluster\'s engine');
    ({ index, firstOrdinal, reservedTo } = await withDeadline(membership.prepare(), 30_000, 'registering this node'));
    firstReq = await withDeadline(membership.reserveRequests(0), 30_000, 'reserving request ids');
    secret = o.clusterSecret ?? (await clusterSecretFromEtcd(ns));
    checkClusterSecret(secret, o.authToken);
  } catch (err) {
    client.close();
    if (err instanceof EngineMismatchError) {
      process.stderr.write(`dlock node: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`dlock node: cannot register with etcd at ${describeEtcd(o.etcd)}: ${etcdErrorText(o.etcd, err as Error)}\n`);
    return 1;
  }
  if (index > MAX_NODE_INDEX) {
    client.close();
    process.stderr.write(`dlock node: the cluster ${o.cluster} has given ${index} node indexes; at most ${MAX_NODE_INDEX + 1} names can join it\n`);
    return 1;
  }
  const id = `${o.name}.${firstReq}`;
  // --data-dir: whose log it is, and the runs that kept it (they take no part once this one has taken their place).
  const dir = o.dataDir ?? null;
  let earlier: string[] = [];
  let store: GroupStore | undefined;
  if (dir !== null) {
    try {
      const m = readMemberFile(dir);
      if (m !== null && (m.cluster !== o.cluster || m.name !== o.name)) throw new StoreError(`--data-dir ${dir} holds the log of node ${m.name} of cluster ${m.cluster}, not ${o.name} of ${o.cluster}`);
      earlier = m?.runs ?? [];
      store = new GroupStore(dir, o.fsync ?? 'batch');
    } catch (err) {
      client.close();
      process.stderr.write(`dlock node: ${(err as Error).message}\n`);
      return 1;
    }
  }
  const idCounter = newIdCounter();
  setOrdinalsUsed(idCounter, firstOrdinal);
  setOrdinalLimit(idCounter, reservedTo);
  // Links are mutual TLS with --tls-cert (the CLI requires --tls-ca with it); observers may prove the admin token instead of the secret.
  const linkTls = o.tls === null || o.tls.ca === null ? null : { cert: o.tls.cert, key: o.tls.key, ca: o.tls.ca };
  const adminToken = o.admin?.token ?? null;
  const links = new GroupLinks(id, index, ns, secret, (kind, text) => log.line(kind, text), linkTls);
  const linkServer = await TcpTransport.listen(
    o.host,
    0,
    { keys: { node: secret, observer: adminToken === null || adminToken === secret ? [secret] : [secret, adminToken] }, tls: linkTls, log: (kind, text) => log.line(kind, text) },
    (t) => links.accept(t),
  );
  // Every socket the link listener takes (links, observers, handshakes under way): dropped at shutdown, or close() waits on them.
  const linkSockets = trackSockets(linkServer);
  const addr = linkServer.address();
  const linkAddress = `${o.host}:${typeof addr === 'object' && addr !== null ? addr.port : 0}`;
  const config = new EtcdConfig(client, o.cluster);
  let node: GroupNode | null = null;
  let stopping = false;
  let clientAddress = '';
  /** Where the admin API answers (--http-port), advertised in every live key this run puts. */
  let adminAddress: string | null = null;
  /** For the admin API's metrics. */
  const counts: NodeCounts = { elections: 0, rejoins: 0 };
  /** The etcd lease is lost (etcd unreachable past its ttl, or it expired there): serve on, and register again once etcd answers. */
  const lostLease = (why: string): void => {
    if (stopping) return;
    log.line('warn', `etcd lease lost (${why}): still serving, since the group's own leases decide who serves; registering again once etcd answers`);
    log.flush();
    void registerAgain();
  };
  async function registerAgain(): Promise<void> {
    membership.abandon();
    const since = performance.now();
    while (!stopping) {
      const m = new EtcdMembership(client, o.cluster, o.name, o.nodeTtlS, o.etcd);
      try {
        if (adminAddress !== null) await m.advertiseAdmin(adminAddress); // kept for its join (it is not live yet)
        await withDeadline(m.join({ address: clientAddress, link: linkAddress, member: id }, lostLease, index), REGISTER_AGAIN_MS, 'registering again');
        m.adoptReservation(reservedTo);
        if (stopping) {
          await m.leave();
          return;
        }
        membership = m;
        counts.rejoins++;
        log.line('warn', `registered again in etcd after ${Math.round(performance.now() - since)} ms`);
        log.flush();
        return;
      } catch (err) {
        m.abandon();
        if (stopping) return;
        log.line('warn', `registering again: ${(err as Error).message}; trying again`);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }
  try {
    await links.refresh();
    await membership.join({ address: '', link: linkAddress, member: id }, lostLease, index, (text) => log.line('warn', text));
    membership.adoptReservation(reservedTo);
    if (o.reseed === true) {
      // After join: an earlier run of this name has been waited out (its key expired).
      const { before, after } = await withDeadline(reseed(config, id, await liveMembers(ns)), 30_000, 'reseeding');
      const lost = before === null ? 'nothing' : `what only ${[before.primary, ...before.secondaries].join(', ')} held`;
      log.line('warn', `reseeded: configuration ${after.version} has this node alone, at a token space above every earlier one; ${lost} is lost`);
    }
    const made = new GroupNode({ name: o.name, index, log, idCounter, authToken: o.authToken, limits: o.limits, tls: o.tls === null ? null : { cert: o.tls.cert, key: o.tls.key } }, (replica) =>
      new GroupReplication(replica, { id, timing: GROUP_TIMING, config, links, indexOf: (m) => links.indexOf(m), onTakeOver: () => void counts.elections++, minSecondaries: o.minSecondaries ?? 0, ...(store === undefined ? {} : { store }) }),
    firstReq);
    node = made;
    links.deliver = (from, f, late) => made.replication.receive(from, f, late);
    links.observe = (t) => serveObserver(t, made, linkAddress, log);
    let restored: { seq: number; entries: number } | null = null;
    if (dir !== null) {
      restored = made.replication.restore();
      if (restored !== null && (await withDeadline(config.current(), 30_000, 'reading the configuration')) === null) {
        throw new Error(`etcd holds no configuration for cluster ${o.cluster}, but ${dir} holds a log of it (to seq ${restored.seq}): etcd's data was lost or this is another etcd. Start this node with --reseed to begin a new group from this log (tokens still rise), or move the directory away`);
      }
      writeMemberFile(dir, o.cluster, o.name, earlier, id);
      if (earlier.length > 0) {
        const r = await withDeadline(replaceRuns(config, earlier, id, await liveMembers(ns)), 30_000, 'taking the place of this node\'s earlier run');
        if (r.replaced !== null) log.line('warn', `took the place of ${r.replaced}, this node's earlier run whose log this is, in configuration ${r.current?.version}`);
      }
    }
    await made.replication.start();
    if (restored !== null) await made.replication.endEarlierSessions(30_000);
  } catch (err) {
    log.flush();
    process.stderr.write(`dlock node: could not start: ${(err as Error).message}\n`);
    links.close();
    linkServer.close();
    client.close();
    return 1;
  }
  const n = node;
  const port = await n.listen(o.host, o.port);
  clientAddress = `${o.host}:${port}`;
  let admin: { server: HttpServer; address: string } | null = null;
  if (o.admin !== undefined && o.admin !== null) {
    try {
      admin = await startAdmin(new NodeAdmin(o.name, () => n, counts), o.admin, (kind, text) => log.line(kind, text));
    } catch (err) {
      log.flush();
      process.stderr.write(`dlock node: could not serve the admin API: ${(err as Error).message}\n`);
      await n.close();
      links.close();
      linkServer.close();
      client.close();
      return 1;
    }
    adminAddress = advertisedAdmin(admin.address, o.host);
    if (adminAddress === null) log.line('info', `the admin API on ${admin.address} is not advertised in etcd: other hosts could not reach it (dlock admin --etcd will not find it)`);
    else await membership.advertiseAdmin(adminAddress).catch((err: unknown) => log.line('warn', `advertising the admin API in etcd: ${(err as Error).message}`));
  }
  await membership.publish(0, false, clientAddress).catch((err: unknown) => log.line('warn', `publishing: ${(err as Error).message}`));
  // Client ids: the next block before this one runs out; names of new members for their indexes.
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    Promise.all([
      membership.extend(Number(Atomics.load(idCounter, 0))).then((to) => {
        reservedTo = Math.max(reservedTo, to);
        setOrdinalLimit(idCounter, to);
      }),
      links.refresh(),
    ])
      .catch((err: unknown) => log.line('warn', `etcd: ${(err as Error).message}`))
      .finally(() => (busy = false));
  }, 200);
  timer.unref();
  // A learner whose configuration has no live member waits for ever: say so, once per version, with the way out.
  let toldOf = 0;
  const orphan = setInterval(() => {
    const c = n.replication.host.group.current;
    if (c === null || n.replication.host.group.role !== 'learner' || c.version === toldOf) return;
    liveMembers(ns).then(
      (live) => {
        const members = [c.primary, ...c.secondaries];
        if (members.some((m) => live.has(m)) || n.replication.host.group.current?.version !== c.version) return;
        toldOf = c.version;
        log.line('warn', `waiting to join configuration ${c.version}: none of its members (${members.join(', ')}) is live in etcd. If every one is lost, start one node with --reseed (what only they held is lost)`);
        log.flush();
      },
      (err: unknown) => log.line('warn', `etcd: ${(err as Error).message}`),
    );
  }, 5000);
  orphan.unref();
  // The first configuration may take a moment: say the role once it is known.
  const until = performance.now() + 5000;
  while (n.replication.host.group.current === null && performance.now() < until) await new Promise((r) => setTimeout(r, 20));
  log.flush();
  return serveUntilSignal(
    { who: o.name, command: 'dlock node', doing: 'answering what was received, then leaving the cluster', view },
    async () => {
      stopping = true;
      admin?.server.close();
      clearInterval(timer);
      clearInterval(orphan);
      await n.drain(SHUTDOWN_DRAIN_MS);
      // A secondary takes itself out of the configuration before it goes, so that nobody waits for its lease.
      await withDeadline(n.replication.host.leave(), GOODBYE_MS, 'leaving the configuration').catch((err: unknown) => log.line('warn', `not done: ${(err as Error).message}; the primary takes this node out once its lease lapses`));
      await n.close();
      const used = Number(Atomics.load(idCounter, 0));
      Atomics.store(idCounter, 1, used === 0 ? -1n : BigInt(used));
      // The goodbye to etcd, at once and within GOODBYE_MS: etcd may be down, and a stop must not wait on it.
      await Promise.all([
        withDeadline(membership.returnUnused(used), GOODBYE_MS, 'handing back unused client ids').catch((err: unknown) => log.line('warn', `not done: ${(err as Error).message}; those ids stay reserved (never reused)`)),
        withDeadline(membership.leave(), GOODBYE_MS, 'leaving the cluster').catch((err: unknown) => log.line('warn', `not done: ${(err as Error).message}; this node's live key ends with its lease, within the node ttl`)),
      ]);
      links.close();
      await closeListener(linkServer, linkSockets, 0);
      client.close();
    },
    `ready node=${o.name} index=${index} address=${o.host}:${port} link=${linkAddress} first-client=${clientIdFor(index, firstOrdinal + 1)} role=${n.replication.leads ? 'leader' : 'follower'}${admin === null ? '' : ` http=${admin.address}`} member=${id}`,
  );
}

/** The member ids of the runs live in etcd now (their live keys; values that do not parse are left out). */
export async function liveMembers(ns: Namespace): Promise<Set<string>> {
  const all = await ns.getAll().prefix('live/').strings();
  const out = new Set<string>();
  for (const text of Object.values(all)) {
    const m = parseMember(text);
    if (m?.member !== undefined) out.add(m.member);
  }
  return out;
}

/** An observer's link: one `observe`, then views until it closes (transport/views.ts); anything else closes it. */
function serveObserver(t: TcpTransport, node: GroupNode, link: string, log: NodeLog): void {
  let stop: (() => void) | null = null;
  t.onClose(() => stop?.());
  t.onFrames((frames) => {
    for (const f of frames) {
      if (f.type !== 'observe' || stop !== null) {
        log.line('error', `observer link from ${t.remote} refused: it sent a ${f.type} frame${f.type === 'observe' ? ' twice' : ''}; closing it`);
        t.close();
        return;
      }
      stop = serveViews(t, f.locks, {
        log,
        stats: () => ({ ...node.stats(), role: node.replication.leads ? 'leader' : 'follower', leads: node.replication.leads, link }),
        lockMap: (n) => node.lockMap(n),
      });
    }
  });
}
