/**
 * The machine's physical address space: RAM regions backed by a sparse
 * {@link @iommufd/queue-engine#PhysicalStore}, MMIO regions dispatched to device register
 * files, and a simple RAM page allocator for software that needs tables and queues.
 */
import { PAGE_SIZE, PhysicalStore } from '@iommufd/queue-engine';

/** A device register file mapped into the physical address space. */
export interface MmioDevice {
  /** Reads `size` bytes at `offset` inside the device's region (little-endian value). */
  mmioRead(offset: number, size: 1 | 2 | 4 | 8): bigint;
  /** Writes the low `size` bytes of `value` at `offset` inside the device's region. */
  mmioWrite(offset: number, size: 1 | 2 | 4 | 8, value: bigint): void;
}

/** Thrown for a programming error in the use of {@link PhysicalMemory} (bad region, out of RAM). */
export class PhysicalMemoryError extends Error {
  /** Error name for `instanceof`-free checks. */
  override readonly name = 'PhysicalMemoryError';
}

/** One region of the physical address map. */
export type MemoryRegion =
  | { readonly kind: 'ram'; readonly base: bigint; readonly size: bigint }
  | { readonly kind: 'mmio'; readonly base: bigint; readonly size: bigint; readonly device: MmioDevice };

/** Options of {@link PhysicalMemory.allocPages}. */
export interface AllocPagesOptions {
  /** All pages physically adjacent (default true: tables and queues need it). */
  readonly contiguous?: boolean;
  /** For contiguous allocations: alignment of the first page in bytes (power of two, default 4 KiB). */
  readonly align?: bigint;
}

type AccessSize = 1 | 2 | 4 | 8;
const PAGE = BigInt(PAGE_SIZE);

/** A 64-bit word as its two little-endian 32-bit halves (filled by {@link PhysicalMemory.readRamWord}). */
export interface Word64 {
  /** Bits 31:0, unsigned. */
  lo: number;
  /** Bits 63:32, unsigned. */
  hi: number;
}

/**
 * Little-endian physical memory with RAM and MMIO regions. Accesses that hit no region read as
 * zero and ignore writes; each is counted in {@link PhysicalMemory.unclaimedAccesses}.
 */
export class PhysicalMemory {
  /** The sparse frame store holding RAM contents (shared with the queue engine). */
  readonly store: PhysicalStore;
  /** Number of accesses that hit neither RAM nor MMIO. */
  unclaimedAccesses = 0;
  private readonly regions: MemoryRegion[] = [];
  /**
   * The RAM regions as Number pairs [base, end, base, end, …] for table walkers. Physical
   * addresses a walker fetches from are at most 52 bits (the largest OA of either
   * architecture), so comparing them as doubles is exact.
   */
  private readonly ramBounds: number[] = [];
  /** The store's view as last taken (see {@link PhysicalMemory.readRamWord}). */
  private wordView: DataView | undefined;
  /** RAM page numbers handed out by {@link PhysicalMemory.allocPages}. */
  private readonly usedPfns = new Set<number>();
  /** No page below this address is free (keeps repeated allocations linear). */
  private lowestFree = 0n;
  /**
   * Per request shape (page count, alignment): no run of that shape starts below `at`.
   * First fit stays first fit, but a bulk of 512-page refills no longer rescans every used
   * page from the lowest single-page hole each time (quadratic in the pages in use).
   */
  private readonly runFrom = new Map<string, { readonly pages: number; at: bigint }>();

  constructor(store: PhysicalStore = new PhysicalStore()) {
    this.store = store;
  }

  /** The regions of the address map, in the order they were added. */
  get map(): readonly MemoryRegion[] {
    return this.regions;
  }

  /** Adds a RAM region; `base` and `size` must be page aligned and not overlap other regions. */
  addRam(base: bigint, size: bigint): void {
    this.checkRegion(base, size, true);
    this.regions.push({ kind: 'ram', base, size });
    this.ramBounds.push(Number(base), Number(base + size));
  }

  /** Maps `device` at `[base, base + size)`; accesses there go to its register file. */
  addMmio(base: bigint, size: bigint, device: MmioDevice): void {
    this.checkRegion(base, size, false);
    this.regions.push({ kind: 'mmio', base, size, device });
  }

  /** The region containing `pa`, or undefined. */
  regionAt(pa: bigint): MemoryRegion | undefined {
    for (const r of this.regions) if (pa >= r.base && pa < r.base + r.size) return r;
    return undefined;
  }

  /** True when the whole range `[pa, pa+len)` is RAM. */
  isRam(pa: bigint, len: number): boolean {
    const r = this.regionAt(pa);
    return r !== undefined && r.kind === 'ram' && pa + BigInt(len) <= r.base + r.size;
  }

