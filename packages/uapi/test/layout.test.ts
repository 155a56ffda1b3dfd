import { describe, expect, expectTypeOf, it } from 'vitest';
import fc from 'fast-check';
import { alias, array, defineStruct, iommu_hw_info, LayoutError, s32, s64, u16, u32, u64, u8 } from '../src/index.js';

// iommu_hw_info (iommufd.h, 6.17) exercises the interesting rules: a u8 and u8[3] after a
// union, a min size below sizeof, and a u64 that must be 8-aligned.
const hwInfo = iommu_hw_info;

describe('defineStruct', () => {
  it('derives offsets, size and min size with C alignment', () => {
    expect(hwInfo.size).toBe(40);
    expect(hwInfo.minSize).toBe(32);
    expect(hwInfo.offsetOf('data_uptr')).toBe(16);
    expect(hwInfo.offsetOf('out_max_pasid_log2')).toBe(28);
    expect(hwInfo.offsetOf('__reserved')).toBe(29);
    expect(hwInfo.offsetOf('out_capabilities')).toBe(32);
    expect(hwInfo.offsetOfEnd('out_capabilities')).toBe(40);
  });

  it('pads a u64 after a u32 to 8 and rounds the size to the largest alignment', () => {
    const s = defineStruct('padded', [u32('a'), u64('b'), u16('c')]);
    expect(s.offsetOf('b')).toBe(8);
    expect(s.size).toBe(24);
  });

  it('encodes little-endian, byte-exact', () => {
    const bytes = hwInfo.encode({ size: 40, dev_id: 0x01020304, data_uptr: 0x1122334455667788n, __reserved: [1, 2, 3] });
    expect(Array.from(bytes.subarray(0, 4))).toEqual([40, 0, 0, 0]);
    expect(Array.from(bytes.subarray(8, 12))).toEqual([4, 3, 2, 1]);
    expect(Array.from(bytes.subarray(16, 24))).toEqual([0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
    expect(Array.from(bytes.subarray(29, 32))).toEqual([1, 2, 3]);
  });

  it('reads a short user struct with the missing tail as zero', () => {
    const full = hwInfo.encode({ size: 40, out_capabilities: 0xffn, dev_id: 7 });
    // A 32-byte (minimum) user struct: out_capabilities is wholly beyond it.
    const v = hwInfo.decode(full.subarray(0, 32));
    expect(v.dev_id).toBe(7);
    expect(v.out_capabilities).toBe(0n);
    // A field cut in the middle keeps the user's bytes and zero-fills the rest.
    expect(hwInfo.decode(full.subarray(0, 36)).out_capabilities).toBe(0xffn);
    expect(hwInfo.decode(hwInfo.encode({ out_capabilities: 0x1_0000_00ffn }).subarray(0, 36)).out_capabilities).toBe(0xffn);
  });

  it('round-trips arbitrary values', () => {
    fc.assert(
      fc.property(
        fc.record({
          size: fc.nat(0xffffffff),
          flags: fc.nat(0xffffffff),
          data_uptr: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
          out_max_pasid_log2: fc.nat(255),
        }),
        (v) => {
          const decoded = hwInfo.decode(hwInfo.encode(v));
          expect(decoded.size).toBe(v.size);
          expect(decoded.flags).toBe(v.flags);
          expect(decoded.data_uptr).toBe(v.data_uptr);
          expect(decoded.out_max_pasid_log2).toBe(v.out_max_pasid_log2);
        },
      ),
    );
  });

  it('types u64 fields as bigint and others as number', () => {
    const v = hwInfo.zero();
    expectTypeOf(v.data_uptr).toEqualTypeOf<bigint>();
    expectTypeOf(v.flags).toEqualTypeOf<number>();
    expectTypeOf(v.__reserved).toEqualTypeOf<number[]>();
    const misuse = () =>
      // @ts-expect-error not a field of iommu_hw_info
      hwInfo.offsetOf('nope');
    expect(misuse).toThrow(LayoutError);
  });

  it('rejects a bad declaration', () => {
    expect(() => defineStruct('dup', [u32('a'), u32('a')])).toThrow(LayoutError);
  });

  it('lays an alias over an earlier field (anonymous union) without taking space', () => {
    const s = defineStruct('u', [u32('a'), u32('in_t'), alias('out_t', 'u32', 'in_t'), u64('b')], { minField: 'out_t' });
    expect(s.offsetOf('out_t')).toBe(4);
    expect(s.offsetOf('b')).toBe(8);
    expect(s.size).toBe(16);
    expect(s.minSize).toBe(8);
    expect(s.fields.out_t.aliasOf).toBe('in_t');
    // Only the given name is written; an absent alias does not clobber its field with zero.
    expect(s.decode(s.encode({ in_t: 7 })).out_t).toBe(7);
    expect(s.decode(s.encode({ out_t: 9 })).in_t).toBe(9);
    // Both given: the alias (declared later) wins, as the later store would in C.
    expect(s.decode(s.encode({ in_t: 1, out_t: 2 })).in_t).toBe(2);
    expectTypeOf(s.zero().out_t).toEqualTypeOf<number>();
  });

  it('rejects an alias of an unknown, array, aliased or differently sized field', () => {
    expect(() => defineStruct('a', [u32('x'), alias('y', 'u32', 'nope')])).toThrow(LayoutError);
    expect(() => defineStruct('a', [array('x', 'u32', 2), alias('y', 'u32', 'x')])).toThrow(LayoutError);
    expect(() => defineStruct('a', [u32('x'), alias('y', 'u64', 'x')])).toThrow(LayoutError);
    expect(() => defineStruct('a', [u32('x'), alias('y', 'u32', 'x'), alias('z', 'u32', 'y')])).toThrow(LayoutError);
  });

  it('raises the struct alignment with the align option (a union member holding a u64)', () => {
    const s = defineStruct('a', [u32('x'), u32('y'), u32('z')], { align: 8 });
    expect([s.align, s.size]).toEqual([8, 16]);
    expect(defineStruct('b', [u64('x')], { align: 4 }).align).toBe(8);
    expect(() => defineStruct('c', [u32('x')], { align: 3 })).toThrow(LayoutError);
  });
});

describe('encode stores each scalar as the C type truncates it', () => {
  const kinds = [
    [u8, 1],
    [u16, 2],
    [u32, 4],
    [s32, 4],
    [u64, 8],
    [s64, 8],
  ] as const;
  const value = fc.oneof(
    fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
    fc.double({ min: -1e20, max: 1e20, noNaN: true }),
    fc.bigInt({ min: -(1n << 70n), max: 1n << 70n }),
  );
  it('whole or cut at the end of the buffer: the low bytes of the value, little-endian', () => {
    fc.assert(
      fc.property(fc.constantFrom(...kinds), value, fc.integer({ min: 0, max: 8 }), ([kind, size], v, room) => {
        const layout = defineStruct('one', [kind('x')]);
        const into = new Uint8Array(Math.min(room, size)).fill(0xa5);
        layout.encode({ x: v } as never, into);
        let want = BigInt.asUintN(size * 8, typeof v === 'bigint' ? v : BigInt(Math.trunc(v)));
        const bytes: number[] = [];
        for (let i = 0; i < into.length; i++, want >>= 8n) bytes.push(Number(want & 0xffn));
        expect([...into]).toEqual(bytes);
      }),
      { numRuns: 3000 },
    );
  });
});
