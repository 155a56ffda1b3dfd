/**
 * The driver operations (`struct iommu_ops`, `struct iommu_domain_ops`,
 * `struct iommu_dirty_ops`, `struct iommufd_viommu_ops`) and the objects they exchange with
 * the core. Results follow the kernel: `0` or a positive Linux errno (the core turns it into
 * `-errno` at the uAPI), objects or an errno number.
 */
import type { IommufdHwQueue, IommufdVdevice, IommufdViommu } from './objects.js';
import type { IommuUserData, IommuUserDataArray } from './user-data.js';

/** A positive Linux errno value (`EINVAL` = 22 …) as exported by `@iommufd/uapi`. */
export type Errno = number;

/** `0` on success or a positive errno. */
export type Status = 0 | Errno;

/** Fault injection as the kernel's fail_nth: asked once per allocation point. */
export interface FaultInjector {
  /** Whether the allocation at `site` (e.g. `object-alloc`, `domain-alloc`) must fail now. */
  shouldFail(site: string): boolean;
}

/** `enum iommu_cap`: the capabilities the core asks a driver about through {@link IommuOps.capable}. */
export type IommuCap =
  | 'CACHE_COHERENCY'
  | 'NOEXEC'
  | 'PRE_BOOT_PROTECTION'
  | 'ENFORCE_CACHE_COHERENCY'
  | 'DEFERRED_FLUSH'
  | 'DIRTY_TRACKING'
  | 'PCI_ATS_SUPPORTED';

/**
 * An IOMMU instance (`struct iommu_device`): what a driver registers with the core
 * (`iommu_device_register`). Devices behind it are translated by domains of its driver.
 */
export interface IommuDevice {
  /** Instance name (e.g. `smmu0`). */
  readonly name: string;
  /** The driver's operations. */
  readonly ops: IommuOps;
  /** `ilog2(iommu->max_pasids)`: PASID width of the instance (absent or 0 = no PASID). */
  readonly maxPasidLog2?: number;
  /**
   * The fault injector of the core the instance is registered with; the core sets it at
   * registration so driver allocation points can fail like the core's (see
   * `iommuShouldFail`).
   */
  faultInjector?: FaultInjector;
}

/** PASID capability of a device (the PCI PASID capability as the IOMMU core sees it). */
export interface DevicePasidCap {
  /** `ilog2(max_pasids)`; 0 means no PASID support. */
  readonly maxPasidLog2: number;
  /** PASID Execute Permission supported and enabled. */
  readonly exec: boolean;
  /** Privileged Mode supported and enabled. */
  readonly priv: boolean;
}

/** An endpoint device (`struct device`) behind an IOMMU instance. */
export interface Device {
  /** Device name, e.g. `0000:00:01.0` or `iommufd_mock0`. */
  readonly name: string;
  /** The IOMMU instance translating this device (`dev->iommu->iommu_dev`). */
  readonly iommu: IommuDevice;
  /** The iommu_group number; devices with the same number share a group. */
  readonly groupId: number;
  /** PASID capability, when the device has one. */
  readonly pasid: DevicePasidCap | undefined;
  /** The device supports PRI (page requests). */
  readonly pri: boolean;
  /** The device supports ATS. */
  readonly ats: boolean;
  /** The device is a PCI virtual function. */
  readonly isVf: boolean;
  /** `dev_iommu_priv`: the driver's per-device data, set in {@link IommuOps.probeDevice}. */
  iommuPriv: unknown;
}

/** `enum iommu_resv_type` */
export type IommuResvType = 'direct' | 'direct-relaxable' | 'reserved' | 'msi' | 'sw-msi';

/** One reserved IOVA region of a device (`struct iommu_resv_region`). */
export interface IommuResvRegion {
  /** First IOVA. */
  readonly start: bigint;
  /** Length in bytes. */
  readonly length: bigint;
  /** Region type. */
  readonly type: IommuResvType;
}

/** `struct iommu_domain_geometry` */
export interface IommuDomainGeometry {
  /** First IOVA the domain can translate. */
  readonly apertureStart: bigint;
  /** Last IOVA the domain can translate (inclusive). */
  readonly apertureEnd: bigint;
  /** DMA outside the aperture is blocked (always true in this model). */
  readonly forceAperture: boolean;
}

/** `IOMMU_DOMAIN_*` types. */
export type IommuDomainType = 'blocked' | 'identity' | 'paging' | 'nested';

/** `IOMMU_READ` etc. as a bit set. */
export const IOMMU_READ = 1 << 0;
/** Writes are allowed through the mapping. */
export const IOMMU_WRITE = 1 << 1;
/** Cache-coherent mapping (iommufd always sets it). */
export const IOMMU_CACHE = 1 << 2;
/** No execution through the mapping. */
export const IOMMU_NOEXEC = 1 << 3;
/** MMIO mapping. */
export const IOMMU_MMIO = 1 << 4;

