import { describe, expect, it } from 'vitest';
import {
  EBUSY,
  EEXIST,
  EFAULT,
  EINVAL,
  EIO,
  ENOENT,
  ENXIO,
  EOPNOTSUPP,
  EOVERFLOW,
  EPERM,
  ESPIPE,
  IOMMU_DESTROY,
  IOMMU_FAULT_QUEUE_ALLOC,
  IOMMU_HW_QUEUE_ALLOC,
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_FAULT_ID_VALID,
  IOMMU_HWPT_INVALIDATE,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_UNMAP,
  IOMMU_VDEVICE_ALLOC,
  IOMMU_VEVENTQ_ALLOC,
  IOMMU_VIOMMU_ALLOC,
  iommu_destroy,
  iommu_fault_alloc,
  iommu_hw_queue_alloc,
  iommu_hwpt_alloc,
  iommu_hwpt_invalidate,
  iommu_hwpt_page_response,
  iommu_hwpt_pgfault,
  iommu_ioas_alloc,
  iommu_ioas_map,
  iommu_ioas_unmap,
  iommu_vdevice_alloc,
  iommu_veventq_alloc,
  iommu_viommu_alloc,
  iommufd_vevent_header,
} from '@iommufd/uapi';
import {
  MOCK_APERTURE_FIRST_IOVA as MOCK_APERTURE_START,
  mockDeviceCache,
  mockDeviceState,
  mock_vdevice,
  mockTriggerIopf,
  mockTriggerVevent,
} from '@iommufd/mock-iommu';
import {
  IOMMU_HW_QUEUE_TYPE_SELFTEST,
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_VEVENTQ_TYPE_SELFTEST,
  IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST,
  IOMMU_VIOMMU_TYPE_SELFTEST,
  iommu_hwpt_selftest,
  iommu_viommu_invalidate_selftest,
  iommu_viommu_selftest,
} from '@iommufd/uapi';
import { deviceAttachedDomain, FailNth, type IommufdCtxImpl, type Viommu, iommufdDeviceAttach, iommufdDeviceBind, iommufdDeviceDetach, iommufdDeviceUnbind } from '../src/index.js';
import { bindOrThrow, RW, setup } from './harness.js';


/** An IOAS with guest RAM mapped, a bound device and a nesting-parent HWPT. */
function env(opts: Parameters<typeof setup>[0] = {}) {
  const e = setup(opts);
  const ioas = e.ioctl(iommu_ioas_alloc, IOMMU_IOAS_ALLOC, {}).out.out_ioas_id;
  const b = bindOrThrow(e.ctx, e.devs[0]!);
  const parent = e.ioctl(iommu_hwpt_alloc, IOMMU_HWPT_ALLOC, { dev_id: b.devId, pt_id: ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT });
  const guestRam = e.proc.mmap(0x10000n);
  const viommuAlloc = (v: object = {}, size?: number) =>
    e.ioctl(iommu_viommu_alloc, IOMMU_VIOMMU_ALLOC, { type: IOMMU_VIOMMU_TYPE_SELFTEST, dev_id: b.devId, hwpt_id: parent.out.out_hwpt_id, ...v }, size ? { size } : {});
  return { ...e, ioas, idev: b.idev, devId: b.devId, parentId: parent.out.out_hwpt_id, guestRam, viommuAlloc };
}

