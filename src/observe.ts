/**
 * Observing nodes on etcd from outside (`dlock tui --etcd`; the chaos
 * harness across processes): each node serves `view` frames on its TCP
 * link port to an observer that authenticated there in the `observer` role
 * (transport/link-auth.ts: the cluster secret, or the node's admin token;
 * never a client's token): src/transport/views.ts.
 *
 * - `viewOnce(link, …)`: one view of one node (the chaos harness compares
 *   every node's lock table at the end of a run).
 * - `ClusterObserver`: every live node of a cluster, as etcd lists them
 *   (live/ keys), followed as they come and go, each node's views handed
 *   to `onView` as they arrive.
 *
 * Threading: the thread that made it. Ordering: one node's views arrive in
 * the order it sent them; nothing is ordered across nodes.
 */
import { Etcd3 } from 'etcd3';
import type { Frame } from './codec/frame.js';
import { etcd3Options, type EtcdAccess } from './replication/etcd-access.js';
import { parseMember } from './replication/etcd-members.js';
import { TcpTransport } from './transport/transport-tcp.js';

/**
 * How an observer proves itself to a node's link port: a secret the
 * observer role takes (the cluster secret or that node's admin token), and
 * over TLS the cluster's CA with this observer's own certificate and key
 * (links are mutual TLS).
 */
export interface ObserverAuth {
  secret: string;
  tls: { ca: string; cert?: string; key?: string } | null;
}

/** The cluster has no secret in etcd to observe with (it was started with --cluster-secret-file): the caller must give one. */
export class NoClusterSecretError extends Error {
  override readonly name = 'NoClusterSecretError';
  readonly code = 'ERR_NO_CLUSTER_SECRET';
}

/** The cluster secret kept in etcd (replication/etcd-secret.ts), read only: never made here. */
export async function readClusterSecret(client: Etcd3, cluster: string): Promise<string> {
  const secret = await client.namespace(`/dlock/${cluster}/`).get('secret').string();
  if (secret === null) throw new NoClusterSecretError(`the cluster ${cluster} keeps no secret in etcd (its nodes have --cluster-secret-file): give the same file, or the nodes' --admin-token`);
  return secret;
}

export type View = Extract<Frame, { type: 'view' }>;

/** Views can hold a large lock map: accept frames up to this size. */
const VIEW_FRAME_MAX = 64 * 1024 * 1024;

function split(link: string): { host: string; port: number } {
  const at = link.lastIndexOf(':');
  return { host: link.slice(0, at), port: Number(link.slice(at + 1)) };
}

/** Open an observer link to the node whose link listens at `link` (host:port). */
export async function observeNode(link: string, auth: ObserverAuth, locks: number, onView: (v: View) => void, onClose: (why: string) => void): Promise<TcpTransport> {
  const { host, port } = split(link);
  const t = await TcpTransport.connect(host, port, { role: 'observer', secret: auth.secret, maxFrameBytes: VIEW_FRAME_MAX, tls: auth.tls });
  t.onFrames((frames) => {
    for (const f of frames) if (f.type === 'view') onView(f);
  });
  t.onClose(onClose);
  t.send({ v: 1, type: 'observe', locks });
  return t;
}

/** One view of one node, or an error after `timeoutMs`. */
export function viewOnce(link: string, auth: ObserverAuth, locks: number, timeoutMs = 5000): Promise<View> {
  return new Promise((resolve, reject) => {
    let t: TcpTransport | null = null;
    const timer = setTimeout(() => {
      t?.close();
      reject(new Error(`no view from the node at ${link} within ${timeoutMs} ms`));
    }, timeoutMs);
    observeNode(
      link,
      auth,
      locks,
      (v) => {
        clearTimeout(timer);
        resolve(v); // first: closing calls the close handler below, which must find it settled
        t?.close();
      },
      (why) => {
        clearTimeout(timer);
        reject(new Error(`the link to ${link} closed before a view: ${why}`)); // a no-op once resolved
      },
    ).then(
      (x) => {
        t = x;
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err as Error);
      },
    );
  });
}

export interface ObservedNode {
  name: string;
  /** Where its clients connect, and where it links (as registered in etcd). */
  address: string;
  link: string;
  /** The last view, if any yet. */
  view: View | null;
  /** The observer link is open. */
  linked: boolean;
  /** Its link closed while etcd still lists it (reported once, until a view comes again). */
  lost?: boolean;
}

