/**
 * The in-process configuration manager (config.ts's contract): what
 * `dlock up` uses, where every node is a thread of one process, and the
 * in-memory twin that tests of the replication protocol run on without
 * etcd. Several managers may share one ConfigStore, as several nodes share
 * one etcd.
 *
 * Threading: the thread that made the store; watchers are called from a
 * microtask, never inside propose().
 */
import { checkProposal, sameConfig, type ConfigManager, type GroupConfig, type ProposeResult } from './config.js';

/** The one stored configuration that the managers of a process share. */
export class ConfigStore {
  value: GroupConfig | null = null;
  readonly watchers = new Set<(c: GroupConfig) => void>();
  /**
   * Called with a configuration that won, before it is stored; a throw
   * refuses the proposal (it rejects, as an unreachable manager's would).
   * `dlock up` keeps its token floor here: no version is stored before the
   * floor file covers its tokens (store/token-floor.ts) [LP-7].
   */
  beforeStore: ((c: GroupConfig) => void) | null = null;
}

export class MemoryConfig implements ConfigManager {
  private readonly stops = new Set<() => void>();

  constructor(private readonly store: ConfigStore = new ConfigStore()) {}

  current(): Promise<GroupConfig | null> {
    return Promise.resolve(this.store.value);
  }

  // async: a refused proposal is a rejected promise, as etcd's is.
  async propose(expected: GroupConfig | null, next: GroupConfig): Promise<ProposeResult> {
    checkProposal(expected, next);
    if (!sameConfig(this.store.value, expected)) return { won: false, current: this.store.value };
    const stored: GroupConfig = { version: next.version, primary: next.primary, secondaries: [...next.secondaries] };
    this.store.beforeStore?.(stored);
    this.store.value = stored;
    for (const w of this.store.watchers) queueMicrotask(() => w(stored));
    return { won: true, current: stored };
  }

  watch(onChange: (c: GroupConfig) => void, _onError: (err: Error) => void): () => void {
    // Versions rise: a microtask delivered late after a newer one is dropped.
    let last = 0;
    const w = (c: GroupConfig): void => {
      if (c.version <= last) return;
      last = c.version;
      onChange(c);
    };
    this.store.watchers.add(w);
    const now = this.store.value;
    if (now !== null) queueMicrotask(() => w(now));
    const stop = (): void => {
      this.store.watchers.delete(w);
      this.stops.delete(stop);
    };
    this.stops.add(stop);
    return stop;
  }

  close(): Promise<void> {
    for (const s of [...this.stops]) s();
    return Promise.resolve();
  }
}
