/**
 * The guest side of a VMM run: guest RAM as the VMM sees it (mapped in its address space,
 * guest physical 0 at `ram`), a page allocator over it, and the guest's own 4-level page
 * tables (ARM stage-1 with the 4 KiB granule, x86-64 first stage) written into that RAM as
 * a guest driver would. The IOMMU walks them at guest physical addresses through the nest
 * parent, so nothing here talks to the hardware: only the VMM's peek/poke of guest RAM.
 */
import * as U from '@iommufd/uapi';
import { ARM_PTE, VtdFsPte } from '@iommufd/hw-model';

const PAGE = 0x1000n;

/** Guest RAM mapped into the VMM: 64-bit words and bytes at guest physical addresses, and a page allocator. */
export class GuestRam {
  private next: bigint;

  /**
   * @param process - the VMM process that mapped the RAM
   * @param ram - VMM virtual address of guest physical address 0
   * @param size - bytes of guest RAM
   * @param firstFree - the first guest physical page the allocator hands out (below it is the guest's own)
   */
  constructor(
    readonly process: U.UserProcess,
    readonly ram: bigint,
    readonly size: bigint,
    firstFree: bigint,
  ) {
    this.next = firstFree;
  }

  /** A fresh zeroed guest page: its guest physical address. */
  allocPage(): bigint {
    if (this.next + PAGE > this.size) throw new RangeError(`guest RAM exhausted: ${this.size >> 10n} KiB hold no further page; give the guest more RAM`);
    const gpa = this.next;
    this.next += PAGE;
    U.pokeUser(this.process, this.ram + gpa, new Uint8Array(Number(PAGE)));
    return gpa;
  }

  /** Bytes at a guest physical address. */
  read(gpa: bigint, length: number): Uint8Array {
    return U.peekUser(this.process, this.ram + gpa, length);
  }

  /** Writes bytes at a guest physical address. */
  write(gpa: bigint, bytes: Uint8Array): void {
    U.pokeUser(this.process, this.ram + gpa, bytes);
  }

  /** The little-endian u64 at a guest physical address. */
  read64(gpa: bigint): bigint {
    return new DataView(this.read(gpa, 8).buffer).getBigUint64(0, true);
  }

  /** Writes little-endian u64 words from a guest physical address on. */
  write64(gpa: bigint, ...words: readonly bigint[]): void {
    const bytes = new Uint8Array(8 * words.length);
    const view = new DataView(bytes.buffer);
    words.forEach((w, i) => view.setBigUint64(8 * i, w, true));
    this.write(gpa, bytes);
  }
}

/** How one architecture's 4-level, 512-entry page-table descriptors look. */
export interface GuestPteFormat {
  /** The architecture's name for messages. */
  readonly name: string;
  /** A descriptor pointing at the next-level table at `gpa`. */
  table(gpa: bigint): bigint;
  /** A leaf descriptor mapping a 4 KiB page at `gpa`, readable and writable. */
  page(gpa: bigint): bigint;
  /** Whether a descriptor is valid (present). */
  present(descriptor: bigint): boolean;
  /** The output address of a table descriptor. */
  address(descriptor: bigint): bigint;
}

/** ARM VMSAv8-64 stage 1, 4 KiB granule: table descriptors 0b11, pages with AF, inner-shareable, read/write at EL0/EL1. */
export const ARM_STAGE1_FORMAT: GuestPteFormat = {
  name: 'ARM stage 1',
  table: (gpa) => ARM_PTE.encode({ VALID: 1n, TABLE: 1n, OA: gpa >> 12n })[0]!,
  // ATTR 1 = MAIR index 1 (normal memory in the CD's MAIR below); AP 1 = read/write, EL0 too.
  page: (gpa) => ARM_PTE.encode({ VALID: 1n, TABLE: 1n, ATTR: 1n, AP: 1n, SH: 3n, AF: 1n, NG: 1n, OA: gpa >> 12n })[0]!,
  present: (d) => ARM_PTE.get([d], 'VALID') === 1n && ARM_PTE.get([d], 'TABLE') === 1n,
  address: (d) => ARM_PTE.get([d], 'OA') << 12n,
};

/** x86-64 4-level paging as VT-d's first stage reads it: present, writable, user. */
export const X86_FIRST_STAGE_FORMAT: GuestPteFormat = {
  name: 'x86-64 first stage',
  table: (gpa) => VtdFsPte.encode({ P: 1, RW: 1, US: 1, ADDR: gpa })[0]!,
  page: (gpa) => VtdFsPte.encode({ P: 1, RW: 1, US: 1, ADDR: gpa })[0]!,
  present: (d) => VtdFsPte.get([d], 'P') === 1,
  address: (d) => VtdFsPte.get([d], 'ADDR'),
};

/**
 * A guest's 4-level page table for 48-bit input addresses and 4 KiB pages, with its tables
 * taken from guest RAM. Remapping a page only rewrites the leaf: invalidating the IOMMU's
 * caches is the guest's job, exactly as on hardware.
 */
export class GuestPageTable {
  /** Guest physical address of the top-level table (TTB0 / the PML4). */
  readonly root: bigint;

  constructor(
    private readonly ram: GuestRam,
    readonly format: GuestPteFormat,
  ) {
    this.root = ram.allocPage();
  }

  /** Maps the 4 KiB page of `va` to the guest physical page `gpa` (replacing any mapping). */
  map(va: bigint, gpa: bigint): void {
    this.ram.write64(this.leafSlot(va), this.format.page(gpa));
  }

  /** Removes the leaf of `va` (tables above it stay). */
  unmap(va: bigint): void {
    this.ram.write64(this.leafSlot(va), 0n);
  }

  /** The guest physical address of the leaf entry of `va`, creating the tables above it. */
  leafSlot(va: bigint): bigint {
    let table = this.root;
    for (let level = 0; level < 3; level++) {
      const slot = table + ((va >> BigInt(39 - 9 * level)) & 511n) * 8n;
      let d = this.ram.read64(slot);
      if (!this.format.present(d)) {
        d = this.format.table(this.ram.allocPage());
        this.ram.write64(slot, d);
      }
      table = this.format.address(d);
    }
    return table + ((va >> 12n) & 511n) * 8n;
  }
}
