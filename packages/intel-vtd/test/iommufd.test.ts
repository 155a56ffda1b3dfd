import { describe, expect, it } from 'vitest';
import { IOMMU_DIRTY_NO_CLEAR, IOMMU_READ, IOMMU_WRITE, type IopfGroup } from '@iommufd/driver-api';
import { VTD_REG, VtdIotlbDesc } from '@iommufd/hw-model';
import {
  EINVAL,
  ENODEV,
  EOPNOTSUPP,
  IOMMU_HW_INFO_TYPE_ARM_SMMUV3,
  IOMMU_HW_INFO_TYPE_DEFAULT,
  IOMMU_HW_INFO_TYPE_INTEL_VTD,
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  iommu_hw_info_vtd,
} from '@iommufd/uapi';
import { intelIommuOps, pasidEntryBytes, type DmarDomain, type QiDesc } from '../src/index.js';
import { ATS_PASID_PRI, PLAIN, VtdTestbed, hexDesc, words } from './harness.js';

const RW = IOMMU_READ | IOMMU_WRITE;

describe('hw_info, capabilities', () => {
  it('reports INTEL_VTD with the erratum flag and the raw CAP/ECAP for DEFAULT and INTEL_VTD, EOPNOTSUPP otherwise', () => {
    const t = new VtdTestbed();
    const cap = t.hw.mmioRead(VTD_REG.CAP, 8);
    const ecap = t.hw.mmioRead(VTD_REG.ECAP, 8);
    for (const type of [IOMMU_HW_INFO_TYPE_DEFAULT, IOMMU_HW_INFO_TYPE_INTEL_VTD]) {
      const r = intelIommuOps.hwInfo!(t.devs[0]!, type);
      if (typeof r === 'number') throw new Error('hw_info failed');
      expect(r.type).toBe(IOMMU_HW_INFO_TYPE_INTEL_VTD);
      expect(r.data.length).toBe(24);
      expect(iommu_hw_info_vtd.decode(r.data)).toEqual({ flags: 1, __reserved: 0, cap_reg: cap, ecap_reg: ecap });
    }
    expect(intelIommuOps.hwInfo!(t.devs[0]!, IOMMU_HW_INFO_TYPE_ARM_SMMUV3)).toBe(EOPNOTSUPP);
    expect(intelIommuOps.capable(t.devs[0]!, 'DIRTY_TRACKING')).toBe(true);
    expect(intelIommuOps.capable(t.devs[0]!, 'ENFORCE_CACHE_COHERENCY')).toBe(false);
    expect(intelIommuOps.capable(new VtdTestbed({ secondStageAccessDirty: false }).devs[0]!, 'DIRTY_TRACKING')).toBe(false);
  });
});

