/**
 * StringMap (src/core/string-map.ts) against the Map it stands in for:
 * random adds, bulk loads, deletes and reads on a few colliding-prone keys,
 * with enough deletes to force compaction, compared after every step in
 * content (each key's row of numbers) and in insertion order.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StringMap } from '../../src/core/string-map.js';

type Op = { op: 'set'; key: string; a: number; b: number } | { op: 'load'; keys: string[]; a: number } | { op: 'delete' | 'deleteAt' | 'get'; key: string };

const keyArb = fc.oneof(fc.constantFrom('', 'a', 'b', 'ab', 'ba', 'é', '\u{1F512}'), fc.integer({ min: 0, max: 3000 }).map((i) => `k${i}`));
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('set' as const), key: keyArb, a: fc.integer(), b: fc.double() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('load' as const), keys: fc.uniqueArray(keyArb, { maxLength: 40 }), a: fc.integer() }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('delete' as const), key: keyArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('deleteAt' as const), key: keyArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('get' as const), key: keyArb }) },
);

/** The map's content as [key, row] in insertion order, through every reading API. */
function rowsOf(m: StringMap): Array<[string, number[]]> {
  const viaPositions: Array<[string, number[]]> = [...m.positions()].map((p) => [m.keyAt(p), [m.num(p, 0), m.num(p, 1)]]);
  const { names, offsets } = m.joinedKeys();
  const nums = m.numArray();
  const keys = [...m.keys()];
  expect(keys).toEqual(viaPositions.map(([k]) => k));
  expect(offsets).toHaveLength(keys.length + 1);
  expect(keys.map((_, i) => names.slice(offsets[i], (offsets[i + 1] as number) - 1))).toEqual(keys);
  expect(keys.length === 0 ? '' : keys.join('\n')).toBe(names);
  expect(keys.map((k, i) => [k, [nums[2 * i], nums[2 * i + 1]]])).toEqual(viaPositions);
  for (const k of keys) expect(m.keyAt(m.find(k))).toBe(k);
  return viaPositions;
}

