/**
 * HWPT objects (hw_pagetable.c): HWPT_PAGING mirroring an IOAS, HWPT_NESTED on a nesting
 * parent or a vIOMMU; IOMMU_HWPT_ALLOC, IOMMU_HWPT_INVALIDATE and dirty tracking.
 */
import {
  EFAULT,
  EINVAL,
  ENOMEM,
  EOPNOTSUPP,
  EOVERFLOW,
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_ALLOC_PASID,
  IOMMU_HWPT_DATA_NONE,
  IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
  IOMMU_HWPT_FAULT_ID_VALID,
  IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
  type iommu_hwpt_alloc,
  type iommu_hwpt_get_dirty_bitmap,
  type iommu_hwpt_invalidate,
  type iommu_hwpt_set_dirty_tracking,
} from '@iommufd/uapi';
import type { Errno, IommuDirtyBitmap, IommuDirtyOps, IommuDomain, IommuOps, IommuUserData, IommuUserDataArray } from '@iommufd/driver-api';
import type { IommufdCtxImpl, Ucmd } from './context.js';
import type { KernelProcess } from './kernel.js';
import { IommufdObject, pinObject, unpinObject } from './object.js';
import type { BoundDevice } from './device.js';
import type { Ioas } from './ioas.js';
import type { Viommu } from './viommu.js';
import type { Fault } from './eventq.js';
import { ULONG_MAX } from './io-pagetable.js';
import { opStatus } from './observe.js';

type Cmd<L> = L extends { decode(b: Uint8Array): infer V } ? V : never;

/** Fields common to both HWPT kinds (`struct iommufd_hw_pagetable`). */
export abstract class HwptCommon extends IommufdObject {
  /** The driver domain. */
  domain!: IommuDomain;
  /** FAULT object receiving this HWPT's I/O page faults. */
  fault: Fault | undefined;
  /** Allocated with IOMMU_HWPT_ALLOC_PASID. */
  pasidCompat = false;

  protected freeCommon(): void {
    if (this.fault) unpinObject(this, this.fault);
    this.fault = undefined;
  }
}

/** HWPT_PAGING: a domain mirroring an IOAS. */
export class HwptPaging extends HwptCommon {
  /** `HWPT_PAGING` */
  readonly type = 'HWPT_PAGING' as const;
  /** Created by an attach to an IOAS; dies with its last device. */
  autoDomain = false;
  /** Allocated with NEST_PARENT. */
  nestParent = false;
  /** Enforces cache coherency. */
  enforceCacheCoherency = false;
  /** Whether the domain was added to the IOAS's map. */
  private added = false;
  constructor(
    ictx: IommufdCtxImpl,
    /** The IOAS it mirrors (pinned). */
    readonly ioas: Ioas,
  ) {
    super(ictx);
  }

  /** Marks the domain as part of the IOAS (for teardown). */
  markAdded(): void {
    this.added = true;
  }

  /** `iommufd_hwpt_paging_destroy`. */
  destroy(): void {
    if (this.added) {
      const i = this.ioas.hwptList.indexOf(this);
      if (i >= 0) this.ioas.hwptList.splice(i, 1);
      this.ioas.iopt.removeDomain(this.domain);
      this.added = false;
    }
    if (this.domain) freeDomain(this, this.domain);
    this.freeCommon();
    if (this.pinned.includes(this.ioas)) unpinObject(this, this.ioas);
  }

  /** `iommufd_hwpt_paging_abort`: same teardown. */
  override abort(): void {
    this.destroy();
  }
}

/** HWPT_NESTED: a stage-1 domain on a nesting parent (directly or through a vIOMMU). */
export class HwptNested extends HwptCommon {
  /** `HWPT_NESTED` */
  readonly type = 'HWPT_NESTED' as const;
  /** The vIOMMU it was allocated on, if any (pinned). */
  viommu: Viommu | undefined;
  constructor(
    ictx: IommufdCtxImpl,
    /** The nesting parent. */
    readonly parent: HwptPaging,
  ) {
    super(ictx);
  }

