// A map far larger than RAM with a domain attached must fail as the kernel does (GUP runs
// out of memory → -ENOMEM) after work bounded by RAM, leaving nothing pinned; it once built
// a per-page list of the whole request first and threw RangeError out of the ioctl.
import * as U from '@iommufd/uapi';
import { describe, expect, it } from 'vitest';
import { bootVmm } from './vmm.js';

describe('IOAS_MAP of 1 TiB on a 64 MiB arm-smmuv3 machine with a device attached', () => {
  it('returns -ENOMEM, pins nothing and leaves the IOAS usable', async () => {
    const { host, p, fd, deviceFds, ioas } = await bootVmm({ platform: 'arm-smmuv3', devices: 1, ramBytes: 64n << 20n });
    U.vfioDeviceAttachIommufdPt(p, deviceFds[0]!, { ptId: ioas });
    const pinnedBefore = host.pinnedPages;
    const size = 1n << 40n;
    const va = p.mmap(size, U.PROT_READ | U.PROT_WRITE, U.MAP_PRIVATE | U.MAP_ANONYMOUS, -1, 0);
    expect(va > 0n).toBe(true);
    const arg = U.iommu_ioas_map.encode({
      size: U.iommu_ioas_map.size,
      flags: U.IOMMU_IOAS_MAP_FIXED_IOVA | U.IOMMU_IOAS_MAP_READABLE | U.IOMMU_IOAS_MAP_WRITEABLE,
      ioas_id: ioas,
      user_va: va,
      length: size,
      iova: 1n << 41n,
    });
    expect(p.ioctl(fd, U.IOMMU_IOAS_MAP, arg)).toBe(-U.ENOMEM);
    expect(host.pinnedPages).toBe(pinnedBefore);
    // As on Linux, GUP faulted the anonymous pages in and they stay resident until munmap.
    expect(p.munmap(va, size)).toBe(0);
    // The failed map left no area behind: the same IOVA range maps again.
    const small = p.mmap(1n << 20n, U.PROT_READ | U.PROT_WRITE, U.MAP_PRIVATE | U.MAP_ANONYMOUS, -1, 0);
    expect(U.ioasMap(p, fd, { ioasId: ioas, userVa: small, length: 1n << 20n, iova: 1n << 41n })).toBe(1n << 41n);
    expect(host.pinnedPages).toBe(pinnedBefore + 256);
  });
});
