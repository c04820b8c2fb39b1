/**
 * Counts in words that agree with them ("1 clients", "1 locks").
 */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
