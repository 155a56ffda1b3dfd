/**
 * `@iommufd/core`: the iommufd core: object table, every ioctl with the kernel's checks and
 * errno order, IOAS, HWPT, vIOMMU, vDEVICE, HW_QUEUE, vEVENTQ and FAULT.
 *
 * @packageDocumentation
 */
export { IommuCore } from './core.js';
export type { DeviceDescription, IommuCoreOptions } from './core.js';
export { FailNth, IommufdError } from './kernel.js';
export type { Errno, FaultInjector, KernelFile, KernelMemFile, KernelProcess, MmapRegion } from './kernel.js';
export type { IommufdContext, ObjectInfo } from './context.js';
export type { ObjectTypeName } from './object.js';
export {
  BoundDevice,
  CoreDevice,
  deviceAttachedDomain,
  iommufdDeviceAttach,
  iommufdDeviceDetach,
  iommufdDeviceReplace,
  iommufdDeviceUnbind,
} from './device.js';
export { iommufdDeviceBind } from './facade.js';
export {
  Access,
  iommufdAccessCreate,
  iommufdAccessDestroy,
  iommufdAccessPinPages,
  iommufdAccessRw,
  iommufdAccessUnpinPages,
} from './access.js';
export type { AccessOps } from './access.js';
export { IOMMUFD_DISPATCH, IOMMU_TEST_CMD_NR } from './main.js';
export type { DispatchRow, IoctlHandler } from './main.js';
export { VFIO_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_GET_API_VERSION } from './vfio-compat.js';
