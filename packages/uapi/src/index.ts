/**
 * `@iommufd/uapi`: the Linux 6.17 iommufd and VFIO cdev uAPI, byte-exact.
 *
 * @packageDocumentation
 */
export {
  alias,
  array,
  defineStruct,
  LayoutError,
  s32,
  s64,
  u16,
  u32,
  u64,
  u8,
} from './layout.js';
export type {
  ArrayFieldSpec,
  FieldInfo,
  FieldSpec,
  FieldValue,
  ScalarFieldSpec,
  ScalarKind,
  ScalarValue,
  StructLayout,
  StructOptions,
  StructValue,
} from './layout.js';
export * from './ioctl.js';
export * from './errno.js';
export * from './iommufd.js';
export { IOMMUFD_IOCTLS, iommufdIoctlByName, iommufdIoctlByRequest } from './dispatch.js';
export type { IommufdIoctl, IommufdIoctlName } from './dispatch.js';
