/**
 * `@iommufd/mock-iommu`: the smallest complete iommufd driver, the kernel selftest mock in spirit: a template for driver authors.
 *
 * @packageDocumentation
 */
export {};
