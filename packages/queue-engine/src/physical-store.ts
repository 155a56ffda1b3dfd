/**
 * The backing store of the machine's physical memory: sparse 4 KiB frames that live inside
 * one `WebAssembly.Memory`, so the queue engine (WebAssembly) and the TypeScript side read
 * the very same bytes with no copies. The hardware model's `PhysicalMemory` (RAM regions,
 * MMIO dispatch) sits on top of this store.
 *
 * A physical page that was never written has no frame and reads as zero; a frame is
 * allocated on first write (or on `ensureFrame`). Once allocated a frame never moves, so a
 * byte offset handed to the engine stays valid until `freeFrame`.
 */

/** log2 of the page size. */
export const PAGE_SHIFT = 12;
/** The page (frame) size: 4 KiB. */
export const PAGE_SIZE = 1 << PAGE_SHIFT;
/** Bytes in one WebAssembly page. */
const WASM_PAGE = 65536;
/** The largest 32-bit WebAssembly memory, in WebAssembly pages (4 GiB). */
const WASM_MAX_PAGES = 65536;

/** Thrown when the store cannot hold more frames (4 GiB of touched memory). */
export class PhysicalStoreFullError extends Error {
  override readonly name = 'PhysicalStoreFullError';
}

/** Options of {@link PhysicalStore}. */
export interface PhysicalStoreOptions {
  /**
   * Bytes at the start of the memory kept for the queue engine's own static data and
   * scratch space; frames are placed after them. Default 1 MiB.
   */
  readonly reservedBytes?: number;
  /** Initial frame capacity (grown on demand). Default 256 frames (1 MiB). */
  readonly initialFrames?: number;
}

/** Sparse physical memory frames inside a WebAssembly memory. */
export class PhysicalStore {
  /** The memory the frames live in; shared with the WebAssembly queue engine. */
  readonly memory: WebAssembly.Memory;
  /** First byte offset usable for frames. */
  readonly framesBase: number;
  private readonly directory = new Map<number, number>();
  private readonly freeOffsets: number[] = [];
  private nextOffset: number;
  private u8View: Uint8Array;
  private dv: DataView;

  constructor(options: PhysicalStoreOptions = {}) {
    const reserved = options.reservedBytes ?? 1 << 20;
    if (reserved < 0 || reserved % PAGE_SIZE !== 0) {
      throw new RangeError(`reservedBytes must be a non-negative multiple of ${PAGE_SIZE}, got ${reserved}`);
    }
    const initialFrames = options.initialFrames ?? 256;
    const initialPages = Math.max(1, Math.ceil((reserved + initialFrames * PAGE_SIZE) / WASM_PAGE));
    this.memory = new WebAssembly.Memory({ initial: initialPages, maximum: WASM_MAX_PAGES });
    this.framesBase = reserved;
    this.nextOffset = reserved;
    this.u8View = new Uint8Array(this.memory.buffer);
    this.dv = new DataView(this.memory.buffer);
  }

  /** The whole memory as bytes (re-created after the memory grows). */
  get bytes(): Uint8Array {
    if (this.u8View.buffer !== this.memory.buffer) this.refreshViews();
    return this.u8View;
  }

  /** The whole memory as a DataView (re-created after the memory grows). */
  get view(): DataView {
    if (this.dv.buffer !== this.memory.buffer) this.refreshViews();
    return this.dv;
  }

  /** Number of frames currently allocated. */
  get framesInUse(): number {
    return this.directory.size;
  }

  /** Byte offset of the frame of `pfn` in {@link PhysicalStore.memory}, or -1 if it has none. */
  frameOffset(pfn: number): number {
    return this.directory.get(pfn) ?? -1;
  }

  /** Byte offset of the frame of `pfn`, allocating a zeroed frame if it has none. */
  ensureFrame(pfn: number): number {
    const existing = this.directory.get(pfn);
    if (existing !== undefined) return existing;
    let offset = this.freeOffsets.pop();
    if (offset === undefined) {
      offset = this.nextOffset;
      const needed = offset + PAGE_SIZE;
      this.growTo(needed);
      this.nextOffset = needed;
    } else {
      this.bytes.fill(0, offset, offset + PAGE_SIZE);
    }
    this.directory.set(pfn, offset);
    return offset;
  }

