/**
 * The IOVA address space of an IOAS (`struct io_pagetable`, io_pagetable.c + pages.c):
 * areas mapping IOVA ranges to pinned pages, allowed and reserved ranges, the attached
 * domains that mirror every area, and the accesses that pin pages for in-kernel users.
 */
import {
  EADDRINUSE,
  EBUSY,
  EDEADLK,
  EEXIST,
  EFAULT,
  EINVAL,
  ENOENT,
  ENOMEM,
  ENOSPC,
  EOVERFLOW,
  EPERM,
} from '@iommufd/uapi';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE, type Device, type Errno, type IommuDomain } from '@iommufd/driver-api';
import type { DirectMap, KernelMemFile, KernelProcess } from './kernel.js';
import { ACCOUNT_MM, ACCOUNT_NONE, ACCOUNT_USER, type AccountMode, type IommufdCtxImpl } from './context.js';
import { domainLabel, type DriverOpObserver } from './observe.js';

/** The modelled kernel's PAGE_SIZE. */
export const PAGE_SIZE = 4096n;
/** HPAGE_SIZE: the automatic IOVA alignment cap with transparent huge pages. */
export const HPAGE_SIZE = 2n * 1024n * 1024n;
/** ULONG_MAX / U64_MAX on a 64-bit kernel. */
export const ULONG_MAX = (1n << 64n) - 1n;

/** An inclusive IOVA interval. */
export interface IovaRange {
  /** First IOVA. */
  readonly start: bigint;
  /** Last IOVA (inclusive). */
  readonly last: bigint;
}

function overlaps(a: IovaRange, start: bigint, last: bigint): boolean {
  return a.start <= last && start <= a.last;
}

function roundupPow2(v: bigint): bigint {
  let p = 1n;
  while (p < v) p <<= 1n;
  return p;
}

function lowestSetBit(v: bigint): bigint {
  return v & -v;
}

/** Index of the highest set bit of a non-zero bigint. */
function highestBitIndex(v: bigint): bigint {
  return BigInt(v.toString(2).length - 1);
}

/**
 * `iommu_pgsize`: the largest driver page size that fits `size` and the alignment of
 * `iova | pa`, and how many of them to map before a larger size becomes usable.
 */
function iommuPgsize(bitmap: bigint, iova: bigint, pa: bigint, size: bigint): { pgsize: bigint; count: number } | undefined {
  let sizes = bitmap & ((1n << (highestBitIndex(size) + 1n)) - 1n);
  const merged = iova | pa;
  if (merged) sizes &= (lowestSetBit(merged) << 1n) - 1n;
  if (!sizes) return undefined;
  const idx = highestBitIndex(sizes);
  const pgsize = 1n << idx;
  let span = size;
  const bigger = bitmap & ~((1n << (idx + 1n)) - 1n);
  if (bigger) {
    const next = lowestSetBit(bigger);
    // A bigger page only helps when iova and pa share the same offset inside it.
    if (((iova ^ pa) & (next - 1n)) === 0n) {
      const toBoundary = next - (merged & (next - 1n));
      if (toBoundary + next <= size) span = toBoundary;
    }
  }
  return { pgsize, count: Number(span >> idx) };
}

const hex = (n: bigint): string => `0x${n.toString(16)}`;

/** `iommu_map` of one contiguous run; on failure what this call mapped is unmapped again. */
function iommuMapRun(obs: DriverOpObserver | undefined, domain: IommuDomain, iova: bigint, pa: bigint, size: bigint, prot: number): 0 | Errno {
  const min = lowestSetBit(domain.pgsizeBitmap);
  if ((iova | pa | size) % min || !domain.ops.mapPages) return EINVAL;
  let done = 0n;
  while (done < size) {
    const p = iommuPgsize(domain.pgsizeBitmap, iova + done, pa + done, size - done);
    let r: { mapped: bigint; status: 0 | Errno } = { mapped: 0n, status: EINVAL };
    if (p) {
      obs?.opBegin('mapPages', { domain: domainLabel(domain), iova: hex(iova + done), pa: hex(pa + done), pgsize: hex(p.pgsize), pgcount: p.count, prot });
      r = domain.ops.mapPages(domain, iova + done, pa + done, p.pgsize, p.count, prot);
      obs?.opEnd('mapPages', r.status);
    }
    done += r.mapped;
    if (r.status || r.mapped === 0n) {
      if (done > 0n) unmapPages(obs, domain, iova, min, Number(done / min));
      return r.status || EINVAL;
    }
  }
  return 0;
}

/** `iommu_unmap` through the driver's `unmap_pages`; the bytes unmapped are the op's value. */
function unmapPages(obs: DriverOpObserver | undefined, domain: IommuDomain, iova: bigint, pgsize: bigint, pgcount: number): void {
  if (!domain.ops.unmapPages) return;
  obs?.opBegin('unmapPages', { domain: domainLabel(domain), iova: hex(iova), pgsize: hex(pgsize), pgcount });
  const unmapped = domain.ops.unmapPages(domain, iova, pgsize, pgcount);
  obs?.opEnd('unmapPages', 0, Number(unmapped));
}

