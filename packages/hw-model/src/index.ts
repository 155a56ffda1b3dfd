/**
 * `@iommufd/hw-model`: the machine: sparse physical memory, PCI devices with DMA, SMMUv3 with Tegra241 CMDQV and Intel VT-d, programmed only through MMIO registers and in-memory structures.
 *
 * @packageDocumentation
 */
export { PhysicalMemory, PhysicalMemoryError } from './memory.js';
export type { AllocPagesOptions, MemoryRegion, MmioDevice } from './memory.js';
export { identityTranslator } from './translator.js';
export type { DmaEndpoint, DmaFault, DmaRequest, DmaTranslation, DmaTranslator, EndpointRegistry } from './translator.js';
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
  Machine,
  MachineDescription,
} from './machine.js';
export { BitLayoutError, defineBitLayout } from './bitfield.js';
export type { BitFieldSpec, BitFields, BitLayout } from './bitfield.js';
