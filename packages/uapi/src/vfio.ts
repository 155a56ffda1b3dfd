/**
 * The parts of `include/uapi/linux/vfio.h` (Linux 6.17) that iommufd users meet: the VFIO
 * device cdev ioctls that bind a device to an iommufd and attach it to an IOAS/HWPT, and
 * the VFIO type1 container ioctls that `/dev/iommu` also answers (`iommufd/vfio_compat.c`).
 * VFIO shares iommufd's ioctl type `';'`, with command numbers from `VFIO_BASE` (100), all
 * below iommufd's 0x80, which is how one fd can answer both.
 */
import { _IO } from './ioctl.js';
import { defineStruct, s32, u16, u32, u64 } from './layout.js';

/** The ioctl type of VFIO (`';'`, the same as iommufd's). */
export const VFIO_TYPE = 0x3b;
/** First VFIO command number. */
export const VFIO_BASE = 100;
/** The only VFIO API version, returned by VFIO_GET_API_VERSION. */
export const VFIO_API_VERSION = 0;

// ---------------------------------------------------------------------------------------
// Extensions (VFIO_CHECK_EXTENSION / VFIO_SET_IOMMU argument values)

/** Extension / IOMMU type: type1 (v1 unmap semantics: may split). */
export const VFIO_TYPE1_IOMMU = 1;
/** Extension / IOMMU type: sPAPR TCE (not offered by iommufd). */
export const VFIO_SPAPR_TCE_IOMMU = 2;
/** Extension / IOMMU type: type1 v2 (no partial unmaps). */
export const VFIO_TYPE1v2_IOMMU = 3;
/** Extension: the IOMMU enforces DMA cache coherence. */
export const VFIO_DMA_CC_IOMMU = 4;
/** Extension: sPAPR EEH. */
export const VFIO_EEH = 5;
/** Formerly VFIO_TYPE1_NESTING_IOMMU; reserved since Linux 6.13 (check-extension answers 0). */
export const __VFIO_RESERVED_TYPE1_NESTING_IOMMU = 6;
/** Extension / IOMMU type: sPAPR TCE v2. */
export const VFIO_SPAPR_TCE_v2_IOMMU = 7;
/** Extension / IOMMU type: no IOMMU (unsafe, CONFIG_VFIO_NOIOMMU). */
export const VFIO_NOIOMMU_IOMMU = 8;
/** Extension: VFIO_DMA_UNMAP_FLAG_ALL is supported. */
export const VFIO_UNMAP_ALL = 9;
/** Extension: the VADDR flags of map/unmap are supported (never by iommufd). */
export const VFIO_UPDATE_VADDR = 10;

// ---------------------------------------------------------------------------------------
// Container ioctls (/dev/vfio/vfio, or /dev/iommu in compat mode)

/** `VFIO_GET_API_VERSION` = _IO(';', 100) = 0x3b64; no argument, returns VFIO_API_VERSION. */
export const VFIO_GET_API_VERSION = _IO(VFIO_TYPE, VFIO_BASE + 0);
/** `VFIO_CHECK_EXTENSION` = 0x3b65; the argument is the extension number, returns 0 or 1. */
export const VFIO_CHECK_EXTENSION = _IO(VFIO_TYPE, VFIO_BASE + 1);
/** `VFIO_SET_IOMMU` = 0x3b66; the argument is the IOMMU type. */
export const VFIO_SET_IOMMU = _IO(VFIO_TYPE, VFIO_BASE + 2);
/** `VFIO_IOMMU_GET_INFO` = 0x3b70; argument `vfio_iommu_type1_info` plus its capability chain. */
export const VFIO_IOMMU_GET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 12);
/** `VFIO_IOMMU_MAP_DMA` = 0x3b71; argument `vfio_iommu_type1_dma_map`. */
export const VFIO_IOMMU_MAP_DMA = _IO(VFIO_TYPE, VFIO_BASE + 13);
/** `VFIO_IOMMU_UNMAP_DMA` = 0x3b72; argument `vfio_iommu_type1_dma_unmap`. */
export const VFIO_IOMMU_UNMAP_DMA = _IO(VFIO_TYPE, VFIO_BASE + 14);
/** `VFIO_IOMMU_ENABLE` = 0x3b73 (sPAPR only). */
export const VFIO_IOMMU_ENABLE = _IO(VFIO_TYPE, VFIO_BASE + 15);
/** `VFIO_IOMMU_DISABLE` = 0x3b74 (sPAPR only). */
export const VFIO_IOMMU_DISABLE = _IO(VFIO_TYPE, VFIO_BASE + 16);
/** `VFIO_IOMMU_DIRTY_PAGES` = 0x3b75 (type1 dirty logging; not offered by iommufd's compat). */
export const VFIO_IOMMU_DIRTY_PAGES = _IO(VFIO_TYPE, VFIO_BASE + 17);

