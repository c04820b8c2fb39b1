/**
 * Which replication engine a cluster on etcd runs, kept at
 * `/dlock/<cluster>/engine`: `etcd` (the log in etcd) or `group` (the
 * group protocol, etcd keeping only the configuration). Two engines on one
 * cluster would keep two lock tables, each with its own sequencer, and a
 * lock could be held twice; so every node checks the mark before it
 * registers, and the first node of a new cluster sets it, in a txn that
 * only creates it.
 *
 * A cluster made by a build from before the mark is known by what its
 * engine keeps under the prefix: `log/` or `snap/latest` (the etcd
 * engine), `config` (the group protocol). Such a cluster is marked as it is.
 *
 * The mark is read from etcd and checked before use, like every value
 * there: anything but one of the two names is an error, not a guess.
 *
 * Threading: the calling thread.
 */
import type { Namespace } from 'etcd3';

export type EngineName = 'etcd' | 'group';

const KEY = 'engine';
const ENGINES: readonly EngineName[] = ['etcd', 'group'];

/** The cluster runs another engine than this node was started with, or its mark is not one dlock writes. */
export class EngineMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EngineMismatchError';
  }
}

const isEngine = (v: string): v is EngineName => (ENGINES as readonly string[]).includes(v);

/** What the cluster's keys say it runs, for a cluster made before the mark (null: nothing of either). */
async function engineOfKeys(ns: Namespace): Promise<EngineName | null> {
  if ((await ns.getAll().prefix('log/').limit(1).keys()).length > 0) return 'etcd';
  if ((await ns.get('snap/latest').string()) !== null) return 'etcd';
  if ((await ns.get('config').string()) !== null) return 'group';
  return null;
}

/**
 * Resolve once the cluster under `ns` is marked as running `engine`
 * (marking it when it is new); throw EngineMismatchError when it runs the
 * other one. `cluster` names it in the error.
 */
export async function claimEngine(ns: Namespace, cluster: string, engine: EngineName): Promise<void> {
  const mismatch = (found: string, how: string): EngineMismatchError =>
    new EngineMismatchError(
      isEngine(found)
        ? `cluster ${cluster} runs --replication ${found} (${how}), not ${engine}: start this node with --replication ${found}, or use another --cluster. Two engines on one cluster would keep two lock tables`
        : `cluster ${cluster}'s engine mark in etcd reads ${JSON.stringify(found.slice(0, 40))}, which is neither etcd nor group: it was not written by dlock`,
    );
  const marked = await ns.get(KEY).string();
  if (marked !== null) {
    if (marked !== engine) throw mismatch(marked, 'marked in etcd');
    return;
  }
  const kept = await engineOfKeys(ns);
  if (kept !== null && kept !== engine) throw mismatch(kept, 'from the keys it keeps in etcd');
  const r = await ns.if(KEY, 'Create', '==', 0).then(ns.put(KEY).value(engine)).else(ns.get(KEY)).commit();
  if (r.succeeded) return;
  // Another node marked it meanwhile.
  const now = r.responses[0]?.response_range?.kvs?.[0]?.value.toString() ?? '';
  if (now !== engine) throw mismatch(now, 'marked in etcd');
}
