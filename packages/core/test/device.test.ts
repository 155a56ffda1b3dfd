import { describe, expect, it } from 'vitest';
import {
  EBUSY,
  EINVAL,
  ENOENT,
  ENOMEM,
  EOPNOTSUPP,
  IOMMU_DESTROY,
  IOMMU_GET_HW_INFO,
  IOMMU_HW_INFO_FLAG_INPUT_TYPE,
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_ALLOC_PASID,
  IOMMU_HWPT_FAULT_ID_VALID,
  IOMMU_HWPT_GET_DIRTY_BITMAP,
  IOMMU_HWPT_INVALIDATE,
  IOMMU_HWPT_SET_DIRTY_TRACKING,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_IOVA_RANGES,
  IOMMU_IOAS_UNMAP,
  iommu_destroy,
  iommu_hw_info,
  iommu_hwpt_alloc,
  iommu_hwpt_get_dirty_bitmap,
  iommu_hwpt_invalidate,
  iommu_hwpt_set_dirty_tracking,
  iommu_ioas_alloc,
  iommu_ioas_iova_ranges,
  iommu_ioas_map,
  iommu_ioas_unmap,
  iommu_iova_range,
} from '@iommufd/uapi';
import {
  MOCK_APERTURE_LAST_IOVA as MOCK_APERTURE_LAST,
  MOCK_APERTURE_FIRST_IOVA as MOCK_APERTURE_START,
  mockDomainLookup,
  mockDomainSetDirty,
  mockNestedIotlb,
  mockSetDeviceFlags,
} from '@iommufd/mock-iommu';
import {
  IOMMU_HW_INFO_TYPE_SELFTEST,
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
  iommu_hwpt_invalidate_selftest,
  iommu_hwpt_selftest,
  iommu_test_hw_info,
  MOCK_FLAGS_DEVICE_HUGE_IOVA,
  MOCK_FLAGS_DEVICE_NO_DIRTY,
} from '@iommufd/uapi';
import {
  deviceAttachedDomain,
  FailNth,
  iommufdDeviceAttach,
  iommufdDeviceBind,
  iommufdDeviceDetach,
  iommufdDeviceReplace,
  iommufdDeviceUnbind,
} from '../src/index.js';
import { bindOrThrow, RW, setup } from './harness.js';


function env(opts: Parameters<typeof setup>[0] = {}) {
  const e = setup(opts);
  const ioas = e.ioctl(iommu_ioas_alloc, IOMMU_IOAS_ALLOC, {}).out.out_ioas_id;
  const bind = (i: number) => bindOrThrow(e.ctx, e.devs[i]!);
  const map = (user_va: bigint, length: bigint, iova: bigint) =>
    e.ioctl(iommu_ioas_map, IOMMU_IOAS_MAP, { flags: RW | IOMMU_IOAS_MAP_FIXED_IOVA, ioas_id: ioas, user_va, length, iova });
  const hwptAlloc = (v: Partial<Parameters<typeof iommu_hwpt_alloc.encode>[0] & object>, size?: number) =>
    e.ioctl(iommu_hwpt_alloc, IOMMU_HWPT_ALLOC, v ?? {}, size ? { size } : {});
  return { ...e, ioas, bind, map, hwptAlloc };
}

