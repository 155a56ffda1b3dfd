/**
 * `include/uapi/linux/iommufd.h` of Linux 6.17: command numbers, every struct as a declared
 * layout, every flag and enum value under its C name.
 */
import { _IO } from './ioctl.js';
import { alias, array, defineStruct, s32, u16, u32, u64, u8 } from './layout.js';

/** The ioctl type character of iommufd (`';'`), shared with VFIO. */
export const IOMMUFD_TYPE = 0x3b;

// ---------------------------------------------------------------------------------------
// Command numbers (enum at the top of iommufd.h)

/** First iommufd command number. */
export const IOMMUFD_CMD_BASE = 0x80;
/** Command number of IOMMU_DESTROY. */
export const IOMMUFD_CMD_DESTROY = 0x80;
/** Command number of IOMMU_IOAS_ALLOC. */
export const IOMMUFD_CMD_IOAS_ALLOC = 0x81;
/** Command number of IOMMU_IOAS_ALLOW_IOVAS. */
export const IOMMUFD_CMD_IOAS_ALLOW_IOVAS = 0x82;
/** Command number of IOMMU_IOAS_COPY. */
export const IOMMUFD_CMD_IOAS_COPY = 0x83;
/** Command number of IOMMU_IOAS_IOVA_RANGES. */
export const IOMMUFD_CMD_IOAS_IOVA_RANGES = 0x84;
/** Command number of IOMMU_IOAS_MAP. */
export const IOMMUFD_CMD_IOAS_MAP = 0x85;
/** Command number of IOMMU_IOAS_UNMAP. */
export const IOMMUFD_CMD_IOAS_UNMAP = 0x86;
/** Command number of IOMMU_OPTION. */
export const IOMMUFD_CMD_OPTION = 0x87;
/** Command number of IOMMU_VFIO_IOAS. */
export const IOMMUFD_CMD_VFIO_IOAS = 0x88;
/** Command number of IOMMU_HWPT_ALLOC. */
export const IOMMUFD_CMD_HWPT_ALLOC = 0x89;
/** Command number of IOMMU_GET_HW_INFO. */
export const IOMMUFD_CMD_GET_HW_INFO = 0x8a;
/** Command number of IOMMU_HWPT_SET_DIRTY_TRACKING. */
export const IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING = 0x8b;
/** Command number of IOMMU_HWPT_GET_DIRTY_BITMAP. */
export const IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP = 0x8c;
/** Command number of IOMMU_HWPT_INVALIDATE. */
export const IOMMUFD_CMD_HWPT_INVALIDATE = 0x8d;
/** Command number of IOMMU_FAULT_QUEUE_ALLOC. */
export const IOMMUFD_CMD_FAULT_QUEUE_ALLOC = 0x8e;
/** Command number of IOMMU_IOAS_MAP_FILE. */
export const IOMMUFD_CMD_IOAS_MAP_FILE = 0x8f;
/** Command number of IOMMU_VIOMMU_ALLOC. */
export const IOMMUFD_CMD_VIOMMU_ALLOC = 0x90;
/** Command number of IOMMU_VDEVICE_ALLOC. */
export const IOMMUFD_CMD_VDEVICE_ALLOC = 0x91;
/** Command number of IOMMU_IOAS_CHANGE_PROCESS. */
export const IOMMUFD_CMD_IOAS_CHANGE_PROCESS = 0x92;
/** Command number of IOMMU_VEVENTQ_ALLOC. */
export const IOMMUFD_CMD_VEVENTQ_ALLOC = 0x93;
/** Command number of IOMMU_HW_QUEUE_ALLOC. */
export const IOMMUFD_CMD_HW_QUEUE_ALLOC = 0x94;

// ---------------------------------------------------------------------------------------
// ioctl request values: _IO(';', nr)