describe('IOMMU_VIOMMU_ALLOC (the seed)', () => {
  it('order: flags/type, device, driver ops, size, HWPT (ENOENT for a nested id), nest_parent', () => {
    const e = env();
    expect(e.viommuAlloc({ flags: 1 }).rc).toBe(-EOPNOTSUPP);
    expect(e.viommuAlloc({ type: 0 }).rc).toBe(-EOPNOTSUPP);
    expect(e.viommuAlloc({ dev_id: 99 }).rc).toBe(-ENOENT);
    // get_viommu_size returns 0 for an unsupported type.
    expect(e.viommuAlloc({ type: 1 }).rc).toBe(-EOPNOTSUPP);
    expect(e.viommuAlloc({ hwpt_id: 99 }).rc).toBe(-ENOENT);
    const plain = e.ioctl(iommu_hwpt_alloc, IOMMU_HWPT_ALLOC, { dev_id: e.devId, pt_id: e.ioas }).out.out_hwpt_id;
    expect(e.viommuAlloc({ hwpt_id: plain }).rc).toBe(-EINVAL);
    // A 24-byte struct (no driver data) is accepted; __reserved is not checked.
    const r = e.viommuAlloc({ __reserved: 7 }, 24);
    expect(r.rc).toBe(0);
    expect(e.ctx.objects().find((o) => o.id === r.out.out_viommu_id)).toMatchObject({ type: 'VIOMMU', refs: [e.parentId] });
    expect(e.ioctl(iommu_destroy, IOMMU_DESTROY, { id: e.parentId }).rc).toBe(-EBUSY);
  });

  it('driver data in/out and the mmap region; the mapping pins the vIOMMU', () => {
    const e = env();
    const data = e.proc.mmap(4096n);
    e.proc.copyToUser(data, iommu_viommu_selftest.encode({ in_data: 0xabcd }));
    const r = e.viommuAlloc({ data_len: iommu_viommu_selftest.size, data_uptr: data });
    expect(r.rc).toBe(0);
    const out = iommu_viommu_selftest.decode(e.proc.copyFromUser(data, 24) as Uint8Array);
    expect(out.out_data).toBe(0xabcd);
    expect(out.out_mmap_length).toBe(0x2000n);
    expect(out.out_mmap_offset).not.toBe(0n);
    const MAP_SHARED = 1;
    expect(e.ctx.mmap!(0x1000n, 3, MAP_SHARED, out.out_mmap_offset)).toBe(ENXIO);
    expect(e.ctx.mmap!(0x2000n, 3, 2, out.out_mmap_offset)).toBe(EINVAL);
    expect(e.ctx.mmap!(0x2000n, 4, MAP_SHARED, out.out_mmap_offset)).toBe(EPERM);
    const region = e.ctx.mmap!(0x2000n, 3, MAP_SHARED, out.out_mmap_offset);
    if (typeof region === 'number') throw new Error(`mmap ${region}`);
    expect(e.ioctl(iommu_destroy, IOMMU_DESTROY, { id: r.out.out_viommu_id }).rc).toBe(-EBUSY);
    // Driver data longer than the driver's struct is EINVAL (not E2BIG).
    expect(e.viommuAlloc({ data_len: 32, data_uptr: data }).rc).toBe(-EINVAL);
    // The mapping also keeps the ctx file: closing /dev/iommu tears down only after munmap.
    iommufdDeviceUnbind(e.idev);
    e.ctx.release();
    expect(e.core.openContexts).toBe(1);
    region.close();
    expect(e.core.openContexts).toBe(0);
    expect(e.ctx.objects()).toEqual([]);
  });

  it('a failing viommuInit unwinds: the ID returns and the parent is unpinned', () => {
    const e = env();
    const data = e.proc.mmap(4096n);
    expect(e.viommuAlloc({ data_len: 4, data_uptr: data }).rc).toBe(-EINVAL);
    const before = e.ctx.objects();
    expect(before.find((o) => o.id === e.parentId)!.users).toBe(1);
    expect(before.map((o) => o.id)).toEqual([1, 2, 3]);
  });
});