describe('bind / attach / detach with automatic domains', () => {
  it('attaching to an IOAS creates an auto HWPT that mirrors mappings and dies with its last device', () => {
    const e = env();
    const a = e.bind(0);
    const va = e.proc.mmap(0x2000n);
    expect(e.map(va, 0x2000n, MOCK_APERTURE_START).rc).toBe(0);
    const r = iommufdDeviceAttach(a.idev, undefined, e.ioas);
    if (typeof r === 'number') throw new Error(`attach ${r}`);
    expect(r.ptId).toBe(3);
    const domain = deviceAttachedDomain(e.devs[0]!)!;
    expect(domain.type).toBe('paging');
    // The mock's 2 KiB pages map the pinned frames.
    const pte = mockDomainLookup(domain, MOCK_APERTURE_START + 0x800n)!;
    expect(pte.pa).toBe(e.proc.pages.get(va / 4096n)!.pfn * 4096n + 0x800n);
    expect(e.proc.pinnedPages).toBe(2);
    // The IOAS is now held by the HWPT; the HWPT by the device.
    expect(e.ioctl(iommu_destroy, IOMMU_DESTROY, { id: e.ioas }).rc).toBe(-EBUSY);
    expect(e.ioctl(iommu_destroy, IOMMU_DESTROY, { id: r.ptId }).rc).toBe(-EBUSY);
    // A second device on the same IOAS reuses the auto HWPT.
    const b = e.bind(1);
    const r2 = iommufdDeviceAttach(b.idev, undefined, e.ioas);
    expect(r2).toEqual({ ptId: 3 });
    iommufdDeviceDetach(a.idev, undefined);
    expect(e.ctx.objects().some((o) => o.id === 3)).toBe(true);
    iommufdDeviceDetach(b.idev, undefined);
    expect(e.ctx.objects().some((o) => o.id === 3)).toBe(false);
    expect(e.proc.pinnedPages).toBe(0);
    expect(e.ioctl(iommu_destroy, IOMMU_DESTROY, { id: e.ioas }).rc).toBe(0);
  });

  it('the aperture is reserved once a domain is attached; mappings outside it are refused', () => {
    const e = env();
    const a = e.bind(0);
    iommufdDeviceAttach(a.idev, undefined, e.ioas);
    const va = e.proc.mmap(0x1000n);
    expect(e.map(va, 0x1000n, 0x1000n).rc).toBe(-EINVAL);
    const arr = e.proc.mmap(4096n);
    const r = e.ioctl(iommu_ioas_iova_ranges, IOMMU_IOAS_IOVA_RANGES, { ioas_id: e.ioas, num_iovas: 4, allowed_iovas: arr });
    expect([r.rc, r.out.num_iovas, r.out.out_iova_alignment]).toEqual([0, 1, 2048n]);
    expect(iommu_iova_range.decode(e.proc.copyFromUser(arr, 16) as Uint8Array)).toEqual({
      start: MOCK_APERTURE_START,
      last: MOCK_APERTURE_LAST,
    });
  });

  it('attach errors: unknown pt_id ENOENT, same device twice EBUSY, replace when not attached EINVAL', () => {
    const e = env();
    const a = e.bind(0);
    expect(iommufdDeviceAttach(a.idev, undefined, 99)).toBe(ENOENT);
    expect(iommufdDeviceAttach(a.idev, undefined, a.devId)).toBe(EINVAL);
    expect(iommufdDeviceReplace(a.idev, undefined, e.ioas)).toBe(EINVAL);
    const r = iommufdDeviceAttach(a.idev, undefined, e.ioas) as { ptId: number };
    expect(iommufdDeviceAttach(a.idev, undefined, r.ptId)).toBe(EBUSY);
    // Replace to the same HWPT is a no-op success.
    expect(iommufdDeviceReplace(a.idev, undefined, r.ptId)).toEqual({ ptId: r.ptId });
  });

  it('replace moves the device to a manual HWPT and frees the auto one', () => {
    const e = env();
    const a = e.bind(0);
    const auto = iommufdDeviceAttach(a.idev, undefined, e.ioas) as { ptId: number };
    const manual = e.hwptAlloc({ dev_id: a.devId, pt_id: e.ioas });
    expect(manual.rc).toBe(0);
    expect(iommufdDeviceReplace(a.idev, undefined, manual.out.out_hwpt_id)).toEqual({ ptId: manual.out.out_hwpt_id });
    expect(e.ctx.objects().some((o) => o.id === auto.ptId)).toBe(false);
    iommufdDeviceDetach(a.idev, undefined);
    iommufdDeviceUnbind(a.idev);
    expect(e.ioctl(iommu_destroy, IOMMU_DESTROY, { id: manual.out.out_hwpt_id }).rc).toBe(0);
  });

  it('PASID attach needs a PASID-compatible HWPT; the mock fails every second pasid-1024 attach', () => {
    const e = env();
    const a = e.bind(0);
    const plain = e.hwptAlloc({ dev_id: a.devId, pt_id: e.ioas }).out.out_hwpt_id;
    const pasidHwpt = e.hwptAlloc({ dev_id: a.devId, pt_id: e.ioas, flags: IOMMU_HWPT_ALLOC_PASID }).out.out_hwpt_id;
    expect(iommufdDeviceAttach(a.idev, 5, plain)).toBe(EINVAL);
    // Beyond the 20-bit PASID width of the device and the instance.
    expect(iommufdDeviceAttach(a.idev, 1 << 20, pasidHwpt)).toBe(EINVAL);
    expect(iommufdDeviceAttach(a.idev, 5, pasidHwpt)).toEqual({ ptId: pasidHwpt });
    // RID attach of a non-PASID HWPT while a PASID is attached.
    expect(iommufdDeviceAttach(a.idev, undefined, plain)).toBe(EINVAL);
    expect(iommufdDeviceAttach(a.idev, 1024, pasidHwpt)).toEqual({ ptId: pasidHwpt });
    const other = e.hwptAlloc({ dev_id: a.devId, pt_id: e.ioas, flags: IOMMU_HWPT_ALLOC_PASID }).out.out_hwpt_id;
    expect(iommufdDeviceReplace(a.idev, 1024, other)).toBe(ENOMEM);
    expect(deviceAttachedDomain(e.devs[0]!, 1024)).toBeDefined();
    iommufdDeviceDetach(a.idev, 5);
    iommufdDeviceDetach(a.idev, 1024);
    expect(deviceAttachedDomain(e.devs[0]!, 5)).toBeUndefined();
  });

  it('PASID 0 is the RID (IOMMU_NO_PASID): attach, replace and detach move the group domain, not a PASID entry', () => {
    const e = env();
    const a = e.bind(0);
    const h1 = e.hwptAlloc({ dev_id: a.devId, pt_id: e.ioas }).out.out_hwpt_id;
    const h2 = e.hwptAlloc({ dev_id: a.devId, pt_id: e.ioas }).out.out_hwpt_id;
    const blocked = deviceAttachedDomain(e.devs[0]!);
    // A non-PASID HWPT is fine: it is the RID attach, not a PASID attach.
    expect(iommufdDeviceAttach(a.idev, 0, h1)).toEqual({ ptId: h1 });
    const d1 = deviceAttachedDomain(e.devs[0]!);
    expect(d1).not.toBe(blocked);
    expect(deviceAttachedDomain(e.devs[0]!, 0)).toBeUndefined();
    // The RID is taken: a second attach through either name is EBUSY.
    expect(iommufdDeviceAttach(a.idev, undefined, h1)).toBe(EBUSY);
    expect(iommufdDeviceReplace(a.idev, 0, h2)).toEqual({ ptId: h2 });
    expect(deviceAttachedDomain(e.devs[0]!)).not.toBe(d1);
    iommufdDeviceDetach(a.idev, 0);
    expect(deviceAttachedDomain(e.devs[0]!)).toBe(e.devs[0]!.iommu.ops.blockedDomain);
    iommufdDeviceUnbind(a.idev);
  });

  it('attaching an attached PASID again is EBUSY, to the same or another HWPT (kernel claims the device slot first)', () => {
    const e = env();
    const a = e.bind(0);
    const h1 = e.hwptAlloc({ dev_id: a.devId, pt_id: e.ioas, flags: IOMMU_HWPT_ALLOC_PASID }).out.out_hwpt_id;
    const h2 = e.hwptAlloc({ dev_id: a.devId, pt_id: e.ioas, flags: IOMMU_HWPT_ALLOC_PASID }).out.out_hwpt_id;
    const plain = e.hwptAlloc({ dev_id: a.devId, pt_id: e.ioas }).out.out_hwpt_id;
    expect(iommufdDeviceAttach(a.idev, 100, h1)).toEqual({ ptId: h1 });
    expect(iommufdDeviceAttach(a.idev, 100, h2)).toBe(EBUSY);
    expect(iommufdDeviceAttach(a.idev, 100, h1)).toBe(EBUSY);
    // Even a PASID-incompatible HWPT: the busy slot is found before compatibility is checked.
    expect(iommufdDeviceAttach(a.idev, 100, plain)).toBe(EBUSY);
    expect(deviceAttachedDomain(e.devs[0]!, 100)).toBeDefined();
    iommufdDeviceDetach(a.idev, 100);
    expect(iommufdDeviceAttach(a.idev, 100, h2)).toEqual({ ptId: h2 });
    iommufdDeviceDetach(a.idev, 100);
  });

  it('a physically contiguous, aligned run maps as huge IOPTEs where the driver offers them (iommu_pgsize)', () => {
    const e = env();
    mockSetDeviceFlags(e.devs[0]!, MOCK_FLAGS_DEVICE_HUGE_IOVA);
    const a = e.bind(0);
    const huge = 512n * 2048n;
    // Start the buffer on a huge-page aligned frame.
    const framesPerHuge = huge / 4096n;
    e.proc.nextPfn = ((e.proc.nextPfn + framesPerHuge - 1n) / framesPerHuge) * framesPerHuge;
    const va = e.proc.mmap(2n * huge + 0x1000n);
    const pa0 = e.proc.pages.get(va / 4096n)!.pfn * 4096n;
    expect(pa0 % huge).toBe(0n);
    const scattered = e.proc.mmap(0x2000n, { scatter: true });
    expect(e.map(va, 2n * huge + 0x1000n, MOCK_APERTURE_START).rc).toBe(0);
    expect(e.map(scattered, 0x2000n, MOCK_APERTURE_START + 4n * huge).rc).toBe(0);
    iommufdDeviceAttach(a.idev, undefined, e.ioas);
    const domain = deviceAttachedDomain(e.devs[0]!)!;
    // Two 1 MiB huge IOPTEs, then the 4 KiB tail in 2 KiB pages.
    expect(mockDomainLookup(domain, MOCK_APERTURE_START)).toMatchObject({ pa: pa0, huge: true, start: true });
    expect(mockDomainLookup(domain, MOCK_APERTURE_START + 2n * huge - 0x800n)).toMatchObject({ huge: true, last: true });
    expect(mockDomainLookup(domain, MOCK_APERTURE_START + 2n * huge)).toMatchObject({ pa: pa0 + 2n * huge, huge: false });
    // Non-contiguous pages are mapped one CPU page at a time.
    expect(mockDomainLookup(domain, MOCK_APERTURE_START + 4n * huge + 0x800n)).toMatchObject({ huge: false, last: true });
    expect(mockDomainLookup(domain, MOCK_APERTURE_START + 4n * huge + 0x1000n)).toMatchObject({ huge: false, start: true });
    iommufdDeviceDetach(a.idev, undefined);
    iommufdDeviceUnbind(a.idev);
    expect(e.mock.warnings).toEqual([]);
  });

  it('unbind tears everything down so the context releases cleanly', () => {
    const e = env();
    const a = e.bind(0);
    const va = e.proc.mmap(0x1000n);
    e.map(va, 0x1000n, MOCK_APERTURE_START);
    iommufdDeviceAttach(a.idev, undefined, e.ioas);
    iommufdDeviceUnbind(a.idev);
    e.ctx.release();
    expect(e.ctx.objects()).toEqual([]);
    expect(e.proc.pinnedPages).toBe(0);
  });
});