/** The handler the core installs on a domain to receive I/O page faults (`iopf_handler`). */
export type IopfHandler = (group: IopfGroup) => Status;

/** One page request (`struct iommu_fault_page_request`). */
export interface IopfPageRequest {
  /** `IOMMU_FAULT_PAGE_REQUEST_*` flags: PASID_VALID=1, LAST_PAGE=2, PRIV_DATA=4, RESP_NEEDS_PASID=8. */
  readonly flags: number;
  /** PASID (valid with PASID_VALID). */
  readonly pasid: number;
  /** Page request group index. */
  readonly grpid: number;
  /** `IOMMU_FAULT_PERM_*`: READ=1, WRITE=2, EXEC=4, PRIV=8. */
  readonly perm: number;
  /** Faulting address. */
  readonly addr: bigint;
}

/** A group of page requests that ends with a LAST_PAGE request (`struct iopf_group`). */
export interface IopfGroup {
  /** The device that faulted. */
  readonly dev: Device;
  /** The requests, the last one carrying LAST_PAGE. */
  readonly faults: readonly IopfPageRequest[];
  /** The domain the fault was routed to. */
  readonly domain: IommuDomain;
}

/**
 * The driver's page-table operations (`struct iommu_domain_ops`). Return `0` or an errno.
 */
export interface IommuDomainOps {
  /** Attach `dev` (its RID) to `domain`. EINVAL means "incompatible" (the core then tries another domain). */
  attachDev?(domain: IommuDomain, dev: Device): Status;
  /** Attach a PASID of `dev` to `domain` (the blocked domain's form detaches it). */
  setDevPasid?(domain: IommuDomain, dev: Device, pasid: number, old: IommuDomain | undefined): Status;
  /** Map `pgcount` pages of `pgsize` from `iova` to `paddr`. Returns the bytes mapped and 0 or an errno. */
  mapPages?(
    domain: IommuDomain,
    iova: bigint,
    paddr: bigint,
    pgsize: bigint,
    pgcount: number,
    prot: number,
  ): { mapped: bigint; status: Status };
  /** Unmap `pgcount` pages of `pgsize` from `iova`; returns the bytes unmapped. */
  unmapPages?(domain: IommuDomain, iova: bigint, pgsize: bigint, pgcount: number): bigint;
  /** Translate an IOVA (0n when unmapped). */
  iovaToPhys?(domain: IommuDomain, iova: bigint): bigint;
  /**
   * Invalidate caches of a NESTED domain from a user array (`cache_invalidate_user`). Must set
   * `array.entryNum` to the number of entries handled, also on failure.
   */
  cacheInvalidateUser?(domain: IommuDomain, array: IommuUserDataArray): Status;
  /** Make the domain enforce cache coherency (no-snoop blocked); false if it cannot. */
  enforceCacheCoherency?(domain: IommuDomain): boolean;
  /** Free the domain (`iommu_domain_free`). */
  free?(domain: IommuDomain): void;
}

/** Collects dirty IOVA ranges (`struct iova_bitmap` seen through `iommu_dirty_bitmap_record`). */
export interface IommuDirtyBitmap {
  /** Records `[iova, iova + length)` as dirty. */
  record(iova: bigint, length: bigint): void;
}

/** `IOMMU_DIRTY_NO_CLEAR`: read without clearing the dirty bits. */
export const IOMMU_DIRTY_NO_CLEAR = 1 << 0;

/** `struct iommu_dirty_ops` */
export interface IommuDirtyOps {
  /** Turn dirty tracking on or off. */
  setDirtyTracking(domain: IommuDomain, enabled: boolean): Status;
  /** Report dirty pages in `[iova, iova + size)`, clearing them unless `IOMMU_DIRTY_NO_CLEAR`. */
  readAndClearDirty(
    domain: IommuDomain,
    iova: bigint,
    size: bigint,
    flags: number,
    dirty: IommuDirtyBitmap,
  ): Status;
}

/**
 * A translation domain (`struct iommu_domain`), allocated by the driver. The core sets
 * `owner`, `cookie` and `iopfHandler` after allocation.
 */
export interface IommuDomain {
  /** Domain type. */
  readonly type: IommuDomainType;
  /** The driver's operations on this domain. */
  readonly ops: IommuDomainOps;
  /** Supported page sizes (bit n set = 2^n bytes). */
  readonly pgsizeBitmap: bigint;
  /** The translatable IOVA window. */
  readonly geometry: IommuDomainGeometry;
  /** Dirty-tracking operations; present only when the domain was allocated with dirty tracking. */
  readonly dirtyOps?: IommuDirtyOps | undefined;
  /** The driver ops that allocated it (core-set: `domain->owner`). */
  owner?: IommuOps;
  /** Whatever the core attached to the domain (its HWPT). */
  cookie?: unknown;
  /** I/O page fault handler (core-set when the HWPT has a FAULT object). */
  iopfHandler?: IopfHandler | undefined;
}