/** `IOMMU_DESTROY` = 0x3b80. */
export const IOMMU_DESTROY = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_DESTROY);
/** `IOMMU_IOAS_ALLOC` = 0x3b81. */
export const IOMMU_IOAS_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOC);
/** `IOMMU_IOAS_ALLOW_IOVAS` = 0x3b82. */
export const IOMMU_IOAS_ALLOW_IOVAS = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOW_IOVAS);
/** `IOMMU_IOAS_COPY` = 0x3b83. */
export const IOMMU_IOAS_COPY = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_COPY);
/** `IOMMU_IOAS_IOVA_RANGES` = 0x3b84. */
export const IOMMU_IOAS_IOVA_RANGES = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_IOVA_RANGES);
/** `IOMMU_IOAS_MAP` = 0x3b85. */
export const IOMMU_IOAS_MAP = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP);
/** `IOMMU_IOAS_UNMAP` = 0x3b86. */
export const IOMMU_IOAS_UNMAP = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_UNMAP);
/** `IOMMU_OPTION` = 0x3b87. */
export const IOMMU_OPTION = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_OPTION);
/** `IOMMU_VFIO_IOAS` = 0x3b88. */
export const IOMMU_VFIO_IOAS = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_VFIO_IOAS);
/** `IOMMU_HWPT_ALLOC` = 0x3b89. */
export const IOMMU_HWPT_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_ALLOC);
/** `IOMMU_GET_HW_INFO` = 0x3b8a. */
export const IOMMU_GET_HW_INFO = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_GET_HW_INFO);
/** `IOMMU_HWPT_SET_DIRTY_TRACKING` = 0x3b8b. */
export const IOMMU_HWPT_SET_DIRTY_TRACKING = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING);
/** `IOMMU_HWPT_GET_DIRTY_BITMAP` = 0x3b8c. */
export const IOMMU_HWPT_GET_DIRTY_BITMAP = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP);
/** `IOMMU_HWPT_INVALIDATE` = 0x3b8d. */
export const IOMMU_HWPT_INVALIDATE = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_INVALIDATE);
/** `IOMMU_FAULT_QUEUE_ALLOC` = 0x3b8e. */
export const IOMMU_FAULT_QUEUE_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_FAULT_QUEUE_ALLOC);
/** `IOMMU_IOAS_MAP_FILE` = 0x3b8f. */
export const IOMMU_IOAS_MAP_FILE = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP_FILE);
/** `IOMMU_VIOMMU_ALLOC` = 0x3b90. */
export const IOMMU_VIOMMU_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_VIOMMU_ALLOC);
/** `IOMMU_VDEVICE_ALLOC` = 0x3b91. */
export const IOMMU_VDEVICE_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_VDEVICE_ALLOC);
/** `IOMMU_IOAS_CHANGE_PROCESS` = 0x3b92. */
export const IOMMU_IOAS_CHANGE_PROCESS = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_CHANGE_PROCESS);
/** `IOMMU_VEVENTQ_ALLOC` = 0x3b93. */
export const IOMMU_VEVENTQ_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_VEVENTQ_ALLOC);
/** `IOMMU_HW_QUEUE_ALLOC` = 0x3b94. */
export const IOMMU_HW_QUEUE_ALLOC = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HW_QUEUE_ALLOC);

// ---------------------------------------------------------------------------------------
// IOMMU_DESTROY, IOAS

/** `struct iommu_destroy` (8 bytes, min 8). */
export const iommu_destroy = defineStruct('iommu_destroy', [u32('size'), u32('id')], { minField: 'id' });

/** `struct iommu_ioas_alloc` (12 bytes, min 12); `flags` must be 0. */
export const iommu_ioas_alloc = defineStruct('iommu_ioas_alloc', [u32('size'), u32('flags'), u32('out_ioas_id')], {
  minField: 'out_ioas_id',
});

/** `struct iommu_iova_range` (16 bytes): an inclusive IOVA interval [start, last]. */
export const iommu_iova_range = defineStruct('iommu_iova_range', [u64('start'), u64('last')]);

/** `struct iommu_ioas_iova_ranges` (32 bytes, min 32). `allowed_iovas` points to `iommu_iova_range[num_iovas]`. */
export const iommu_ioas_iova_ranges = defineStruct(
  'iommu_ioas_iova_ranges',
  [u32('size'), u32('ioas_id'), u32('num_iovas'), u32('__reserved'), u64('allowed_iovas'), u64('out_iova_alignment')],
  { minField: 'out_iova_alignment' },
);

/** `struct iommu_ioas_allow_iovas` (24 bytes, min 24). */
export const iommu_ioas_allow_iovas = defineStruct(
  'iommu_ioas_allow_iovas',
  [u32('size'), u32('ioas_id'), u32('num_iovas'), u32('__reserved'), u64('allowed_iovas')],
  { minField: 'allowed_iovas' },
);

