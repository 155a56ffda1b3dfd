import * as U from '@iommufd/uapi';
import { describe, expect, it } from 'vitest';
import {
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_ATTACH_PASID,
  VFIO_DEVICE_BIND_FLAG_TOKEN,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
  VFIO_DEVICE_DETACH_PASID,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_device_detach_iommufd_pt,
} from '@iommufd/uapi';
import { MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE } from '@iommufd/uapi';
import { createHost, HostError, type Host } from '../src/index.js';

const AP = 1n << 24n;

async function vmm(devices = 2) {
  const host = await createHost({ platform: 'mock', devices });
  const p = host.process;
  const iommufd = p.open('/dev/iommu');
  const alloc = U.iommu_ioas_alloc.encode({ size: U.iommu_ioas_alloc.size });
  expect(p.ioctl(iommufd, U.IOMMU_IOAS_ALLOC, alloc)).toBe(0);
  const ioas = U.iommu_ioas_alloc.get(alloc, 'out_ioas_id');
  return { host, p, iommufd, ioas };
}

const bind = (host: Host, fd: number, value: Partial<{ argsz: number; flags: number; iommufd: number; token_uuid_ptr: bigint }>, extra = 0) => {
  const b = new Uint8Array(vfio_device_bind_iommufd.size + extra);
  vfio_device_bind_iommufd.encode({ argsz: vfio_device_bind_iommufd.size, ...value }, b);
  return { rc: host.process.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, b), devId: vfio_device_bind_iommufd.get(b, 'out_devid'), bytes: b };
};
const attach = (host: Host, fd: number, value: Partial<{ argsz: number; flags: number; pt_id: number; pasid: number }>) => {
  const b = vfio_device_attach_iommufd_pt.encode({ argsz: vfio_device_attach_iommufd_pt.size, ...value });
  return { rc: host.process.ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, b), ptId: vfio_device_attach_iommufd_pt.get(b, 'pt_id') };
};
const detach = (host: Host, fd: number, value: Partial<{ argsz: number; flags: number; pasid: number }>) =>
  host.process.ioctl(fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, vfio_device_detach_iommufd_pt.encode({ argsz: vfio_device_detach_iommufd_pt.size, ...value }));

describe('createHost', () => {
  it('names the devices of every preset and refuses bad options', async () => {
    const host = await createHost({ platform: 'mock', devices: 3 });
    expect(host.vfioDevices).toEqual(['/dev/vfio/devices/vfio0', '/dev/vfio/devices/vfio1', '/dev/vfio/devices/vfio2']);
    expect(host.platform).toBe('mock');
    for (const platform of ['intel-vtd', 'arm-smmuv3', 'tegra241-cmdqv'] as const) {
      expect((await createHost({ platform, devices: 2 })).vfioDevices).toEqual(['/dev/vfio/devices/vfio0', '/dev/vfio/devices/vfio1']);
    }
    await expect(createHost({ platform: 'sparc' as never })).rejects.toThrow(HostError);
    await expect(createHost({ platform: 'mock', devices: -1 })).rejects.toThrow(/devices must be/);
    await expect(createHost({ platform: 'mock', ramBytes: 1000 })).rejects.toThrow(/ramBytes/);
    expect(() => host.dma('/dev/vfio/devices/vfio9', { iova: 0n, length: 1, write: false })).toThrow(HostError);
  });
});

