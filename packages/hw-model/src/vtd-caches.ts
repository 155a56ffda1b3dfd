/**
 * VT-d translation caches: context-cache, PASID-cache, IOTLB and the device-TLB of ATS
 * endpoints. They are filled by walks and emptied only by the invalidations the
 * architecture defines (queued descriptors, CCMD/IOTLB registers, SRTP), so a missing
 * invalidation leaves a stale entry that DMA observes. In strict mode they never evict;
 * otherwise each holds a bounded number of entries and evicts the oldest. The device-TLB
 * lives in the endpoint ({@link AddressTranslationCache} of an ATS {@link PciDevice}) and is
 * reached through device-TLB invalidation descriptors.
 */

import { HardwareCache } from './cache.js';
import { pageOf } from './address.js';
import type { FieldLayoutValue } from './vtd-bitfields.js';
import type { VtdContextEntry, VtdPasidEntry, VtdSmContextEntry } from './vtd-tables.js';

/** Decoded scalable-mode context entry. */
export type VtdSmContextFields = FieldLayoutValue<typeof VtdSmContextEntry.specs>;
/** Decoded legacy context entry. */
export type VtdContextFields = FieldLayoutValue<typeof VtdContextEntry.specs>;
/** Decoded PASID-table entry. */
export type VtdPasidFields = FieldLayoutValue<typeof VtdPasidEntry.specs>;
import type { AddressTranslationCache, PciDevice } from './pci.js';

/** A cached context entry (legacy or scalable), keyed by source id. */
export interface VtdContextCacheEntry {
  /** Requester id (bus·256 + devfn). */
  readonly sid: number;
  /** Scalable-mode entry (256 bit) or legacy (128 bit). */
  readonly scalable: boolean;
  /** Domain id (legacy entries; 0 in scalable mode, where DIDs live in PASID entries). */
  readonly did: number;
  /** The raw entry words. */
  readonly words: readonly bigint[];
  /** The entry decoded (scalable-mode layout), when `scalable`. */
  readonly sm?: VtdSmContextFields;
  /** The entry decoded (legacy layout), when not `scalable`. */
  readonly legacy?: VtdContextFields;
}

/** A cached PASID-table entry, tagged by its DID and PASID. */
export interface VtdPasidCacheEntry {
  /** Requester id it was fetched for. */
  readonly sid: number;
  /** PASID. */
  readonly pasid: number;
  /** DID of the entry. */
  readonly did: number;
  /** FPD of the PASID-directory entry it was reached through. */
  readonly dirFpd: boolean;
  /** The raw 8 words. */
  readonly words: readonly bigint[];
  /** The entry decoded. */
  readonly fields: VtdPasidFields;
}

/** What kind of walk produced an IOTLB entry. */
export type VtdTranslationKind = 'first-stage' | 'second-stage' | 'nested' | 'pass-through' | 'legacy';

/** One IOTLB entry: a page of any supported size, tagged by DID and PASID. */
export interface VtdIotlbEntry {
  /** Domain id. */
  readonly did: number;
  /** PASID (RID_PASID for requests without PASID; 0 in legacy mode). */
  readonly pasid: number;
  /** Walk kind (PASID-based invalidations only touch first-stage, nested and pass-through entries). */
  readonly kind: VtdTranslationKind;
  /** Input page base. */
  readonly iova: bigint;
  /** Page size in bytes (4 KiB, 2 MiB, 1 GiB). */
  readonly size: bigint;
  /** Output page base. */
  readonly pa: bigint;
  /** Read permitted. */
  readonly read: boolean;
  /** Write permitted. */
  readonly write: boolean;
  /** Execute permitted. */
  readonly exec: boolean;
  /** User (U/S) access permitted (first stage). */
  readonly user: boolean;
  /** Nested: the second stage grants write (a supervisor write without WPE needs only this). */
  readonly stage2Write: boolean;
  /** First-stage G bit: survives PASID-selective (non-global) invalidation. */
  readonly global: boolean;
  /** The leaf's dirty bit was set by this walk (writes on a clean entry re-walk to set D). */
  readonly dirty: boolean;
}

