/**
 * `dlock up --replication group --min-secondaries 2`: the floor on the
 * group's size in process, as `dlock node` has it
 * (test/etcd/group-floor.test.ts). A follower's thread killed: the
 * supervisor takes its run out of the configuration at once, so the
 * primary has one secondary, fewer than the floor. It says so, takes no
 * write until the follower's new run is added back, and then takes them
 * again; every write sent meanwhile is answered (LP-2), none by the
 * primary with one secondary.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { eventually, LineClient } from '../helpers/line-client.js';

describe('dlock up --replication group --min-secondaries 2', () => {
  let t: TestCluster;
  beforeAll(async () => {
    t = await startCluster(2, 0, { group: true, firstToken: undefined, minSecondaries: 2 });
    await eventually(() => t.cluster.settled, 'every run in the configuration', 10_000);
  }, 30_000);
  afterAll(async () => {
    await t?.cluster.close();
  });

  it('a follower killed: writes wait for its new run to be added, then go on', async () => {
    const roles = await t.cluster.roles();
    const leader = roles.find((r) => r.role === 'leader')?.name as string;
    const follower = roles.find((r) => r.role !== 'leader')?.name as string;
    const c = await LineClient.open(t.port(leader));
    await eventually(async () => (await c.ask('preempt floor-before', 10_000)).startsWith('PreemptLock Success'), 'a write with both secondaries', 10_000, 50);
    await t.cluster.kill(follower);
    await t.logged(leader, /holds 1 secondary, fewer than --min-secondaries 2: writes wait for a secondary to be added/, 10_000);
    // Answered once the new run is a secondary again (or with an error within the leader wait): never lost.
    await eventually(async () => (await c.ask('preempt floor-after', 10_000)).startsWith('PreemptLock Success'), 'a write once the follower is back', 20_000, 50);
    // The primary took it in a configuration with two secondaries again: the last one it logged before its answer (its log lines come after the reply).
    await t.logged(leader, new RegExp(`^Response ${c.id}: PreemptLock Success`), 5000);
    const lines = t.logs.get(leader) ?? [];
    const granted = lines.findIndex((l) => l.startsWith(`Response ${c.id}: PreemptLock Success`) && lines.indexOf(l) > lines.findIndex((x) => /^configuration \d+ holds 1 secondary/.test(x)));
    const configs = lines.slice(0, granted).filter((l) => /^(now the primary: )?configuration \d+: primary /.test(l));
    expect(configs.at(-1)).toMatch(/secondaries \S+, \S+; this node is the primary$/);
    c.close();
  }, 40_000);
});