/** `enum iommufd_ioas_map_flags`: the kernel picks no IOVA, `iova` is an input. */
export const IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0;
/** `enum iommufd_ioas_map_flags`: DMA may write the mapping. */
export const IOMMU_IOAS_MAP_WRITEABLE = 1 << 1;
/** `enum iommufd_ioas_map_flags`: DMA may read the mapping. */
export const IOMMU_IOAS_MAP_READABLE = 1 << 2;

/** `struct iommu_ioas_map` (40 bytes, min 40). `iova` is written back. */
export const iommu_ioas_map = defineStruct(
  'iommu_ioas_map',
  [u32('size'), u32('flags'), u32('ioas_id'), u32('__reserved'), u64('user_va'), u64('length'), u64('iova')],
  { minField: 'iova' },
);

/** `struct iommu_ioas_map_file` (40 bytes, min 40): map `length` bytes of memfd `fd` from byte `start`. */
export const iommu_ioas_map_file = defineStruct(
  'iommu_ioas_map_file',
  [u32('size'), u32('flags'), u32('ioas_id'), s32('fd'), u64('start'), u64('length'), u64('iova')],
  { minField: 'iova' },
);

/** `struct iommu_ioas_copy` (40 bytes, min 40). `dst_iova` is written back. */
export const iommu_ioas_copy = defineStruct(
  'iommu_ioas_copy',
  [u32('size'), u32('flags'), u32('dst_ioas_id'), u32('src_ioas_id'), u64('length'), u64('dst_iova'), u64('src_iova')],
  { minField: 'src_iova' },
);

/** `struct iommu_ioas_unmap` (24 bytes, min 24). `length` is written back (bytes unmapped). */
export const iommu_ioas_unmap = defineStruct('iommu_ioas_unmap', [u32('size'), u32('ioas_id'), u64('iova'), u64('length')], {
  minField: 'length',
});

/** `struct iommu_ioas_change_process` (8 bytes, min 8). */
export const iommu_ioas_change_process = defineStruct('iommu_ioas_change_process', [u32('size'), u32('__reserved')], {
  minField: '__reserved',
});

// ---------------------------------------------------------------------------------------
// IOMMU_OPTION, IOMMU_VFIO_IOAS

/** `enum iommufd_option`: RLIMIT_MEMLOCK accounting mode (0 user, 1 process); object_id 0. */
export const IOMMU_OPTION_RLIMIT_MODE = 0;
/** `enum iommufd_option`: per-IOAS large page combining (1 default, 0 PAGE_SIZE only). */
export const IOMMU_OPTION_HUGE_PAGES = 1;
/** `enum iommufd_option_ops`: set the value. */
export const IOMMU_OPTION_OP_SET = 0;
/** `enum iommufd_option_ops`: get the value. */
export const IOMMU_OPTION_OP_GET = 1;

/** `struct iommu_option` (24 bytes, min 24). Only `val64` is copied back. */
export const iommu_option = defineStruct(
  'iommu_option',
  [u32('size'), u32('option_id'), u16('op'), u16('__reserved'), u32('object_id'), u64('val64')],
  { minField: 'val64' },
);

/** `enum iommufd_vfio_ioas_op`: read the compat IOAS id. */
export const IOMMU_VFIO_IOAS_GET = 0;
/** `enum iommufd_vfio_ioas_op`: set the compat IOAS. */
export const IOMMU_VFIO_IOAS_SET = 1;
/** `enum iommufd_vfio_ioas_op`: clear the compat IOAS. */
export const IOMMU_VFIO_IOAS_CLEAR = 2;

/** `struct iommu_vfio_ioas` (12 bytes, min 12). */
export const iommu_vfio_ioas = defineStruct('iommu_vfio_ioas', [u32('size'), u32('ioas_id'), u16('op'), u16('__reserved')], {
  minField: '__reserved',
});

// ---------------------------------------------------------------------------------------
// IOMMU_HWPT_ALLOC and its driver data

/** `enum iommufd_hwpt_alloc_flags`: the HWPT can be a nesting parent. */
export const IOMMU_HWPT_ALLOC_NEST_PARENT = 1 << 0;
/** `enum iommufd_hwpt_alloc_flags`: dirty tracking is enforced on attach. */
export const IOMMU_HWPT_ALLOC_DIRTY_TRACKING = 1 << 1;
/** `enum iommufd_hwpt_alloc_flags`: `fault_id` is valid. */
export const IOMMU_HWPT_FAULT_ID_VALID = 1 << 2;
/** `enum iommufd_hwpt_alloc_flags`: the domain may be attached to a PASID. */
export const IOMMU_HWPT_ALLOC_PASID = 1 << 3;

