/**
 * The mock IOMMU driver: the smallest complete driver of the iommufd.ts driver API, in the
 * spirit of the kernel selftest's drivers/iommu/iommufd/selftest.c. Copy this file to start
 * a new driver: every op a real driver implements is here, each with the checks the core
 * relies on, and nothing else. The "hardware" is JavaScript state (like the kernel mock's
 * xarrays), which tests inspect through the `mock*` functions at the end.
 *
 * Reading order: (1) per-device state, (2) paging and nested domains, (3) the iommu_ops,
 * (4) the vIOMMU with its vDEVICE and HW queue ops, (5) fault and event injection.
 */
import {
  EFAULT,
  EINVAL,
  EIO,
  EEXIST,
  ENODEV,
  ENOENT,
  ENOMEM,
  EOPNOTSUPP,
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_ALLOC_PASID,
} from '@iommufd/uapi';
import {
  containerOf,
  coreMember,
  defineDriverStruct,
  dptr,
  du32,
  du64,
  HW_QUEUE_STRUCT_SIZE,
  hwQueueDepend,
  hwQueueUndepend,
  IOMMU_DIRTY_NO_CLEAR,
  IOMMU_READ,
  IOMMU_WRITE,
  IOMMUFD_HW_QUEUE,
  IOMMUFD_VDEVICE,
  IOMMUFD_VIOMMU,
  iommuCopyStructFromFullUserArray,
  iommuCopyStructFromUser,
  iommuCopyStructFromUserArray,
  iommuCopyStructToUser,
  iommuShouldFail,
  PAGE_SIZE,
  pointee,
  viommuAllocMmap,
  viommuDestroyMmap,
  viommuFindDev,
  viommuGetVdevId,
  viommuReportEvent,
  VDEVICE_STRUCT_SIZE,
  vdeviceToDevice,
  VIOMMU_STRUCT_SIZE,
  type Device,
  type Errno,
  type HwInfoResult,
  type IommuDevice,
  type IommuDirtyOps,
  type IommuDomain,
  type IommuDomainOps,
  type IommufdHwQueue,
  type IommufdVdevice,
  type IommufdViommu,
  type IommufdViommuOps,
  type IommuOps,
  type IommuResvRegion,
  type IommuUserData,
  type IommuUserDataArray,
  type IopfPageRequest,
  type Status,
} from '@iommufd/driver-api';
import {
  IOMMU_HW_INFO_SELFTEST_REGVAL,
  IOMMU_HW_INFO_TYPE_SELFTEST,
  IOMMU_HW_QUEUE_TYPE_SELFTEST,
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
  IOMMU_TEST_DEV_CACHE_DEFAULT,
  IOMMU_TEST_HW_QUEUE_MAX,
  IOMMU_TEST_INVALIDATE_FLAG_ALL,
  IOMMU_VEVENTQ_TYPE_SELFTEST,
  IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST,
  IOMMU_VIOMMU_TYPE_SELFTEST,
  iommu_hwpt_invalidate_selftest,
  iommu_hwpt_selftest,
  iommu_test_hw_info,
  iommu_viommu_event_selftest,
  iommu_viommu_invalidate_selftest,
  iommu_viommu_selftest,
  MOCK_DEV_CACHE_NUM,
  MOCK_FLAGS_DEVICE_HUGE_IOVA,
  MOCK_FLAGS_DEVICE_NO_DIRTY,
  MOCK_NESTED_DOMAIN_IOTLB_NUM,
} from '@iommufd/uapi';
import { MOCK_APERTURE_FIRST_IOVA, MOCK_APERTURE_LAST_IOVA, MOCK_HUGE_PAGE_SIZE, MOCK_IO_PAGE_SIZE } from './mock-constants.js';

// ---- (1) per-device state -------------------------------------------------------------

