/**
 * The host side of the core ↔ host facade (CORE-HOST-CONTRACT): the shapes the host
 * implements for the core, as the core declares them.
 */
export type { Errno, KernelFile, KernelMemFile, KernelProcess, MmapRegion } from '@iommufd/core';
