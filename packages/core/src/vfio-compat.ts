/**
 * The VFIO type1 container ioctls /dev/iommu also answers (vfio_compat.c), for request
 * numbers below the iommufd range. They act on the compat IOAS (IOMMU_VFIO_IOAS), which
 * the legacy VFIO group path creates with {@link iommufdVfioCompatIoasCreate}.
 */
import {
  EFAULT,
  EINVAL,
  ENODEV,
  ENOTTY,
  EOVERFLOW,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  VFIO_API_VERSION,
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_CC_IOMMU,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_GET_API_VERSION,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SET_IOMMU,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL,
  vfio_info_cap_header,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_info,
  vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_info_dma_avail,
  vfio_iova_range,
  vfio_iommu_type1_dma_unmap,
} from '@iommufd/uapi';
import type { Errno } from './kernel.js';
import type { IommufdContext, IommufdCtxImpl } from './context.js';
import { ioasAlloc, mapUserPages, type Ioas } from './ioas.js';
import { PAGE_SIZE, ULONG_MAX } from './io-pagetable.js';

/** `get_compat_ioas`: the compat IOAS with a short-term reference, or ENODEV. */
function getCompatIoas(ictx: IommufdCtxImpl): Ioas | Errno {
  const ioas = ictx.vfioIoas;
  if (!ioas) return ENODEV;
  const got = ictx.getObject<Ioas>(ioas.id, 'IOAS');
  return typeof got === 'number' ? ENODEV : got;
}

/**
 * `iommufd_vfio_compat_ioas_create`: the legacy group path (VFIO_GROUP_SET_CONTAINER)
 * creates the compat IOAS on first use; returns its ID.
 */
export function iommufdVfioCompatIoasCreate(ctx: IommufdContext): number | Errno {
  const ictx = ctx as IommufdCtxImpl;
  if (ictx.vfioIoas) return ictx.vfioIoas.id;
  const ioas = ioasAlloc(ictx);
  if (typeof ioas === 'number') return ioas;
  ictx.vfioIoas = ioas;
  ictx.finalize(ioas);
  return ioas.id;
}

/** `iommufd_vfio_ioctl`: 0/positive or -errno; unknown → ENOTTY. */
export function vfioCompatIoctl(ictx: IommufdCtxImpl, request: number, arg: bigint): number {
  switch (request >>> 0) {
    case VFIO_GET_API_VERSION:
      return VFIO_API_VERSION;
    case VFIO_CHECK_EXTENSION:
      return checkExtension(ictx, Number(arg));
    case VFIO_SET_IOMMU:
      return negate(setIommu(ictx, Number(arg)));
    case VFIO_IOMMU_MAP_DMA:
      return negate(mapDma(ictx, arg));
    case VFIO_IOMMU_UNMAP_DMA:
      return negate(unmapDma(ictx, arg));
    case VFIO_IOMMU_GET_INFO:
      return negate(getInfo(ictx, arg));
    default:
      return -ENOTTY;
  }
}

/** 0 or -errno (never -0). */
function negate(rc: 0 | Errno): number {
  return rc ? -rc : 0;
}

function checkExtension(ictx: IommufdCtxImpl, type: number): number {
  switch (type) {
    case VFIO_TYPE1_IOMMU:
    case VFIO_TYPE1v2_IOMMU:
    case VFIO_UNMAP_ALL:
      return 1;
    case VFIO_DMA_CC_IOMMU: {
      // Coherent only if every domain of the compat IOAS enforces cache coherency.
      const ioas = getCompatIoas(ictx);
      if (typeof ioas === 'number') return -ioas;
      const cc = ioas.hwptList.every((h) => h.enforceCacheCoherency) ? 1 : 0;
      ictx.putObject(ioas);
      return cc;
    }
    default:
      return 0;
  }
}

/** VFIO_SET_IOMMU: TYPE1 is emulated by disabling large pages so any range can be unmapped. */
function setIommu(ictx: IommufdCtxImpl, type: number): 0 | Errno {
  if (type !== VFIO_TYPE1_IOMMU && type !== VFIO_TYPE1v2_IOMMU) return EINVAL;
  const ioas = getCompatIoas(ictx);
  if (typeof ioas === 'number') return ioas;
  let rc: 0 | Errno = 0;
  // TYPE1 may unmap inside a mapping: emulated by never using large IOPTEs.
  if (type === VFIO_TYPE1_IOMMU) rc = ioas.iopt.disableLargePagesChecked();
  ictx.putObject(ioas);
  return rc;
}

