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
import type { Errno, IommuDomain, IommuUserData, IommuUserDataArray } from '@iommufd/driver-api';
import type { IommufdCtxImpl, Ucmd } from './context.js';
import { IommufdObject, pinObject, unpinObject } from './object.js';
import type { BoundDevice } from './device.js';
import type { Ioas } from './ioas.js';
import type { Viommu } from './viommu.js';
import type { Fault } from './eventq.js';
import { ULONG_MAX } from './io-pagetable.js';

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
    if (this.domain) this.domain.ops.free?.(this.domain);
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
    if (this.domain) this.domain.ops.free?.(this.domain);
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
  const domain = ops.domainAllocPagingFlags
    ? ops.domainAllocPagingFlags(dev, flags & ~IOMMU_HWPT_FAULT_ID_VALID, userData)
    : EOPNOTSUPP;
  if (typeof domain === 'number') return fail(domain);
  hwpt.domain = domain;
  domain.owner = ops;
  domain.cookie = hwpt;
  if (idev.enforceCacheCoherency) {
    const ok = domain.ops.enforceCacheCoherency?.(domain) ?? false;
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
  const domain = ops.domainAllocNested(idev.dev, parent.domain, flags & ~IOMMU_HWPT_FAULT_ID_VALID, userData);
  if (typeof domain === 'number') {
    ictx.abortAndDestroy(hwpt);
    return domain;
  }
  hwpt.domain = domain;
  domain.owner = ops;
  domain.cookie = hwpt;
  if (domain.type !== 'nested') {
    ictx.abortAndDestroy(hwpt);
    return EOPNOTSUPP;
  }
  return hwpt;
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
  const domain = vops.allocDomainNested(viommu.core, flags & ~IOMMU_HWPT_FAULT_ID_VALID, userData);
  if (typeof domain === 'number') {
    ictx.abortAndDestroy(hwpt);
    return domain;
  }
  hwpt.domain = domain;
  domain.owner = viommu.iommuDev.ops;
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
    try {
      let r: 0 | Errno;
      if (pt instanceof HwptNested) {
        const inv = pt.domain.ops.cacheInvalidateUser;
        if (!inv) return EOPNOTSUPP;
        r = inv(pt.domain, array);
      } else if (pt.type === 'VIOMMU') {
        const v = pt as Viommu;
        const inv = v.core.ops?.cacheInvalidate;
        if (!inv) return EOPNOTSUPP;
        r = inv(v.core, array);
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
      for (const a of hwpt.ioas.iopt.areas) {
        ops.readAndClearDirty(hwpt.domain, a.start, a.last - a.start + 1n, 0, { record: () => undefined });
      }
    }
    return ops.setDirtyTracking(hwpt.domain, enable);
  } finally {
    ucmd.ictx.putObject(hwpt);
  }
}

/** Bitmaps up to this size are read, filled and written back whole. */
const BITMAP_WHOLE_MAX = 1n << 20n;
/** Bytes of a larger bitmap handled at a time (Linux's iova_bitmap pins it in chunks too). */
const BITMAP_CHUNK = 1n << 16n;

/**
 * A bitmap of a garbage-sized range (up to 2^49 bytes for a 2^64-byte range) is never one
 * buffer: its user pages are read chunk by chunk first (ENOMEM at the first unmapped one, as
 * the whole-bitmap path answers), the dirty bits collected sparsely, then each chunk is
 * written back with its bits (EFAULT at the first chunk that cannot be written).
 */
function getDirtyBitmapChunked(
  ictx: IommufdCtxImpl,
  data: bigint,
  nbytes: bigint,
  readDirty: (record: (iova: bigint, length: bigint) => void) => void,
  bitsOf: (iova: bigint, length: bigint, set: (bit: bigint) => void) => void,
): 0 | Errno {
  for (let off = 0n; off < nbytes; off += BITMAP_CHUNK) {
    const n = nbytes - off < BITMAP_CHUNK ? nbytes - off : BITMAP_CHUNK;
    if (typeof ictx.process.copyFromUser(data + off, Number(n)) === 'number') return ENOMEM;
  }
  const words = new Map<bigint, bigint>();
  readDirty((iova, length) =>
    bitsOf(iova, length, (bit) => {
      const w = bit / 64n;
      words.set(w, (words.get(w) ?? 0n) | (1n << (bit % 64n)));
    }),
  );
  for (let off = 0n; off < nbytes; off += BITMAP_CHUNK) {
    const n = nbytes - off < BITMAP_CHUNK ? nbytes - off : BITMAP_CHUNK;
    const chunk = ictx.process.copyFromUser(data + off, Number(n));
    if (typeof chunk === 'number') return EFAULT;
    const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    for (let w = off / 8n; w < (off + n) / 8n; w++) {
      const bits = words.get(w);
      if (bits !== undefined) view.setBigUint64(Number(w * 8n - off), view.getBigUint64(Number(w * 8n - off), true) | bits, true);
    }
    if (ictx.process.copyToUser(data + off, chunk)) return EFAULT;
  }
  return 0;
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
    const lastFull = cmd.iova + cmd.length - 1n;
    if (lastFull > ULONG_MAX || lastFull < 0n) return EOVERFLOW;
    const last = lastFull;
    const end = BigInt.asUintN(64, last + 1n);
    const align = iopt.iovaAlignment;
    if (cmd.iova % align || end % align) return EINVAL;
    if (cmd.page_size === 0n) return EINVAL;
    if (cmd.iova % cmd.page_size || end % cmd.page_size) return EINVAL;
    const ops = hwpt.domain.dirtyOps;
    if (!ops) return EOPNOTSUPP;
    const nbits = (last - cmd.iova) / cmd.page_size + 1n;
    const nbytes = ((nbits + 63n) / 64n) * 8n;
    const readDirty = (record: (iova: bigint, length: bigint) => void): void => {
      for (const a of iopt.areas) {
        if (a.last < cmd.iova || a.start > last) continue;
        const s = a.start < cmd.iova ? cmd.iova : a.start;
        const e = a.last > last ? last : a.last;
        ops.readAndClearDirty(hwpt.domain, s, e - s + 1n, Number(cmd.flags & IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR), { record });
      }
    };
    const bitsOf = (iova: bigint, length: bigint, set: (bit: bigint) => void): void => {
      let from = iova < cmd.iova ? cmd.iova : iova;
      const to = iova + length - 1n > last ? last : iova + length - 1n;
      for (; from <= to; from += cmd.page_size) set((from - cmd.iova) / cmd.page_size);
    };
    if (nbytes > BITMAP_WHOLE_MAX) return getDirtyBitmapChunked(ictx, cmd.data, nbytes, readDirty, bitsOf);
    const bitmap = ictx.process.copyFromUser(cmd.data, Number(nbytes));
    if (typeof bitmap === 'number') return ENOMEM;
    const words = new DataView(bitmap.buffer, bitmap.byteOffset, bitmap.byteLength);
    readDirty((iova, length) =>
      bitsOf(iova, length, (bit) => {
        const w = Number(bit / 64n) * 8;
        words.setBigUint64(w, words.getBigUint64(w, true) | (1n << (bit % 64n)), true);
      }),
    );
    return ictx.process.copyToUser(cmd.data, bitmap) ? EFAULT : 0;
  } finally {
    ictx.putObject(hwpt);
  }
}
