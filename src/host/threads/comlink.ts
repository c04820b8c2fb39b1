/**
 * comlink for Node worker_threads, in one place.
 *
 * comlink 4 ships ESM builds without an `exports` map, so they are imported
 * by path; its Endpoint type is written against DOM event types, which a
 * Node build does not have, hence the narrow casts below.
 */
import * as Comlink from 'comlink/dist/esm/comlink.mjs';
import nodeAdapter from 'comlink/dist/esm/node-adapter.mjs';
import type { MessagePort, Worker } from 'node:worker_threads';

export type Remote<T> = Comlink.Remote<T>;

export function nodeEndpoint(port: MessagePort | Worker): Comlink.Endpoint {
  return nodeAdapter(port);
}

export const expose: (api: object, endpoint: Comlink.Endpoint) => void = Comlink.expose;
export const wrap: <T>(endpoint: Comlink.Endpoint) => Comlink.Remote<T> = Comlink.wrap;
export const transfer: <T>(value: T, transfers: unknown[]) => T = Comlink.transfer as never;
export const releaseProxy: symbol = Comlink.releaseProxy;
