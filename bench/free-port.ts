/**
 * A loopback port the kernel says is free now, for servers that cannot be
 * told to listen on port 0 and report the port (redis-server, live-mutex).
 * Another process may take it before the server binds it: callers retry.
 */
import { type AddressInfo, createServer } from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
