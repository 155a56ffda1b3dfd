/**
 * AArch64 LPAE io page tables with a 4 KiB granule (`io-pgtable-arm.c`, formats
 * ARM_64_LPAE_S1 and ARM_64_LPAE_S2), built in physical memory pages from the machine's
 * allocator. The SMMU walks exactly these bytes.
 */
import { EEXIST, EINVAL, ENOMEM, ERANGE } from '@iommufd/uapi';
import { IOMMU_CACHE, IOMMU_MMIO, IOMMU_NOEXEC, IOMMU_READ, IOMMU_WRITE, type Status } from '@iommufd/driver-api';
import { ARM_PTE, type PhysicalMemory } from '@iommufd/hw-model';

/** `IOMMU_PRIV`: privileged-only mapping (not exported by the driver API). */
export const IOMMU_PRIV = 1 << 5;

const GRANULE = 4096n;
const BITS_PER_LEVEL = 9;
const MAX_LEVELS = 4;
/** `ARM_LPAE_S2_MAX_CONCAT_PAGES` */
const S2_MAX_CONCAT_PAGES = 16;

/** `ARM_LPAE_MAIR_ATTR_IDX_*` */
const MAIR_IDX = { NC: 0, CACHE: 1, DEV: 2, INC_OCACHE: 3 } as const;
/** MAIR of every stage-1 table: NC, WBRWA, Device-nGnRE, inner-NC/outer-WBRWA. */
export const ARM_LPAE_MAIR = 0x44n | (0xffn << 8n) | (0x04n << 16n) | (0xf4n << 24n);
/** Stage-2 MemAttr values (`ARM_LPAE_PTE_MEMATTR_*`). */
const S2_MEMATTR = { OIWB: 0xf, NC: 0x5, DEV: 0x1, FWB_WB: 0x6 } as const;
/** `ARM_LPAE_TCR_SH_*`, `ARM_LPAE_TCR_RGN_*` */
const SH_IS = 3;
const SH_OS = 2;
const RGN_WBWA = 1;
const RGN_NC = 0;

/** Output/IPA size in bits → the PS/IPS encoding. */
export function physAddrSizeEncoding(bits: number): number {
  const enc = [32, 36, 40, 42, 44, 48, 52].indexOf(bits);
  if (enc < 0) throw new RangeError(`no PS encoding for a ${bits}-bit address size`);
  return enc;
}

/** `struct io_pgtable_cfg` (the members the SMMU driver sets). */
export interface IoPgtableCfg {
  /** ARM_64_LPAE_S1 or ARM_64_LPAE_S2. */
  readonly stage: 1 | 2;
  /** Input address bits. */
  readonly ias: number;
  /** Output address bits. */
  readonly oas: number;
  /** The SMMU walks tables coherently (IDR0.COHACC). */
  readonly coherentWalk: boolean;
  /** `IO_PGTABLE_QUIRK_ARM_S2FWB` */
  readonly s2fwb?: boolean;
  /** `IO_PGTABLE_QUIRK_ARM_HD`: writable stage-1 entries get DBM. */
  readonly hd?: boolean;
}

/** The TLB maintenance callbacks of `struct iommu_flush_ops` used while unmapping. */
export interface IoPgtableFlushOps {
  /** `tlb_flush_walk`: a table was removed (non-leaf invalidation of the range). */
  flushWalk(iova: bigint, size: bigint, granule: bigint): void;
}

/** Translation-control values for a CD (stage 1) or STE (stage 2). */
export interface ArmLpaeTcr {
  /** T0SZ / S2T0SZ */
  readonly tsz: number;
  /** TG0 / S2TG (0 = 4 KiB) */
  readonly tg: number;
  /** IPS / S2PS encoding */
  readonly ps: number;
  /** Walk inner cacheability */
  readonly irgn: number;
  /** Walk outer cacheability */
  readonly orgn: number;
  /** Walk shareability */
  readonly sh: number;
  /** S2SL0 (stage 2 only; 0 for stage 1) */
  readonly sl: number;
}

