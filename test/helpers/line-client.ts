/**
 * A raw TCP client for tests: what `nc` does, with waits on conditions.
 * Every wait has a deadline so a broken node fails the test instead of
 * hanging it.
 */
import { connect, type Socket } from 'node:net';

export class LineClient {
  private buf = '';
  private readonly lines: string[] = [];
  private waiter: (() => void) | null = null;
  ended = false;
  readonly closed: Promise<void>;
  greeting = '';
  id = 0;

  private constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) !== -1) {
        this.lines.push(this.buf.slice(0, nl));
        this.buf = this.buf.slice(nl + 1);
      }
      this.waiter?.();
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.ended = true;
        this.waiter?.();
        resolve();
      });
    });
    socket.on('error', () => {
      // 'close' follows; tests assert on what was received and on `ended`.
    });
  }

  /** `localAddress`: connect from this address (e.g. 127.0.0.2, another loopback source). */
  static async open(port: number, host = '127.0.0.1', localAddress?: string): Promise<LineClient> {
    const socket = connect({ port, host, ...(localAddress === undefined ? {} : { localAddress }) });
    const c = new LineClient(socket);
    c.greeting = await c.next();
    const m = /^client_id: (\d+) node: \S+(?: role: leader)?$/.exec(c.greeting);
    if (m === null) throw new Error(`bad greeting ${JSON.stringify(c.greeting)}`);
    c.id = Number(m[1]);
    return c;
  }

  /** Connect without waiting for a greeting (a connection the node may refuse). */
  static raw(port: number, host = '127.0.0.1', localAddress?: string): LineClient {
    return new LineClient(connect({ port, host, ...(localAddress === undefined ? {} : { localAddress }) }));
  }

  /** Send raw text (add your own line ends). */
  write(text: string | Buffer): void {
    this.socket.write(text);
  }

  /** The next line from the node. */
  async next(timeoutMs = 5000): Promise<string> {
    const deadline = performance.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (this.ended) throw new Error(`connection closed while waiting for a line (partial: ${JSON.stringify(this.buf)})`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`no line within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = null;
    }
    return this.lines.shift() as string;
  }

  /** Send one request line and return its reply. */
  async ask(line: string, timeoutMs?: number): Promise<string> {
    this.write(`${line}\n`);
    return this.next(timeoutMs);
  }

  /** Lines received and not yet taken. */
  get pending(): readonly string[] {
    return this.lines;
  }

  /** Resolve once the node closed the connection; fail after the deadline. */
  async waitClosed(timeoutMs = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.closed,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Poll `probe` until it returns true; for conditions no event announces. */
export async function eventually(probe: () => Promise<boolean> | boolean, what: string, timeoutMs = 5000, everyMs = 10): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Clients a test file opens, to close together after each test or at the end. */
export class ClientPool {
  private readonly clients: LineClient[] = [];

  async open(port: number): Promise<LineClient> {
    const c = await LineClient.open(port);
    this.clients.push(c);
    return c;
  }

  async openAt(port: number, host: string): Promise<LineClient> {
    const c = await LineClient.open(port, host);
    this.clients.push(c);
    return c;
  }

  closeAll(): void {
    for (const c of this.clients.splice(0)) c.close();
  }
}

/** A node switching between serving and refusing leaves its port unbound for a moment: that is "not yet". */
export async function firstLineIs(port: number, re: RegExp): Promise<boolean> {
  try {
    return re.test((await firstLine(port)).line);
  } catch (err) {
    // A node switching between serving and refusing may have no listener for a moment, or reset a connection it took as it stops.
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED' || code === 'ECONNRESET') return false;
    throw err;
  }
}

/** The first line a fresh connection gets (a greeting, or a refusal), and whether the node then closed it. */
export function firstLine(port: number): Promise<{ line: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let buf = '';
    let line: string | null = null;
    const timer = setTimeout(() => {
      s.destroy();
      if (line === null) reject(new Error(`no line from port ${port} within 5 s`));
      else resolve({ line, closed: false });
    }, 1000);
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (line === null && nl >= 0) line = buf.slice(0, nl);
    });
    s.on('error', reject);
    s.on('close', () => {
      clearTimeout(timer);
      if (line === null) reject(new Error(`port ${port} closed without a line`));
      else resolve({ line, closed: true });
    });
  });
}
