// After VFIO_DEVICE_DETACH_IOMMUFD_PT, and after the device fd is closed, DMA is blocked —
// also for ATS devices whose ATC cached the translation while attached: the driver's
// blocking path must invalidate the device TLB as Linux does.
import * as U from '@iommufd/uapi';
import { describe, expect, it } from 'vitest';
import { attachedDevice } from './vmm.js';

describe.each(['mock', 'arm-smmuv3', 'intel-vtd'] as const)('%s: DMA after the device leaves its domain', (platform) => {
  it.each(['detach', 'close'] as const)('is blocked after %s', async (how) => {
    const { host, p, fd, dev, path, ioas, va } = await attachedDevice({ platform, devices: 2 }, 1, Uint8Array.of(5, 6, 7, 8));
    const iova = U.ioasMap(p, fd, { ioasId: ioas, userVa: va, length: 4096n, iova: 0x200_0000n });
    // Twice: the second read may be served from the device's ATC.
    for (let i = 0; i < 2; i++) expect(host.dma(path, { iova, length: 4, write: false })).toEqual({ ok: true, data: Uint8Array.of(5, 6, 7, 8) });
    if (how === 'detach') U.vfioDeviceDetachIommufdPt(p, dev, {});
    else expect(p.close(dev)).toBe(0);
    expect(host.dma(path, { iova, length: 4, write: false }).ok).toBe(false);
    expect(host.dma(path, { iova, length: 4, write: true, data: Uint8Array.of(0, 0, 0, 0) }).ok).toBe(false);
    expect(U.peekUser(p, va, 4)).toEqual(Uint8Array.of(5, 6, 7, 8));
  });
});