/** `enum iommu_hwpt_vtd_s1_flags`: supervisor requests. */
export const IOMMU_VTD_S1_SRE = 1 << 0;
/** `enum iommu_hwpt_vtd_s1_flags`: extended access flag. */
export const IOMMU_VTD_S1_EAFE = 1 << 1;
/** `enum iommu_hwpt_vtd_s1_flags`: write protect (only with SRE). */
export const IOMMU_VTD_S1_WPE = 1 << 2;

/** `struct iommu_hwpt_vtd_s1` (24 bytes): a guest VT-d first-stage page table (IOMMU_HWPT_DATA_VTD_S1). */
export const iommu_hwpt_vtd_s1 = defineStruct('iommu_hwpt_vtd_s1', [
  u64('flags'),
  u64('pgtbl_addr'),
  u32('addr_width'),
  u32('__reserved'),
]);

/** `struct iommu_hwpt_arm_smmuv3` (16 bytes): guest STE double words 0–1, little-endian (IOMMU_HWPT_DATA_ARM_SMMUV3). */
export const iommu_hwpt_arm_smmuv3 = defineStruct('iommu_hwpt_arm_smmuv3', [array('ste', 'u64', 2)]);

/** `enum iommu_hwpt_data_type`: no data. */
export const IOMMU_HWPT_DATA_NONE = 0;
/** `enum iommu_hwpt_data_type`: Intel VT-d stage-1 page table. */
export const IOMMU_HWPT_DATA_VTD_S1 = 1;
/** `enum iommu_hwpt_data_type`: ARM SMMUv3 nested STE. */
export const IOMMU_HWPT_DATA_ARM_SMMUV3 = 2;

/**
 * `struct iommu_hwpt_alloc` (48 bytes, min 24). A 24-byte user struct carries no driver
 * data and no fault_id (they read as zero).
 */
export const iommu_hwpt_alloc = defineStruct(
  'iommu_hwpt_alloc',
  [
    u32('size'),
    u32('flags'),
    u32('dev_id'),
    u32('pt_id'),
    u32('out_hwpt_id'),
    u32('__reserved'),
    u32('data_type'),
    u32('data_len'),
    u64('data_uptr'),
    u32('fault_id'),
    u32('__reserved2'),
  ],
  { minField: '__reserved' },
);

// ---------------------------------------------------------------------------------------
// IOMMU_GET_HW_INFO and its driver data

/** `enum iommu_hw_info_vtd_flags`: no read-only stage-2 mappings under a nesting parent (erratum). */
export const IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17 = 1 << 0;

/** `struct iommu_hw_info_vtd` (24 bytes): raw VT-d CAP and ECAP registers. */
export const iommu_hw_info_vtd = defineStruct('iommu_hw_info_vtd', [
  u32('flags'),
  u32('__reserved'),
  u64('cap_reg'),
  u64('ecap_reg'),
]);

/** `struct iommu_hw_info_arm_smmuv3` (40 bytes): raw SMMU IDR0–5, IIDR, AIDR. */
export const iommu_hw_info_arm_smmuv3 = defineStruct('iommu_hw_info_arm_smmuv3', [
  u32('flags'),
  u32('__reserved'),
  array('idr', 'u32', 6),
  u32('iidr'),
  u32('aidr'),
]);

/** `struct iommu_hw_info_tegra241_cmdqv` (8 bytes): the CMDQV PARAM fields a VMM mirrors. */
export const iommu_hw_info_tegra241_cmdqv = defineStruct('iommu_hw_info_tegra241_cmdqv', [
  u32('flags'),
  u8('version'),
  u8('log2vcmdqs'),
  u8('log2vsids'),
  u8('__reserved'),
]);

