import { describe, expect, it } from 'vitest';
import { IOMMU_READ, IOMMU_WRITE, type IommuDomain } from '@iommufd/driver-api';
import { EINVAL, EOPNOTSUPP, EBUSY, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_ALLOC_PASID } from '@iommufd/uapi';
import { DmarDomain, intelIommuOps, pasidEntryBytes } from '../src/index.js';
import { ATS_PASID_PRI, PLAIN, VtdTestbed, hexDesc, words } from './harness.js';

const RW = IOMMU_READ | IOMMU_WRITE;

function attach(t: VtdTestbed, d: IommuDomain, i = 0): number {
  return d.ops.attachDev!(d, t.devs[i]!);
}

describe('paging domains', () => {
  it('picks the first stage by default and the second stage for NEST_PARENT / DIRTY_TRACKING; rejects user data and unknown flags', () => {
    const t = new VtdTestbed();
    const fs = t.allocPaging(0) as DmarDomain;
    expect(fs.stage).toBe('first-stage');
    expect(fs.pgsizeBitmap).toBe((1n << 12n) | (1n << 21n) | (1n << 30n));
    expect(fs.geometry.apertureEnd).toBe((1n << 47n) - 1n);
    expect((t.allocPaging(IOMMU_HWPT_ALLOC_PASID) as DmarDomain).stage).toBe('first-stage');
    const parent = t.allocPaging(IOMMU_HWPT_ALLOC_NEST_PARENT) as DmarDomain;
    expect(parent.stage).toBe('second-stage');
    expect(parent.nestedParent).toBe(true);
    expect(parent.geometry.apertureEnd).toBe((1n << 48n) - 1n);
    expect((t.allocPaging(IOMMU_HWPT_ALLOC_DIRTY_TRACKING) as DmarDomain).dirtyOps).toBeDefined();
    expect(intelIommuOps.domainAllocPagingFlags!(t.devs[0]!, 1 << 2, undefined)).toBe(EOPNOTSUPP);
    expect(intelIommuOps.domainAllocPagingFlags!(t.devs[0]!, 0, t.userData(0, new Uint8Array(8)))).toBe(EOPNOTSUPP);
    const noNest = new VtdTestbed({ nested: false });
    expect(intelIommuOps.domainAllocPagingFlags!(noNest.devs[0]!, IOMMU_HWPT_ALLOC_NEST_PARENT, undefined)).toBe(EOPNOTSUPP);
    const noDirty = new VtdTestbed({ secondStageAccessDirty: false });
    expect(intelIommuOps.domainAllocPagingFlags!(noDirty.devs[0]!, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, undefined)).toBe(EOPNOTSUPP);
  });

  it('first stage: PASID entry bytes, DMA through the mapping, PIOTLB on unmap, stale-free fault afterwards', () => {
    const t = new VtdTestbed();
    const d = t.allocPaging() as DmarDomain;
    expect(attach(t, d)).toBe(0);
    expect(t.iommu.allocatedDids).toEqual([2]);
    const info = t.iommu.devices.get(0x10)!;
    const root = d.pgtable!.root;
    // P | AW=2 | PGTT=1; DID 2; PWSNP (SMPWC); FSPTPTR = root, FSPM=0 (4-level).
    expect(words(pasidEntryBytes(t.iommu, info))).toEqual([(2n << 2n) | (1n << 6n) | 1n, 2n | (1n << 23n), root, 0n, 0n, 0n, 0n, 0n]);

    const buf = t.page();
    const iova = 0x1234_5000n;
    expect(d.ops.mapPages!(d, iova, buf, 4096n, 1, RW)).toEqual({ mapped: 4096n, status: 0 });
    // Leaf: P|R/W|U/S|A|D, non-leaf: P|R/W|U/S|A.
    const l = d.pgtable!.lookup(iova)!;
    expect(l.pte).toBe(buf | 0x67n);
    expect(d.ops.iovaToPhys!(d, iova + 0x10n)).toBe(buf + 0x10n);

    const data = new Uint8Array([9, 8, 7, 6]);
    expect(t.pci[0]!.dma({ iova: iova + 0x20n, length: 4, write: true, data })).toEqual({ ok: true });
    expect([...t.mem.read(buf + 0x20n, 4)]).toEqual([9, 8, 7, 6]);

    const mark = t.iommu.qi.log.length;
    expect(d.ops.unmapPages!(d, iova, 4096n, 1)).toBe(4096n);
    // One batch: PIOTLB page-selective (G=3) DID 2 PASID 0 ADDR, AM 0, IH=1 (no table freed).
    expect(t.batchesSince(mark).map((b) => b.map((x) => hexDesc(x.slice(0, 2))))).toEqual([[['0x0000000000020036', '0x0000000012345040']]]);
    const r = t.pci[0]!.dma({ iova: iova + 0x20n, length: 4, write: false });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.fault.code).toBe(0x71);
    expect(t.iommu.faultLog.at(-1)).toEqual({ reason: 0x71, sid: 0x10, address: iova, pasid: undefined, read: true });
  });

  it('a 2 MiB block becomes one large leaf and unmapping part of it unmaps the whole block', () => {
    const t = new VtdTestbed();
    const d = t.allocPaging(IOMMU_HWPT_ALLOC_NEST_PARENT) as DmarDomain;
    expect(attach(t, d)).toBe(0);
    const big = t.mem.allocPages(512, { align: 1n << 21n })[0]!;
    expect(d.ops.mapPages!(d, 0x20_0000n, big, 1n << 21n, 1, RW).status).toBe(0);
    expect(d.pgtable!.lookup(0x20_1000n)).toMatchObject({ level: 2, pte: big | 0x83n });
    expect(t.pci[0]!.dma({ iova: 0x3f_fff0n, length: 4, write: true, data: new Uint8Array(4).fill(5) })).toEqual({ ok: true });
    const mark = t.iommu.qi.log.length;
    expect(d.ops.unmapPages!(d, 0x20_0000n, 4096n, 1)).toBe(1n << 21n);
    // Second stage: type-2 PSI with AM=9; the leaf hint is lost in the 4 KiB-masked address.
    expect(t.batchesSince(mark).map((b) => b.map((x) => hexDesc(x.slice(0, 2))))).toEqual([[['0x0000000000020032', '0x0000000000200009']]]);
  });

  it('read-only mappings are refused on a nesting parent (erratum 772415/SPR17) and mappings past the aperture are EFAULT', () => {
    const t = new VtdTestbed();
    const p = t.allocPaging(IOMMU_HWPT_ALLOC_NEST_PARENT);
    expect(p.ops.mapPages!(p, 0n, t.page(), 4096n, 1, IOMMU_READ)).toEqual({ mapped: 0n, status: EINVAL });
    expect(p.ops.mapPages!(p, 1n << 48n, t.page(), 4096n, 1, RW).status).toBe(14);
    const fs = t.allocPaging();
    expect(fs.ops.mapPages!(fs, 0n, t.page(), 4096n, 1, IOMMU_READ).status).toBe(0);
  });

  it('re-attaching tears the old entry down with the kernel sequence (PC, IOTLB by PGTT, device-TLB) and frees the DID', () => {
    const t = new VtdTestbed({}, [ATS_PASID_PRI]);
    const a = t.allocPaging(IOMMU_HWPT_ALLOC_NEST_PARENT) as DmarDomain;
    const b = t.allocPaging() as DmarDomain;
    expect(attach(t, a)).toBe(0);
    const mark = t.iommu.qi.log.length;
    expect(attach(t, b)).toBe(0);
    expect(t.batchesSince(mark).map((x) => x.map((y) => hexDesc(y.slice(0, 2))))).toEqual([
      [['0x0000000000020017', '0x0000000000000000']], // PASID-cache, PASID-selective, DID 2
      [['0x0000000000020022', '0x0000000000000000']], // IOTLB DSI DID 2 (PGTT was second stage)
      [['0x0000001800000003', '0x7ffffffffffff001']], // device-TLB, SID 0x18, whole range
    ]);
    expect(t.iommu.allocatedDids).toEqual([2]);
    expect(b.didOn(t.iommu)).toBe(2);
    expect(a.didOn(t.iommu)).toBeUndefined();
  });

  it('set_dev_pasid attaches a PASID, rejects a present entry and replaces in place with the present-entry flush', () => {
    const t = new VtdTestbed({}, [PLAIN, ATS_PASID_PRI]);
    const d1 = t.allocPaging(IOMMU_HWPT_ALLOC_PASID);
    const d2 = t.allocPaging(IOMMU_HWPT_ALLOC_PASID);
    const dev = t.devs[1]!;
    expect(d1.ops.setDevPasid!(d1, t.devs[0]!, 5, undefined)).toBe(EOPNOTSUPP);
    expect(d1.ops.setDevPasid!(d1, dev, 5, undefined)).toBe(0);
    expect(d2.ops.setDevPasid!(d2, dev, 5, undefined)).toBe(EBUSY);
    const mark = t.iommu.qi.log.length;
    expect(d2.ops.setDevPasid!(d2, dev, 5, d1)).toBe(0);
    expect(t.batchesSince(mark).map((x) => x.map((y) => hexDesc(y.slice(0, 2))))).toEqual([
      [['0x0000000500020017', '0x0000000000000000']],
      [['0x0000000500020026', '0x0000000000000000']],
      [['0x0000000500180008', '0x7ffffffffffff800']],
    ]);
    const buf = t.page();
    expect(d2.ops.mapPages!(d2, 0x8000n, buf, 4096n, 1, RW).status).toBe(0);
    expect(t.pci[1]!.dma({ iova: 0x8000n, length: 2, write: true, data: new Uint8Array([1, 2]), pasid: 5 })).toEqual({ ok: true });
    expect([...t.mem.read(buf, 2)]).toEqual([1, 2]);
    // Blocking PASID 5 tears it down.
    expect(intelIommuOps.blockedDomain.ops.setDevPasid!(intelIommuOps.blockedDomain, dev, 5, d2)).toBe(0);
    expect(t.pci[1]!.dma({ iova: 0x8000n, length: 2, write: false, pasid: 5 }).ok).toBe(false);
  });
});
