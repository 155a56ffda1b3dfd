/**
 * `@iommufd/hw-model`: the machine: sparse physical memory, PCI devices with DMA, SMMUv3 with Tegra241 CMDQV and Intel VT-d, programmed only through MMIO registers and in-memory structures.
 *
 * @packageDocumentation
 */
export {};
