/**
 * Loopback ports for servers that cannot be told to listen on port 0 and
 * report the port (redis-server, live-mutex): take one the kernel just
 * freed, and since another process may take it before the server binds it
 * (seen under CI load), try again on another.
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

/**
 * Start a server with `start(port)` on a free port; `start` resolves null
 * when that port turned out to be taken (say why in `taken`), and the next
 * free port is tried, `attempts` times in all.
 */
export async function onFreePort<T>(what: string, start: (port: number) => Promise<T | null>, attempts = 5): Promise<{ port: number; server: T }> {
  const tried: number[] = [];
  for (let i = 0; i < attempts; i++) {
    const port = await freePort();
    const server = await start(port);
    if (server !== null) return { port, server };
    tried.push(port);
  }
  throw new Error(`${what} could not listen on any of the free ports ${tried.join(', ')}`);
}
