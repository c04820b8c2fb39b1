/**
 * The safety checker against the cluster on etcd: the same
 * harness and checker as test/cluster/safety.test.ts, the nodes role-less on a real
 * etcd member, the leader's and followers' workers killed (a new leader by
 * election), links delayed, clients dropped. A bounded run: `npm run chaos
 * -- --etcd` runs it as long as asked.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import { expectSafeRun } from '../helpers/safety-expect.js';
import { runSafety } from '../../tools/safety/run.js';
import { EtcdCluster, hasEtcd } from '../helpers/etcd.js';

describe.skipIf(!hasEtcd)('a bounded chaos run on etcd', () => {
  let etcd: EtcdCluster;
  beforeAll(async () => {
    etcd = await EtcdCluster.start(1);
  });
  afterAll(async () => {
    await etcd.stop();
  });

  it('at least 5k grants under leader and follower kills, link delays and dropped clients: no violations', async () => {
    // The leader is killed first, a second in (kills wait until the cluster
    // has recovered from the last, and 5,000 grants take about 10 s here).
    const r = await runSafety({ grants: 5000, seconds: 90, followers: 2, clients: 24, locks: 24, chaos: 'kill-leader@1s,kill-follower@3s,delay@2s:5ms,drop-client@700ms', etcd: { access: etcd.access, cluster: 'safety' } });
    // The faults happened: a leader was killed and another elected, nodes restarted.
    expectSafeRun(r, 'safety on etcd', 5000, 'elections after the first');
  }, 150_000);
});