describe('IOMMU_HWPT_ALLOC', () => {
  it('order: __reserved, data type/len, device, pt_id (EINVAL!), flags', () => {
    const e = env();
    const a = e.bind(0);
    expect(e.hwptAlloc({ dev_id: a.devId, pt_id: e.ioas, __reserved: 1 }).rc).toBe(-EOPNOTSUPP);
    expect(e.hwptAlloc({ dev_id: a.devId, pt_id: e.ioas, data_len: 4 }).rc).toBe(-EINVAL);
    expect(e.hwptAlloc({ dev_id: a.devId, pt_id: e.ioas, data_type: IOMMU_HWPT_DATA_SELFTEST }).rc).toBe(-EINVAL);
    expect(e.hwptAlloc({ dev_id: 77, pt_id: e.ioas }).rc).toBe(-ENOENT);
    expect(e.hwptAlloc({ dev_id: a.devId, pt_id: 77 }).rc).toBe(-EINVAL);
    expect(e.hwptAlloc({ dev_id: a.devId, pt_id: a.devId }).rc).toBe(-EINVAL);
    expect(e.hwptAlloc({ dev_id: a.devId, pt_id: e.ioas, flags: 1 << 7 }).rc).toBe(-EOPNOTSUPP);
    expect(
      e.hwptAlloc({ dev_id: a.devId, pt_id: e.ioas, flags: IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_NEST_PARENT }).rc,
    ).toBe(-EOPNOTSUPP);
    // __reserved2 is not checked; a 24-byte struct is accepted.
    expect(e.hwptAlloc({ dev_id: a.devId, pt_id: e.ioas, __reserved2: 5 }).rc).toBe(0);
    expect(e.hwptAlloc({ dev_id: a.devId, pt_id: e.ioas }, 24).rc).toBe(0);
    // A failed allocation returns its ID.
    expect(e.ctx.objects().map((o) => o.id)).toEqual([1, 2, 3, 4]);
  });

  it('dirty tracking needs the capability; set/get dirty bitmap', () => {
    const e = env();
    const a = e.bind(0);
    const b = e.bind(1);
    mockSetDeviceFlags(e.devs[1]!, MOCK_FLAGS_DEVICE_NO_DIRTY);
    expect(e.hwptAlloc({ dev_id: b.devId, pt_id: e.ioas, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING }).rc).toBe(-EOPNOTSUPP);
    const h = e.hwptAlloc({ dev_id: a.devId, pt_id: e.ioas, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING }).out.out_hwpt_id;
    const plain = e.hwptAlloc({ dev_id: a.devId, pt_id: e.ioas }).out.out_hwpt_id;
    const va = e.proc.mmap(0x4000n);
    e.map(va, 0x4000n, MOCK_APERTURE_START);
    const set = (hwpt_id: number, flags: number) => e.ioctl(iommu_hwpt_set_dirty_tracking, IOMMU_HWPT_SET_DIRTY_TRACKING, { hwpt_id, flags });
    expect(set(h, 2).rc).toBe(-EOPNOTSUPP);
    expect(set(plain, 1).rc).toBe(-EOPNOTSUPP);
    expect(set(99, 1).rc).toBe(-ENOENT);
    expect(set(h, 1).rc).toBe(0);
    const domain = (e.ctx.objects(), iommufdDeviceAttach(a.idev, undefined, h), deviceAttachedDomain(e.devs[0]!)!);
    expect(mockDomainSetDirty(domain, MOCK_APERTURE_START + 0x1000n, 0x800n)).toBe(1);
    const bitmap = e.proc.mmap(4096n);
    const get = (v: object) =>
      e.ioctl(iommu_hwpt_get_dirty_bitmap, IOMMU_HWPT_GET_DIRTY_BITMAP, { hwpt_id: h, iova: MOCK_APERTURE_START, length: 0x4000n, page_size: 0x800n, data: bitmap, ...v });
    expect(get({ page_size: 0n }).rc).toBe(-EINVAL);
    expect(get({ iova: MOCK_APERTURE_START + 0x10n }).rc).toBe(-EINVAL);
    expect(get({ __reserved: 1 }).rc).toBe(-EOPNOTSUPP);
    expect(get({}).rc).toBe(0);
    expect((e.proc.copyFromUser(bitmap, 1) as Uint8Array)[0]).toBe(1 << 2);
    // Cleared by the read: a second read adds nothing.
    e.proc.copyToUser(bitmap, new Uint8Array(8));
    expect(get({}).rc).toBe(0);
    expect((e.proc.copyFromUser(bitmap, 1) as Uint8Array)[0]).toBe(0);
  });

  it('nested HWPT on a NEST_PARENT; invalidation writes entry_num back', () => {
    const e = env();
    const a = e.bind(0);
    const notParent = e.hwptAlloc({ dev_id: a.devId, pt_id: e.ioas }).out.out_hwpt_id;
    const parent = e.hwptAlloc({ dev_id: a.devId, pt_id: e.ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT }).out.out_hwpt_id;
    const data = e.proc.mmap(4096n);
    e.proc.copyToUser(data, iommu_hwpt_selftest.encode({ iotlb: 0x1234 }));
    const nested = (pt_id: number, v: object = {}) =>
      e.hwptAlloc({ dev_id: a.devId, pt_id, data_type: IOMMU_HWPT_DATA_SELFTEST, data_len: 4, data_uptr: data, ...v });
    expect(nested(notParent).rc).toBe(-EINVAL);
    expect(nested(parent, { flags: IOMMU_HWPT_ALLOC_NEST_PARENT }).rc).toBe(-EOPNOTSUPP);
    expect(nested(parent, { data_len: 8 }).rc).toBe(-EINVAL);
    // The mock rejects an unknown data type before copying it (EOPNOTSUPP, not EINVAL).
    expect(nested(parent, { data_type: 1 }).rc).toBe(-EOPNOTSUPP);
    const n = nested(parent);
    expect(n.rc).toBe(0);
    const nid = n.out.out_hwpt_id;
    expect(e.ioctl(iommu_destroy, IOMMU_DESTROY, { id: parent }).rc).toBe(-EBUSY);
    iommufdDeviceAttach(a.idev, undefined, nid);
    const dom = deviceAttachedDomain(e.devs[0]!)!;
    expect([0, 1, 2, 3].map((i) => mockNestedIotlb(dom, i))).toEqual([0x1234, 0x1234, 0x1234, 0x1234]);
    const reqs = e.proc.mmap(4096n);
    e.proc.copyToUser(reqs, iommu_hwpt_invalidate_selftest.encode({ flags: 0, iotlb_id: 1 }));
    e.proc.copyToUser(reqs + 8n, iommu_hwpt_invalidate_selftest.encode({ flags: 0, iotlb_id: 9 }));
    const inv = (v: object) =>
      e.ioctl(iommu_hwpt_invalidate, IOMMU_HWPT_INVALIDATE, { hwpt_id: nid, data_uptr: reqs, data_type: IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, entry_len: 8, entry_num: 2, ...v });
    let r = inv({});
    expect([r.rc, r.out.entry_num]).toEqual([-EINVAL, 1]);
    expect([0, 1, 2, 3].map((i) => mockNestedIotlb(dom, i))).toEqual([0x1234, 0, 0x1234, 0x1234]);
    r = inv({ __reserved: 1 });
    expect([r.rc, r.out.entry_num]).toEqual([-EOPNOTSUPP, 0]);
    r = inv({ data_uptr: 0n });
    expect([r.rc, r.out.entry_num]).toEqual([-EINVAL, 0]);
    r = inv({ hwpt_id: parent });
    expect([r.rc, r.out.entry_num]).toEqual([-EINVAL, 0]);
    r = inv({ hwpt_id: 99 });
    expect([r.rc, r.out.entry_num]).toEqual([-ENOENT, 0]);
    // entry_num 0 probes the data type.
    r = inv({ entry_num: 0 });
    expect([r.rc, r.out.entry_num]).toEqual([0, 0]);
  });
});