describe('driver bugs are EOPNOTSUPP', () => {
  it('size smaller than the core struct, or viommuInit not setting ops', () => {
    const e = env();
    const ops = e.mock.ops as { getViommuSize?: unknown; viommuInit?: unknown };
    const origSize = ops.getViommuSize;
    ops.getViommuSize = () => 16;
    expect(e.viommuAlloc().rc).toBe(-EOPNOTSUPP);
    ops.getViommuSize = origSize;
    const origInit = ops.viommuInit;
    let destroyCalled = false;
    ops.viommuInit = () => 0;
    expect(e.viommuAlloc().rc).toBe(-EOPNOTSUPP);
    ops.viommuInit = (v: { ops: unknown }) => {
      v.ops = { destroy: () => (destroyCalled = true) };
      return EIO;
    };
    expect(e.viommuAlloc().rc).toBe(-EIO);
    expect(destroyCalled).toBe(true);
    ops.viommuInit = origInit;
    expect(e.ctx.objects().map((o) => o.id)).toEqual([1, 2, 3]);
  });
});

describe('vDEVICE driver contract', () => {
  it('vdeviceSize below the core struct or without vdeviceInit is EOPNOTSUPP; a failing init unwinds', () => {
    const e = env();
    const vid = e.viommuAlloc().out.out_viommu_id;
    const ictx = e.ctx as IommufdCtxImpl;
    const viommu = ictx.getObject<Viommu>(vid, 'VIOMMU') as Viommu;
    ictx.putObject(viommu);
    const ops = viommu.core.ops!;
    const alloc = () => e.ioctl(iommu_vdevice_alloc, IOMMU_VDEVICE_ALLOC, { viommu_id: vid, dev_id: e.devId, virt_id: 3n }).rc;
    viommu.core.ops = { ...ops, vdeviceSize: 8 };
    expect(alloc()).toBe(-EOPNOTSUPP);
    viommu.core.ops = { ...ops, vdeviceInit: undefined };
    expect(alloc()).toBe(-EOPNOTSUPP);
    viommu.core.ops = { ...ops, vdeviceInit: () => EIO };
    expect(alloc()).toBe(-EIO);
    expect(e.ctx.objects().find((o) => o.id === vid)!.users).toBe(1);
    viommu.core.ops = ops;
    expect(alloc()).toBe(0);
  });
});

