import { describe, expect, it } from 'vitest';
import { EFAULT, EINVAL, ENOENT, ENOMEM, EOPNOTSUPP, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_ALLOC_PASID } from '@iommufd/uapi';
import {
  IOMMU_READ,
  IOMMU_WRITE,
  IOMMUFD_VIOMMU,
  IommufdViommu,
  StructMemory,
  type Device,
  type IommuDomain,
  type IommufdDriverServices,
  type UserMemory,
} from '@iommufd/driver-api';
import {
  MOCK_APERTURE_FIRST_IOVA as MOCK_APERTURE_START,
  MOCK_HUGE_PAGE_SIZE,
  MOCK_IO_PAGE_SIZE,
  mock_viommu,
  MockIommu,
  mockDomainLookup,
  mockDomainSetDirty,
  mockNestedIotlb,
  mockSetDeviceFlags,
} from '../src/index.js';
import {
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
  IOMMU_VIOMMU_TYPE_SELFTEST,
  iommu_hwpt_invalidate_selftest,
  iommu_hwpt_selftest,
  iommu_viommu_selftest,
  MOCK_FLAGS_DEVICE_HUGE_IOVA,
  MOCK_FLAGS_DEVICE_NO_DIRTY,
} from '@iommufd/uapi';

function user(): UserMemory & { mem: Uint8Array } {
  const mem = new Uint8Array(4096);
  return {
    mem,
    copyFromUser: (va, len) => (va >= 0x1000n && va + BigInt(len) <= 0x2000n ? mem.slice(Number(va) - 0x1000, Number(va) - 0x1000 + len) : EFAULT),
    copyToUser: (va, bytes) => {
      if (va < 0x1000n || va + BigInt(bytes.length) > 0x2000n) return EFAULT;
      mem.set(bytes, Number(va) - 0x1000);
      return 0;
    },
  };
}

function device(mock: MockIommu): Device {
  const dev: Device = { name: 'm0', iommu: mock.instance, groupId: 1, pasid: undefined, pri: false, ats: false, isVf: false, iommuPriv: undefined };
  mock.ops.probeDevice!(dev);
  return dev;
}