/** What the mock keeps per device (`struct mock_dev`), in `dev.iommuPriv`. */
export interface MockDeviceState {
  /** `MOCK_FLAGS_DEVICE_*` */
  flags: number;
  /** 4 "device cache" slots the vIOMMU invalidation clears. */
  readonly cache: number[];
  /** The vIOMMU of the nested domain the RID is attached to, and the vDEVICE's virt_id there. */
  viommu: IommufdViommu | undefined;
  /** virt_id recorded at attach. */
  vdevId: bigint;
  /** The domain attached to the RID. */
  domain: IommuDomain | undefined;
  /** Reserved regions the device reports. */
  resvRegions: IommuResvRegion[];
  /** The device's vDEVICE as the driver sees it (set by vdeviceInit, cleared by its destroy). */
  vdevice: IommufdVdevice | undefined;
  /** Every page response delivered to the device (IOPF completions). */
  readonly pageResponses: { request: IopfPageRequest; code: number }[];
  /** The pasid-1024 fake-error toggle (every second non-blocking attach fails). */
  pasid1024FakeError: boolean;
}

function mdev(dev: Device): MockDeviceState {
  return dev.iommuPriv as MockDeviceState;
}

// ---- (2) domains ---------------------------------------------------------------------

/** One mock IO page table entry (the kernel mock's xarray value and its tag bits). */
export interface MockPte {
  /** Physical address of the MOCK_IO_PAGE_SIZE page. */
  readonly pa: bigint;
  /** IOMMU_READ / IOMMU_WRITE */
  readonly prot: number;
  /** First page of a map_pages call (the kernel mock's MOCK_PFN_START_IOVA). */
  readonly start: boolean;
  /** Last page of a map_pages call (MOCK_PFN_LAST_IOVA). */
  readonly last: boolean;
  /** Mapped as part of a huge page. */
  readonly huge: boolean;
  /** Dirty bit (MOCK_PFN_DIRTY_IOVA). */
  dirty: boolean;
}

/** A mock paging domain (`struct mock_iommu_domain`). */
export interface MockPagingDomain extends IommuDomain {
  readonly type: 'paging';
  /** IOVA / MOCK_IO_PAGE_SIZE → entry. */
  readonly ptes: Map<bigint, MockPte>;
  /** Dirty tracking is on. */
  dirtyTracking: boolean;
  /** The driver instance. */
  readonly mock: MockIommu;
}

/** A mock nested domain (`struct mock_iommu_domain_nested`). */
export interface MockNestedDomain extends IommuDomain {
  readonly type: 'nested';
  /** 4 IOTLB slots, set from `iommu_hwpt_selftest.iotlb`. */
  readonly iotlb: number[];
  /** The stage-2 parent. */
  readonly parent: MockPagingDomain;
  /** The vIOMMU it was allocated on, if any. */
  readonly viommu: IommufdViommu | undefined;
}

function isMockPaging(d: IommuDomain, mock: MockIommu): d is MockPagingDomain {
  return d.type === 'paging' && (d as MockPagingDomain).mock === mock;
}

/** Attach for every mock domain (`mock_domain_nop_attach`). */
function mockAttach(domain: IommuDomain, dev: Device): Status {
  const m = mdev(dev);
  if (domain.dirtyOps && m.flags & MOCK_FLAGS_DEVICE_NO_DIRTY) return EINVAL;
  let viommu: IommufdViommu | undefined;
  let vdevId = 0n;
  if (domain.type === 'nested') {
    viommu = (domain as MockNestedDomain).viommu;
    if (viommu) {
      // A nested domain from a vIOMMU needs the device's vDEVICE on it.
      const id = viommuGetVdevId(viommu, dev);
      if (typeof id === 'number') return id;
      vdevId = id;
    }
  }
  m.viommu = viommu;
  m.vdevId = vdevId;
  m.domain = domain;
  return 0;
}

/** PASID attach (`mock_domain_set_dev_pasid_nop`), with the deliberate pasid-1024 failure. */
function mockSetDevPasid(domain: IommuDomain, dev: Device, pasid: number): Status {
  const m = mdev(dev);
  if (pasid === 1024) {
    if (domain.type === 'blocked') m.pasid1024FakeError = false;
    else if (m.pasid1024FakeError) {
      m.pasid1024FakeError = false;
      return ENOMEM;
    } else m.pasid1024FakeError = true;
  }
  return 0;
}