describe('VFIO device cdev', () => {
  it('needs a bind before anything else and checks BIND argsz, flags and the iommufd', async () => {
    const { host, p, iommufd } = await vmm();
    const fd = p.open(host.vfioDevices[0]);
    expect(attach(host, fd, { pt_id: 1 }).rc).toBe(-U.EINVAL);
    expect(detach(host, fd, {})).toBe(-U.EINVAL);
    expect(p.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, 0n)).toBe(-U.EFAULT);
    expect(bind(host, fd, { argsz: 15, iommufd }).rc).toBe(-U.EINVAL);
    const tail = bind(host, fd, { argsz: 32, iommufd }, 8);
    expect(tail.rc).toBe(0);
    p.close(fd);
    const fd2 = p.open(host.vfioDevices[0]);
    const big = new Uint8Array(32);
    vfio_device_bind_iommufd.encode({ argsz: 32, iommufd }, big);
    big[31] = 1;
    expect(p.ioctl(fd2, VFIO_DEVICE_BIND_IOMMUFD, big)).toBe(-U.E2BIG);
    expect(bind(host, fd2, { iommufd: -1 }).rc).toBe(-U.EINVAL);
    expect(bind(host, fd2, { iommufd, flags: 2 }).rc).toBe(-U.EINVAL);
    expect(bind(host, fd2, { iommufd, flags: VFIO_DEVICE_BIND_FLAG_TOKEN }).rc).toBe(-U.EFAULT);
    expect(bind(host, fd2, { iommufd: 77 }).rc).toBe(-U.EBADF);
    const mfd = p.memfdCreate('x', 4096);
    expect(bind(host, fd2, { iommufd: mfd }).rc).toBe(-U.EBADFD);
    const ok = bind(host, fd2, { iommufd });
    expect(ok.rc).toBe(0);
    expect(ok.devId).toBe(host.boundDeviceId(host.vfioDevices[0]));
    expect(bind(host, fd2, { iommufd }).rc).toBe(-U.EINVAL);
    // A second open of the same device cannot bind while the first holds it.
    const fd3 = p.open(host.vfioDevices[0]);
    expect(bind(host, fd3, { iommufd }).rc).toBe(-U.EINVAL);
    expect(p.ioctl(fd2, 0x3b6b, 0n)).toBe(-U.ENOTTY);
  });

  it('checks ATTACH/DETACH argsz and flags, replaces on a second attach, unbinds on close', async () => {
    const { host, p, iommufd, ioas } = await vmm();
    const fd = p.open(host.vfioDevices[0]);
    const { devId } = bind(host, fd, { iommufd });
    expect(attach(host, fd, { argsz: 11, pt_id: ioas }).rc).toBe(-U.EINVAL);
    expect(attach(host, fd, { flags: 2, pt_id: ioas }).rc).toBe(-U.EINVAL);
    expect(attach(host, fd, { argsz: 12, flags: VFIO_DEVICE_ATTACH_PASID, pt_id: ioas }).rc).toBe(-U.EINVAL);
    expect(detach(host, fd, { argsz: 7 })).toBe(-U.EINVAL);
    expect(detach(host, fd, { flags: 2 })).toBe(-U.EINVAL);
    expect(detach(host, fd, { argsz: 8, flags: VFIO_DEVICE_DETACH_PASID })).toBe(-U.EINVAL);
    expect(detach(host, fd, {})).toBe(0);
    const a = attach(host, fd, { argsz: 12, pt_id: ioas });
    expect(a.rc).toBe(0);
    expect(a.ptId).not.toBe(ioas);
    const objs = host.objects(iommufd);
    expect(objs.find((o) => o.id === a.ptId)?.type).toBe('HWPT_PAGING');
    expect(objs.find((o) => o.id === devId)?.type).toBe('DEVICE');
    // Attaching again is a replace; the same IOAS keeps the same auto HWPT.
    expect(attach(host, fd, { pt_id: ioas })).toEqual({ rc: 0, ptId: a.ptId });
    expect(attach(host, fd, { pt_id: 999 }).rc).toBe(-U.ENOENT);
    expect(p.close(fd)).toBe(0);
    expect(host.boundDeviceId(host.vfioDevices[0])).toBeUndefined();
    expect(host.objects(iommufd).map((o) => o.type)).toEqual(['IOAS']);
  });

  it('keeps /dev/iommu alive while a device is bound; closing both releases everything', async () => {
    const { host, p, iommufd } = await vmm(1);
    const fd = p.open(host.vfioDevices[0]);
    expect(bind(host, fd, { iommufd }).rc).toBe(0);
    expect(p.close(iommufd)).toBe(0);
    expect(host.contexts().map((c) => c.released)).toEqual([false]);
    expect(p.close(fd)).toBe(0);
    expect(host.contexts()).toEqual([{ released: true, objects: [] }]);
  });
});