describe('mock paging domain', () => {
  it('keeps an IOVA→PA map in 2 KiB pages with start/last tags', () => {
    const mock = new MockIommu();
    const dev = device(mock);
    const d = mock.ops.domainAllocPagingFlags!(dev, 0, undefined) as IommuDomain;
    expect(d.geometry.apertureStart).toBe(MOCK_APERTURE_START);
    expect(d.pgsizeBitmap).toBe(MOCK_IO_PAGE_SIZE);
    const r = d.ops.mapPages!(d, MOCK_APERTURE_START, 0x10000n, MOCK_IO_PAGE_SIZE, 2, IOMMU_READ | IOMMU_WRITE);
    expect(r).toEqual({ mapped: 0x1000n, status: 0 });
    expect(mockDomainLookup(d, MOCK_APERTURE_START)).toMatchObject({ pa: 0x10000n, start: true, last: false });
    expect(mockDomainLookup(d, MOCK_APERTURE_START + 0x800n)).toMatchObject({ pa: 0x10800n, start: false, last: true });
    expect(d.ops.iovaToPhys!(d, MOCK_APERTURE_START + 0x804n)).toBe(0x10804n);
    expect(d.ops.unmapPages!(d, MOCK_APERTURE_START, MOCK_IO_PAGE_SIZE, 2)).toBe(0x1000n);
    expect(mockDomainLookup(d, MOCK_APERTURE_START)).toBeUndefined();
  });

  it('records a warning when a core unmaps part of a map_pages range (iommufd never splits)', () => {
    const mock = new MockIommu();
    const d = mock.ops.domainAllocPagingFlags!(device(mock), 0, undefined) as IommuDomain;
    d.ops.mapPages!(d, MOCK_APERTURE_START, 0n, MOCK_IO_PAGE_SIZE, 4, IOMMU_READ);
    d.ops.unmapPages!(d, MOCK_APERTURE_START, MOCK_IO_PAGE_SIZE, 4);
    expect(mock.warnings).toEqual([]);
    d.ops.mapPages!(d, MOCK_APERTURE_START, 0n, MOCK_IO_PAGE_SIZE, 4, IOMMU_READ);
    d.ops.unmapPages!(d, MOCK_APERTURE_START + MOCK_IO_PAGE_SIZE, MOCK_IO_PAGE_SIZE, 1);
    expect(mock.warnings).toHaveLength(1);
  });

  it('map_pages is a fault-injection point (ENOENT)', () => {
    const mock = new MockIommu();
    mock.instance.faultInjector = { shouldFail: (site) => site === 'mock-map-pages' };
    const d = mock.ops.domainAllocPagingFlags!(device(mock), 0, undefined) as IommuDomain;
    expect(d.ops.mapPages!(d, MOCK_APERTURE_START, 0n, MOCK_IO_PAGE_SIZE, 1, IOMMU_READ).status).toBe(ENOENT);
  });

  it('flags and dirty tracking rules', () => {
    const mock = new MockIommu();
    const dev = device(mock);
    expect(mock.ops.domainAllocPagingFlags!(dev, 1 << 5, undefined)).toBe(EOPNOTSUPP);
    expect(mock.ops.domainAllocPagingFlags!(dev, 0, { type: 0, uptr: 0n, len: 4, user: user() })).toBe(EOPNOTSUPP);
    const d = mock.ops.domainAllocPagingFlags!(dev, IOMMU_HWPT_ALLOC_DIRTY_TRACKING | IOMMU_HWPT_ALLOC_PASID, undefined) as IommuDomain;
    d.ops.mapPages!(d, MOCK_APERTURE_START, 0n, MOCK_IO_PAGE_SIZE, 4, IOMMU_READ);
    expect(mockDomainSetDirty(d, MOCK_APERTURE_START, 0x2000n)).toBe(0);
    d.dirtyOps!.setDirtyTracking(d, true);
    expect(mockDomainSetDirty(d, MOCK_APERTURE_START + 0x800n, 0x800n)).toBe(1);
    const seen: bigint[] = [];
    d.dirtyOps!.readAndClearDirty(d, MOCK_APERTURE_START, 0x2000n, 1, { record: (iova) => seen.push(iova) });
    d.dirtyOps!.readAndClearDirty(d, MOCK_APERTURE_START, 0x2000n, 0, { record: (iova) => seen.push(iova) });
    d.dirtyOps!.readAndClearDirty(d, MOCK_APERTURE_START, 0x2000n, 0, { record: (iova) => seen.push(iova) });
    expect(seen).toEqual([MOCK_APERTURE_START + 0x800n, MOCK_APERTURE_START + 0x800n]);
    mockSetDeviceFlags(dev, MOCK_FLAGS_DEVICE_NO_DIRTY);
    expect(mock.ops.domainAllocPagingFlags!(dev, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, undefined)).toBe(EOPNOTSUPP);
    expect(mock.ops.capable(dev, 'DIRTY_TRACKING')).toBe(false);
    expect(d.ops.attachDev!(d, dev)).toBe(EINVAL);
  });
  it('a dirty 2 KiB page inside a huge entry reports (and clears) the whole huge page, as the kernel mock', () => {
    const mock = new MockIommu();
    const dev = device(mock);
    mockSetDeviceFlags(dev, MOCK_FLAGS_DEVICE_HUGE_IOVA);
    const d = mock.ops.domainAllocPagingFlags!(dev, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, undefined) as IommuDomain;
    expect(d.pgsizeBitmap).toBe(MOCK_IO_PAGE_SIZE | MOCK_HUGE_PAGE_SIZE);
    const base = MOCK_APERTURE_START;
    expect(d.ops.mapPages!(d, base, 0x4000_0000n, MOCK_HUGE_PAGE_SIZE, 2, IOMMU_READ | IOMMU_WRITE).status).toBe(0);
    d.dirtyOps!.setDirtyTracking(d, true);
    expect(mockDomainSetDirty(d, base + MOCK_HUGE_PAGE_SIZE + 3n * MOCK_IO_PAGE_SIZE, MOCK_IO_PAGE_SIZE)).toBe(1);
    const seen: [bigint, bigint][] = [];
    const record = { record: (iova: bigint, len: bigint) => seen.push([iova, len]) };
    d.dirtyOps!.readAndClearDirty(d, base, 2n * MOCK_HUGE_PAGE_SIZE, 1, record);
    expect(seen).toEqual([[base + MOCK_HUGE_PAGE_SIZE, MOCK_HUGE_PAGE_SIZE]]);
    d.dirtyOps!.readAndClearDirty(d, base, 2n * MOCK_HUGE_PAGE_SIZE, 0, record);
    d.dirtyOps!.readAndClearDirty(d, base, 2n * MOCK_HUGE_PAGE_SIZE, 0, record);
    expect(seen).toEqual([
      [base + MOCK_HUGE_PAGE_SIZE, MOCK_HUGE_PAGE_SIZE],
      [base + MOCK_HUGE_PAGE_SIZE, MOCK_HUGE_PAGE_SIZE],
    ]);
    expect(mockDomainLookup(d, base + MOCK_HUGE_PAGE_SIZE + 3n * MOCK_IO_PAGE_SIZE)?.dirty).toBe(false);
  });
});