/** `enum iommu_hw_info_type`: output of drivers without hw info. */
export const IOMMU_HW_INFO_TYPE_NONE = 0;
/** `enum iommu_hw_info_type`: input asking for the driver's default type (same value as NONE). */
export const IOMMU_HW_INFO_TYPE_DEFAULT = 0;
/** `enum iommu_hw_info_type`: `iommu_hw_info_vtd`. */
export const IOMMU_HW_INFO_TYPE_INTEL_VTD = 1;
/** `enum iommu_hw_info_type`: `iommu_hw_info_arm_smmuv3`. */
export const IOMMU_HW_INFO_TYPE_ARM_SMMUV3 = 2;
/** `enum iommu_hw_info_type`: `iommu_hw_info_tegra241_cmdqv`. */
export const IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV = 3;

/** `enum iommufd_hw_capabilities`: the IOMMU can track dirty pages. */
export const IOMMU_HW_CAP_DIRTY_TRACKING = 1 << 0;
/** `enum iommufd_hw_capabilities`: PCI PASID Execute permission supported. */
export const IOMMU_HW_CAP_PCI_PASID_EXEC = 1 << 1;
/** `enum iommufd_hw_capabilities`: PCI PASID Privileged mode supported. */
export const IOMMU_HW_CAP_PCI_PASID_PRIV = 1 << 2;

/** `enum iommufd_hw_info_flags`: `in_data_type` carries a requested type. */
export const IOMMU_HW_INFO_FLAG_INPUT_TYPE = 1 << 0;

/**
 * `struct iommu_hw_info` (40 bytes, min 32). `in_data_type` and `out_data_type` are one
 * anonymous-union u32; `out_capabilities` only reaches a user struct of 40 bytes.
 */
export const iommu_hw_info = defineStruct(
  'iommu_hw_info',
  [
    u32('size'),
    u32('flags'),
    u32('dev_id'),
    u32('data_len'),
    u64('data_uptr'),
    u32('in_data_type'),
    alias('out_data_type', 'u32', 'in_data_type'),
    u8('out_max_pasid_log2'),
    array('__reserved', 'u8', 3),
    u64('out_capabilities'),
  ],
  { minField: '__reserved' },
);

// ---------------------------------------------------------------------------------------
// Dirty tracking

/** `enum iommufd_hwpt_set_dirty_tracking_flags`: enable dirty tracking. */
export const IOMMU_HWPT_DIRTY_TRACKING_ENABLE = 1;

/** `struct iommu_hwpt_set_dirty_tracking` (16 bytes, min 16). */
export const iommu_hwpt_set_dirty_tracking = defineStruct(
  'iommu_hwpt_set_dirty_tracking',
  [u32('size'), u32('flags'), u32('hwpt_id'), u32('__reserved')],
  { minField: '__reserved' },
);

/** `enum iommufd_hwpt_get_dirty_bitmap_flags`: read dirty bits without clearing them. */
export const IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR = 1;

/**
 * `struct iommu_hwpt_get_dirty_bitmap` (48 bytes, min 48). `data` points to a bitmap of
 * u64 words: bit n (LSB first) is the page at iova + n·page_size.
 */
export const iommu_hwpt_get_dirty_bitmap = defineStruct(
  'iommu_hwpt_get_dirty_bitmap',
  [
    u32('size'),
    u32('hwpt_id'),
    u32('flags'),
    u32('__reserved'),
    u64('iova'),
    u64('length'),
    u64('page_size'),
    u64('data'),
  ],
  { minField: 'data' },
);

// ---------------------------------------------------------------------------------------
// IOMMU_HWPT_INVALIDATE and its entries

/** `enum iommu_hwpt_invalidate_data_type`: entries are `iommu_hwpt_vtd_s1_invalidate`. */
export const IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 = 0;
/** `enum iommu_hwpt_invalidate_data_type`: entries are `iommu_viommu_arm_smmuv3_invalidate` (vIOMMU id). */
export const IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3 = 1;

/** `enum iommu_hwpt_vtd_s1_invalidate_flags`: only leaf PTEs changed. */
export const IOMMU_VTD_INV_FLAGS_LEAF = 1 << 0;

/** `struct iommu_hwpt_vtd_s1_invalidate` (24 bytes); addr 0 + npages U64_MAX = everything. */
export const iommu_hwpt_vtd_s1_invalidate = defineStruct('iommu_hwpt_vtd_s1_invalidate', [
  u64('addr'),
  u64('npages'),
  u32('flags'),
  u32('__reserved'),
]);

