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
  LayoutValue,
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
export * from './vfio.js';
export * from './selftest.js';
export * from './sys.js';
export { IommufdError, peekUser, pokeUser, UserScratch, withScratch } from './process.js';
export type { UserProcess } from './process.js';
export * from './wrappers.js';
export * from './events.js';
export { copyStructFromUser, copyStructFromUserAt, structBytesForUser } from './extensible.js';
export type { UserMemoryReader } from './extensible.js';