describe('IOMMU_GET_HW_INFO', () => {
  it('reports the selftest payload, data_len and capabilities', () => {
    const e = env();
    const a = e.bind(0);
    const buf = e.proc.mmap(4096n);
    e.proc.copyToUser(buf, new Uint8Array(16).fill(0xff));
    const r = e.ioctl(iommu_hw_info, IOMMU_GET_HW_INFO, { dev_id: a.devId, data_len: 16, data_uptr: buf });
    expect(r.rc).toBe(0);
    expect([r.out.data_len, r.out.out_data_type, r.out.out_capabilities, r.out.out_max_pasid_log2]).toEqual([
      8,
      IOMMU_HW_INFO_TYPE_SELFTEST,
      1n,
      20,
    ]);
    const bytes = e.proc.copyFromUser(buf, 16) as Uint8Array;
    expect(iommu_test_hw_info.decode(bytes).test_reg).toBe(0xdeadbeef);
    expect([...bytes.subarray(8)]).toEqual(new Array(8).fill(0));
    expect(e.ioctl(iommu_hw_info, IOMMU_GET_HW_INFO, { dev_id: a.devId, flags: 2 }).rc).toBe(-EOPNOTSUPP);
    expect(e.ioctl(iommu_hw_info, IOMMU_GET_HW_INFO, { dev_id: a.devId, __reserved: [0, 1, 0] }).rc).toBe(-EOPNOTSUPP);
    expect(e.ioctl(iommu_hw_info, IOMMU_GET_HW_INFO, { dev_id: 99 }).rc).toBe(-ENOENT);
    expect(e.ioctl(iommu_hw_info, IOMMU_GET_HW_INFO, { dev_id: a.devId, flags: IOMMU_HW_INFO_FLAG_INPUT_TYPE, in_data_type: 2 }).rc).toBe(
      -EOPNOTSUPP,
    );
    // A 32-byte user struct does not receive out_capabilities.
    const short = e.ioctl(iommu_hw_info, IOMMU_GET_HW_INFO, { dev_id: a.devId }, { size: 32 });
    expect([short.rc, short.out.out_capabilities]).toEqual([0, 0n]);
  });
});

