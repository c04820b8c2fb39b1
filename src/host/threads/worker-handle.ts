/**
 * A worker thread and its comlink remote, supervised in one place.
 *
 * Every control call goes through `call()`, which races the comlink call
 * against a timeout and against the worker's exit, so no caller waits
 * forever on a dead or wedged worker. The worker's `error` and `exit`
 * events are handled here only: both fail every call in flight and notify
 * the owner once (piscina does the same for its task queue).
 *
 * Threading: the main thread. Ordering: calls are independent; comlink
 * delivers them to the worker in call order.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { releaseProxy, wrap, nodeEndpoint, type Remote } from './comlink.js';

export class WorkerCallError extends Error {
  override readonly name = 'WorkerCallError';
  constructor(
    readonly code: 'ERR_WORKER_TIMEOUT' | 'ERR_WORKER_EXITED',
    message: string,
  ) {
    super(message);
  }
}

export interface WorkerExit {
  code: number;
  /** The uncaught error that ended it, if any. */
  error: Error | null;
}

export class WorkerHandle<T> {
  readonly worker: Worker;
  readonly remote: Remote<T>;
  private readonly inflight = new Set<(err: Error) => void>();
  private error: Error | null = null;
  exit: WorkerExit | null = null;
  /** terminate() has begun: the remote is released, the exit event may not have come yet. */
  private ending = false;
  /** Resolves when the thread has exited, for whatever reason. */
  readonly exited: Promise<WorkerExit>;

  constructor(
    readonly name: string,
    file: URL,
    options: WorkerOptions,
    onExit: (exit: WorkerExit) => void,
  ) {
    this.worker = new Worker(file, { ...options, name });
    this.remote = wrap<T>(nodeEndpoint(this.worker));
    this.exited = new Promise((resolve) => {
      this.worker.on('error', (err) => {
        this.error = err;
        this.failAll(new WorkerCallError('ERR_WORKER_EXITED', `${name} failed: ${err.message}`));
      });
      this.worker.on('exit', (code) => {
        this.exit = { code, error: this.error };
        this.failAll(new WorkerCallError('ERR_WORKER_EXITED', `${name} exited with code ${code}`));
        onExit(this.exit);
        resolve(this.exit);
      });
    });
  }

  private failAll(err: Error): void {
    for (const fail of this.inflight) fail(err);
    this.inflight.clear();
  }

  /** Running and not being ended: control calls can reach it. */
  get up(): boolean {
    return this.exit === null && !this.ending;
  }

  /** Make a control call with a deadline; rejects with WorkerCallError on timeout or exit. */
  call<R>(what: string, fn: (remote: Remote<T>) => Promise<R>, timeoutMs = 5000): Promise<R> {
    if (this.exit !== null) return Promise.reject(new WorkerCallError('ERR_WORKER_EXITED', `${this.name} has exited; cannot ${what}`));
    if (this.ending) return Promise.reject(new WorkerCallError('ERR_WORKER_EXITED', `${this.name} is being ended; cannot ${what}`));
    return new Promise<R>((resolve, reject) => {
      const fail = (err: Error): void => {
        clearTimeout(timer);
        this.inflight.delete(fail);
        reject(err);
      };
      const timer = setTimeout(() => fail(new WorkerCallError('ERR_WORKER_TIMEOUT', `${this.name}: ${what} timed out after ${timeoutMs} ms`)), timeoutMs);
      this.inflight.add(fail);
      fn(this.remote).then(
        (value) => {
          clearTimeout(timer);
          if (!this.inflight.delete(fail)) return; // already failed by timeout or exit
          resolve(value);
        },
        (err: unknown) => fail(err instanceof Error ? err : new Error(String(err))),
      );
    });
  }

  /** End the thread now. */
  async terminate(): Promise<WorkerExit> {
    if (this.exit === null && !this.ending) {
      this.ending = true;
      (this.remote as unknown as Record<symbol, () => void>)[releaseProxy]?.();
      await this.worker.terminate();
    }
    return this.exited;
  }
}
