/**
 * The in-process manager (memory.ts) reached from a node's worker thread:
 * `serveConfig` answers on the main thread, where the one ConfigStore of
 * `dlock up` lives; `PortConfig` is the worker's ConfigManager (config.ts's
 * contract) over a MessagePort. The compare-and-swap itself runs on the
 * main thread, one message at a time, so of two proposals from one
 * configuration exactly one wins, as on etcd.
 *
 * Each call has a deadline (CALL_MS): a main thread that does not answer
 * rejects the call with ConfigUnreachableError, as an etcd that does not
 * answer would (the group host settles the proposal as unreachable and
 * proposes again later). Every configuration that crosses the port is
 * checked (configProblem) before it is used: a message that is not one
 * is an error, never a configuration.
 *
 * Threading: serveConfig on the main thread; a PortConfig on the worker
 * thread that made it.
 */
import type { MessagePort } from 'node:worker_threads';
import { ConfigError, configProblem, type ConfigManager, type GroupConfig, type ProposeResult } from './config.js';

/** How long a call waits for the main thread, ms. */
export const CALL_MS = 5000;

/** The main thread did not answer within CALL_MS, or the port closed. */
export class ConfigUnreachableError extends Error {
  override readonly name = 'ConfigUnreachableError';
}

type Request = { id: number; op: 'current' } | { id: number; op: 'propose'; expected: GroupConfig | null; next: GroupConfig } | { id: number; op: 'watch' };
type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string; range: boolean } | { op: 'config'; value: unknown } | { op: 'watch-error'; error: string };

/** Answer `port`'s calls with `manager` until the port closes; returns a function that stops it. */
export function serveConfig(port: MessagePort, manager: ConfigManager): () => void {
  let unwatch: (() => void) | null = null;
  const post = (r: Reply): void => port.postMessage(r);
  port.on('message', (m: Request) => {
    const answer = (p: Promise<unknown>): void => {
      p.then(
        (value) => post({ id: m.id, ok: true, value }),
        (err: unknown) => post({ id: m.id, ok: false, error: (err as Error).message, range: err instanceof RangeError }),
      );
    };
    switch (m.op) {
      case 'current':
        return answer(manager.current());
      case 'propose':
        return answer(manager.propose(m.expected, m.next).then((r) => r));
      case 'watch':
        unwatch?.();
        unwatch = manager.watch(
          (c) => post({ op: 'config', value: c }),
          (err) => post({ op: 'watch-error', error: err.message }),
        );
        return answer(Promise.resolve(null));
    }
  });
  const stop = (): void => {
    unwatch?.();
    unwatch = null;
    port.close();
  };
  port.on('close', stop);
  return stop;
}

export class PortConfig implements ConfigManager {
  private next = 1;
  private readonly calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private watcher: { onChange: (c: GroupConfig) => void; onError: (err: Error) => void } | null = null;
  private closed = false;

  constructor(private readonly port: MessagePort) {
    port.on('message', (r: Reply) => this.received(r));
    port.on('close', () => this.fail(new ConfigUnreachableError('the configuration port closed')));
  }

  private received(r: Reply): void {
    if (typeof r !== 'object' || r === null) return this.watcher?.onError(new ConfigError('a configuration message that is not an object'));
    if ('op' in r) {
      if (r.op === 'watch-error') return this.watcher?.onError(new ConfigError(String(r.error)));
      const c = checked(r.value);
      if (c instanceof Error) this.watcher?.onError(c);
      else this.watcher?.onChange(c);
      return;
    }
    const call = this.calls.get(r.id);
    if (call === undefined) return; // answered after its deadline
    this.calls.delete(r.id);
    clearTimeout(call.timer);
    if (r.ok) call.resolve(r.value);
    else call.reject(r.range ? new RangeError(r.error) : new ConfigUnreachableError(r.error));
  }

  private call(req: Omit<Request, 'id'> & { op: Request['op'] }): Promise<unknown> {
    if (this.closed) return Promise.reject(new ConfigUnreachableError('the configuration manager is closed'));
    const id = this.next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.calls.delete(id);
        reject(new ConfigUnreachableError(`the configuration manager did not answer ${req.op} within ${CALL_MS} ms`));
      }, CALL_MS);
      timer.unref();
      this.calls.set(id, { resolve, reject, timer });
      this.port.postMessage({ ...req, id });
    });
  }

  async current(): Promise<GroupConfig | null> {
    const v = await this.call({ op: 'current' });
    if (v === null) return null;
    const c = checked(v);
    if (c instanceof Error) throw c;
    return c;
  }

  async propose(expected: GroupConfig | null, next: GroupConfig): Promise<ProposeResult> {
    const v = (await this.call({ op: 'propose', expected, next } as Omit<Request, 'id'>)) as { won?: unknown; current?: unknown } | null;
    if (typeof v !== 'object' || v === null || typeof v.won !== 'boolean') throw new ConfigError('a proposal answered with something that is not a result');
    if (v.current === null) return { won: v.won, current: null };
    const c = checked(v.current);
    if (c instanceof Error) throw c;
    return { won: v.won, current: c };
  }

  watch(onChange: (c: GroupConfig) => void, onError: (err: Error) => void): () => void {
    this.watcher = { onChange, onError };
    this.call({ op: 'watch' }).catch((err: unknown) => this.watcher?.onError(err as Error));
    return () => {
      this.watcher = null;
    };
  }

  private fail(err: Error): void {
    for (const c of this.calls.values()) {
      clearTimeout(c.timer);
      c.reject(err);
    }
    this.calls.clear();
  }

  close(): Promise<void> {
    this.closed = true;
    this.watcher = null;
    this.fail(new ConfigUnreachableError('the configuration manager is closed'));
    this.port.close();
    return Promise.resolve();
  }
}

/** A configuration from the port, checked, or the error that says why it is not one. */
function checked(v: unknown): GroupConfig | ConfigError {
  const why = configProblem(v);
  if (why !== null) return new ConfigError(`a configuration from the main thread is not one: ${why}`);
  const c = v as GroupConfig;
  return { version: c.version, primary: c.primary, secondaries: [...c.secondaries] };
}
