/**
 * `@iommufd/hw-model`: the machine: sparse physical memory, PCI devices with DMA, SMMUv3 with Tegra241 CMDQV and Intel VT-d, programmed only through MMIO registers and in-memory structures.
 *
 * @packageDocumentation
 */
export { PhysicalMemory, PhysicalMemoryError } from './memory.js';
export type { AllocPagesOptions, MemoryRegion, MmioDevice, Word64 } from './memory.js';
export { identityTranslator } from './translator.js';
export type { DmaEndpoint, DmaFault, DmaRequest, DmaTranslation, DmaTranslator, EndpointRegistry, PageRequest, PageRequestSink } from './translator.js';
export { AddressTranslationCache, DmaError, PAGE_RESPONSE_LOG_LENGTH, PciDevice, requesterIdOf } from './pci.js';
export type { AtcEntry, Bdf, DmaOperation, DmaResult, PciCapabilities, PciDeviceOptions } from './pci.js';
export { IOMMU_FACTORIES, MachineDescriptionError, createMachine, createMachineWithEngine } from './machine.js';
export {
  EngineCommandQueueConsumer,
  EngineInvalidationQueueConsumer,
  QueueEngineMismatchError,
  adoptQueueEngine,
  loadQueueEngineSync,
  modelQueueEngine,
  queueEngineFor,
  smmuCommandOfEffect,
  vtdDescriptorOfEffect,
} from './engine-consumers.js';
export type {
  DeviceDescription,
  IommuDescription,
  IommuFactory,
  IommuFactoryContext,
  IommuInstance,
  IommuKind,
  IommuOptionsByKind,
  Machine,
  MachineDescription,
  QueueConsumerKind,
} from './machine.js';
export { smmuCommandEvent, vtdDescriptorEvent } from './observer.js';
export type { HardwareCommandEvent, HardwareEventFields, HardwareFaultEvent, HardwareObserver, HardwareWalkEvent } from './observer.js';
export { BitLayoutError, defineBitLayout } from './bitfield.js';
export type { BitFieldReader, BitFieldSpec, BitFields, BitLayout } from './bitfield.js';
export { HardwareCache } from './cache.js';
export type { HardwareCacheOptions } from './cache.js';
export { typescriptCommandQueueConsumer } from './cmdq.js';
export type { CommandExecutor, CommandQueueConsumer, CommandQueueResult, CommandRing, GuestQueueContext } from './cmdq.js';
export { queueEmpty, queueFull, queueIncrement, queueIndex, queuePointer } from './queue.js';
export * from './smmuv3-layouts.js';
export { PERM, levelShift, permits, s1StartLevel, walk } from './smmuv3-walk.js';
export type { TableAddress, WalkFault, WalkLeaf, WalkParams } from './smmuv3-walk.js';
export { SmmuV3, SmmuV3OptionsError } from './smmuv3.js';
export type { CdConfig, ConfigCacheEntry, SmmuInterruptCounts, SmmuV3Options, SteConfig } from './smmuv3.js';
export { SmmuTlb } from './smmuv3-tlb.js';
export type { SmmuTlbOptions, TlbEntry } from './smmuv3-tlb.js';
export {
  CMDQV_CMDQ_ALLOC,
  CMDQV_CONFIG,
  CMDQV_PARAM,
  TEGRA241_CMDQV_REG,
  Tegra241Cmdqv,
  Tegra241Smmu,
  VCMDQ_BASE,
  VCMDQ_CONS,
  VCMDQ_GERROR,
  VINTF_CONFIG,
  VINTF_SID_MATCH,
  VINTF_SID_REPLACE,
  VINTF_STATUS,
} from './tegra241-cmdqv.js';
export type { Tegra241CmdqvOptions, Tegra241SmmuOptions } from './tegra241-cmdqv.js';
export { addr, big, defineFieldLayout, num, readWords, writeWords } from './vtd-bitfields.js';
export type {
  FieldAccessor,
  FieldKind,
  FieldLayout,
  FieldLayoutOptions,
  FieldLayoutValue,
  FieldName,
  FieldSpec,
  FieldValue,
  StructureMemory,
} from './vtd-bitfields.js';
export {
  resolveVtdOptions,
  VTD_ECTL,
  VTD_FSTS,
  VTD_GCMD,
  VTD_ICS,
  VTD_MMIO_SIZE,
  VTD_PRS,
  VTD_REG,
  VtdCap,
  VtdCcmd,
  vtdCapValue,
  VtdEcap,
  vtdEcapValue,
  VtdFsts,
  VtdGcmd,
  VtdIotlbReg,
  VtdIqa,
  VtdIqer,
  VtdIqPointer,
  VtdIva,
  VtdPqPointer,
  VtdOptionsError,
  VtdPqa,
  vtdRegisterTable,
  VtdRtaddr,
} from './vtd-registers.js';
export type { ResolvedVtdOptions, VtdOptions, VtdRegisterSpec } from './vtd-registers.js';
export {
  aboveWidthMask,
  VTD_PGTT,
  VtdContextEntry,
  VtdFsPte,
  VtdPasidDirEntry,
  VtdPasidEntry,
  VtdRootEntry,
  VtdSmContextEntry,
  VtdSmRootEntry,
  VtdSsPte,
} from './vtd-tables.js';
export { VTD_FAULT, VTD_QUALIFIED_FAULTS, VtdFaultRecord, vtdFaultName } from './vtd-faults.js';
export type { VtdFaultName } from './vtd-faults.js';
export { secondStageFaultCode, walkFirstStage, walkSecondStage } from './vtd-walk.js';
export type { VtdFsWalkFailure, VtdFsWalkParams, VtdPageWalk, VtdSsFailure, VtdSsWalkFailure, VtdSsWalkParams } from './vtd-walk.js';
export { createVtdCaches, rangesOverlap, VtdIotlb } from './vtd-caches.js';
export type { VtdCaches, VtdContextCacheEntry, VtdIotlbEntry, VtdPasidCacheEntry, VtdTranslationKind } from './vtd-caches.js';
export {
  validateVtdDescriptor,
  VTD_DESC,
  VTD_DESC_LAYOUTS,
  VTD_IQEI,
  VtdCcDesc,
  VtdDescHeader,
  VtdDevTlbDesc,
  VtdIecDesc,
  VtdIotlbDesc,
  VtdPcDesc,
  VtdPdevTlbDesc,
  VtdPgrpRespDesc,
  VtdPiotlbDesc,
  VtdTsInvalidationQueueConsumer,
  VtdWaitDesc,
} from './vtd-iq.js';
export type {
  VtdDescriptorLayout,
  VtdExecOutcome,
  VtdInvalidationQueueConsumer,
  VtdIqConfig,
  VtdIqConsumeResult,
  VtdIqExecutor,
  VtdIqRing,
} from './vtd-iq.js';
export { encodePageRequest, VtdPageRequestDesc } from './vtd-prq.js';
export type { VtdPageGroupResponse, VtdPageRequest } from './vtd-prq.js';
export { lookupContext, lookupPasidEntry, vtdTranslate } from './vtd-translate.js';
export type { VtdLookupFailure, VtdTranslateUnit } from './vtd-translate.js';
export { atsInvalidationRange, createVtdIommu, VtdIommu } from './vtd.js';
export type { VtdDeviceTlbErrorKind, VtdInterrupt, VtdIommuOptions } from './vtd.js';