/** Pages pinned per batch before the next is looked at (the kernel's GUP batch is of this order). */
const PIN_BATCH_PAGES = 1024;

/**
 * `iopt_pages`: the page source of one or more areas (shared by IOAS_COPY and by the halves
 * of a split area). Pages are pinned per index while any area fill or access needs them,
 * each page once (GUP) however many users it has, and accounted to the source process while
 * pinned. The source process is the one that mapped them (`source_mm`, `source_task`,
 * `source_user`): later pins (a domain attached after the mapping) pin from it, even when
 * another process issues the ioctl, and fail with EFAULT once it has exited.
 */
export class IoptPages {
  /** PFN of each pinned index. */
  private readonly pfnOf = new Map<number, bigint>();
  /** Users of each pinned index (area fills and access pins). */
  private readonly usersOf = new Map<number, number>();
  /** Pages accounted to the source process (`last_npinned`). */
  private accounted = 0;

  constructor(
    /** Where the pages come from: the process's VA or a memfd-like file. */
    readonly source: { readonly kind: 'user'; readonly va: bigint } | { readonly kind: 'file'; readonly file: KernelMemFile; readonly startPage: bigint },
    /** Number of pages. */
    readonly npages: number,
    /** Pinned for write. */
    readonly writable: boolean,
    /** Accounting mode (NONE with CAP_IPC_LOCK, USER, or MM); fixed at creation. */
    readonly accountMode: AccountMode,
    /** The source process: whose memory is pinned and to whom the pins are accounted. */
    public process: KernelProcess,
  ) {}

  /** Areas referencing these pages. */
  areaUsers = 0;

  /** An area starts using these pages; the first one holds a file source open (get_file). */
  addAreaUser(): void {
    if (this.areaUsers++ === 0 && this.source.kind === 'file') this.source.file.get?.();
  }

  /** An area stops using these pages; the last one lets a file source go (fput). */
  dropAreaUser(): void {
    if (--this.areaUsers === 0 && this.source.kind === 'file') this.source.file.put?.();
  }

  /** Number of distinct pinned pages. */
  get pinnedCount(): number {
    return this.pfnOf.size;
  }

  /** Pages currently accounted to {@link IoptPages.process}. */
  get chargedPages(): number {
    return this.accounted;
  }

  /** PFN of a pinned index. */
  pfn(index: number): bigint {
    const pfn = this.pfnOf.get(index);
    if (pfn === undefined) throw new Error(`iopt_pages: index ${index} is not pinned`);
    return pfn;
  }

  /**
   * GUP of `count` pages from index `first`. A user source pins from the source process,
   * which must still have its address space (`mmget_not_zero` → EFAULT); a file source pins
   * the file's pages whoever mapped them.
   */
  private gup(first: number, count: number): { pfns: bigint[] } | Errno {
    if (this.source.kind === 'file') return this.source.file.pinPages(this.source.startPage + BigInt(first), count, this.writable);
    if (this.process.exited) return EFAULT;
    return this.process.pinPages(this.source.va + BigInt(first) * PAGE_SIZE, count, this.writable);
  }

  private release(pfns: bigint[]): void {
    if (this.source.kind === 'user') this.process.unpinPages(pfns);
    else this.source.file.unpinPages(pfns);
  }

  /**
   * Adds a user to indexes `[first, last]`, pinning the ones not pinned yet, then accounting
   * them (the kernel pins first and updates the counters once the reader is done, so a GUP
   * failure wins over a RLIMIT_MEMLOCK one). GUP runs in batches and stops at the first
   * failure, so the work grows with what is actually pinned (bounded by RAM), not with the
   * size asked for: a 1 TiB request on a small machine fails with ENOMEM quickly.
   */
  pin(ictx: IommufdCtxImpl, first: number, last: number): 0 | Errno {
    const got: [number, bigint][] = [];
    let injected = false;
    const undo = (rc: Errno): Errno => {
      this.release(got.map(([, pfn]) => pfn));
      return rc;
    };
    for (let batchFirst = first; batchFirst <= last; batchFirst += PIN_BATCH_PAGES) {
      const batchLast = Math.min(last, batchFirst + PIN_BATCH_PAGES - 1);
      const missing: number[] = [];
      for (let i = batchFirst; i <= batchLast; i++) if (!this.usersOf.has(i)) missing.push(i);
      if (!missing.length) continue;
      // One injection site per pin call that has pages to pin (fail_nth counts calls).
      if (!injected) {
        injected = true;
        if (ictx.shouldFail('pin')) return undo(ENOMEM);
      }
      // GUP runs of consecutive missing indexes.
      for (let k = 0; k < missing.length; ) {
        let run = 1;
        while (k + run < missing.length && missing[k + run] === missing[k]! + run) run++;
        const r = this.gup(missing[k]!, run);
        if (typeof r === 'number') return undo(r);
        r.pfns.forEach((pfn, n) => got.push([missing[k]! + n, pfn]));
        k += run;
      }
    }
    if (got.length) {
      const rc = updatePinned(this.process, this.accountMode, got.length, true);
      if (rc) return undo(rc);
      this.accounted += got.length;
    }
    for (const [i, pfn] of got) this.pfnOf.set(i, pfn);
    for (let i = first; i <= last; i++) this.usersOf.set(i, (this.usersOf.get(i) ?? 0) + 1);
    return 0;
  }

