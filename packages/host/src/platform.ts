/**
 * What a machine preset gives the host: devices behind an IOMMU, the core's /dev/iommu and
 * VFIO-facing functions, inspection and a DMA path. One implementation per platform.
 */
import type { FaultInjector } from '@iommufd/driver-api';
import type { DmaFault } from '@iommufd/hw-model';
import type { ValidatedHardware } from './hardware-options.js';
import type { KernelFile } from './kernel-types.js';
import type { HostPhysicalMemory, PageRefs } from './physical.js';
import type { ProcessImpl } from './process.js';
import type { VfioIommufdOps } from './vfio-cdev.js';

/** The machine presets of the Host contract. */
export type PlatformName = 'mock' | 'arm-smmuv3' | 'tegra241-cmdqv' | 'intel-vtd';

/** One object of an iommufd context, as the core reports it. */
export interface HostObjectInfo {
  /** Object ID. */
  readonly id: number;
  /** Object type (`IOAS`, `HWPT_PAGING`, `DEVICE`, … as `enum iommufd_object_type`). */
  readonly type: string;
  /** `users` count: 1 means only the table holds it (IOMMU_DESTROY would succeed). */
  readonly users: number;
  /** `reserved`: allocated but not finalized, or a tombstone. */
  readonly state: 'live' | 'reserved';
  /** IDs this object holds references on. */
  readonly refs: readonly number[];
}

/** A device-initiated DMA. */
export interface DmaRequest {
  /** First IOVA of the transfer. */
  readonly iova: bigint;
  /** Bytes to move. */
  readonly length: number;
  /** Device → memory (true) or memory → device (false). */
  readonly write: boolean;
  /** Bytes to write (a write with no data writes zeros). */
  readonly data?: Uint8Array;
  /** PASID-tagged transaction. */
  readonly pasid?: number;
  /**
   * An untranslated request (PCIe AT = 00b) from a function that has ATS enabled: it neither
   * looks in the function's ATC nor sends a translation request, so the IOMMU translates it
   * and a failure is recorded (VT-d FRCD, SMMUv3 event) instead of being answered in a
   * translation completion (and followed by a PRI page request). Functions without ATS only
   * issue untranslated requests; the mock platform ignores the flag.
   */
  readonly untranslated?: boolean;
}

/** Why a DMA did not complete (hw-model's fault description). */
export type { DmaFault };

/** Result of {@link DmaRequest}: read data on success, or the fault. */
export type DmaResult = { readonly ok: true; readonly data?: Uint8Array } | { readonly ok: false; readonly fault: DmaFault };

/** A device of the platform, as the host addresses it. */
export interface PlatformDevice {
  /** Device name (e.g. `mock0`, `0000:00:01.0`). */
  readonly name: string;
  /** The platform's handle (the core's device). */
  readonly handle: unknown;
}

/** Inputs of a platform factory. */
export interface PlatformContext {
  readonly memory: HostPhysicalMemory;
  readonly refs: PageRefs;
  readonly devices: number;
  /** The validated `hardware` option (empty: the preset's defaults). */
  readonly hardware: ValidatedHardware;
  readonly strict: boolean;
  readonly seed: number;
  /** The host's process lookup, for callbacks that need the caller (e.g. test commands). */
  readonly processOf: (kernel: unknown) => ProcessImpl | undefined;
}

/** A running platform. */
export interface Platform {
  readonly name: PlatformName;
  readonly devices: readonly PlatformDevice[];
  /** open("/dev/iommu") (`vfioCompat` for "/dev/vfio/vfio"). */
  openIommufd(process: ProcessImpl, vfioCompat: boolean): KernelFile | number;
  /** What VFIO cdevs call. */
  readonly vfio: VfioIommufdOps<unknown, unknown>;
  /** Objects of a context, or undefined when the file is not a /dev/iommu context. */
  objects(file: KernelFile): readonly HostObjectInfo[] | undefined;
  /** A DMA by a device through whatever it is attached to. */
  dma(device: PlatformDevice, req: DmaRequest): DmaResult;
  /** Every context opened so far, released or not, with its remaining objects. */
  contexts(): { released: boolean; objects: readonly HostObjectInfo[] }[];
  /** The fault injector the core and drivers consult (undefined = never fail). */
  setFaultInjector(injector: FaultInjector | undefined): void;
}
