import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { IOMMU_READ, IOMMU_WRITE } from '@iommufd/driver-api';
import { calculatePsiAlignedAddress, IoPageTable, MAX_AGAW_PFN_WIDTH } from '../src/index.js';
import { VtdTestbed } from './harness.js';

describe('properties', () => {
  it('calculate_psi_aligned_address covers [start, end] with an aligned power-of-two range', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 48n) - 1n }), fc.bigInt({ min: 1n, max: 1n << 20n }), (start, pages) => {
        const s = start & ~0xfffn;
        const end = s + pages * 4096n - 1n;
        const r = calculatePsiAlignedAddress(s, end);
        if (r.mask >= MAX_AGAW_PFN_WIDTH) return;
        const span = 4096n << BigInt(r.mask);
        expect(r.addr % span).toBe(0n);
        expect(r.addr <= s).toBe(true);
        expect(r.addr + span - 1n >= end).toBe(true);
        expect(r.pages).toBe(1n << BigInt(r.mask));
      }),
      { numRuns: 300 },
    );
  });

  it('a superpage replaces the empty table a small mapping left behind (found by the property below)', () => {
    const t = new VtdTestbed();
    const pt = new IoPageTable(t.mem, 'second-stage', 4, new Set([1, 2]));
    expect(pt.map(0n, 0x4000_0000n, 4096n, IOMMU_READ | IOMMU_WRITE, false)).toBe(0);
    pt.freeTables(pt.unmap(0n, 4095n));
    const pages = pt.tablePages;
    const freed: bigint[] = [];
    expect(pt.map(0n, 0x4000_0000n, 1n << 21n, IOMMU_READ | IOMMU_WRITE, false, freed)).toBe(0);
    expect(freed.length).toBe(1);
    pt.freeTables(freed);
    expect(pt.tablePages).toBe(pages - 1);
    expect(pt.lookup(0x1000n)?.level).toBe(2);
    expect(pt.iovaToPhys(0x1f_f000n)).toBe(0x401f_f000n);
  });

  it('first- and second-stage tables agree with a reference map under random map/unmap', () => {
    const t = new VtdTestbed();
    for (const format of ['first-stage', 'second-stage'] as const) {
      fc.assert(
        fc.property(
          fc.array(fc.record({ op: fc.constantFrom('map', 'unmap'), page: fc.integer({ min: 0, max: 2047 }), n: fc.integer({ min: 1, max: 600 }) }), { maxLength: 25 }),
          (ops) => {
            const pt = new IoPageTable(t.mem, format, 4, new Set([1, 2]));
            const ref = new Map<number, bigint>();
            const maps: Array<{ page: number; n: number }> = [];
            const base = 0x4000_0000n;
            for (const o of ops) {
              if (o.op === 'map') {
                let free = true;
                for (let i = 0; i < o.n; i++) if (ref.has(o.page + i)) free = false;
                if (!free) continue;
                const iova = BigInt(o.page) * 4096n;
                const freed: bigint[] = [];
                expect(pt.map(iova, base + iova, BigInt(o.n) * 4096n, IOMMU_READ | IOMMU_WRITE, false, freed)).toBe(0);
                pt.freeTables(freed);
                for (let i = 0; i < o.n; i++) ref.set(o.page + i, base + BigInt(o.page + i) * 4096n);
                maps.push({ page: o.page, n: o.n });
              } else if (maps.length > 0) {
                // Unmap one earlier mapping exactly, as the core does.
                const [m] = maps.splice(o.page % maps.length, 1);
                const iova = BigInt(m!.page) * 4096n;
                pt.freeTables(pt.unmap(iova, iova + BigInt(m!.n) * 4096n - 1n));
                for (let i = 0; i < m!.n; i++) ref.delete(m!.page + i);
              }
            }
            for (let p = 0; p < 2048 + 600; p += 7) expect(pt.iovaToPhys(BigInt(p) * 4096n)).toBe(ref.get(p) ?? 0n);
            for (const p of ref.keys()) pt.freeTables(pt.unmap(BigInt(p) * 4096n, BigInt(p) * 4096n + 4095n));
            pt.destroy();
          },
        ),
        { numRuns: 40 },
      );
    }
  });
});