describe('vDEVICE', () => {
  it('EEXIST per device and per virt_id; EINVAL across IOMMU instances', () => {
    const e = env();
    const v = e.viommuAlloc().out.out_viommu_id;
    const b2 = iommufdDeviceBind(e.ctx, e.devs[1]!) as { devId: number };
    const alloc = (dev_id: number, virt_id: bigint, viommu_id = v) => e.ioctl(iommu_vdevice_alloc, IOMMU_VDEVICE_ALLOC, { viommu_id, dev_id, virt_id });
    expect(alloc(e.devId, 0x99n, 77).rc).toBe(-ENOENT);
    expect(alloc(77, 0x99n).rc).toBe(-ENOENT);
    const vd = alloc(e.devId, 0x99n);
    expect(vd.rc).toBe(0);
    expect(alloc(e.devId, 0x88n).rc).toBe(-EEXIST);
    expect(alloc(b2.devId, 0x99n).rc).toBe(-EEXIST);
    expect(alloc(b2.devId, 0x88n).rc).toBe(0);
    expect(e.ioctl(iommu_destroy, IOMMU_DESTROY, { id: v }).rc).toBe(-EBUSY);
    // The driver's vDEVICE struct (vdeviceSize) was allocated by the core and initialized.
    const drv = mockDeviceState(e.devs[0]!).vdevice!;
    expect(drv.memory.bytes.byteLength).toBe(mock_vdevice.size);
    expect(drv.virtId).toBe(0x99n);
    expect(drv.id).toBe(vd.out.out_vdevice_id);
    expect(e.ioctl(iommu_destroy, IOMMU_DESTROY, { id: vd.out.out_vdevice_id }).rc).toBe(0);
    // Its destroy callback ran.
    expect(mockDeviceState(e.devs[0]!).vdevice).toBeUndefined();
  });

  it('unbind before destroying the vDEVICE leaves a tombstone until close', () => {
    const e = env();
    const v = e.viommuAlloc().out.out_viommu_id;
    const vd = e.ioctl(iommu_vdevice_alloc, IOMMU_VDEVICE_ALLOC, { viommu_id: v, dev_id: e.devId, virt_id: 5n }).out.out_vdevice_id;
    iommufdDeviceUnbind(e.idev);
    expect(e.ctx.objects().find((o) => o.id === vd)).toMatchObject({ state: 'reserved', type: 'VDEVICE' });
    expect(e.ioctl(iommu_destroy, IOMMU_DESTROY, { id: vd }).rc).toBe(-ENOENT);
    // The vIOMMU is free again.
    expect(e.ioctl(iommu_destroy, IOMMU_DESTROY, { id: v }).rc).toBe(0);
    // The tombstoned ID is not reused.
    const again = e.ioctl(iommu_ioas_alloc, IOMMU_IOAS_ALLOC, {}).out.out_ioas_id;
    expect(again).not.toBe(vd);
    e.ctx.release();
    expect(e.ctx.objects()).toEqual([]);
  });

  it('vIOMMU invalidation clears device caches through viommuFindDev', () => {
    const e = env();
    const v = e.viommuAlloc().out.out_viommu_id;
    e.ioctl(iommu_vdevice_alloc, IOMMU_VDEVICE_ALLOC, { viommu_id: v, dev_id: e.devId, virt_id: 0x99n });
    const reqs = e.proc.mmap(4096n);
    e.proc.copyToUser(reqs, iommu_viommu_invalidate_selftest.encode({ flags: 0, vdev_id: 0x99, cache_id: 2 }));
    e.proc.copyToUser(reqs + 12n, iommu_viommu_invalidate_selftest.encode({ flags: 0, vdev_id: 0x55, cache_id: 0 }));
    const inv = (entry_num: number, type = IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST) =>
      e.ioctl(iommu_hwpt_invalidate, IOMMU_HWPT_INVALIDATE, { hwpt_id: v, data_uptr: reqs, data_type: type, entry_len: 12, entry_num });
    expect(inv(0).rc).toBe(0);
    const r = inv(2);
    expect([r.rc, r.out.entry_num]).toEqual([-EINVAL, 1]);
    expect([0, 1, 2, 3].map((i) => mockDeviceCache(e.devs[0]!, i))).toEqual([0xbaddad, 0xbaddad, 0, 0xbaddad]);
    expect(inv(1, 5).rc).toBe(-EINVAL);
  });
});