const pagingOps: IommuDomainOps = {
  attachDev: mockAttach,
  setDevPasid: mockSetDevPasid,
  mapPages(domain, iova, paddr, pgsize, pgcount, prot) {
    const d = domain as MockPagingDomain;
    if (iommuShouldFail(d.mock.instance, 'mock-map-pages')) return { mapped: 0n, status: ENOENT };
    const total = pgsize * BigInt(pgcount);
    if (iova % MOCK_IO_PAGE_SIZE || paddr % MOCK_IO_PAGE_SIZE) return { mapped: 0n, status: EINVAL };
    for (let off = 0n; off < total; off += MOCK_IO_PAGE_SIZE) {
      d.ptes.set((iova + off) / MOCK_IO_PAGE_SIZE, {
        pa: paddr + off,
        prot: prot & (IOMMU_READ | IOMMU_WRITE),
        start: off === 0n,
        last: off + MOCK_IO_PAGE_SIZE === total,
        huge: pgsize === MOCK_HUGE_PAGE_SIZE,
        dirty: false,
      });
    }
    return { mapped: total, status: 0 };
  },
  unmapPages(domain, iova, pgsize, pgcount) {
    const d = domain as MockPagingDomain;
    const total = pgsize * BigInt(pgcount);
    // The kernel mock WARNs when iommufd unmaps a range that does not start and end on the
    // boundaries of one map_pages call: iommufd must never split an area.
    const first = d.ptes.get(iova / MOCK_IO_PAGE_SIZE);
    const last = d.ptes.get((iova + total - 1n) / MOCK_IO_PAGE_SIZE);
    if ((first && !first.start) || (last && !last.last)) d.mock.warnings.push(`unmap of [0x${iova.toString(16)}, +0x${total.toString(16)}) splits a mapping`);
    let unmapped = 0n;
    for (let off = 0n; off < total; off += MOCK_IO_PAGE_SIZE) {
      if (d.ptes.delete((iova + off) / MOCK_IO_PAGE_SIZE)) unmapped += MOCK_IO_PAGE_SIZE;
    }
    return unmapped;
  },
  iovaToPhys(domain, iova) {
    const e = (domain as MockPagingDomain).ptes.get(iova / MOCK_IO_PAGE_SIZE);
    return e ? e.pa + (iova % MOCK_IO_PAGE_SIZE) : 0n;
  },
  enforceCacheCoherency: () => true,
};

const dirtyOps: IommuDirtyOps = {
  setDirtyTracking(domain, enabled) {
    (domain as MockPagingDomain).dirtyTracking = enabled;
    return 0;
  },
  readAndClearDirty(domain, iova, size, flags, dirty) {
    const d = domain as MockPagingDomain;
    const end = iova + size;
    // The kernel mock walks at the granule an entry was mapped with: a huge entry is tested
    // (and cleared) as a whole MOCK_HUGE_PAGE_SIZE page and reported as one dirty range.
    let cur = iova;
    do {
      const e = d.ptes.get(cur / MOCK_IO_PAGE_SIZE);
      const pgsize = e?.huge ? MOCK_HUGE_PAGE_SIZE : MOCK_IO_PAGE_SIZE;
      if (e && testAndClearDirty(d, cur & ~(pgsize - 1n), pgsize, flags)) dirty.record(cur, pgsize);
      cur += pgsize;
    } while (cur < end);
    return 0;
  },
};

/** `mock_test_and_clear_dirty`: any dirty entry of `[head, head + pgsize)`, clearing unless NO_CLEAR. */
function testAndClearDirty(d: MockPagingDomain, head: bigint, pgsize: bigint, flags: number): boolean {
  let found = false;
  for (let off = 0n; off < pgsize; off += MOCK_IO_PAGE_SIZE) {
    const e = d.ptes.get((head + off) / MOCK_IO_PAGE_SIZE);
    if (!e?.dirty) continue;
    found = true;
    if (!(flags & IOMMU_DIRTY_NO_CLEAR)) e.dirty = false;
  }
  return found;
}

