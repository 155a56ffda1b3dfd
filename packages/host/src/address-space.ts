/**
 * A process address space: VMAs over anonymous memory, memfd files and driver MMIO, a page
 * table from virtual page to physical frame, and the kernel's accessors to it
 * (copy_from_user / copy_to_user / pin_user_pages).
 */
import { EFAULT, EINVAL, ENOMEM } from '@iommufd/uapi';
import { MAP_FIXED, MAP_POPULATE, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '@iommufd/uapi';

/** `MAP_HUGETLB`: accepted; backed by 4 KiB pages on a 2 MiB aligned range. */
const MAP_HUGETLB = 0x40000;
import type { MemFile } from './memfd.js';
import { HOST_PAGE_SHIFT, HOST_PAGE_SIZE, type HostPhysicalMemory, type PageRefs } from './physical.js';

const PAGE_MASK = HOST_PAGE_SIZE - 1n;
/** Where the kernel starts looking for free VA (like `mmap_base`, but bottom-up). */
const MMAP_BASE = 0x100_0000_0000n;
/** The top of the user address space (47-bit VA). */
const TASK_SIZE = 0x8000_0000_0000n;
/** Mappings this large or larger are 2 MiB aligned, as THP-aware `get_unmapped_area` does. */
const HUGE_ALIGN = 0x20_0000n;

/** Driver MMIO handed to {@link AddressSpace.mmap}: closed when its last VMA piece goes. */
export interface MmioBacking {
  readonly physAddr: bigint;
  close(): void;
  /**
   * The same region for a forked address space (vm_ops->open): a new holder of the driver
   * object, closed on its own. Undefined when the region cannot be copied (the child then
   * does not get the mapping).
   */
  dup?(): MmioBacking | undefined;
}

/** The open file a file VMA holds (`vm_file`): one reference per VMA piece. */
export interface FileHandle {
  get(): void;
  put(): void;
}

/** What a VMA maps. */
export type VmaBacking =
  | { readonly kind: 'anon' }
  /** `shmemAnon`: MAP_SHARED|MAP_ANONYMOUS, which Linux backs with a shmem file of its own. */
  | { readonly kind: 'file'; readonly file: MemFile; readonly pgoff: bigint; readonly handle: FileHandle; readonly shmemAnon?: boolean }
  | { readonly kind: 'mmio'; readonly physAddr: bigint; readonly region: MmioBacking };

/** One mapping, as `/proc/<pid>/maps` would show it. */
export interface VmaInfo {
  /** First VA. */
  readonly start: bigint;
  /** One past the last VA. */
  readonly end: bigint;
  /** PROT_* bits. */
  readonly prot: number;
  /** MAP_SHARED (else MAP_PRIVATE). */
  readonly shared: boolean;
  /** Anonymous memory, a memfd, or driver MMIO. */
  readonly kind: 'anon' | 'file' | 'mmio';
  /** memfd name for file mappings. */
  readonly name?: string;
}

interface Vma {
  start: bigint;
  end: bigint;
  prot: number;
  shared: boolean;
  backing: VmaBacking;
}

/** How an access is made: the process itself, the kernel copying, or GUP pinning. */
type Access = 'read' | 'write';

/** Counts how many VMA pieces reference each MMIO region (vm_ops open/close). */
class MmioPieces {
  private readonly counts = new Map<MmioBacking, number>();
  add(r: MmioBacking): void {
    this.counts.set(r, (this.counts.get(r) ?? 0) + 1);
  }
  drop(r: MmioBacking): void {
    const n = (this.counts.get(r) ?? 1) - 1;
    if (n === 0) {
      this.counts.delete(r);
      r.close();
    } else this.counts.set(r, n);
  }
}

/** A process's virtual memory. */
export class AddressSpace {
  private vmas: Vma[] = [];
  /** vpn → pfn for anonymous pages and private copies of file pages. */
  private readonly anon = new Map<bigint, bigint>();
  private readonly mmio = new MmioPieces();

  constructor(
    private readonly memory: HostPhysicalMemory,
    private readonly refs: PageRefs,
  ) {}

  /** The mappings, lowest address first. */
  mappings(): VmaInfo[] {
    return this.vmas.map((v) => {
      const b = v.backing;
      const named = b.kind === 'file' && !b.shmemAnon;
      return {
        start: v.start,
        end: v.end,
        prot: v.prot,
        shared: v.shared,
        kind: b.kind === 'file' && b.shmemAnon ? 'anon' : b.kind,
        ...(named ? { name: b.file.name } : {}),
      };
    });
  }

  /**
   * dup_mmap at fork(2): the child gets every VMA. Shared mappings keep referring to the same
   * pages (the file, the shmem object behind shared anonymous memory, the MMIO region);
   * private pages the parent has are copied now (copy-on-write resolved at fork, which is
   * what a pinned page gets anyway). ENOMEM (nothing kept) when RAM runs out.
   */
  fork(): AddressSpace | number {
    const child = new AddressSpace(this.memory, this.refs);
    const regions = new Map<MmioBacking, MmioBacking | undefined>();
    for (const v of this.vmas) {
      const b = v.backing;
      let backing: VmaBacking = b;
      if (b.kind === 'file') b.handle.get();
      else if (b.kind === 'mmio') {
        if (!regions.has(b.region)) regions.set(b.region, b.region.dup?.());
        const region = regions.get(b.region);
        if (!region) continue;
        backing = { kind: 'mmio', physAddr: b.physAddr, region };
        child.mmio.add(region);
      }
      child.vmas.push({ start: v.start, end: v.end, prot: v.prot, shared: v.shared, backing });
    }
    for (const [vpn, pfn] of this.anon) {
      const copy = this.refs.alloc();
      if (copy === undefined) {
        child.release();
        return ENOMEM;
      }
      this.memory.write(copy << HOST_PAGE_SHIFT, this.memory.read(pfn << HOST_PAGE_SHIFT, Number(HOST_PAGE_SIZE)));
      child.anon.set(vpn, copy);
    }
    return child;
  }

  /** Anonymous (and private-copy) pages currently backed by RAM. */
  get residentAnonPages(): number {
    return this.anon.size;
  }

  /**
   * do_mmap: validates, picks an address, inserts the VMA. Returns the VA or an errno
   * (positive number).
   */
  mmap(addr: bigint, length: bigint, prot: number, flags: number, backing: VmaBacking): bigint | number {
    if (length <= 0n) return EINVAL;
    const len = (length + PAGE_MASK) & ~PAGE_MASK;
    if (len > TASK_SIZE) return ENOMEM;
    const type = flags & (MAP_SHARED | MAP_PRIVATE);
    if (type !== MAP_SHARED && type !== MAP_PRIVATE) return EINVAL;
    let start: bigint;
    if (flags & MAP_FIXED) {
      if (addr & PAGE_MASK || addr + len > TASK_SIZE) return EINVAL;
      start = addr;
      this.unmapRange(start, start + len);
    } else {
      const found = this.findFree(len, len >= HUGE_ALIGN || flags & MAP_HUGETLB ? HUGE_ALIGN : HOST_PAGE_SIZE);
      if (found === undefined) return ENOMEM;
      start = found;
    }
    const vma: Vma = { start, end: start + len, prot, shared: type === MAP_SHARED, backing };
    if (backing.kind === 'file') backing.handle.get();
    if (backing.kind === 'mmio') this.mmio.add(backing.region);
    this.insert(vma);
    if (flags & MAP_POPULATE && backing.kind !== 'mmio') {
      for (let va = start; va < start + len; va += HOST_PAGE_SIZE) {
        const r = this.frame(vma, va, (prot & PROT_WRITE) !== 0, true);
        if (typeof r === 'number' && r === ENOMEM) {
          this.unmapRange(start, start + len);
          return ENOMEM;
        }
      }
    }
    return start;
  }

  /** munmap: addr page aligned, length > 0; unmapping a hole is not an error. */
  munmap(addr: bigint, length: bigint): number {
    if (addr & PAGE_MASK || length <= 0n) return EINVAL;
    const end = addr + ((length + PAGE_MASK) & ~PAGE_MASK);
    if (end > TASK_SIZE) return EINVAL;
    this.unmapRange(addr, end);
    return 0;
  }

  /** Unmaps everything (process exit). */
  release(): void {
    this.unmapRange(0n, TASK_SIZE);
  }

  /** Physical address behind `va` for an access by the process itself or by copy_*_user. */
  translate(va: bigint, access: Access, allocate: boolean): bigint | number | undefined {
    const vma = this.find(va);
    if (!vma) return EFAULT;
    if (access === 'read' && !(vma.prot & (PROT_READ | PROT_WRITE))) return EFAULT;
    if (access === 'write' && !(vma.prot & PROT_WRITE)) return EFAULT;
    if (vma.backing.kind === 'mmio') return vma.backing.physAddr + (va - vma.start);
    const pfn = this.frame(vma, va, access === 'write', allocate);
    if (pfn === undefined || typeof pfn === 'number') return pfn;
    return (pfn << HOST_PAGE_SHIFT) | (va & PAGE_MASK);
  }

  /** Reads user memory; untouched anonymous pages read as zero without being allocated. */
  read(va: bigint, length: number): Uint8Array | number {
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const cur = va + BigInt(done);
      const chunk = Math.min(length - done, Number(HOST_PAGE_SIZE - (cur & PAGE_MASK)));
      const pa = this.translate(cur, 'read', false);
      if (typeof pa === 'number') return pa;
      if (pa !== undefined) out.set(this.memory.read(pa, chunk), done);
      done += chunk;
    }
    return out;
  }

  /** Writes user memory; all-or-nothing (the whole range is checked first). */
  write(va: bigint, bytes: Uint8Array): number {
    for (let p = va & ~PAGE_MASK; p < va + BigInt(bytes.length); p += HOST_PAGE_SIZE) {
      const vma = this.find(p);
      if (!vma || !(vma.prot & PROT_WRITE)) return EFAULT;
    }
    let done = 0;
    while (done < bytes.length) {
      const cur = va + BigInt(done);
      const chunk = Math.min(bytes.length - done, Number(HOST_PAGE_SIZE - (cur & PAGE_MASK)));
      const pa = this.translate(cur, 'write', true);
      if (typeof pa !== 'bigint') return typeof pa === 'number' ? pa : EFAULT;
      // A write within one page passes the caller's array as is (a subarray of a small array
      // would move it out of the JS heap first).
      this.memory.write(pa, chunk === bytes.length ? bytes : bytes.subarray(done, done + chunk));
      done += chunk;
    }
    return 0;
  }

  /**
   * pin_user_pages(FOLL_LONGTERM): every page must be mapped by a RAM-backed VMA (MMIO and
   * holes → EFAULT), readable, and writable when `write` (else EFAULT too, as GUP's
   * check_vma_flags without FOLL_FORCE). Faults pages in.
   */
  pin(va: bigint, npages: number, write: boolean): { pfns: bigint[] } | number {
    const pfns: bigint[] = [];
    const fail = (e: number): number => {
      this.unpin(pfns);
      return e;
    };
    for (let i = 0; i < npages; i++) {
      const cur = (va & ~PAGE_MASK) + BigInt(i) * HOST_PAGE_SIZE;
      const vma = this.find(cur);
      if (!vma || vma.backing.kind === 'mmio' || !(vma.prot & (PROT_READ | PROT_WRITE))) return fail(EFAULT);
      if (write && !(vma.prot & PROT_WRITE)) return fail(EFAULT);
      // A long-term pin of a private mapping breaks COW first, so the pinned page is the one
      // the process keeps seeing after it writes.
      const pfn = this.frame(vma, cur, !vma.shared || write, true);
      if (pfn === undefined) return fail(EFAULT);
      if (typeof pfn === 'number') return fail(pfn);
      this.refs.pin(pfn);
      pfns.push(pfn);
    }
    return { pfns };
  }

  /**
   * Bytes from `va` (at most `length`) in pages {@link AddressSpace.pin} could pin for
   * writing, up to the first page it could not: found VMA by VMA, never page by page.
   */
  writableExtent(va: bigint, length: bigint): bigint {
    const end = va + length;
    let cur = va & ~PAGE_MASK;
    while (cur < end) {
      const vma = this.find(cur);
      if (!vma || vma.backing.kind === 'mmio' || !(vma.prot & PROT_WRITE)) break;
      cur = vma.end;
    }
    const n = cur - va;
    return n <= 0n ? 0n : n > length ? length : n;
  }

  /** unpin_user_pages. */
  unpin(pfns: readonly bigint[]): void {
    for (const pfn of pfns) this.refs.unpin(pfn);
  }

  private frame(vma: Vma, va: bigint, write: boolean, allocate: boolean): bigint | number | undefined {
    const vpn = va >> HOST_PAGE_SHIFT;
    const b = vma.backing;
    if (b.kind === 'anon') {
      const have = this.anon.get(vpn);
      if (have !== undefined || !allocate) return have;
      const pfn = this.refs.alloc();
      if (pfn === undefined) return ENOMEM;
      this.anon.set(vpn, pfn);
      return pfn;
    }
    if (b.kind === 'mmio') return undefined;
    const index = b.pgoff + (vpn - (vma.start >> HOST_PAGE_SHIFT));
    if (!vma.shared) {
      const copy = this.anon.get(vpn);
      if (copy !== undefined) return copy;
      if (write && allocate) {
        const src = b.file.page(index);
        if (typeof src === 'number') return src;
        const pfn = this.refs.alloc();
        if (pfn === undefined) return ENOMEM;
        this.memory.write(pfn << HOST_PAGE_SHIFT, this.memory.read(src << HOST_PAGE_SHIFT, Number(HOST_PAGE_SIZE)));
        this.anon.set(vpn, pfn);
        return pfn;
      }
    }
    return b.file.page(index);
  }

  private find(va: bigint): Vma | undefined {
    let lo = 0;
    let hi = this.vmas.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = this.vmas[mid];
      if (va < v.start) hi = mid - 1;
      else if (va >= v.end) lo = mid + 1;
      else return v;
    }
    return undefined;
  }

  private insert(vma: Vma): void {
    let i = 0;
    while (i < this.vmas.length && this.vmas[i].start < vma.start) i++;
    this.vmas.splice(i, 0, vma);
  }

  private findFree(len: bigint, align: bigint): bigint | undefined {
    let cand = MMAP_BASE;
    for (const v of this.vmas) {
      if (v.end <= cand) continue;
      if (cand + len <= v.start) break;
      cand = (v.end + align - 1n) & ~(align - 1n);
    }
    return cand + len <= TASK_SIZE ? cand : undefined;
  }

  /** Removes [start, end) from every VMA, splitting at the edges (no VMA straddles after). */
  private unmapRange(start: bigint, end: bigint): void {
    const kept: Vma[] = [];
    for (const v of this.vmas) {
      if (v.end <= start || v.start >= end) {
        kept.push(v);
        continue;
      }
      if (v.start < start) kept.push(this.piece(v, v.start, start));
      if (v.end > end) kept.push(this.piece(v, end, v.end));
      this.dropPages(v, v.start > start ? v.start : start, v.end < end ? v.end : end);
      this.releaseVma(v);
    }
    this.vmas = kept;
  }

  private piece(v: Vma, start: bigint, end: bigint): Vma {
    const delta = start - v.start;
    const b = v.backing;
    let backing: VmaBacking = b;
    if (b.kind === 'file') {
      backing = { ...b, pgoff: b.pgoff + (delta >> HOST_PAGE_SHIFT) };
      b.handle.get();
    } else if (b.kind === 'mmio') {
      backing = { kind: 'mmio', physAddr: b.physAddr + delta, region: b.region };
      this.mmio.add(b.region);
    }
    return { start, end, prot: v.prot, shared: v.shared, backing };
  }

  private dropPages(v: Vma, start: bigint, end: bigint): void {
    if (v.backing.kind === 'mmio') return;
    const first = start >> HOST_PAGE_SHIFT;
    const last = end >> HOST_PAGE_SHIFT;
    // A sparse range larger than what is populated (a 1 TiB guest RAM mapping): walk the
    // populated pages, so munmap costs what was touched, not what was reserved.
    if (last - first > BigInt(this.anon.size)) {
      for (const [vpn, pfn] of this.anon) {
        if (vpn >= first && vpn < last) {
          this.anon.delete(vpn);
          this.refs.put(pfn);
        }
      }
      return;
    }
    for (let vpn = first; vpn < last; vpn++) {
      const pfn = this.anon.get(vpn);
      if (pfn !== undefined) {
        this.anon.delete(vpn);
        this.refs.put(pfn);
      }
    }
  }

  private releaseVma(v: Vma): void {
    if (v.backing.kind === 'file') v.backing.handle.put();
    else if (v.backing.kind === 'mmio') this.mmio.drop(v.backing.region);
  }
}



