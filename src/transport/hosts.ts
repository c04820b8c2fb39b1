/**
 * What a host address says about who can reach it. Pure.
 */

/** Addresses only this machine can reach: binding them needs no token, and advertising them to other hosts is useless. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
