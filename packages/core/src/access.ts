/**
 * ACCESS objects (device.c `iommufd_access_*`): in-kernel users of an IOAS's pages — mdev
 * style drivers, the selftest's ACCESS_* commands, and the core itself for HW queue memory
 * (an *internal* access that also locks the areas against unmap).
 */
import { EINVAL, ENOENT, EOVERFLOW, EPERM } from '@iommufd/uapi';
import { IOMMU_READ, IOMMU_WRITE, type Errno } from '@iommufd/driver-api';
import type { IommufdContext, IommufdCtxImpl } from './context.js';
import { IommufdObject, pinObject, unpinObject } from './object.js';
import { PAGE_SIZE, ULONG_MAX, type IoptAccess, type IoptArea } from './io-pagetable.js';
import type { Ioas } from './ioas.js';

/** What the owner of an access provides (`struct iommufd_access_ops`). */
export interface AccessOps {
  /** The owner pins pages (iova_alignment PAGE_SIZE), rather than only using rw. */
  readonly needsPin: boolean;
  /** User space unmapped `[iova, iova + length)`: the owner must unpin what it pinned there. */
  unmap(iova: bigint, length: bigint): void;
}

/** One outstanding pin of an access. */
export interface PinRecord {
  /** First IOVA pinned. */
  readonly iova: bigint;
  /** Bytes pinned. */
  readonly length: bigint;
  /** The areas covered, with the page indexes pinned in each. */
  readonly areas: IoptArea[];
  /** Page index range pinned in each area (parallel to `areas`). */
  readonly ranges: [number, number][];
  /** Also locks the areas against unmap (internal accesses). */
  readonly lock: boolean;
}

/** An ACCESS object. */
export class Access extends IommufdObject implements IoptAccess {
  /** `ACCESS` */
  readonly type = 'ACCESS' as const;
  /** The attached IOAS (pinned). */
  ioas: Ioas | undefined;
  /** PAGE_SIZE when pinning, else 1. */
  readonly iovaAlignment: bigint;
  /** Outstanding pins. */
  readonly pins: PinRecord[] = [];
  constructor(
    ictx: IommufdCtxImpl,
    /** The owner's callbacks. */
    readonly ops: AccessOps,
    /** Created by the core itself (HW queue): no ctx reference. */
    readonly internal: boolean,
  ) {
    super(ictx);
    this.iovaAlignment = ops.needsPin ? PAGE_SIZE : 1n;
  }

  /** {@inheritDoc IoptAccess.unmap} */
  unmap(iova: bigint, length: bigint): void {
    this.ops.unmap(iova, length);
  }

  /** Detach from the IOAS, dropping every pin. */
  detach(): void {
    const ioas = this.ioas;
    if (!ioas) return;
    for (const p of [...this.pins]) releasePin(this, p);
    ioas.accessPins.delete(this);
    ioas.iopt.removeAccess(this);
    unpinObject(this, ioas);
    this.ioas = undefined;
  }

  /** `iommufd_access_destroy_object`. */
  destroy(): void {
    this.detach();
    if (!this.internal) this.ictx.putFile();
  }
}

function releasePin(access: Access, p: PinRecord): void {
  p.areas.forEach((a, i) => {
    a.numAccesses--;
    if (p.lock) a.numLocks--;
    a.pages.unpin(p.ranges[i]![0], p.ranges[i]![1]);
  });
  access.pins.splice(access.pins.indexOf(p), 1);
  const set = access.ioas?.accessPins.get(access);
  if (set) {
    set.clear();
    for (const q of access.pins) for (const a of q.areas) set.add(a);
  }
}

/** Creates and attaches an access (`iommufd_access_create` + `iommufd_access_attach`). */
export function accessCreate(ictx: IommufdCtxImpl, ioasId: number, ops: AccessOps, internal: boolean): Access | Errno {
  const access = ictx.allocObject(new Access(ictx, ops, internal));
  if (typeof access === 'number') return access;
  const ioas = ictx.getObject<Ioas>(ioasId, 'IOAS');
  if (typeof ioas === 'number') {
    ictx.abort(access);
    return ioas;
  }
  const rc = ioas.iopt.addAccess(access);
  if (rc) {
    ictx.putObject(ioas);
    ictx.abort(access);
    return rc;
  }
  access.ioas = ioas;
  pinObject(access, ioas);
  ioas.accessPins.set(access, new Set());
  ictx.putObject(ioas);
  // The creator is a user until it destroys the access.
  access.users++;
  if (!internal) ictx.getFile();
  ictx.finalize(access);
  return access;
}

/**
 * `iommufd_access_pin_pages`: the PFN of every page of `[iova, iova + length)`. `lock`
 * (internal accesses) also makes the areas refuse IOAS_UNMAP with EBUSY.
 */
