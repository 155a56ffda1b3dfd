import { describe, expect, it } from 'vitest';
import { IOMMU_READ, IOMMU_WRITE, type IommuDomain } from '@iommufd/driver-api';
import { IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_DATA_VTD_S1, iommu_hwpt_vtd_s1 } from '@iommufd/uapi';
import { intelIommuOps, pasidEntryBytes, type DmarDomain } from '../src/index.js';
import { ATS_PASID_PRI, VtdTestbed, words } from './harness.js';

const RW = IOMMU_READ | IOMMU_WRITE;

/** A nesting parent mapping GPA 0..64 KiB and a guest table at GPA 0x1000 mapping GIOVA 0x10_0000 → GPA 0x8000. */
function nestedSetup(t: VtdTestbed) {
  const parent = t.allocPaging(IOMMU_HWPT_ALLOC_NEST_PARENT) as DmarDomain;
  const hpa = new Map<bigint, bigint>();
  for (let gpa = 0n; gpa < 0x1_0000n; gpa += 0x1000n) {
    const p = t.page();
    hpa.set(gpa, p);
    expect(parent.ops.mapPages!(parent, gpa, p, 4096n, 1, RW).status).toBe(0);
  }
  // PML4[0] → 0x2000, PDPT[0] → 0x3000, PD[0] → 0x4000, PT[0x100] → 0x8000 (GIOVA 0x10_0000).
  t.mem.write64(hpa.get(0x1000n)!, 0x2007n);
  t.mem.write64(hpa.get(0x2000n)!, 0x3007n);
  t.mem.write64(hpa.get(0x3000n)!, 0x4007n);
  t.mem.write64(hpa.get(0x4000n)! + 0x100n * 8n, 0x8007n);
  const data = iommu_hwpt_vtd_s1.encode({ flags: 0n, pgtbl_addr: 0x1000n, addr_width: 48, __reserved: 0 });
  const nested = intelIommuOps.domainAllocNested!(t.devs[0]!, parent, 0, t.userData(IOMMU_HWPT_DATA_VTD_S1, data)) as IommuDomain;
  return { parent, hpa, nested };
}

describe('nesting parent changes and PASID attach of nested domains', () => {
  it('a host unmap of the GPA under a guest mapping makes the nested DMA fault (no stale nested IOTLB entry survives)', () => {
    const t = new VtdTestbed();
    const { parent, hpa, nested } = nestedSetup(t);
    expect(nested.ops.attachDev!(nested, t.devs[0]!)).toBe(0);
    expect(t.pci[0]!.dma({ iova: 0x10_0000n, length: 1, write: true, data: new Uint8Array([9]) })).toEqual({ ok: true });
    expect(t.mem.read(hpa.get(0x8000n)!, 1)[0]).toBe(9);
    expect(parent.ops.unmapPages!(parent, 0x8000n, 4096n, 1)).toBe(4096n);
    const r = t.pci[0]!.dma({ iova: 0x10_0000n, length: 1, write: true, data: new Uint8Array([1]) });
    expect(r.ok).toBe(false);
  });

  it('a nested domain attaches at a PASID (PGTT=3 in that PASID entry); a dirty-tracking parent refuses PASID attach', () => {
    const t = new VtdTestbed({}, [ATS_PASID_PRI]);
    const { nested } = nestedSetup(t);
    expect(nested.ops.setDevPasid!(nested, t.devs[0]!, 3, undefined)).toBe(0);
    const e = words(pasidEntryBytes(t.iommu, t.iommu.devices.get(0x18)!, 3));
    expect((e[0]! >> 6n) & 7n).toBe(3n);
    expect(t.pci[0]!.dma({ iova: 0x10_0000n, length: 1, write: false, pasid: 3 }).ok).toBe(true);
    const dirtyParent = t.allocPaging(IOMMU_HWPT_ALLOC_NEST_PARENT | (1 << 1));
    const data = iommu_hwpt_vtd_s1.encode({ flags: 0n, pgtbl_addr: 0x1000n, addr_width: 48, __reserved: 0 });
    const n2 = intelIommuOps.domainAllocNested!(t.devs[0]!, dirtyParent, 0, t.userData(IOMMU_HWPT_DATA_VTD_S1, data)) as IommuDomain;
    expect(n2.ops.setDevPasid!(n2, t.devs[0]!, 4, undefined)).toBe(22);
  });

  it('release_device clears the context entry and returns the PASID directory and tables', () => {
    const t = new VtdTestbed({}, [ATS_PASID_PRI]);
    const d = t.allocPaging();
    expect(d.ops.attachDev!(d, t.devs[0]!)).toBe(0);
    const before = t.mem.allocatedPages;
    const info = t.iommu.devices.get(0x18)!;
    const freed = info.pasidTables.length + 2;
    intelIommuOps.releaseDevice!(t.devs[0]!);
    expect(words(t.iommu.contextEntry(0x18))).toEqual([0n, 0n, 0n, 0n]);
    expect(t.iommu.devices.has(0x18)).toBe(false);
    expect(t.iommu.allocatedDids).toEqual([]);
    expect(t.mem.allocatedPages).toBe(before - freed);
    expect(t.pci[0]!.atsEnabled).toBe(false);
  });
});

describe('inspection', () => {
  it('pasidEntryBytes reads zeros for a PASID without a table and allocates none (intel_pasid_get_entry would)', () => {
    const t = new VtdTestbed({}, [ATS_PASID_PRI]);
    const info = t.iommu.devices.get(0x18)!;
    const tables = info.pasidTables.length;
    const pages = t.mem.allocatedPages;
    expect(pasidEntryBytes(t.iommu, info, 64 * 9)).toEqual(new Uint8Array(64));
    expect([info.pasidTables.length, t.mem.allocatedPages]).toEqual([tables, pages]);
    // The driver's own lookups still allocate on demand, as the kernel does.
    expect(t.iommu.pasidEntryAddr(info, 64 * 9)).toBeDefined();
    expect(info.pasidTables.length).toBe(tables + 1);
  });
});