describe('dirty tracking (ECAP.SLADS + SMPWC)', () => {
  it('SSADE on/off rewrites the PASID entry with PC + DSI flushes; D bits are read, cleared and re-armed', () => {
    const t = new VtdTestbed();
    const d = t.allocPaging(IOMMU_HWPT_ALLOC_DIRTY_TRACKING) as DmarDomain;
    expect(d.ops.attachDev!(d, t.devs[0]!)).toBe(0);
    const info = t.iommu.devices.get(0x10)!;
    const bufs = [t.page(), t.page()];
    expect(d.ops.mapPages!(d, 0x10_0000n, bufs[0]!, 4096n, 1, RW).status).toBe(0);
    expect(d.ops.mapPages!(d, 0x10_1000n, bufs[1]!, 4096n, 1, RW).status).toBe(0);
    const collected: Array<[bigint, bigint]> = [];
    const bitmap = { record: (a: bigint, l: bigint) => collected.push([a, l]) };
    expect(d.dirtyOps!.readAndClearDirty(d, 0x10_0000n, 0x2000n, 0, bitmap)).toBe(EINVAL);
    const mark = t.iommu.qi.log.length;
    expect(d.dirtyOps!.setDirtyTracking(d, true)).toBe(0);
    expect(words(pasidEntryBytes(t.iommu, info))[0]! & (1n << 9n)).toBe(1n << 9n);
    expect(t.batchesSince(mark).map((b) => b.map((x) => hexDesc(x.slice(0, 2))))).toEqual([
      [['0x0000000000020017', '0x0000000000000000']],
      [['0x0000000000020022', '0x0000000000000000']],
    ]);
    expect(t.pci[0]!.dma({ iova: 0x10_1010n, length: 4, write: true, data: new Uint8Array(4) })).toEqual({ ok: true });
    expect(d.dirtyOps!.readAndClearDirty(d, 0x10_0000n, 0x2000n, IOMMU_DIRTY_NO_CLEAR, bitmap)).toBe(0);
    expect(d.dirtyOps!.readAndClearDirty(d, 0x10_0000n, 0x2000n, 0, bitmap)).toBe(0);
    expect(d.dirtyOps!.readAndClearDirty(d, 0x10_0000n, 0x2000n, 0, bitmap)).toBe(0);
    expect(collected).toEqual([
      [0x10_1000n, 0x1000n],
      [0x10_1000n, 0x1000n],
    ]);
    // After the clear (and its IOTLB flush) a new write sets D again.
    expect(t.pci[0]!.dma({ iova: 0x10_1010n, length: 4, write: true, data: new Uint8Array(4) })).toEqual({ ok: true });
    expect(d.dirtyOps!.readAndClearDirty(d, 0x10_0000n, 0x2000n, 0, bitmap)).toBe(0);
    expect(collected.length).toBe(3);
    expect(d.dirtyOps!.setDirtyTracking(d, false)).toBe(0);
    expect(words(pasidEntryBytes(t.iommu, info))[0]! & (1n << 9n)).toBe(0n);
  });
});

describe('page requests (PRI) into the fault path and page-group responses', () => {
  it('a recoverable fault of a PRI device reaches the domain fault handler as a group; the response is a type-9 descriptor', () => {
    const t = new VtdTestbed({}, [PLAIN, ATS_PASID_PRI]);
    const groups: IopfGroup[] = [];
    const noPri = t.allocPaging();
    noPri.iopfHandler = (g) => (groups.push(g), 0);
    expect(noPri.ops.attachDev!(noPri, t.devs[0]!)).toBe(ENODEV);
    const d = t.allocPaging();
    d.iopfHandler = (g) => (groups.push(g), 0);
    expect(d.ops.attachDev!(d, t.devs[1]!)).toBe(0);
    const r = t.pci[1]!.dma({ iova: 0x4444_0000n, length: 4, write: true, data: new Uint8Array(4) });
    expect(r.ok).toBe(false);
    expect(groups.length).toBe(1);
    const g = groups[0]!;
    expect(g.dev).toBe(t.devs[1]);
    expect(g.domain).toBe(d);
    expect(g.faults).toEqual([{ flags: 2, pasid: 0, grpid: 0, perm: 2, addr: 0x4444_0000n }]);
    expect(t.iommu.regs.read64(VTD_REG.PQH)).toBe(t.iommu.regs.read64(VTD_REG.PQT));
    // The user maps the page and answers SUCCESS.
    expect(d.ops.mapPages!(d, 0x4444_0000n, t.page(), 4096n, 1, RW).status).toBe(0);
    const mark = t.iommu.qi.log.length;
    intelIommuOps.pageResponse!(t.devs[1]!, g.faults[0]!, 0);
    expect(t.batchesSince(mark).map((b) => b.map((x) => hexDesc(x)))).toEqual([
      [['0x0000000000180009', '0x0000000000000000', '0x0000000000000000', '0x0000000000000000']],
    ]);
    expect(t.hw.pageResponses).toEqual([{ requesterId: 0x18, code: 0, groupIndex: 0 }]);
    expect(t.pci[1]!.dma({ iova: 0x4444_0000n, length: 4, write: true, data: new Uint8Array(4) })).toEqual({ ok: true });
  });

  it('a group nobody handles is answered INVALID by the driver; PASID requests carry PASID_VALID | RESP_NEEDS_PASID', () => {
    const t = new VtdTestbed({}, [ATS_PASID_PRI]);
    const groups: IopfGroup[] = [];
    const d = t.allocPaging(1 << 3);
    d.iopfHandler = (g) => (groups.push(g), 0);
    expect(d.ops.setDevPasid!(d, t.devs[0]!, 7, undefined)).toBe(0);
    t.pci[0]!.dma({ iova: 0x5000n, length: 4, write: false, pasid: 7 });
    expect(groups.map((g) => g.faults)).toEqual([[{ flags: 1 | 2 | 8, pasid: 7, grpid: 0, perm: 1, addr: 0x5000n }]]);
    const plain = t.allocPaging();
    expect(plain.ops.attachDev!(plain, t.devs[0]!)).toBe(0);
    // Detach the fault-capable PASID domain: the RID domain has no handler now.
    intelIommuOps.blockedDomain.ops.setDevPasid!(intelIommuOps.blockedDomain, t.devs[0]!, 7, d);
    t.hw.pageRequest({ requesterId: 0x18, address: 0x9000n, read: true, write: false, lastInGroup: true, groupIndex: 5 });
    expect(t.hw.pageResponses.at(-1)).toEqual({ requesterId: 0x18, code: 1, groupIndex: 5 });
  });
});

