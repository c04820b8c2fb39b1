/**
 * Entry point of a node's worker thread (leader or follower).
 *
 * Builds the node from workerData and exposes the NodeControl API over
 * comlink; the main thread's first call, start(), is the handshake.
 * Client traffic is TCP straight into this thread, and replication is the
 * link MessagePort; neither passes through the main thread.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { nanoid } from 'nanoid';
import { expose, nodeEndpoint } from '../src/host/threads/comlink.js';
import type { NodeControl, NodeEvent, NodeWorkerData, PromoteArgs } from '../src/host/threads/control.js';
import { ReplicaNode } from '../src/node/replica-node.js';
import { PortReplication } from '../src/replication/replication-port.js';
import { EtcdNode } from '../src/host/node-etcd.js';
import { NodeLog } from '../src/replica/node-log.js';
import { PortTransport } from '../src/transport/transport-port.js';
import { linkDelay } from '../src/transport/transport.js';
import { FileStore } from '../src/store/store-file.js';
import { GroupStore } from '../src/store/group-store.js';
import { plural } from '../src/text.js';
import { GroupNode } from '../src/host/node-group.js';
import { GROUP_TIMING, GroupReplication } from '../src/replication/replication-group.js';
import { PortConfig } from '../src/config/port.js';
import { PortLinks } from '../src/host/threads/port-links.js';

/** The node index of a member id of this process's cluster (`leader.N`, `follower-K.N`), or null. */
function indexOfMember(id: string): number | null {
  const name = id.slice(0, id.lastIndexOf('.'));
  if (name === 'leader') return 0;
  const m = /^follower-([1-9]\d{0,1})$/.exec(name);
  return m === null ? null : Number(m[1]);
}

if (parentPort === null) throw new Error('node-worker.js must run in a worker thread');
const data = workerData as NodeWorkerData;

const log = new NodeLog((lines) => {
  const ev: NodeEvent = { type: 'log', node: data.name, lines };
  data.events.postMessage(ev);
}, data.logRequests);

const opts = { name: data.name, index: data.index, log, idCounter: data.idCounter, ...(data.firstToken === null ? {} : { firstToken: data.firstToken }), authToken: data.authToken, limits: data.limits, tls: data.tls };
const openStore = (): FileStore | null => (data.dataDir === null ? null : new FileStore(data.dataDir, data.fsync));
let node: ReplicaNode | EtcdNode;
let port: PortReplication | null = null;
let group: { node: GroupNode; links: PortLinks; config: PortConfig } | null = null;
if (data.role === 'group') {
  if (data.group === null) throw new Error(`${data.name}: a group node started without its member id and links`);
  const g = data.group;
  const links = new PortLinks();
  const config = new PortConfig(g.config);
  const store = g.dataDir === null ? undefined : new GroupStore(g.dataDir, data.fsync);
  const made = new GroupNode(opts, (replica) => new GroupReplication(replica, { id: g.id, timing: GROUP_TIMING, config, links, indexOf: indexOfMember, minSecondaries: g.minSecondaries, ...(store === undefined ? {} : { store }) }), g.firstReq);
  links.deliver = (from, f, late) => made.replication.receive(from, f, late);
  for (const p of g.peers) links.add(p.id, p.port);
  group = { node: made, links, config };
  node = made;
} else if (data.role === 'etcd') {
  if (data.etcd === null) throw new Error(`${data.name}: an etcd node started without etcd endpoints`);
  // One process's nodes share one certificate: the links trust it as their CA (mutual TLS among them).
  node = new EtcdNode({ ...opts, etcd: data.etcd.access, cluster: data.etcd.cluster, clusterSecret: data.etcd.clusterSecret, linkHost: data.host, tlsCa: data.tls?.cert ?? null });
} else {
  const link = data.link;
  if (data.role === 'follower' && link === undefined) throw new Error(`${data.name}: follower started without a link to the leader`);
  node = new ReplicaNode(opts, (replica) => {
    // A fresh id per worker start: lets the primary tell a restarted backup from the old one.
    port = new PortReplication(replica, link === undefined ? { primary: true } : { primary: false, link: new PortTransport(link), incarnation: nanoid(10) });
    return port;
  });
}

