/**
 * The configuration manager on etcd (config.ts's contract): what
 * `dlock node` uses across hosts. The configuration is one key,
 * `/dlock/<cluster>/config`, holding the canonical JSON of a GroupConfig,
 * changed only by a txn that compares the stored bytes with the expected
 * configuration's (equal configurations have equal bytes: encodeConfig).
 * etcd's Raft makes the compare-and-swap linearizable, so of two
 * proposals from one configuration exactly one wins.
 *
 * Every value read is parsed (decodeConfig): etcd holds what anyone with
 * write access to the prefix put there.
 *
 * Threading: the calling thread. The etcd3 client is the caller's; close()
 * stops this manager's watches, not the client.
 */
import type { Etcd3, Namespace, Watcher } from 'etcd3';
import { checkProposal, ConfigError, decodeConfig, encodeConfig, sameConfig, type ConfigManager, type GroupConfig, type ProposeResult } from './config.js';

const KEY = 'config';

export class EtcdConfig implements ConfigManager {
  private readonly ns: Namespace;
  private readonly where: string;
  private readonly watchers = new Set<Watcher>();
  private closed = false;

  constructor(client: Etcd3, cluster: string) {
    this.ns = client.namespace(`/dlock/${cluster}/`);
    this.where = `/dlock/${cluster}/${KEY}`;
  }

  async current(): Promise<GroupConfig | null> {
    const text = await this.ns.get(KEY).string();
    return text === null ? null : decodeConfig(text, this.where);
  }

  async propose(expected: GroupConfig | null, next: GroupConfig): Promise<ProposeResult> {
    checkProposal(expected, next);
    const cmp = expected === null ? this.ns.if(KEY, 'Create', '==', 0) : this.ns.if(KEY, 'Value', '==', encodeConfig(expected));
    const r = await cmp.then(this.ns.put(KEY).value(encodeConfig(next))).else(this.ns.get(KEY)).commit();
    if (r.succeeded) return { won: true, current: { version: next.version, primary: next.primary, secondaries: [...next.secondaries] } };
    const kv = r.responses[0]?.response_range?.kvs?.[0];
    const current = kv === undefined ? null : decodeConfig(kv.value.toString(), this.where);
    // Equal but not byte for byte: written by someone else in another form. A retry would never win.
    if (current !== null && sameConfig(current, expected)) throw new ConfigError(`the configuration at ${this.where} is not in dlock's canonical form; rewrite it with dlock`);
    return { won: false, current };
  }

  watch(onChange: (c: GroupConfig) => void, onError: (err: Error) => void): () => void {
    let stopped = false;
    let watcher: Watcher | null = null;
    let last = 0;
    const deliver = (text: string): void => {
      let c: GroupConfig;
      try {
        c = decodeConfig(text, this.where);
      } catch (err) {
        if (err instanceof ConfigError) return onError(err);
        throw err;
      }
      if (c.version <= last) return; // versions rise; an older one is stale
      last = c.version;
      onChange(c);
    };
    const start = async (): Promise<void> => {
      // Read, then watch from the next revision: nothing stored between the two is missed.
      const r = await this.ns.get(KEY).exec();
      const kv = r.kvs[0];
      if (kv !== undefined) deliver(kv.value.toString());
      if (stopped || this.closed) return;
      const w = await this.ns
        .watch()
        .key(KEY)
        .startRevision(String(BigInt(r.header.revision) + 1n))
        .create();
      if (stopped || this.closed) {
        await w.cancel();
        return;
      }
      watcher = w;
      this.watchers.add(w);
      w.on('put', (kv) => deliver(kv.value.toString()));
      w.on('delete', () => onError(new ConfigError(`the configuration at ${this.where} was deleted`)));
      w.on('error', (err) => onError(err));
    };
    start().catch((err: unknown) => onError(err instanceof Error ? err : new Error(String(err))));
    return () => {
      stopped = true;
      if (watcher !== null) {
        this.watchers.delete(watcher);
        watcher.cancel().catch((err: unknown) => onError(err instanceof Error ? err : new Error(String(err))));
      }
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.watchers];
    this.watchers.clear();
    await Promise.all(all.map((w) => w.cancel()));
  }
}
