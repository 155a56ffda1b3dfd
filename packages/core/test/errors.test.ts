import { describe, expect, it } from 'vitest';
import {
  EADDRINUSE,
  EINVAL,
  ENOENT,
  ENOMEM,
  ENOSPC,
  EOPNOTSUPP,
  EOVERFLOW,
  IOMMU_HWPT_GET_DIRTY_BITMAP,
  iommu_hwpt_get_dirty_bitmap,
  ERANGE,
  IOMMU_HW_QUEUE_ALLOC,
  IOMMU_HW_QUEUE_TYPE_SELFTEST,
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_ALLOW_IOVAS,
  IOMMU_IOAS_UNMAP,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_OPTION,
  IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_OP_SET,
  IOMMU_VDEVICE_ALLOC,
  IOMMU_VEVENTQ_ALLOC,
  IOMMU_VEVENTQ_TYPE_SELFTEST,
  IOMMU_VIOMMU_ALLOC,
  IOMMU_VIOMMU_TYPE_SELFTEST,
  iommu_hw_queue_alloc,
  iommu_hwpt_alloc,
  iommu_hwpt_selftest,
  iommu_ioas_alloc,
  iommu_ioas_allow_iovas,
  iommu_ioas_unmap,
  iommu_iova_range,
  iommu_ioas_map,
  iommu_option,
  iommu_vdevice_alloc,
  iommu_veventq_alloc,
  iommu_viommu_alloc,
  iommufd_vevent_header,
} from '@iommufd/uapi';
import { MOCK_APERTURE_FIRST_IOVA, MockIommu, mockDeviceState, mockTriggerVevent } from '@iommufd/mock-iommu';
import { iommufdDeviceAttach, type IommufdCtxImpl, type Veventq } from '../src/index.js';
import { bindOrThrow, RW, setup } from './harness.js';


function env() {
  const e = setup();
  const ioas = e.ioctl(iommu_ioas_alloc, IOMMU_IOAS_ALLOC, {}).out.out_ioas_id;
  const bind = (dev = e.devs[0]!) => bindOrThrow(e.ctx, dev);
  const map = (length: bigint, iova = MOCK_APERTURE_FIRST_IOVA) =>
    e.ioctl(iommu_ioas_map, IOMMU_IOAS_MAP, { flags: RW | IOMMU_IOAS_MAP_FIXED_IOVA, ioas_id: ioas, user_va: e.proc.mmap(length), length, iova });
  return { ...e, ioas, bind, map };
}

describe('pin accounting', () => {
  it('without CAP_IPC_LOCK pinned pages are charged; over RLIMIT_MEMLOCK the attach fails with ENOMEM and leaves nothing', () => {
    const e = env();
    e.proc.caps.CAP_IPC_LOCK = false;
    e.map(0x4000n);
    e.proc.memlockLimit = 2;
    const a = e.bind();
    expect(iommufdDeviceAttach(a.idev, undefined, e.ioas)).toBe(ENOMEM);
    expect(e.ctx.objects().map((o) => o.type)).toEqual(['IOAS', 'DEVICE']);
    expect([e.proc.locked, e.proc.pinnedPages]).toEqual([0, 0]);
    e.proc.memlockLimit = 4;
    expect(iommufdDeviceAttach(a.idev, undefined, e.ioas)).toEqual({ ptId: 3 });
    expect([e.proc.locked, e.proc.pinnedPages]).toEqual([4, 4]);
  });

  it('with CAP_IPC_LOCK nothing is charged', () => {
    const e = env();
    e.proc.caps.CAP_IPC_LOCK = true;
    e.map(0x4000n);
    iommufdDeviceAttach(e.bind().idev, undefined, e.ioas);
    expect([e.proc.locked, e.proc.pinnedPages]).toEqual([0, 4]);
  });
});

describe('alignment with a domain attached', () => {
  it('a mapping misaligned for the domain page size makes the attach EADDRINUSE', () => {
    const e = env();
    expect(e.map(0x400n).rc).toBe(0);
    expect(iommufdDeviceAttach(e.bind().idev, undefined, e.ioas)).toBe(EADDRINUSE);
    expect(e.ctx.objects().map((o) => o.type)).toEqual(['IOAS', 'DEVICE']);
  });

  it('IOAS alignment becomes the mock page size; HUGE_PAGES=0 needs no domain+mapping', () => {
    const e = env();
    iommufdDeviceAttach(e.bind().idev, undefined, e.ioas);
    expect(e.map(0x400n).rc).toBe(-EINVAL);
    expect(e.map(0x800n).rc).toBe(0);
    const opt = e.ioctl(iommu_option, IOMMU_OPTION, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_SET, object_id: e.ioas, val64: 0n });
    expect(opt.rc).toBe(-EINVAL);
  });
});

