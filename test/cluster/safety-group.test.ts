/**
 * The safety checker against `dlock up --replication group`: the same
 * harness and checker as test/cluster/safety.test.ts, the nodes on the group
 * protocol between worker threads (the primary's thread and the
 * secondaries' killed, links delayed, clients dropped). A bounded run:
 * `npm run chaos -- --replication group` runs it as long as asked.
 */
import { describe, it } from 'vitest';
import { expectSafeRun } from '../helpers/safety-expect.js';
import { runSafety } from '../../tools/safety/run.js';

describe('a bounded chaos run on the group protocol', () => {
  it('at least 5k grants under primary and secondary kills, link delays and dropped clients: no violations', async () => {
    const r = await runSafety({ grants: 5000, seconds: 90, followers: 2, clients: 24, locks: 24, chaos: 'kill-leader@1s,kill-follower@2s,delay@2s:5ms,drop-client@700ms', group: true });
    // The faults happened: a primary was killed and another took over, nodes restarted.
    expectSafeRun(r, 'safety on the group protocol', 5000, 'takeovers');
  }, 150_000);
});
