// A PASID wider than the SMMU's SubstreamID: Linux sets `iommu.max_pasids = 1 << ssid_bits`
// at probe, so iommu_attach_device_pasid refuses it (EINVAL) before the driver sees it. The
// model's SMMU driver did not declare its PASID width, the core skipped the check as for a
// device without PASID, and the driver's CFGI_CD encoding of SSID 0x200001 threw
// BitLayoutError out of the ioctl (fuzz finding pasid-beyond-smmu-ssid, tegra241-cmdqv).
import * as U from '@iommufd/uapi';
import { describe, expect, it } from 'vitest';
import { createHost } from '../../src/index.js';

describe.each(['arm-smmuv3', 'tegra241-cmdqv'] as const)('%s: PASID width of the SMMU', (platform) => {
  it('GET_HW_INFO reports the SSID width; a wider PASID is EINVAL, one inside it attaches', async () => {
    const host = await createHost({ platform, devices: 2 });
    const p = host.process;
    const fd = p.open('/dev/iommu');
    const ioas = U.ioasAlloc(p, fd);
    const path = host.vfioDevices[1]!;
    const dev = p.open(path);
    U.vfioDeviceBindIommufd(p, dev, { iommufd: fd });
    const devId = host.boundDeviceId(path)!;
    expect(U.getHwInfo(p, fd, { devId }).maxPasidLog2).toBe(20);
    const hwpt = U.hwptAlloc(p, fd, { devId, ptId: ioas, flags: U.IOMMU_HWPT_ALLOC_PASID });
    const attach = (pasid: number): number =>
      p.ioctl(dev, U.VFIO_DEVICE_ATTACH_IOMMUFD_PT, U.vfio_device_attach_iommufd_pt.encode({ argsz: U.vfio_device_attach_iommufd_pt.size, flags: U.VFIO_DEVICE_ATTACH_PASID, pt_id: hwpt, pasid }));
    expect(attach(0x20_0001)).toBe(-U.EINVAL);
    expect(attach(1 << 20)).toBe(-U.EINVAL);
    expect(attach((1 << 20) - 1)).toBe(0);
    expect(p.close(dev)).toBe(0);
    expect(p.close(fd)).toBe(0);
    expect(host.pinnedPages).toBe(0);
  });
});
