// The core's driver-op observer: every driver call the core makes is reported in call order,
// begin before end, with object IDs and the result; nothing changes without an observer.
import { describe, expect, it } from 'vitest';
import { EBUSY, ENOENT, IOMMU_DESTROY, IOMMU_IOAS_ALLOC, IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE, IOMMU_IOAS_UNMAP, iommu_destroy, iommu_ioas_alloc, iommu_ioas_map, iommu_ioas_unmap } from '@iommufd/uapi';
import { MOCK_APERTURE_FIRST_IOVA } from '@iommufd/mock-iommu';
import { iommufdDeviceAttach, iommufdDeviceDetach, type DriverOpArgs, type DriverOpObserver } from '../src/index.js';
import { bindOrThrow, setup } from './harness.js';

function recorder() {
  const calls: (readonly ['begin', string, DriverOpArgs] | readonly ['end', string, number, number | undefined])[] = [];
  const observer: DriverOpObserver = {
    opBegin: (op, args) => calls.push(['begin', op, args]),
    opEnd: (op, errno, value) => calls.push(['end', op, errno, value]),
  };
  return { calls, observer };
}

describe('DriverOpObserver', () => {
  it('reports domain alloc, attach, map and unmap pages, detach to the blocked domain and free, in order', () => {
    const e = setup({ devices: 1 });
    const r = recorder();
    e.core.observer = r.observer;
    const ioas = e.ioctl(iommu_ioas_alloc, IOMMU_IOAS_ALLOC, {}).out.out_ioas_id;
    const va = e.proc.mmap(0x1000n);
    const rw = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_FIXED_IOVA;
    expect(e.ioctl(iommu_ioas_map, IOMMU_IOAS_MAP, { flags: rw, ioas_id: ioas, user_va: va, length: 0x1000n, iova: MOCK_APERTURE_FIRST_IOVA }).rc).toBe(0);
    expect(r.calls).toEqual([]); // no domain yet: nothing reaches the driver
    const bound = bindOrThrow(e.ctx, e.devs[0]!);
    const attached = iommufdDeviceAttach(bound.idev, undefined, ioas);
    if (typeof attached === 'number') throw new Error(`attach ${attached}`);
    const hwpt = attached.ptId;
    expect(e.ioctl(iommu_destroy, IOMMU_DESTROY, { id: ioas }).rc).toBe(-EBUSY);
    expect(e.ioctl(iommu_ioas_unmap, IOMMU_IOAS_UNMAP, { ioas_id: ioas, iova: MOCK_APERTURE_FIRST_IOVA, length: 0x1000n }).rc).toBe(0);
    iommufdDeviceDetach(bound.idev, undefined);
    expect(r.calls).toEqual([
      ['begin', 'domainAllocPagingFlags', { device: 'mock0', hwpt, flags: 0, userDataLen: 0 }],
      ['end', 'domainAllocPagingFlags', 0, undefined],
      ['begin', 'attachDev', { domain: hwpt, device: 'mock0' }],
      ['end', 'attachDev', 0, undefined],
      // The mock's 2 KiB pages: one 4 KiB CPU page is two IOPTEs.
      ['begin', 'mapPages', { domain: hwpt, iova: `0x${MOCK_APERTURE_FIRST_IOVA.toString(16)}`, pa: expect.stringMatching(/^0x[0-9a-f]+000$/), pgsize: '0x800', pgcount: 2, prot: 7 }],
      ['end', 'mapPages', 0, undefined],
      ['begin', 'unmapPages', { domain: hwpt, iova: `0x${MOCK_APERTURE_FIRST_IOVA.toString(16)}`, pgsize: '0x800', pgcount: 2 }],
      ['end', 'unmapPages', 0, 0x1000],
      ['begin', 'attachDev', { domain: 'blocked', device: 'mock0' }],
      ['end', 'attachDev', 0, undefined],
      ['begin', 'free', { domain: hwpt }],
      ['end', 'free', 0, undefined],
    ]);
  });

  it('a driver failure ends with its errno (fault injection at the mock driver map_pages)', () => {
    const e = setup({ devices: 1, faultInjection: { shouldFail: (site) => site === 'mock-map-pages' } });
    const r = recorder();
    e.core.observer = r.observer;
    const ioas = e.ioctl(iommu_ioas_alloc, IOMMU_IOAS_ALLOC, {}).out.out_ioas_id;
    const va = e.proc.mmap(0x1000n);
    const rw = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_FIXED_IOVA;
    expect(e.ioctl(iommu_ioas_map, IOMMU_IOAS_MAP, { flags: rw, ioas_id: ioas, user_va: va, length: 0x1000n, iova: MOCK_APERTURE_FIRST_IOVA }).rc).toBe(0);
    const bound = bindOrThrow(e.ctx, e.devs[0]!);
    expect(iommufdDeviceAttach(bound.idev, undefined, ioas)).toBe(ENOENT);
    const ends = r.calls.filter((c) => c[0] === 'end').map((c) => [c[1], c[2]]);
    // The fill fails in the driver; the core then undoes the immediate attach and frees the domain.
    expect(ends).toEqual([
      ['domainAllocPagingFlags', 0],
      ['attachDev', 0],
      ['mapPages', ENOENT],
      ['attachDev', 0],
      ['free', 0],
    ]);
    // Every begin has its end, in nesting order.
    expect(r.calls.filter((c) => c[0] === 'begin')).toHaveLength(ends.length);
  });
});
