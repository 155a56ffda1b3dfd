import { describe, expect, expectTypeOf, it } from 'vitest';
import * as u from '../src/index.js';
import { FakeProcess, le32, le64 } from './fake-process.js';

const FD = 3;
const structOf = (a: bigint | Uint8Array): Uint8Array => {
  if (typeof a === 'bigint') throw new Error('expected a struct');
  return a;
};

describe('iommufd wrappers: exact bytes in, outputs out', () => {
  it('ioasAlloc sends size 12 and returns out_ioas_id', () => {
    const p = new FakeProcess(({ arg }) => {
      u.iommu_ioas_alloc.set(structOf(arg), 'out_ioas_id', 7);
      return 0;
    });
    expect(u.ioasAlloc(p, FD)).toBe(7);
    expect(p.calls[0].fd).toBe(FD);
    expect(p.calls[0].request).toBe(0x3b81);
    expect(p.bytesOf(0)).toEqual([...le32(12), ...le32(0), ...le32(0)]);
  });

  it('destroy', () => {
    const p = new FakeProcess();
    u.destroy(p, FD, 9);
    expect([p.calls[0].request, p.bytesOf(0)]).toEqual([0x3b80, [...le32(8), ...le32(9)]]);
  });

  it('ioasMap: automatic IOVA (flags R|W) and fixed IOVA (adds FIXED_IOVA)', () => {
    const p = new FakeProcess(({ arg }) => {
      const s = structOf(arg);
      if (!(u.iommu_ioas_map.get(s, 'flags') & u.IOMMU_IOAS_MAP_FIXED_IOVA)) u.iommu_ioas_map.set(s, 'iova', 0x10000n);
      return 0;
    });
    expect(u.ioasMap(p, FD, { ioasId: 2, userVa: 0x7000_0000n, length: 0x2000n })).toBe(0x10000n);
    expect(p.bytesOf(0)).toEqual([
      ...le32(40), ...le32(6), ...le32(2), ...le32(0), ...le64(0x7000_0000n), ...le64(0x2000n), ...le64(0n),
    ]);
    expect(u.ioasMap(p, FD, { ioasId: 2, userVa: 0x7000_0000n, length: 0x1000n, iova: 0x40000n, flags: u.IOMMU_IOAS_MAP_READABLE })).toBe(
      0x40000n,
    );
    expect(u.iommu_ioas_map.decode(Uint8Array.from(p.bytesOf(1)))).toMatchObject({ flags: 5, iova: 0x40000n });
  });

  it('ioasMapFile, ioasCopy, ioasUnmap, ioasUnmapAll, ioasChangeProcess', () => {
    const p = new FakeProcess(({ request, arg }) => {
      const s = structOf(arg);
      if (request === u.IOMMU_IOAS_MAP_FILE) u.iommu_ioas_map_file.set(s, 'iova', 0x1000n);
      if (request === u.IOMMU_IOAS_COPY) u.iommu_ioas_copy.set(s, 'dst_iova', 0x2000n);
      if (request === u.IOMMU_IOAS_UNMAP) u.iommu_ioas_unmap.set(s, 'length', 0x3000n);
      return 0;
    });
    expect(u.ioasMapFile(p, FD, { ioasId: 1, memFd: 5, start: 0x1000n, length: 0x1000n })).toBe(0x1000n);
    expect(p.bytesOf(0)).toEqual([...le32(40), ...le32(6), ...le32(1), ...le32(5), ...le64(0x1000n), ...le64(0x1000n), ...le64(0n)]);
    expect(u.ioasCopy(p, FD, { dstIoasId: 2, srcIoasId: 1, srcIova: 0x1000n, length: 0x1000n })).toBe(0x2000n);
    expect(p.bytesOf(1)).toEqual([...le32(40), ...le32(6), ...le32(2), ...le32(1), ...le64(0x1000n), ...le64(0n), ...le64(0x1000n)]);
    expect(u.ioasUnmap(p, FD, { ioasId: 1, iova: 0x1000n, length: 0x3000n })).toBe(0x3000n);
    expect(p.bytesOf(2)).toEqual([...le32(24), ...le32(1), ...le64(0x1000n), ...le64(0x3000n)]);
    u.ioasUnmapAll(p, FD, 4);
    expect(p.bytesOf(3)).toEqual([...le32(24), ...le32(4), ...le64(0n), ...Array(8).fill(0xff)]);
    u.ioasChangeProcess(p, FD);
    expect([p.calls[4].request, p.bytesOf(4)]).toEqual([0x3b92, [...le32(8), ...le32(0)]]);
  });

  it('ioasAllowIovas places the range array in process memory', () => {
    let seen: number[] = [];
    const p = new FakeProcess(({ arg }, proc) => {
      const v = u.iommu_ioas_allow_iovas.decode(structOf(arg));
      seen = Array.from(proc.peek(v.allowed_iovas, v.num_iovas * 16));
      return 0;
    });
    u.ioasAllowIovas(p, FD, 3, [{ start: 0x1000n, last: 0x1fffn }, { start: 0x10000n, last: 0x1ffffn }]);
    const s = u.iommu_ioas_allow_iovas.decode(Uint8Array.from(p.bytesOf(0)));
    expect(s).toMatchObject({ size: 24, ioas_id: 3, num_iovas: 2, __reserved: 0 });
    expect(s.allowed_iovas).toBe(p.mmaps[0].va);
    expect(seen).toEqual([...le64(0x1000n), ...le64(0x1fffn), ...le64(0x10000n), ...le64(0x1ffffn)]);
    u.ioasAllowIovas(p, FD, 3, []);
    expect(u.iommu_ioas_allow_iovas.decode(Uint8Array.from(p.bytesOf(1)))).toMatchObject({ num_iovas: 0, allowed_iovas: 0n });
  });

  it('ioasIovaRanges retries after EMSGSIZE with the count the kernel returned', () => {
    const ranges = [
      { start: 0x1000n, last: 0xfeefffffn },
      { start: 0xfef00000n, last: 0xffff_ffff_ffff_efffn },
    ];
    const p = new FakeProcess(({ arg }, proc) => {
      const s = structOf(arg);
      const v = u.iommu_ioas_iova_ranges.decode(s);
      ranges.slice(0, v.num_iovas).forEach((r, i) => proc.poke(v.allowed_iovas + BigInt(16 * i), u.iommu_iova_range.encode(r)));
      u.iommu_ioas_iova_ranges.set(s, 'out_iova_alignment', 4096n);
      const room = v.num_iovas;
      u.iommu_ioas_iova_ranges.set(s, 'num_iovas', ranges.length);
      return room < ranges.length ? -u.EMSGSIZE : 0;
    });
    expect(u.ioasIovaRanges(p, FD, 5, 1)).toEqual({ ranges, alignment: 4096n });
    expect(p.calls.map((c) => u.iommu_ioas_iova_ranges.decode(structOf(c.arg)).num_iovas)).toEqual([1, 2]);
    expect(p.bytesOf(0).slice(0, 16)).toEqual([...le32(32), ...le32(5), ...le32(1), ...le32(0)]);
  });

  it('hwptAlloc: plain, and nested with driver data and a fault queue', () => {
    let data: number[] = [];
    const p = new FakeProcess(({ arg }, proc) => {
      const s = structOf(arg);
      const v = u.iommu_hwpt_alloc.decode(s);
      data = Array.from(proc.peek(v.data_uptr, v.data_len));
      u.iommu_hwpt_alloc.set(s, 'out_hwpt_id', 11);
      return 0;
    });
    expect(u.hwptAlloc(p, FD, { devId: 2, ptId: 1, flags: u.IOMMU_HWPT_ALLOC_NEST_PARENT })).toBe(11);
    expect(p.bytesOf(0)).toEqual([
      ...le32(48), ...le32(1), ...le32(2), ...le32(1), ...le32(0), ...le32(0), ...le32(0), ...le32(0), ...le64(0n), ...le32(0), ...le32(0),
    ]);
    const ste = u.iommu_hwpt_arm_smmuv3.encode({ ste: [0x1234_0005n, 0x8n] });
    u.hwptAlloc(p, FD, { devId: 2, ptId: 11, data: { type: u.IOMMU_HWPT_DATA_ARM_SMMUV3, bytes: ste }, faultId: 6 });
    const v = u.iommu_hwpt_alloc.decode(Uint8Array.from(p.bytesOf(1)));
    expect(v).toMatchObject({ flags: u.IOMMU_HWPT_FAULT_ID_VALID, pt_id: 11, data_type: 2, data_len: 16, fault_id: 6 });
    expect(data).toEqual(Array.from(ste));
  });

  it('getHwInfo: requested type, payload copied out of process memory', () => {
    const info = u.iommu_hw_info_arm_smmuv3.encode({ idr: [1, 2, 3, 4, 5, 6], iidr: 0x43b, aidr: 2 });
    const p = new FakeProcess(({ arg }, proc) => {
      const s = structOf(arg);
      const v = u.iommu_hw_info.decode(s);
      proc.poke(v.data_uptr, info.subarray(0, Math.min(v.data_len, info.length)));
      u.iommu_hw_info.encode({ ...v, data_len: 40, out_data_type: 2, out_max_pasid_log2: 20, out_capabilities: 1n }, s);
      return 0;
    });
    const hw = u.getHwInfo(p, FD, { devId: 4, type: u.IOMMU_HW_INFO_TYPE_ARM_SMMUV3 });
    expect(hw).toMatchObject({ type: 2, dataLen: 40, maxPasidLog2: 20, capabilities: 1n });
    expect(Array.from(hw.data)).toEqual(Array.from(info));
    expect(u.iommu_hw_info_arm_smmuv3.decode(hw.data).iidr).toBe(0x43b);
    expect(u.iommu_hw_info.decode(Uint8Array.from(p.bytesOf(0)))).toMatchObject({
      size: 40, flags: u.IOMMU_HW_INFO_FLAG_INPUT_TYPE, dev_id: 4, data_len: 256, in_data_type: 2,
    });
    const short = u.getHwInfo(p, FD, { devId: 4, bufferLength: 8 });
    expect([short.data.length, short.dataLen]).toEqual([8, 40]);
    expect(u.iommu_hw_info.decode(Uint8Array.from(p.bytesOf(1)))).toMatchObject({ flags: 0, in_data_type: 0, data_len: 8 });
  });

  it('dirty tracking: set, and a bitmap sized in whole u64 words', () => {
    const p = new FakeProcess(({ request, arg }, proc) => {
      if (request === u.IOMMU_HWPT_GET_DIRTY_BITMAP) proc.poke(u.iommu_hwpt_get_dirty_bitmap.decode(structOf(arg)).data, Uint8Array.of(0b101));
      return 0;
    });
    u.hwptSetDirtyTracking(p, FD, 8, true);
    expect(p.bytesOf(0)).toEqual([...le32(16), ...le32(1), ...le32(8), ...le32(0)]);
    const bitmap = u.hwptGetDirtyBitmap(p, FD, { hwptId: 8, iova: 0x10000n, length: 65n * 4096n, pageSize: 4096n });
    expect(bitmap.length).toBe(16);
    expect(bitmap[0]).toBe(0b101);
    expect(u.iommu_hwpt_get_dirty_bitmap.decode(Uint8Array.from(p.bytesOf(1)))).toMatchObject({
      size: 48, hwpt_id: 8, flags: 0, iova: 0x10000n, length: 65n * 4096n, page_size: 4096n,
    });
  });

  it('hwptInvalidate returns entry_num, and throws with entryNum when the kernel fails midway', () => {
    let entries: number[] = [];
    const p = new FakeProcess(({ arg }, proc) => {
      const s = structOf(arg);
      const v = u.iommu_hwpt_invalidate.decode(s);
      entries = Array.from(proc.peek(v.data_uptr, v.entry_len * v.entry_num));
      u.iommu_hwpt_invalidate.set(s, 'entry_num', 1);
      return v.entry_num > 1 ? -u.EIO : 0;
    });
    const cmd = (op: bigint) => u.iommu_viommu_arm_smmuv3_invalidate.encode({ cmd: [op, 0n] });
    expect(u.hwptInvalidate(p, FD, { hwptId: 9, dataType: 1, entryLen: 16, entries: [cmd(0x12n)] })).toEqual({ entryNum: 1 });
    expect(p.bytesOf(0).slice(0, 4)).toEqual(le32(32));
    let err: unknown;
    try {
      u.hwptInvalidate(p, FD, { hwptId: 9, dataType: 1, entryLen: 16, entries: [cmd(0x12n), cmd(0x99n)] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(u.IommufdError);
    expect(err).toMatchObject({ errno: 5, errnoName: 'EIO', ioctl: 'IOMMU_HWPT_INVALIDATE', entryNum: 1 });
    expect((err as Error).message).toBe('IOMMU_HWPT_INVALIDATE failed: EIO (5); entry_num = 1');
    expect(entries).toEqual([...cmd(0x12n), ...cmd(0x99n)]);
    // entry_num 0 probes the data type: no array at all.
    u.hwptInvalidate(p, FD, { hwptId: 9, dataType: 1, entryLen: 16, entries: [] });
    expect(u.iommu_hwpt_invalidate.decode(Uint8Array.from(p.bytesOf(2)))).toMatchObject({ data_uptr: 0n, entry_num: 0, entry_len: 16 });
  });

  it('errors name the ioctl and errno', () => {
    const p = new FakeProcess(() => -u.EINVAL);
    expect(() => u.hwptAlloc(p, FD, { devId: 1, ptId: 2 })).toThrow('IOMMU_HWPT_ALLOC failed: EINVAL (22)');
    try {
      u.destroy(p, FD, 1);
    } catch (e) {
      expect(e).toMatchObject({ name: 'IommufdError', errno: 22, errnoName: 'EINVAL', ioctl: 'IOMMU_DESTROY', entryNum: undefined });
    }
    expect.assertions(2);
  });

  it('FAULT, vIOMMU, vDEVICE, vEVENTQ and HW_QUEUE allocations', () => {
    const p = new FakeProcess(({ request, arg }, proc) => {
      const s = structOf(arg);
      switch (request) {
        case u.IOMMU_FAULT_QUEUE_ALLOC:
          u.iommu_fault_alloc.encode({ size: 16, out_fault_id: 3, out_fault_fd: 10 }, s);
          break;
        case u.IOMMU_VIOMMU_ALLOC: {
          const v = u.iommu_viommu_alloc.decode(s);
          proc.poke(v.data_uptr, u.iommu_viommu_tegra241_cmdqv.encode({ out_vintf_mmap_offset: 0x10000n, out_vintf_mmap_length: 0x10000n }));
          u.iommu_viommu_alloc.set(s, 'out_viommu_id', 4);
          break;
        }
        case u.IOMMU_VDEVICE_ALLOC:
          u.iommu_vdevice_alloc.set(s, 'out_vdevice_id', 5);
          break;
        case u.IOMMU_VEVENTQ_ALLOC:
          u.iommu_veventq_alloc.encode({ ...u.iommu_veventq_alloc.decode(s), out_veventq_id: 6, out_veventq_fd: 11 }, s);
          break;
        case u.IOMMU_HW_QUEUE_ALLOC:
          u.iommu_hw_queue_alloc.set(s, 'out_hw_queue_id', 7);
          break;
      }
      return 0;
    });
    expect(u.faultQueueAlloc(p, FD)).toEqual({ id: 3, fd: 10 });
    expect(p.bytesOf(0)).toEqual([...le32(16), ...le32(0), ...le32(0), ...le32(0)]);
    const vi = u.viommuAlloc(p, FD, {
      devId: 1, hwptId: 2, type: u.IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV, data: u.iommu_viommu_tegra241_cmdqv.encode(),
    });
    expect(vi.id).toBe(4);
    expect(u.iommu_viommu_tegra241_cmdqv.decode(vi.data)).toEqual({ out_vintf_mmap_offset: 0x10000n, out_vintf_mmap_length: 0x10000n });
    expect(u.iommu_viommu_alloc.decode(Uint8Array.from(p.bytesOf(1)))).toMatchObject({
      size: 40, flags: 0, type: 2, dev_id: 1, hwpt_id: 2, data_len: 16, __reserved: 0,
    });
    expect(u.vdeviceAlloc(p, FD, { viommuId: 4, devId: 1, virtId: 0x100n })).toBe(5);
    expect(p.bytesOf(2)).toEqual([...le32(24), ...le32(4), ...le32(1), ...le32(0), ...le64(0x100n)]);
    expect(u.veventqAlloc(p, FD, { viommuId: 4, type: u.IOMMU_VEVENTQ_TYPE_ARM_SMMUV3, depth: 2 })).toEqual({ id: 6, fd: 11 });
    expect(p.bytesOf(3)).toEqual([...le32(32), ...le32(0), ...le32(4), ...le32(1), ...le32(2), ...le32(0), ...le32(0), ...le32(0)]);
    expect(
      u.hwQueueAlloc(p, FD, { viommuId: 4, type: u.IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV, index: 0, nestingParentIova: 0x8000_0000n, length: 0x1000n }),
    ).toBe(7);
    expect(p.bytesOf(4)).toEqual([
      ...le32(40), ...le32(0), ...le32(4), ...le32(1), ...le32(0), ...le32(0), ...le64(0x8000_0000n), ...le64(0x1000n),
    ]);
  });

  it('option get/set and VFIO_IOAS', () => {
    const p = new FakeProcess(({ request, arg }) => {
      const s = structOf(arg);
      if (request === u.IOMMU_OPTION && u.iommu_option.get(s, 'op') === u.IOMMU_OPTION_OP_GET) u.iommu_option.set(s, 'val64', 1n);
      if (request === u.IOMMU_VFIO_IOAS) u.iommu_vfio_ioas.set(s, 'ioas_id', 12);
      return 0;
    });
    expect(u.optionGet(p, FD, u.IOMMU_OPTION_HUGE_PAGES, 2)).toBe(1n);
    expect(p.bytesOf(0)).toEqual([...le32(24), ...le32(1), 1, 0, 0, 0, ...le32(2), ...le64(0n)]);
    u.optionSet(p, FD, u.IOMMU_OPTION_RLIMIT_MODE, 1n);
    expect(p.bytesOf(1)).toEqual([...le32(24), ...le32(0), 0, 0, 0, 0, ...le32(0), ...le64(1n)]);
    expect(u.vfioIoas(p, FD, u.IOMMU_VFIO_IOAS_GET)).toBe(12);
    expect(p.bytesOf(2)).toEqual([...le32(12), ...le32(0), 0, 0, 0, 0]);
  });
});

describe('VFIO wrappers', () => {
  it('bind (with a VF token), attach (RID and PASID), detach', () => {
    let token: number[] = [];
    const p = new FakeProcess(({ request, arg }, proc) => {
      const s = structOf(arg);
      if (request === u.VFIO_DEVICE_BIND_IOMMUFD) {
        const v = u.vfio_device_bind_iommufd.decode(s);
        if (v.flags) token = Array.from(proc.peek(v.token_uuid_ptr, 16));
        u.vfio_device_bind_iommufd.set(s, 'out_devid', 1);
      }
      if (request === u.VFIO_DEVICE_ATTACH_IOMMUFD_PT) u.vfio_device_attach_iommufd_pt.set(s, 'pt_id', 3);
      return 0;
    });
    expect(u.vfioDeviceBindIommufd(p, 20, { iommufd: FD })).toBe(1);
    expect(p.bytesOf(0)).toEqual([...le32(24), ...le32(0), ...le32(FD), ...le32(0), ...le64(0n)]);
    const uuid = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
    u.vfioDeviceBindIommufd(p, 20, { iommufd: FD, token: uuid });
    expect(u.vfio_device_bind_iommufd.decode(Uint8Array.from(p.bytesOf(1))).flags).toBe(1);
    expect(token).toEqual(Array.from(uuid));
    expect(() => u.vfioDeviceBindIommufd(p, 20, { iommufd: FD, token: new Uint8Array(4) })).toThrow(RangeError);
    expect(u.vfioDeviceAttachIommufdPt(p, 20, { ptId: 2 })).toBe(3);
    expect(p.bytesOf(2)).toEqual([...le32(16), ...le32(0), ...le32(2), ...le32(0)]);
    u.vfioDeviceAttachIommufdPt(p, 20, { ptId: 2, pasid: 5 });
    expect(p.bytesOf(3)).toEqual([...le32(16), ...le32(1), ...le32(2), ...le32(5)]);
    u.vfioDeviceDetachIommufdPt(p, 20);
    expect(p.bytesOf(4)).toEqual([...le32(12), ...le32(0), ...le32(0)]);
    u.vfioDeviceDetachIommufdPt(p, 20, { pasid: 5 });
    expect(p.bytesOf(5)).toEqual([...le32(12), ...le32(1), ...le32(5)]);
    expect(p.calls.map((c) => c.request)).toEqual([0x3b76, 0x3b76, 0x3b77, 0x3b77, 0x3b78, 0x3b78]);
  });

  it('type1 compat: scalar-argument ioctls, map/unmap, get_info with its capability chain', () => {
    const ranges = [{ start: 0x1000n, end: 0xfeefffffn }, { start: 0xfef00000n, end: 0xffffffffn }];
    const p = new FakeProcess(({ request, arg }) => {
      if (request === u.VFIO_CHECK_EXTENSION) return arg === BigInt(u.VFIO_TYPE1v2_IOMMU) ? 1 : 0;
      if (request === u.VFIO_IOMMU_UNMAP_DMA) u.vfio_iommu_type1_dma_unmap.set(structOf(arg), 'size', 0x2000n);
      if (request === u.VFIO_IOMMU_GET_INFO) {
        const s = structOf(arg);
        const rangeCap = u.vfio_iommu_type1_info_cap_iova_range.size + ranges.length * 16;
        const total = 24 + rangeCap + u.vfio_iommu_type1_info_dma_avail.size;
        const argsz = u.vfio_iommu_type1_info.get(s, 'argsz');
        u.vfio_iommu_type1_info.encode({ argsz: total, flags: 3, iova_pgsizes: 0x40201000n, cap_offset: argsz >= total ? 24 : 0 }, s);
        if (argsz >= total) {
          u.vfio_iommu_type1_info_cap_iova_range.encode({ id: 1, version: 1, next: 24 + rangeCap, nr_iovas: 2 }, s, 24);
          ranges.forEach((r, i) => u.vfio_iova_range.encode(r, s, 40 + 16 * i));
          u.vfio_iommu_type1_info_dma_avail.encode({ id: 3, version: 1, next: 0, avail: 0xffffffff }, s, 24 + rangeCap);
        }
      }
      return 0;
    });
    expect(u.vfioGetApiVersion(p, FD)).toBe(0);
    expect(u.vfioCheckExtension(p, FD, u.VFIO_TYPE1v2_IOMMU)).toBe(1);
    expect(u.vfioCheckExtension(p, FD, u.VFIO_UPDATE_VADDR)).toBe(0);
    u.vfioSetIommu(p, FD, u.VFIO_TYPE1v2_IOMMU);
    expect(p.calls.slice(0, 4).map((c) => [c.request, c.arg])).toEqual([
      [0x3b64, 0n], [0x3b65, 3n], [0x3b65, 10n], [0x3b66, 3n],
    ]);
    u.vfioIommuMapDma(p, FD, { vaddr: 0x7000_0000n, iova: 0x10000n, size: 0x2000n });
    expect(p.bytesOf(4)).toEqual([...le32(32), ...le32(3), ...le64(0x7000_0000n), ...le64(0x10000n), ...le64(0x2000n)]);
    expect(u.vfioIommuUnmapDma(p, FD, { iova: 0x10000n, size: 0x2000n })).toBe(0x2000n);
    expect(p.bytesOf(5)).toEqual([...le32(24), ...le32(0), ...le64(0x10000n), ...le64(0x2000n)]);
    const info = u.vfioIommuGetInfo(p, FD);
    expect(info).toEqual({ flags: 3, iovaPgsizes: 0x40201000n, capabilityIds: [1, 3], iovaRanges: ranges, dmaAvail: 0xffffffff });
    expect([p.bytesOf(6).length, p.bytesOf(7).length]).toEqual([24, 24 + 48 + 12]);
  });

  it('parseVfioIommuInfo rejects a looping chain', () => {
    const buf = new Uint8Array(40);
    u.vfio_iommu_type1_info.encode({ argsz: 40, flags: u.VFIO_IOMMU_INFO_CAPS, cap_offset: 24 }, buf);
    u.vfio_info_cap_header.encode({ id: 9, version: 1, next: 24 }, buf, 24);
    expect(() => u.parseVfioIommuInfo(buf)).toThrow('capability chain is broken at offset 24');
  });
});

describe('IOMMU_TEST_CMD wrapper', () => {
  it('sets op from the member and returns the struct as written back', () => {
    const p = new FakeProcess(({ arg }) => {
      u.IOMMU_TEST_CMD_LAYOUTS.mock_domain.encode({ ...u.IOMMU_TEST_CMD_LAYOUTS.mock_domain.decode(structOf(arg)), out_stdev_id: 2, out_hwpt_id: 3, out_idev_id: 4 }, structOf(arg));
      return 0;
    });
    const out = u.iommuTestCmd(p, FD, 'mock_domain', { id: 1 });
    expect([out.out_stdev_id, out.out_hwpt_id, out.out_idev_id]).toEqual([2, 3, 4]);
    expect(p.calls[0].request).toBe(0x3ba0);
    expect(p.bytesOf(0).length).toBe(72);
    expect(p.bytesOf(0).slice(0, 16)).toEqual([...le32(72), ...le32(u.IOMMU_TEST_OP_MOCK_DOMAIN), ...le32(1), ...le32(0)]);
    const q = new FakeProcess(() => -u.EOPNOTSUPP);
    expect(() => u.iommuTestCmd(q, FD, 'trigger_vevent', { dev_id: 1 })).toThrow('IOMMU_TEST_CMD failed: EOPNOTSUPP (95)');
    expect(u.iommu_test_cmd.decode(Uint8Array.from(q.bytesOf(0))).op).toBe(u.IOMMU_TEST_OP_TRIGGER_VEVENT);
  });
});

describe('scratch memory', () => {
  it('maps anonymous RW pages, grows without moving live data, keeps one region after reset', () => {
    const p = new FakeProcess();
    const s = new u.UserScratch(p);
    const a = s.place(Uint8Array.of(1, 2, 3));
    const b = s.reserve(5, 8);
    expect(b - a).toBe(8n);
    expect(p.mmaps[0]).toMatchObject({ length: 16384n, prot: u.PROT_READ | u.PROT_WRITE, flags: u.MAP_PRIVATE | u.MAP_ANONYMOUS, fd: -1 });
    const big = s.reserve(20000);
    expect(p.mmaps.length).toBe(2);
    expect(p.mmaps[1].length).toBe(32768n);
    expect(big).toBe(p.mmaps[1].va);
    expect(Array.from(p.peek(a, 3))).toEqual([1, 2, 3]);
    s.reset();
    expect(p.munmaps).toEqual([{ va: p.mmaps[0].va, length: 16384n }]);
    expect(s.mappedBytes).toBe(32768);
    expect(s.reserve(8)).toBe(p.mmaps[1].va);
    s.dispose();
    expect(s.mappedBytes).toBe(0);
  });

  it('a failing mmap is an IommufdError naming mmap', () => {
    const p = new FakeProcess();
    p.mmapError = u.ENOMEM;
    expect(() => new u.UserScratch(p).reserve(8)).toThrow('mmap failed: ENOMEM (12)');
  });
});

describe('event and fault records', () => {
  it('parseVevents: data records and a trailing lost-events header', () => {
    const evt = u.iommu_vevent_arm_smmuv3.encode({ evt: [0x10n, 0x100_0000_0000n, 0xdead000n, 0n] });
    const bytes = new Uint8Array(8 + 32 + 8);
    u.iommufd_vevent_header.encode({ flags: 0, sequence: 3 }, bytes, 0);
    bytes.set(evt, 8);
    u.iommufd_vevent_header.encode({ flags: u.IOMMU_VEVENTQ_FLAG_LOST_EVENTS, sequence: 4 }, bytes, 40);
    const got = u.parseVevents(bytes, u.IOMMU_VEVENTQ_TYPE_ARM_SMMUV3);
    expect(got.map((e) => [e.flags, e.sequence, e.lostEvents, e.data.length])).toEqual([[0, 3, false, 32], [1, 4, true, 0]]);
    expect(Array.from(got[0].data)).toEqual(Array.from(evt));
    expect(() => u.parseVevents(bytes.subarray(0, 20), u.IOMMU_VEVENTQ_TYPE_ARM_SMMUV3)).toThrow(RangeError);
    expect(() => u.parseVevents(bytes.subarray(0, 4), u.IOMMU_VEVENTQ_TYPE_ARM_SMMUV3)).toThrow(RangeError);
    expect(() => u.parseVevents(bytes, 0x1234)).toThrow('unknown vEVENTQ type 0x1234');
    expect(u.parseVevents(bytes.subarray(0, 12), 0x1234, 4)[0].data.length).toBe(4);
  });

  it('readVevents reads the fd and parses selftest records', () => {
    const p = new FakeProcess();
    p.readScript = (fd, buf) => {
      expect(fd).toBe(11);
      buf.set([...le32(0), ...le32(0), ...le32(0x99)]);
      return 12;
    };
    const got = u.readVevents(p, 11, u.IOMMU_VEVENTQ_TYPE_SELFTEST);
    expect(u.iommu_viommu_event_selftest.decode(got[0].data).virt_id).toBe(0x99);
    p.readScript = () => -u.ESPIPE;
    expect(() => u.readVevents(p, 11, u.IOMMU_VEVENTQ_TYPE_SELFTEST)).toThrow('read failed: ESPIPE (29) — vEVENTQ fd');
  });

  it('page faults in, page responses out', () => {
    const fault = u.iommu_hwpt_pgfault.encode({
      flags: u.IOMMU_PGFAULT_FLAGS_PASID_VALID | u.IOMMU_PGFAULT_FLAGS_LAST_PAGE, dev_id: 1, pasid: 1, grpid: 2, perm: 3, addr: 0xdeadbeafn, cookie: 1,
    });
    const p = new FakeProcess();
    p.readScript = (_fd, buf) => {
      buf.set(fault);
      return 40;
    };
    const [f] = u.readPageFaults(p, 10);
    expect(f).toMatchObject({ flags: 3, dev_id: 1, pasid: 1, grpid: 2, perm: 3, addr: 0xdeadbeafn, length: 0, cookie: 1 });
    expect(() => u.parsePageFaults(new Uint8Array(41))).toThrow(RangeError);
    expect(u.writePageResponses(p, 10, [{ cookie: 1, code: u.IOMMUFD_PAGE_RESP_SUCCESS }, { cookie: 2, code: u.IOMMUFD_PAGE_RESP_INVALID }])).toBe(2);
    expect(Array.from(p.written[0])).toEqual([...le32(1), ...le32(0), ...le32(2), ...le32(1)]);
    p.writeScript = () => -u.EINVAL;
    expect(() => u.writePageResponses(p, 10, [{ cookie: 9, code: 0 }])).toThrow('write failed: EINVAL (22)');
  });

  it('ioctlName names known requests and shows others in hex', () => {
    expect(u.ioctlName(0x3b8d)).toBe('IOMMU_HWPT_INVALIDATE');
    expect(u.ioctlName(0x3b71)).toBe('VFIO_IOMMU_MAP_DMA');
    expect(u.ioctlName(0x3b99)).toBe('ioctl 0x3b99');
  });
});

describe('a process that reports -errno from peek/poke (as the Host does for unmapped memory)', () => {
  it('turns it into an IommufdError with EFAULT', async () => {
    const { peekUser, pokeUser, IommufdError: Err } = await import('../src/index.js');
    const p = {
      peek: () => -14,
      poke: () => -14,
    } as unknown as import('../src/index.js').UserProcess;
    expect(() => peekUser(p, 0x1000n, 8)).toThrow(Err);
    expect(() => peekUser(p, 0x1000n, 8)).toThrow(/peek failed: EFAULT \(14\)/);
    expect(() => pokeUser(p, 0x1000n, new Uint8Array(4))).toThrow(/poke failed: EFAULT \(14\)/);
  });

  it('accepts the Host process shape at the type level', () => {
    expectTypeOf<{
      ioctl(fd: number, request: number, arg: bigint | Uint8Array): number;
      mmap(length: bigint | number, prot: number, flags: number, fd: number, offset: bigint | number): bigint;
      munmap(va: bigint, length: bigint | number): number;
      poke(va: bigint, bytes: Uint8Array): number;
      peek(va: bigint, length: number): Uint8Array | number;
      read(fd: number, buf: Uint8Array): number;
      write(fd: number, buf: Uint8Array): number;
    }>().toExtend<import('../src/index.js').UserProcess>();
  });
});