describe('page requests for a PASID with nothing attached', () => {
  it('are answered INVALID, not handed to the RID domain (intel_iommu_ops has no user_pasid_table)', () => {
    const t = new VtdTestbed({}, [ATS_PASID_PRI]);
    const groups: IopfGroup[] = [];
    const d = t.allocPaging(1 << 3);
    d.iopfHandler = (g) => (groups.push(g), 0);
    expect(d.ops.attachDev!(d, t.devs[0]!)).toBe(0);
    expect(t.hw.pageRequest({ requesterId: 0x18, pasid: 9, address: 0x9000n, read: true, write: false, lastInGroup: true, groupIndex: 4 })).toBe(true);
    expect(groups).toEqual([]);
    expect(t.hw.pageResponses.at(-1)).toEqual({ requesterId: 0x18, pasid: 9, code: 1, groupIndex: 4 });
    // PASID 0 with the PASID flag is the RID's attachment (IOMMU_NO_PASID).
    expect(t.hw.pageRequest({ requesterId: 0x18, pasid: 0, address: 0xa000n, read: true, write: false, lastInGroup: true, groupIndex: 6 })).toBe(true);
    expect(groups.map((g) => g.faults[0]!.addr)).toEqual([0xa000n]);
  });
});

describe('qi_submit_sync error handling', () => {
  it('IQE on the first descriptor: the slot is replaced by the wait, IQE cleared, EINVAL; the queue keeps working', () => {
    const t = new VtdTestbed();
    const bad: QiDesc = [VtdIotlbDesc.encode({ TYPE: 2, G: 0 })[0]!, 0n, 0n, 0n];
    expect(t.iommu.qi.submitSync([bad])).toBe(EINVAL);
    expect(t.iommu.regs.read32(VTD_REG.FSTS) & 0x10).toBe(0);
    expect(t.iommu.qi.submitSync([t.iommu.descIotlb(2, 0n, 0, 2)])).toBe(0);
    expect(t.iommu.regs.read64(VTD_REG.IQH)).toBe(t.iommu.regs.read64(VTD_REG.IQT));
  });

  it('ITE: a device-TLB time-out aborts the batch and the driver resubmits it', () => {
    const t = new VtdTestbed({}, [ATS_PASID_PRI]);
    const d = t.allocPaging();
    expect(d.ops.attachDev!(d, t.devs[0]!)).toBe(0);
    expect(d.ops.mapPages!(d, 0x6000n, t.page(), 4096n, 1, RW).status).toBe(0);
    t.hw.injectDeviceTlbError(0x18, 'timeout');
    const mark = t.iommu.qi.log.length;
    expect(d.ops.unmapPages!(d, 0x6000n, 4096n, 1)).toBe(4096n);
    const log = t.iommu.qi.log.slice(mark);
    expect(log.length).toBe(2);
    expect(log[0]!.descs).toEqual(log[1]!.descs);
    expect(t.iommu.regs.read32(VTD_REG.FSTS) & 0x40).toBe(0);
  });
});
