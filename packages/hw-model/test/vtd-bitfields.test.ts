import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  addr,
  big,
  defineFieldLayout,
  BitLayoutError,
  num,
  VtdPasidEntry,
  VtdSsPte,
  VtdTsInvalidationQueueConsumer,
  type FieldLayoutValue,
  type VtdInvalidationQueueConsumer,
} from '../src/index.js';
import { LinuxVtd, QI } from './vtd-linux.js';

const Demo = defineFieldLayout('demo', 2, [num('P', 0, 0), num('DID', 0, 15, 4), addr('PTR', 0, 63, 16), big('WIDE', 1, 63, 8)], { ignored: [[1, 3, 0]] });

describe('field layouts', () => {
  it('encode / decode round-trip with typed values (number, in-place address, shifted bigint)', () => {
    const w = Demo.encode({ P: 1, DID: 0xabc, PTR: 0x1234_0000n, WIDE: 0x55n });
    expect(w).toEqual([0x1234_0000n | (0xabcn << 4n) | 1n, 0x55n << 8n]);
    expect(Demo.decode(w)).toEqual({ P: 1, DID: 0xabc, PTR: 0x1234_0000n, WIDE: 0x55n });
    expect(Demo.f.DID.of(w[0])).toBe(0xabc);
    expect(Demo.format(w)).toBe('demo{P=1 DID=0xabc PTR=0x12340000 WIDE=0x55}');
  });

  it('reserved masks are the bits no field and no ignored range covers', () => {
    expect(Demo.reservedMasks).toEqual([0b1110n, 0xf0n]);
    expect(Demo.hasReservedBits([2n, 0n])).toBe(true);
    expect(Demo.hasReservedBits([0n, 0xfn])).toBe(false);
    // The PASID entry reserves qw0 bit 5, bits 11:10 and every bit of qw3..qw7.
    expect(VtdPasidEntry.reservedMasks[0]).toBe(0xc20n);
    expect(VtdPasidEntry.reservedMasks[3]).toBe((1n << 64n) - 1n);
    expect(VtdSsPte.reservedMasks[0]).toBe(0n);
  });

  it('rejects values that do not fit and malformed declarations', () => {
    expect(() => Demo.encode({ DID: 0x1000 })).toThrow(BitLayoutError);
    expect(() => Demo.encode({ PTR: 0x1234n })).toThrow(/bits outside 63:16/);
    expect(() => defineFieldLayout('bad', 1, [num('A', 0, 3, 0), num('B', 0, 4, 3)])).toThrow(/overlaps/);
    expect(() => defineFieldLayout('bad', 1, [num('A', 1, 3, 0)])).toThrow(/bad range/);
    expect(() => num('W', 0, 40, 0)).toThrow(/at most 32 bits/);
  });

  it('types: num fields read as number, addr and big fields as bigint', () => {
    type V = FieldLayoutValue<typeof Demo.specs>;
    expectTypeOf<V['DID']>().toEqualTypeOf<number>();
    expectTypeOf<V['PTR']>().toEqualTypeOf<bigint>();
    expectTypeOf<V['WIDE']>().toEqualTypeOf<bigint>();
    // @ts-expect-error - no such field
    expect(() => Demo.get([0n], 'NOPE')).toThrow(/has no field 'NOPE'/);
  });
});

describe('VT-d invalidation-queue consumer port', () => {
  it('a substituted consumer (as the queue engine would be) sees every ring and changes nothing', () => {
    const rings: number[] = [];
    const v = new LinuxVtd({
      queueConsumer: (config): VtdInvalidationQueueConsumer => {
        const ts = new VtdTsInvalidationQueueConsumer(config);
        return { config, consume: (ring, ex) => (rings.push(ring.tail - ring.head), ts.consume(ring, ex)) };
      },
    });
    v.bringUp();
    expect(v.submit([QI.iotlbGlobal(), QI.pcGlobal()])).toBe(2);
    expect(rings).toEqual([3]);
  });
});
