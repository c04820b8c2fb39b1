/**
 * StringMap (src/core/string-map.ts) against the Map it stands in for:
 * random sets, lazy sets, deletes and reads on a few colliding-prone keys,
 * with enough deletes to force compaction, compared after every step in
 * content and in insertion order.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StringMap, StringSet, type LazyRows } from '../src/core/string-map.js';

type Op = { op: 'set' | 'lazy'; key: string; value: number } | { op: 'delete' | 'get'; key: string };

const keyArb = fc.oneof(fc.constantFrom('', 'a', 'b', 'ab', 'ba', 'é', '\u{1F512}'), fc.integer({ min: 0, max: 3000 }).map((i) => `k${i}`));
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('set' as const), key: keyArb, value: fc.integer() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('lazy' as const), key: keyArb, value: fc.integer() }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('delete' as const), key: keyArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('get' as const), key: keyArb }) },
);

/** A lazy source that builds row r as r * 2 and counts what it built. */
class Doubles implements LazyRows<number> {
  built = 0;
  build(row: number): number {
    this.built++;
    return row * 2;
  }
}

describe('StringMap', () => {
  it('behaves as a Map (and StringSet as a Set): same values, same size, same insertion order, after every step', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 400 }), fc.integer(), (ops, seed) => {
        const m = new StringMap<number>(seed);
        const model = new Map<string, number>();
        const lazy = new Doubles();
        const set = new StringSet(); // the valueless map, against a Set
        const modelSet = new Set<string>();
        for (const o of ops) {
          if (o.op === 'set' || o.op === 'lazy') {
            set.add(o.key);
            modelSet.add(o.key);
          } else if (o.op === 'delete') {
            expect(set.delete(o.key)).toBe(modelSet.delete(o.key));
          } else {
            expect(set.has(o.key)).toBe(modelSet.has(o.key));
          }
          expect(set.size).toBe(modelSet.size);
          if (o.op === 'set') {
            m.set(o.key, o.value);
            model.set(o.key, o.value);
          } else if (o.op === 'lazy') {
            const row = Math.abs(o.value % 1000);
            m.setLazy(o.key, lazy, row);
            model.set(o.key, row * 2);
          } else if (o.op === 'delete') {
            expect(m.delete(o.key)).toBe(model.delete(o.key));
          } else {
            expect(m.get(o.key)).toBe(model.get(o.key));
            expect(m.has(o.key)).toBe(model.has(o.key));
          }
          expect(m.size).toBe(model.size);
        }
        expect([...m]).toEqual([...model]);
        expect([...set]).toEqual([...modelSet]);
        expect([...m.keys()]).toEqual([...model.keys()]);
        const each: Array<[string, number]> = [];
        m.forEach((v, k) => each.push([k, v]));
        expect(each).toEqual([...model]);
      }),
      { numRuns: 200 },
    );
  });

  it('keeps order and content through growth, mass deletes and compaction', () => {
    const m = new StringMap<number>();
    const model = new Map<string, number>();
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 20_000; i++) {
        m.set(`r${round}-${i}`, i);
        model.set(`r${round}-${i}`, i);
      }
      // Delete 9 of 10: holes outnumber live entries, so the next inserts compact.
      for (let i = 0; i < 20_000; i++) {
        if (i % 10 === 0) continue;
        expect(m.delete(`r${round}-${i}`)).toBe(true);
        model.delete(`r${round}-${i}`);
      }
      expect(m.size).toBe(model.size);
    }
    expect([...m]).toEqual([...model]);
    for (const [k, v] of model) expect(m.get(k)).toBe(v);
    expect(m.get('r0-1')).toBeUndefined();
  });

  it('builds a lazy value once, on first read, and never for a key deleted or overwritten first', () => {
    const m = new StringMap<number>();
    const src = new Doubles();
    m.reserve(3);
    m.setLazy('a', src, 1).setLazy('b', src, 2).setLazy('c', src, 3);
    expect(src.built).toBe(0);
    expect(m.has('a')).toBe(true);
    expect(src.built).toBe(0);
    expect(m.get('a')).toBe(2);
    expect(m.get('a')).toBe(2);
    expect(src.built).toBe(1);
    m.delete('b');
    m.set('c', 99);
    expect([...m]).toEqual([
      ['a', 2],
      ['c', 99],
    ]);
    expect(src.built).toBe(1);
  });

  it('a deletion during iteration is allowed; an insert that compacts under an iterator throws', () => {
    const m = new StringMap<number>();
    for (let i = 0; i < 10; i++) m.set(`k${i}`, i);
    const seen: string[] = [];
    for (const [k] of m) {
      seen.push(k);
      m.delete(`k${Number(k.slice(1)) + 1}`);
    }
    expect(seen).toEqual(['k0', 'k2', 'k4', 'k6', 'k8']);
    const big = new StringMap<number>();
    for (let i = 0; i < 5000; i++) big.set(`x${i}`, i);
    for (let i = 0; i < 4000; i++) big.delete(`x${i}`);
    expect(() => {
      for (const [k] of big) big.set(`${k}-new`, 0); // the first new key compacts (4000 holes > 1000 live)
    }).toThrow(/inserted while iterating/);
  });

  it('StringSet is a set of strings', () => {
    const s = new StringSet();
    s.add('x').add('y').add('x');
    expect(s.size).toBe(2);
    expect(s.has('y')).toBe(true);
    expect(s.delete('y')).toBe(true);
    expect(s.delete('y')).toBe(false);
    expect([...s]).toEqual(['x']);
  });
});
