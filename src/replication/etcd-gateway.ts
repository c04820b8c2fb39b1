/**
 * Calls to etcd's HTTP gateway (the JSON API on each member's client URL,
 * /v3/...), over http or over https with `access`'s CA and client
 * certificate: the global fetch cannot take a CA or a client certificate.
 *
 * Contract of gatewayPost: one POST to one member; resolves with the
 * status and the parsed JSON body (null when the body is not JSON), or
 * rejects (unreachable, TLS refused, or no full answer within
 * `deadlineMs`: the request is then aborted and its socket destroyed).
 * Never retries. Connections are kept alive and reused, one pool per
 * EtcdAccess object; idle ones do not keep the process alive.
 *
 * Threading: the calling thread (a pool is per thread: an EtcdAccess cloned
 * into a worker is another object).
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { EtcdAccess } from './etcd-access.js';

/** A gateway answer larger than this is not one dlock asked for: refused rather than buffered. */
const MAX_REPLY_BYTES = 1024 * 1024;

/** A gateway answer that could not be read (too large, cut short). */
export class GatewayReplyError extends Error {
  override readonly name = 'GatewayReplyError';
  readonly code = 'ERR_ETCD_GATEWAY_REPLY';
}

export interface GatewayReply {
  status: number;
  body: unknown;
  /** The body as text (an error page is not JSON: `body` is then null). */
  text: string;
}

const agents = new WeakMap<EtcdAccess, HttpAgent>();

function agentFor(access: EtcdAccess, https: boolean): HttpAgent {
  let agent = agents.get(access);
  if (agent === undefined) {
    const tls = access.tls;
    agent = https
      ? new HttpsAgent({ keepAlive: true, ...(tls?.ca == null ? {} : { ca: tls.ca }), ...(tls?.cert == null ? {} : { cert: tls.cert }), ...(tls?.key == null ? {} : { key: tls.key }) })
      : new HttpAgent({ keepAlive: true });
    agents.set(access, agent);
  }
  return agent;
}

/** POST `body` as JSON to `path` on the member at `endpoint` (one of access.endpoints). */
export function gatewayPost(access: EtcdAccess, endpoint: string, path: string, body: unknown, deadlineMs: number, headers: Record<string, string> = {}): Promise<GatewayReply> {
  const url = new URL(`${endpoint.replace(/\/+$/, '')}${path}`);
  const https = url.protocol === 'https:';
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = (https ? httpsRequest : httpRequest)(
      url,
      {
        method: 'POST',
        agent: agentFor(access, https),
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)), ...headers },
        signal: AbortSignal.timeout(Math.max(1, Math.ceil(deadlineMs))),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (d: Buffer) => {
          size += d.length;
          if (size > MAX_REPLY_BYTES) {
            req.destroy(new GatewayReplyError(`${url.origin}${path}: an answer over ${MAX_REPLY_BYTES} bytes`));
            return;
          }
          chunks.push(d);
        });
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = null;
          try {
            parsed = JSON.parse(text);
          } catch (err) {
            // Not JSON (a proxy's error page, an empty body): the status says what happened; the caller reads it.
            void err;
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, text: text.slice(0, 500) });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