describe('nested HWPT on a vIOMMU, vEVENTQ', () => {
  it('attach needs a vDEVICE; events carry the virt_id, lost events and 31-bit sequences', () => {
    const e = env();
    const v = e.viommuAlloc().out.out_viommu_id;
    const data = e.proc.mmap(4096n);
    e.proc.copyToUser(data, iommu_hwpt_selftest.encode({ iotlb: 1 }));
    const nested = e.ioctl(iommu_hwpt_alloc, IOMMU_HWPT_ALLOC, {
      dev_id: e.devId,
      pt_id: v,
      data_type: IOMMU_HWPT_DATA_SELFTEST,
      data_len: 4,
      data_uptr: data,
    });
    expect(nested.rc).toBe(0);
    expect(e.ctx.objects().find((o) => o.id === nested.out.out_hwpt_id)!.refs).toEqual([v]);
    expect(iommufdDeviceAttach(e.idev, undefined, nested.out.out_hwpt_id)).toBe(ENOENT);
    e.ioctl(iommu_vdevice_alloc, IOMMU_VDEVICE_ALLOC, { viommu_id: v, dev_id: e.devId, virt_id: 0x99n });
    expect(iommufdDeviceAttach(e.idev, undefined, nested.out.out_hwpt_id)).toEqual({ ptId: nested.out.out_hwpt_id });
    // No vEVENTQ yet: the event is dropped.
    expect(mockTriggerVevent(e.devs[0]!)).toBe(EOPNOTSUPP);
    const qa = (v2: object) => e.ioctl(iommu_veventq_alloc, IOMMU_VEVENTQ_ALLOC, { viommu_id: v, type: IOMMU_VEVENTQ_TYPE_SELFTEST, veventq_depth: 2, ...v2 });
    expect(qa({ veventq_depth: 0 }).rc).toBe(-EINVAL);
    expect(qa({ __reserved: 1 }).rc).toBe(-EOPNOTSUPP);
    expect(qa({ type: 0 }).rc).toBe(-EOPNOTSUPP);
    const q = qa({});
    expect(q.rc).toBe(0);
    expect(qa({}).rc).toBe(-EEXIST);
    const file = e.proc.file(q.out.out_veventq_fd);
    for (let i = 0; i < 4; i++) expect(mockTriggerVevent(e.devs[0]!)).toBe(0);
    const buf = new Uint8Array(64);
    expect(file.read!(buf, 1)).toBe(-ESPIPE);
    expect(file.read!(new Uint8Array(11), 0)).toBe(0);
    const n = file.read!(buf, 0);
    // Two records (8+4 each) and the lost-events header with the newest sequence.
    expect(n).toBe(12 + 12 + 8);
    expect(iommufd_vevent_header.decode(buf, 0)).toEqual({ flags: 0, sequence: 0 });
    expect(new DataView(buf.buffer).getUint32(8, true)).toBe(0x99);
    expect(iommufd_vevent_header.decode(buf, 12)).toEqual({ flags: 0, sequence: 1 });
    expect(iommufd_vevent_header.decode(buf, 24)).toEqual({ flags: 1, sequence: 3 });
    // The fd pins the vEVENTQ; closing it makes it destroyable.
    expect(e.ioctl(iommu_destroy, IOMMU_DESTROY, { id: q.out.out_veventq_id }).rc).toBe(-EBUSY);
    e.proc.close(q.out.out_veventq_fd);
    expect(e.ioctl(iommu_destroy, IOMMU_DESTROY, { id: q.out.out_veventq_id }).rc).toBe(0);
  });
});