/** What {@link IommuOps.hwInfo} returns: the reported type and its payload bytes. */
export interface HwInfoResult {
  /** `enum iommu_hw_info_type` of `data` (must not be NONE). */
  readonly type: number;
  /** The payload (e.g. an encoded `iommu_hw_info_arm_smmuv3`). */
  readonly data: Uint8Array;
}

/**
 * The driver operations for one IOMMU type (`struct iommu_ops`, the members iommufd uses).
 * Optional members are feature switches, exactly as NULL ops are in Linux.
 */
export interface IommuOps {
  /** Driver name (for messages). */
  readonly name: string;
  /** `capable(dev, cap)`. */
  capable(dev: Device, cap: IommuCap): boolean;
  /** Called when a device behind one of the driver's instances is added (`probe_device`). */
  probeDevice?(dev: Device): Status;
  /** Called when a device is removed (`release_device`). */
  releaseDevice?(dev: Device): void;
  /**
   * `hw_info(dev, &length, &type)`: `type` is the requested type (0 = default). Reject an
   * unsupported type with an errno (e.g. EOPNOTSUPP).
   */
  hwInfo?(dev: Device, type: number): HwInfoResult | Errno;
  /**
   * `domain_alloc_paging_flags(dev, flags, user_data)`: flags ⊆ NEST_PARENT | DIRTY_TRACKING |
   * PASID; return EOPNOTSUPP for anything unsupported.
   */
  domainAllocPagingFlags?(dev: Device, flags: number, userData: IommuUserData | undefined): IommuDomain | Errno;
  /** `domain_alloc_nested(dev, parent, flags, user_data)`; the result's type must be `nested`. */
  domainAllocNested?(
    dev: Device,
    parent: IommuDomain,
    flags: number,
    userData: IommuUserData,
  ): IommuDomain | Errno;
  /**
   * `get_viommu_size(dev, type)`: the byte size of the driver's vIOMMU struct (use
   * `VIOMMU_STRUCT_SIZE`), or 0 when this instance does not support `type`.
   */
  getViommuSize?(dev: Device, viommuType: number): number;
  /**
   * `viommu_init(viommu, parent_domain, user_data)`: called after every core field of
   * `viommu` is set. Must set `viommu.ops` (set it last: the core calls `ops.destroy` on
   * failure only if it was set) and undo its own work on failure.
   */
  viommuInit?(viommu: IommufdViommu, parentDomain: IommuDomain, userData: IommuUserData | undefined): Status;
  /** The device's reserved IOVA regions (`get_resv_regions`). */
  getResvRegions?(dev: Device): readonly IommuResvRegion[];
  /** The driver owns a user PASID table (PASID faults go to the RID's nested domain). */
  readonly userPasidTable?: boolean;
  /** Default page sizes for domains of this driver. */
  readonly pgsizeBitmap: bigint;
  /** The driver's blocking domain (attach = DMA blocked). */
  readonly blockedDomain: IommuDomain;
  /** Deliver a page response to the device (`page_response`). */
  pageResponse?(dev: Device, request: IopfPageRequest, code: number): void;
}

/**
 * The vIOMMU operations a driver sets in `viommu.ops` during `viommuInit`
 * (`struct iommufd_viommu_ops`).
 */
export interface IommufdViommuOps {
  /** Free driver-side resources (the core frees the memory and unpins the HWPT). */
  destroy?(viommu: IommufdViommu): void;
  /** Allocate a NESTED domain (HWPT_ALLOC with `pt_id` = this vIOMMU); flags ⊆ PASID. */
  allocDomainNested?(viommu: IommufdViommu, flags: number, userData: IommuUserData): IommuDomain | Errno;
  /** HWPT_INVALIDATE with a vIOMMU id; must set `array.entryNum`. */
  cacheInvalidate?(viommu: IommufdViommu, array: IommuUserDataArray): Status;
  /**
   * Size of the driver's vDEVICE struct (use `VDEVICE_STRUCT_SIZE`); 0 or absent = the core
   * struct. Non-zero requires {@link IommufdViommuOps.vdeviceInit}.
   */
  readonly vdeviceSize?: number;
  /** Initialize the driver part of a vDEVICE (core fields and the vdevs slot are set). May set `vdev.destroy`. */
  vdeviceInit?(vdev: IommufdVdevice): Status;
  /** Size of the driver's HW queue struct for `queueType` (use `HW_QUEUE_STRUCT_SIZE`); 0 = unsupported. */
  getHwQueueSize?(viommu: IommufdViommu, queueType: number): number;
  /**
   * Initialize a HW queue whose guest memory is pinned and physically contiguous at
   * `basePa`. May set `hwQueue.destroy` and call `hwQueueDepend`.
   */
  hwQueueInitPhys?(hwQueue: IommufdHwQueue, index: number, basePa: bigint): Status;
}
