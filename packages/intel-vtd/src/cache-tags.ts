/**
 * Cache tags (cache.c): each attachment leaves tags on the domain saying which hardware
 * caches may hold its translations — IOTLB (unit, DID, PASID), DEVTLB (device, PASID) and,
 * on a nesting parent, NESTING_IOTLB / NESTING_DEVTLB carrying the nested domain's DID.
 * A range flush walks the tags and batches the descriptors Linux issues.
 */
import type { DeviceDomainInfo, IntelIommu } from './iommu.js';
import { IOMMU_NO_PASID } from './iommu.js';
import {
  IOTLB_GRAN,
  MAX_AGAW_PFN_WIDTH,
  qiDescDevIotlb,
  qiDescDevIotlbPasid,
  qiDescPiotlb,
  type QiDesc,
} from './qi.js';

/** `enum cache_tag_type` */
export type CacheTagType = 'IOTLB' | 'DEVTLB' | 'NESTING_IOTLB' | 'NESTING_DEVTLB';

/** `struct cache_tag` */
export interface CacheTag {
  /** Kind of cache. */
  readonly type: CacheTagType;
  /** The unit whose caches are meant. */
  readonly iommu: IntelIommu;
  /** Domain ID the entries are tagged with. */
  readonly did: number;
  /** PASID of the attachment. */
  readonly pasid: number;
  /** The device (device-TLB tags only). */
  readonly info: DeviceDomainInfo | undefined;
  /** Attachments sharing this tag. */
  users: number;
}

/** `QI_MAX_BATCHED_DESC_COUNT` */
const QI_MAX_BATCHED_DESC_COUNT = 16;

/** `cache_tag_assign`: adds (or references) a tag, keeping a unit's tags together. */
export function cacheTagAssign(tags: CacheTag[], type: CacheTagType, iommu: IntelIommu, did: number, pasid: number, info: DeviceDomainInfo | undefined): void {
  let prev = -1;
  for (let i = 0; i < tags.length; i++) {
    const t = tags[i]!;
    if (t.iommu === iommu && t.type === type && t.did === did && t.pasid === pasid && t.info === info) {
      t.users++;
      return;
    }
    if (t.iommu === iommu) prev = i;
  }
  tags.splice(prev + 1, 0, { type, iommu, did, pasid, info, users: 1 });
}

/** `cache_tag_unassign` */
export function cacheTagUnassign(tags: CacheTag[], type: CacheTagType, iommu: IntelIommu, did: number, pasid: number, info: DeviceDomainInfo | undefined): void {
  const i = tags.findIndex((t) => t.iommu === iommu && t.type === type && t.did === did && t.pasid === pasid && t.info === info);
  if (i < 0) return;
  const t = tags[i]!;
  if (--t.users === 0) tags.splice(i, 1);
}

/** `calculate_psi_aligned_address`: the PSI base, page count and address mask covering [start, end]. */
export function calculatePsiAlignedAddress(start: bigint, end: bigint): { addr: bigint; pages: bigint; mask: number } {
  const size = BigInt.asUintN(64, end - start + 1n);
  const pages = ((start & 0xfffn) + size + 0xfffn) >> 12n;
  let aligned = 1n;
  while (aligned < pages) aligned <<= 1n;
  const bitmask = aligned - 1n;
  let mask = 0;
  for (let a = aligned; a > 1n; a >>= 1n) mask++;
  const pfn = start >> 12n;
  if ((bitmask & pfn) !== 0n) {
    const endPfn = pfn + pages - 1n;
    const shared = BigInt.asUintN(64, ~(pfn ^ endPfn) & ~bitmask);
    if (shared === 0n) mask = MAX_AGAW_PFN_WIDTH;
    else {
      mask = 0;
      while (((shared >> BigInt(mask)) & 1n) === 0n) mask++;
    }
    aligned = 1n << BigInt(mask);
  }
  const span = 4096n << BigInt(mask);
  return { addr: BigInt.asUintN(64, start & ~(span - 1n)), pages: aligned, mask };
}

/** `struct qi_batch`: descriptors collected per unit, submitted 16 at a time. */
class QiBatchCollector {
  private iommu: IntelIommu | undefined;
  private descs: QiDesc[] = [];
  add(iommu: IntelIommu, d: QiDesc): void {
    if (this.iommu !== iommu) this.flush();
    this.iommu = iommu;
    this.descs.push(d);
    if (this.descs.length === QI_MAX_BATCHED_DESC_COUNT) this.flush();
  }
  flush(): void {
    if (this.iommu !== undefined && this.descs.length > 0) this.iommu.qi.submitSync(this.descs);
    this.descs = [];
  }
}

/**
 * `cache_tag_flush_range(domain, start, end, ih)`. `usePiotlb` is
 * `intel_domain_use_piotlb`: first-stage and nested domains flush with PASID-based IOTLB
 * descriptors, second-stage ones with type-2 PSI/DSI.
 */
export function cacheTagFlushRange(tags: readonly CacheTag[], usePiotlb: boolean, start: bigint, end: bigint, ih: number): void {
  let addr: bigint;
  let pages: bigint;
  let mask: number;
  if (start === 0n && end === (1n << 64n) - 1n) {
    addr = 0n;
    pages = -1n;
    mask = MAX_AGAW_PFN_WIDTH;
  } else ({ addr, pages, mask } = calculatePsiAlignedAddress(start, end));
  const batch = new QiBatchCollector();
  for (const tag of tags) {
    const iommu = tag.iommu;
    switch (tag.type) {
      case 'IOTLB':
      case 'NESTING_IOTLB':
        if (usePiotlb && tag.type === 'IOTLB') {
          batch.add(iommu, mask >= MAX_AGAW_PFN_WIDTH ? qiDescPiotlb(tag.did, tag.pasid, 0n, -1n, 0) : qiDescPiotlb(tag.did, tag.pasid, addr, pages, ih));
        } else if (iommu.capField('PSI') === 0 || mask > iommu.capField('MAMV') || pages === -1n) {
          batch.add(iommu, iommu.descIotlb(tag.did, 0n, 0, IOTLB_GRAN.DSI));
        } else {
          batch.add(iommu, iommu.descIotlb(tag.did, addr | BigInt(ih << 6), mask, IOTLB_GRAN.PSI));
        }
        break;
      case 'NESTING_DEVTLB':
      case 'DEVTLB': {
        if (tag.type === 'NESTING_DEVTLB') {
          // An S2 change may affect any nested translation the device cached: flush it all
          // (and, as in cache.c, the widened range sticks for the tags after this one).
          addr = 0n;
          mask = MAX_AGAW_PFN_WIDTH;
        }
        const info = tag.info;
        if (info === undefined || !info.atsEnabled) break;
        if (tag.pasid === IOMMU_NO_PASID) batch.add(iommu, qiDescDevIotlb(info.sid, iommu.pfsidOf(info), info.atsQdep, addr, mask));
        else batch.add(iommu, qiDescDevIotlbPasid(info.sid, iommu.pfsidOf(info), tag.pasid, info.atsQdep, addr, mask));
        break;
      }
    }
  }
  batch.flush();
}