function mapDma(ictx: IommufdCtxImpl, arg: bigint): 0 | Errno {
  const minsz = vfio_iommu_type1_dma_map.offsetOfEnd('size');
  const bytes = ictx.process.copyFromUser(arg, minsz);
  if (typeof bytes === 'number') return EFAULT;
  const map = vfio_iommu_type1_dma_map.decode(bytes);
  if (map.argsz < minsz || map.flags & ~(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)) return EINVAL;
  let flags = IOMMU_IOAS_MAP_FIXED_IOVA;
  if (map.flags & VFIO_DMA_MAP_FLAG_READ) flags |= IOMMU_IOAS_MAP_READABLE;
  if (map.flags & VFIO_DMA_MAP_FLAG_WRITE) flags |= IOMMU_IOAS_MAP_WRITEABLE;
  const ioas = getCompatIoas(ictx);
  if (typeof ioas === 'number') return ioas;
  try {
    if (map.size === 0n) return EINVAL;
    if (map.vaddr + map.size > ULONG_MAX) return EOVERFLOW;
    const r = mapUserPages(ioas, flags, map.iova, map.vaddr, map.size);
    return typeof r === 'number' ? r : 0;
  } finally {
    ictx.putObject(ioas);
  }
}

function unmapDma(ictx: IommufdCtxImpl, arg: bigint): 0 | Errno {
  const minsz = vfio_iommu_type1_dma_unmap.offsetOfEnd('size');
  const bytes = ictx.process.copyFromUser(arg, minsz);
  if (typeof bytes === 'number') return EFAULT;
  const unmap = vfio_iommu_type1_dma_unmap.decode(bytes);
  if (unmap.argsz < minsz || unmap.flags & ~VFIO_DMA_UNMAP_FLAG_ALL) return EINVAL;
  const ioas = getCompatIoas(ictx);
  if (typeof ioas === 'number') return ioas;
  try {
    let rc: 0 | Errno;
    let unmapped = 0n;
    if (unmap.flags & VFIO_DMA_UNMAP_FLAG_ALL) {
      if (unmap.iova !== 0n || unmap.size !== 0n) return EINVAL;
      const r = ioas.iopt.unmapAll((a) => ioas.accessesOf(a));
      rc = r.rc;
      unmapped = r.unmapped;
    } else {
      if (ioas.iopt.disableLargePages) {
        // TYPE1 may unmap inside a mapping: cut at both ends of the range first.
        const cuts = [unmap.iova + unmap.size - 1n, unmap.iova - 1n];
        const cutRc = ioas.iopt.cutIova(unmap.iova ? cuts : cuts.slice(0, 1));
        if (cutRc) return cutRc;
      }
      if (unmap.size === 0n) rc = EINVAL;
      else if (unmap.iova + unmap.size - 1n > ULONG_MAX) rc = EOVERFLOW;
      else {
        const r = ioas.iopt.unmapRange(unmap.iova, unmap.iova + unmap.size - 1n, (a) => ioas.accessesOf(a));
        rc = r.rc;
        unmapped = r.unmapped;
      }
    }
    unmap.size = unmapped;
    if (ictx.process.copyToUser(arg, vfio_iommu_type1_dma_unmap.encode(unmap).subarray(0, minsz))) rc = EFAULT;
    return rc;
  } finally {
    ictx.putObject(ioas);
  }
}

/** A capability filler: the capability's size, or -EFAULT (kernel style, so sizes and errors never mix). */
type FillCap = (ioas: Ioas, at: bigint | undefined, avail: number) => number;

/** `iommufd_fill_cap_dma_avail`: iommufd's limit is the memory cgroup, so U32_MAX. */
const fillCapDmaAvail: FillCap = (ioas, at, avail) => {
  const size = vfio_iommu_type1_info_dma_avail.size;
  const cap = vfio_iommu_type1_info_dma_avail.encode({ id: VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, version: 1, avail: 0xffffffff });
  if (at !== undefined && avail >= size && ioas.ictx.process.copyToUser(at, cap)) return -EFAULT;
  return size;
};

