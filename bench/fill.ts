/**
 * Fill a node with `n` locks over one TCP connection, pipelined (at most 512
 * requests unanswered), and keep the connection open: session locks live as
 * long as it does. Used by the memory and fault benches.
 */
import { connect, type Socket } from 'node:net';

export function fillLocks(port: number, n: number, opts: { prefix?: string; ttlMs?: number } = {}): Promise<Socket> {
  const prefix = opts.prefix ?? 'm';
  const ttl = opts.ttlMs === undefined ? '' : ` ttl=${opts.ttlMs}`;
  return new Promise<Socket>((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' });
    let sent = 0;
    let got = -1; // the greeting
    let buf = '';
    let failed: string | null = null;
    const push = (): void => {
      let batch = '';
      while (sent < n && sent - got < 512) batch += `preempt ${prefix}${sent++}${ttl}\n`;
      if (batch !== '') s.write(batch);
    };
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (got >= 0 && failed === null && !line.startsWith('PreemptLock Success')) failed = line;
        got++;
      }
      if (failed !== null) {
        s.destroy();
        reject(new Error(`filling ${n} locks: "${failed}"`));
      } else if (got >= n) resolve(s);
      else push();
    });
    s.on('error', reject);
  });
}
