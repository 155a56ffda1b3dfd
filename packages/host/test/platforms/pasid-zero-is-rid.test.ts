// VFIO_DEVICE_ATTACH_PASID with pasid 0 names IOMMU_NO_PASID, the RID itself: Linux's
// iommufd_device_attach() attaches the group for pasid 0, it never calls set_dev_pasid. A
// model that treated it as a separate PASID let the driver program its PASID 0 entry — on
// VT-d the RID_PASID entry, on SMMUv3 substream 0 — under a RID the core believed detached
// (the fuzz finding vtd-dma-translated-while-unattached), and a later PASID 0 detach then
// blocked a RID the core believed attached.
import * as U from '@iommufd/uapi';
import { describe, expect, it } from 'vitest';
import { attachedDevice } from './vmm.js';

describe.each(['mock', 'arm-smmuv3', 'intel-vtd'] as const)('%s: PASID 0 is the RID', (platform) => {
  it('a PASID-0 attach translates RID DMA, takes the RID slot (EBUSY) and its detach blocks the RID', async () => {
    const { host, p, fd, dev, path, ioas, va } = await attachedDevice({ platform, devices: 2 }, 1, Uint8Array.of(1, 2, 3, 4));
    U.vfioDeviceDetachIommufdPt(p, dev, {});
    const devId = host.boundDeviceId(path)!;
    const hwpt = U.hwptAlloc(p, fd, { devId, ptId: ioas, flags: U.IOMMU_HWPT_ALLOC_PASID });
    const iova = U.ioasMap(p, fd, { ioasId: ioas, userVa: va, length: 4096n, iova: 0x300_0000n });
    expect(host.dma(path, { iova, length: 4, write: false }).ok).toBe(false);

    expect(U.vfioDeviceAttachIommufdPt(p, dev, { ptId: hwpt, pasid: 0 })).toBe(hwpt);
    expect(host.dma(path, { iova, length: 4, write: false })).toEqual({ ok: true, data: Uint8Array.of(1, 2, 3, 4) });
    // The core holds the device in the RID attachment: a RID attach is the kernel's EBUSY.
    const rid = U.vfio_device_attach_iommufd_pt.encode({ argsz: U.vfio_device_attach_iommufd_pt.size, flags: 0, pt_id: hwpt, pasid: 0 });
    expect(p.ioctl(dev, U.VFIO_DEVICE_ATTACH_IOMMUFD_PT, rid)).toBe(-U.EBUSY);
    expect(host.dma(path, { iova, length: 4, write: false })).toEqual({ ok: true, data: Uint8Array.of(1, 2, 3, 4) });

    U.vfioDeviceDetachIommufdPt(p, dev, { pasid: 0 });
    expect(host.dma(path, { iova, length: 4, write: false }).ok).toBe(false);
    // The RID is free again; a RID attach works and translates.
    expect(U.vfioDeviceAttachIommufdPt(p, dev, { ptId: hwpt })).toBe(hwpt);
    expect(host.dma(path, { iova, length: 4, write: false })).toEqual({ ok: true, data: Uint8Array.of(1, 2, 3, 4) });
    expect(p.close(dev)).toBe(0);
    expect(host.dma(path, { iova, length: 4, write: false }).ok).toBe(false);
  });
});