describe('HW_QUEUE', () => {
  function hwEnv(scatter = false) {
    const e = env();
    const v = e.viommuAlloc().out.out_viommu_id;
    const ram = e.proc.mmap(0x4000n, { scatter });
    e.ioctl(iommu_ioas_map, IOMMU_IOAS_MAP, { flags: RW | IOMMU_IOAS_MAP_FIXED_IOVA, ioas_id: e.ioas, user_va: ram, length: 0x4000n, iova: MOCK_APERTURE_START });
    const alloc = (v2: object) =>
      e.ioctl(iommu_hw_queue_alloc, IOMMU_HW_QUEUE_ALLOC, { viommu_id: v, type: IOMMU_HW_QUEUE_TYPE_SELFTEST, nesting_parent_iova: MOCK_APERTURE_START, length: 0x1000n, ...v2 });
    return { ...e, v, alloc };
  }

  it('order of checks and ID consumption (queue, then its internal ACCESS)', () => {
    const e = hwEnv();
    expect(e.alloc({ flags: 1 }).rc).toBe(-EOPNOTSUPP);
    expect(e.alloc({ type: 0 }).rc).toBe(-EOPNOTSUPP);
    expect(e.alloc({ length: 0n }).rc).toBe(-EINVAL);
    expect(e.alloc({ nesting_parent_iova: (1n << 64n) - 0x800n }).rc).toBe(-EOVERFLOW);
    expect(e.alloc({ viommu_id: 99 }).rc).toBe(-ENOENT);
    expect(e.alloc({ type: 1 }).rc).toBe(-EOPNOTSUPP);
    expect(e.alloc({ nesting_parent_iova: MOCK_APERTURE_START + 0x10000n }).rc).toBe(-ENOENT);
    expect(e.alloc({ index: 1 }).rc).toBe(-EIO);
    const q0 = e.alloc({ index: 0 });
    expect(q0.rc).toBe(0);
    const ids = e.ctx.objects();
    const acc = ids.find((o) => o.type === 'ACCESS')!;
    expect(acc.id).toBe(q0.out.out_hw_queue_id + 1);
    expect(e.ioctl(iommu_destroy, IOMMU_DESTROY, { id: acc.id }).rc).toBe(-EBUSY);
    // The queue memory cannot be unmapped, nor the IOAS destroyed.
    expect(e.ioctl(iommu_ioas_unmap, IOMMU_IOAS_UNMAP, { ioas_id: e.ioas, iova: MOCK_APERTURE_START, length: 0x4000n }).rc).toBe(-EBUSY);
    expect(e.alloc({ index: 0 }).rc).toBe(-EEXIST);
    const q1 = e.alloc({ index: 1, nesting_parent_iova: MOCK_APERTURE_START + 0x1000n });
    expect(q1.rc).toBe(0);
    // q1 depends on q0: q0 cannot go first.
    expect(e.ioctl(iommu_destroy, IOMMU_DESTROY, { id: q0.out.out_hw_queue_id }).rc).toBe(-EBUSY);
    expect(e.ioctl(iommu_destroy, IOMMU_DESTROY, { id: e.v }).rc).toBe(-EBUSY);
    expect(e.ioctl(iommu_destroy, IOMMU_DESTROY, { id: q1.out.out_hw_queue_id }).rc).toBe(0);
    expect(e.ioctl(iommu_destroy, IOMMU_DESTROY, { id: q0.out.out_hw_queue_id }).rc).toBe(0);
    expect(e.ctx.objects().some((o) => o.type === 'ACCESS')).toBe(false);
    expect(e.ioctl(iommu_ioas_unmap, IOMMU_IOAS_UNMAP, { ioas_id: e.ioas, iova: MOCK_APERTURE_START, length: 0x4000n }).rc).toBe(0);
  });

  it('physically scattered queue memory is EFAULT and leaves nothing behind', () => {
    const e = hwEnv(true);
    const before = e.ctx.objects();
    expect(e.alloc({ length: 0x2000n }).rc).toBe(-EFAULT);
    expect(e.ctx.objects()).toEqual(before);
    expect(e.alloc({ length: 0x800n, nesting_parent_iova: MOCK_APERTURE_START + 0x400n }).rc).toBe(0);
  });
});

describe('FAULT queue', () => {
  it('delivers page requests in 40-byte records with cookies; responses complete them; detach answers INVALID', () => {
    const e = env();
    const f = e.ioctl(iommu_fault_alloc, IOMMU_FAULT_QUEUE_ALLOC, {});
    expect(f.rc).toBe(0);
    expect(e.ioctl(iommu_fault_alloc, IOMMU_FAULT_QUEUE_ALLOC, { flags: 1 }).rc).toBe(-EOPNOTSUPP);
    const h = e.ioctl(iommu_hwpt_alloc, IOMMU_HWPT_ALLOC, { dev_id: e.devId, pt_id: e.ioas, flags: IOMMU_HWPT_FAULT_ID_VALID, fault_id: f.out.out_fault_id });
    expect(h.rc).toBe(0);
    expect(e.ioctl(iommu_hwpt_alloc, IOMMU_HWPT_ALLOC, { dev_id: e.devId, pt_id: e.ioas, flags: IOMMU_HWPT_FAULT_ID_VALID, fault_id: 99 }).rc).toBe(-ENOENT);
    iommufdDeviceAttach(e.idev, undefined, h.out.out_hwpt_id);
    const domainOf = (d: Parameters<typeof deviceAttachedDomain>[0], p?: number) => deviceAttachedDomain(d, p);
    expect(mockTriggerIopf(e.devs[0]!, domainOf as never, { pasid: 0, grpid: 7, perm: 1, addr: 0x1000n })).toBe(0);
    const file = e.proc.file(f.out.out_fault_fd);
    expect(file.read!(new Uint8Array(41), 0)).toBe(-ESPIPE);
    const buf = new Uint8Array(80);
    expect(file.read!(buf, 0)).toBe(40);
    const rec = iommu_hwpt_pgfault.decode(buf);
    expect(rec).toMatchObject({ flags: 2, dev_id: e.devId, grpid: 7, perm: 1, addr: 0x1000n, cookie: 1 });
    expect(file.write!(iommu_hwpt_page_response.encode({ cookie: 9, code: 0 }), 0)).toBe(-EINVAL);
    expect(file.write!(iommu_hwpt_page_response.encode({ cookie: 1, code: 5 }), 0)).toBe(-EINVAL);
    expect(file.write!(iommu_hwpt_page_response.encode({ cookie: 1, code: 0 }), 0)).toBe(8);
    mockTriggerIopf(e.devs[0]!, domainOf as never, { pasid: 0, grpid: 8, perm: 2, addr: 0x2000n });
    iommufdDeviceDetach(e.idev, undefined);
    const state = (e.devs[0]!.iommuPriv as { pageResponses: { code: number }[] }).pageResponses;
    expect(state.map((r) => r.code)).toEqual([0, 1]);
    expect(e.ioctl(iommu_destroy, IOMMU_DESTROY, { id: f.out.out_fault_id }).rc).toBe(-EBUSY);
  });
});

