/**
 * The dlock package: the client library, and the cluster for embedding.
 */
export {
  connect,
  DlockClient,
  KeptLease,
  ServerError,
  ConnectionClosedError,
  ProtocolError,
  LockNotAcquiredError,
  LockLostError,
  AuthError,
  DEFAULT_LEASE_TTL_MS,
  type ConnectOptions,
  type NodeAddress,
  type KeepLeaseOptions,
  type HoldOptions,
  type HoldKind,
  type LockNames,
  type Leader,
  type TlsClientOptions,
  type PreemptResult,
  type AcquireResult,
  type ReleaseResult,
  type RenewResult,
  type CheckResult,
  type ValidateResult,
} from './client/client.js';
export { Cluster, type ClusterOptions, type NodeInfo } from './host/threads/cluster.js';
