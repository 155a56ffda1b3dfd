import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as uapi from '../src/index.js';
import type { FieldInfo, StructLayout } from '../src/index.js';

const isLayout = (x: unknown): x is StructLayout =>
  typeof x === 'object' && x !== null && 'fieldList' in x && 'encode' in x && 'decode' in x;
const LAYOUTS: [string, StructLayout][] = [
  ...(Object.entries(uapi).filter(([, v]) => isLayout(v)) as [string, StructLayout][]),
  ...(Object.entries(uapi.IOMMU_TEST_CMD_LAYOUTS) as [string, StructLayout][]).map(([m, l]): [string, StructLayout] => [`iommu_test_cmd.${m}`, l]),
];

const scalar = (f: FieldInfo): fc.Arbitrary<number | bigint> => {
  switch (f.kind) {
    case 'u8':
      return fc.nat(0xff);
    case 'u16':
      return fc.nat(0xffff);
    case 'u32':
      return fc.nat(0xffffffff);
    case 's32':
      return fc.integer({ min: -0x80000000, max: 0x7fffffff });
    case 'u64':
      return fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
    case 's64':
      return fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n });
  }
};

// Aliases share their target's bytes, so a value is generated for the target only.
const valueOf = (l: StructLayout) =>
  fc.record(
    Object.fromEntries(
      l.fieldList
        .filter((f) => f.aliasOf === undefined)
        .map((f) => [f.name, f.isArray ? fc.array(scalar(f), { minLength: f.count, maxLength: f.count }) : scalar(f)]),
    ),
  );

describe('every declared layout', () => {
  it('has 60+ layouts to check', () => {
    expect(LAYOUTS.length).toBeGreaterThan(60);
  });

  for (const [name, l] of LAYOUTS) {
    it(`${name}: encode/decode round-trip, sizeof bytes, aliases mirror their field`, () => {
      fc.assert(
        fc.property(valueOf(l), (v) => {
          const bytes = l.encode(v as never);
          expect(bytes.length).toBe(l.size);
          const back = l.decode(bytes) as Record<string, unknown>;
          for (const f of l.fieldList) expect(back[f.name]).toEqual((v as Record<string, unknown>)[f.aliasOf ?? f.name]);
        }),
        { numRuns: 20 },
      );
    });
  }
});

describe('the size-extensibility rule over every ioctl struct', () => {
  for (const e of uapi.IOMMUFD_IOCTLS) {
    it(`${e.name}: a user struct of minSize..sizeof bytes keeps its bytes and zero-fills the rest`, () => {
      fc.assert(
        fc.property(valueOf(e.layout), fc.integer({ min: e.minSize, max: e.layout.size }), (v, userSize) => {
          const full = e.layout.encode(v as never);
          const kernel = new Uint8Array(e.layout.size);
          kernel.set(full.subarray(0, userSize));
          expect(e.layout.decode(full.subarray(0, userSize))).toEqual(e.layout.decode(kernel));
        }),
        { numRuns: 20 },
      );
    });
  }
});