  /** Drops a user of indexes `[first, last]`, unpinning (and unaccounting) those left unused. */
  unpin(first: number, last: number): void {
    const freed: bigint[] = [];
    for (let i = first; i <= last; i++) {
      const n = (this.usersOf.get(i) ?? 0) - 1;
      if (n > 0) {
        this.usersOf.set(i, n);
        continue;
      }
      this.usersOf.delete(i);
      const pfn = this.pfnOf.get(i);
      if (pfn !== undefined) freed.push(pfn);
      this.pfnOf.delete(i);
    }
    if (!freed.length) return;
    this.release(freed);
    const n = Math.min(this.accounted, freed.length);
    if (n) {
      // update_unpinned ignores a failure (an MM-accounted source that has exited).
      updatePinned(this.process, this.accountMode, n, false);
      this.accounted -= n;
    }
  }

  /**
   * `iopt_pages_rw_access`: copies `data` to or from bytes `[startByte, +data.length)` of the
   * pages. From another process than the source (or on the selftest's slow path) it goes
   * through the pinned pages, pinning temporarily what is not pinned; a single page may
   * instead be pinned from the source's memory when that still exists. Otherwise it is a
   * plain copy_to_user / copy_from_user on the source process's memory.
   */
  rw(kernel: RwContext, startByte: bigint, data: Uint8Array, write: boolean, flags: { slowPath?: boolean; kthread?: boolean } = {}): 0 | Errno {
    const startIndex = Number(startByte / PAGE_SIZE);
    const lastIndex = Number((startByte + BigInt(data.length) - 1n) / PAGE_SIZE);
    const offset = startByte % PAGE_SIZE;
    if (write && !this.writable) return EPERM;
    if (this.source.kind !== 'user') return this.rwSlow(kernel, startIndex, lastIndex, offset, data, write);
    const changeMm = kernel.current !== this.process || flags.slowPath === true;
    if (!flags.kthread && changeMm) {
      if (startIndex === lastIndex) return this.rwPage(kernel, startIndex, offset, data, write);
      return this.rwSlow(kernel, startIndex, lastIndex, offset, data, write);
    }
    if (changeMm && this.process.exited) return this.rwSlow(kernel, startIndex, lastIndex, offset, data, write);
    const va = this.source.va + startByte;
    if (write) return this.process.copyToUser(va, data) ? EFAULT : 0;
    const got = this.process.copyFromUser(va, data.length);
    if (typeof got === 'number') return EFAULT;
    data.set(got);
    return 0;
  }

  /** `iopt_pages_rw_page`: one page pinned from the live source (else the slow path). */
  private rwPage(kernel: RwContext, index: number, offset: bigint, data: Uint8Array, write: boolean): 0 | Errno {
    if (this.source.kind !== 'user' || this.process.exited || !kernel.directMap) return this.rwSlow(kernel, index, index, offset, data, write);
    const r = this.process.pinPages(this.source.va + BigInt(index) * PAGE_SIZE, 1, write);
    if (typeof r === 'number') return r;
    copyPage(kernel.directMap, r.pfns[0]!, offset, data, write);
    this.process.unpinPages(r.pfns);
    return 0;
  }

  /**
   * `iopt_pages_rw_slow`: reads the PFNs as a domain fill would — pinned pages as they are,
   * the others pinned from the source for the copy and unpinned after (never accounted).
   */
  private rwSlow(kernel: RwContext, startIndex: number, lastIndex: number, offset: bigint, data: Uint8Array, write: boolean): 0 | Errno {
    const mem = kernel.directMap;
    if (!mem) return EFAULT;
    const temp: bigint[] = [];
    const pfns: bigint[] = [];
    for (let i = startIndex; i <= lastIndex; i++) {
      let pfn = this.pfnOf.get(i);
      if (pfn === undefined) {
        const r = this.gup(i, 1);
        if (typeof r === 'number') {
          this.release(temp);
          return r;
        }
        pfn = r.pfns[0]!;
        temp.push(pfn);
      }
      pfns.push(pfn);
    }
    let done = 0;
    let off = offset;
    for (const pfn of pfns) {
      const n = Math.min(data.length - done, Number(PAGE_SIZE - off));
      copyPage(mem, pfn, off, data.subarray(done, done + n), write);
      done += n;
      off = 0n;
    }
    this.release(temp);
    return 0;
  }
}

/** What {@link IoptPages.rw} needs of the kernel: `current` and the direct map. */
export interface RwContext {
  /** The process issuing the access (the kernel's `current`). */
  readonly current: KernelProcess;
  /** kmap of physical pages, when the host provides it. */
  readonly directMap: DirectMap | undefined;
}

