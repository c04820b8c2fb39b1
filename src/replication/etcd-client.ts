/**
 * The etcd client a node uses (the `etcd3` package), set up for a node's
 * needs:
 *
 * - Every call requires a leader, as etcd's Go client does for its
 *   watches (clientv3.WithRequireLeader: the `hasleader` metadata). A
 *   member that is cut off from the others, or has lost quorum, then
 *   fails calls at once ("no leader") and cancels its watch streams after
 *   a few election timeouts, instead of leaving them silent: the client
 *   tries another member, and a node's tail of the log moves to a member
 *   that has the log's new entries. Without it, a node whose watch sat on
 *   a partitioned member would wait for entries forever.
 * - gRPC keepalive pings every ETCD_KEEPALIVE_MS, dropped after
 *   ETCD_KEEPALIVE_TIMEOUT_MS without an answer. A member behind a
 *   partition sends no RST: without pings, a stream on it (a watch of the
 *   log, the campaign's wait for the leader's key to go) waits as long as
 *   TCP does, minutes, and the node never learns of a new leader. With
 *   them, the channel fails, its calls fail, and the client goes to
 *   another member. etcd refuses pings more often than its
 *   --grpc-keepalive-min-time (5 s by default): hence 5 s.
 * - No circuit breaker per member. The etcd3 client's default opens one
 *   after three failed calls in a row and then refuses every call to that
 *   member for 5 s: with one member, or two of three gone, no lease
 *   renewal could be sent for 5 s, longer than a node's jeopardy allows,
 *   and healthy nodes fail-stopped (seen under load in dlock-node.test.ts).
 *   dlock's calls have their own deadlines and retries (EtcdMembership's
 *   renewals, EtcdLog's append deadline); the client's retry over the
 *   other members stays.
 * - Replies up to 64 MiB: a watch reply can carry several batches when a
 *   node lags (reads page themselves, see EtcdLog.tail).
 *
 * - TLS and user auth as `access` says (etcd-access.ts).
 *
 * The etcd3 client has no option for the metadata, so its authenticator's
 * getMetadata is wrapped; if a new version of the client changes that
 * shape, this throws at start rather than silently losing the guard. With
 * user auth the authenticator's metadata carries the token (`token`): the
 * wrapper adds `hasleader` to a copy of it, and calls the authenticator
 * again for every call, so a token it dropped (etcd answered "invalid auth
 * token", e.g. after an etcd restart: the etcd3 client then authenticates
 * again and retries) is never reused from here.
 *
 * Threading: the thread that made it.
 */
import { noop } from 'cockatiel';
import { Etcd3 } from 'etcd3';
import { etcd3Options, type EtcdAccess } from './etcd-access.js';

/** gRPC metadata etcd reads as "require a leader" (etcd's rpctypes.MetadataRequireLeaderKey). */
const REQUIRE_LEADER = 'hasleader';

/** The part of @grpc/grpc-js's Metadata used here (the etcd3 client's own dependency). */
interface Metadata {
  clone: () => Metadata;
  set: (key: string, value: string) => void;
}

interface Authenticator {
  getMetadata: () => Promise<Metadata>;
}

/** See the file comment. */
export const ETCD_KEEPALIVE_MS = 5000;
export const ETCD_KEEPALIVE_TIMEOUT_MS = 1500;

export function nodeEtcdClient(access: EtcdAccess): Etcd3 {
  const client = new Etcd3({
    ...etcd3Options(access),
    faultHandling: { host: () => noop },
    grpcOptions: {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.keepalive_time_ms': ETCD_KEEPALIVE_MS,
      'grpc.keepalive_timeout_ms': ETCD_KEEPALIVE_TIMEOUT_MS,
      'grpc.keepalive_permit_without_calls': 1,
    },
  });
  const auth = (client as unknown as { pool?: { authenticator?: Authenticator } }).pool?.authenticator;
  if (auth === undefined || typeof auth.getMetadata !== 'function') {
    client.close();
    throw new Error('the etcd3 client changed: no pool.authenticator.getMetadata to add the require-leader metadata to');
  }
  const plain = auth.getMetadata.bind(auth);
  auth.getMetadata = async () => {
    const md = (await plain()).clone(); // the authenticator may hand out one shared object
    md.set(REQUIRE_LEADER, 'true');
    return md;
  };
  return client;
}
