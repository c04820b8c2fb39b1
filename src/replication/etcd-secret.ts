/**
 * The cluster secret kept in etcd, for clusters started without
 * `--cluster-secret-file`.
 *
 * Key, under `/dlock/<cluster>/`:
 *   secret    the secret nodes prove to each other on their links
 *             (transport/link-auth.ts): 32 random bytes, base64url,
 *             made by the first node to ask (a txn: one value, ever)
 *
 * Keeping it there gives every cluster node identities without any
 * configuration, and exposes the secret to nothing new: whoever can read
 * the cluster's prefix in etcd can also write it (the log, the election),
 * which is control of the cluster whatever the secret. So etcd access must
 * be locked down either way (TLS, users, a role limited to the prefix: the
 * README's "Security"). With `--cluster-secret-file`, the secret never
 * enters etcd.
 *
 * Threading: the caller's.
 */
import { randomBytes } from 'node:crypto';
import type { Namespace } from 'etcd3';
import { MIN_CLUSTER_SECRET } from '../transport/link-auth.js';

/** The secret in etcd is not one (a value written by hand, or damaged). */
export class ClusterSecretError extends Error {
  override readonly name = 'ClusterSecretError';
  readonly code = 'ERR_CLUSTER_SECRET';
}

/** The cluster's secret from etcd, made and stored now if the cluster has none yet. */
export async function clusterSecretFromEtcd(ns: Namespace): Promise<string> {
  const made = randomBytes(32).toString('base64url');
  const r = await ns.if('secret', 'Create', '==', 0).then(ns.put('secret').value(made)).else(ns.get('secret')).commit();
  if (r.succeeded) return made;
  const stored = r.responses[0]?.response_range?.kvs?.[0]?.value.toString();
  if (stored === undefined || stored.length < MIN_CLUSTER_SECRET || /\s/.test(stored)) {
    throw new ClusterSecretError(`the cluster secret in etcd is not usable (${stored === undefined ? 'missing' : `${stored.length} characters`}); delete its key, or start every node with --cluster-secret-file`);
  }
  return stored;
}