function copyPage(mem: DirectMap, pfn: bigint, offset: bigint, data: Uint8Array, write: boolean): void {
  const pa = pfn * PAGE_SIZE + offset;
  if (write) mem.write(pa, data);
  else data.set(mem.read(pa, data.length));
}

/**
 * `iopt_pages_update_pinned`: charges (or uncharges) `npages` to `process` as `mode` says —
 * USER on the user's locked_vm, MM on the address space's locked_vm, which needs the address
 * space to still exist (EINVAL) — and, when that succeeded, moves `pinned_vm` (VmPin), which
 * every mode keeps, NONE included.
 */
export function updatePinned(process: KernelProcess, mode: AccountMode, npages: number, inc: boolean): 0 | Errno {
  if (mode === ACCOUNT_USER) {
    if (inc) {
      const rc = process.chargeLockedPages(npages, 'user');
      if (rc) return rc;
    } else process.unchargeLockedPages(npages, 'user');
  } else if (mode === ACCOUNT_MM) {
    if (process.exited) return EINVAL;
    if (inc) {
      const rc = process.chargeLockedPages(npages, 'mm');
      if (rc) return rc;
    } else process.unchargeLockedPages(npages, 'mm');
  }
  process.addPinnedPages?.(inc ? npages : -npages);
  return 0;
}

/** `iopt_area`: one mapped IOVA range. */
export class IoptArea implements IovaRange {
  /** Domains this area is currently mapped into. */
  readonly filled = new Set<IommuDomain>();
  /** Pins held by in-kernel accesses on pages of this area. */
  numAccesses = 0;
  /** Locks held by internal accesses (HW queue memory): unmap → EBUSY. */
  numLocks = 0;
  constructor(
    /** First IOVA. */
    readonly start: bigint,
    /** Last IOVA. */
    readonly last: bigint,
    /** Page source. */
    readonly pages: IoptPages,
    /** Byte offset of `start` inside the pages (first page index × PAGE_SIZE + page offset). */
    readonly pagesByteOffset: bigint,
    /** IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE. */
    readonly iommuProt: number,
  ) {}
  /** Physical address of `iova` (its page must be pinned). */
  physOf(iova: bigint): bigint {
    const byte = this.pagesByteOffset + (iova - this.start);
    return this.pages.pfn(Number(byte / PAGE_SIZE)) * PAGE_SIZE + (byte % PAGE_SIZE);
  }
  /** First page index of the area in its pages. */
  get firstIndex(): number {
    return Number(this.pagesByteOffset / PAGE_SIZE);
  }
  /** Last page index of the area in its pages. */
  get lastIndex(): number {
    return this.pageIndexOf(this.last);
  }
  /** Index of the page containing `iova` in `pages`. */
  pageIndexOf(iova: bigint): number {
    return Number((this.pagesByteOffset + (iova - this.start)) / PAGE_SIZE);
  }
}

/** An in-kernel user of an IOAS's pages (`struct iommufd_access` as the io_pagetable sees it). */
export interface IoptAccess {
  /** PAGE_SIZE when pinning, else 1. */
  readonly iovaAlignment: bigint;
  /** Called when user space unmaps a range the access pinned: it must unpin. */
  unmap(iova: bigint, length: bigint): void;
}

/** A reservation owner: a device, a domain (aperture), or the SW-MSI window. */
export type ReservedOwner = Device | IommuDomain | object;

interface Reservation extends IovaRange {
  readonly owner: ReservedOwner;
}

/** The IOVA map of one IOAS. */
export class IoPagetable {
  /** Areas sorted by start. */
  areas: IoptArea[] = [];
  /** Allowed ranges (empty = everything allowed). */
  allowed: IovaRange[] = [];
  private reserved: Reservation[] = [];
  /** Domains mirroring every area. */
  readonly domains: IommuDomain[] = [];
  /** In-kernel accesses attached. */
  readonly accesses = new Set<IoptAccess>();
  /** Current `iova_alignment`. */
  iovaAlignment = 1n;
  /** IOMMU_OPTION_HUGE_PAGES = 0. */
  disableLargePages = false;

  constructor(readonly ictx: IommufdCtxImpl) {}

  /** Reserved ranges (sorted, merged view is not needed by callers). */
  reservedRanges(): readonly IovaRange[] {
    return this.reserved;
  }

  private areasIn(start: bigint, last: bigint): IoptArea[] {
    return this.areas.filter((a) => overlaps(a, start, last));
  }

  /** `iopt_reserve_iova`: EADDRINUSE if the range holds a mapping or an allowed range. */
  reserveIova(start: bigint, last: bigint, owner: ReservedOwner): 0 | Errno {
    if (this.areasIn(start, last).length) return EADDRINUSE;
    if (this.allowed.some((r) => overlaps(r, start, last))) return EADDRINUSE;
    this.reserved.push({ start, last, owner });
    return 0;
  }

