/**
 * No impersonation, a regression test of the 2019 design's
 * hole: it trusted the client id a client sent. In dlock the id is the
 * connection's, given by the node in the greeting [LP-3, LP-4]; nothing a
 * client sends can name another client, so nothing it sends can release,
 * renew or preempt-as another client's lock [LP-10, LP-14].
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { LineClient } from '../helpers/line-client.js';

let t: TestCluster;
beforeAll(async () => {
  t = await startCluster(2);
});
afterAll(async () => {
  await t.cluster.close();
});

describe('whatever a client sends, it acts only as itself', () => {
  it('cannot release, renew, preempt or wait as the owner of another client\'s session lock or lease, on any node', async () => {
    const owner = await LineClient.open(t.port('follower-1'));
    const session = await owner.ask('preempt imp-session');
    const lease = await owner.ask('preempt imp-lease ttl=600000');
    const tokenOf = (s: string): string => (/ token=(\d+)/.exec(s) as RegExpExecArray)[1] as string;
    const A = owner.id;
    const expectUntouched = async (via: LineClient): Promise<void> => {
      expect(await via.ask('check imp-session')).toBe(`CheckLock:Lock:${A} token=${tokenOf(session)}`);
      expect(await via.ask('check imp-lease')).toMatch(new RegExp(`^CheckLock:Lock:${A} token=${tokenOf(lease)} ttl=\\d+$`));
    };
    for (const node of ['leader', 'follower-1', 'follower-2']) {
      const thief = await LineClient.open(t.port(node));
      expect(thief.id).not.toBe(A); // ids are the node's to give [LP-4]
      for (const lock of ['imp-session', 'imp-lease']) {
        // Each attempt: refused as an error, or as "not the owner"; never a success.
        const attempts: Array<[string, RegExp]> = [
          [`release ${lock}`, new RegExp(`^ReleaseLock Failed owner=${A}$`)],
          [`release ${lock} ${A}`, new RegExp(`^ReleaseLock Failed owner=${A} lock=${lock}$`)], // a second lock's name [LP-22], never a client
          [`release ${lock} owner=${A}`, /^Error: unknown option "owner"/],
          [`release ${lock} client_id=${A}`, /^Error: unknown option "client_id"/],
          [`renew ${lock} ttl=1`, new RegExp(`^RenewLock Failed owner=${A}$`)],
          [`renew ${lock} ttl=1 owner=${A}`, /^Error: unknown option "owner"/],
          [`preempt ${lock}`, new RegExp(`^PreemptLock Failed owner=${A}$`)],
          [`preempt ${lock} owner=${A}`, /^Error: unknown option "owner"/],
          [`acquire ${lock} timeout=0`, new RegExp(`^AcquireLock Timeout owner=${A}$`)],
          [`client_id: ${A} node: ${node}`, /^Error: unknown command "client_id:"/],
          [`${A} release ${lock}`, new RegExp(`^Error: unknown command "${A}"`)],
          [`release\t${lock}\u0000${A}`, /^Error: bad lock name/],
        ];
        for (const [req, want] of attempts) expect(await thief.ask(req), req).toMatch(want);
      }
      // Who it is, as the node sees it: itself, whatever it claimed.
      expect(await thief.ask('whoami')).toBe(`client_id: ${thief.id} node: ${node}`);
      // Going away does not take the other client's locks with it [LP-8].
      thief.close();
      await thief.closed;
      await expectUntouched(owner);
    }
    // The owner still acts as the owner.
    expect(await owner.ask('renew imp-lease ttl=600000')).toBe(`RenewLock Success token=${tokenOf(lease)}`);
    expect(await owner.ask('release imp-session')).toBe('ReleaseLock Success');
    owner.close();
  });
});
