/**
 * --http-allowed-host, on the commands that serve the admin API (`dlock up`,
 * `dlock node`): the host names requests may give in their Host header
 * besides IP literals and `localhost` (src/admin/admin-http.ts: a guard
 * against DNS rebinding). Repeatable, and comma-separated.
 *
 * Contract: allowedHostsOf throws the usage error (exit 2) for a value that
 * is not a DNS name, else gives the names.
 *
 * Threading: the main thread; synchronous.
 */
import { ALLOWED_HOST_NAME } from '../admin/admin-http.js';

export const HTTP_ALLOWED_HOST_OPTION = {
  type: 'string',
  array: true,
  describe: 'a name the admin API answers to in the Host header, besides IP addresses and localhost (against DNS rebinding); repeat it or comma-separate',
} as const;

export function allowedHostsOf(a: { 'http-allowed-host'?: ReadonlyArray<string | number> | undefined }): string[] {
  const names = (a['http-allowed-host'] ?? []).flatMap((v) => String(v).split(',')).map((v) => v.trim()).filter((v) => v !== '');
  for (const n of names) if (!ALLOWED_HOST_NAME.test(n)) throw new Error(`--http-allowed-host takes host names (letters, digits, - and ., no port), got ${JSON.stringify(n)}`);
  return names;
}
