/**
 * VT-d translation caches: context-cache, PASID-cache, IOTLB and the device-TLB of ATS
 * endpoints. They are filled by walks and emptied only by the invalidations the
 * architecture defines (queued descriptors, CCMD/IOTLB registers, SRTP), so a missing
 * invalidation leaves a stale entry that DMA observes. In strict mode they never evict;
 * otherwise each holds a bounded number of entries and evicts the oldest.
 */

/** A bounded (or, in strict mode, unbounded) cache with inspection for tests. */
export class VtdCache<V> {
  private readonly map = new Map<string, V>();

  /**
   * @param name - cache name (for traces)
   * @param capacity - entries kept before the oldest is evicted (ignored when strict)
   * @param strict - never evict
   */
  constructor(
    readonly name: string,
    readonly capacity: number,
    readonly strict: boolean,
  ) {}

  /** Number of entries. */
  get size(): number {
    return this.map.size;
  }

  /** The entry under `key`. */
  get(key: string): V | undefined {
    return this.map.get(key);
  }

  /** Inserts or replaces an entry, evicting the oldest one when full (not in strict mode). */
  set(key: string, value: V): void {
    this.map.delete(key);
    if (!this.strict && this.map.size >= this.capacity) {
      const oldest = this.map.keys().next();
      if (oldest.done !== true) this.map.delete(oldest.value);
    }
    this.map.set(key, value);
  }

  /** Removes the entries `pred` selects; returns how many. */
  deleteWhere(pred: (value: V) => boolean): number {
    let n = 0;
    for (const [k, v] of this.map) {
      if (pred(v)) {
        this.map.delete(k);
        n++;
      }
    }
    return n;
  }

  /** Removes everything; returns how many. */
  clear(): number {
    const n = this.map.size;
    this.map.clear();
    return n;
  }

  /** Every entry, oldest first. */
  entries(): V[] {
    return [...this.map.values()];
  }
}

/** A cached context entry (legacy or scalable), keyed by source id. */
export interface VtdContextCacheEntry {
  /** Requester id (bus << 8 | devfn). */
  readonly sid: number;
  /** Scalable-mode entry (256 bit) or legacy (128 bit). */
  readonly scalable: boolean;
  /** Domain id (legacy entries; 0 in scalable mode, where DIDs live in PASID entries). */
  readonly did: number;
  /** The raw entry words. */
  readonly words: readonly bigint[];
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

/** One device-TLB (ATS translation cache in the endpoint) entry. */
export interface VtdDeviceTlbEntry {
  /** Requester id of the endpoint. */
  readonly sid: number;
  /** PASID of the translation, or undefined for requests without PASID. */
  readonly pasid: number | undefined;
  /** Input page base. */
  readonly iova: bigint;
  /** Page size. */
  readonly size: bigint;
  /** Output page base. */
  readonly pa: bigint;
  /** Read permitted. */
  readonly read: boolean;
  /** Write permitted. */
  readonly write: boolean;
}

const PAGE_SHIFTS = [12n, 21n, 30n] as const;

function log2(size: bigint): bigint {
  return size === 4096n ? 12n : size === 0x20_0000n ? 21n : size === 0x4000_0000n ? 30n : BigInt(size.toString(2).length - 1);
}

/** True when [iova, iova+size) overlaps [start, start+len). */
export function rangesOverlap(iova: bigint, size: bigint, start: bigint, len: bigint): boolean {
  return iova < start + len && start < iova + size;
}

/** The IOTLB: page-size aware, tagged by DID and PASID. */
export class VtdIotlb extends VtdCache<VtdIotlbEntry> {
  /** Looks up the page containing `iova` for (did, pasid), trying 4 KiB, 2 MiB and 1 GiB entries. */
  lookup(did: number, pasid: number, iova: bigint): VtdIotlbEntry | undefined {
    for (const s of PAGE_SHIFTS) {
      const e = this.get(`${did}/${pasid}/${s}/${iova >> s}`);
      if (e !== undefined) return e;
    }
    return undefined;
  }

  /** Inserts a translation. */
  insert(e: VtdIotlbEntry): void {
    const s = log2(e.size);
    this.set(`${e.did}/${e.pasid}/${s}/${e.iova >> s}`, e);
  }
}

/** The device-TLBs of every ATS endpoint behind the unit, keyed by source id. */
export class VtdDeviceTlb extends VtdCache<VtdDeviceTlbEntry> {
  /** Looks up the page containing `iova` for (sid, pasid). */
  lookup(sid: number, pasid: number | undefined, iova: bigint): VtdDeviceTlbEntry | undefined {
    for (const s of PAGE_SHIFTS) {
      const e = this.get(`${sid}/${pasid ?? '-'}/${s}/${iova >> s}`);
      if (e !== undefined) return e;
    }
    return undefined;
  }

  /** Inserts a translation. */
  insert(e: VtdDeviceTlbEntry): void {
    const s = log2(e.size);
    this.set(`${e.sid}/${e.pasid ?? '-'}/${s}/${e.iova >> s}`, e);
  }
}

/** Every cache of a VT-d unit. */
export interface VtdCaches {
  /** Context-cache, keyed by source id. */
  readonly context: VtdCache<VtdContextCacheEntry>;
  /** PASID-cache, keyed by source id and PASID. */
  readonly pasid: VtdCache<VtdPasidCacheEntry>;
  /** IOTLB. */
  readonly iotlb: VtdIotlb;
  /** Device-TLBs of ATS endpoints. */
  readonly deviceTlb: VtdDeviceTlb;
}

/** Creates the caches of one unit. */
export function createVtdCaches(capacity: number, strict: boolean): VtdCaches {
  return {
    context: new VtdCache<VtdContextCacheEntry>('context-cache', capacity, strict),
    pasid: new VtdCache<VtdPasidCacheEntry>('pasid-cache', capacity, strict),
    iotlb: new VtdIotlb('iotlb', capacity, strict),
    deviceTlb: new VtdDeviceTlb('device-tlb', capacity, strict),
  };
}
