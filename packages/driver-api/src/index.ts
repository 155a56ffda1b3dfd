/**
 * `@iommufd/driver-api`: the stable, versioned driver contract: driver ops, the core structs
 * drivers see, driver helpers and the type-level STRUCT_SIZE checks.
 *
 * @packageDocumentation
 */
export {
  coreMember,
  darray,
  defineCoreStruct,
  defineDriverStruct,
  dptr,
  DriverStructError,
  du16,
  du32,
  du64,
  du8,
  pointee,
  StructMemory,
  StructView,
} from './struct.js';
export type {
  CoreStructKind,
  CoreStructLayout,
  DriverCoreMember,
  DriverField,
  DriverFieldInfo,
  DriverPointerField,
  DriverScalarField,
  DriverStructLayout,
  Pointee,
  PointerFieldName,
  PointerFieldValue,
  ScalarFieldName,
  ScalarFieldValue,
} from './struct.js';
export {
  IOMMU_CACHE,
  IOMMU_DIRTY_NO_CLEAR,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_READ,
  IOMMU_WRITE,
} from './ops.js';
export type {
  Device,
  DevicePasidCap,
  Errno,
  FaultInjector,
  HwInfoResult,
  IommuCap,
  IommuDevice,
  IommuDirtyBitmap,
  IommuDirtyOps,
  IommuDomain,
  IommuDomainGeometry,
  IommuDomainOps,
  IommuDomainType,
  IommufdViommuOps,
  IommuOps,
  IommuResvRegion,
  IommuResvType,
  IopfGroup,
  IopfHandler,
  IopfPageRequest,
  Status,
} from './ops.js';
export {
  containerOf,
  HW_QUEUE_STRUCT_SIZE,
  IOMMUFD_HW_QUEUE,
  IOMMUFD_VDEVICE,
  IOMMUFD_VIOMMU,
  IommufdHwQueue,
  IommufdVdevice,
  IommufdViommu,
  VDEVICE_STRUCT_SIZE,
  VIOMMU_STRUCT_SIZE,
} from './objects.js';
export type {
  CoreFirstLayout,
  CoreKindOf,
  IommufdAccessRef,
  IommufdCtx,
  IommufdDriverServices,
  IommufdHwptPagingRef,
} from './objects.js';
export {
  copyStructFromUser,
  copyStructToUser,
  iommuCopyFullUserArrayBytes,
  iommuCopyStructFromFullUserArray,
  KMALLOC_MAX_SIZE,
  iommuCopyStructFromUser,
  iommuCopyStructFromUserArray,
  iommuCopyStructToUser,
} from './user-data.js';
export type { IommuUserData, IommuUserDataArray, UserMemory } from './user-data.js';
export type { CoreStructSizes, StructSizeOf } from './type-size.js';
export {
  hwQueueDepend,
  hwQueueUndepend,
  iommuShouldFail,
  PAGE_SIZE,
  vdeviceToDevice,
  viommuAllocMmap,
  viommuDestroyMmap,
  viommuFindDev,
  viommuGetVdevId,
  viommuReportEvent,
} from './helpers.js';
