/**
 * `@iommufd/mock-iommu`: the smallest complete iommufd driver, the selftest mock in spirit —
 * a template for driver authors.
 *
 * @packageDocumentation
 */
export {
  MockIommu,
  mock_hw_queue,
  mock_vdevice,
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
export { MOCK_APERTURE_FIRST_IOVA, MOCK_APERTURE_LAST_IOVA, MOCK_HUGE_PAGE_SIZE, MOCK_IO_PAGE_SIZE } from './mock-constants.js';