/** One io page table (`struct arm_lpae_io_pgtable`). */
export class ArmLpaeIoPgtable {
  /** Level the walk starts at. */
  readonly startLevel: number;
  /** Index bits of the start level (more than 9 when stage-2 tables are concatenated). */
  readonly pgdBits: number;
  /** Physical address of the top-level table (TTB0 / S2TTB). */
  readonly pgd: bigint;
  /** `pgsize_bitmap`: 4 KiB pages, 2 MiB and 1 GiB blocks. */
  readonly pgsizeBitmap = (1n << 12n) | (1n << 21n) | (1n << 30n);
  private readonly pgdPages: bigint[];
  private readonly tables = new Set<bigint>();

  constructor(
    private readonly memory: PhysicalMemory,
    /** The configuration it was allocated with. */
    readonly cfg: IoPgtableCfg,
  ) {
    const vaBits = cfg.ias - 12;
    const levels = Math.ceil(vaBits / BITS_PER_LEVEL);
    let startLevel = MAX_LEVELS - levels;
    let pgdBits = vaBits - BITS_PER_LEVEL * (levels - 1);
    // Stage 2 concatenates up to 16 level-1 tables rather than walking a tiny level 0.
    if (cfg.stage === 2 && startLevel === 0 && 2 ** pgdBits <= S2_MAX_CONCAT_PAGES) {
      pgdBits += BITS_PER_LEVEL;
      startLevel++;
    }
    this.startLevel = startLevel;
    this.pgdBits = pgdBits;
    const pgdSize = 8n << BigInt(pgdBits);
    const pages = Number((pgdSize + GRANULE - 1n) / GRANULE);
    this.pgdPages = memory.allocPages(pages, { align: pgdSize > GRANULE ? pgdSize : GRANULE });
    this.pgd = this.pgdPages[0]!;
  }

  /** Stage-1 TCR or stage-2 VTCR fields for this table. */
  get tcr(): ArmLpaeTcr {
    const coherent = this.cfg.coherentWalk;
    // SL0 of a 4 KiB granule counts from level 2 downwards.
    const sl = this.cfg.stage === 2 ? ~(this.startLevel + 1) & 3 : 0;
    return {
      tsz: 64 - this.cfg.ias,
      tg: 0,
      ps: physAddrSizeEncoding(this.cfg.oas),
      irgn: coherent ? RGN_WBWA : RGN_NC,
      orgn: coherent ? RGN_WBWA : RGN_NC,
      sh: coherent ? SH_IS : SH_OS,
      sl,
    };
  }

  private blockSize(level: number): bigint {
    return 1n << BigInt(12 + BITS_PER_LEVEL * (3 - level));
  }

  private index(iova: bigint, level: number): number {
    const bits = level === this.startLevel ? this.pgdBits : BITS_PER_LEVEL;
    return Number((iova >> BigInt(12 + BITS_PER_LEVEL * (3 - level))) & ((1n << BigInt(bits)) - 1n));
  }

  private entries(level: number): number {
    return 2 ** (level === this.startLevel ? this.pgdBits : BITS_PER_LEVEL);
  }

  private isLeaf(pte: bigint, level: number): boolean {
    // A level-3 entry is a page; above it, type 0b01 is a block and 0b11 a table.
    return level === 3 ? (pte & 3n) === 3n : (pte & 3n) === 1n;
  }

