/**
 * `@iommufd/hw-model`: the machine: sparse physical memory, PCI devices with DMA, SMMUv3 with Tegra241 CMDQV and Intel VT-d, programmed only through MMIO registers and in-memory structures.
 *
 * @packageDocumentation
 */
export { PhysicalMemory, PhysicalMemoryError } from './memory.js';
export type { AllocPagesOptions, MemoryRegion, MmioDevice } from './memory.js';
export { identityTranslator } from './translator.js';
export type { DmaEndpoint, DmaFault, DmaRequest, DmaTranslation, DmaTranslator, EndpointRegistry, PageRequest, PageRequestSink } from './translator.js';
export { AddressTranslationCache, DmaError, PciDevice, requesterIdOf } from './pci.js';
export type { AtcEntry, Bdf, DmaOperation, DmaResult, PciCapabilities, PciDeviceOptions } from './pci.js';
export { IOMMU_FACTORIES, MachineDescriptionError, createMachine } from './machine.js';
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
} from './machine.js';
export { BitLayoutError, defineBitLayout } from './bitfield.js';
export type { BitFieldReader, BitFieldSpec, BitFields, BitLayout } from './bitfield.js';
export { HardwareCache } from './cache.js';
export type { HardwareCacheOptions } from './cache.js';
export { typescriptCommandQueueConsumer } from './cmdq.js';
export type { CommandExecutor, CommandQueueConsumer, CommandQueueResult, CommandRing } from './cmdq.js';
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
