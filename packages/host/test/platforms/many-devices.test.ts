// createHost accepts up to 64 devices; the hardware presets place them 31 to a bus (slot 0
// is the host bridge's), so the 32nd device sits on bus 1 rather than an invalid slot 32.
import * as U from '@iommufd/uapi';
import { describe, expect, it } from 'vitest';
import { attachedDevice } from './vmm.js';

describe.each(['arm-smmuv3', 'intel-vtd'] as const)('%s with 40 devices', (platform) => {
  it('binds and DMAs through a device on the second bus', async () => {
    const { host, p, fd, path, ioas, va } = await attachedDevice({ platform, devices: 40 }, 39, Uint8Array.of(1, 2, 3, 4));
    expect(host.vfioDevices).toHaveLength(40);
    const iova = U.ioasMap(p, fd, { ioasId: ioas, userVa: va, length: 4096n, iova: 0x10_0000n });
    expect(host.dma(path, { iova, length: 4, write: false })).toEqual({ ok: true, data: Uint8Array.of(1, 2, 3, 4) });
  });
});