  /** `iopt_remove_reserved_iova`: drops every reservation of `owner`. */
  removeReserved(owner: ReservedOwner): void {
    this.reserved = this.reserved.filter((r) => r.owner !== owner);
  }

  /** `iopt_set_allow_iova`: replace the allowed set; EADDRINUSE if one hits a reservation. */
  setAllowed(ranges: readonly IovaRange[]): 0 | Errno {
    for (const r of ranges) if (this.reserved.some((x) => overlaps(x, r.start, r.last))) return EADDRINUSE;
    this.allowed = [...ranges].sort((a, b) => (a.start < b.start ? -1 : 1));
    return 0;
  }

  /** Holes of the reserved set over [0, ULONG_MAX] (IOMMU_IOAS_IOVA_RANGES). */
  usableRanges(): IovaRange[] {
    const res = [...this.reserved].sort((a, b) => (a.start < b.start ? -1 : 1));
    const out: IovaRange[] = [];
    let cur = 0n;
    let done = false;
    for (const r of res) {
      if (r.start > cur) out.push({ start: cur, last: r.start - 1n });
      if (r.last >= ULONG_MAX) {
        done = true;
        break;
      }
      if (r.last + 1n > cur) cur = r.last + 1n;
    }
    if (!done) out.push({ start: cur, last: ULONG_MAX });
    return out;
  }

  /** `iopt_calculate_iova_alignment`. */
  private computeAlignment(extraDomain?: IommuDomain, extraAccess?: IoptAccess): bigint {
    let a = this.disableLargePages ? PAGE_SIZE : 1n;
    for (const d of extraDomain ? [...this.domains, extraDomain] : this.domains) {
      const min = lowestSetBit(d.pgsizeBitmap);
      if (min > a) a = min;
    }
    for (const acc of extraAccess ? [...this.accesses, extraAccess] : this.accesses) {
      if (acc.iovaAlignment > a) a = acc.iovaAlignment;
    }
    return a;
  }

  /** `iopt_check_iova_alignment`: every area must respect `align`. */
  private checkAlignment(align: bigint): 0 | Errno {
    for (const a of this.areas) {
      if (a.start % align || (a.last + 1n) % align || (a.pagesByteOffset % PAGE_SIZE) % align) return EADDRINUSE;
    }
    return 0;
  }

  /** Recomputes the alignment (after a domain/access left, or huge pages toggled). */
  recalcAlignment(): 0 | Errno {
    const a = this.computeAlignment();
    const rc = this.checkAlignment(a);
    if (rc) return rc;
    this.iovaAlignment = a;
    return 0;
  }

  /** `iopt_alloc_iova`: first fit with the kernel's alignment rules. */
  allocIova(addr: bigint, length: bigint): bigint | Errno {
    const pageOffset = addr % PAGE_SIZE;
    if (length === 0n || length >= ULONG_MAX / 2n) return EOVERFLOW;
    let align = addr === 0n ? roundupPow2(length) : roundupPow2(length) < lowestSetBit(addr) ? roundupPow2(length) : lowestSetBit(addr);
    if (align >= HPAGE_SIZE) align = HPAGE_SIZE;
    if (align < this.iovaAlignment) return EINVAL;
    const windows: IovaRange[] = this.allowed.length
      ? this.allowed
          .map((r) => ({ start: r.start < PAGE_SIZE ? PAGE_SIZE : r.start, last: r.last > ULONG_MAX - PAGE_SIZE ? ULONG_MAX - PAGE_SIZE : r.last }))
          .filter((r) => r.start <= r.last)
      : [{ start: PAGE_SIZE, last: ULONG_MAX - PAGE_SIZE }];
    const used = [...this.reserved, ...this.areas].sort((a, b) => (a.start < b.start ? -1 : 1));
    for (const w of windows) {
      let holeStart = w.start;
      const tryHole = (hs: bigint, hl: bigint): bigint | undefined => {
        const alignedUp = hs + align - 1n;
        if (alignedUp > ULONG_MAX) return undefined;
        const aligned = (alignedUp & ~(align - 1n)) | pageOffset;
        if (aligned >= hl || hl - aligned < length - 1n) return undefined;
        return aligned;
      };
      for (const u of used) {
        if (u.last < holeStart) continue;
        if (u.start > w.last) break;
        if (u.start > holeStart) {
          const got = tryHole(holeStart, u.start - 1n);
          if (got !== undefined) return got;
        }
        if (u.last >= w.last) {
          holeStart = w.last + 1n;
          break;
        }
        holeStart = u.last + 1n;
      }
      if (holeStart <= w.last) {
        const got = tryHole(holeStart, w.last);
        if (got !== undefined) return got;
      }
    }
    return ENOSPC;
  }

  /** `iopt_check_iova` for a fixed IOVA. */
  checkFixedIova(iova: bigint, length: bigint): 0 | Errno {
    if (iova % this.iovaAlignment) return EINVAL;
    const last = iova + length - 1n;
    if (last > ULONG_MAX) return EOVERFLOW;
    if (this.reserved.some((r) => overlaps(r, iova, last))) return EINVAL;
    if (this.areasIn(iova, last).length) return EEXIST;
    return 0;
  }