  /** `iommufd_hwpt_nested_destroy`. */
  destroy(): void {
    if (this.domain) freeDomain(this, this.domain);
    this.freeCommon();
    if (this.viommu) unpinObject(this, this.viommu);
    else if (this.pinned.includes(this.parent)) unpinObject(this, this.parent);
  }

  /** `iommufd_hwpt_nested_abort`. */
  override abort(): void {
    this.destroy();
  }
}

/** Either HWPT kind. */
export type Hwpt = HwptPaging | HwptNested;

/** `iommu_domain_free` of a HWPT's domain. */
function freeDomain(hwpt: HwptCommon, domain: IommuDomain): void {
  const obs = hwpt.ictx.core.observer;
  obs?.opBegin('free', { domain: hwpt.id });
  domain.ops.free?.(domain);
  obs?.opEnd('free', 0);
}

type AttachFn = (idev: BoundDevice, pasid: number | undefined, hwpt: HwptPaging) => Hwpt | undefined | Errno;

const PAGING_FLAGS =
  IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_DIRTY_TRACKING | IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID;

/**
 * `iommufd_hwpt_paging_alloc`. With `immediateAttach` the device attaches (through
 * `attach`) before the domain joins the IOAS, as the kernel does for automatic domains.
 * Returns the reserved (not finalized) HWPT.
 */
export function hwptPagingAlloc(
  ictx: IommufdCtxImpl,
  ioas: Ioas,
  idev: BoundDevice,
  pasid: number | undefined,
  flags: number,
  immediateAttach: boolean,
  userData: IommuUserData | undefined,
  attach?: AttachFn,
): { hwpt: HwptPaging; old: Hwpt | undefined } | Errno {
  const dev = idev.dev;
  const ops = dev.iommu.ops;
  if ((flags || userData) && !ops.domainAllocPagingFlags) return EOPNOTSUPP;
  if (flags & ~PAGING_FLAGS) return EOPNOTSUPP;
  if (flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING && !ops.capable(dev, 'DIRTY_TRACKING')) return EOPNOTSUPP;
  if (flags & IOMMU_HWPT_FAULT_ID_VALID && flags & IOMMU_HWPT_ALLOC_NEST_PARENT) return EOPNOTSUPP;
  const hwpt = ictx.allocObject(new HwptPaging(ictx, ioas));
  if (typeof hwpt === 'number') return hwpt;
  hwpt.pasidCompat = (flags & IOMMU_HWPT_ALLOC_PASID) !== 0;
  pinObject(hwpt, ioas);
  hwpt.nestParent = (flags & IOMMU_HWPT_ALLOC_NEST_PARENT) !== 0;
  const fail = (rc: Errno): Errno => {
    ictx.abortAndDestroy(hwpt);
    return rc;
  };
  if (ictx.shouldFail('domain-alloc')) return fail(ENOMEM);
  const obs = ictx.core.observer;
  obs?.opBegin('domainAllocPagingFlags', { device: dev.name, hwpt: hwpt.id, flags: flags & ~IOMMU_HWPT_FAULT_ID_VALID, userDataLen: userData?.len ?? 0 });
  const domain = ops.domainAllocPagingFlags
    ? ops.domainAllocPagingFlags(dev, flags & ~IOMMU_HWPT_FAULT_ID_VALID, userData)
    : EOPNOTSUPP;
  obs?.opEnd('domainAllocPagingFlags', opStatus(domain));
  if (typeof domain === 'number') return fail(domain);
  hwpt.domain = domain;
  domain.owner = ops;
  domain.cookie = hwpt;
  if (idev.enforceCacheCoherency) {
    obs?.opBegin('enforceCacheCoherency', { domain: hwpt.id });
    const ok = domain.ops.enforceCacheCoherency?.(domain) ?? false;
    obs?.opEnd('enforceCacheCoherency', ok ? 0 : EINVAL);
    if (!ok) return fail(EINVAL);
    hwpt.enforceCacheCoherency = true;
  }
  let old: Hwpt | undefined;
  if (immediateAttach && attach) {
    const r = attach(idev, pasid, hwpt);
    if (typeof r === 'number') return fail(r);
    old = r;
  }
  const rc = ioas.iopt.addDomain(domain);
  if (rc) {
    if (immediateAttach) {
      // Undo the attach before the abort (out_detach in the kernel).
      undoImmediateAttach(idev, pasid, hwpt, old);
    }
    return fail(rc);
  }
  hwpt.markAdded();
  ioas.hwptList.push(hwpt);
  return { hwpt, old };
}

