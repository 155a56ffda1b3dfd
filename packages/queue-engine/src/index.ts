/**
 * `@iommufd/queue-engine`: consumes SMMUv3 CMDQ / Tegra241 VCMDQ and VT-d invalidation
 * rings that live in physical memory.
 *
 * @packageDocumentation
 */
export { PAGE_SHIFT, PAGE_SIZE, PhysicalStore, PhysicalStoreFullError } from './physical-store.js';
export type { PhysicalStoreOptions } from './physical-store.js';