/** `struct iommu_viommu_arm_smmuv3_invalidate` (16 bytes): one SMMU CMDQ command, little-endian. */
export const iommu_viommu_arm_smmuv3_invalidate = defineStruct('iommu_viommu_arm_smmuv3_invalidate', [
  array('cmd', 'u64', 2),
]);

/** `struct iommu_hwpt_invalidate` (32 bytes, min 32). `entry_num` is always written back. */
export const iommu_hwpt_invalidate = defineStruct(
  'iommu_hwpt_invalidate',
  [u32('size'), u32('hwpt_id'), u64('data_uptr'), u32('data_type'), u32('entry_len'), u32('entry_num'), u32('__reserved')],
  { minField: '__reserved' },
);

// ---------------------------------------------------------------------------------------
// FAULT queue: alloc and the read()/write() records

/** `enum iommu_hwpt_pgfault_flags`: `pasid` is valid. */
export const IOMMU_PGFAULT_FLAGS_PASID_VALID = 1 << 0;
/** `enum iommu_hwpt_pgfault_flags`: last fault of its group. */
export const IOMMU_PGFAULT_FLAGS_LAST_PAGE = 1 << 1;
/** `enum iommu_hwpt_pgfault_perm`: read requested. */
export const IOMMU_PGFAULT_PERM_READ = 1 << 0;
/** `enum iommu_hwpt_pgfault_perm`: write requested. */
export const IOMMU_PGFAULT_PERM_WRITE = 1 << 1;
/** `enum iommu_hwpt_pgfault_perm`: execute requested (PASID TLP prefix). */
export const IOMMU_PGFAULT_PERM_EXEC = 1 << 2;
/** `enum iommu_hwpt_pgfault_perm`: privileged mode requested (PASID TLP prefix). */
export const IOMMU_PGFAULT_PERM_PRIV = 1 << 3;

/** `struct iommu_hwpt_pgfault` (40 bytes): one record read from a FAULT fd. */
export const iommu_hwpt_pgfault = defineStruct('iommu_hwpt_pgfault', [
  u32('flags'),
  u32('dev_id'),
  u32('pasid'),
  u32('grpid'),
  u32('perm'),
  u32('__reserved'),
  u64('addr'),
  u32('length'),
  u32('cookie'),
]);

/** `enum iommufd_page_response_code`: handled, retry the access. */
export const IOMMUFD_PAGE_RESP_SUCCESS = 0;
/** `enum iommufd_page_response_code`: could not handle, do not retry. */
export const IOMMUFD_PAGE_RESP_INVALID = 1;

/** `struct iommu_hwpt_page_response` (8 bytes): one record written to a FAULT fd. */
export const iommu_hwpt_page_response = defineStruct('iommu_hwpt_page_response', [u32('cookie'), u32('code')]);

/** `struct iommu_fault_alloc` (16 bytes, min 16). */
export const iommu_fault_alloc = defineStruct(
  'iommu_fault_alloc',
  [u32('size'), u32('flags'), u32('out_fault_id'), u32('out_fault_fd')],
  { minField: 'out_fault_fd' },
);

// ---------------------------------------------------------------------------------------
// vIOMMU, vDEVICE

/**
 * `enum iommu_viommu_type`: reserved (rejected).
 *
 * @remarks Linux 6.17's `enum iommu_viommu_type` has exactly three values: DEFAULT (0),
 * ARM_SMMUV3 (1) and TEGRA241_CMDQV (2); Linux's intel driver has no vIOMMU. The type
 * **0x8086** some of this project's tests and examples pass is *not* a Linux value: it is
 * `IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP` of `@iommufd/intel-vtd`, an experimental VT-d vIOMMU
 * chosen outside Linux's enum so that it can never collide with a future upstream value
 * (with it come `IOMMU_HWPT_DATA_VTD_S1_VDID_EXP`, `IOMMU_VIOMMU_INVALIDATE_DATA_VTD_QI_EXP`
 * and `IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP`, all 0x8086). It is deliberately not exported here,
 * since this package holds only Linux's uAPI; see the intel-vtd README's design note.
 */
export const IOMMU_VIOMMU_TYPE_DEFAULT = 0;
/** `enum iommu_viommu_type`: ARM SMMUv3. */
export const IOMMU_VIOMMU_TYPE_ARM_SMMUV3 = 1;
/**
 * `enum iommu_viommu_type`: ARM SMMUv3 with NVIDIA Tegra241 CMDQV — the last value of Linux
 * 6.17's enum (the experimental VT-d type 0x8086 is outside it; see {@link IOMMU_VIOMMU_TYPE_DEFAULT}).
 */
