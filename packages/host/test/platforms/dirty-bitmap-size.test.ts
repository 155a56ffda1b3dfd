// IOMMU_HWPT_GET_DIRTY_BITMAP over a garbage-sized range: the bitmap of a 2^64-byte range
// would be 2^49 bytes; the call must answer with an errno (it threw RangeError out of the
// ioctl when the model read the whole bitmap into one buffer), and a bitmap larger than the
// whole-buffer path (1 MiB) is still read, filled and written back.
import * as U from '@iommufd/uapi';
import { describe, expect, it } from 'vitest';
import { createHost } from '../../src/index.js';

describe('GET_DIRTY_BITMAP bitmap sizes', () => {
  const setup = async () => {
    const host = await createHost({ platform: 'mock', devices: 1 });
    const p = host.process;
    const fd = p.open('/dev/iommu');
    const dev = p.open(host.vfioDevices[0]!);
    U.vfioDeviceBindIommufd(p, dev, { iommufd: fd });
    const ioas = U.ioasAlloc(p, fd);
    const hwpt = U.hwptAlloc(p, fd, { devId: host.boundDeviceId(host.vfioDevices[0]!)!, ptId: ioas, flags: U.IOMMU_HWPT_ALLOC_DIRTY_TRACKING });
    const get = (iova: bigint, length: bigint, data: bigint): number =>
      p.ioctl(fd, U.IOMMU_HWPT_GET_DIRTY_BITMAP, U.iommu_hwpt_get_dirty_bitmap.encode({ size: U.iommu_hwpt_get_dirty_bitmap.size, hwpt_id: hwpt, iova, length, page_size: 4096n, data }));
    return { p, get };
  };

  it('a bitmap beyond the user mapping is ENOMEM (as for small ones), never an exception', async () => {
    const { p, get } = await setup();
    const va = p.mmap(4096n, U.PROT_READ | U.PROT_WRITE, U.MAP_PRIVATE | U.MAP_ANONYMOUS, -1, 0);
    for (const length of [(1n << 64n) - 4096n, 1n << 52n, 1n << 40n]) expect(get(0n, length, va), length.toString(16)).toBe(-U.ENOMEM);
  });

  it('a 2 MiB bitmap (64 GiB of IOVA) is handled in chunks: 0, contents kept; read-only is EFAULT', async () => {
    const { p, get } = await setup();
    const len = 2n << 20n;
    const va = p.mmap(len, U.PROT_READ | U.PROT_WRITE, U.MAP_PRIVATE | U.MAP_ANONYMOUS, -1, 0);
    p.poke(va + len - 8n, Uint8Array.of(0xaa));
    expect(get(0n, len * 8n * 4096n, va)).toBe(0);
    expect(p.peek(va + len - 8n, 2)).toEqual(Uint8Array.of(0xaa, 0));
    const ro = p.mmap(len, U.PROT_READ, U.MAP_PRIVATE | U.MAP_ANONYMOUS, -1, 0);
    expect(get(0n, len * 8n * 4096n, ro)).toBe(-U.EFAULT);
  });
});