/** `mock_domain_cache_invalidate_user`: clears IOTLB slots; entry_num = entries handled. */
function nestedCacheInvalidateUser(domain: IommuDomain, array: IommuUserDataArray): Status {
  const d = domain as MockNestedDomain;
  let processed = 0;
  let rc: Status = 0;
  if (array.type !== IOMMU_HWPT_INVALIDATE_DATA_SELFTEST) rc = EINVAL;
  else {
    for (let i = 0; i < array.entryNum; i++) {
      const inv = iommuCopyStructFromUserArray(iommu_hwpt_invalidate_selftest, array, IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, i, 'iotlb_id');
      if (typeof inv === 'number') {
        rc = inv;
        break;
      }
      if (inv.flags & ~IOMMU_TEST_INVALIDATE_FLAG_ALL) {
        rc = EOPNOTSUPP;
        break;
      }
      if (inv.iotlb_id >= MOCK_NESTED_DOMAIN_IOTLB_NUM) {
        rc = EINVAL;
        break;
      }
      if (inv.flags & IOMMU_TEST_INVALIDATE_FLAG_ALL) d.iotlb.fill(0);
      else d.iotlb[inv.iotlb_id] = 0;
      processed++;
    }
  }
  array.entryNum = processed;
  return rc;
}

const nestedOps: IommuDomainOps = {
  attachDev: mockAttach,
  setDevPasid: mockSetDevPasid,
  cacheInvalidateUser: nestedCacheInvalidateUser,
};

/**
 * `__mock_domain_alloc_nested`: only the selftest data type (any other is EOPNOTSUPP, before
 * anything is copied), with `iotlb` (longer data is EINVAL).
 */
function allocNested(parent: MockPagingDomain, userData: IommuUserData, viommu: IommufdViommu | undefined): MockNestedDomain | Errno {
  if (userData.type !== IOMMU_HWPT_DATA_SELFTEST) return EOPNOTSUPP;
  const data = iommuCopyStructFromUser(iommu_hwpt_selftest, userData, IOMMU_HWPT_DATA_SELFTEST, 'iotlb');
  if (typeof data === 'number') return data;
  return {
    type: 'nested',
    ops: nestedOps,
    pgsizeBitmap: parent.pgsizeBitmap,
    geometry: parent.geometry,
    iotlb: new Array<number>(MOCK_NESTED_DOMAIN_IOTLB_NUM).fill(data.iotlb),
    parent,
    viommu,
  };
}

// ---- (4) the vIOMMU, vDEVICE and HW queue ---------------------------------------------

/** `struct mock_viommu`: the core struct first, as VIOMMU_STRUCT_SIZE demands. */
export const mock_viommu = defineDriverStruct('mock_viommu', [
  coreMember('core', IOMMUFD_VIOMMU),
  dptr('s2_parent', pointee<MockPagingDomain>()),
  dptr('hw_queue0', pointee<IommufdHwQueue>()),
  dptr('hw_queue1', pointee<IommufdHwQueue>()),
  du64('page_pa'),
  du64('mmap_offset'),
]);

/** `struct mock_hw_queue` */
export const mock_hw_queue = defineDriverStruct('mock_hw_queue', [
  coreMember('core', IOMMUFD_HW_QUEUE),
  dptr('prev', pointee<IommufdHwQueue>()),
  du32('index'),
]);

/** `struct mock_vdevice`: a driver vDEVICE struct (the template for vSID/vRID tables). */
export const mock_vdevice = defineDriverStruct('mock_vdevice', [
  coreMember('core', IOMMUFD_VDEVICE),
  du64('virt_id_shadow'),
]);

const QUEUE_SLOTS = ['hw_queue0', 'hw_queue1'] as const;