describe('fail_nth over the vIOMMU stack', () => {
  it('every injected failure leaves no object, pin or ID after close', () => {
    for (let n = 1; ; n++) {
      const inj = new FailNth(n);
      const e = setup({ faultInjection: inj });
      const ioas = e.ioctl(iommu_ioas_alloc, IOMMU_IOAS_ALLOC, {}).out.out_ioas_id;
      const b = iommufdDeviceBind(e.ctx, e.devs[0]!);
      if (typeof b !== 'number') {
        const ram = e.proc.mmap(0x2000n);
        e.ioctl(iommu_ioas_map, IOMMU_IOAS_MAP, { flags: RW | IOMMU_IOAS_MAP_FIXED_IOVA, ioas_id: ioas, user_va: ram, length: 0x2000n, iova: MOCK_APERTURE_START });
        const p = e.ioctl(iommu_hwpt_alloc, IOMMU_HWPT_ALLOC, { dev_id: b.devId, pt_id: ioas, flags: IOMMU_HWPT_ALLOC_NEST_PARENT }).out.out_hwpt_id;
        const data = e.proc.mmap(4096n);
        e.proc.copyToUser(data, iommu_viommu_selftest.encode({ in_data: 1 }));
        const v = e.ioctl(iommu_viommu_alloc, IOMMU_VIOMMU_ALLOC, { type: IOMMU_VIOMMU_TYPE_SELFTEST, dev_id: b.devId, hwpt_id: p, data_len: 24, data_uptr: data }).out.out_viommu_id;
        e.ioctl(iommu_vdevice_alloc, IOMMU_VDEVICE_ALLOC, { viommu_id: v, dev_id: b.devId, virt_id: 1n });
        const q = e.ioctl(iommu_veventq_alloc, IOMMU_VEVENTQ_ALLOC, { viommu_id: v, type: IOMMU_VEVENTQ_TYPE_SELFTEST, veventq_depth: 4 });
        e.ioctl(iommu_hw_queue_alloc, IOMMU_HW_QUEUE_ALLOC, { viommu_id: v, type: IOMMU_HW_QUEUE_TYPE_SELFTEST, nesting_parent_iova: MOCK_APERTURE_START, length: 0x1000n });
        if (q.rc === 0) e.proc.close(q.out.out_veventq_fd);
        iommufdDeviceUnbind(b.idev);
      }
      e.ctx.release();
      expect({ n, site: inj.failedSite, objects: e.ctx.objects() }).toEqual({ n, site: inj.failedSite, objects: [] });
      expect(e.proc.pinnedPages).toBe(0);
      expect(e.core.openContexts).toBe(0);
      if (!inj.injected) break;
      expect(n).toBeLessThan(200);
    }
  });
});
