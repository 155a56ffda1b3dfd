import { describe, expect, expectTypeOf, it } from 'vitest';
import { BitLayoutError, defineBitLayout } from '../src/index.js';

const L = defineBitLayout('demo', 2, [
  ['V', 0, 0, 0],
  ['CFG', 0, 3, 1],
  ['ADDR', 0, 51, 6],
  ['HI', 1, 63, 32],
] as const);

describe('defineBitLayout', () => {
  it('gets, sets, encodes and decodes fields', () => {
    const w = L.encode({ V: true, CFG: 5, ADDR: 0x1234n, HI: 0xffffffffn });
    expect(w).toEqual([1n | (5n << 1n) | (0x1234n << 6n), 0xffffffffn << 32n]);
    expect(L.get(w, 'ADDR')).toBe(0x1234n);
    expect(L.num(w, 'CFG')).toBe(5);
    L.set(w, 'CFG', 2);
    expect(L.decode(w)).toEqual({ V: 1n, CFG: 2n, ADDR: 0x1234n, HI: 0xffffffffn });
    expect(L.fromBytes(L.toBytes(w))).toEqual(w);
    expect(L.size).toBe(16);
    expect(L.format(w)).toBe('demo{V=0x1,CFG=0x2,ADDR=0x1234,HI=0xffffffff}');
    expectTypeOf(L.decode(w)).toEqualTypeOf<{ V: bigint; CFG: bigint; ADDR: bigint; HI: bigint }>();
  });

  it('rejects values that do not fit, unknown fields and bad declarations', () => {
    expect(() => L.encode({ CFG: 8 })).toThrow(BitLayoutError);
    // @ts-expect-error unknown field name
    expect(() => L.get([0n], 'NOPE')).toThrow(/no field NOPE/);
    expect(() => defineBitLayout('x', 1, [['A', 0, 3, 0], ['B', 0, 4, 3]])).toThrow(/overlaps/);
    expect(() => defineBitLayout('x', 1, [['A', 1, 3, 0]])).toThrow(/bad range/);
  });
});
