/**
 * The network-namespace helper the partition tests stand on
 * (test/helpers/netns.ts): a subnet that is already routed here, as one a
 * killed run left behind, is refused with the link to remove, instead of
 * hosts that cannot reach each other.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { canMakeHosts, Hosts } from '../helpers/netns.js';

describe.skipIf(!canMakeHosts)('Hosts', () => {
  it('refuses a subnet already routed here, naming the link that holds it', () => {
    const tag = `dlt${process.pid % 1000}`;
    const subnet = `10.239.${process.pid % 200}`;
    const stale = `${tag}st`;
    const ip = (...args: string[]): void => {
      const r = spawnSync('ip', args, { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
    };
    ip('link', 'add', stale, 'type', 'bridge');
    try {
      ip('addr', 'add', `${subnet}.1/24`, 'dev', stale);
      ip('link', 'set', stale, 'up');
      const hosts = new Hosts(tag, subnet);
      try {
        expect(() => hosts.make(1)).toThrow(new RegExp(`${subnet.replaceAll('.', '\\.')}\\.0/24 is already routed to ${stale}`));
      } finally {
        hosts.remove();
      }
      // Free again once the stale link is gone.
      ip('link', 'del', stale);
      const again = new Hosts(tag, subnet);
      try {
        expect(again.make(1).hosts).toHaveLength(1);
      } finally {
        again.remove();
      }
    } finally {
      spawnSync('ip', ['link', 'del', stale]);
    }
  });
});