  /**
   * Byte offset of the frame of `firstPfn` when the `count` pages from `firstPfn` on sit
   * back to back in the memory, so that they can be read as one range (rings, guest arrays).
   * Pages without frames get them; a range with no frames yet is placed contiguously.
   * Returns -1 when some pages already have frames that are not consecutive.
   */
  ensureContiguous(firstPfn: number, count: number): number {
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`page count must be a positive integer, got ${count}`);
    let existing = 0;
    for (let i = 0; i < count; i++) if (this.directory.has(firstPfn + i)) existing++;
    if (existing === 0) {
      const base = this.nextOffset;
      this.growTo(base + count * PAGE_SIZE);
      this.nextOffset = base + count * PAGE_SIZE;
      for (let i = 0; i < count; i++) this.directory.set(firstPfn + i, base + i * PAGE_SIZE);
      return base;
    }
    const base = this.ensureFrame(firstPfn);
    for (let i = 1; i < count; i++) if (this.ensureFrame(firstPfn + i) !== base + i * PAGE_SIZE) return -1;
    return base;
  }

  /** Releases the frame of `pfn` (the page reads as zero again). */
  freeFrame(pfn: number): void {
    const offset = this.directory.get(pfn);
    if (offset === undefined) return;
    this.directory.delete(pfn);
    this.freeOffsets.push(offset);
  }

  /** Physical page numbers that currently have frames, ascending. */
  populatedPfns(): number[] {
    return [...this.directory.keys()].sort((a, b) => a - b);
  }

  /**
   * Byte offset of physical address `pa` in the memory, or -1 when its page has no frame
   * (`allocate` false) — the caller then treats the bytes as zero.
   */
  offsetOf(pa: bigint | number, allocate: boolean): number {
    const a = typeof pa === 'bigint' ? Number(pa) : pa;
    const pfn = Math.floor(a / PAGE_SIZE);
    const off = allocate ? this.ensureFrame(pfn) : this.frameOffset(pfn);
    return off < 0 ? -1 : off + (a - pfn * PAGE_SIZE);
  }

  /** Reads `length` bytes at `pa` (across pages; unpopulated pages read as zero). */
  read(pa: bigint | number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let a = typeof pa === 'bigint' ? Number(pa) : pa;
    let done = 0;
    while (done < length) {
      const inPage = Math.min(length - done, PAGE_SIZE - (a % PAGE_SIZE));
      const off = this.offsetOf(a, false);
      if (off >= 0) out.set(this.bytes.subarray(off, off + inPage), done);
      done += inPage;
      a += inPage;
    }
    return out;
  }

  /** Writes `data` at `pa` (across pages; frames are allocated as needed). */
  write(pa: bigint | number, data: Uint8Array): void {
    let a = typeof pa === 'bigint' ? Number(pa) : pa;
    let done = 0;
    while (done < data.length) {
      const inPage = Math.min(data.length - done, PAGE_SIZE - (a % PAGE_SIZE));
      const off = this.offsetOf(a, true);
      // Whole-array writes skip the subarray (it would move a small array out of the JS heap).
      this.bytes.set(inPage === data.length ? data : data.subarray(done, done + inPage), off);
      done += inPage;
      a += inPage;
    }
  }

  /** Reads a naturally aligned little-endian u32 (must not cross a page). */
  read32(pa: bigint | number): number {
    const off = this.offsetOf(pa, false);
    return off < 0 ? 0 : this.view.getUint32(off, true);
  }

  /** Writes a naturally aligned little-endian u32. */
  write32(pa: bigint | number, value: number): void {
    // The offset first: allocating the frame may grow the memory and detach older views.
    const off = this.offsetOf(pa, true);
    this.view.setUint32(off, value >>> 0, true);
  }

  /** Reads a naturally aligned little-endian u64 (must not cross a page). */
  read64(pa: bigint | number): bigint {
    const off = this.offsetOf(pa, false);
    return off < 0 ? 0n : this.view.getBigUint64(off, true);
  }

  /** Writes a naturally aligned little-endian u64. */
  write64(pa: bigint | number, value: bigint): void {
    const off = this.offsetOf(pa, true);
    this.view.setBigUint64(off, BigInt.asUintN(64, value), true);
  }

  private growTo(needed: number): void {
    const have = this.memory.buffer.byteLength;
    if (needed <= have) return;
    // Grow by at least 16 MiB or doubling, whichever is less, to keep grow() rare.
    const want = Math.min(WASM_MAX_PAGES, Math.ceil(needed / WASM_PAGE) + Math.max(256, Math.min(have / WASM_PAGE, 4096)));
    const delta = want - have / WASM_PAGE;
    if (delta <= 0 || needed > WASM_MAX_PAGES * WASM_PAGE) {
      throw new PhysicalStoreFullError(
        `physical memory backing store is full (${this.directory.size} frames touched); touch less memory`,
      );
    }
    this.memory.grow(delta);
    this.refreshViews();
  }

  private refreshViews(): void {
    this.u8View = new Uint8Array(this.memory.buffer);
    this.dv = new DataView(this.memory.buffer);
  }
}
