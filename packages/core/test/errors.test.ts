import { describe, expect, it } from 'vitest';
import {
  EINVAL,
  ENOENT,
  ENOMEM,
  ERANGE,
  IOMMU_HW_QUEUE_ALLOC,
  IOMMU_HW_QUEUE_TYPE_SELFTEST,
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
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
  iommu_ioas_map,
  iommu_option,
  iommu_vdevice_alloc,
  iommu_veventq_alloc,
  iommu_viommu_alloc,
  iommufd_vevent_header,
} from '@iommufd/uapi';
import { MOCK_APERTURE_FIRST_IOVA, MockIommu, mockTriggerVevent } from '@iommufd/mock-iommu';
import { iommufdDeviceAttach, iommufdDeviceBind, type IommufdCtxImpl, type Veventq } from '../src/index.js';
import { setup } from './harness.js';

const RW = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;

function env() {
  const e = setup();
  const ioas = e.ioctl(iommu_ioas_alloc, IOMMU_IOAS_ALLOC, {}).out.out_ioas_id;
  const bind = (dev = e.devs[0]!) => {
    const b = iommufdDeviceBind(e.ctx, dev);
    if (typeof b === 'number') throw new Error(`bind ${b}`);
    return b;
  };
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
