/**
 * VFIO cdev uAPI pieces the host needs (include/uapi/linux/vfio.h). Kept host-side until
 * `@iommufd/uapi` exports them.
 */
import { defineStruct, s32, u32, u64 } from '@iommufd/uapi';

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