function mockHwQueueDestroy(hwQueue: IommufdHwQueue): void {
  const q = containerOf(hwQueue, mock_hw_queue, 'core');
  const v = containerOf(hwQueue.viommu, mock_viommu, 'core');
  v.setPtr(QUEUE_SLOTS[q.get('index')]!, undefined);
  const prev = q.getPtr('prev');
  if (prev) hwQueueUndepend(hwQueue, prev);
}

function mockViommuOps(mock: MockIommu): IommufdViommuOps {
  return {
    vdeviceSize: VDEVICE_STRUCT_SIZE(mock_vdevice, 'core'),
    vdeviceInit(vdev) {
      // Core fields (viommu, idev, virt_id) are set and the vdevs slot is taken.
      const v = containerOf(vdev, mock_vdevice, 'core');
      v.set('virt_id_shadow', vdev.virtId);
      const state = mdev(vdeviceToDevice(vdev));
      state.vdevice = vdev;
      vdev.destroy = () => {
        state.vdevice = undefined;
      };
      return 0;
    },
    destroy(viommu) {
      const v = containerOf(viommu, mock_viommu, 'core');
      const pa = v.get('page_pa');
      if (pa) {
        viommuDestroyMmap(viommu, v.get('mmap_offset'));
        mock.memory.freePages(pa, 2);
      }
      mock.viommus.delete(viommu);
    },
    allocDomainNested(viommu, flags, userData) {
      if (flags & ~IOMMU_HWPT_ALLOC_PASID) return EOPNOTSUPP;
      const parent = containerOf(viommu, mock_viommu, 'core').getPtr('s2_parent')!;
      return allocNested(parent, userData, viommu);
    },
    cacheInvalidate(viommu, array) {
      // A zero-length array of the right type probes support.
      if (array.entryNum === 0 && array.type === IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST) return 0;
      const cmds = iommuCopyStructFromFullUserArray(iommu_viommu_invalidate_selftest, array, IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST);
      let done = 0;
      let rc: Status = 0;
      if (typeof cmds === 'number') rc = cmds;
      else {
        for (const cmd of cmds) {
          if (cmd.flags & ~IOMMU_TEST_INVALIDATE_FLAG_ALL) {
            rc = EOPNOTSUPP;
            break;
          }
          if (cmd.cache_id >= MOCK_DEV_CACHE_NUM) {
            rc = EINVAL;
            break;
          }
          const dev = viommuFindDev(viommu, BigInt(cmd.vdev_id));
          if (!dev) {
            rc = EINVAL;
            break;
          }
          if (cmd.flags & IOMMU_TEST_INVALIDATE_FLAG_ALL) mdev(dev).cache.fill(0);
          else mdev(dev).cache[cmd.cache_id] = 0;
          done++;
        }
      }
      array.entryNum = done;
      return rc;
    },
    getHwQueueSize(_viommu, queueType) {
      return queueType === IOMMU_HW_QUEUE_TYPE_SELFTEST ? HW_QUEUE_STRUCT_SIZE(mock_hw_queue, 'core') : 0;
    },
    hwQueueInitPhys(hwQueue, index, basePa) {
      if (index >= IOMMU_TEST_HW_QUEUE_MAX) return EINVAL;
      const v = containerOf(hwQueue.viommu, mock_viommu, 'core');
      const q = containerOf(hwQueue, mock_hw_queue, 'core');
      if (v.getPtr(QUEUE_SLOTS[index]!)) return EEXIST;
      const prev = index ? v.getPtr(QUEUE_SLOTS[index - 1]!) : undefined;
      if (index && !prev) return EIO;
      // Catches a core bug: the core's physical address must be what the S2 translates to.
      const s2 = v.getPtr('s2_parent')!;
      if (basePa !== (s2.ops.iovaToPhys?.(s2, hwQueue.baseAddr) ?? 0n)) return EFAULT;
      if (prev) {
        const rc = hwQueueDepend(hwQueue, prev);
        if (rc) return rc;
      }
      q.setPtr('prev', prev);
      q.set('index', index);
      v.setPtr(QUEUE_SLOTS[index]!, hwQueue);
      hwQueue.destroy = mockHwQueueDestroy;
      return 0;
    },
  };
}