  /** `arm_lpae_prot_to_pte` */
  private protToPte(prot: number): bigint {
    const f: Partial<Record<Parameters<typeof ARM_PTE.set>[1], number>> = {};
    let attr: number;
    if (this.cfg.stage === 1) {
      f.NG = 1;
      let ap = 0;
      if ((prot & IOMMU_WRITE) === 0 && (prot & IOMMU_READ) !== 0) ap |= 2;
      else if (this.cfg.hd === true) f.DBM = 1;
      if ((prot & IOMMU_PRIV) === 0) ap |= 1;
      f.AP = ap;
      attr = (prot & IOMMU_MMIO) !== 0 ? MAIR_IDX.DEV : (prot & IOMMU_CACHE) !== 0 ? MAIR_IDX.CACHE : MAIR_IDX.NC;
    } else {
      // S2AP: bit 6 read, bit 7 write.
      f.AP = ((prot & IOMMU_READ) !== 0 ? 1 : 0) | ((prot & IOMMU_WRITE) !== 0 ? 2 : 0);
      if ((prot & IOMMU_MMIO) !== 0) attr = S2_MEMATTR.DEV;
      else if ((prot & IOMMU_CACHE) !== 0) attr = this.cfg.s2fwb === true ? S2_MEMATTR.FWB_WB : S2_MEMATTR.OIWB;
      else attr = S2_MEMATTR.NC;
    }
    f.ATTR = attr;
    f.SH = (prot & IOMMU_CACHE) !== 0 ? SH_IS : SH_OS;
    if ((prot & IOMMU_NOEXEC) !== 0) {
      f.PXN = 1;
      f.XN = 1;
    }
    f.AF = 1;
    return ARM_PTE.encode(f)[0]!;
  }

  private allocTable(): bigint | undefined {
    try {
      const pa = this.memory.allocPages(1)[0]!;
      this.tables.add(pa);
      return pa;
    } catch {
      return undefined;
    }
  }

  /**
   * `map_pages`: maps `pgcount` pages of `pgsize` (4 KiB, 2 MiB or 1 GiB) at `iova` to
   * `paddr`. Returns the bytes mapped; a failure leaves earlier pages mapped (the core
   * unmaps them), as in Linux.
   */
  mapPages(iova: bigint, paddr: bigint, pgsize: bigint, pgcount: number, prot: number): { mapped: bigint; status: Status } {
    if ((pgsize & this.pgsizeBitmap) !== pgsize || pgsize === 0n || (pgsize & (pgsize - 1n)) !== 0n) return { mapped: 0n, status: EINVAL };
    if (iova >> BigInt(this.cfg.ias) !== 0n || paddr >> BigInt(this.cfg.oas) !== 0n) return { mapped: 0n, status: ERANGE };
    // No access requested: nothing to install.
    if ((prot & (IOMMU_READ | IOMMU_WRITE)) === 0) return { mapped: 0n, status: 0 };
    const pte = this.protToPte(prot);
    let mapped = 0n;
    while (mapped < pgsize * BigInt(pgcount)) {
      const r = this.mapAt(iova + mapped, paddr + mapped, pgsize, pgcount - Number(mapped / pgsize), pte, this.startLevel, this.pgd);
      mapped += r.mapped;
      if (r.status !== 0) return { mapped, status: r.status };
    }
    return { mapped, status: 0 };
  }

  /** `__arm_lpae_map`: one table's worth at most. */
  private mapAt(iova: bigint, paddr: bigint, size: bigint, pgcount: number, prot: bigint, level: number, table: bigint): { mapped: bigint; status: Status } {
    const idx = this.index(iova, level);
    const at = table + BigInt(idx) * 8n;
    if (size === this.blockSize(level)) {
      const n = Math.min(pgcount, this.entries(level) - idx);
      for (let i = 0; i < n; i++) {
        const old = this.memory.read64(at + BigInt(i) * 8n);
        // An existing leaf or table needs an unmap first.
        if ((old & 1n) !== 0n) return { mapped: BigInt(i) * size, status: EEXIST };
      }
      for (let i = 0; i < n; i++) {
        const oa = paddr + BigInt(i) * size;
        const type = level === 3 ? 3n : 1n;
        this.memory.write64(at + BigInt(i) * 8n, prot | (oa & 0x0000_ffff_ffff_f000n) | type);
      }
      return { mapped: BigInt(n) * size, status: 0 };
    }
    if (level >= 3) return { mapped: 0n, status: EINVAL };
    let pte = this.memory.read64(at);
    if (pte === 0n) {
      const next = this.allocTable();
      if (next === undefined) return { mapped: 0n, status: ENOMEM };
      pte = ARM_PTE.encode({ VALID: 1, TABLE: 1, OA: next >> 12n })[0]!;
      this.memory.write64(at, pte);
    } else if (this.isLeaf(pte, level)) {
      return { mapped: 0n, status: EEXIST };
    }
    return this.mapAt(iova, paddr, size, pgcount, prot, level + 1, ARM_PTE.get([pte], 'OA') << 12n);
  }