/** `iommufd_fill_cap_iova`: the holes of the reserved set, as IOMMU_IOAS_IOVA_RANGES reports them. */
const fillCapIova: FillCap = (ioas, at, avail) => {
  const head = vfio_iommu_type1_info_cap_iova_range.size;
  const ranges = ioas.iopt.usableRanges();
  let n = 0;
  for (const r of ranges) {
    if (at !== undefined && avail >= head + (n + 1) * vfio_iova_range.size) {
      const bytes = vfio_iova_range.encode({ start: r.start, end: r.last });
      if (ioas.ictx.process.copyToUser(at + BigInt(head + n * vfio_iova_range.size), bytes)) return -EFAULT;
    }
    n++;
  }
  const size = head + n * vfio_iova_range.size;
  if (at !== undefined && avail >= size) {
    const cap = vfio_iommu_type1_info_cap_iova_range.encode({ id: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, version: 1, nr_iovas: n });
    if (ioas.ictx.process.copyToUser(at, cap)) return -EFAULT;
  }
  return size;
};

/**
 * VFIO_IOMMU_GET_INFO: page sizes plus a capability chain (DMA_AVAIL, IOVA_RANGE). A short
 * `argsz` gets the fixed part with `argsz` raised to what the chain needs.
 */
function getInfo(ictx: IommufdCtxImpl, arg: bigint): 0 | Errno {
  let minsz = vfio_iommu_type1_info.offsetOfEnd('iova_pgsizes');
  const bytes = ictx.process.copyFromUser(arg, minsz);
  if (typeof bytes === 'number') return EFAULT;
  const info = vfio_iommu_type1_info.decode(bytes);
  if (info.argsz < minsz) return EINVAL;
  minsz = Math.min(info.argsz, vfio_iommu_type1_info.size);
  const ioas = getCompatIoas(ictx);
  if (typeof ioas === 'number') return ioas;
  try {
    info.flags = VFIO_IOMMU_INFO_PGSIZES;
    // As the kernel does (its own comment calls this approximate): the intersection of the domains' page sizes.
    let pgsizes = ULONG_MAX;
    for (const h of ioas.hwptList) pgsizes &= h.domain.pgsizeBitmap;
    // iommufd_get_pagesizes, as vfio_update_pgsize_bitmap: sizes below a CPU page are
    // reported as PAGE_SIZE; never below the IOAS's IOVA alignment.
    if (pgsizes & (PAGE_SIZE - 1n)) pgsizes = (pgsizes & ~(PAGE_SIZE - 1n) & ULONG_MAX) | PAGE_SIZE;
    if (ioas.iopt.iovaAlignment > pgsizes) pgsizes = ioas.iopt.iovaAlignment;
    info.iova_pgsizes = pgsizes;
    info.cap_offset = 0;
    let total = vfio_iommu_type1_info.size;
    let lastCap: bigint | undefined;
    for (const fill of [fillCapDmaAvail, fillCapIova]) {
      const size = info.argsz > total ? fill(ioas, arg + BigInt(total), info.argsz - total) : fill(ioas, undefined, 0);
      if (size < 0) return -size;
      const aligned = Math.ceil(size / 8) * 8;
      if (lastCap !== undefined && info.argsz >= total) {
        const next = new Uint8Array(4);
        new DataView(next.buffer).setUint32(0, total, true);
        if (ictx.process.copyToUser(lastCap + BigInt(vfio_info_cap_header.offsetOf('next')), next)) return EFAULT;
      }
      lastCap = arg + BigInt(total);
      total += aligned;
    }
    if (info.argsz >= total) info.cap_offset = vfio_iommu_type1_info.size;
    info.argsz = total;
    info.flags |= VFIO_IOMMU_INFO_CAPS;
    return ictx.process.copyToUser(arg, vfio_iommu_type1_info.encode(info).subarray(0, minsz)) ? EFAULT : 0;
  } finally {
    ictx.putObject(ioas);
  }
}
