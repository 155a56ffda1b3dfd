// createHost accepts up to 64 devices; the hardware presets place them 31 to a bus (slot 0
// is the host bridge's), so the 32nd device sits on bus 1 rather than an invalid slot 32.
import * as U from '@iommufd/uapi';
import { describe, expect, it } from 'vitest';
import { createHost } from '../../src/index.js';

describe.each(['arm-smmuv3', 'intel-vtd'] as const)('%s with 40 devices', (platform) => {
  it('binds and DMAs through a device on the second bus', async () => {
    const host = await createHost({ platform, devices: 40 });
    expect(host.vfioDevices).toHaveLength(40);
    const p = host.process;
    const fd = p.open('/dev/iommu');
    const last = p.open(host.vfioDevices[39]!);
    U.vfioDeviceBindIommufd(p, last, { iommufd: fd });
    const ioas = U.ioasAlloc(p, fd);
    U.vfioDeviceAttachIommufdPt(p, last, { ptId: ioas });
    const va = p.mmap(4096n, U.PROT_READ | U.PROT_WRITE, U.MAP_PRIVATE | U.MAP_ANONYMOUS, -1, 0);
    p.poke(va, Uint8Array.of(1, 2, 3, 4));
    const iova = U.ioasMap(p, fd, { ioasId: ioas, userVa: va, length: 4096n, iova: 0x10_0000n });
    const r = host.dma(host.vfioDevices[39]!, { iova, length: 4, write: false });
    expect(r).toEqual({ ok: true, data: Uint8Array.of(1, 2, 3, 4) });
  });
});
