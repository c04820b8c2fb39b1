/**
 * Values read from etcd are checked before use, as every byte from a
 * socket is: etcd holds what anyone with write access to the cluster's
 * prefix put there. The parsers of each kind of value (election values,
 * live keys, snapshot metas) start here.
 *
 * Threading: any; pure.
 */

/** `text` as a JSON object's fields, or null when it is not JSON or not an object (an array, a number, null). */
export function jsonObject(text: string): Record<string, unknown> | null {
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch (err) {
    if (err instanceof SyntaxError) return null; // not JSON: not a value of ours
    throw err;
  }
  return typeof x === 'object' && x !== null && !Array.isArray(x) ? (x as Record<string, unknown>) : null;
}