  /**
   * Maps `area` into `domain` as `batch_to_domain` does: each run of physically contiguous
   * pages is one `iommu_map`, which `iommuMapRun` splits into the driver's page sizes (so a
   * contiguous, suitably aligned run becomes huge IOPTEs where the driver offers them).
   * With large pages disabled (IOMMU_OPTION_HUGE_PAGES = 0, VFIO type1 v0) every CPU page is
   * its own `iommu_map` (`batch_iommu_map_small`), so any page can be unmapped alone.
   */
  private mapIntoDomain(domain: IommuDomain, area: IoptArea): 0 | Errno {
    let iova = area.start;
    const obs = this.ictx.core.observer;
    while (iova <= area.last) {
      const pa = area.physOf(iova);
      let runEnd = iova + (PAGE_SIZE - (pa % PAGE_SIZE));
      while (!this.disableLargePages && runEnd <= area.last && area.physOf(runEnd) === pa + (runEnd - iova)) runEnd += PAGE_SIZE;
      if (runEnd > area.last + 1n) runEnd = area.last + 1n;
      const rc = iommuMapRun(obs, domain, iova, pa, runEnd - iova, area.iommuProt);
      if (rc) {
        this.unmapFromDomain(domain, area, iova - 1n);
        return rc;
      }
      iova = runEnd;
    }
    return 0;
  }

  /** Unmaps `area` (up to `last`) from `domain`. */
  private unmapFromDomain(domain: IommuDomain, area: IoptArea, last: bigint = area.last): void {
    if (last < area.start) return;
    const len = last - area.start + 1n;
    const pg = lowestSetBit(domain.pgsizeBitmap);
    unmapPages(this.ictx.core.observer, domain, area.start, pg, Number(len / pg));
  }

  /** Pins an area's pages and maps it into every domain; undoes itself on failure. */
  private fillArea(area: IoptArea, domains: readonly IommuDomain[]): 0 | Errno {
    if (!domains.length) return 0;
    const rc = area.pages.pin(this.ictx, area.firstIndex, area.lastIndex);
    if (rc) return rc;
    const done: IommuDomain[] = [];
    for (const d of domains) {
      const r = this.mapIntoDomain(d, area);
      if (r) {
        for (const x of done) {
          this.unmapFromDomain(x, area);
          area.filled.delete(x);
        }
        area.pages.unpin(area.firstIndex, area.lastIndex);
        return r;
      }
      area.filled.add(d);
      done.push(d);
    }
    return 0;
  }

  /** Unmaps an area from every domain and drops its pin. */
  private unfillArea(area: IoptArea): void {
    if (!area.filled.size) return;
    for (const d of area.filled) this.unmapFromDomain(d, area);
    area.filled.clear();
    area.pages.unpin(area.firstIndex, area.lastIndex);
  }

  /**
   * `iopt_map_pages`: inserts areas for `pieces` (consecutive in IOVA from `iova`) and
   * fills every domain. All or nothing.
   */
  mapPieces(
    iova: bigint,
    pieces: readonly { pages: IoptPages; byteOffset: bigint; length: bigint }[],
    iommuProt: number,
  ): 0 | Errno {
    const created: IoptArea[] = [];
    let cur = iova;
    for (const p of pieces) {
      if ((iommuProt & IOMMU_WRITE) && !p.pages.writable) return EPERM;
      if (((p.byteOffset % PAGE_SIZE) % this.iovaAlignment) !== 0n) return EINVAL;
      if (cur % this.iovaAlignment || p.length % this.iovaAlignment) return EINVAL;
      created.push(new IoptArea(cur, cur + p.length - 1n, p.pages, p.byteOffset, iommuProt));
      cur += p.length;
    }
    for (let i = 0; i < created.length; i++) {
      const rc = this.fillArea(created[i]!, this.domains);
      if (rc) {
        for (const a of created.slice(0, i)) this.unfillArea(a);
        return rc;
      }
    }
    for (const a of created) {
      a.pages.addAreaUser();
      this.areas.push(a);
    }
    this.areas.sort((a, b) => (a.start < b.start ? -1 : 1));
    return 0;
  }

  /** New user pages for IOAS_MAP. */
  static userPages(ictx: IommufdCtxImpl, va: bigint, length: bigint, writable: boolean): { pages: IoptPages; byteOffset: bigint } {
    const first = va & ~(PAGE_SIZE - 1n);
    const npages = Number((va + length - first + PAGE_SIZE - 1n) / PAGE_SIZE);
    return { pages: new IoptPages({ kind: 'user', va: first }, npages, writable, accountModeFor(ictx), ictx.process), byteOffset: va - first };
  }