// ---- (3) the instance and its iommu_ops -------------------------------------------------

/** Where the mock gets "physical" pages for its mmap-able vIOMMU region. */
export interface MockPhysicalMemory {
  /** Allocates `npages` contiguous zeroed 4 KiB pages; returns the physical address. */
  allocPages(npages: number): bigint;
  /** Frees pages from {@link MockPhysicalMemory.allocPages}. */
  freePages(pa: bigint, npages: number): void;
  /** Writes bytes at a physical address. */
  write(pa: bigint, bytes: Uint8Array): void;
}

/** A private memory for when the platform gives none: addresses above 1 TiB, contents kept here. */
class PrivateMemory implements MockPhysicalMemory {
  private next = 1n << 40n;
  readonly contents = new Map<bigint, Uint8Array>();
  allocPages(npages: number): bigint {
    const pa = this.next;
    this.next += BigInt(npages) * PAGE_SIZE;
    return pa;
  }
  freePages(pa: bigint, npages: number): void {
    for (let i = 0n; i < BigInt(npages); i++) this.contents.delete(pa + i * PAGE_SIZE);
  }
  write(pa: bigint, bytes: Uint8Array): void {
    this.contents.set(pa, bytes.slice());
  }
}

/** Options of {@link MockIommu}. */
export interface MockIommuOptions {
  /** Instance name (default `mock_iommu`). */
  name?: string;
  /** Physical memory for the vIOMMU mmap pages (default: a private address range). */
  memory?: MockPhysicalMemory;
  /** Largest PASID width the instance supports (default 20, as the selftest's `max_pasids`). */
  maxPasidLog2?: number;
}

/** The mock IOMMU driver and its single instance. */
export class MockIommu {
  /** The instance to register with the core (`iommu_device_register`). */
  readonly instance: IommuDevice;
  /** The driver ops. */
  readonly ops: IommuOps;
  /** Physical pages for mmap regions. */
  readonly memory: MockPhysicalMemory;
  /** Live vIOMMUs of this driver. */
  readonly viommus = new Set<IommufdViommu>();
  /** PASID width of the instance. */
  readonly maxPasidLog2: number;
  /** Driver-detected core bugs (the kernel mock's WARN_ONs), e.g. a split unmap. */
  readonly warnings: string[] = [];

