/**
 * `@iommufd/intel-vtd`: the intel-vtd iommufd driver and an experimental VT-d vIOMMU.
 *
 * @packageDocumentation
 */
export {};