  /** Reads `len` bytes (RAM, MMIO in naturally sized pieces, or zeros). */
  read(pa: bigint, len: number): Uint8Array {
    if (len === 0) return new Uint8Array(0);
    if (this.isRam(pa, len)) return this.store.read(pa, len);
    const out = new Uint8Array(len);
    for (let i = 0; i < len; i++) out[i] = Number(this.readN(pa + BigInt(i), 1));
    return out;
  }

  /** Writes `data` at `pa` (RAM, MMIO byte-wise, or ignored). */
  write(pa: bigint, data: Uint8Array): void {
    if (data.length === 0) return;
    if (this.isRam(pa, data.length)) {
      this.store.write(pa, data);
      return;
    }
    for (let i = 0; i < data.length; i++) this.writeN(pa + BigInt(i), 1, BigInt(data[i]!));
  }

  /**
   * A table walker's fetch, in Numbers: reads the aligned little-endian u64 at `pa` (below
   * 2^52) into `out` as two 32-bit halves, without BigInt; false (and `out` untouched) when
   * `[pa, pa+8)` is not RAM (for a walker, an external abort).
   */
  readRamWord(pa: number, out: Word64): boolean {
    const b = this.ramBounds;
    for (let i = 0; i < b.length; i += 2) {
      if (pa >= b[i]! && pa + 8 <= b[i + 1]!) {
        const pfn = Math.floor(pa / PAGE_SIZE);
        const frame = this.store.frameOffset(pfn);
        if (frame < 0) {
          // RAM never written reads as zero.
          out.lo = 0;
          out.hi = 0;
        } else {
          let view = this.wordView;
          // Growing a WebAssembly memory detaches its old buffer (byteLength 0): take the new view.
          if (view === undefined || view.buffer.byteLength === 0) view = this.wordView = this.store.view;
          const off = frame + (pa - pfn * PAGE_SIZE);
          out.lo = view.getUint32(off, true);
          out.hi = view.getUint32(off + 4, true);
        }
        return true;
      }
    }
    return false;
  }

  /** Reads one byte. */
  read8(pa: bigint): number {
    return Number(this.readN(pa, 1));
  }
  /** Reads a little-endian u16. */
  read16(pa: bigint): number {
    return Number(this.readN(pa, 2));
  }
  /** Reads a little-endian u32. */
  read32(pa: bigint): number {
    if ((pa & 3n) === 0n && this.isRam(pa, 4)) return this.store.read32(pa);
    return Number(this.readN(pa, 4));
  }
  /** Reads a little-endian u64. */
  read64(pa: bigint): bigint {
    if ((pa & 7n) === 0n && this.isRam(pa, 8)) return this.store.read64(pa);
    return this.readN(pa, 8);
  }
  /** Writes one byte. */
  write8(pa: bigint, v: number): void {
    this.writeN(pa, 1, BigInt(v & 0xff));
  }
  /** Writes a little-endian u16. */
  write16(pa: bigint, v: number): void {
    this.writeN(pa, 2, BigInt(v & 0xffff));
  }
  /** Writes a little-endian u32. */
  write32(pa: bigint, v: number): void {
    if ((pa & 3n) === 0n && this.isRam(pa, 4)) {
      this.store.write32(pa, v);
      return;
    }
    this.writeN(pa, 4, BigInt(v >>> 0));
  }
  /** Writes a little-endian u64. */
  write64(pa: bigint, v: bigint): void {
    if ((pa & 7n) === 0n && this.isRam(pa, 8)) {
      this.store.write64(pa, v);
      return;
    }
    this.writeN(pa, 8, BigInt.asUintN(64, v));
  }