describe('instance checks', () => {
  it('vDEVICE and HWPT-on-vIOMMU need the device behind the vIOMMU instance (EINVAL)', () => {
    const e = env();
    const other = new MockIommu({ name: 'mock_iommu1' });
    e.core.registerIommu(other.instance);
    const foreign = e.core.addDevice({ name: 'foreign', iommu: other.instance, group: 9 });
    const a = e.bind();
    const f = e.bind(foreign);
    const parent = e.ioctl(iommu_hwpt_alloc, IOMMU_HWPT_ALLOC, { dev_id: a.devId, pt_id: e.ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT }).out.out_hwpt_id;
    const v = e.ioctl(iommu_viommu_alloc, IOMMU_VIOMMU_ALLOC, { type: IOMMU_VIOMMU_TYPE_SELFTEST, dev_id: a.devId, hwpt_id: parent }).out.out_viommu_id;
    expect(e.ioctl(iommu_vdevice_alloc, IOMMU_VDEVICE_ALLOC, { viommu_id: v, dev_id: f.devId, virt_id: 1n }).rc).toBe(-EINVAL);
    const data = e.proc.mmap(4096n);
    e.proc.copyToUser(data, iommu_hwpt_selftest.encode({ iotlb: 0 }));
    const h = e.ioctl(iommu_hwpt_alloc, IOMMU_HWPT_ALLOC, { dev_id: f.devId, pt_id: v, data_type: IOMMU_HWPT_DATA_SELFTEST, data_len: 4, data_uptr: data });
    expect(h.rc).toBe(-EINVAL);
    // A nest parent from another driver instance's domain owner is EINVAL too.
    const n = e.ioctl(iommu_hwpt_alloc, IOMMU_HWPT_ALLOC, { dev_id: f.devId, pt_id: parent, data_type: IOMMU_HWPT_DATA_SELFTEST, data_len: 4, data_uptr: data });
    expect(n.rc).toBe(-EINVAL);
  });
});

describe('HW_QUEUE ERANGE and vEVENTQ sequence wrap', () => {
  it('a page-rounded span that overflows is ERANGE, after the ID was reserved (and returned)', () => {
    const e = env();
    const a = e.bind();
    const parent = e.ioctl(iommu_hwpt_alloc, IOMMU_HWPT_ALLOC, { dev_id: a.devId, pt_id: e.ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT }).out.out_hwpt_id;
    const v = e.ioctl(iommu_viommu_alloc, IOMMU_VIOMMU_ALLOC, { type: IOMMU_VIOMMU_TYPE_SELFTEST, dev_id: a.devId, hwpt_id: parent }).out.out_viommu_id;
    const r = e.ioctl(iommu_hw_queue_alloc, IOMMU_HW_QUEUE_ALLOC, {
      viommu_id: v,
      type: IOMMU_HW_QUEUE_TYPE_SELFTEST,
      nesting_parent_iova: 0xfffn,
      length: (1n << 64n) - 1n - 0xfffn,
    });
    expect(r.rc).toBe(-ERANGE);
    expect(e.ctx.objects().map((o) => o.id)).toEqual([1, 2, 3, 4]);
  });

  it('sequence numbers are 31-bit and wrap from INT_MAX to 0', () => {
    const e = env();
    const a = e.bind();
    const parent = e.ioctl(iommu_hwpt_alloc, IOMMU_HWPT_ALLOC, { dev_id: a.devId, pt_id: e.ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT }).out.out_hwpt_id;
    const v = e.ioctl(iommu_viommu_alloc, IOMMU_VIOMMU_ALLOC, { type: IOMMU_VIOMMU_TYPE_SELFTEST, dev_id: a.devId, hwpt_id: parent }).out.out_viommu_id;
    e.ioctl(iommu_vdevice_alloc, IOMMU_VDEVICE_ALLOC, { viommu_id: v, dev_id: a.devId, virt_id: 7n });
    const data = e.proc.mmap(4096n);
    e.proc.copyToUser(data, iommu_hwpt_selftest.encode({ iotlb: 0 }));
    const nested = e.ioctl(iommu_hwpt_alloc, IOMMU_HWPT_ALLOC, { dev_id: a.devId, pt_id: v, data_type: IOMMU_HWPT_DATA_SELFTEST, data_len: 4, data_uptr: data });
    iommufdDeviceAttach(a.idev, undefined, nested.out.out_hwpt_id);
    expect(e.ioctl(iommu_veventq_alloc, IOMMU_VEVENTQ_ALLOC, { viommu_id: 99, type: IOMMU_VEVENTQ_TYPE_SELFTEST, veventq_depth: 4 }).rc).toBe(-ENOENT);
    const q = e.ioctl(iommu_veventq_alloc, IOMMU_VEVENTQ_ALLOC, { viommu_id: v, type: IOMMU_VEVENTQ_TYPE_SELFTEST, veventq_depth: 4 });
    const ictx = e.ctx as IommufdCtxImpl;
    const obj = ictx.getObject<Veventq>(q.out.out_veventq_id, 'VEVENTQ') as Veventq;
    obj.sequence = 0x7fffffff;
    ictx.putObject(obj);
    mockTriggerVevent(e.devs[0]!);
    mockTriggerVevent(e.devs[0]!);
    const buf = new Uint8Array(24);
    expect(e.proc.file(q.out.out_veventq_fd).read!(buf, 0)).toBe(24);
    expect(iommufd_vevent_header.decode(buf, 0).sequence).toBe(0x7fffffff);
    expect(iommufd_vevent_header.decode(buf, 12).sequence).toBe(0);
  });
});