  /**
   * `unmap_pages`: clears `pgcount` entries of `pgsize` from `iova` and returns the bytes
   * unmapped (0 for a hole or a partial block). Removed tables are reported to `flush`.
   */
  unmapPages(iova: bigint, pgsize: bigint, pgcount: number, flush: IoPgtableFlushOps): bigint {
    if ((pgsize & this.pgsizeBitmap) !== pgsize || pgsize === 0n || pgcount === 0) return 0n;
    if (iova >> BigInt(this.cfg.ias) !== 0n) return 0n;
    let done = 0n;
    while (done < pgsize * BigInt(pgcount)) {
      const n = this.unmapAt(iova + done, pgsize, pgcount - Number(done / pgsize), this.startLevel, this.pgd, flush);
      if (n === 0n) break;
      done += n;
    }
    return done;
  }

  private unmapAt(iova: bigint, size: bigint, pgcount: number, level: number, table: bigint, flush: IoPgtableFlushOps): bigint {
    if (level === MAX_LEVELS) return 0n;
    const idx = this.index(iova, level);
    const at = table + BigInt(idx) * 8n;
    const pte = this.memory.read64(at);
    if (pte === 0n) return 0n;
    if (size === this.blockSize(level)) {
      const n = Math.min(pgcount, this.entries(level) - idx);
      let i = 0;
      for (; i < n; i++) {
        const e = this.memory.read64(at + BigInt(i) * 8n);
        if (e === 0n) break;
        if (!this.isLeaf(e, level)) {
          this.memory.write64(at + BigInt(i) * 8n, 0n);
          flush.flushWalk(iova + BigInt(i) * size, size, GRANULE);
          this.freeTable(level + 1, ARM_PTE.get([e], 'OA') << 12n);
        }
      }
      for (let j = 0; j < i; j++) this.memory.write64(at + BigInt(j) * 8n, 0n);
      return BigInt(i) * size;
    }
    // Unmapping part of a block is refused (Linux 6.13+ no longer splits blocks).
    if (this.isLeaf(pte, level)) return 0n;
    return this.unmapAt(iova, size, pgcount, level + 1, ARM_PTE.get([pte], 'OA') << 12n, flush);
  }

  private freeTable(level: number, table: bigint): void {
    if (level < 3) {
      for (let i = 0; i < 512; i++) {
        const e = this.memory.read64(table + BigInt(i) * 8n);
        if ((e & 3n) === 3n) this.freeTable(level + 1, ARM_PTE.get([e], 'OA') << 12n);
      }
    }
    this.tables.delete(table);
    this.memory.freePages([table]);
  }

  /** `iova_to_phys`: the physical address `iova` maps to, or 0n. */
  iovaToPhys(iova: bigint): bigint {
    let table = this.pgd;
    for (let level = this.startLevel; level <= 3; level++) {
      const pte = this.memory.read64(table + BigInt(this.index(iova, level)) * 8n);
      if ((pte & 1n) === 0n) return 0n;
      if (this.isLeaf(pte, level)) {
        const size = this.blockSize(level);
        return ((ARM_PTE.get([pte], 'OA') << 12n) & ~(size - 1n)) | (iova & (size - 1n));
      }
      if (level === 3) return 0n;
      table = ARM_PTE.get([pte], 'OA') << 12n;
    }
    return 0n;
  }

  /** Number of table pages in use below the top level (for leak checks). */
  get tablePages(): number {
    return this.tables.size;
  }

  /** `free_io_pgtable_ops`: returns every table page (the caller flushed the TLB first). */
  free(): void {
    for (const t of this.tables) this.memory.freePages([t]);
    this.tables.clear();
    this.memory.freePages(this.pgdPages);
  }
}
