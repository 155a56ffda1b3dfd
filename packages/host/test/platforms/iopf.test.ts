// I/O page faults on the VT-d preset, through the Host contract: a PRI-capable function
// attached to a HWPT with a FAULT object touches an unmapped IOVA, the page request arrives
// on the FAULT fd, the VMM maps the page and answers, and the retried DMA completes.
import * as U from '@iommufd/uapi';
import { describe, expect, it } from 'vitest';
import { bootVmm, pattern } from './vmm.js';

const IOVA = 0x40_0000n; // past the 2 MiB of guest RAM mapped at IOVA 0

// On the SMMU presets a failed ATS translation comes back to the function without a page
// request (hw-model's SMMUv3 takes PRI requests only as a separate device action, which the
// Host contract's dma() does not issue), so the case runs on intel-vtd only.
describe.each(['intel-vtd'] as const)("I/O page faults on '%s'", (platform) => {
  it('a page request reaches the FAULT fd; after the VMM maps the page and responds, the retried DMA completes', async () => {
    const { host, p, fd, ram, devIds, deviceFds, ioas } = await bootVmm({ platform, devices: 1, strict: true });
    const fault = U.faultQueueAlloc(p, fd);
    const hwpt = U.hwptAlloc(p, fd, { devId: devIds[0]!, ptId: ioas, flags: U.IOMMU_HWPT_FAULT_ID_VALID, faultId: fault.id });
    expect(U.vfioDeviceAttachIommufdPt(p, deviceFds[0]!, { ptId: hwpt })).toBe(hwpt);
    // The FAULT object is held by the HWPT.
    expect(host.objects(fd).find((o) => o.id === hwpt)?.refs).toContain(fault.id);

    const miss = host.dma(host.vfioDevices[0]!, { iova: IOVA + 0x10n, length: 4, write: false });
    expect(miss.ok).toBe(false);
    const faults = U.readPageFaults(p, fault.fd);
    expect(faults).toHaveLength(1);
    expect(faults[0]).toMatchObject({ dev_id: devIds[0], pasid: 0, perm: U.IOMMU_PGFAULT_PERM_READ, addr: IOVA });
    // Nothing more pending.
    expect(U.readPageFaults(p, fault.fd)).toEqual([]);

    p.poke(ram + 0x1000n, pattern(32, 0x80));
    expect(U.ioasMap(p, fd, { ioasId: ioas, userVa: ram, length: 0x1000n * 2n, iova: IOVA })).toBe(IOVA);
    expect(U.writePageResponses(p, fault.fd, [{ cookie: faults[0]!.cookie, code: U.IOMMUFD_PAGE_RESP_SUCCESS }])).toBe(1);
    // A response to a cookie that is not pending is EINVAL.
    expect(p.write(fault.fd, U.iommu_hwpt_page_response.encode({ cookie: faults[0]!.cookie, code: 0 }))).toBe(-U.EINVAL);
    expect(host.dma(host.vfioDevices[0]!, { iova: IOVA + 0x1010n, length: 4, write: false })).toEqual({ ok: true, data: pattern(4, 0x90) });

    for (const dfd of deviceFds) expect(host.process.close(dfd)).toBe(0);
    expect(host.process.close(fault.fd)).toBe(0);
    expect(host.process.close(fd)).toBe(0);
    expect(host.contexts()).toEqual([{ released: true, objects: [] }]);
    expect(host.pinnedPages).toBe(0);
  });
});
