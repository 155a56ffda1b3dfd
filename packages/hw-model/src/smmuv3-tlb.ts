/**
 * The SMMUv3 TLB: entries tagged by translation regime (stage 1, stage 2, nested), VMID and
 * ASID (global entries match any ASID), indexed per page size so a lookup is a few map
 * probes. Bounded (oldest entry evicted) or strict (never evicts); entries leave only through
 * eviction or TLBI commands.
 */
import { pageOf } from './address.js';

/** A TLB entry. `asid` is -1 for stage-2 entries; `stage` says which regime it caches. */
export interface TlbEntry {
  /** 's1' stage 1 only, 's2' stage 2 (IPA→PA), 'nested' combined S1+S2. */
  readonly stage: 's1' | 's2' | 'nested';
  /** VMID tag. */
  readonly vmid: number;
  /** ASID tag (-1 for stage 2). */
  readonly asid: number;
  /** nG = 0: matches any ASID. */
  readonly global: boolean;
  /** Input address of the (page/block) base. */
  readonly iova: bigint;
  /** Size of the entry: 4 KiB, 2 MiB or 1 GiB. */
  readonly size: bigint;
  /** Output address of the base. */
  readonly oa: bigint;
  /** For nested entries: the IPA of the base (reported in stage-2 permission faults). */
  readonly ipa?: bigint;
  /** Stage-1 permissions (PERM bits; all for 's2'). */
  readonly s1perm: number;
  /** Stage-2 permissions (PERM bits; all for 's1'). */
  readonly s2perm: number;
}

const STAGES = { s1: 0, s2: 1, nested: 2 } as const;
/** Page sizes probed, smallest first, as a multiple of 4 KiB. */
const SIZE_PAGES = [1, 512, 262144] as const;
const SIZES = [0x1000n, 0x20_0000n, 0x4000_0000n] as const;

/** The tag of a regime / VMID / ASID (-2 for global entries, -1 for stage 2). */
function tag(stage: TlbEntry['stage'], vmid: number, asid: number): number {
  return (STAGES[stage] * 65536 + vmid) * 65538 + (asid + 2);
}

/**
 * The key of a page-size-aligned block within one tag: its number in units of its own size,
 * with the size index in the low two bits (exact: page numbers are below 2^41 for 53-bit
 * addresses).
 */
function blockKey(pn: number, sizeIdx: number): number {
  return Math.floor(pn / SIZE_PAGES[sizeIdx]!) * 4 + sizeIdx;
}

function sizeIndex(size: bigint): number {
  return SIZES.indexOf(size as (typeof SIZES)[number]);
}

/** Options of {@link SmmuTlb}. */
export interface SmmuTlbOptions {
  /** Capacity in entries (ignored when strict). */
  readonly capacity: number;
  /** Never evict. */
  readonly strict: boolean;
}

/** The TLB of one SMMU. */
export class SmmuTlb {
  /** Lookups that hit. */
  hits = 0;
  /** Lookups that missed. */
  misses = 0;
  /** Entries evicted for capacity. */
  evictions = 0;
  private readonly index = new Map<number, Map<number, TlbEntry>>();
  /**
   * The tag and entries of the last regime looked up (a stream's traffic keeps one tag; an
   * inner map lives from its first insert until {@link SmmuTlb.clear}, so it stays valid).
   */
  private lastTag = -1;
  private lastEntries: Map<number, TlbEntry> | undefined;
  /** Insertion order (for FIFO eviction and inspection). */
  private readonly order = new Set<TlbEntry>();

  constructor(private readonly options: SmmuTlbOptions) {}

  /** Number of entries. */
  get size(): number {
    return this.order.size;
  }

  /** The entries, oldest first. */
  entries(): TlbEntry[] {
    return [...this.order];
  }

  /** The entry of (`stage`, `vmid`, `asid` or global) covering `address`. */
  lookup(stage: TlbEntry['stage'], vmid: number, asid: number, address: bigint): TlbEntry | undefined {
    return this.lookupPage(stage, vmid, asid, pageOf(address));
  }

  /** @internal {@link SmmuTlb.lookup} by 4 KiB page number (see `pageOf`). */
  lookupPage(stage: TlbEntry['stage'], vmid: number, asid: number, pn: number): TlbEntry | undefined {
    const t = tag(stage, vmid, asid);
    let own: Map<number, TlbEntry> | undefined;
    if (t === this.lastTag) own = this.lastEntries;
    else {
      own = this.index.get(t);
      if (own !== undefined) {
        this.lastTag = t;
        this.lastEntries = own;
      }
    }
    // Global (nG = 0) entries of the regime, fetched on the first size the ASID's own entries miss.
    let global: Map<number, TlbEntry> | undefined | null = asid >= 0 ? null : undefined;
    // Smallest page first; at each size the ASID's own entry before a global one.
    for (let i = 0; i < SIZE_PAGES.length; i++) {
      const key = blockKey(pn, i);
      let e = own?.get(key);
      if (e === undefined && global !== undefined) {
        if (global === null) global = this.index.get(tag(stage, vmid, -2));
        e = global?.get(key);
      }
      if (e !== undefined) {
        this.hits++;
        return e;
      }
    }
    this.misses++;
    return undefined;
  }

  /** Caches `e` (replacing an entry with the same tag and base), evicting the oldest when full. */
  insert(e: TlbEntry): void {
    const i = sizeIndex(e.size);
    if (i < 0) throw new RangeError(`TLB entry size 0x${e.size.toString(16)} is not 4 KiB, 2 MiB or 1 GiB`);
    const t = tag(e.stage, e.vmid, e.global ? -2 : e.asid);
    const key = blockKey(pageOf(e.iova), i);
    let inner = this.index.get(t);
    if (inner === undefined) {
      inner = new Map();
      this.index.set(t, inner);
    }
    const old = inner.get(key);
    if (old !== undefined) this.order.delete(old);
    else if (!this.options.strict && this.order.size >= this.options.capacity) {
      const oldest = this.order.values().next();
      if (!oldest.done) {
        this.remove(oldest.value);
        this.evictions++;
      }
    }
    inner.set(key, e);
    this.order.add(e);
  }

  /** Removes the entries matching `pred`; returns how many. */
  invalidate(pred: (e: TlbEntry) => boolean): number {
    let n = 0;
    for (const e of this.order) {
      if (pred(e)) {
        this.remove(e);
        n++;
      }
    }
    return n;
  }

  /** Removes everything. */
  clear(): void {
    this.index.clear();
    this.lastTag = -1;
    this.lastEntries = undefined;
    this.order.clear();
  }

  private remove(e: TlbEntry): void {
    this.order.delete(e);
    this.index.get(tag(e.stage, e.vmid, e.global ? -2 : e.asid))?.delete(blockKey(pageOf(e.iova), sizeIndex(e.size)));
  }
}
