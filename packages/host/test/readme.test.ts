// The README's opening example, verbatim in behaviour: it must keep working.
import * as U from '@iommufd/uapi';
import { expect, it } from 'vitest';
import { createHost } from '../src/index.js';

it('README example: guest RAM, IOAS_MAP_FILE, VFIO bind + attach, device DMA', async () => {
  const host = await createHost({ platform: 'mock', devices: 1 });
  const p = host.process;
  const ramFd = p.memfdCreate('guest-ram', 2 << 20);
  const ram = p.mmap(2 << 20, U.PROT_READ | U.PROT_WRITE, U.MAP_SHARED, ramFd);
  expect(p.poke(ram + 0x1000n, new TextEncoder().encode('hello'))).toBe(0);
  const iommufd = p.open('/dev/iommu');
  const alloc = U.iommu_ioas_alloc.encode({ size: U.iommu_ioas_alloc.size });
  expect(p.ioctl(iommufd, U.IOMMU_IOAS_ALLOC, alloc)).toBe(0);
  const ioas = U.iommu_ioas_alloc.get(alloc, 'out_ioas_id');
  const map = U.iommu_ioas_map_file.encode({
    size: U.iommu_ioas_map_file.size,
    ioas_id: ioas,
    fd: ramFd,
    start: 0n,
    length: 2n << 20n,
    iova: 1n << 24n,
    flags: U.IOMMU_IOAS_MAP_FIXED_IOVA | U.IOMMU_IOAS_MAP_READABLE | U.IOMMU_IOAS_MAP_WRITEABLE,
  });
  expect(p.ioctl(iommufd, U.IOMMU_IOAS_MAP_FILE, map)).toBe(0);
  const dev = p.open(host.vfioDevices[0]);
  expect(p.ioctl(dev, U.VFIO_DEVICE_BIND_IOMMUFD, U.vfio_device_bind_iommufd.encode({ argsz: 24, iommufd }))).toBe(0);
  expect(p.ioctl(dev, U.VFIO_DEVICE_ATTACH_IOMMUFD_PT, U.vfio_device_attach_iommufd_pt.encode({ argsz: 16, pt_id: ioas }))).toBe(0);
  const r = host.dma(host.vfioDevices[0], { iova: (1n << 24n) + 0x1000n, length: 5, write: false });
  expect(r).toEqual({ ok: true, data: Uint8Array.of(104, 101, 108, 108, 111) });
});