  /** New file pages for IOAS_MAP_FILE. */
  static filePages(ictx: IommufdCtxImpl, file: KernelMemFile, start: bigint, length: bigint, writable: boolean): { pages: IoptPages; byteOffset: bigint } {
    const firstPage = start / PAGE_SIZE;
    const off = start % PAGE_SIZE;
    const npages = Number((off + length + PAGE_SIZE - 1n) / PAGE_SIZE);
    return {
      pages: new IoptPages({ kind: 'file', file, startPage: firstPage }, npages, writable, accountModeFor(ictx), ictx.process),
      byteOffset: off,
    };
  }

  /**
   * `iopt_get_pages`: the pieces covering `[iova, iova + length)`, or ENOENT when not
   * fully covered by contiguous areas.
   */
  getPieces(iova: bigint, length: bigint): { pages: IoptPages; byteOffset: bigint; length: bigint }[] | Errno {
    const last = iova + length - 1n;
    const out: { pages: IoptPages; byteOffset: bigint; length: bigint }[] = [];
    let cur = iova;
    for (const a of this.areasIn(iova, last)) {
      if (a.start > cur) return ENOENT;
      const end = a.last < last ? a.last : last;
      out.push({ pages: a.pages, byteOffset: a.pagesByteOffset + (cur - a.start), length: end - cur + 1n });
      cur = end + 1n;
      if (cur > last) break;
    }
    if (cur <= last) return ENOENT;
    return out;
  }

  private removeArea(a: IoptArea): void {
    this.unfillArea(a);
    this.areas = this.areas.filter((x) => x !== a);
    a.pages.dropAreaUser();
  }

  /**
   * `iopt_unmap_iova_range`: whole areas only. Returns the bytes unmapped, or an errno
   * (areas removed before the error stay removed).
   */
  unmapRange(start: bigint, last: bigint, accessesOf: (area: IoptArea) => readonly IoptAccess[]): { unmapped: bigint; rc: 0 | Errno } {
    let unmapped = 0n;
    let retries = 0;
    for (;;) {
      const a = this.areas.find((x) => overlaps(x, start, last));
      if (!a) break;
      if (a.numLocks) return { unmapped, rc: EBUSY };
      if (a.start < start || a.last > last) return { unmapped, rc: ENOENT };
      if (a.numAccesses) {
        if (++retries > 100) return { unmapped, rc: EDEADLK };
        for (const acc of accessesOf(a)) acc.unmap(a.start, a.last - a.start + 1n);
        continue;
      }
      unmapped += a.last - a.start + 1n;
      this.removeArea(a);
    }
    return { unmapped, rc: unmapped ? 0 : ENOENT };
  }

  /**
   * `iopt_area_split`: cut the area containing `iova` so that `iova` becomes the last IOVA of
   * the left part (VFIO type1 compatibility: unmapping inside a mapping). Both parts keep
   * the same pages; the domains' IOPTEs are untouched, which is only safe without large
   * pages.
   */
  private splitArea(area: IoptArea, iova: bigint): 0 | Errno {
    const newStart = iova + 1n;
    if (iova === area.start || iova === area.last) return 0;
    const align = this.iovaAlignment;
    const startByte = area.pagesByteOffset + (newStart - area.start);
    if (newStart % align || startByte % align) return EINVAL;
    if (this.ictx.shouldFail('area-alloc')) return ENOMEM;
    // Accesses are not tracked finely enough to be split.
    if (area.numAccesses) return EINVAL;
    if (area.filled.size && !this.disableLargePages) return EINVAL;
    const lhs = new IoptArea(area.start, iova, area.pages, area.pagesByteOffset, area.iommuProt);
    const rhs = new IoptArea(newStart, area.last, area.pages, startByte, area.iommuProt);
    for (const d of area.filled) {
      lhs.filled.add(d);
      rhs.filled.add(d);
    }
    // The halves hold the area's pin; a page shared by both (cut inside it) gets one more user.
    if (area.filled.size && rhs.firstIndex <= lhs.lastIndex) {
      const rc = area.pages.pin(this.ictx, rhs.firstIndex, lhs.lastIndex);
      if (rc) return rc;
    }
    area.pages.addAreaUser();
    this.areas.splice(this.areas.indexOf(area), 1, lhs, rhs);
    return 0;
  }

  /** `iopt_cut_iova`: split the areas containing each IOVA (each becomes a last IOVA). */
  cutIova(iovas: readonly bigint[]): 0 | Errno {
    for (const iova of iovas) {
      const area = this.areas.find((a) => a.start <= iova && iova <= a.last);
      if (!area) continue;
      const rc = this.splitArea(area, iova);
      if (rc) return rc;
    }
    return 0;
  }

  /** `iopt_unmap_all`: like unmapRange over everything, but an empty IOAS is not an error. */
  unmapAll(accessesOf: (area: IoptArea) => readonly IoptAccess[]): { unmapped: bigint; rc: 0 | Errno } {
    const r = this.unmapRange(0n, ULONG_MAX, accessesOf);
    return r.rc === ENOENT ? { unmapped: r.unmapped, rc: 0 } : r;
  }

