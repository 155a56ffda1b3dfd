import * as U from '@iommufd/uapi';
import { describe, expect, it } from 'vitest';
import { createHost } from '../../src/index.js';

// IOMMU_IOAS_MAP without WRITEABLE maps IOMMU_READ only: a device write must fault.
describe.each(['mock', 'arm-smmuv3', 'intel-vtd'] as const)('%s: a read-only IOAS mapping', (platform) => {
  it('lets the device read and faults its write', async () => {
    const host = await createHost({ platform, devices: 1 });
    const p = host.process;
    const fd = p.open('/dev/iommu');
    const dev = p.open(host.vfioDevices[0]!);
    U.vfioDeviceBindIommufd(p, dev, { iommufd: fd });
    const ioas = U.ioasAlloc(p, fd);
    U.vfioDeviceAttachIommufdPt(p, dev, { ptId: ioas });
    const va = p.mmap(4096n, U.PROT_READ | U.PROT_WRITE, U.MAP_PRIVATE | U.MAP_ANONYMOUS, -1, 0);
    p.poke(va, Uint8Array.of(9, 8, 7, 6));
    const iova = U.ioasMap(p, fd, { ioasId: ioas, userVa: va, length: 4096n, iova: 0x200_0000n, flags: U.IOMMU_IOAS_MAP_READABLE });
    expect(host.dma(host.vfioDevices[0]!, { iova, length: 4, write: false })).toEqual({ ok: true, data: Uint8Array.of(9, 8, 7, 6) });
    const w = host.dma(host.vfioDevices[0]!, { iova, length: 4, write: true, data: Uint8Array.of(1, 1, 1, 1) });
    expect(w.ok).toBe(false);
    expect(p.peek(va, 4)).toEqual(Uint8Array.of(9, 8, 7, 6));
  });
});