describe('mock nested domain', () => {
  it('an unknown nested data type is EOPNOTSUPP before any user data is read (even from a bad pointer)', () => {
    const mock = new MockIommu();
    const dev = device(mock);
    const parent = mock.ops.domainAllocPagingFlags!(dev, 0, undefined) as IommuDomain;
    expect(mock.ops.domainAllocNested!(dev, parent, 0, { type: IOMMU_HWPT_DATA_SELFTEST + 1, uptr: 0n, len: 4, user: user() })).toBe(EOPNOTSUPP);
    expect(mock.ops.domainAllocNested!(dev, parent, 0, { type: IOMMU_HWPT_DATA_SELFTEST, uptr: 0n, len: 4, user: user() })).toBe(EFAULT);
  });

  it('takes iommu_hwpt_selftest (longer is EINVAL) and invalidates IOTLB slots with entry_num = handled', () => {
    const mock = new MockIommu();
    const dev = device(mock);
    const parent = mock.ops.domainAllocPagingFlags!(dev, 0, undefined) as IommuDomain;
    const u = user();
    u.mem.set(iommu_hwpt_selftest.encode({ iotlb: 0x55 }), 0);
    const data = (len: number) => ({ type: IOMMU_HWPT_DATA_SELFTEST, uptr: 0x1000n, len, user: u });
    expect(mock.ops.domainAllocNested!(dev, parent, 0, data(8))).toBe(EINVAL);
    expect(mock.ops.domainAllocNested!(dev, parent, 1, data(4))).toBe(EOPNOTSUPP);
    const n = mock.ops.domainAllocNested!(dev, parent, 0, data(4)) as IommuDomain;
    expect(mockNestedIotlb(n, 3)).toBe(0x55);
    u.mem.set(iommu_hwpt_invalidate_selftest.encode({ flags: 1, iotlb_id: 0 }), 0x100);
    u.mem.set(iommu_hwpt_invalidate_selftest.encode({ flags: 2, iotlb_id: 0 }), 0x108);
    const arr = { type: IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, uptr: 0x1100n, entryLen: 8, entryNum: 2, user: u };
    expect(n.ops.cacheInvalidateUser!(n, arr)).toBe(EOPNOTSUPP);
    expect(arr.entryNum).toBe(1);
    expect([0, 1, 2, 3].map((i) => mockNestedIotlb(n, i))).toEqual([0, 0, 0, 0]);
    const bad = { ...arr, type: 1, entryNum: 1 };
    expect(n.ops.cacheInvalidateUser!(n, bad)).toBe(EINVAL);
    expect(bad.entryNum).toBe(0);
  });
});

describe('mock vIOMMU', () => {
  function coreViommu(mock: MockIommu, services: Partial<IommufdDriverServices>) {
    const v = new IommufdViommu(new StructMemory(mock.ops.getViommuSize!({} as Device, IOMMU_VIOMMU_TYPE_SELFTEST)));
    const parent = mock.ops.domainAllocPagingFlags!(device(mock), 0, undefined) as IommuDomain;
    v.initCore({
      id: 4,
      ictx: { driverServices: services as IommufdDriverServices },
      iommuDev: mock.instance,
      hwpt: { id: 3, domain: parent },
      type: IOMMU_VIOMMU_TYPE_SELFTEST,
      vdevs: null,
      veventqs: null,
    });
    return { v, parent };
  }

  it('reports its struct size only for the selftest type', () => {
    const mock = new MockIommu();
    expect(mock.ops.getViommuSize!({} as Device, 1)).toBe(0);
    expect(mock.ops.getViommuSize!({} as Device, IOMMU_VIOMMU_TYPE_SELFTEST)).toBe(mock_viommu.size);
    expect(mock_viommu.size).toBeGreaterThan(IOMMUFD_VIOMMU.size);
  });

  it('viommuInit registers the mmap pages, loops in_data back, and sets ops last', () => {
    const mock = new MockIommu();
    const mmaps: bigint[] = [];
    const { v, parent } = coreViommu(mock, {
      viommuAllocMmap: (_v, pa, len) => {
        mmaps.push(pa, len);
        return 0x1000n;
      },
      viommuDestroyMmap: () => mmaps.push(-1n),
    });
    const u = user();
    u.mem.set(iommu_viommu_selftest.encode({ in_data: 0x77 }), 0);
    expect(mock.ops.viommuInit!(v, parent, { type: IOMMU_VIOMMU_TYPE_SELFTEST, uptr: 0x1000n, len: 24, user: u })).toBe(0);
    expect(iommu_viommu_selftest.decode(u.mem)).toEqual({ in_data: 0x77, out_data: 0x77, out_mmap_offset: 0x1000n, out_mmap_length: 0x2000n });
    expect(mmaps[1]).toBe(0x2000n);
    expect(v.ops).toBeDefined();
    v.ops!.destroy!(v);
    expect(mmaps.at(-1)).toBe(-1n);
  });

  it('a failed copy-back undoes the mmap and leaves ops unset', () => {
    const mock = new MockIommu();
    const log: string[] = [];
    const { v, parent } = coreViommu(mock, {
      viommuAllocMmap: () => 0x1000n,
      viommuDestroyMmap: () => log.push('destroy-mmap'),
    });
    const u = user();
    const ro: UserMemory = { copyFromUser: u.copyFromUser, copyToUser: () => EFAULT };
    expect(mock.ops.viommuInit!(v, parent, { type: IOMMU_VIOMMU_TYPE_SELFTEST, uptr: 0x1000n, len: 8, user: ro })).toBe(EFAULT);
    expect(log).toEqual(['destroy-mmap']);
    expect(v.ops).toBeUndefined();
    mock.instance.faultInjector = { shouldFail: () => true };
    expect(mock.ops.viommuInit!(v, parent, { type: IOMMU_VIOMMU_TYPE_SELFTEST, uptr: 0x1000n, len: 8, user: u })).toBe(ENOMEM);
  });
});