describe('StringMap', () => {
  it('behaves as a Map of rows (and, with no columns, as a Set): same rows, same size, same insertion order, after every step', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 400 }), fc.integer(), (ops, seed) => {
        const m = new StringMap(2, seed);
        const model = new Map<string, number[]>();
        const set = new StringMap(0, seed); // the map with no columns, against a Set
        const modelSet = new Set<string>();
        for (const o of ops) {
          if (o.op === 'set') {
            const p = m.add(o.key);
            m.setNum(p, 0, o.a);
            m.setNum(p, 1, o.b);
            model.set(o.key, [o.a, o.b]);
            set.add(o.key);
            modelSet.add(o.key);
          } else if (o.op === 'load') {
            // A bulk load takes absent keys only (a snapshot's).
            const keys = o.keys.filter((k) => !model.has(k));
            m.load(keys.join('\n'), keys.length, Float64Array.from(keys.flatMap((_, i) => [o.a + i, -i])));
            keys.forEach((k, i) => model.set(k, [o.a + i, -i]));
          } else if (o.op === 'deleteAt') {
            // By position, as the lock table frees a lock it has just found.
            const p = m.find(o.key);
            if (p !== -1) m.deleteAt(p);
            expect(p !== -1).toBe(model.delete(o.key));
            set.delete(o.key);
            modelSet.delete(o.key);
          } else if (o.op === 'delete') {
            expect(m.delete(o.key)).toBe(model.delete(o.key));
            expect(set.delete(o.key)).toBe(modelSet.delete(o.key));
          } else {
            const p = m.find(o.key);
            const row = model.get(o.key);
            expect(p === -1 ? undefined : [m.num(p, 0), m.num(p, 1)]).toEqual(row);
            expect(m.has(o.key)).toBe(row !== undefined);
            expect(set.has(o.key)).toBe(modelSet.has(o.key));
          }
          expect(m.size).toBe(model.size);
          expect(set.size).toBe(modelSet.size);
        }
        expect(rowsOf(m)).toEqual([...model]);
        expect([...set.keys()]).toEqual([...modelSet]);
      }),
      { numRuns: 200 },
    );
  });

  it('keeps order and rows through growth, mass deletes and compaction; a new key starts at zeros', () => {
    const m = new StringMap(2);
    const model = new Map<string, number[]>();
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 20_000; i++) {
        const p = m.add(`r${round}-${i}`);
        m.setNum(p, 0, i);
        m.setNum(p, 1, round);
        model.set(`r${round}-${i}`, [i, round]);
      }
      // Delete 9 of 10: holes outnumber live entries, so the next inserts compact.
      for (let i = 0; i < 20_000; i++) {
        if (i % 10 === 0) continue;
        expect(m.delete(`r${round}-${i}`)).toBe(true);
        model.delete(`r${round}-${i}`);
      }
      expect(m.size).toBe(model.size);
    }
    expect(rowsOf(m)).toEqual([...model]);
    expect(m.find('r0-1')).toBe(-1);
    // The rows of deleted and compacted-away keys are not inherited.
    const p = m.add('fresh');
    expect([m.num(p, 0), m.num(p, 1)]).toEqual([0, 0]);
  });

  it('ranksOf gives positions their index among the live keys, holes or not', () => {
    const m = new StringMap(1);
    for (let i = 0; i < 10; i++) m.add(`k${i}`);
    expect(m.ranksOf([m.find('k7'), m.find('k2')])).toEqual([7, 2]);
    m.delete('k0');
    m.delete('k5');
    const keys = [...m.keys()];
    expect(m.ranksOf([m.find('k9'), m.find('k1'), m.find('k6')])).toEqual([keys.indexOf('k9'), keys.indexOf('k1'), keys.indexOf('k6')]);
  });

  it('a bulk load refuses a key already present or twice, a count the names do not hold, and rows of the wrong length', () => {
    // A map a load threw on is to be thrown away: a fresh one per case.
    const withA = (): StringMap => {
      const m = new StringMap(1);
      m.add('a');
      return m;
    };
    // A duplicate shows when the loaded keys join the index: at the first lookup after the load(s).
    const loadThenFind = (names: string, count: number): (() => void) => () => {
      const m = withA();
      m.load(names, count, new Float64Array(count));
      m.find('z');
    };
    expect(loadThenFind('b\na', 2)).toThrow(/"a" loaded twice/);
    expect(loadThenFind('c\nc', 2)).toThrow(/"c" loaded twice/);
    expect(() => {
      const m = withA();
      m.load('d', 1, new Float64Array(1));
      m.load('d', 1, new Float64Array(1)); // in another part
      m.has('d');
    }).toThrow(/"d" loaded twice/);
    expect(() => withA().load('d\ne', 1, new Float64Array(1))).toThrow(/more than 1 keys/);
    expect(() => withA().load('f', 2, new Float64Array(2))).toThrow(/2 keys expected in the names, found 1/);
    expect(() => withA().load('g', 1, new Float64Array(2))).toThrow(/1 keys need 1 numbers, got 2/);
    const m = withA();
    expect(m.load('', 1, new Float64Array([5]))).toBe(m.find(''));
    expect(m.num(m.find(''), 0)).toBe(5);
    expect([...m.keys()]).toEqual(['a', '']);
  });

  it('a bulk load into a big, holed table indexes every key (the sorted sweep) and keeps the rows in order', () => {
    const m = new StringMap(1);
    for (let i = 0; i < 3000; i++) m.setNum(m.add(`old${i}`), 0, -i);
    for (let i = 0; i < 3000; i += 3) m.delete(`old${i}`);
    const names = Array.from({ length: 5000 }, (_, i) => `new${i}`);
    const first = m.load(names.join('\n'), names.length, Float64Array.from(names, (_, i) => i));
    names.forEach((k, i) => {
      expect(m.find(k)).toBe(first + i);
      expect(m.num(first + i, 0)).toBe(i);
    });
    for (let i = 0; i < 3000; i++) expect(m.has(`old${i}`)).toBe(i % 3 !== 0);
    expect(m.size).toBe(2000 + 5000);
  });

  it('keys keep every UTF-16 code unit, lone surrogates too, through add, load and joinedKeys', () => {
    const odd = ['\uD800', 'x\uDC00y', '\u{1F512}', 'é', 'long-'.repeat(40)];
    const added = new StringMap(0);
    for (const k of odd) added.add(k);
    const loaded = new StringMap(0, 12345);
    loaded.load(odd.join('\n'), odd.length, new Float64Array(0));
    const narrow = new StringMap(0);
    narrow.load('abc\né\nÿ', 3, new Float64Array(0)); // no unit above 0xFF: a one-byte string out
    expect(narrow.joinedKeys().names).toBe('abc\né\nÿ');
    for (const t of [added, loaded]) {
      expect([...t.keys()]).toEqual(odd);
      expect(t.joinedKeys().names).toBe(odd.join('\n'));
      for (const k of odd) expect(t.has(k)).toBe(true);
      expect(t.has('\uDC00')).toBe(false);
    }
  });

  it('a deletion during iteration is allowed; an insert that compacts under an iterator throws', () => {
    const m = new StringMap(0);
    for (let i = 0; i < 10; i++) m.add(`k${i}`);
    const seen: string[] = [];
    for (const k of m.keys()) {
      seen.push(k);
      m.delete(`k${Number(k.slice(1)) + 1}`);
    }
    expect(seen).toEqual(['k0', 'k2', 'k4', 'k6', 'k8']);
    const big = new StringMap(0);
    for (let i = 0; i < 5000; i++) big.add(`x${i}`);
    for (let i = 0; i < 4000; i++) big.delete(`x${i}`);
    expect(() => {
      for (const k of big.keys()) big.add(`${k}-new`); // the first new key compacts (4000 holes > 1000 live)
    }).toThrow(/inserted while iterating/);
  });
});
