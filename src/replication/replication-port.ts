/**
 * The in-process replication: primary/backup
 * over MessagePorts, the one-process `dlock up`'s engine, behind the same
 * seam as etcd (replica/replication.ts).
 *
 * A node's replication is in one of two modes: backup (port-backup.ts:
 * follows the primary's stream, forwards its proposals) or primary
 * (port-primary.ts: sequences every write, its own and the backups'). The
 * node itself has no role (node/replica-node.ts). At failover the
 * supervisor (host/threads/cluster.ts) picks the backup that has the most of the log
 * and calls `lead` on it: its replication switches mode in place. Nothing
 * is handed over: the node keeps its table, connections and listeners, the
 * ring of recent entries stays where it is (the relinked backups resume
 * from it), and the proposals the old primary never logged go to the new
 * sequencer in their order.
 *
 * Threading: the node's thread (its worker); the supervisor's control calls
 * (control.ts) arrive on it through comlink.
 */
import { aged, type Command } from '../core/lock-table.js';
import type { Store } from '../store/store.js';
import type { Transport } from '../transport/transport.js';
import { EntryRing } from './entry-ring.js';
import { plural } from '../text.js';
import { PortBackup, LEADER_WAIT_MS } from './port-backup.js';
import { PortPrimary } from './port-primary.js';
import type { Replica, Replication } from '../replica/replication.js';

/** How a node's replication starts: as the primary, or as a backup on a link to it. */
export type PortStart = { primary: true } | { primary: false; link: Transport; incarnation: string; leaderWaitMs?: number };

/** Who takes over at failover (PortReplication.lead). */
export interface LeadArgs {
  /** Index of the dead primary: its clients' sessions end [LP-8]. */
  deadIndex: number;
  /** The surviving backups' new links; `counts`: they count toward commits at once (they have their state). */
  followers: Array<{ name: string; transport: Transport; counts: boolean }>;
  /** The data dir to keep logging to, if the cluster has one. */
  store: Store | null;
}

export class PortReplication implements Replication {
  private readonly ring = new EntryRing();
  private mode: { primary: PortPrimary } | { backup: PortBackup };
  /** The primary side while leading (the hot path's one check); null while a backup. */
  private primaryNow: PortPrimary | null;

  constructor(
    private readonly replica: Replica,
    start: PortStart,
  ) {
    this.mode = start.primary
      ? { primary: new PortPrimary(replica, this.ring) }
      : { backup: new PortBackup(replica, start.link, this.ring, start.incarnation, start.leaderWaitMs ?? LEADER_WAIT_MS) };
    this.primaryNow = 'primary' in this.mode ? this.mode.primary : null;
  }

  get leads(): boolean {
    return 'primary' in this.mode;
  }

  /** The primary side; throws on a backup (a control call made to the wrong node). */
  get primary(): PortPrimary {
    if (!('primary' in this.mode)) throw new Error(`${this.replica.name} is not the leader`);
    return this.mode.primary;
  }

  /** The backup side; throws on the primary. */
  get backup(): PortBackup {
    if (!('backup' in this.mode)) throw new Error(`${this.replica.name} is not a follower`);
    return this.mode.backup;
  }

  propose(cmd: Command, req: number): void {
    if (this.primaryNow !== null) this.primaryNow.propose(cmd, req);
    else this.backup.propose(cmd, req);
  }

  /**
   * Failover: this backup becomes the primary, in place. It links the
   * surviving backups (they resume from its ring), ends the dead primary's
   * clients' sessions, arms lease and acquire-timeout timers from the table
   * (leases survive), and then sequences the proposals the old primary's
   * log did not hold, in their order. Tokens continue from the table's
   * counter [LP-7].
   */
  lead(args: LeadArgs): void {
    const backup = this.backup;
    const owed = backup.detachForLead();
    const primary = new PortPrimary(this.replica, this.ring);
    this.mode = { primary };
    this.primaryNow = primary;
    const state = this.replica.state;
    if (args.store !== null) primary.adoptStore(args.store);
    this.replica.log.line('warn', `promoted to leader at seq ${this.replica.seq} (${plural(state.locks.size, 'lock')}, next token ${state.nextToken})`);
    for (const { name, transport, counts } of args.followers) primary.attachFollower(transport, name, counts);
    primary.dropClientsOf(args.deadIndex, 'the old leader');
    primary.armTimers();
    for (const h of owed) primary.propose(aged(h.cmd, performance.now() - h.since), h.req);
    if (owed.length > 0) this.replica.log.line('repl', `applied ${owed.length} of its own write(s) the old leader's log did not hold`);
    primary.recomputeCommit();
  }

  clientEntries(): number {
    return 'backup' in this.mode ? this.mode.backup.heldCount : 0;
  }

  followerAcks(): Record<string, number> | undefined {
    return 'primary' in this.mode ? this.mode.primary.followerAcks() : undefined;
  }

  async close(): Promise<void> {
    if ('primary' in this.mode) this.mode.primary.close();
    else this.mode.backup.close();
  }
}
