// The VMM scenario through the real core: guest RAM in an IOAS, a nesting parent, a nested
// HWPT over guest x86 page tables, DMA at guest addresses, stale translation until the
// guest's invalidation, bad invalidation entries, page faults through a FAULT object.
import { describe, expect, it } from 'vitest';
import { IommuCore, iommufdDeviceAttach, iommufdDeviceBind, iommufdDeviceReplace } from '@iommufd/core';
import {
  EINVAL,
  EOPNOTSUPP,
  IOMMU_HW_INFO_TYPE_INTEL_VTD,
  IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_VTD_S1,
  IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
  IOMMU_VIOMMU_TYPE_DEFAULT,
  IommufdError,
  faultQueueAlloc,
  getHwInfo,
  hwptAlloc,
  hwptInvalidate,
  ioasAlloc,
  ioasMap,
  iommu_hw_info_vtd,
  iommu_hwpt_vtd_s1,
  iommu_hwpt_vtd_s1_invalidate,
  readPageFaults,
  viommuAlloc,
  writePageResponses,
} from '@iommufd/uapi';
import { ATS_PASID_PRI, VtdTestbed, hexDesc } from './harness.js';
import { VmmProcess } from './vmm.js';

const GUEST_RAM = 0x10_0000n;

function boot() {
  const core = new IommuCore();
  const t = new VtdTestbed({}, [ATS_PASID_PRI], true, core);
  const p = new VmmProcess(t.mem, core);
  const fd = p.iommufd;
  const bound = iommufdDeviceBind(p.ctx, t.coreDevs[0]!);
  if (typeof bound === 'number') throw new Error(`bind: ${bound}`);
  const ram = p.alloc(GUEST_RAM);
  const ioas = ioasAlloc(p, fd);
  expect(ioasMap(p, fd, { ioasId: ioas, userVa: ram, length: GUEST_RAM, iova: 0n })).toBe(0n);
  const parent = hwptAlloc(p, fd, { devId: bound.devId, ptId: ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT });
  expect(iommufdDeviceAttach(bound.idev, undefined, parent)).toEqual({ ptId: parent });
  /** The guest writes a 4-level x86 table mapping `giova` → `gpa` (tables from GPA 0x1000 up). */
  let next = 0x2000n;
  const guestMap = (giova: bigint, gpa: bigint): void => {
    let table = 0x1000n;
    for (let level = 4; level > 1; level--) {
      const slot = table + ((giova >> BigInt(12 + 9 * (level - 1))) & 0x1ffn) * 8n;
      let e = new DataView(p.peek(ram + slot, 8).buffer).getBigUint64(0, true);
      if ((e & 1n) === 0n) {
        e = next | 7n;
        next += 0x1000n;
        const b = new Uint8Array(8);
        new DataView(b.buffer).setBigUint64(0, e, true);
        p.poke(ram + slot, b);
      }
      table = e & ~0xfffn;
    }
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, gpa | 7n, true);
    p.poke(ram + table + ((giova >> 12n) & 0x1ffn) * 8n, b);
  };
  return { core, t, p, fd, bound, ram, ioas, parent, guestMap };
}

function s1(pgtbl = 0x1000n, width = 48): Uint8Array {
  return iommu_hwpt_vtd_s1.encode({ flags: 0n, pgtbl_addr: pgtbl, addr_width: width, __reserved: 0 });
}
function inv(addr: bigint, npages: bigint, flags = 0): Uint8Array {
  return iommu_hwpt_vtd_s1_invalidate.encode({ addr, npages, flags, __reserved: 0 });
}

