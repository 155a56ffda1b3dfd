/**
 * `@iommufd/uapi`: the Linux 6.17 iommufd and VFIO cdev uAPI, byte-exact.
 *
 * @packageDocumentation
 */
export {
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