export const IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV = 2;

/** `struct iommu_viommu_tegra241_cmdqv` (16 bytes): where to mmap the VINTF page0 (written by the kernel). */
export const iommu_viommu_tegra241_cmdqv = defineStruct('iommu_viommu_tegra241_cmdqv', [
  u64('out_vintf_mmap_offset'),
  u64('out_vintf_mmap_length'),
]);

/** `struct iommu_viommu_alloc` (40 bytes, min 24). A 24-byte user struct carries no driver data. */
export const iommu_viommu_alloc = defineStruct(
  'iommu_viommu_alloc',
  [
    u32('size'),
    u32('flags'),
    u32('type'),
    u32('dev_id'),
    u32('hwpt_id'),
    u32('out_viommu_id'),
    u32('data_len'),
    u32('__reserved'),
    u64('data_uptr'),
  ],
  { minField: 'out_viommu_id' },
);

/** `struct iommu_vdevice_alloc` (24 bytes, min 24). `virt_id` is e.g. the vSID or vRID. */
export const iommu_vdevice_alloc = defineStruct(
  'iommu_vdevice_alloc',
  [u32('size'), u32('viommu_id'), u32('dev_id'), u32('out_vdevice_id'), u64('virt_id')],
  { minField: 'virt_id' },
);

// ---------------------------------------------------------------------------------------
// vEVENTQ: alloc and the read() records

/** `enum iommu_veventq_flag`: events were lost before the next sequence. */
export const IOMMU_VEVENTQ_FLAG_LOST_EVENTS = 1 << 0;

/** `struct iommufd_vevent_header` (8 bytes): precedes every vEVENT payload. */
export const iommufd_vevent_header = defineStruct('iommufd_vevent_header', [u32('flags'), u32('sequence')]);

/** `enum iommu_veventq_type`: reserved (rejected). */
export const IOMMU_VEVENTQ_TYPE_DEFAULT = 0;
/** `enum iommu_veventq_type`: `iommu_vevent_arm_smmuv3` records. */
export const IOMMU_VEVENTQ_TYPE_ARM_SMMUV3 = 1;
/** `enum iommu_veventq_type`: `iommu_vevent_tegra241_cmdqv` records. */
export const IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV = 2;

/** `struct iommu_vevent_arm_smmuv3` (32 bytes): an SMMU event record, StreamID = virtual SID. */
export const iommu_vevent_arm_smmuv3 = defineStruct('iommu_vevent_arm_smmuv3', [array('evt', 'u64', 4)]);

/** `struct iommu_vevent_tegra241_cmdqv` (16 bytes): the VINTF's 128-bit LVCMDQ error map. */
export const iommu_vevent_tegra241_cmdqv = defineStruct('iommu_vevent_tegra241_cmdqv', [
  array('lvcmdq_err_map', 'u64', 2),
]);

/** `struct iommu_veventq_alloc` (32 bytes, min 28). */
export const iommu_veventq_alloc = defineStruct(
  'iommu_veventq_alloc',
  [
    u32('size'),
    u32('flags'),
    u32('viommu_id'),
    u32('type'),
    u32('veventq_depth'),
    u32('out_veventq_id'),
    u32('out_veventq_fd'),
    u32('__reserved'),
  ],
  { minField: 'out_veventq_fd' },
);

// ---------------------------------------------------------------------------------------
// HW_QUEUE

/** `enum iommu_hw_queue_type`: reserved (rejected). */
export const IOMMU_HW_QUEUE_TYPE_DEFAULT = 0;
/** `enum iommu_hw_queue_type`: a Tegra241 CMDQV virtual command queue (VCMDQ). */
export const IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV = 1;

/** `struct iommu_hw_queue_alloc` (40 bytes, min 40). */
export const iommu_hw_queue_alloc = defineStruct(
  'iommu_hw_queue_alloc',
  [
    u32('size'),
    u32('flags'),
    u32('viommu_id'),
    u32('type'),
    u32('index'),
    u32('out_hw_queue_id'),
    u64('nesting_parent_iova'),
    u64('length'),
  ],
  { minField: 'length' },
);
