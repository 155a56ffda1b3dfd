/**
 * `@iommufd/mock-iommu`: the smallest complete iommufd driver, the selftest mock in spirit —
 * a template for driver authors.
 *
 * @packageDocumentation
 */
export {
  MockIommu,
  mock_hw_queue,
  mock_viommu,
  mockDeviceCache,
  mockDeviceState,
  mockDomainLookup,
  mockDomainSetDirty,
  mockNestedIotlb,
  mockSetDeviceFlags,
  mockTriggerIopf,
  mockTriggerVevent,
} from './mock-iommu.js';
export type {
  MockDeviceState,
  MockIommuOptions,
  MockNestedDomain,
  MockPagingDomain,
  MockPhysicalMemory,
  MockPte,
} from './mock-iommu.js';
export * from './selftest-uapi.js';
