import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_UNMAP,
  iommu_ioas_alloc,
  iommu_ioas_map,
  iommu_ioas_unmap,
} from '@iommufd/uapi';
import { MOCK_APERTURE_FIRST_IOVA, MOCK_APERTURE_LAST_IOVA, mockDomainLookup } from '@iommufd/mock-iommu';
import { deviceAttachedDomain, iommufdDeviceAttach, type Ioas, type IommufdCtxImpl } from '../src/index.js';
import { bindOrThrow, RW, setup } from './harness.js';


type Op =
  | { kind: 'auto'; pages: number; offset: number }
  | { kind: 'fixed'; slot: number; pages: number }
  | { kind: 'unmapArea'; pick: number }
  | { kind: 'unmapRange'; slot: number; pages: number }
  | { kind: 'unmapAll' };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('auto' as const), pages: fc.integer({ min: 1, max: 4 }), offset: fc.constantFrom(0, 0x800) }),
  fc.record({ kind: fc.constant('fixed' as const), slot: fc.integer({ min: 0, max: 15 }), pages: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ kind: fc.constant('unmapArea' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('unmapRange' as const), slot: fc.integer({ min: 0, max: 15 }), pages: fc.integer({ min: 1, max: 4 }) }),
  fc.constant({ kind: 'unmapAll' as const }),
);

describe('IOAS with an attached mock domain (property)', () => {
  it('areas never overlap, stay in the aperture, are mirrored exactly in the domain, and pins balance', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 25 }), (ops) => {
        const e = setup();
        const ioasId = e.ioctl(iommu_ioas_alloc, IOMMU_IOAS_ALLOC, {}).out.out_ioas_id;
        const b = bindOrThrow(e.ctx, e.devs[0]!);
        iommufdDeviceAttach(b.idev, undefined, ioasId);
        const domain = deviceAttachedDomain(e.devs[0]!)!;
        const ictx = e.ctx as IommufdCtxImpl;
        const ioas = ictx.getObject<Ioas>(ioasId, 'IOAS') as Ioas;
        ictx.putObject(ioas);
        const base = MOCK_APERTURE_FIRST_IOVA;
        for (const o of ops) {
          if (o.kind === 'auto' || o.kind === 'fixed') {
            const pages = BigInt(o.pages);
            const va = e.proc.mmap(pages * 4096n + 4096n);
            const off = o.kind === 'auto' ? BigInt(o.offset) : 0n;
            const r = e.ioctl(iommu_ioas_map, IOMMU_IOAS_MAP, {
              flags: RW | (o.kind === 'fixed' ? IOMMU_IOAS_MAP_FIXED_IOVA : 0),
              ioas_id: ioasId,
              user_va: va + off,
              length: pages * 4096n,
              iova: o.kind === 'fixed' ? base + BigInt(o.slot) * 4096n : 0n,
            });
            expect([0, -17]).toContain(r.rc);
            if (r.rc === 0 && o.kind === 'auto') expect(r.out.iova % 4096n).toBe(off);
          } else if (o.kind === 'unmapArea') {
            const areas = ioas.iopt.areas;
            if (!areas.length) continue;
            const a = areas[o.pick % areas.length]!;
            const r = e.ioctl(iommu_ioas_unmap, IOMMU_IOAS_UNMAP, { ioas_id: ioasId, iova: a.start, length: a.last - a.start + 1n });
            expect([r.rc, r.out.length]).toEqual([0, a.last - a.start + 1n]);
          } else if (o.kind === 'unmapRange') {
            const r = e.ioctl(iommu_ioas_unmap, IOMMU_IOAS_UNMAP, { ioas_id: ioasId, iova: base + BigInt(o.slot) * 4096n, length: BigInt(o.pages) * 4096n });
            expect([0, -2]).toContain(r.rc);
          } else {
            expect(e.ioctl(iommu_ioas_unmap, IOMMU_IOAS_UNMAP, { ioas_id: ioasId, iova: 0n, length: (1n << 64n) - 1n }).rc).toBe(0);
          }
          const areas = ioas.iopt.areas;
          let mapped = 0n;
          for (let i = 0; i < areas.length; i++) {
            const a = areas[i]!;
            expect(a.start >= base && a.last <= MOCK_APERTURE_LAST_IOVA).toBe(true);
            if (i) expect(a.start > areas[i - 1]!.last).toBe(true);
            expect(mockDomainLookup(domain, a.start)?.pa).toBe(a.physOf(a.start) - (a.physOf(a.start) % 2048n));
            mapped += a.last - a.start + 1n;
          }
          const ptes = (domain as unknown as { ptes: Map<bigint, unknown> }).ptes.size;
          expect(BigInt(ptes) * 2048n).toBe(mapped);
          expect(e.proc.pinnedPages).toBe(areas.reduce((n, a) => n + a.pages.npages, 0));
        }
        expect(e.mock.warnings).toEqual([]);
        e.ioctl(iommu_ioas_unmap, IOMMU_IOAS_UNMAP, { ioas_id: ioasId, iova: 0n, length: (1n << 64n) - 1n });
        expect(e.proc.pinnedPages).toBe(0);
      }),
      { numRuns: 60 },
    );
  });
});
