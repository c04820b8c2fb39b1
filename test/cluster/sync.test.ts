/**
 * `sync` [LP-17] over TCP, on both in-process engines: answered `Sync
 * Success` once the node has applied every write committed anywhere
 * before it read the request; the connection's later requests wait behind
 * it and reflect those writes; bad forms get an error and change nothing.
 */
import { expect, it } from 'vitest';
import { onBothEngines } from '../helpers/cluster.js';
import { LineClient } from '../helpers/line-client.js';
import { connect } from '../../src/client/client.js';

onBothEngines('sync [LP-17]', (cluster, followers) => {
  it('sync then check through another node shows every write answered before the sync was sent', async () => {
    const [f1, f2] = (await followers()) as [string, string];
    const writer = await LineClient.open(cluster().port(f1));
    const reader = await LineClient.open(cluster().port(f2));
    for (let i = 0; i < 50; i++) {
      const grant = await writer.ask(`preempt s-${i}`);
      expect(grant).toMatch(new RegExp(`^PreemptLock Success owner=${writer.id} token=\\d+$`));
      // Pipelined: the check waits behind the sync, and reflects the grant.
      reader.write(`sync\ncheck s-${i}\n`);
      expect(await reader.next()).toBe('Sync Success');
      expect(await reader.next()).toBe(`CheckLock:Lock:${writer.id} token=${/token=(\d+)/.exec(grant)?.[1]}`);
    }
    // On the node that sequences too, and on a connection that holds locks.
    const leader = (await cluster().cluster.roles()).find((r) => r.role === 'leader')?.name as string;
    const onLeader = await LineClient.open(cluster().port(leader));
    expect(await onLeader.ask('sync')).toBe('Sync Success');
    expect(await writer.ask('sync')).toBe('Sync Success');
    expect(await writer.ask('check s-0')).toMatch(new RegExp(`^CheckLock:Lock:${writer.id} `));
    for (const c of [writer, reader, onLeader]) c.close();
  });

  it('the library: sync(), and validate(…, { fresh: true }) pipelined behind a sync', async () => {
    const [f1, f2] = (await followers()) as [string, string];
    const a = await connect({ host: '127.0.0.1', port: cluster().port(f1) });
    const b = await connect({ host: '127.0.0.1', port: cluster().port(f2) });
    for (let i = 0; i < 20; i++) {
      const first = await a.preempt(`s-lib-${i}`);
      if (!first.ok) throw new Error('not granted');
      await a.release(`s-lib-${i}`);
      const second = await a.preempt(`s-lib-${i}`);
      if (!second.ok) throw new Error('not granted');
      // The first token was replaced: a fresh validate says so through the other node.
      expect(await b.validate(`s-lib-${i}`, first.token, { fresh: true })).toEqual({ valid: false, owner: a.id, token: second.token });
      await b.sync();
      expect(await b.check(`s-lib-${i}`)).toMatchObject({ held: true, owner: a.id, token: second.token });
    }
    await a.close();
    await b.close();
  });

  it('a bad sync gets an error naming the form, and nothing changes [LP-12]', async () => {
    const c = await LineClient.open(cluster().port((await followers())[0] as string));
    expect(await c.ask('sync now')).toBe('Error: unexpected argument "now"; usage: sync');
    expect(await c.ask('sync timeout=5')).toBe('Error: unknown option "timeout": sync takes no options; usage: sync');
    expect(await c.ask('SYNC')).toBe('Sync Success');
    c.close();
  });
});