describe('host.dma on the mock platform', () => {
  it('blocks until attached, then translates through the mapping, both directions', async () => {
    const { host, p, iommufd, ioas } = await vmm(1);
    const dev = host.vfioDevices[0];
    const buf = p.mmap(8192n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
    p.poke(buf, Uint8Array.of(1, 2, 3, 4));
    const map = U.iommu_ioas_map.encode({
      size: U.iommu_ioas_map.size,
      flags: U.IOMMU_IOAS_MAP_FIXED_IOVA | U.IOMMU_IOAS_MAP_READABLE | U.IOMMU_IOAS_MAP_WRITEABLE,
      ioas_id: ioas,
      user_va: buf,
      length: 8192n,
      iova: AP,
    });
    expect(p.ioctl(iommufd, U.IOMMU_IOAS_MAP, map)).toBe(0);
    const fd = p.open(dev);
    expect(host.dma(dev, { iova: AP, length: 4, write: false })).toMatchObject({ ok: false, fault: { kind: 'BLOCKED' } });
    bind(host, fd, { iommufd });
    expect(host.dma(dev, { iova: AP, length: 4, write: false })).toMatchObject({ ok: false, fault: { kind: 'BLOCKED' } });
    expect(attach(host, fd, { pt_id: ioas }).rc).toBe(0);
    expect(host.dma(dev, { iova: AP, length: 4, write: false })).toEqual({ ok: true, data: Uint8Array.of(1, 2, 3, 4) });
    expect(host.dma(dev, { iova: AP + 4094n, length: 4, write: true, data: Uint8Array.of(9, 8, 7, 6) })).toEqual({ ok: true });
    expect(p.peek(buf + 4094n, 4)).toEqual(Uint8Array.of(9, 8, 7, 6));
    expect(host.dma(dev, { iova: AP + 8190n, length: 4, write: false })).toMatchObject({ ok: false, fault: { kind: 'F_TRANSLATION', iova: AP + 8192n } });
    expect(host.pinnedPages).toBe(2);
    p.close(fd);
    p.close(iommufd);
    expect(host.pinnedPages).toBe(0);
  });
});

describe('PASID attach through the VFIO cdev', () => {
  it('attaches a PASID-capable HWPT to a PASID, DMA tagged with it translates, close detaches it', async () => {
    const { host, p, iommufd, ioas } = await vmm(1);
    const dev = host.vfioDevices[0];
    const buf = p.mmap(4096n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
    p.poke(buf, Uint8Array.of(0x5a));
    const map = U.iommu_ioas_map.encode({
      size: U.iommu_ioas_map.size,
      flags: U.IOMMU_IOAS_MAP_FIXED_IOVA | U.IOMMU_IOAS_MAP_READABLE,
      ioas_id: ioas,
      user_va: buf,
      length: 4096n,
      iova: AP,
    });
    expect(p.ioctl(iommufd, U.IOMMU_IOAS_MAP, map)).toBe(0);
    const fd = p.open(dev);
    const { devId } = bind(host, fd, { iommufd });
    const alloc = U.iommu_hwpt_alloc.encode({ size: U.iommu_hwpt_alloc.size, dev_id: devId, pt_id: ioas, flags: U.IOMMU_HWPT_ALLOC_PASID });
    expect(p.ioctl(iommufd, U.IOMMU_HWPT_ALLOC, alloc)).toBe(0);
    const hwpt = U.iommu_hwpt_alloc.get(alloc, 'out_hwpt_id');
    expect(attach(host, fd, { flags: VFIO_DEVICE_ATTACH_PASID, pt_id: hwpt, pasid: 5 })).toEqual({ rc: 0, ptId: hwpt });
    expect(host.dma(dev, { iova: AP, length: 1, write: false, pasid: 5 })).toEqual({ ok: true, data: Uint8Array.of(0x5a) });
    expect(host.dma(dev, { iova: AP, length: 1, write: true, pasid: 5 })).toMatchObject({ ok: false, fault: { kind: 'F_PERMISSION' } });
    expect(host.dma(dev, { iova: AP, length: 1, write: false, pasid: 6 })).toMatchObject({ ok: false, fault: { kind: 'BLOCKED' } });
    expect(host.dma(dev, { iova: AP, length: 1, write: false })).toMatchObject({ ok: false, fault: { kind: 'BLOCKED' } });
    // The HWPT is busy while the PASID holds it; closing the device fd detaches it.
    const destroy = U.iommu_destroy.encode({ size: U.iommu_destroy.size, id: hwpt });
    expect(p.ioctl(iommufd, U.IOMMU_DESTROY, destroy)).toBe(-U.EBUSY);
    expect(p.close(fd)).toBe(0);
    expect(p.ioctl(iommufd, U.IOMMU_DESTROY, destroy)).toBe(0);
  });
});

describe('host.spawnProcess', () => {
  it('gives a second VMM its own address space, fds and contexts; a bound device cannot be bound again from it', async () => {
    const { host, p, iommufd } = await vmm(2);
    const q = host.spawnProcess();
    expect([p.pid, q.pid]).toEqual([1, 2]);
    expect(host.processes).toEqual([p, q]);
    const buf = p.mmap(4096n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
    expect(p.poke(buf, Uint8Array.of(7))).toBe(0);
    // The parent's mapping does not exist in the other process.
    expect(q.peek(buf, 1)).toBe(-U.EFAULT);
    const qfd = q.open('/dev/iommu');
    expect(qfd).toBe(3);
    expect(host.objects(qfd, q)).toEqual([]);
    expect(host.objects(iommufd).map((o) => o.type)).toEqual(['IOAS']);
    const pdev = p.open(host.vfioDevices[0]);
    expect(bind(host, pdev, { iommufd }).rc).toBe(0);
    // The cdev path allows one open device file per device at a time: the second bind fails.
    const qdev = q.open(host.vfioDevices[0]);
    const b = vfio_device_bind_iommufd.encode({ argsz: vfio_device_bind_iommufd.size, iommufd: qfd });
    expect(q.ioctl(qdev, VFIO_DEVICE_BIND_IOMMUFD, b)).toBe(-U.EINVAL);
    expect(host.objects(qfd, q)).toEqual([]);
    expect(() => host.objects(qdev, q)).toThrow(HostError);
    expect(q.close(qdev)).toBe(0);
    expect(q.close(qfd)).toBe(0);
    expect(host.contexts().map((c) => c.released)).toEqual([false, true]);
  });
});
