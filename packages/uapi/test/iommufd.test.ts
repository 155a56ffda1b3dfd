import { describe, expect, it } from 'vitest';
import * as uapi from '../src/index.js';
import { IOMMUFD_IOCTLS, iommufdIoctlByName, iommufdIoctlByRequest, type StructLayout } from '../src/index.js';

// [field, offset, size] per the reference tables (iommufd-core.md §3.1–§3.5, Linux 6.17 iommufd.h).
type Row = readonly [string, number, number];
const EXPECTED: Record<string, { size: number; min?: number; fields: readonly Row[] }> = {
  iommu_destroy: { size: 8, min: 8, fields: [['size', 0, 4], ['id', 4, 4]] },
  iommu_ioas_alloc: { size: 12, min: 12, fields: [['size', 0, 4], ['flags', 4, 4], ['out_ioas_id', 8, 4]] },
  iommu_ioas_allow_iovas: {
    size: 24, min: 24,
    fields: [['size', 0, 4], ['ioas_id', 4, 4], ['num_iovas', 8, 4], ['__reserved', 12, 4], ['allowed_iovas', 16, 8]],
  },
  iommu_ioas_copy: {
    size: 40, min: 40,
    fields: [['size', 0, 4], ['flags', 4, 4], ['dst_ioas_id', 8, 4], ['src_ioas_id', 12, 4], ['length', 16, 8], ['dst_iova', 24, 8], ['src_iova', 32, 8]],
  },
  iommu_ioas_iova_ranges: {
    size: 32, min: 32,
    fields: [['size', 0, 4], ['ioas_id', 4, 4], ['num_iovas', 8, 4], ['__reserved', 12, 4], ['allowed_iovas', 16, 8], ['out_iova_alignment', 24, 8]],
  },
  iommu_iova_range: { size: 16, fields: [['start', 0, 8], ['last', 8, 8]] },
  iommu_ioas_map: {
    size: 40, min: 40,
    fields: [['size', 0, 4], ['flags', 4, 4], ['ioas_id', 8, 4], ['__reserved', 12, 4], ['user_va', 16, 8], ['length', 24, 8], ['iova', 32, 8]],
  },
  iommu_ioas_map_file: {
    size: 40, min: 40,
    fields: [['size', 0, 4], ['flags', 4, 4], ['ioas_id', 8, 4], ['fd', 12, 4], ['start', 16, 8], ['length', 24, 8], ['iova', 32, 8]],
  },
  iommu_ioas_unmap: { size: 24, min: 24, fields: [['size', 0, 4], ['ioas_id', 4, 4], ['iova', 8, 8], ['length', 16, 8]] },
  iommu_option: {
    size: 24, min: 24,
    fields: [['size', 0, 4], ['option_id', 4, 4], ['op', 8, 2], ['__reserved', 10, 2], ['object_id', 12, 4], ['val64', 16, 8]],
  },
  iommu_vfio_ioas: { size: 12, min: 12, fields: [['size', 0, 4], ['ioas_id', 4, 4], ['op', 8, 2], ['__reserved', 10, 2]] },
  iommu_ioas_change_process: { size: 8, min: 8, fields: [['size', 0, 4], ['__reserved', 4, 4]] },
  iommu_hwpt_alloc: {
    size: 48, min: 24,
    fields: [
      ['size', 0, 4], ['flags', 4, 4], ['dev_id', 8, 4], ['pt_id', 12, 4], ['out_hwpt_id', 16, 4], ['__reserved', 20, 4],
      ['data_type', 24, 4], ['data_len', 28, 4], ['data_uptr', 32, 8], ['fault_id', 40, 4], ['__reserved2', 44, 4],
    ],
  },
  iommu_hw_info: {
    size: 40, min: 32,
    fields: [
      ['size', 0, 4], ['flags', 4, 4], ['dev_id', 8, 4], ['data_len', 12, 4], ['data_uptr', 16, 8], ['in_data_type', 24, 4],
      ['out_data_type', 24, 4], ['out_max_pasid_log2', 28, 1], ['__reserved', 29, 3], ['out_capabilities', 32, 8],
    ],
  },
  iommu_hwpt_set_dirty_tracking: { size: 16, min: 16, fields: [['size', 0, 4], ['flags', 4, 4], ['hwpt_id', 8, 4], ['__reserved', 12, 4]] },
  iommu_hwpt_get_dirty_bitmap: {
    size: 48, min: 48,
    fields: [
      ['size', 0, 4], ['hwpt_id', 4, 4], ['flags', 8, 4], ['__reserved', 12, 4], ['iova', 16, 8], ['length', 24, 8],
      ['page_size', 32, 8], ['data', 40, 8],
    ],
  },
  iommu_hwpt_invalidate: {
    size: 32, min: 32,
    fields: [['size', 0, 4], ['hwpt_id', 4, 4], ['data_uptr', 8, 8], ['data_type', 16, 4], ['entry_len', 20, 4], ['entry_num', 24, 4], ['__reserved', 28, 4]],
  },
  iommu_fault_alloc: { size: 16, min: 16, fields: [['size', 0, 4], ['flags', 4, 4], ['out_fault_id', 8, 4], ['out_fault_fd', 12, 4]] },
  iommu_viommu_alloc: {
    size: 40, min: 24,
    fields: [
      ['size', 0, 4], ['flags', 4, 4], ['type', 8, 4], ['dev_id', 12, 4], ['hwpt_id', 16, 4], ['out_viommu_id', 20, 4],
      ['data_len', 24, 4], ['__reserved', 28, 4], ['data_uptr', 32, 8],
    ],
  },
  iommu_vdevice_alloc: {
    size: 24, min: 24,
    fields: [['size', 0, 4], ['viommu_id', 4, 4], ['dev_id', 8, 4], ['out_vdevice_id', 12, 4], ['virt_id', 16, 8]],
  },
  iommu_veventq_alloc: {
    size: 32, min: 28,
    fields: [
      ['size', 0, 4], ['flags', 4, 4], ['viommu_id', 8, 4], ['type', 12, 4], ['veventq_depth', 16, 4], ['out_veventq_id', 20, 4],
      ['out_veventq_fd', 24, 4], ['__reserved', 28, 4],
    ],
  },
  iommu_hw_queue_alloc: {
    size: 40, min: 40,
    fields: [
      ['size', 0, 4], ['flags', 4, 4], ['viommu_id', 8, 4], ['type', 12, 4], ['index', 16, 4], ['out_hw_queue_id', 20, 4],
      ['nesting_parent_iova', 24, 8], ['length', 32, 8],
    ],
  },
  iommu_hwpt_vtd_s1: { size: 24, fields: [['flags', 0, 8], ['pgtbl_addr', 8, 8], ['addr_width', 16, 4], ['__reserved', 20, 4]] },
  iommu_hwpt_arm_smmuv3: { size: 16, fields: [['ste', 0, 16]] },
  iommu_hwpt_vtd_s1_invalidate: { size: 24, fields: [['addr', 0, 8], ['npages', 8, 8], ['flags', 16, 4], ['__reserved', 20, 4]] },
  iommu_viommu_arm_smmuv3_invalidate: { size: 16, fields: [['cmd', 0, 16]] },
  iommu_hw_info_vtd: { size: 24, fields: [['flags', 0, 4], ['__reserved', 4, 4], ['cap_reg', 8, 8], ['ecap_reg', 16, 8]] },
  iommu_hw_info_arm_smmuv3: {
    size: 40,
    fields: [['flags', 0, 4], ['__reserved', 4, 4], ['idr', 8, 24], ['iidr', 32, 4], ['aidr', 36, 4]],
  },
  iommu_hw_info_tegra241_cmdqv: {
    size: 8,
    fields: [['flags', 0, 4], ['version', 4, 1], ['log2vcmdqs', 5, 1], ['log2vsids', 6, 1], ['__reserved', 7, 1]],
  },
  iommu_viommu_tegra241_cmdqv: { size: 16, fields: [['out_vintf_mmap_offset', 0, 8], ['out_vintf_mmap_length', 8, 8]] },
  iommufd_vevent_header: { size: 8, fields: [['flags', 0, 4], ['sequence', 4, 4]] },
  iommu_vevent_arm_smmuv3: { size: 32, fields: [['evt', 0, 32]] },
  iommu_vevent_tegra241_cmdqv: { size: 16, fields: [['lvcmdq_err_map', 0, 16]] },
  iommu_hwpt_pgfault: {
    size: 40,
    fields: [
      ['flags', 0, 4], ['dev_id', 4, 4], ['pasid', 8, 4], ['grpid', 12, 4], ['perm', 16, 4], ['__reserved', 20, 4],
      ['addr', 24, 8], ['length', 32, 4], ['cookie', 36, 4],
    ],
  },
  iommu_hwpt_page_response: { size: 8, fields: [['cookie', 0, 4], ['code', 4, 4]] },
};

