/**
 * Counts in words that agree with them ("1 clients", "1 locks").
 */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

const pad2 = (n: number): string => String(n).padStart(2, '0');

/** `2026-11-24 10:50:53.123` in local time, as the original client printed. */
export function timestamp(ms: number, withMs = true): string {
  const d = new Date(ms);
  const base = `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  return withMs ? `${base}.${String(d.getMilliseconds()).padStart(3, '0')}` : base;
}