export interface ObserverHandlers {
  /** A view of `node` arrived (node.view is it). */
  view(node: ObservedNode, v: View): void;
  /** A node joined (or a new run of it), or left the membership; or its client address changed (published a moment after it joins). */
  joined(node: ObservedNode): void;
  moved(node: ObservedNode): void;
  left(name: string): void;
  /** Reading etcd failed (null: it works again). */
  etcd(error: string | null): void;
  /**
   * The observer link to a node that etcd still lists closed: its process
   * is gone or cut off, seen at once (a TCP close) or within the link's
   * heartbeat, long before its etcd lease ends. `back` when a view comes
   * again on a new link.
   */
  unreachable?(node: ObservedNode, why: string): void;
  back?(node: ObservedNode): void;
}

/**
 * Every live node of `cluster`: membership polled from etcd every
 * POLL_MS, an observer link to each node (made again at the next poll when
 * it closed while the node is still listed).
 */
export class ClusterObserver {
  readonly nodes = new Map<string, ObservedNode>();
  private readonly client: Etcd3;
  private readonly links = new Map<string, TcpTransport>();
  /** Nodes whose observer link is being made. */
  private readonly connecting = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private etcdError: string | null = null;

  constructor(
    /** How to reach etcd (URLs, TLS, auth); only live/ under the cluster's prefix is read. */
    etcd: EtcdAccess,
    private readonly cluster: string,
    /** `secret` null: the cluster secret kept in etcd, read at start (readClusterSecret). */
    private readonly auth: { secret: string | null; tls: ObserverAuth['tls'] },
    private readonly locks: number,
    private readonly on: ObserverHandlers,
  ) {
    this.client = new Etcd3({ ...etcd3Options(etcd), dialTimeout: 3000 });
  }

  /** The secret links are opened with (resolved at start). */
  private secret = '';

  /** Resolves after the first read of the membership; rejects if etcd cannot be read then, or holds no secret when none was given. */
  async start(): Promise<void> {
    this.secret = this.auth.secret ?? (await readClusterSecret(this.client, this.cluster));
    await this.poll(true);
    this.timer = setInterval(() => void this.poll(false), POLL_MS);
  }

  private async poll(first: boolean): Promise<void> {
    let live: Record<string, string>;
    try {
      live = await this.client.namespace(`/dlock/${this.cluster}/`).getAll().prefix('live/').strings();
    } catch (err) {
      if (first) throw err;
      const e = (err as Error).message;
      if (e !== this.etcdError) this.on.etcd(e);
      this.etcdError = e;
      return;
    }
    if (this.etcdError !== null) this.on.etcd(null);
    this.etcdError = null;
    if (this.closed) return;
    const seen = new Set<string>();
    for (const value of Object.values(live)) {
      const m = parseMember(value);
      if (m === null) continue; // not a member's key: no node to observe there
      seen.add(m.name);
      const known = this.nodes.get(m.name);
      if (known === undefined || known.link !== m.link) {
        this.links.get(m.name)?.close(); // a new run of that node
        this.links.delete(m.name);
        const node: ObservedNode = { name: m.name, address: m.address, link: m.link, view: null, linked: false };
        this.nodes.set(m.name, node);
        this.on.joined(node);
      } else if (known.address !== m.address) {
        known.address = m.address;
        this.on.moved(known);
      }
      if (!this.links.has(m.name) && !this.connecting.has(m.name)) this.link(this.nodes.get(m.name) as ObservedNode);
    }
    for (const name of [...this.nodes.keys()]) {
      if (seen.has(name)) continue;
      this.links.get(name)?.close();
      this.links.delete(name);
      this.nodes.delete(name);
      this.on.left(name);
    }
  }

  private link(node: ObservedNode): void {
    this.connecting.add(node.name);
    observeNode(
      node.link,
      { secret: this.secret, tls: this.auth.tls },
      this.locks,
      (v) => {
        if (this.nodes.get(node.name) !== node) return;
        node.view = v;
        if (node.lost) {
          node.lost = false;
          this.on.back?.(node);
        }
        node.linked = true;
        this.on.view(node, v);
      },
      () => {
        node.linked = false;
        if (this.links.get(node.name) !== undefined && this.nodes.get(node.name) === node) this.links.delete(node.name);
        if (!this.closed && this.nodes.get(node.name) === node && !node.lost) {
          node.lost = true;
          this.on.unreachable?.(node, 'its observer link closed');
        }
      },
    ).then(
      (t) => {
        this.connecting.delete(node.name);
        if (this.closed || this.nodes.get(node.name) !== node) t.close();
        else this.links.set(node.name, t);
      },
      (err: unknown) => {
        // Not reachable now (starting, stopping, rejoining): the next poll tries again.
        this.connecting.delete(node.name);
        void err;
      },
    );
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    for (const t of this.links.values()) t.close();
    this.links.clear();
    this.client.close();
  }
}

/** How often the observer reads the cluster's membership from etcd, ms. */
const POLL_MS = 1000;