  /** Creates the driver with one instance. */
  constructor(options: MockIommuOptions = {}) {
    this.memory = options.memory ?? new PrivateMemory();
    this.maxPasidLog2 = options.maxPasidLog2 ?? 20;
    const blocked: IommuDomain = {
      type: 'blocked',
      ops: { attachDev: mockAttach, setDevPasid: mockSetDevPasid },
      pgsizeBitmap: MOCK_IO_PAGE_SIZE,
      geometry: { apertureStart: 0n, apertureEnd: 0n, forceAperture: true },
    };
    const mock = this;
    const viommuOps = mockViommuOps(this);
    this.ops = {
      name: 'mock',
      pgsizeBitmap: MOCK_IO_PAGE_SIZE,
      blockedDomain: blocked,
      userPasidTable: true,
      capable(dev, cap) {
        if (cap === 'CACHE_COHERENCY') return true;
        if (cap === 'DIRTY_TRACKING') return !(mdev(dev).flags & MOCK_FLAGS_DEVICE_NO_DIRTY);
        return false;
      },
      probeDevice(dev) {
        const state: MockDeviceState = {
          flags: 0,
          cache: new Array<number>(MOCK_DEV_CACHE_NUM).fill(IOMMU_TEST_DEV_CACHE_DEFAULT),
          viommu: undefined,
          vdevId: 0n,
          domain: undefined,
          resvRegions: [],
          vdevice: undefined,
          pageResponses: [],
          pasid1024FakeError: false,
        };
        dev.iommuPriv = state;
        return 0;
      },
      hwInfo(_dev, type): HwInfoResult | Errno {
        if (type !== 0 && type !== IOMMU_HW_INFO_TYPE_SELFTEST) return EOPNOTSUPP;
        return {
          type: IOMMU_HW_INFO_TYPE_SELFTEST,
          data: iommu_test_hw_info.encode({ flags: 0, test_reg: IOMMU_HW_INFO_SELFTEST_REGVAL }),
        };
      },
      domainAllocPagingFlags(dev, flags, userData) {
        const known = IOMMU_HWPT_ALLOC_DIRTY_TRACKING | IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_PASID;
        if (flags & ~known || userData) return EOPNOTSUPP;
        const wantDirty = (flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING) !== 0;
        if (wantDirty && mdev(dev).flags & MOCK_FLAGS_DEVICE_NO_DIRTY) return EOPNOTSUPP;
        const huge = mdev(dev).flags & MOCK_FLAGS_DEVICE_HUGE_IOVA ? MOCK_HUGE_PAGE_SIZE : 0n;
        const domain: MockPagingDomain = {
          type: 'paging',
          ops: pagingOps,
          pgsizeBitmap: MOCK_IO_PAGE_SIZE | huge,
          geometry: { apertureStart: MOCK_APERTURE_FIRST_IOVA, apertureEnd: MOCK_APERTURE_LAST_IOVA, forceAperture: true },
          dirtyOps: wantDirty ? dirtyOps : undefined,
          ptes: new Map(),
          dirtyTracking: false,
          mock,
        };
        return domain;
      },
      domainAllocNested(_dev, parent, flags, userData) {
        if (flags & ~IOMMU_HWPT_ALLOC_PASID) return EOPNOTSUPP;
        if (!isMockPaging(parent, mock)) return EINVAL;
        return allocNested(parent, userData, undefined);
      },
      getViommuSize(_dev, viommuType) {
        return viommuType === IOMMU_VIOMMU_TYPE_SELFTEST ? VIOMMU_STRUCT_SIZE(mock_viommu, 'core') : 0;
      },
      viommuInit(viommu, parentDomain, userData) {
        // Core fields (ictx, hwpt, iommu_dev, type) are all set: helpers are safe here.
        if (!isMockPaging(parentDomain, mock)) return EINVAL;
        const v = containerOf(viommu, mock_viommu, 'core');
        if (userData) {
          const data = iommuCopyStructFromUser(iommu_viommu_selftest, userData, IOMMU_VIOMMU_TYPE_SELFTEST, 'out_data');
          if (typeof data === 'number') return data;
          if (iommuShouldFail(mock.instance, 'mock-viommu-page')) return ENOMEM;
          const pa = mock.memory.allocPages(2);
          const offset = viommuAllocMmap(viommu, pa, 2n * PAGE_SIZE);
          if (typeof offset === 'number') {
            mock.memory.freePages(pa, 2);
            return offset;
          }
          // Loopback for the test: in_data lands in the page and in out_data.
          mock.memory.write(pa, new Uint8Array(new Uint32Array([data.in_data]).buffer));
          const rc = iommuCopyStructToUser(
            userData,
            iommu_viommu_selftest,
            { ...data, out_data: data.in_data, out_mmap_offset: offset, out_mmap_length: 2n * PAGE_SIZE },
            IOMMU_VIOMMU_TYPE_SELFTEST,
            'out_data',
          );
          if (rc) {
            viommuDestroyMmap(viommu, offset);
            mock.memory.freePages(pa, 2);
            return rc;
          }
          v.set('page_pa', pa);
          v.set('mmap_offset', offset);
        }
        v.setPtr('s2_parent', parentDomain);
        mock.viommus.add(viommu);
        // Set ops last: on a later failure the core calls ops.destroy only if ops is set.
        viommu.ops = viommuOps;
        return 0;
      },
      getResvRegions(dev) {
        return mdev(dev).resvRegions;
      },
      pageResponse(dev, request, code) {
        mdev(dev).pageResponses.push({ request, code });
      },
    };
    this.instance = { name: options.name ?? 'mock_iommu', ops: this.ops, maxPasidLog2: this.maxPasidLog2 };
  }
}

