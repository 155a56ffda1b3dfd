// Limits of the process around iommufd calls: a full fd table (get_unused_fd_flags →
// EMFILE) refuses the ioctls that return a new fd and leaves no object behind; mmap(2) of a
// driver region rounds the length to whole pages before the file sees it, and
// MAP_SHARED_VALIDATE is MAP_SHARED.
import { describe, expect, it } from 'vitest';
import { createHost } from '../../src/index.js';
import { Env, U } from './harness.js';

const RW = U.PROT_READ | U.PROT_WRITE;

describe('a full fd table', () => {
  it('FAULT_QUEUE_ALLOC and VEVENTQ_ALLOC → EMFILE, no object, nothing copied back; one free fd is enough again', async () => {
    const host = await createHost({ platform: 'mock', devices: 1 });
    const e = new Env(host, 'mock');
    const viommu = e.viommuWithRegion().viommu;
    const before = host.objects(e.fd);
    const fillers: number[] = [];
    for (;;) {
      const fd = e.p.open('/dev/iommu');
      if (fd < 0) {
        expect(fd).toBe(-U.EMFILE);
        break;
      }
      fillers.push(fd);
    }
    const fault = U.iommu_fault_alloc.encode({ size: U.iommu_fault_alloc.size });
    expect(e.p.ioctl(e.fd, U.IOMMU_FAULT_QUEUE_ALLOC, fault)).toBe(-U.EMFILE);
    expect(U.iommu_fault_alloc.decode(fault)).toMatchObject({ out_fault_id: 0, out_fault_fd: 0 });
    const q = U.iommu_veventq_alloc.encode({ size: U.iommu_veventq_alloc.size, viommu_id: viommu, type: U.IOMMU_VEVENTQ_TYPE_SELFTEST, veventq_depth: 2 });
    expect(e.p.ioctl(e.fd, U.IOMMU_VEVENTQ_ALLOC, q)).toBe(-U.EMFILE);
    expect(U.iommu_veventq_alloc.decode(q)).toMatchObject({ out_veventq_id: 0, out_veventq_fd: 0 });
    expect(host.objects(e.fd)).toEqual(before);
    const last = fillers.pop()!;
    expect(e.p.close(last)).toBe(0);
    expect(e.p.ioctl(e.fd, U.IOMMU_FAULT_QUEUE_ALLOC, fault)).toBe(0);
    expect(U.iommu_fault_alloc.get(fault, 'out_fault_fd')).toBe(last);
    for (const fd of fillers) expect(e.p.close(fd)).toBe(0);
    e.teardown();
  });
});

describe('mmap(2) of a driver region', () => {
  it('a length one byte short of the region maps it (the VMA is whole pages); MAP_SHARED_VALIDATE maps it too', async () => {
    const host = await createHost({ platform: 'mock', devices: 1 });
    const e = new Env(host, 'mock');
    const r = e.viommuWithRegion();
    const va = e.p.mmap(r.length - 1n, RW, U.MAP_SHARED, e.fd, r.offset);
    expect(va).toBeGreaterThan(0n);
    expect(e.p.mappings().find((m) => m.start === va)).toMatchObject({ end: va + r.length });
    expect(e.p.munmap(va, r.length)).toBe(0);
    const validated = e.p.mmap(r.length, RW, U.MAP_SHARED_VALIDATE, e.fd, r.offset);
    expect(validated).toBeGreaterThan(0n);
    expect(e.p.munmap(validated, r.length)).toBe(0);
    e.teardown();
  });
});
