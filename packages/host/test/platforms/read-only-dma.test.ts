// IOMMU_IOAS_MAP without WRITEABLE maps IOMMU_READ only: a device write must fault and
// leave memory as it was, on every platform.
import * as U from '@iommufd/uapi';
import { describe, expect, it } from 'vitest';
import { attachedDevice } from './vmm.js';

describe.each(['mock', 'arm-smmuv3', 'intel-vtd'] as const)('%s: a read-only IOAS mapping', (platform) => {
  it('lets the device read and faults its write', async () => {
    const { host, p, fd, path, ioas, va } = await attachedDevice({ platform, devices: 1 }, 0, Uint8Array.of(9, 8, 7, 6));
    // 32 MiB: inside the mock's aperture [16 MiB, 2 GiB) as well as the hardware ones.
    const iova = U.ioasMap(p, fd, { ioasId: ioas, userVa: va, length: 4096n, iova: 0x200_0000n, flags: U.IOMMU_IOAS_MAP_READABLE });
    expect(host.dma(path, { iova, length: 4, write: false })).toEqual({ ok: true, data: Uint8Array.of(9, 8, 7, 6) });
    const w = host.dma(path, { iova, length: 4, write: true, data: Uint8Array.of(1, 1, 1, 1) });
    expect(w.ok).toBe(false);
    expect(U.peekUser(p, va, 4)).toEqual(Uint8Array.of(9, 8, 7, 6));
  });
});