/** `vfio_iommu_type1_info.flags`: `iova_pgsizes` is valid. */
export const VFIO_IOMMU_INFO_PGSIZES = 1 << 0;
/** `vfio_iommu_type1_info.flags`: `cap_offset` points to a capability chain. */
export const VFIO_IOMMU_INFO_CAPS = 1 << 1;

/**
 * `struct vfio_iommu_type1_info` (24 bytes, min 16 = offsetofend iova_pgsizes). A user
 * `argsz` below 24 predates the capability chain; `argsz` larger than 24 leaves room for
 * the chain, whose first header sits at `cap_offset` from the start of the struct.
 */
export const vfio_iommu_type1_info = defineStruct(
  'vfio_iommu_type1_info',
  [u32('argsz'), u32('flags'), u64('iova_pgsizes'), u32('cap_offset'), u32('pad')],
  { minField: 'iova_pgsizes' },
);

// Every capability starts with this header; declared once and spread into each capability.
const CAP_HEADER = [u16('id'), u16('version'), u32('next')] as const;

/** `struct vfio_info_cap_header` (8 bytes): `next` is the offset of the next capability from the struct start, 0 at the end. */
export const vfio_info_cap_header = defineStruct('vfio_info_cap_header', CAP_HEADER);

/** Capability id: usable IOVA ranges (`vfio_iommu_type1_info_cap_iova_range`). */
export const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1;
/** Capability id: dirty-page migration support (`vfio_iommu_type1_info_cap_migration`). */
export const VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = 2;
/** Capability id: number of DMA mappings still allowed (`vfio_iommu_type1_info_dma_avail`). */
export const VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3;

/** `struct vfio_iova_range` (16 bytes): inclusive [start, end]. */
export const vfio_iova_range = defineStruct('vfio_iova_range', [u64('start'), u64('end')]);

/**
 * `struct vfio_iommu_type1_info_cap_iova_range` (16 bytes of fixed part): the header, then
 * `nr_iovas` and a flexible array `vfio_iova_range iova_ranges[nr_iovas]` starting at byte 16.
 */
export const vfio_iommu_type1_info_cap_iova_range = defineStruct('vfio_iommu_type1_info_cap_iova_range', [
  ...CAP_HEADER,
  u32('nr_iovas'),
  u32('reserved'),
]);

/** `struct vfio_iommu_type1_info_cap_migration` (32 bytes). */
export const vfio_iommu_type1_info_cap_migration = defineStruct('vfio_iommu_type1_info_cap_migration', [
  ...CAP_HEADER,
  u32('flags'),
  u64('pgsize_bitmap'),
  u64('max_dirty_bitmap_size'),
]);

/** `struct vfio_iommu_type1_info_dma_avail` (12 bytes). */
export const vfio_iommu_type1_info_dma_avail = defineStruct('vfio_iommu_type1_info_dma_avail', [
  ...CAP_HEADER,
  u32('avail'),
]);

/** `vfio_iommu_type1_dma_map.flags`: the device may read. */
export const VFIO_DMA_MAP_FLAG_READ = 1 << 0;
/** `vfio_iommu_type1_dma_map.flags`: the device may write. */
export const VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;
/** `vfio_iommu_type1_dma_map.flags`: update the vaddr of an existing mapping (not offered by iommufd). */
export const VFIO_DMA_MAP_FLAG_VADDR = 1 << 2;

