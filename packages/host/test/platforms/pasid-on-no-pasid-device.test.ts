// A PASID attach on a device without PASID (max_pasids 0): since Linux 6.15 ("iommu: Skip
// PASID validation for devices without PASID capability") the iommu core neither validates
// the PASID against the device nor calls the driver's set_dev_pasid for it — the device can
// never issue a PASID-tagged transaction. The model called the SMMU driver anyway, which
// encoded a 22-bit SSID into a 20-bit CFGI_CD field and threw out of the ioctl (fuzz finding
// pasid-on-no-pasid-device, tegra241-cmdqv).
import * as U from '@iommufd/uapi';
import { describe, expect, it } from 'vitest';
import { createHost } from '../../src/index.js';

// The SMMU presets' devices have no PASID capability (mock and VT-d ones have 20 bits).
describe.each(['arm-smmuv3', 'tegra241-cmdqv'] as const)('%s: PASID attach on a device without PASID', (platform) => {
  it('any PASID attaches and detaches without programming the device, and RID DMA is unaffected', async () => {
    const host = await createHost({ platform, devices: 3 });
    const p = host.process;
    const fd = p.open('/dev/iommu');
    const ioas = U.ioasAlloc(p, fd);
    const bound = host.vfioDevices.map((path) => {
      const dev = p.open(path);
      U.vfioDeviceBindIommufd(p, dev, { iommufd: fd });
      const devId = host.boundDeviceId(path)!;
      return { path, dev, devId, pasidLog2: U.getHwInfo(p, fd, { devId }).maxPasidLog2 };
    });
    expect(bound.map((b) => b.pasidLog2)).toEqual([0, 0, 0]);
    const plain = bound[1]!;
    const hwpt = U.hwptAlloc(p, fd, { devId: plain.devId, ptId: ioas, flags: U.IOMMU_HWPT_ALLOC_PASID });
    const va = p.mmap(4096n, U.PROT_READ | U.PROT_WRITE, U.MAP_PRIVATE | U.MAP_ANONYMOUS, -1, 0);
    p.poke(va, Uint8Array.of(9, 8, 7, 6));
    const iova = U.ioasMap(p, fd, { ioasId: ioas, userVa: va, length: 4096n, iova: 0x400_0000n });
    expect(U.vfioDeviceAttachIommufdPt(p, plain.dev, { ptId: hwpt })).toBe(hwpt);
    expect(U.vfioDeviceAttachIommufdPt(p, plain.dev, { ptId: hwpt, pasid: 0x20_0001 })).toBe(hwpt);
    expect(host.dma(plain.path, { iova, length: 4, write: false })).toEqual({ ok: true, data: Uint8Array.of(9, 8, 7, 6) });
    U.vfioDeviceDetachIommufdPt(p, plain.dev, { pasid: 0x20_0001 });
    expect(host.dma(plain.path, { iova, length: 4, write: false })).toEqual({ ok: true, data: Uint8Array.of(9, 8, 7, 6) });
    for (const b of bound) expect(p.close(b.dev)).toBe(0);
    expect(p.close(fd)).toBe(0);
    expect(host.pinnedPages).toBe(0);
  });
});