  /** `iopt_disable_large_pages`: EINVAL once a domain mirrors mappings (their IOPTEs may be huge). */
  disableLargePagesChecked(): 0 | Errno {
    if (this.disableLargePages) return 0;
    if (this.domains.length && this.areas.length) return EINVAL;
    this.disableLargePages = true;
    const rc = this.recalcAlignment();
    if (rc) this.disableLargePages = false;
    return rc;
  }

  /** `iopt_enable_large_pages`. */
  enableLargePages(): void {
    this.disableLargePages = false;
    this.recalcAlignment();
  }

  /** `iopt_table_add_domain`: align, reserve the aperture complement, fill. */
  addDomain(domain: IommuDomain): 0 | Errno {
    if (lowestSetBit(domain.pgsizeBitmap) > PAGE_SIZE) return EINVAL;
    const align = this.computeAlignment(domain);
    let rc = this.checkAlignment(align);
    if (rc) return rc;
    const g = domain.geometry;
    if (g.apertureStart !== 0n) {
      rc = this.reserveIova(0n, g.apertureStart - 1n, domain);
      if (rc) return rc;
    }
    if (g.apertureEnd !== ULONG_MAX) {
      rc = this.reserveIova(g.apertureEnd + 1n, ULONG_MAX, domain);
      if (rc) {
        this.removeReserved(domain);
        return rc;
      }
    }
    const filled: IoptArea[] = [];
    for (const a of this.areas) {
      rc = this.fillOne(a, domain);
      if (rc) {
        for (const f of filled) this.unfillOne(f, domain);
        this.removeReserved(domain);
        return rc;
      }
      filled.push(a);
    }
    this.domains.push(domain);
    this.iovaAlignment = align;
    return 0;
  }

  private fillOne(area: IoptArea, domain: IommuDomain): 0 | Errno {
    if (!area.filled.size) return this.fillArea(area, [domain]);
    const rc = this.mapIntoDomain(domain, area);
    if (!rc) area.filled.add(domain);
    return rc;
  }

  private unfillOne(area: IoptArea, domain: IommuDomain): void {
    if (!area.filled.has(domain)) return;
    this.unmapFromDomain(domain, area);
    area.filled.delete(domain);
    if (!area.filled.size) area.pages.unpin(area.firstIndex, area.lastIndex);
  }

  /** `iopt_table_remove_domain`. */
  removeDomain(domain: IommuDomain): void {
    const i = this.domains.indexOf(domain);
    if (i < 0) return;
    for (const a of this.areas) this.unfillOne(a, domain);
    this.domains.splice(i, 1);
    this.removeReserved(domain);
    this.recalcAlignment();
  }

  /** `iopt_add_access`: joins the alignment computation. */
  addAccess(access: IoptAccess): 0 | Errno {
    const align = this.computeAlignment(undefined, access);
    const rc = this.checkAlignment(align);
    if (rc) return rc;
    this.accesses.add(access);
    this.iovaAlignment = align;
    return 0;
  }

  /** `iopt_remove_access`. */
  removeAccess(access: IoptAccess): void {
    this.accesses.delete(access);
    this.recalcAlignment();
  }

  /** `iopt_unmap_all` used at IOAS destroy. */
  destroyAll(): void {
    for (const a of [...this.areas]) this.removeArea(a);
  }

  /**
   * `iopt_table_enforce_dev_resv_regions`: reserve a device's reserved regions (a fault
   * injection point that fails with EINVAL, as in the kernel). A driver offering both HW and
   * SW MSI regions, or two SW MSI regions, is refused after the reservations.
   */
  enforceDeviceRegions(dev: Device, regions: readonly { start: bigint; length: bigint; type: string }[]): 0 | Errno {
    if (this.ictx.shouldFail('resv-regions')) return EINVAL;
    let hwMsi = 0;
    let swMsi = 0;
    for (const r of regions) {
      if (r.type === 'direct-relaxable') continue;
      if (r.type === 'msi') hwMsi++;
      if (r.type === 'sw-msi') swMsi++;
      const rc = this.reserveIova(r.start, r.start + r.length - 1n, dev);
      if (rc) {
        this.removeReserved(dev);
        return rc;
      }
    }
    if ((swMsi && hwMsi) || swMsi > 1) {
      this.removeReserved(dev);
      return EINVAL;
    }
    return 0;
  }

}



/** The account mode a new mapping starts with (§1.1): NONE with CAP_IPC_LOCK, else USER (MM if the ctx is MM). */
export function accountModeFor(ictx: IommufdCtxImpl): AccountMode {
  if (ictx.process.capable('CAP_IPC_LOCK')) return ACCOUNT_NONE;
  return ictx.accountMode === ACCOUNT_MM ? ACCOUNT_MM : ACCOUNT_USER;
}

/** IOMMU prot of a MAP/COPY (IOMMU_CACHE always). */
export function iommuProtOf(flags: number, writeable: number, readable: number): number {
  let prot = IOMMU_CACHE;
  if (flags & writeable) prot |= IOMMU_WRITE;
  if (flags & readable) prot |= IOMMU_READ;
  return prot;
}
