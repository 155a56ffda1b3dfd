/**
 * VFIO cdev uAPI pieces the host needs (include/uapi/linux/vfio.h). Kept host-side until
 * `@iommufd/uapi` exports them.
 */
import { defineStruct, s32, u16, u32, u64 } from '@iommufd/uapi';

export const VFIO_DEVICE_BIND_IOMMUFD = 0x3b76;
export const VFIO_DEVICE_ATTACH_IOMMUFD_PT = 0x3b77;
export const VFIO_DEVICE_DETACH_IOMMUFD_PT = 0x3b78;
export const VFIO_DEVICE_BIND_FLAG_TOKEN = 1 << 0;
export const VFIO_DEVICE_ATTACH_PASID = 1 << 0;
export const VFIO_DEVICE_DETACH_PASID = 1 << 0;

export const vfio_device_bind_iommufd = defineStruct(
  'vfio_device_bind_iommufd',
  [u32('argsz'), u32('flags'), s32('iommufd'), u32('out_devid'), u64('token_uuid_ptr')],
  { minField: 'out_devid' },
);
export const vfio_device_attach_iommufd_pt = defineStruct(
  'vfio_device_attach_iommufd_pt',
  [u32('argsz'), u32('flags'), u32('pt_id'), u32('pasid')],
  { minField: 'pt_id' },
);
export const vfio_device_detach_iommufd_pt = defineStruct(
  'vfio_device_detach_iommufd_pt',
  [u32('argsz'), u32('flags'), u32('pasid')],
  { minField: 'flags' },
);

// VFIO type1 container ioctls that /dev/iommu answers for compatibility (vfio_compat.c).
export const VFIO_GET_API_VERSION = 0x3b64;
export const VFIO_CHECK_EXTENSION = 0x3b65;
export const VFIO_SET_IOMMU = 0x3b66;
export const VFIO_IOMMU_GET_INFO = 0x3b70;
export const VFIO_IOMMU_MAP_DMA = 0x3b71;
export const VFIO_IOMMU_UNMAP_DMA = 0x3b72;
export const VFIO_API_VERSION = 0;
export const VFIO_TYPE1_IOMMU = 1;
export const VFIO_TYPE1v2_IOMMU = 3;
export const VFIO_DMA_MAP_FLAG_READ = 1 << 0;
export const VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;
export const VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1;
export const VFIO_IOMMU_INFO_PGSIZES = 1 << 0;
export const VFIO_IOMMU_INFO_CAPS = 1 << 1;
export const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1;
export const VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3;

export const vfio_iommu_type1_dma_map = defineStruct('vfio_iommu_type1_dma_map', [
  u32('argsz'),
  u32('flags'),
  u64('vaddr'),
  u64('iova'),
  u64('size'),
]);
export const vfio_iommu_type1_dma_unmap = defineStruct('vfio_iommu_type1_dma_unmap', [u32('argsz'), u32('flags'), u64('iova'), u64('size')]);
export const vfio_iommu_type1_info = defineStruct('vfio_iommu_type1_info', [
  u32('argsz'),
  u32('flags'),
  u64('iova_pgsizes'),
  u32('cap_offset'),
  u32('pad'),
]);
export const vfio_info_cap_header = defineStruct('vfio_info_cap_header', [u16('id'), u16('version'), u32('next')]);
export const vfio_iommu_type1_info_cap_iova_range = defineStruct('vfio_iommu_type1_info_cap_iova_range', [
  u16('id'),
  u16('version'),
  u32('next'),
  u32('nr_iovas'),
  u32('reserved'),
  u64('start'),
  u64('end'),
]);
export const vfio_iommu_type1_info_dma_avail = defineStruct('vfio_iommu_type1_info_dma_avail', [
  u16('id'),
  u16('version'),
  u32('next'),
  u32('avail'),
]);
