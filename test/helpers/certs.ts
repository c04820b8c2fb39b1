/**
 * Certificates for tests, made at test time with openssl: a CA, a server
 * certificate it signed (subjectAltName IP:127.0.0.1 and DNS:localhost),
 * and client certificates it signed. Files in a temp directory the caller
 * removes (remove()).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const hasOpenssl = spawnSync('sh', ['-c', 'command -v openssl']).status === 0;

export interface TestCa {
  dir: string;
  /** The CA's certificate (PEM file). */
  ca: string;
  /** A server certificate and key for 127.0.0.1 / localhost. */
  serverCert: string;
  serverKey: string;
  /** A client certificate (CN=dlock) and key. */
  clientCert: string;
  clientKey: string;
  remove(): void;
}

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.slice(0, 2).join(' ')} failed: ${r.stderr}`);
}

/** A CA (CN=`name`), a server certificate and a client certificate it signed. */
export function makeTestCa(name = 'dlock-test-ca'): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'dlock-certs-'));
  const f = (n: string): string => join(dir, n);
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '1', '-subj', `/CN=${name}`]);
  const sign = (base: string, cn: string, ext: string): void => {
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${base}.key`), '-out', f(`${base}.csr`), '-subj', `/CN=${cn}`]);
    writeFileSync(f(`${base}.ext`), ext);
    openssl(['x509', '-req', '-in', f(`${base}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f(`${base}.pem`), '-days', '1', '-extfile', f(`${base}.ext`)]);
  };
  // etcd's HTTP gateway dials etcd's own gRPC port presenting the server
  // certificate, so it must be good for client auth too.
  sign('server', 'etcd', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  sign('client', 'dlock', 'extendedKeyUsage=clientAuth\n');
  return {
    dir,
    ca: f('ca.pem'),
    serverCert: f('server.pem'),
    serverKey: f('server.key'),
    clientCert: f('client.pem'),
    clientKey: f('client.key'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