const layouts = uapi as unknown as Record<string, StructLayout>;

describe('iommufd.h struct layouts (Linux 6.17)', () => {
  for (const [name, want] of Object.entries(EXPECTED)) {
    it(`${name}: sizeof ${want.size}, min ${want.min ?? want.size}, every field offset`, () => {
      const layout = layouts[name];
      expect(layout.name).toBe(name);
      expect(layout.size).toBe(want.size);
      expect(layout.minSize).toBe(want.min ?? want.size);
      expect(layout.fieldList.map((f) => [f.name, f.offset, f.size])).toEqual(want.fields);
    });
  }

  it('the anonymous union of iommu_hw_info: in_data_type and out_data_type share bytes 24..27', () => {
    const out = uapi.iommu_hw_info.encode({ size: 40, in_data_type: 2 });
    expect(Array.from(out.subarray(24, 28))).toEqual([2, 0, 0, 0]);
    expect(uapi.iommu_hw_info.decode(out).out_data_type).toBe(2);
    uapi.iommu_hw_info.set(out, 'out_data_type', 0xfeedbeef);
    expect(uapi.iommu_hw_info.get(out, 'in_data_type')).toBe(0xfeedbeef);
  });
});

describe('iommufd ioctl numbers and the dispatch table', () => {
  const table: readonly (readonly [string, number, string, number, number])[] = [
    ['IOMMU_DESTROY', 0x3b80, 'iommu_destroy', 8, 8],
    ['IOMMU_IOAS_ALLOC', 0x3b81, 'iommu_ioas_alloc', 12, 12],
    ['IOMMU_IOAS_ALLOW_IOVAS', 0x3b82, 'iommu_ioas_allow_iovas', 24, 24],
    ['IOMMU_IOAS_COPY', 0x3b83, 'iommu_ioas_copy', 40, 40],
    ['IOMMU_IOAS_IOVA_RANGES', 0x3b84, 'iommu_ioas_iova_ranges', 32, 32],
    ['IOMMU_IOAS_MAP', 0x3b85, 'iommu_ioas_map', 40, 40],
    ['IOMMU_IOAS_UNMAP', 0x3b86, 'iommu_ioas_unmap', 24, 24],
    ['IOMMU_OPTION', 0x3b87, 'iommu_option', 24, 24],
    ['IOMMU_VFIO_IOAS', 0x3b88, 'iommu_vfio_ioas', 12, 12],
    ['IOMMU_HWPT_ALLOC', 0x3b89, 'iommu_hwpt_alloc', 48, 24],
    ['IOMMU_GET_HW_INFO', 0x3b8a, 'iommu_hw_info', 40, 32],
    ['IOMMU_HWPT_SET_DIRTY_TRACKING', 0x3b8b, 'iommu_hwpt_set_dirty_tracking', 16, 16],
    ['IOMMU_HWPT_GET_DIRTY_BITMAP', 0x3b8c, 'iommu_hwpt_get_dirty_bitmap', 48, 48],
    ['IOMMU_HWPT_INVALIDATE', 0x3b8d, 'iommu_hwpt_invalidate', 32, 32],
    ['IOMMU_FAULT_QUEUE_ALLOC', 0x3b8e, 'iommu_fault_alloc', 16, 16],
    ['IOMMU_IOAS_MAP_FILE', 0x3b8f, 'iommu_ioas_map_file', 40, 40],
    ['IOMMU_VIOMMU_ALLOC', 0x3b90, 'iommu_viommu_alloc', 40, 24],
    ['IOMMU_VDEVICE_ALLOC', 0x3b91, 'iommu_vdevice_alloc', 24, 24],
    ['IOMMU_IOAS_CHANGE_PROCESS', 0x3b92, 'iommu_ioas_change_process', 8, 8],
    ['IOMMU_VEVENTQ_ALLOC', 0x3b93, 'iommu_veventq_alloc', 32, 28],
    ['IOMMU_HW_QUEUE_ALLOC', 0x3b94, 'iommu_hw_queue_alloc', 40, 40],
  ];

  it('has one row per command 0x80..0x94, in order, matching §3.1 exactly', () => {
    expect(IOMMUFD_IOCTLS.map((e) => [e.name, e.request, e.layout.name, e.layout.size, e.minSize])).toEqual(table);
    IOMMUFD_IOCTLS.forEach((e, i) => {
      expect(e.nr).toBe(0x80 + i);
      expect((uapi as unknown as Record<string, number>)[e.name]).toBe(e.request);
    });
  });

  it('IOMMUFD_CMD_* numbers and _IO encoding', () => {
    expect(uapi.IOMMUFD_TYPE).toBe(';'.charCodeAt(0));
    expect(uapi.IOMMUFD_CMD_BASE).toBe(0x80);
    expect(uapi.IOMMUFD_CMD_HW_QUEUE_ALLOC).toBe(0x94);
    expect(uapi._IO(0x3b, 0x85)).toBe(0x3b85);
    expect(uapi._IOC_NR(0x3b85)).toBe(0x85);
    expect(uapi._IOC_TYPE(0x3b85)).toBe(0x3b);
    expect(uapi._IOC(uapi._IOC_READ | uapi._IOC_WRITE, 0x3b, 0x85, 40)).toBe(0xc0283b85);
  });

  it('looks rows up by exact request value and by name', () => {
    expect(iommufdIoctlByRequest(0x3b85)?.name).toBe('IOMMU_IOAS_MAP');
    expect(iommufdIoctlByRequest(0x3b95)).toBeUndefined();
    expect(iommufdIoctlByRequest(0x3b7f)).toBeUndefined();
    // same nr with direction/size bits set is not the same request (the kernel's ENOTTY case)
    expect(iommufdIoctlByRequest(0xc0283b85)).toBeUndefined();
    expect(iommufdIoctlByRequest(0x3c85)).toBeUndefined();
    expect(iommufdIoctlByName('IOMMU_HWPT_ALLOC').minSize).toBe(24);
    // @ts-expect-error not an iommufd ioctl name
    expect(() => iommufdIoctlByName('IOMMU_NOPE')).toThrow(RangeError);
  });
});

