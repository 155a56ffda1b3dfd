/**
 * The host's view of physical memory: what the process address space needs from the
 * machine (RAM pages to back anonymous and memfd memory, byte access for peek/poke and for
 * DMA) behind one small interface over hw-model's `PhysicalMemory` (RAM regions, MMIO
 * dispatch, the page allocator).
 */
import { PhysicalMemory, PhysicalMemoryError } from '@iommufd/hw-model';
import { PAGE_SIZE } from '@iommufd/queue-engine';

/** The 4 KiB page of the host, as a bigint. */
export const HOST_PAGE_SIZE = BigInt(PAGE_SIZE);
/** log2 of {@link HOST_PAGE_SIZE}. */
export const HOST_PAGE_SHIFT = 12n;

/** Physical memory as the host uses it. */
export interface HostPhysicalMemory {
  /** Allocates one zeroed RAM page; its frame number, or `undefined` when RAM is exhausted. */
  allocPage(): bigint | undefined;
  /** Returns a page to the RAM allocator. */
  freePage(pfn: bigint): void;
  /** Reads bytes at a physical address (RAM or MMIO). */
  read(pa: bigint, length: number): Uint8Array;
  /** Writes bytes at a physical address (RAM or MMIO). */
  write(pa: bigint, bytes: Uint8Array): void;
  /** RAM pages currently handed out. */
  readonly pagesInUse: number;
}

/**
 * RAM of the machine's {@link PhysicalMemory} (one page allocator shared with the drivers,
 * which take their tables and queues from the same RAM).
 */
export class MachineMemory implements HostPhysicalMemory {
  private inUse = 0;
  /** Pages taken from the machine allocator in chunks and not handed out yet (lowest last). */
  private readonly spare: bigint[] = [];

  constructor(readonly machine: PhysicalMemory) {}

  allocPage(): bigint | undefined {
    if (this.spare.length === 0 && !this.refill()) return undefined;
    const pfn = this.spare.pop()!;
    // A recycled page must read as zero again, as a freshly faulted page does.
    this.machine.store.freeFrame(Number(pfn));
    this.inUse++;
    return pfn;
  }

  freePage(pfn: bigint): void {
    this.inUse--;
    // Keep at most one refill's worth; the rest goes back to the machine allocator, which
    // the drivers share for their tables and queues (else freed process RAM stays out of
    // their reach and a later page-table allocation fails with ENOMEM).
    if (this.spare.length >= REFILL_PAGES) {
      this.machine.freePages([pfn << HOST_PAGE_SHIFT]);
      return;
    }
    this.machine.store.freeFrame(Number(pfn));
    this.spare.push(pfn);
  }

  read(pa: bigint, length: number): Uint8Array {
    if (isRegisterAccess(this.machine, pa, length)) {
      const v = REGISTER_READ[length]!(this.machine, pa);
      return Uint8Array.from({ length }, (_, i) => Number((v >> BigInt(8 * i)) & 0xffn));
    }
    return this.machine.read(pa, length);
  }

  write(pa: bigint, bytes: Uint8Array): void {
    if (isRegisterAccess(this.machine, pa, bytes.length)) {
      let v = 0n;
      for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
      REGISTER_WRITE[bytes.length]!(this.machine, pa, v);
      return;
    }
    this.machine.write(pa, bytes);
  }

  get pagesInUse(): number {
    return this.inUse;
  }

  /** Takes pages from the machine allocator in chunks (its search is linear per call). */
  private refill(): boolean {
    for (let n = REFILL_PAGES; n >= 1; n >>= 1) {
      try {
        const pages = this.machine.allocPages(n, { contiguous: true });
        for (let i = pages.length - 1; i >= 0; i--) this.spare.push(pages[i] >> HOST_PAGE_SHIFT);
        return true;
      } catch (e) {
        if (!(e instanceof PhysicalMemoryError)) throw e;
      }
    }
    return false;
  }
}

/**
 * A naturally aligned 1/2/4/8-byte access to MMIO is one register access of that width, as a
 * CPU load/store of that size is (device registers ignore byte lanes of wider registers).
 */
function isRegisterAccess(machine: PhysicalMemory, pa: bigint, length: number): boolean {
  return (length === 1 || length === 2 || length === 4 || length === 8) && pa % BigInt(length) === 0n && machine.regionAt(pa)?.kind === 'mmio';
}

const REGISTER_READ: Record<number, (m: PhysicalMemory, pa: bigint) => bigint> = {
  1: (m, pa) => BigInt(m.read8(pa)),
  2: (m, pa) => BigInt(m.read16(pa)),
  4: (m, pa) => BigInt(m.read32(pa)),
  8: (m, pa) => m.read64(pa),
};

const REGISTER_WRITE: Record<number, (m: PhysicalMemory, pa: bigint, v: bigint) => void> = {
  1: (m, pa, v) => m.write8(pa, Number(v)),
  2: (m, pa, v) => m.write16(pa, Number(v)),
  4: (m, pa, v) => m.write32(pa, Number(v)),
  8: (m, pa, v) => m.write64(pa, v),
};

/** Pages the host takes from the machine allocator at a time. */
const REFILL_PAGES = 512;

/** A machine memory with one RAM region of `ramBytes` at `ramBase`. */
export function ramMemory(ramBase: bigint, ramBytes: bigint): MachineMemory {
  const machine = new PhysicalMemory();
  machine.addRam(ramBase, ramBytes);
  return new MachineMemory(machine);
}

/**
 * Reference and pin counts of RAM pages owned by processes and memfds, like `struct page`'s
 * refcount and the GUP pin bias: a page is returned to RAM when its last reference goes,
 * so a page pinned by iommufd outlives its munmap.
 */
export class PageRefs {
  private readonly refs = new Map<bigint, { refs: number; pins: number }>();
  /** Sum of `pins` over `refs`, kept as pins come and go (leak checks read it after every call). */
  private pins = 0;

  constructor(private readonly memory: HostPhysicalMemory) {}

  /** A new page holding one reference, or `undefined` when RAM is exhausted. */
  alloc(): bigint | undefined {
    const pfn = this.memory.allocPage();
    if (pfn !== undefined) this.refs.set(pfn, { refs: 1, pins: 0 });
    return pfn;
  }

  get(pfn: bigint): void {
    const e = this.refs.get(pfn);
    if (e) e.refs++;
  }

  put(pfn: bigint): void {
    const e = this.refs.get(pfn);
    if (!e) return;
    if (--e.refs === 0) {
      this.refs.delete(pfn);
      this.memory.freePage(pfn);
    }
  }

  pin(pfn: bigint): void {
    const e = this.refs.get(pfn);
    if (!e) return;
    e.refs++;
    e.pins++;
    this.pins++;
  }

  unpin(pfn: bigint): void {
    const e = this.refs.get(pfn);
    if (!e) return;
    e.pins--;
    this.pins--;
    this.put(pfn);
  }

  /** Long-term pins held on a page (0 for pages the host does not own). */
  pinCount(pfn: bigint): number {
    return this.refs.get(pfn)?.pins ?? 0;
  }

  /** Total pins over every page. */
  get totalPins(): number {
    return this.pins;
  }

  /** Whether the host owns the page (ram page referenced by a process or memfd). */
  owns(pfn: bigint): boolean {
    return this.refs.has(pfn);
  }
}
