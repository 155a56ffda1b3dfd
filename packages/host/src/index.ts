/**
 * `@iommufd/host`: the simulated kernel a VMM program talks to — a process with an address
 * space and an fd table, `/dev/iommu` and VFIO device cdevs, device DMA through the IOMMU,
 * the machine presets, and the `iommufd-sim` command line.
 *
 * @packageDocumentation
 */
export { createHost } from './host.js';
export type { Host, HostOptions } from './host.js';
export { HostError } from './errors.js';
export type { HostErrorCode } from './errors.js';
export type { DmaFault, DmaRequest, DmaResult, HostObjectInfo, PlatformName } from './platform.js';
export type { FdInfo, HostProcess, ProcessCredentials } from './process.js';
export type { VmaInfo } from './address-space.js';
export type { HostPhysicalMemory } from './physical.js';
export { DemoError, formatSummary, runDemo } from './demo.js';
export type { DemoSummary } from './demo.js';
export * from '@iommufd/uapi';


export { findingSignature, formatFuzzSummary, generateOps, minimize, parseFuzzCase, replay, runFuzz, FuzzRandom, FUZZ_OP_KINDS } from './fuzz/index.js';
export type { FuzzCase, FuzzFinding, FuzzFindingKind, FuzzOp, FuzzOpKind, FuzzOptions, FuzzReport, MinimizeOptions, ReplayOptions, ReplayResult } from './fuzz/index.js';
