/**
 * The node-link handshake's proofs: who may open a link, and as what.
 *
 * A link's accepting side sends a fresh nonce (`challenge`); the connecting
 * side answers with its role, a nonce of its own and an HMAC-SHA256 of both
 * nonces under its role's secret (`auth`); the accepting side checks it in
 * constant time and answers with its own proof under the same secret
 * (`welcome`), which the connecting side checks before it sends anything
 * else. So:
 *  - the secret never crosses the link, in clear or otherwise: a listener
 *    that is not a node (say, an address an attacker wrote into etcd's
 *    election value) learns nothing it can use, and cannot pass for a node;
 *  - a proof is good for one pair of nonces only: recorded, it cannot be
 *    replayed on another link;
 *  - each side proves the same secret, and the role is inside the proof,
 *    so an observer's proof cannot be turned into a node's.
 *
 * Secrets by role (LinkKeys): `node`, the cluster secret, which only nodes
 * hold (never a client's auth token: the node refuses to start if they are
 * equal); `observer`, the cluster secret or the admin token (an operator's
 * `dlock tui --etcd`). Over TLS, both sides also present certificates signed
 * by the cluster's CA (mutual TLS, transport-tcp.ts): the handshake runs
 * inside it.
 *
 * Threading: any; pure functions of their arguments but for the nonce's
 * randomness.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { LinkRole } from '../codec/frame.js';

/** The label in every proof: a proof for another purpose or version never passes. */
const LABEL = 'dlock-link-1';

/** A cluster secret, at least this long (a random one: `openssl rand -base64 32` gives 44). */
export const MIN_CLUSTER_SECRET = 16;

/** A fresh nonce: 24 random bytes as 32 base64url characters. */
export const newNonce = (): string => randomBytes(24).toString('base64url');

/**
 * The proof of `side` for a link between the accepting side's nonce
 * `server` and the connecting side's `client`, as `role`, under `secret`.
 */
export function linkProof(secret: string, side: 'connector' | 'acceptor', role: LinkRole, server: string, client: string): string {
  return createHmac('sha256', secret).update(`${LABEL}\n${side}\n${role}\n${server}\n${client}`).digest('base64url');
}

/** Whether `proof` is that proof under one of `secrets` (each compared in constant time; all are tried). */
export function proofMatches(secrets: readonly string[], proof: string, side: 'connector' | 'acceptor', role: LinkRole, server: string, client: string): boolean {
  const got = Buffer.from(proof, 'base64url');
  let ok = false;
  for (const secret of secrets) {
    const want = Buffer.from(linkProof(secret, side, role, server, client), 'base64url');
    if (got.length === want.length && timingSafeEqual(got, want)) ok = true;
  }
  return ok;
}

/** The secrets the accepting side takes for each role. */
export interface LinkKeys {
  /** The cluster secret: nodes prove it. */
  node: string;
  /** Observers prove one of these: the cluster secret, and the admin token if there is one. */
  observer: readonly string[];
}

/** A link secret that cannot be used (too short, a client's token), with the reason. */
export class LinkSecretError extends Error {
  override readonly name = 'LinkSecretError';
  readonly code = 'ERR_LINK_SECRET';
}

/**
 * The cluster secret's rules: one word of at least MIN_CLUSTER_SECRET
 * characters, and not a token clients hold (the client auth token): nodes
 * and clients never share a secret.
 */
export function checkClusterSecret(secret: string, clientToken: string | null): void {
  if (secret.length < MIN_CLUSTER_SECRET || /\s/.test(secret)) throw new LinkSecretError(`the cluster secret must be one word of at least ${MIN_CLUSTER_SECRET} characters`);
  if (clientToken !== null && clientToken === secret) throw new LinkSecretError('the cluster secret is the clients\' auth token: nodes and clients must not share a secret; give the nodes their own (--cluster-secret-file)');
}
