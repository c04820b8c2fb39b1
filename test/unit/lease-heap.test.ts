/**
 * LeaseHeap (src/core/lease-heap.ts): pops by end time, whatever the order
 * of pushes and pops in between, with each entry's stamp and position
 * intact (checked against a sorted array).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LeaseHeap } from '../../src/core/lease-heap.js';

describe('LeaseHeap', () => {
  it('pops the entry with the earliest end, its stamp and position with it, through growth and mixed pushes and pops', () => {
    const opArb = fc.oneof(fc.record({ push: fc.integer({ min: 0, max: 1000 }) }), fc.constant({ pop: true as const }));
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 300 }), (ops) => {
        const heap = new LeaseHeap();
        const model: Array<{ at: number; stamp: number; pos: number }> = [];
        let stamp = 0;
        for (const op of ops) {
          if ('push' in op) {
            stamp++;
            heap.push(op.push, stamp, stamp * 7);
            model.push({ at: op.push, stamp, pos: stamp * 7 });
          } else if (model.length > 0) {
            const earliest = Math.min(...model.map((e) => e.at));
            expect(heap.topAt()).toBe(earliest);
            const k = model.findIndex((e) => e.stamp === heap.topStamp());
            expect(model[k]).toEqual({ at: earliest, stamp: heap.topStamp(), pos: heap.topPos() });
            model.splice(k, 1);
            heap.pop();
          }
          expect(heap.size).toBe(model.length);
        }
      }),
      { numRuns: 200 },
    );
  });
});