describe('fail_nth over attach', () => {
  it('every injected failure leaves nothing behind after close', () => {
    for (let n = 1; ; n++) {
      const inj = new FailNth(n);
      const e = env({ faultInjection: inj });
      const va = e.proc.mmap(0x2000n);
      const b = iommufdDeviceBind(e.ctx, e.devs[0]!);
      if (typeof b !== 'number') {
        e.map(va, 0x2000n, MOCK_APERTURE_START);
        iommufdDeviceAttach(b.idev, undefined, e.ioas);
        e.hwptAlloc({ dev_id: b.devId, pt_id: e.ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT });
        e.ioctl(iommu_ioas_unmap, IOMMU_IOAS_UNMAP, { ioas_id: e.ioas, iova: 0n, length: (1n << 64n) - 1n });
        iommufdDeviceDetach(b.idev, undefined);
        iommufdDeviceUnbind(b.idev);
      }
      e.ctx.release();
      expect(e.ctx.objects()).toEqual([]);
      expect(e.proc.pinnedPages).toBe(0);
      expect(e.proc.locked).toBe(0);
      if (!inj.injected) break;
      expect(n).toBeLessThan(100);
    }
  });

  it('a replace onto an IOAS whose new automatic domain fails to fill keeps the old HWPT, and every failure unwinds', () => {
    // The second IOAS's page is pinned only by the new domain: failing that pin is the
    // failure that used to strand the device (detached, still holding the old HWPT).
    const ioas2Of = (e: ReturnType<typeof env>) => e.ioctl(iommu_ioas_alloc, IOMMU_IOAS_ALLOC, {}).out.out_ioas_id;
    let sawPinFailure = false;
    for (let n = 1; ; n++) {
      // Counts every allocation point; fails the n-th one once armed.
      const inj = { calls: 0, failAt: Infinity, failedSite: undefined as string | undefined };
      const injector = {
        shouldFail: (site: string) => {
          if (++inj.calls !== inj.failAt) return false;
          inj.failedSite = site;
          return true;
        },
      };
      const e = env({ faultInjection: injector });
      const ioas2 = ioas2Of(e);
      const va = e.proc.mmap(0x1000n);
      e.map(va, 0x1000n, MOCK_APERTURE_START);
      e.ioctl(iommu_ioas_map, IOMMU_IOAS_MAP, { flags: RW | IOMMU_IOAS_MAP_FIXED_IOVA, ioas_id: ioas2, user_va: va, length: 0x1000n, iova: MOCK_APERTURE_START });
      const b = iommufdDeviceBind(e.ctx, e.devs[0]!) as Exclude<ReturnType<typeof iommufdDeviceBind>, number>;
      const first = iommufdDeviceAttach(b.idev, undefined, e.ioas) as { ptId: number };
      const before = deviceAttachedDomain(e.devs[0]!);
      // Arm the n-th allocation point from the replace on.
      inj.failAt = inj.calls + n;
      const r = iommufdDeviceReplace(b.idev, undefined, ioas2);
      if (typeof r === 'number') {
        if (inj.failedSite === 'pin') sawPinFailure = true;
        expect(deviceAttachedDomain(e.devs[0]!)).toBe(before);
        expect(e.ctx.objects().filter((o) => o.type === 'HWPT_PAGING').map((o) => o.id)).toEqual([first.ptId]);
        expect(iommufdDeviceReplace(b.idev, undefined, first.ptId)).toEqual({ ptId: first.ptId });
      }
      iommufdDeviceDetach(b.idev, undefined);
      iommufdDeviceUnbind(b.idev);
      e.ctx.release();
      expect(e.ctx.objects()).toEqual([]);
      expect(e.proc.pinnedPages).toBe(0);
      if (typeof r !== 'number') break;
      expect(n).toBeLessThan(50);
    }
    expect(sawPinFailure).toBe(true);
  });
});

