/**
 * `@iommufd/core`: the iommufd core: object table, every ioctl with the kernel's checks and
 * errno order, IOAS, HWPT, vIOMMU, vDEVICE, HW_QUEUE, vEVENTQ and FAULT.
 *
 * @packageDocumentation
 */
export { IommuCore } from './core.js';
export type { DeviceDescription, IommuCoreOptions } from './core.js';
export type { DriverOpArgs, DriverOpObserver } from './observe.js';
export { FailNth, IommufdError } from './kernel.js';
export type { DirectMap, Errno, FaultInjector, KernelFile, KernelMemFile, KernelProcess, LockedVmKind, MmapRegion } from './kernel.js';
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
  iommufdAccessReplace,
  iommufdAccessRw,
  iommufdAccessUnpinPages,
} from './access.js';
export type { AccessOps, AccessRwFlags } from './access.js';
export { IOMMUFD_DISPATCH, IOMMU_TEST_CMD_NR } from './main.js';
export type { DispatchRow, IoctlHandler } from './main.js';
export { iommufdVfioCompatIoasCreate } from './vfio-compat.js';
// The object model's structures, exported for inspection and typing (not for construction).
export type { AccountMode, IommufdCtxImpl, Ucmd } from './context.js';
export { IommufdObject, OBJECT_TYPE_VALUE, pinObject, unpinObject } from './object.js';
export type { Ioas } from './ioas.js';
export type { IoptAccess, IoPagetable, IoptArea, IoptPages, IovaRange, ReservedOwner, RwContext } from './io-pagetable.js';
export type { Attach, IommuGroup, IommufdGroup } from './device.js';
export type { Vdevice } from './vdevice.js';
export type { PinRecord } from './access.js';
export type { HwptCommon, HwptNested, HwptPaging, Hwpt } from './hw-pagetable.js';
export type { Viommu } from './viommu.js';
export type { HwQueue } from './hw-queue.js';
export type { Fault, FaultGroup, Veventq, VeventRecord } from './eventq.js';