let undoImmediateAttach: (idev: BoundDevice, pasid: number | undefined, hwpt: HwptPaging, old: Hwpt | undefined) => void = () => undefined;

/** Installed by device.ts (which owns attach state) to break the import cycle. */
export function setUndoImmediateAttach(fn: typeof undoImmediateAttach): void {
  undoImmediateAttach = fn;
}

/** `iommufd_hwpt_nested_alloc` (parent HWPT form). */
function hwptNestedAlloc(
  ictx: IommufdCtxImpl,
  parent: HwptPaging,
  idev: BoundDevice,
  flags: number,
  userData: IommuUserData,
): HwptNested | Errno {
  const ops = idev.dev.iommu.ops;
  if (flags & ~(IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID) || !userData.len || !ops.domainAllocNested) {
    return EOPNOTSUPP;
  }
  if (parent.autoDomain || !parent.nestParent || parent.domain.owner !== ops) return EINVAL;
  const hwpt = ictx.allocObject(new HwptNested(ictx, parent));
  if (typeof hwpt === 'number') return hwpt;
  hwpt.pasidCompat = (flags & IOMMU_HWPT_ALLOC_PASID) !== 0;
  pinObject(hwpt, parent);
  if (ictx.shouldFail('domain-alloc')) {
    ictx.abortAndDestroy(hwpt);
    return ENOMEM;
  }
  const obs = ictx.core.observer;
  obs?.opBegin('domainAllocNested', { device: idev.dev.name, hwpt: hwpt.id, parent: parent.id, flags: flags & ~IOMMU_HWPT_FAULT_ID_VALID, userDataType: userData.type });
  const domain = ops.domainAllocNested(idev.dev, parent.domain, flags & ~IOMMU_HWPT_FAULT_ID_VALID, userData);
  obs?.opEnd('domainAllocNested', opStatus(domain));
  return installNestedDomain(ictx, hwpt, domain, ops);
}

/** `iommufd_viommu_alloc_hwpt_nested`. */
function viommuHwptNestedAlloc(ictx: IommufdCtxImpl, viommu: Viommu, flags: number, userData: IommuUserData): HwptNested | Errno {
  if (flags & ~(IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID)) return EOPNOTSUPP;
  if (!userData.len) return EOPNOTSUPP;
  const vops = viommu.core.ops;
  if (!vops?.allocDomainNested) return EOPNOTSUPP;
  const hwpt = ictx.allocObject(new HwptNested(ictx, viommu.hwpt));
  if (typeof hwpt === 'number') return hwpt;
  hwpt.pasidCompat = (flags & IOMMU_HWPT_ALLOC_PASID) !== 0;
  hwpt.viommu = viommu;
  pinObject(hwpt, viommu);
  if (ictx.shouldFail('domain-alloc')) {
    ictx.abortAndDestroy(hwpt);
    return ENOMEM;
  }
  const obs = ictx.core.observer;
  obs?.opBegin('allocDomainNested', { viommu: viommu.id, hwpt: hwpt.id, flags: flags & ~IOMMU_HWPT_FAULT_ID_VALID, userDataType: userData.type });
  const domain = vops.allocDomainNested(viommu.core, flags & ~IOMMU_HWPT_FAULT_ID_VALID, userData);
  obs?.opEnd('allocDomainNested', opStatus(domain));
  return installNestedDomain(ictx, hwpt, domain, viommu.iommuDev.ops);
}

