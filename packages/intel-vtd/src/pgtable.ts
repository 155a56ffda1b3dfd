/**
 * The driver's I/O page tables: first-stage (x86-64 format) and second-stage (VT-d native
 * format), written into physical memory with the attributes Linux 6.17's iommu.c uses, and
 * torn down with `dma_pte_clear_level` semantics (tables wholly inside an unmapped range are
 * freed, which is what decides the invalidation hint).
 */
import { IOMMU_READ, IOMMU_WRITE, type Status } from '@iommufd/driver-api';
import { EINVAL, ENOMEM } from '@iommufd/uapi';
import type { PhysicalMemory } from '@iommufd/hw-model';

/** Which translation stage a table serves. */
export type PageTableFormat = 'first-stage' | 'second-stage';

/** `DMA_PTE_READ` / `DMA_FL_PTE_PRESENT` (bit 0). */
const PTE_READ = 1n << 0n;
/** `DMA_PTE_WRITE` / first-stage R/W (bit 1). */
const PTE_WRITE = 1n << 1n;
/** `DMA_FL_PTE_US` */
const FL_PTE_US = 1n << 2n;
/** `DMA_FL_PTE_ACCESS` */
const FL_PTE_ACCESS = 1n << 5n;
/** `DMA_FL_PTE_DIRTY` (also the second-stage D bit position is 9, see below) */
const FL_PTE_DIRTY = 1n << 6n;
/** `DMA_PTE_LARGE_PAGE` (PS) */
const PTE_LARGE = 1n << 7n;
/** `DMA_SL_PTE_DIRTY` */
const SL_PTE_DIRTY = 1n << 9n;
/** `DMA_PTE_SNP` */
const PTE_SNP = 1n << 11n;
/** Address bits 51:12 of an entry. */
const ADDR_MASK = ((1n << 52n) - 1n) & ~0xfffn;

/** Bytes covered by one entry at `level` (1 = 4 KiB). */
export function levelSize(level: number): bigint {
  return 4096n << BigInt(9 * (level - 1));
}

/** An I/O page table in physical memory. */
export class IoPageTable {
  /** Physical address of the top-level table (`domain->pgd`). */
  readonly root: bigint;
  private readonly tables = new Set<bigint>();

  /**
   * @param mem - physical memory holding the tables
   * @param format - first or second stage
   * @param levels - 3, 4 or 5
   * @param leafLevels - levels at which a leaf may be written (1 always; 2 = 2 MiB, 3 = 1 GiB)
   */
  constructor(
    private readonly mem: PhysicalMemory,
    readonly format: PageTableFormat,
    readonly levels: number,
    readonly leafLevels: ReadonlySet<number>,
  ) {
    this.root = this.allocTable();
  }

  /** Pages used by the tables (for leak checks). */
  get tablePages(): number {
    return this.tables.size;
  }

  private allocTable(): bigint {
    const pa = this.mem.allocPages(1)[0];
    if (pa === undefined) throw new Error('allocPages returned nothing');
    this.tables.add(pa);
    return pa;
  }

  private nonLeafValue(table: bigint): bigint {
    return this.format === 'first-stage' ? table | PTE_READ | PTE_WRITE | FL_PTE_US | FL_PTE_ACCESS : table | PTE_READ | PTE_WRITE;
  }

  private isPresent(pte: bigint): boolean {
    return this.format === 'first-stage' ? (pte & PTE_READ) !== 0n : (pte & (PTE_READ | PTE_WRITE)) !== 0n;
  }

  private index(iova: bigint, level: number): bigint {
    return (iova >> BigInt(12 + 9 * (level - 1))) & 0x1ffn;
  }

  /** Leaf attributes for IOMMU_READ/WRITE `prot` (`__domain_mapping`). */
  leafValue(pa: bigint, prot: number, level: number, snoop: boolean): bigint {
    let v = pa & ADDR_MASK;
    if (prot & IOMMU_READ) v |= PTE_READ;
    if (prot & IOMMU_WRITE) v |= PTE_WRITE;
    if (this.format === 'first-stage') {
      v |= PTE_READ | FL_PTE_US | FL_PTE_ACCESS;
      if (prot & IOMMU_WRITE) v |= FL_PTE_DIRTY;
    } else if (snoop) v |= PTE_SNP;
    if (level > 1) v |= PTE_LARGE;
    return v;
  }

  /**
   * Maps `size` bytes at `iova` to `pa`, choosing the largest leaf the alignment and the
   * allowed leaf levels permit. An already-present leaf is left as it is (the kernel warns).
   * A large leaf replaces the (empty) lower tables left under its slot by earlier small
   * mappings (`switch_to_super_page`); those table pages go to `freelist` and the caller
   * must flush the range before freeing them.
   */
  map(iova: bigint, pa: bigint, size: bigint, prot: number, snoop: boolean, freelist: bigint[] = []): Status {
    if ((prot & (IOMMU_READ | IOMMU_WRITE)) === 0) return EINVAL;
    let done = 0n;
    while (done < size) {
      const va = iova + done;
      const p = pa + done;
      let level = 1;
      for (const l of [3, 2]) {
        const s = levelSize(l);
        if (this.leafLevels.has(l) && ((va | p) & (s - 1n)) === 0n && size - done >= s) {
          level = l;
          break;
        }
      }
      const slot = this.walkAlloc(va, level);
      if (slot === undefined) return ENOMEM;
      const cur = this.mem.read64(slot);
      if (level > 1 && this.isPresent(cur) && (cur & PTE_LARGE) === 0n) {
        this.collect(cur & ADDR_MASK, level - 1, freelist);
        this.mem.write64(slot, 0n);
      }
      if (!this.isPresent(this.mem.read64(slot))) this.mem.write64(slot, this.leafValue(p, prot, level, snoop));
      done += levelSize(level);
    }
    return 0;
  }

