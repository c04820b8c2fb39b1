/**
 * `dlock node`: one node as its own process (issue 13, step 3), for a
 * cluster across hosts on etcd. The node runs on this process's main
 * thread: its index and a block of client ids come from its registration
 * in etcd under its name, etcd's election decides whether it leads, and
 * other nodes reach it over its TCP link port.
 *
 * Prints one `ready node=NAME index=I address=HOST:PORT link=HOST:PORT` line
 * once it serves clients; SIGTERM/SIGINT answer what was read, leave the
 * cluster and exit 0. A node that can no longer renew its etcd lease stops
 * (exit 1) before etcd could expire it: fail-stop.
 */
import { Etcd3 } from 'etcd3';
import { headlessView } from '../ui/headless.js';
import { clientIdFor, MAX_NODE_INDEX, newIdCounter } from './node/client-ids.js';
import type { Limits } from './node/limits.js';
import { NodeLog } from './node/node-log.js';
import { EtcdNode } from './node/node-etcd.js';
import { EtcdMembership } from './replication/etcd-members.js';
import { serveUntilSignal, SHUTDOWN_DRAIN_MS } from './up.js';

export interface NodeMainOptions {
  etcd: string[];
  cluster: string;
  name: string;
  host: string;
  port: number;
  quiet: boolean;
  authToken: string | null;
  limits: Limits;
  firstToken: number;
}

export async function runNode(o: NodeMainOptions): Promise<number> {
  const view = headlessView();
  const log = new NodeLog((lines) => view({ type: 'log', node: o.name, lines }), !o.quiet);
  // Index and client-id block from etcd, before the node exists (ids are made from its index).
  const client = new Etcd3({ hosts: o.etcd });
  let prepared: { index: number; firstOrdinal: number };
  try {
    prepared = await new EtcdMembership(client, o.cluster, o.name).prepare();
  } catch (err) {
    process.stderr.write(`dlock node: cannot register with etcd at ${o.etcd.join(',')}: ${(err as Error).message}\n`);
    return 1;
  } finally {
    client.close();
  }
  if (prepared.index > MAX_NODE_INDEX) {
    process.stderr.write(`dlock node: the cluster ${o.cluster} has given ${prepared.index} node indexes; at most ${MAX_NODE_INDEX + 1} names can join it\n`);
    return 1;
  }
  const idCounter = newIdCounter();
  Atomics.store(idCounter, 0, prepared.firstOrdinal);
  const node = new EtcdNode({ name: o.name, index: prepared.index, log, idCounter, firstToken: o.firstToken, authToken: o.authToken, limits: o.limits, etcd: o.etcd, cluster: o.cluster, linkHost: o.host, reserveIds: true });
  let port: number;
  try {
    await node.start();
    port = await node.listen(o.host, o.port);
  } catch (err) {
    log.flush();
    process.stderr.write(`dlock node: could not start: ${(err as Error).message}\n`);
    await node.close().catch((closeErr: unknown) => process.stderr.write(`dlock node: ${(closeErr as Error).message}\n`));
    return 1;
  }
  log.flush();
  return serveUntilSignal(
    { who: o.name, command: 'dlock node', doing: 'answering what was received, then leaving the cluster' },
    async () => {
      await node.drain(SHUTDOWN_DRAIN_MS);
      await node.close();
    },
    `ready node=${o.name} index=${prepared.index} address=${o.host}:${port} link=${node.linkEndpoint} first-client=${clientIdFor(prepared.index, prepared.firstOrdinal + 1)}`,
  );
}