describe('intel-vtd through the core (the VMM scenario)', () => {
  it('IOMMU_GET_HW_INFO returns INTEL_VTD with the raw registers; VIOMMU_ALLOC of the default type is refused', () => {
    const { t, p, fd, bound, parent } = boot();
    const info = getHwInfo(p, fd, { devId: bound.devId });
    expect(info.type).toBe(IOMMU_HW_INFO_TYPE_INTEL_VTD);
    expect(iommu_hw_info_vtd.decode(info.data)).toEqual({
      flags: IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17,
      __reserved: 0,
      cap_reg: t.iommu.cap,
      ecap_reg: t.iommu.ecap,
    });
    expect(info.capabilities & 1n).toBe(1n);
    // min(device 16 bits, unit ECAP.PSS+1 = 20 bits)
    expect(info.maxPasidLog2).toBe(16);
    expect(t.iommu.maxPasidLog2).toBe(20);
    expect(() => viommuAlloc(p, fd, { devId: bound.devId, hwptId: parent, type: IOMMU_VIOMMU_TYPE_DEFAULT })).toThrow(IommufdError);
  });

  it('DMA at guest IOVAs through the guest table, stale until IOMMU_HWPT_INVALIDATE, bad entries with errno and entry_num', () => {
    const { t, p, fd, bound, ram, parent, guestMap } = boot();
    const giova = 0x4000_0000n;
    guestMap(giova, 0x8_0000n);
    const nested = hwptAlloc(p, fd, { devId: bound.devId, ptId: parent, data: { type: IOMMU_HWPT_DATA_VTD_S1, bytes: s1() } });
    expect(iommufdDeviceReplace(bound.idev, undefined, nested)).toEqual({ ptId: nested });
    const dev = t.pci[0]!;
    expect(dev.dma({ iova: giova + 4n, length: 4, write: true, data: new Uint8Array([1, 2, 3, 4]) })).toEqual({ ok: true });
    expect([...p.peek(ram + 0x8_0004n, 4)]).toEqual([1, 2, 3, 4]);
    guestMap(giova, 0x9_0000n);
    expect(dev.dma({ iova: giova + 4n, length: 4, write: true, data: new Uint8Array([5, 5, 5, 5]) })).toEqual({ ok: true });
    expect([...p.peek(ram + 0x8_0004n, 4)]).toEqual([5, 5, 5, 5]);
    const mark = t.iommu.qi.log.length;
    expect(hwptInvalidate(p, fd, { hwptId: nested, dataType: IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, entryLen: 24, entries: [inv(giova, 1n)] })).toEqual({ entryNum: 1 });
    expect(t.batchesSince(mark).map((b) => b.map((x) => hexDesc(x.slice(0, 2))))).toEqual([
      [
        ['0x0000000000020036', '0x0000000040000000'],
        ['0x0000001800000003', '0x0000000040000000'],
      ],
    ]);
    expect(dev.dma({ iova: giova + 4n, length: 4, write: true, data: new Uint8Array([6, 6, 6, 6]) })).toEqual({ ok: true });
    expect([...p.peek(ram + 0x9_0004n, 4)]).toEqual([6, 6, 6, 6]);
    const bad = (entries: Uint8Array[]): [number, number | undefined] => {
      try {
        const r = hwptInvalidate(p, fd, { hwptId: nested, dataType: IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, entryLen: 24, entries });
        return [0, r.entryNum];
      } catch (e) {
        if (!(e instanceof IommufdError)) throw e;
        return [e.errno, e.entryNum];
      }
    };
    expect(bad([inv(0x1000n, 1n), inv(0x2001n, 1n)])).toEqual([EINVAL, 1]);
    expect(bad([inv(0x1000n, 1n), inv(0x2000n, 1n), inv(0x3000n, 1n, 4)])).toEqual([EOPNOTSUPP, 2]);
  });

  it('page requests of a nested PRI device reach the FAULT fd; the response goes back as a page-group response', () => {
    const { t, p, fd, bound, parent, guestMap } = boot();
    const fault = faultQueueAlloc(p, fd);
    const nested = hwptAlloc(p, fd, { devId: bound.devId, ptId: parent, data: { type: IOMMU_HWPT_DATA_VTD_S1, bytes: s1() }, faultId: fault.id });
    expect(iommufdDeviceReplace(bound.idev, undefined, nested)).toEqual({ ptId: nested });
    const dev = t.pci[0]!;
    expect(dev.dma({ iova: 0x5000_0000n, length: 4, write: false }).ok).toBe(false);
    const faults = readPageFaults(p, fault.fd);
    expect(faults).toEqual([
      expect.objectContaining({ flags: 2, dev_id: bound.devId, pasid: 0, grpid: 0, perm: 1, addr: 0x5000_0000n, length: 0 }),
    ]);
    guestMap(0x5000_0000n, 0xa_0000n);
    expect(writePageResponses(p, fault.fd, [{ cookie: faults[0]!.cookie, code: 0 }])).toBeGreaterThan(0);
    expect(t.hw.pageResponses).toEqual([{ requesterId: 0x18, code: 0, groupIndex: 0 }]);
    // Not-present entries are not cached (CAP.CM=0), so the retried DMA walks the new guest entry.
    expect(dev.dma({ iova: 0x5000_0000n, length: 4, write: false }).ok).toBe(true);
  });
});