  /** The address of the entry for `iova` at `target` level, allocating tables on the way. */
  private walkAlloc(iova: bigint, target: number): bigint | undefined {
    let table = this.root;
    for (let level = this.levels; level > target; level--) {
      const slot = table + this.index(iova, level) * 8n;
      const pte = this.mem.read64(slot);
      if (!this.isPresent(pte)) {
        const next = this.allocTable();
        this.mem.write64(slot, this.nonLeafValue(next));
        table = next;
      } else {
        if ((pte & PTE_LARGE) !== 0n) return undefined;
        table = pte & ADDR_MASK;
      }
    }
    return table + this.index(iova, target) * 8n;
  }

  /** The leaf covering `iova`: its slot, value and level, or undefined when unmapped. */
  lookup(iova: bigint): { slot: bigint; pte: bigint; level: number } | undefined {
    let table = this.root;
    for (let level = this.levels; level >= 1; level--) {
      const slot = table + this.index(iova, level) * 8n;
      const pte = this.mem.read64(slot);
      if (!this.isPresent(pte)) return undefined;
      if (level === 1 || (pte & PTE_LARGE) !== 0n) return { slot, pte, level };
      table = pte & ADDR_MASK;
    }
    return undefined;
  }

  /** `iova_to_phys` */
  iovaToPhys(iova: bigint): bigint {
    const l = this.lookup(iova);
    if (l === undefined) return 0n;
    const s = levelSize(l.level);
    return (l.pte & ADDR_MASK & ~(s - 1n)) | (iova & (s - 1n));
  }

  /** Size of the leaf that maps `iova` (4 KiB when unmapped): the kernel unmaps whole large pages. */
  leafSizeAt(iova: bigint): bigint {
    const l = this.lookup(iova);
    return l === undefined ? 4096n : levelSize(l.level);
  }

  /**
   * `domain_unmap`: clears [first, last] and returns the table pages that became unreachable
   * (the caller frees them after the IOTLB flush).
   */
  unmap(first: bigint, last: bigint): bigint[] {
    const freelist: bigint[] = [];
    this.clearLevel(this.root, this.levels, 0n, first, last, freelist);
    return freelist;
  }

  private clearLevel(table: bigint, level: number, tableBase: bigint, first: bigint, last: bigint, freelist: bigint[]): void {
    const span = levelSize(level);
    const startIdx = first > tableBase ? (first - tableBase) / span : 0n;
    for (let i = startIdx; i < 512n; i++) {
      const base = tableBase + i * span;
      if (base > last) break;
      const slot = table + i * 8n;
      const pte = this.mem.read64(slot);
      if (!this.isPresent(pte)) continue;
      const leaf = level === 1 || (pte & PTE_LARGE) !== 0n;
      if (first <= base && last >= base + span - 1n) {
        if (!leaf) this.collect(pte & ADDR_MASK, level - 1, freelist);
        this.mem.write64(slot, 0n);
      } else if (!leaf) {
        this.clearLevel(pte & ADDR_MASK, level - 1, base, first, last, freelist);
      }
    }
  }

  private collect(table: bigint, level: number, freelist: bigint[]): void {
    if (level > 1) {
      for (let i = 0n; i < 512n; i++) {
        const pte = this.mem.read64(table + i * 8n);
        if (this.isPresent(pte) && (pte & PTE_LARGE) === 0n) this.collect(pte & ADDR_MASK, level - 1, freelist);
      }
    }
    freelist.push(table);
  }

  /** Returns table pages collected by {@link IoPageTable.unmap} to the allocator. */
  freeTables(pages: readonly bigint[]): void {
    for (const p of pages) this.tables.delete(p);
    if (pages.length > 0) this.mem.freePages(pages);
  }

  /**
   * Second-stage dirty bits in [iova, iova+size): calls `record` for each dirty leaf and
   * clears D unless `noClear`. Returns whether any D bit was cleared.
   */
  readAndClearDirty(iova: bigint, size: bigint, noClear: boolean, record: (iova: bigint, len: bigint) => void): boolean {
    let cleared = false;
    let va = iova;
    const end = iova + size;
    while (va < end) {
      const l = this.lookup(va);
      const s = l === undefined ? 4096n : levelSize(l.level);
      const base = va & ~(s - 1n);
      if (l !== undefined && (l.pte & SL_PTE_DIRTY) !== 0n) {
        record(base, s);
        if (!noClear) {
          this.mem.write64(l.slot, l.pte & ~SL_PTE_DIRTY);
          cleared = true;
        }
      }
      va = base + s;
    }
    return cleared;
  }

  /** Frees every table page (domain free). */
  destroy(): void {
    const all = [...this.tables];
    this.tables.clear();
    this.mem.freePages(all);
  }
}