/** `struct vfio_iommu_type1_dma_map` (32 bytes, min 32). */
export const vfio_iommu_type1_dma_map = defineStruct('vfio_iommu_type1_dma_map', [
  u32('argsz'),
  u32('flags'),
  u64('vaddr'),
  u64('iova'),
  u64('size'),
]);

/** `vfio_iommu_type1_dma_unmap.flags`: also return a dirty bitmap in `data` (not offered by iommufd). */
export const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1 << 0;
/** `vfio_iommu_type1_dma_unmap.flags`: unmap everything (iova and size must be 0). */
export const VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1;
/** `vfio_iommu_type1_dma_unmap.flags`: invalidate the vaddr only (not offered by iommufd). */
export const VFIO_DMA_UNMAP_FLAG_VADDR = 1 << 2;

/** `struct vfio_iommu_type1_dma_unmap` (24 bytes of fixed part, min 24); `size` is written back. */
export const vfio_iommu_type1_dma_unmap = defineStruct('vfio_iommu_type1_dma_unmap', [
  u32('argsz'),
  u32('flags'),
  u64('iova'),
  u64('size'),
]);

/** `struct vfio_bitmap` (24 bytes): the dirty bitmap descriptor of GET_DIRTY_BITMAP unmaps. */
export const vfio_bitmap = defineStruct('vfio_bitmap', [u64('pgsize'), u64('size'), u64('data')]);

// ---------------------------------------------------------------------------------------
// VFIO device cdev ↔ iommufd (/dev/vfio/devices/vfioN)

/** `VFIO_DEVICE_BIND_IOMMUFD` = _IO(';', 118) = 0x3b76. */
export const VFIO_DEVICE_BIND_IOMMUFD = _IO(VFIO_TYPE, VFIO_BASE + 18);
/** `VFIO_DEVICE_ATTACH_IOMMUFD_PT` = _IO(';', 119) = 0x3b77. */
export const VFIO_DEVICE_ATTACH_IOMMUFD_PT = _IO(VFIO_TYPE, VFIO_BASE + 19);
/** `VFIO_DEVICE_DETACH_IOMMUFD_PT` = _IO(';', 120) = 0x3b78. */
export const VFIO_DEVICE_DETACH_IOMMUFD_PT = _IO(VFIO_TYPE, VFIO_BASE + 20);

/** `vfio_device_bind_iommufd.flags`: `token_uuid_ptr` points to the VF token (16-byte UUID). */
export const VFIO_DEVICE_BIND_FLAG_TOKEN = 1 << 0;

/**
 * `struct vfio_device_bind_iommufd` (24 bytes, min 16). `out_devid` is the DEVICE object id
 * in the iommufd; `token_uuid_ptr` is read only with VFIO_DEVICE_BIND_FLAG_TOKEN.
 */
export const vfio_device_bind_iommufd = defineStruct(
  'vfio_device_bind_iommufd',
  [u32('argsz'), u32('flags'), s32('iommufd'), u32('out_devid'), u64('token_uuid_ptr')],
  { minField: 'out_devid' },
);

/** `vfio_device_attach_iommufd_pt.flags`: attach the PASID in `pasid` instead of the RID. */
export const VFIO_DEVICE_ATTACH_PASID = 1 << 0;

/**
 * `struct vfio_device_attach_iommufd_pt` (16 bytes, min 12; 16 with VFIO_DEVICE_ATTACH_PASID).
 * `pt_id` is written back with the HWPT actually attached (the auto HWPT for an IOAS).
 */
export const vfio_device_attach_iommufd_pt = defineStruct(
  'vfio_device_attach_iommufd_pt',
  [u32('argsz'), u32('flags'), u32('pt_id'), u32('pasid')],
  { minField: 'pt_id' },
);

/** `vfio_device_detach_iommufd_pt.flags`: detach the PASID in `pasid` instead of the RID. */
export const VFIO_DEVICE_DETACH_PASID = 1 << 0;

/** `struct vfio_device_detach_iommufd_pt` (12 bytes, min 8; 12 with VFIO_DEVICE_DETACH_PASID). */
export const vfio_device_detach_iommufd_pt = defineStruct(
  'vfio_device_detach_iommufd_pt',
  [u32('argsz'), u32('flags'), u32('pasid')],
  { minField: 'flags' },
);