describe('iommufd.h constants', () => {
  it('flags and enums have the 6.17 values', () => {
    expect([uapi.IOMMU_IOAS_MAP_FIXED_IOVA, uapi.IOMMU_IOAS_MAP_WRITEABLE, uapi.IOMMU_IOAS_MAP_READABLE]).toEqual([1, 2, 4]);
    expect([uapi.IOMMU_OPTION_RLIMIT_MODE, uapi.IOMMU_OPTION_HUGE_PAGES, uapi.IOMMU_OPTION_OP_SET, uapi.IOMMU_OPTION_OP_GET]).toEqual([0, 1, 0, 1]);
    expect([uapi.IOMMU_VFIO_IOAS_GET, uapi.IOMMU_VFIO_IOAS_SET, uapi.IOMMU_VFIO_IOAS_CLEAR]).toEqual([0, 1, 2]);
    expect([
      uapi.IOMMU_HWPT_ALLOC_NEST_PARENT,
      uapi.IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
      uapi.IOMMU_HWPT_FAULT_ID_VALID,
      uapi.IOMMU_HWPT_ALLOC_PASID,
    ]).toEqual([1, 2, 4, 8]);
    expect([uapi.IOMMU_VTD_S1_SRE, uapi.IOMMU_VTD_S1_EAFE, uapi.IOMMU_VTD_S1_WPE]).toEqual([1, 2, 4]);
    expect([uapi.IOMMU_HWPT_DATA_NONE, uapi.IOMMU_HWPT_DATA_VTD_S1, uapi.IOMMU_HWPT_DATA_ARM_SMMUV3]).toEqual([0, 1, 2]);
    expect([
      uapi.IOMMU_HW_INFO_TYPE_NONE,
      uapi.IOMMU_HW_INFO_TYPE_DEFAULT,
      uapi.IOMMU_HW_INFO_TYPE_INTEL_VTD,
      uapi.IOMMU_HW_INFO_TYPE_ARM_SMMUV3,
      uapi.IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV,
    ]).toEqual([0, 0, 1, 2, 3]);
    expect([uapi.IOMMU_HW_CAP_DIRTY_TRACKING, uapi.IOMMU_HW_CAP_PCI_PASID_EXEC, uapi.IOMMU_HW_CAP_PCI_PASID_PRIV]).toEqual([1, 2, 4]);
    expect(uapi.IOMMU_HW_INFO_FLAG_INPUT_TYPE).toBe(1);
    expect(uapi.IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17).toBe(1);
    expect(uapi.IOMMU_HWPT_DIRTY_TRACKING_ENABLE).toBe(1);
    expect(uapi.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR).toBe(1);
    expect([uapi.IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, uapi.IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3]).toEqual([0, 1]);
    expect(uapi.IOMMU_VTD_INV_FLAGS_LEAF).toBe(1);
    expect([uapi.IOMMU_PGFAULT_FLAGS_PASID_VALID, uapi.IOMMU_PGFAULT_FLAGS_LAST_PAGE]).toEqual([1, 2]);
    expect([uapi.IOMMU_PGFAULT_PERM_READ, uapi.IOMMU_PGFAULT_PERM_WRITE, uapi.IOMMU_PGFAULT_PERM_EXEC, uapi.IOMMU_PGFAULT_PERM_PRIV]).toEqual([1, 2, 4, 8]);
    expect([uapi.IOMMUFD_PAGE_RESP_SUCCESS, uapi.IOMMUFD_PAGE_RESP_INVALID]).toEqual([0, 1]);
    expect([uapi.IOMMU_VIOMMU_TYPE_DEFAULT, uapi.IOMMU_VIOMMU_TYPE_ARM_SMMUV3, uapi.IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV]).toEqual([0, 1, 2]);
    expect(uapi.IOMMU_VEVENTQ_FLAG_LOST_EVENTS).toBe(1);
    expect([uapi.IOMMU_VEVENTQ_TYPE_DEFAULT, uapi.IOMMU_VEVENTQ_TYPE_ARM_SMMUV3, uapi.IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV]).toEqual([0, 1, 2]);
    expect([uapi.IOMMU_HW_QUEUE_TYPE_DEFAULT, uapi.IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV]).toEqual([0, 1]);
  });
});

