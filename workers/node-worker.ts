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
import { expose, nodeEndpoint } from '../src/comlink.js';
import type { NodeControl, NodeEvent, NodeWorkerData, PromoteArgs } from '../src/control.js';
import { Leader } from '../src/node/node-leader.js';
import { Follower } from '../src/node/node-follower.js';
import { EtcdNode } from '../src/node/node-etcd.js';
import { NodeLog } from '../src/node/node-log.js';
import { PortTransport } from '../src/transport/transport-port.js';
import { linkDelay } from '../src/transport/transport.js';
import { FileStore } from '../src/store/store-file.js';

if (parentPort === null) throw new Error('node-worker.js must run in a worker thread');
const data = workerData as NodeWorkerData;

const log = new NodeLog((lines) => {
  const ev: NodeEvent = { type: 'log', node: data.name, lines };
  data.events.postMessage(ev);
}, data.logRequests);

const opts = { name: data.name, index: data.index, log, idCounter: data.idCounter, firstToken: data.firstToken, authToken: data.authToken, limits: data.limits, tls: data.tls };
const openStore = (): FileStore | null => (data.dataDir === null ? null : new FileStore(data.dataDir, data.fsync));
let node: Leader | Follower | EtcdNode;
if (data.role === 'etcd') {
  if (data.etcd === null) throw new Error(`${data.name}: an etcd node started without etcd endpoints`);
  node = new EtcdNode({ ...opts, etcd: data.etcd.hosts, cluster: data.etcd.cluster, linkHost: data.host });
} else if (data.role === 'leader') {
  node = new Leader(opts);
} else {
  if (data.link === undefined) throw new Error(`${data.name}: follower started without a link to the leader`);
  // A fresh id per worker start: lets the leader tell a restarted follower from the old one.
  node = new Follower(opts, new PortTransport(data.link), nanoid(10));
}

const api: NodeControl = {
  async start() {
    if (node instanceof EtcdNode) {
      await node.start();
    } else if (node instanceof Follower) {
      node.start();
      await node.firstSync;
    } else {
      const store = openStore();
      if (store !== null) node.restoreFrom(store);
    }
    const port = await node.listen(data.host, data.port);
    log.flush();
    return { host: data.host, port };
  },
  attachFollower(port: MessagePort, name: string) {
    if (!(node instanceof Leader)) throw new Error(`${data.name} is not the leader`);
    node.attachFollower(new PortTransport(port), name);
  },
  detach() {
    if (!(node instanceof Follower)) throw new Error(`${data.name} is not a follower`);
    return node.detach();
  },
  relink(port: MessagePort) {
    if (!(node instanceof Follower)) throw new Error(`${data.name} is not a follower`);
    node.relink(new PortTransport(port));
  },
  async promote(args: PromoteArgs) {
    if (!(node instanceof Follower)) throw new Error(`${data.name} is not a follower`);
    const leader = Leader.promote(
      node,
      opts,
      args.deadIndex,
      args.followers.map((f) => ({ name: f.name, transport: new PortTransport(f.port), counts: f.counts })),
      openStore(),
    );
    node = leader;
    let basePort: number | null = null;
    if (args.basePort !== null) {
      try {
        basePort = await leader.listen(data.host, args.basePort); // [LP-1] the leader's port
      } catch (err) {
        log.line('error', `could not take the base port ${args.basePort}: ${(err as Error).message}; serving on ${leader.address ?? '?'} only`);
      }
    }
    log.flush();
    return { basePort, seq: leader.applied };
  },
  stats: () => node.stats(),
  locks: (limit?: number) => node.lockMap(limit),
  drain(ms: number) {
    return node.drain(ms);
  },
  async shutdown() {
    await node.close();
    log.flush();
  },
  delayLinks(ms: number, forMs: number) {
    linkDelay.ms = ms;
    linkDelay.until = Date.now() + forMs;
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
