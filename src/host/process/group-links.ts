/**
 * The links of a `dlock node` on the group protocol: authenticated TCP
 * (transport-tcp.ts, the cluster secret) between member ids. Only the
 * primary talks with each follower, so a node keeps the links it accepted
 * (by the member id their `hello` named, checked against the name's index
 * in etcd) and opens one to a member it must reach, at the link address
 * that member's live key in etcd gives. A frame for a member with no link
 * yet waits for it, and is dropped if it cannot be opened: the protocol
 * sends again.
 *
 * Threading: the node's thread.
 */
import type { Namespace } from 'etcd3';
import type { Frame } from '../../codec/frame.js';
import { parseMember } from '../../replication/etcd-members.js';
import { TcpTransport } from '../../transport/transport-tcp.js';

/** The name part of a member id (`name.run`). */
export const nameOf = (id: string): string => id.slice(0, id.lastIndexOf('.'));

/** At most this many frames wait for a link being opened; older ones are dropped (the protocol sends again). */
const MAX_WAITING = 10_000;

export class GroupLinks {
  /** Frames for this node, with the member they came from and how late they arrived (link-delay.ts). */
  deliver: (from: string, f: Frame, lateMs: number) => void = () => undefined;
  /** An observer's link (`dlock tui --etcd`, the chaos harness) that authenticated; closed when unset. */
  observe: ((t: TcpTransport) => void) | null = null;
  /** Every open link to each member: accepted and opened alike; frames go on any open one (the protocol does not need one link per pair). */
  private readonly byId = new Map<string, Set<TcpTransport>>();
  private readonly opening = new Map<string, Frame[]>();
  /** Node indexes by name, from etcd's names/ (cached: a name keeps its index). */
  private readonly indexes = new Map<string, number>();
  private closing = false;

  constructor(
    private readonly id: string,
    private readonly index: number,
    private readonly ns: Namespace,
    private readonly secret: string,
    private readonly log: (kind: 'warn' | 'error' | 'repl', text: string) => void,
    /** Links over mutual TLS: this node's certificate and key, and the CA that signed every node's (null: plain TCP). */
    private readonly tls: { cert: string; key: string; ca: string } | null = null,
  ) {}

  /** The node index of member `id`, if known (refresh() reads them). */
  indexOf(id: string): number | null {
    return this.indexes.get(nameOf(id)) ?? null;
  }

  /** Read every name's index (names/ in etcd). */
  async refresh(): Promise<void> {
    const all = await this.ns.getAll().prefix('names/').strings();
    for (const [k, v] of Object.entries(all)) {
      const n = Number(v);
      if (Number.isSafeInteger(n) && n >= 0) this.indexes.set(k.slice(k.lastIndexOf('names/') + 6), n);
    }
  }

  private linkTo(id: string): TcpTransport | undefined {
    for (const t of this.byId.get(id) ?? []) if (!t.closed) return t;
    return undefined;
  }

  private keep(id: string, t: TcpTransport): void {
    let set = this.byId.get(id);
    if (set === undefined) this.byId.set(id, (set = new Set()));
    set.add(t);
    t.onClose(() => {
      set.delete(t);
      if (set.size === 0 && this.byId.get(id) === set) this.byId.delete(id);
    });
  }

  send(to: string, f: Frame): void {
    if (this.closing) return;
    const t = this.linkTo(to);
    if (t !== undefined) {
      t.send(f);
      return;
    }
    const waiting = this.opening.get(to);
    if (waiting !== undefined) {
      if (waiting.length < MAX_WAITING) waiting.push(f);
      return;
    }
    this.opening.set(to, [f]);
    void this.open(to);
  }

  /** A link that authenticated: its first frame must be a `hello` naming a member id whose name has the index it claims. */
  accept(t: TcpTransport): void {
    if (!this.closing && t.role === 'observer' && this.observe !== null) {
      this.observe(t);
      return;
    }
    if (this.closing || t.role !== 'node') {
      t.close();
      return;
    }
    let from: string | null = null;
    let checking: Frame[] | null = null;
    t.onFrames((frames) => {
      for (const f of frames) {
        if (from !== null) {
          this.deliver(from, f, f.type === 'forward' && f.t !== undefined ? t.delay.lateness(f.t) : 0);
          continue;
        }
        if (checking !== null) {
          checking.push(f);
          continue;
        }
        if (f.type !== 'hello' || !f.node.includes('.')) {
          this.log('error', `node link from ${t.remote} refused: ${f.type} frame before a member's hello`);
          t.close();
          return;
        }
        const claimed = Number(f.incarnation);
        const peer = f.node;
        checking = [];
        this.checkIndex(nameOf(peer), claimed).then(
          (problem) => {
            if (problem !== null) {
              this.log('error', `node link from ${t.remote} refused: ${problem}`);
              t.close();
              return;
            }
            from = peer;
            this.keep(peer, t);
            const held = checking ?? [];
            checking = null;
            for (const x of held) this.deliver(peer, x, 0);
          },
          (err: unknown) => {
            this.log('warn', `node link from ${t.remote}: cannot check ${peer} in etcd now (${(err as Error).message}); closing it`);
            t.close();
          },
        );
      }
    });
  }

  close(): void {
    this.closing = true;
    for (const set of this.byId.values()) for (const t of set) t.close();
    this.byId.clear();
    this.opening.clear();
  }

  private async checkIndex(name: string, claimed: number): Promise<string | null> {
    if (!Number.isSafeInteger(claimed) || claimed < 0) return `hello from ${name} names no node index`;
    let had = this.indexes.get(name);
    if (had === undefined) {
      const text = await this.ns.get(`names/${name}`).string();
      if (text === null) return `hello from ${name}, which is not a node of this cluster`;
      had = Number(text);
      if (!Number.isSafeInteger(had) || had < 0) return `node ${name}'s index in etcd is not a number`;
      this.indexes.set(name, had);
    }
    return had === claimed ? null : `hello from ${name} claims index ${claimed}, but ${name} registered index ${had}`;
  }

  /** Open a link to member `to` at its live key's link address, say hello, then send what waited. */
  private async open(to: string): Promise<void> {
    const drop = (why: string): void => {
      this.opening.delete(to);
      this.log('warn', `no link to ${to}: ${why}`);
    };
    let link: string;
    try {
      const text = await this.ns.get(`live/${nameOf(to)}`).string();
      const m = text === null ? null : parseMember(text);
      if (m === null || m.link === '') return drop('it is not live in etcd');
      link = m.link;
    } catch (err) {
      return drop((err as Error).message);
    }
    const at = link.lastIndexOf(':');
    let t: TcpTransport;
    try {
      t = await TcpTransport.connect(link.slice(0, at), Number(link.slice(at + 1)), { role: 'node', secret: this.secret, tls: this.tls });
    } catch (err) {
      return drop(`${link}: ${(err as Error).message}`);
    }
    if (this.closing) {
      t.close();
      return;
    }
    this.keep(to, t);
    t.onFrames((frames) => {
      for (const f of frames) this.deliver(to, f, 0);
    });
    t.send({ v: 1, type: 'hello', node: this.id, incarnation: String(this.index), seq: null, t: Math.round(performance.now()) });
    this.log('repl', `linked to ${to} at ${link}`);
    const waiting = this.opening.get(to) ?? [];
    this.opening.delete(to);
    for (const f of waiting) t.send(f);
  }
}