describe('Linux errno', () => {
  it('has the asm-generic values', () => {
    const want: Record<string, number> = {
      EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, EBADF: 9, EAGAIN: 11, ENOMEM: 12, EACCES: 13,
      EFAULT: 14, EBUSY: 16, EEXIST: 17, ENODEV: 19, EINVAL: 22, EMFILE: 24, ENOTTY: 25, ENOSPC: 28, ESPIPE: 29,
      ERANGE: 34, EDEADLK: 35, EDEADLOCK: 35, ENOSYS: 38, EOVERFLOW: 75, EBADFD: 77, EMSGSIZE: 90, EOPNOTSUPP: 95,
      EADDRINUSE: 98, ETIMEDOUT: 110, ENOIOCTLCMD: 515,
    };
    const all = uapi as unknown as Record<string, number>;
    for (const [name, value] of Object.entries(want)) {
      expect(all[name], name).toBe(value);
      expect(uapi.ERRNO[name], name).toBe(value);
    }
  });

  it('errnoName names values, negated returns and aliases', () => {
    expect(uapi.errnoName(22)).toBe('EINVAL');
    expect(uapi.errnoName(-95)).toBe('EOPNOTSUPP');
    expect(uapi.errnoName(35)).toBe('EDEADLK');
    expect(uapi.errnoName(77)).toBe('EBADFD');
    expect(uapi.errnoName(4095)).toBe('errno 4095');
    for (const [name, value] of Object.entries(uapi.ERRNO)) {
      if (name === 'EDEADLOCK' || name === 'EWOULDBLOCK') continue;
      expect(uapi.errnoName(value)).toBe(name);
    }
  });
});