/** The in-process replication, for the supervisor's control calls; throws on an etcd node. */
const portOf = (): PortReplication => {
  if (port === null) throw new Error(`${data.name} is not an in-process primary/backup node`);
  return port;
};

const api: NodeControl = {
  async start() {
    if (group !== null) {
      const replication = group.node.replication;
      const restored = replication.restore();
      await replication.start();
      // The earlier run's clients (its process, or its thread, is gone): ended
      // once this node is in step with its group, which may need nodes the
      // supervisor starts after this one. Client ids of this run come from
      // the data dir's reservations, above theirs, so nothing waits on it.
      if (restored !== null) {
        replication.endEarlierSessions(60_000).then(
          (n) => n > 0 && log.line('info', `the sessions of this node's earlier run's ${plural(n, 'client')} are ended`),
          (err: unknown) => log.line('error', (err as Error).message),
        );
      }
    } else if (node instanceof EtcdNode) {
      await node.start();
    } else if (portOf().leads) {
      const store = openStore();
      if (store !== null) portOf().primary.restoreFrom(store);
    } else {
      portOf().backup.start();
      await portOf().backup.firstSync;
    }
    const port = await node.listen(data.host, data.port);
    log.flush();
    return { host: data.host, port };
  },
  linkPeer(id: string, link: MessagePort) {
    if (group === null) throw new Error(`${data.name} is not a group node`);
    group.links.add(id, link);
  },
  async takeBasePort(basePort: number) {
    if (group === null) throw new Error(`${data.name} is not a group node`);
    try {
      return await node.listen(data.host, basePort); // [LP-1] the leader's port
    } catch (err) {
      log.line('error', `could not take the base port ${basePort}: ${(err as Error).message}; serving on ${node.address ?? '?'} only`);
      return null;
    } finally {
      log.flush();
    }
  },
  attachFollower(link: MessagePort, name: string) {
    portOf().primary.attachFollower(new PortTransport(link), name);
  },
  detach() {
    return portOf().backup.detach();
  },
  relink(link: MessagePort) {
    portOf().backup.relink(new PortTransport(link));
  },
  async promote(args: PromoteArgs) {
    // The same node, its replication now the primary: nothing handed over.
    portOf().lead({ deadIndex: args.deadIndex, followers: args.followers.map((f) => ({ name: f.name, transport: new PortTransport(f.port), counts: f.counts })), store: openStore() });
    let basePort: number | null = null;
    if (args.basePort !== null) {
      try {
        basePort = await node.listen(data.host, args.basePort); // [LP-1] the leader's port
      } catch (err) {
        log.line('error', `could not take the base port ${args.basePort}: ${(err as Error).message}; serving on ${node.address ?? '?'} only`);
      }
    }
    log.flush();
    return { basePort, seq: node.applied };
  },
  stats: () => node.stats(),
  locks: (limit?: number) => node.lockMap(limit),
  metrics: () => Promise.resolve(node.metrics.json()),
  clients: () => node.clientList(),
  async revoke(lock: string) {
    log.line('warn', `admin: revoke ${lock}`);
    const r = await node.admin({ op: 'revoke', lock });
    if (typeof r === 'string') return r;
    if (r.op !== 'revoke') throw new Error(`revoke answered ${r.op}`);
    log.line('warn', r.owner === null ? `admin: revoke ${lock}: it was not held` : `admin: revoked ${lock} from client ${r.owner} (token ${r.token})`);
    return { owner: r.owner, token: r.token };
  },
  drain(ms: number) {
    return node.drain(ms);
  },
  async shutdown() {
    await node.close();
    group?.links.close();
    await group?.config.close();
    log.flush();
  },
  delayLinks(ms: number, forMs: number) {
    linkDelay.ms = ms;
    linkDelay.until = performance.now() + forMs;
  },
  dropClient: () => node.dropRandomClient(),
  crash(reason: string) {
    // Outside the comlink call, so it is uncaught like a real bug's error.
    setImmediate(() => {
      throw new Error(`injected crash: ${reason}`);
    });
  },
};

expose(api, nodeEndpoint(parentPort));