/**
 * The common tail of both nested allocations: a driver error or a domain that is not
 * `nested` (EOPNOTSUPP) aborts the reserved HWPT; otherwise the domain is tied to it.
 */
function installNestedDomain(
  ictx: IommufdCtxImpl,
  hwpt: HwptNested,
  domain: IommuDomain | Errno,
  owner: IommuOps,
): HwptNested | Errno {
  if (typeof domain === 'number') {
    ictx.abortAndDestroy(hwpt);
    return domain;
  }
  hwpt.domain = domain;
  domain.owner = owner;
  domain.cookie = hwpt;
  if (domain.type !== 'nested') {
    ictx.abortAndDestroy(hwpt);
    return EOPNOTSUPP;
  }
  return hwpt;
}

/** IOMMU_HWPT_ALLOC: note the pt_id lookup failure is EINVAL, not ENOENT. */
export function iommufdHwptAlloc(ucmd: Ucmd<Cmd<typeof iommu_hwpt_alloc>>): 0 | Errno {
  const cmd = ucmd.cmd;
  const ictx = ucmd.ictx;
  if (cmd.__reserved) return EOPNOTSUPP;
  if ((cmd.data_type === IOMMU_HWPT_DATA_NONE && cmd.data_len) || (cmd.data_type !== IOMMU_HWPT_DATA_NONE && !cmd.data_len)) {
    return EINVAL;
  }
  const idev = ictx.getObject<BoundDevice>(cmd.dev_id, 'DEVICE');
  if (typeof idev === 'number') return idev;
  try {
    const pt = ictx.getObject(cmd.pt_id, 'ANY');
    if (typeof pt === 'number') return EINVAL;
    try {
      const userData: IommuUserData = { type: cmd.data_type, uptr: cmd.data_uptr, len: cmd.data_len, user: ictx.process };
      let hwpt: Hwpt;
      if (pt.type === 'IOAS') {
        const r = hwptPagingAlloc(ictx, pt as Ioas, idev, undefined, cmd.flags, false, cmd.data_len ? userData : undefined);
        if (typeof r === 'number') return r;
        hwpt = r.hwpt;
      } else if (pt instanceof HwptPaging) {
        const r = hwptNestedAlloc(ictx, pt, idev, cmd.flags, userData);
        if (typeof r === 'number') return r;
        hwpt = r;
      } else if (pt.type === 'VIOMMU') {
        const viommu = pt as Viommu;
        if (viommu.iommuDev !== idev.dev.iommu) return EINVAL;
        const r = viommuHwptNestedAlloc(ictx, viommu, cmd.flags, userData);
        if (typeof r === 'number') return r;
        hwpt = r;
      } else return EINVAL;

      if (cmd.flags & IOMMU_HWPT_FAULT_ID_VALID) {
        const fault = ictx.getObject<Fault>(cmd.fault_id, 'FAULT');
        if (typeof fault === 'number') {
          ictx.abortAndDestroy(hwpt);
          return fault;
        }
        hwpt.fault = fault;
        hwpt.domain.iopfHandler = (group) => fault.iopfHandler(group);
        pinObject(hwpt, fault);
        ictx.putObject(fault);
      }
      cmd.out_hwpt_id = hwpt.id;
      const rc = ucmd.respond();
      if (rc) {
        ictx.abortAndDestroy(hwpt);
        return rc;
      }
      ictx.finalize(hwpt);
      return 0;
    } finally {
      ictx.putObject(pt);
    }
  } finally {
    ictx.putObject(idev);
  }
}

