/**
 * The learner rule: a follower that has not yet loaded its
 * snapshot is never promoted. Its table would be empty and its token
 * counter back at the first token: it would grant held locks again and
 * repeat tokens [LP-5, LP-7].
 *
 * The moment is made, not hoped for: links are delayed, so follower-1,
 * restarted, waits for its snapshot for seconds; the leader is killed in
 * that window. Without a data dir the cluster then takes no writes and
 * says so; with one, a leader restores from the log on disk.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { ClientPool, eventually, LineClient } from '../helpers/line-client.js';

let t: TestCluster | null = null;
const dirs: string[] = [];
const pool = new ClientPool();
const open = (port: number): Promise<LineClient> => pool.open(port);
afterEach(async () => {
  pool.closeAll();
  await t?.cluster.close();
  t = null;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A lease held on the leader; follower-1 restarted and still waiting for its snapshot when the leader dies. */
async function leaderDiesWhileFollowerLearns(tc: TestCluster): Promise<{ token: number; holder: number }> {
  const a = await open(tc.port('leader'));
  const granted = await a.ask('preempt lr-lease ttl=600000');
  const token = Number(/token=(\d+)/.exec(granted)?.[1]);
  expect(token).toBeGreaterThan(0);
  await tc.cluster.delayLinks(3000, 20_000);
  await tc.cluster.kill('follower-1');
  // Its snapshot now waits 3 s on the leader's side of the link (the first such line was at start).
  const linked = (): number => (tc.logs.get('leader') ?? []).filter((l) => /^follower-1 linked; snapshot at seq \d+/.test(l)).length;
  await eventually(() => linked() === 2, 'the restarted follower-1 to link', 8000);
  await tc.cluster.kill('leader');
  return { token, holder: a.id };
}

describe('a learner is never promoted', () => {
  it('without a data dir: no node is promoted, and the cluster says it takes no writes', async () => {
    t = await startCluster(1, 0, { callTimeoutMs: 4000 });
    await leaderDiesWhileFollowerLearns(t);
    await t.logged('cluster', /^the leader is gone and no follower that has its state survives \(follower-1 still loading it\): no node takes writes now/, 8000);
    // The learner rule: a follower still loading its snapshot (an empty table) is never promoted.
    expect(t.all.some((l) => /promoted to leader/.test(l))).toBe(false);
    expect(t.cluster.nodes.some((n) => n.role === 'leader')).toBe(false);
  });

  it('with a data dir and no follower at all: the leader restarts from disk with its leases', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dlock-learner-'));
    dirs.push(dir);
    t = await startCluster(0, 0, { dataDir: dir });
    const a = await open(t.port('leader'));
    const granted = await a.ask('preempt lr-alone ttl=600000');
    await t.cluster.kill('leader');
    // Before: 'no follower is up to take over', and nothing served again.
    await t.logged('cluster', /^leader restored from .* on 127\.0\.0\.1:\d+$/, 10_000);
    const b = await open(t.port('leader'));
    expect(await b.ask('check lr-alone')).toMatch(new RegExp(`^CheckLock:Lock:${a.id} token=${/token=(\d+)/.exec(granted)?.[1]} ttl=\\d+$`));
  });

  it('with a data dir: a leader restores from disk, with the lease and the token counter; the learner relinks to it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dlock-learner-'));
    dirs.push(dir);
    t = await startCluster(1, 0, { dataDir: dir, callTimeoutMs: 4000 });
    const { token, holder } = await leaderDiesWhileFollowerLearns(t);
    await t.logged('cluster', /^leader restored from .* on 127\.0\.0\.1:\d+$/, 10_000);
    expect(t.all.some((l) => /promoted to leader/.test(l))).toBe(false);
    const lead = await open(t.port('leader'));
    expect(await lead.ask('check lr-lease')).toMatch(new RegExp(`^CheckLock:Lock:${holder} token=${token} ttl=\\d+$`));
    expect(await lead.ask('preempt lr-lease')).toBe(`PreemptLock Failed owner=${holder}`);
    const next = await lead.ask('preempt lr-after');
    expect(Number(/token=(\d+)/.exec(next)?.[1])).toBeGreaterThan(token); // [LP-7]
    // follower-1 comes back, linked to the restored leader, with its table.
    await eventually(async () => t!.cluster.nodes.some((n) => n.name === 'follower-1') && (await t!.cluster.stats('follower-1').catch(() => null))?.locks === 2, 'follower-1 back with the table', 15_000, 100);
    const f1 = await open(t.port('follower-1'));
    expect(await f1.ask('check lr-lease')).toMatch(new RegExp(`^CheckLock:Lock:${holder} token=${token} `));
  });
});
