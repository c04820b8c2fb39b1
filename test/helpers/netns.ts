/**
 * Separate hosts for tests: Linux network namespaces, each with
 * a veth pair to a bridge in this namespace, made and removed by the test.
 * Traffic stays on this machine: the bridge's subnet exists only between
 * these namespaces. A partition is a host's link set down.
 *
 * Needs root and iproute2 (CI runs as root); `canMakeHosts` says whether
 * this machine can.
 */
import { spawnSync } from 'node:child_process';

const sh = (args: string[]): { ok: boolean; err: string } => {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  return { ok: r.status === 0, err: r.stderr };
};

function probe(): boolean {
  if (process.getuid?.() !== 0) return false;
  const name = `dlprobe${process.pid % 10000}`;
  if (!sh(['netns', 'add', name]).ok) return false;
  sh(['netns', 'del', name]);
  return true;
}

export const canMakeHosts = spawnSync('sh', ['-c', 'command -v ip']).status === 0 && probe();

export interface Host {
  /** The namespace's name (for `ip netns exec`). */
  ns: string;
  /** Its address on the bridge. */
  addr: string;
}

/** A second network of the same hosts (Hosts.addNetwork). */
export interface SecondNetwork {
  /** The bridge's address: this namespace, as the hosts see it on this network. */
  gateway: string;
  /** Each host's address on it, by host index. */
  addrs: string[];
  /** Cut host `i` off this network (its link down), or join it again. */
  link(i: number, up: boolean): void;
}

/** A bridge and `count` hosts on a /24 of its own; `subnet` is its first three octets. */
export class Hosts {
  readonly hosts: Host[] = [];
  private readonly bridge: string;

  constructor(
    private readonly tag: string,
    readonly subnet: string,
  ) {
    this.bridge = `${tag}br`;
  }

  /** The bridge's own address: this namespace, as the hosts see it. */
  get gateway(): string {
    return `${this.subnet}.1`;
  }

  private must(args: string[]): void {
    const r = sh(args);
    if (!r.ok) throw new Error(`ip ${args.join(' ')}: ${r.err}`);
  }

  make(count: number): this {
    this.mustBeFree(this.subnet);
    this.must(['link', 'add', this.bridge, 'type', 'bridge']);
    this.must(['addr', 'add', `${this.gateway}/24`, 'dev', this.bridge]);
    this.must(['link', 'set', this.bridge, 'up']);
    for (let i = 0; i < count; i++) {
      const ns = `${this.tag}${i}`;
      const addr = `${this.subnet}.${10 + i}`;
      this.must(['netns', 'add', ns]);
      this.must(['link', 'add', `${ns}h`, 'type', 'veth', 'peer', 'name', `${ns}c`]);
      this.must(['link', 'set', `${ns}c`, 'netns', ns]);
      this.must(['link', 'set', `${ns}h`, 'master', this.bridge]);
      this.must(['link', 'set', `${ns}h`, 'up']);
      this.must(['netns', 'exec', ns, 'ip', 'addr', 'add', `${addr}/24`, 'dev', `${ns}c`]);
      this.must(['netns', 'exec', ns, 'ip', 'link', 'set', `${ns}c`, 'up']);
      this.must(['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
      this.hosts.push({ ns, addr });
    }
    return this;
  }

  /**
   * A /24 already routed here (a bridge that a killed run left behind, or
   * another run's on the same subnet) would take this run's traffic: its
   * hosts would not reach each other, and etcd would time out with no
   * word of why. Refuse it, naming the link that holds it.
   */
  private mustBeFree(subnet: string): void {
    const r = spawnSync('ip', ['-o', '-4', 'route', 'show', `${subnet}.0/24`], { encoding: 'utf8' });
    const dev = /\bdev (\S+)/.exec(r.stdout)?.[1];
    if (dev !== undefined) throw new Error(`${subnet}.0/24 is already routed to ${dev} (left by a run that was killed?): remove it with "ip link del ${dev}" if no test is running`);
  }

  /** Cut host `i` off (its link down), or join it again. */
  link(i: number, up: boolean): void {
    const h = this.hosts[i] as Host;
    this.must(['link', 'set', `${h.ns}h`, up ? 'up' : 'down']);
  }

  /**
   * A second network between the same hosts, with a bridge and a /24 of
   * its own (`subnet`: its first three octets): e.g. one that carries only
   * etcd's traffic, so that a host can be cut off from etcd and not from
   * its peers, or the other way round. Call after make().
   */
  addNetwork(subnet: string): SecondNetwork {
    this.mustBeFree(subnet);
    const bridge = `${this.tag}bx`;
    this.must(['link', 'add', bridge, 'type', 'bridge']);
    this.must(['addr', 'add', `${subnet}.1/24`, 'dev', bridge]);
    this.must(['link', 'set', bridge, 'up']);
    this.extra = bridge;
    const addrs: string[] = [];
    for (const [i, h] of this.hosts.entries()) {
      const addr = `${subnet}.${10 + i}`;
      this.must(['link', 'add', `${h.ns}x`, 'type', 'veth', 'peer', 'name', `${h.ns}y`]);
      this.must(['link', 'set', `${h.ns}y`, 'netns', h.ns]);
      this.must(['link', 'set', `${h.ns}x`, 'master', bridge]);
      this.must(['link', 'set', `${h.ns}x`, 'up']);
      this.must(['netns', 'exec', h.ns, 'ip', 'addr', 'add', `${addr}/24`, 'dev', `${h.ns}y`]);
      this.must(['netns', 'exec', h.ns, 'ip', 'link', 'set', `${h.ns}y`, 'up']);
      addrs.push(addr);
    }
    return {
      gateway: `${subnet}.1`,
      addrs,
      link: (i, up) => this.must(['link', 'set', `${(this.hosts[i] as Host).ns}x`, up ? 'up' : 'down']),
    };
  }

  private extra: string | null = null;

  /** Remove every namespace, link and bridge (tolerates what is already gone). */
  remove(): void {
    for (const h of this.hosts) {
      sh(['link', 'del', `${h.ns}h`]);
      sh(['link', 'del', `${h.ns}x`]);
      sh(['netns', 'del', h.ns]);
    }
    sh(['link', 'del', this.bridge]);
    if (this.extra !== null) sh(['link', 'del', this.extra]);
  }
}