/** IOMMU_HWPT_INVALIDATE: `entry_num` is always written back. */
export function iommufdHwptInvalidate(ucmd: Ucmd<Cmd<typeof iommu_hwpt_invalidate>>): 0 | Errno {
  const cmd = ucmd.cmd;
  const ictx = ucmd.ictx;
  const array: IommuUserDataArray = {
    type: cmd.data_type,
    uptr: cmd.data_uptr,
    entryLen: cmd.entry_len,
    entryNum: cmd.entry_num,
    user: ictx.process,
  };
  let done = 0;
  const rc = ((): 0 | Errno => {
    if (cmd.__reserved) return EOPNOTSUPP;
    if (cmd.entry_num && (!cmd.data_uptr || !cmd.entry_len)) return EINVAL;
    const pt = ictx.getObject(cmd.hwpt_id, 'ANY');
    if (typeof pt === 'number') return pt;
    const obs = ictx.core.observer;
    try {
      let r: 0 | Errno;
      if (pt instanceof HwptNested) {
        const inv = pt.domain.ops.cacheInvalidateUser;
        if (!inv) return EOPNOTSUPP;
        obs?.opBegin('cacheInvalidateUser', { domain: pt.id, type: array.type, entries: array.entryNum });
        r = inv(pt.domain, array);
        obs?.opEnd('cacheInvalidateUser', r);
      } else if (pt.type === 'VIOMMU') {
        const v = pt as Viommu;
        const inv = v.core.ops?.cacheInvalidate;
        if (!inv) return EOPNOTSUPP;
        obs?.opBegin('cacheInvalidate', { viommu: v.id, type: array.type, entries: array.entryNum });
        r = inv(v.core, array);
        obs?.opEnd('cacheInvalidate', r);
      } else return EINVAL;
      done = array.entryNum;
      return r;
    } finally {
      ictx.putObject(pt);
    }
  })();
  cmd.entry_num = done;
  if (ucmd.respond()) return EFAULT;
  return rc;
}

/** IOMMU_HWPT_SET_DIRTY_TRACKING (`__reserved` is not checked by the kernel). */
export function iommufdHwptSetDirtyTracking(ucmd: Ucmd<Cmd<typeof iommu_hwpt_set_dirty_tracking>>): 0 | Errno {
  const cmd = ucmd.cmd;
  if (cmd.flags & ~IOMMU_HWPT_DIRTY_TRACKING_ENABLE) return EOPNOTSUPP;
  const hwpt = ucmd.ictx.getObject<HwptPaging>(cmd.hwpt_id, 'HWPT_PAGING');
  if (typeof hwpt === 'number') return hwpt;
  try {
    const ops = hwpt.domain.dirtyOps;
    if (!ops) return EOPNOTSUPP;
    const enable = (cmd.flags & IOMMU_HWPT_DIRTY_TRACKING_ENABLE) !== 0;
    if (enable) {
      // iopt_clear_dirty_data: start from a clean slate.
      for (const a of hwpt.ioas.iopt.areas) readAndClearDirty(hwpt, ops, a.start, a.last - a.start + 1n, 0, { record: () => undefined });
    }
    const obs = hwpt.ictx.core.observer;
    obs?.opBegin('setDirtyTracking', { domain: hwpt.id, enable: enable ? 1 : 0 });
    const rc = ops.setDirtyTracking(hwpt.domain, enable);
    obs?.opEnd('setDirtyTracking', rc);
    return rc;
  } finally {
    ucmd.ictx.putObject(hwpt);
  }
}