// ---- (5) inspection and injection, for tests and IOMMU_TEST_CMD ------------------------

/** The mock state of a device probed by a mock driver. */
export function mockDeviceState(dev: Device): MockDeviceState {
  const s = dev.iommuPriv as MockDeviceState | undefined;
  if (!s || !Array.isArray(s.cache)) throw new Error(`${dev.name} is not a mock device`);
  return s;
}

/** `MOCK_FLAGS_DEVICE_*` of a device (set before binding, as the selftest's dev_flags). */
export function mockSetDeviceFlags(dev: Device, flags: number): void {
  mockDeviceState(dev).flags = flags;
}

/** The page-table entry at `iova` (IOMMU_TEST_OP_MD_CHECK_MAP), if mapped. */
export function mockDomainLookup(domain: IommuDomain, iova: bigint): MockPte | undefined {
  if (domain.type !== 'paging' || !('ptes' in domain)) return undefined;
  return (domain as MockPagingDomain).ptes.get(iova / MOCK_IO_PAGE_SIZE);
}

/** Sets dirty bits on mapped pages of `[iova, iova + length)` (IOMMU_TEST_OP_DIRTY); returns pages marked. */
export function mockDomainSetDirty(domain: IommuDomain, iova: bigint, length: bigint): number {
  const d = domain as MockPagingDomain;
  if (d.type !== 'paging' || !d.ptes || !d.dirtyTracking) return 0;
  let n = 0;
  for (let off = 0n; off < length; off += MOCK_IO_PAGE_SIZE) {
    const e = d.ptes.get((iova + off) / MOCK_IO_PAGE_SIZE);
    if (e) {
      e.dirty = true;
      n++;
    }
  }
  return n;
}

/** IOTLB slot `id` of a nested mock domain (IOMMU_TEST_OP_MD_CHECK_IOTLB). */
export function mockNestedIotlb(domain: IommuDomain, id: number): number | undefined {
  return domain.type === 'nested' ? (domain as MockNestedDomain).iotlb[id] : undefined;
}

/** Cache slot `id` of a mock device (IOMMU_TEST_OP_DEV_CHECK_CACHE). */
export function mockDeviceCache(dev: Device, id: number): number | undefined {
  return mockDeviceState(dev).cache[id];
}

/** IOMMU_TEST_OP_TRIGGER_VEVENT: ENOENT unless attached through a vIOMMU with a vDEVICE. */
export function mockTriggerVevent(dev: Device): Status {
  const m = mockDeviceState(dev);
  if (!m.viommu || !m.vdevId) return ENOENT;
  const data = iommu_viommu_event_selftest.encode({ virt_id: Number(m.vdevId) });
  return viommuReportEvent(m.viommu, IOMMU_VEVENTQ_TYPE_SELFTEST, data);
}

/**
 * IOMMU_TEST_OP_TRIGGER_IOPF: one LAST_PAGE page request, routed to the PASID's domain or
 * (user PASID table) the RID's; ENODEV when that domain has no fault handler.
 */
export function mockTriggerIopf(
  dev: Device,
  domainOf: (dev: Device, pasid: number | undefined) => IommuDomain | undefined,
  fault: { pasid: number; grpid: number; perm: number; addr: bigint },
): Status {
  const PASID_VALID = 1 << 0;
  const LAST_PAGE = 1 << 1;
  const request: IopfPageRequest = {
    flags: LAST_PAGE | (fault.pasid ? PASID_VALID : 0),
    pasid: fault.pasid,
    grpid: fault.grpid,
    perm: fault.perm,
    addr: fault.addr,
  };
  const domain = (fault.pasid ? domainOf(dev, fault.pasid) : undefined) ?? domainOf(dev, undefined);
  if (!domain?.iopfHandler) return ENODEV;
  return domain.iopfHandler({ dev, faults: [request], domain });
}