export function accessPinPages(access: Access, iova: bigint, length: bigint, write: boolean, lock = false): bigint[] | Errno {
  if (length === 0n) return EINVAL;
  const last = iova + length - 1n;
  if (last > ULONG_MAX) return EOVERFLOW;
  const ioas = access.ioas;
  if (!ioas) return ENOENT;
  const areas: IoptArea[] = [];
  let cur = iova;
  for (const a of ioas.iopt.areas) {
    if (a.last < cur || a.start > last) continue;
    if (a.start > cur) break;
    if (write && !(a.iommuProt & IOMMU_WRITE)) return EPERM;
    if (!write && !(a.iommuProt & IOMMU_READ)) return EPERM;
    areas.push(a);
    cur = a.last + 1n;
    if (cur > last) break;
  }
  if (cur <= last) return ENOENT;
  // Only the requested pages are pinned, not the whole areas.
  const ranges: [number, number][] = areas.map((a) => [
    a.pageIndexOf(a.start > iova ? a.start : iova),
    a.pageIndexOf(a.last < last ? a.last : last),
  ]);
  for (let i = 0; i < areas.length; i++) {
    const rc = areas[i]!.pages.pin(access.ictx, ranges[i]![0], ranges[i]![1]);
    if (rc) {
      for (let j = 0; j < i; j++) areas[j]!.pages.unpin(ranges[j]![0], ranges[j]![1]);
      return rc;
    }
  }
  const pfns: bigint[] = [];
  for (let pageIova = iova & ~(PAGE_SIZE - 1n); pageIova <= last; pageIova += PAGE_SIZE) {
    const at = pageIova < iova ? iova : pageIova;
    const area = areas.find((a) => a.start <= at && at <= a.last)!;
    pfns.push(area.physOf(at) / PAGE_SIZE);
  }
  for (const a of areas) {
    a.numAccesses++;
    if (lock) a.numLocks++;
  }
  access.pins.push({ iova, length, areas, ranges, lock });
  const set = ioas.accessPins.get(access);
  for (const a of areas) set?.add(a);
  return pfns;
}

/** `iommufd_access_unpin_pages`: releases the pin made with exactly this range. */
export function accessUnpinPages(access: Access, iova: bigint, length: bigint): void {
  const p = access.pins.find((x) => x.iova === iova && x.length === length);
  if (p) releasePin(access, p);
}

/** How {@link iommufdAccessRw} reaches the memory (`IOMMUFD_ACCESS_RW_*` besides WRITE). */
export interface AccessRwFlags {
  /** `IOMMUFD_ACCESS_RW_KTHREAD`: the caller may borrow the source process's mm. */
  readonly kthread?: boolean;
  /** The selftest's `__IOMMUFD_ACCESS_RW_SLOW_PATH`: always go through the pinned pages. */
  readonly slowPath?: boolean;
}

/**
 * `iommufd_access_rw`: copy to or from the memory mapped at `[iova, iova + bytes.length)`,
 * area by area (each must allow the direction: EPERM), from the areas' pages as their source
 * process or the pinned pages allow; ENOENT when the range is not fully mapped.
 */
export function accessRw(access: Access, iova: bigint, bytes: Uint8Array, write: boolean, flags: AccessRwFlags = {}): 0 | Errno {
  if (bytes.byteLength === 0) return EINVAL;
  const last = iova + BigInt(bytes.byteLength) - 1n;
  if (last > ULONG_MAX) return EOVERFLOW;
  const ioas = access.ioas;
  if (!ioas) return ENOENT;
  const ictx = access.ictx;
  const rwCtx = { current: ictx.process, directMap: ictx.core.directMap };
  let cur = iova;
  while (cur <= last) {
    const a = ioas.iopt.areas.find((x) => x.start <= cur && cur <= x.last);
    if (!a) return ENOENT;
    if (!(a.iommuProt & (write ? IOMMU_WRITE : IOMMU_READ))) return EPERM;
    const end = a.last < last ? a.last : last;
    const off = Number(cur - iova);
    const len = Number(end - cur + 1n);
    const rc = a.pages.rw(rwCtx, a.pagesByteOffset + (cur - a.start), bytes.subarray(off, off + len), write, flags);
    if (rc) return rc;
    cur = end + 1n;
  }
  return 0;
}

/** The in-kernel access API for external users (selftest ACCESS_* commands). */
export function iommufdAccessCreate(ctx: IommufdContext, ioasId: number, ops: AccessOps): { access: Access; id: number } | Errno {
  const a = accessCreate(ctx as IommufdCtxImpl, ioasId, ops, false);
  return typeof a === 'number' ? a : { access: a, id: a.id };
}
/** `iommufd_access_pin_pages` for external users. */
export function iommufdAccessPinPages(access: Access, iova: bigint, length: bigint, write: boolean): bigint[] | Errno {
  return accessPinPages(access, iova, length, write);
}
/** `iommufd_access_unpin_pages` for external users. */
export function iommufdAccessUnpinPages(access: Access, iova: bigint, length: bigint): void {
  accessUnpinPages(access, iova, length);
}
/** `iommufd_access_rw` for external users. */
export function iommufdAccessRw(access: Access, iova: bigint, bytes: Uint8Array, write: boolean, flags: AccessRwFlags = {}): 0 | Errno {
  return accessRw(access, iova, bytes, write, flags);
}
/**
 * `iommufd_access_replace`: move the access to another IOAS. The owner is told that
 * everything it pinned went away (its unmap callback over the whole range) before the
 * old IOAS is left.
 */
export function iommufdAccessReplace(access: Access, ioasId: number): 0 | Errno {
  const ictx = access.ictx;
  const next = ictx.getObject<Ioas>(ioasId, 'IOAS');
  if (typeof next === 'number') return next;
  try {
    if (access.ioas === next) return 0;
    const rc = next.iopt.addAccess(access);
    if (rc) return rc;
    if (access.pins.length) access.ops.unmap(0n, ULONG_MAX);
    access.detach();
    access.ioas = next;
    pinObject(access, next);
    next.accessPins.set(access, new Set());
    return 0;
  } finally {
    ictx.putObject(next);
  }
}

/** `iommufd_access_destroy`. */
export function iommufdAccessDestroy(access: Access): void {
  access.ictx.destroyUser(access);
}