/** IOMMU_HWPT_GET_DIRTY_BITMAP: per-area driver errors are swallowed, as in the kernel. */
export function iommufdHwptGetDirtyBitmap(ucmd: Ucmd<Cmd<typeof iommu_hwpt_get_dirty_bitmap>>): 0 | Errno {
  const cmd = ucmd.cmd;
  const ictx = ucmd.ictx;
  if (cmd.flags & ~IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR || cmd.__reserved) return EOPNOTSUPP;
  const hwpt = ictx.getObject<HwptPaging>(cmd.hwpt_id, 'HWPT_PAGING');
  if (typeof hwpt === 'number') return hwpt;
  try {
    const iopt = hwpt.ioas.iopt;
    // iommufd_check_iova_range: `length - 1` is u64 arithmetic, so length 0 wraps and only
    // iova 0 survives the overflow check (it then covers the whole address space).
    const last = cmd.iova + BigInt.asUintN(64, cmd.length - 1n);
    if (last > ULONG_MAX) return EOVERFLOW;
    const end = BigInt.asUintN(64, last + 1n);
    const align = iopt.iovaAlignment;
    if (cmd.iova % align || end % align) return EINVAL;
    if (cmd.page_size === 0n) return EINVAL;
    if (cmd.iova % cmd.page_size || end % cmd.page_size) return EINVAL;
    const ops = hwpt.domain.dirtyOps;
    if (!ops) return EOPNOTSUPP;
    // iova_bitmap walks the user bitmap in chunks, pinning each for writing: a first chunk
    // that cannot be pinned fails iova_bitmap_alloc (ENOMEM); a later one ends the walk with
    // EFAULT after the IOVA covered so far has been read (and cleared) and its bits set.
    const nbits = (last - cmd.iova) / cmd.page_size + 1n;
    const nbytes = ((nbits + 63n) / 64n) * 8n;
    const writable = bitmapWritableBytes(ictx.process, cmd.data, nbytes);
    if (writable === 0n) return ENOMEM;
    // min(bits of the writable bytes, nbits): the last word may hold bits past nbits.
    const coveredBits = writable * 8n < nbits ? writable * 8n : nbits;
    const coveredLast = cmd.iova + coveredBits * cmd.page_size - 1n;
    // Only the u64 words that get a bit are read and written back: the bitmap of a huge
    // range is never materialized, and bits are only ever set, never cleared.
    const words = new Map<bigint, bigint>();
    const record = (iova: bigint, length: bigint): void => {
      let from = iova < cmd.iova ? cmd.iova : iova;
      const to = iova + length - 1n > coveredLast ? coveredLast : iova + length - 1n;
      for (; from <= to; from += cmd.page_size) {
        const bit = (from - cmd.iova) / cmd.page_size;
        words.set(bit / 64n, (words.get(bit / 64n) ?? 0n) | (1n << (bit % 64n)));
      }
    };
    for (const a of iopt.areas) {
      if (a.last < cmd.iova || a.start > coveredLast) continue;
      const s = a.start < cmd.iova ? cmd.iova : a.start;
      const e = a.last > coveredLast ? coveredLast : a.last;
      readAndClearDirty(hwpt, ops, s, e - s + 1n, Number(cmd.flags & IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR), { record });
    }
    for (const [index, bits] of words) {
      const at = cmd.data + index * 8n;
      const cur = ictx.process.copyFromUser(at, 8);
      if (typeof cur === 'number') continue;
      const view = new DataView(cur.buffer, cur.byteOffset, 8);
      view.setBigUint64(0, view.getBigUint64(0, true) | bits, true);
      ictx.process.copyToUser(at, cur);
    }
    return writable >= nbytes ? 0 : EFAULT;
  } finally {
    ictx.putObject(hwpt);
  }
}

/**
 * How many bytes of the user bitmap at `data` (of `nbytes`) can be pinned for writing before
 * the first page that cannot: the process's answer when it gives one, else (a process model
 * without {@link KernelProcess.writableExtent}) the first byte probed and the rest assumed.
 */
function bitmapWritableBytes(process: KernelProcess, data: bigint, nbytes: bigint): bigint {
  if (process.writableExtent) return process.writableExtent(data, nbytes);
  const first = process.copyFromUser(data, 1);
  return typeof first === 'number' || process.copyToUser(data, first) ? 0n : nbytes;
}

/** The driver's `read_and_clear_dirty` over one range (its errors are swallowed by both callers, as in the kernel). */
function readAndClearDirty(hwpt: HwptPaging, ops: IommuDirtyOps, iova: bigint, length: bigint, flags: number, dirty: IommuDirtyBitmap): void {
  const obs = hwpt.ictx.core.observer;
  obs?.opBegin('readAndClearDirty', { domain: hwpt.id, iova: `0x${iova.toString(16)}`, length: `0x${length.toString(16)}`, flags });
  const rc = ops.readAndClearDirty(hwpt.domain, iova, length, flags, dirty);
  obs?.opEnd('readAndClearDirty', rc);
}
