/**
 * `@iommufd/host`: the simulated kernel: a VMM process with an address space and fds, /dev/iommu, VFIO device cdevs, machine presets and the iommufd-sim command line.
 *
 * @packageDocumentation
 */
export {};