  /**
   * Allocates `n` zeroed RAM pages and returns their physical addresses. Contiguous
   * allocations (the default) return consecutive pages starting at an `align`-aligned address.
   */
  allocPages(n: number, options: AllocPagesOptions = {}): bigint[] {
    if (!Number.isInteger(n) || n <= 0) throw new PhysicalMemoryError(`allocPages: page count must be a positive integer, got ${n}`);
    const contiguous = options.contiguous ?? true;
    const align = options.align ?? PAGE;
    if (align < PAGE || (align & (align - 1n)) !== 0n) {
      throw new PhysicalMemoryError(`allocPages: align must be a power of two >= ${PAGE_SIZE}, got ${align}`);
    }
    if (!contiguous) {
      const out: bigint[] = [];
      try {
        for (let i = 0; i < n; i++) out.push(this.allocPages(1)[0]!);
      } catch (e) {
        this.freePages(out);
        throw e;
      }
      return out;
    }
    const key = `${n}/${align}`;
    let hint = this.runFrom.get(key);
    if (!hint) this.runFrom.set(key, (hint = { pages: n, at: 0n }));
    const low = hint.at > this.lowestFree ? hint.at : this.lowestFree;
    const rams = this.regions.filter((r) => r.kind === 'ram' && r.base + r.size > low).sort((x, y) => (x.base < y.base ? -1 : 1));
    let first = true;
    for (const r of rams) {
      const from = low > r.base ? low : r.base;
      let start = (from + align - 1n) & ~(align - 1n);
      const end = r.base + r.size;
      while (start + BigInt(n) * PAGE <= end) {
        let clash = -1;
        const startPfn = Number(start >> 12n);
        for (let i = 0; i < n; i++) {
          if (this.usedPfns.has(startPfn + i)) {
            clash = i;
            break;
          }
        }
        if (clash < 0) {
          const out: bigint[] = [];
          for (let i = 0; i < n; i++) {
            const pa = start + BigInt(i) * PAGE;
            const pfn = Number(pa >> 12n);
            this.usedPfns.add(pfn);
            this.store.freeFrame(pfn);
            out.push(pa);
          }
          // Single-page, page-aligned scans skip only used pages: nothing below is free. A
          // multi-page run says so only when it starts right at lowestFree (its own hint may
          // lie above single-page holes).
          if (first && align === PAGE && (n === 1 || (start === from && from === this.lowestFree))) this.lowestFree = start + BigInt(n) * PAGE;
          // First fit: no run of this shape starts before `start`, and none overlapping it.
          hint.at = start + BigInt(n) * PAGE;
          return out;
        }
        const after = start + BigInt(clash + 1) * PAGE;
        start = (after + align - 1n) & ~(align - 1n);
      }
      first = false;
    }
    throw new PhysicalMemoryError(`allocPages: no ${n} free contiguous RAM pages (aligned to ${align}); add RAM or free pages`);
  }

  /** Returns pages from {@link PhysicalMemory.allocPages}; their contents are dropped. */
  freePages(pages: readonly bigint[]): void {
    for (const pa of pages) {
      const pfn = Number(pa >> 12n);
      if (!this.usedPfns.delete(pfn)) throw new PhysicalMemoryError(`freePages: page 0x${pa.toString(16)} is not allocated`);
      this.store.freeFrame(pfn);
      if (pa < this.lowestFree) this.lowestFree = pa;
      // A freed page can complete a run that starts up to `pages - 1` pages before it.
      for (const h of this.runFrom.values()) {
        const from = pa - BigInt(h.pages - 1) * PAGE;
        if (from < h.at) h.at = from < 0n ? 0n : from;
      }
    }
  }

  /** Number of RAM pages handed out by the allocator. */
  get allocatedPages(): number {
    return this.usedPfns.size;
  }

  /**
   * Whether the page holding `pa` is handed out by {@link PhysicalMemory.allocPages} and not
   * freed since: what an invariant check asks of every table pointer the hardware follows.
   */
  isAllocated(pa: bigint): boolean {
    return pa >= 0n && this.usedPfns.has(Number(pa >> 12n));
  }

  private readN(pa: bigint, size: AccessSize): bigint {
    const r = this.regionAt(pa);
    if (r === undefined || pa + BigInt(size) > r.base + r.size) {
      this.unclaimedAccesses++;
      return 0n;
    }
    if (r.kind === 'mmio') return BigInt.asUintN(size * 8, r.device.mmioRead(Number(pa - r.base), size));
    const bytes = this.store.read(pa, size);
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
    return v;
  }

  private writeN(pa: bigint, size: AccessSize, value: bigint): void {
    const r = this.regionAt(pa);
    if (r === undefined || pa + BigInt(size) > r.base + r.size) {
      this.unclaimedAccesses++;
      return;
    }
    if (r.kind === 'mmio') {
      r.device.mmioWrite(Number(pa - r.base), size, BigInt.asUintN(size * 8, value));
      return;
    }
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i++) bytes[i] = Number((value >> BigInt(8 * i)) & 0xffn);
    this.store.write(pa, bytes);
  }

  private checkRegion(base: bigint, size: bigint, pageAligned: boolean): void {
    if (size <= 0n) throw new PhysicalMemoryError(`region size must be positive, got ${size}`);
    if (base < 0n) throw new PhysicalMemoryError(`region base must be non-negative, got ${base}`);
    if (pageAligned && ((base | size) & (PAGE - 1n)) !== 0n) {
      throw new PhysicalMemoryError(`RAM region 0x${base.toString(16)}+0x${size.toString(16)} must be 4 KiB aligned`);
    }
    for (const r of this.regions) {
      if (base < r.base + r.size && r.base < base + size) {
        throw new PhysicalMemoryError(
          `region 0x${base.toString(16)}+0x${size.toString(16)} overlaps ${r.kind} region 0x${r.base.toString(16)}+0x${r.size.toString(16)}`,
        );
      }
    }
  }
}
