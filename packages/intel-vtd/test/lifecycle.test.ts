// Lifecycle through the core: closing the iommufd leaves no DID, no page-table page and no
// PASID entry behind, also when any allocation point (core or driver) fails (fail_nth).
import { describe, expect, it } from 'vitest';
import { FailNth, IommuCore, iommufdDeviceAttach, iommufdDeviceBind, iommufdDeviceReplace, iommufdDeviceUnbind, type BoundDevice } from '@iommufd/core';
import {
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_VTD_S1,
  IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
  IommufdError,
  hwptAlloc,
  hwptInvalidate,
  ioasAlloc,
  ioasMap,
  iommu_hwpt_vtd_s1,
  iommu_hwpt_vtd_s1_invalidate,
  vdeviceAlloc,
  viommuAlloc,
  withScratch,
} from '@iommufd/uapi';
import { IOMMU_HWPT_DATA_VTD_S1_VDID_EXP, IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP, iommu_hwpt_vtd_s1_vdid, pasidEntryBytes } from '../src/index.js';
import { ATS_PASID_PRI, VtdTestbed } from './harness.js';
import { VmmProcess } from './vmm.js';

/** The VMM scenario up to the first failing step; returns the bound device (if bind worked). */
function scenario(t: VtdTestbed, p: VmmProcess, ram: bigint): BoundDevice | undefined {
  const fd = p.iommufd;
  const bound = iommufdDeviceBind(p.ctx, t.coreDevs[0]!);
  if (typeof bound === 'number') return undefined;
  try {
    const ioas = ioasAlloc(p, fd);
    ioasMap(p, fd, { ioasId: ioas, userVa: ram, length: 0x4_0000n, iova: 0n });
    const parent = hwptAlloc(p, fd, { devId: bound.devId, ptId: ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT });
    if (typeof iommufdDeviceAttach(bound.idev, undefined, parent) === 'number') return bound.idev;
    const nested = hwptAlloc(p, fd, {
      devId: bound.devId,
      ptId: parent,
      data: { type: IOMMU_HWPT_DATA_VTD_S1, bytes: iommu_hwpt_vtd_s1.encode({ flags: 0n, pgtbl_addr: 0x1000n, addr_width: 48, __reserved: 0 }) },
    });
    if (typeof iommufdDeviceReplace(bound.idev, undefined, nested) === 'number') return bound.idev;
    t.pci[0]!.dma({ iova: 0x1000n, length: 4, write: false });
    hwptInvalidate(p, fd, {
      hwptId: nested,
      dataType: IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
      entryLen: 24,
      entries: [iommu_hwpt_vtd_s1_invalidate.encode({ addr: 0n, npages: (1n << 64n) - 1n, flags: 0, __reserved: 0 })],
    });
    const viommu = viommuAlloc(p, fd, { devId: bound.devId, hwptId: parent, type: IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP }).id;
    vdeviceAlloc(p, fd, { viommuId: viommu, devId: bound.devId, virtId: 0x100n });
    const vnested = hwptAlloc(p, fd, {
      devId: bound.devId,
      ptId: viommu,
      data: { type: IOMMU_HWPT_DATA_VTD_S1_VDID_EXP, bytes: iommu_hwpt_vtd_s1_vdid.encode({ flags: 0n, pgtbl_addr: 0x1000n, addr_width: 48, guest_did: 3 }) },
    });
    iommufdDeviceReplace(bound.idev, undefined, vnested);
  } catch (e) {
    if (!(e instanceof IommufdError)) throw e;
  }
  return bound.idev;
}

function run(n: number): { injected: boolean; site: string | undefined } {
  const fail = new FailNth(n);
  const core = new IommuCore({ faultInjection: fail });
  const t = new VtdTestbed({}, [ATS_PASID_PRI], true, core);
  const info = t.iommu.devices.get(0x18)!;
  // The PASID table holding PASID 0 lives as long as the device; allocate it before the baseline.
  t.iommu.pasidEntryAddr(info, 0);
  const p = new VmmProcess(t.mem, core);
  const ram = p.alloc(0x4_0000n);
  // The wrappers' per-process scratch memory is the process's, not the kernel's: map it first.
  withScratch(p, (s) => s.place(new Uint8Array(1)));
  const base = t.mem.allocatedPages;
  const idev = scenario(t, p, ram);
  // VFIO device fd close, then the last close of /dev/iommu.
  if (idev !== undefined) iommufdDeviceUnbind(idev);
  p.ctx.release();
  expect(t.iommu.allocatedDids).toEqual([]);
  expect(t.mem.allocatedPages).toBe(base);
  expect([...pasidEntryBytes(t.iommu, info)].every((b) => b === 0)).toBe(true);
  expect(t.pci[0]!.dma({ iova: 0x1000n, length: 4, write: false }).ok).toBe(false);
  return { injected: fail.injected, site: fail.failedSite };
}

describe('lifecycle', () => {
  it('closing the iommufd after the full scenario leaves nothing behind', () => {
    expect(run(0).injected).toBe(false);
  });

  it('fail_nth: every allocation point failing in turn still leaves nothing behind', () => {
    let n = 1;
    const sites = new Set<string>();
    for (; n < 200; n++) {
      const r = run(n);
      if (!r.injected) break;
      sites.add(r.site ?? '');
    }
    // Driver allocation points are among the ones made to fail.
    expect(sites.has('domain-alloc')).toBe(true);
    expect(n).toBeGreaterThan(5);
    expect(n).toBeLessThan(200);
  });
});
