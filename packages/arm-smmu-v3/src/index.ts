/**
 * `@iommufd/arm-smmu-v3`: the arm-smmu-v3 iommufd driver with the Tegra241 CMDQV vIOMMU and HW_QUEUE.
 *
 * @packageDocumentation
 */
export {};