describe('reserved regions and allowed ranges', () => {
  it('a device reserved region colliding with a mapping fails the attach with EADDRINUSE; allowed ranges may not cover reserved ones', () => {
    const e = env();
    mockDeviceState(e.devs[0]!).resvRegions = [{ start: MOCK_APERTURE_FIRST_IOVA + 0x10000n, length: 0x1000n, type: 'reserved' }];
    e.map(0x1000n, MOCK_APERTURE_FIRST_IOVA + 0x10000n);
    const a = e.bind();
    expect(iommufdDeviceAttach(a.idev, undefined, e.ioas)).toBe(EADDRINUSE);
    expect(e.ctx.objects().map((o) => o.type)).toEqual(['IOAS', 'DEVICE']);
    e.ioctl(iommu_ioas_unmap, IOMMU_IOAS_UNMAP, { ioas_id: e.ioas, iova: 0n, length: (1n << 64n) - 1n });
    expect(iommufdDeviceAttach(a.idev, undefined, e.ioas)).toEqual({ ptId: 3 });
    // The region is now reserved: a mapping there is EINVAL, an allowed range over it EADDRINUSE.
    expect(e.map(0x1000n, MOCK_APERTURE_FIRST_IOVA + 0x10000n).rc).toBe(-EINVAL);
    const arr = e.proc.mmap(4096n);
    e.proc.copyToUser(arr, iommu_iova_range.encode({ start: MOCK_APERTURE_FIRST_IOVA, last: MOCK_APERTURE_FIRST_IOVA + 0x1ffffn }));
    expect(e.ioctl(iommu_ioas_allow_iovas, IOMMU_IOAS_ALLOW_IOVAS, { ioas_id: e.ioas, num_iovas: 1, allowed_iovas: arr }).rc).toBe(-EADDRINUSE);
  });
});

describe('IOVA allocation exhaustion and dirty bitmap lookups', () => {
  it('automatic IOVA inside a full allowed window is ENOSPC', () => {
    const e = env();
    const arr = e.proc.mmap(4096n);
    e.proc.copyToUser(arr, iommu_iova_range.encode({ start: 0x10000n, last: 0x11fffn }));
    expect(e.ioctl(iommu_ioas_allow_iovas, IOMMU_IOAS_ALLOW_IOVAS, { ioas_id: e.ioas, num_iovas: 1, allowed_iovas: arr }).rc).toBe(0);
    const auto = (length: bigint) =>
      e.ioctl(iommu_ioas_map, IOMMU_IOAS_MAP, { flags: RW, ioas_id: e.ioas, user_va: e.proc.mmap(length), length });
    expect(auto(0x1000n).out.iova).toBe(0x10000n);
    expect(auto(0x1000n).out.iova).toBe(0x11000n);
    expect(auto(0x1000n).rc).toBe(-ENOSPC);
  });

  it('GET_DIRTY_BITMAP: ENOENT for a nested or unknown id, EOVERFLOW past the address space', () => {
    const e = env();
    const a = e.bind();
    const h = e.ioctl(iommu_hwpt_alloc, IOMMU_HWPT_ALLOC, { dev_id: a.devId, pt_id: e.ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT }).out.out_hwpt_id;
    const get = (hwpt_id: number, iova: bigint, length: bigint) =>
      e.ioctl(iommu_hwpt_get_dirty_bitmap, IOMMU_HWPT_GET_DIRTY_BITMAP, { hwpt_id, iova, length, page_size: 4096n, data: 0n }).rc;
    expect(get(99, 0n, 4096n)).toBe(-ENOENT);
    expect(get(e.ioas, 0n, 4096n)).toBe(-ENOENT);
    expect(get(h, (1n << 64n) - 4096n, 8192n)).toBe(-EOVERFLOW);
    // A domain without dirty ops is EOPNOTSUPP only after the range checks.
    expect(get(h, 0n, 4096n)).toBe(-EOPNOTSUPP);
  });
});