/** Page-size levels of IOTLB entries: 4 KiB, 2 MiB, 1 GiB (in 4 KiB pages). */
const LEVEL_PAGES = [1, 512, 512 * 512] as const;

function levelOf(size: bigint): number {
  return size === 4096n ? 0 : size === 0x20_0000n ? 1 : 2;
}

/** True when [iova, iova+size) overlaps [start, start+len). */
export function rangesOverlap(iova: bigint, size: bigint, start: bigint, len: bigint): boolean {
  return iova < start + len && start < iova + size;
}

/** Bits of an IOTLB block number in a Number key (4 KiB blocks of addresses below 2^49). */
const BLOCK_BITS = 2 ** 37;
/** (DID, PASID) tags numbered below this get Number keys: (tag · 4 + level) · 2^37 + block < 2^53. */
const NUMBERED_TAGS = 2 ** 14;

/** The IOTLB: page-size aware, tagged by DID and PASID. */
export class VtdIotlb extends HardwareCache<VtdIotlbEntry> {
  /** Small numbers given to (DID, PASID) pairs in order of first use, for Number keys. */
  private readonly tagNumbers = new Map<number, number>();

  /** The number of the (did, pasid) tag, given in order of first use. */
  private tagNumber(did: number, pasid: number): number {
    const tagKey = did * 2 ** 20 + pasid;
    let tag = this.tagNumbers.get(tagKey);
    if (tag === undefined) {
      tag = this.tagNumbers.size;
      this.tagNumbers.set(tagKey, tag);
    }
    return tag;
  }

  /**
   * The key of the entry of (did, pasid) = `tag` at `level` holding 4 KiB page `page`: a
   * Number (hashes without building a string) whenever the parts fit 53 bits, else a string.
   */
  private key(tag: number, did: number, pasid: number, level: number, page: number): number | string {
    const block = Math.floor(page / LEVEL_PAGES[level]!);
    if (tag < NUMBERED_TAGS && block < BLOCK_BITS) return (tag * 4 + level) * BLOCK_BITS + block;
    return `${did}/${pasid}/${level}/${block}`;
  }

  /** Looks up the page containing `iova` for (did, pasid), trying 4 KiB, 2 MiB and 1 GiB entries. */
  lookup(did: number, pasid: number, iova: bigint): VtdIotlbEntry | undefined {
    const page = pageOf(iova);
    const tag = this.tagNumber(did, pasid);
    for (let level = 0; level < 3; level++) {
      const e = this.get(this.key(tag, did, pasid, level, page));
      if (e !== undefined) return e;
    }
    return undefined;
  }

  /** Inserts a translation. */
  insert(e: VtdIotlbEntry): void {
    this.set(this.key(this.tagNumber(e.did, e.pasid), e.did, e.pasid, levelOf(e.size), pageOf(e.iova)), e);
  }
}

/** Every cache of a VT-d unit. */
export interface VtdCaches {
  /** Context-cache, keyed by source id. */
  readonly context: HardwareCache<VtdContextCacheEntry>;
  /** PASID-cache, keyed by source id and PASID. */
  readonly pasid: HardwareCache<VtdPasidCacheEntry>;
  /** IOTLB. */
  readonly iotlb: VtdIotlb;
}

/** Creates the caches of one unit. */
export function createVtdCaches(capacity: number, strict: boolean): VtdCaches {
  const options = { capacity, strict };
  return {
    context: new HardwareCache<VtdContextCacheEntry>('context-cache', options),
    pasid: new HardwareCache<VtdPasidCacheEntry>('pasid-cache', options),
    iotlb: new VtdIotlb('iotlb', options),
  };
}
