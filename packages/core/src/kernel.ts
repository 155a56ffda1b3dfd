/**
 * What the rest of the simulated kernel (the host) gives the core: the calling process, its
 * files, and the fd table. The host implements these; the core never imports the host.
 */
import type { Errno, FaultInjector } from '@iommufd/driver-api';

export type { Errno, FaultInjector };

/** A memfd-like file behind an fd, for IOMMU_IOAS_MAP_FILE. */
export interface KernelMemFile {
  /** File size in bytes. */
  readonly size: bigint;
  /** Pin `npages` pages from page `offsetPage`: their PFNs, or an errno. */
  pinPages(offsetPage: bigint, npages: number, write: boolean): { pfns: bigint[] } | Errno;
  /** Unpin pages pinned by {@link KernelMemFile.pinPages}. */
  unpinPages(pfns: readonly bigint[]): void;
  /**
   * `get_file`: the IOAS pages of a MAP_FILE hold the file open while any area uses them,
   * so closing the fd (or exiting) does not take the file's pages away. Optional.
   */
  get?(): void;
  /** `fput`: drops the hold taken by {@link KernelMemFile.get}. */
  put?(): void;
}

/** A successful mmap of driver MMIO; `close()` at munmap drops the owner's `users` ref. */
export interface MmapRegion {
  /** Physical address of the first byte. */
  readonly physAddr: bigint;
  /** Length in bytes. */
  readonly length: bigint;
  /** munmap: releases the owner object. */
  close(): void;
}

/** An open file as the fd table holds it (the /dev/iommu fd, a vEVENTQ fd, a FAULT fd). */
export interface KernelFile {
  /** `'[iommufd]'`, `'[iommufd-pgfault]'`, `'[iommufd-viommu-event]'`. */
  readonly kind: string;
  /**
   * ioctl(): 0 / positive, or -errno. `arg` is a user VA of `caller` (the process issuing
   * the call, the kernel's `current`); files that do not care may ignore it.
   */
  ioctl?(request: number, arg: bigint, caller?: KernelProcess): number;
  /** read(): bytes, or -errno. */
  read?(buf: Uint8Array, position: number): number;
  /** write(): bytes, or -errno. */
  write?(buf: Uint8Array, position: number): number;
  /** poll(): EPOLL* mask. */
  poll?(): number;
  /** mmap(): the region, or an errno. */
  mmap?(length: bigint, prot: number, flags: number, offset: bigint): MmapRegion | Errno;
  /** Last close. */
  release(): void;
}

/** The calling process as the core sees it (current's mm, credentials and fd table). */
export interface KernelProcess {
  /** copy_from_user: bytes at user VA, or EFAULT if any byte is unmapped. */
  copyFromUser(va: bigint, length: number): Uint8Array | Errno;
  /** copy_to_user: 0 or EFAULT (writes nothing then). */
  copyToUser(va: bigint, bytes: Uint8Array): 0 | Errno;
  /** GUP: pin the pages covering `[va, va + npages pages)`; PFNs, EFAULT, or EPERM (write on read-only). */
  pinPages(va: bigint, npages: number, write: boolean): { pfns: bigint[] } | Errno;
  /** Unpin pages pinned by {@link KernelProcess.pinPages}. */
  unpinPages(pfns: readonly bigint[]): void;
  /**
   * How many bytes from `va` (at most `length`) lie in pages GUP could pin for writing,
   * up to the first page that it could not (unmapped, read-only, MMIO). The dirty-bitmap
   * walk uses it to find where pinning its user bitmap would stop without touching every page.
   */
  writableExtent?(va: bigint, length: bigint): bigint;
  /** The memfd-like file behind an fd, or EBADF. */
  fileForFd(fd: number): KernelMemFile | Errno;
  /** get_unused_fd_flags: an fd number ≥ 0, or a negative errno (e.g. -EMFILE). */
  reserveFd(): number | Errno;
  /** fd_install. */
  installFd(fd: number, file: KernelFile): void;
  /** put_unused_fd. */
  releaseFd(fd: number): void;
  /** capable(CAP_IPC_LOCK), capable(CAP_SYS_RESOURCE). */
  capable(cap: 'CAP_IPC_LOCK' | 'CAP_SYS_RESOURCE'): boolean;
  /**
   * RLIMIT_MEMLOCK accounting in pages, checked against this process's limit: ENOMEM over
   * it. `kind` says which counter: `'user'` (the default) is the owning user's `locked_vm`
   * (IOPT_PAGES_ACCOUNT_USER), `'mm'` this address space's `locked_vm`, shown as VmLck
   * (IOPT_PAGES_ACCOUNT_MM, the VFIO type1 way).
   */
  chargeLockedPages(npages: number, kind?: LockedVmKind): 0 | Errno;
  /** Undo {@link KernelProcess.chargeLockedPages} of the same `kind`. */
  unchargeLockedPages(npages: number, kind?: LockedVmKind): void;
  /**
   * `mm->pinned_vm` (VmPin in /proc/<pid>/status): pages of this address space that
   * in-kernel users hold long-term pinned, whatever the accounting mode; `delta` may be
   * negative. Optional: a process that does not report it ignores the figure.
   */
  addPinnedPages?(delta: number): void;
  /**
   * The process has exited and its address space is gone (`mmget_not_zero()` fails): pages
   * can no longer be pinned from it (EFAULT) nor charged to its `locked_vm` (EINVAL).
   */
  readonly exited?: boolean;
}

/** Which `locked_vm` counter a pin is charged to: the user's, or the address space's. */
export type LockedVmKind = 'user' | 'mm';

/**
 * The kernel's direct map (kmap) of RAM: how the core reads and writes a pinned page by its
 * physical address, e.g. for an in-kernel access to pages whose process has exited.
 */
export interface DirectMap {
  /** `length` bytes at physical address `pa`. */
  read(pa: bigint, length: number): Uint8Array;
  /** Writes `bytes` at physical address `pa`. */
  write(pa: bigint, bytes: Uint8Array): void;
}

/** A TypeScript-API misuse of the core (never a user-space error: those are errno values). */
export class IommufdError extends Error {
  /** Always `IommufdError`. */
  override readonly name = 'IommufdError';
}

/**
 * fail_nth: fails the `n`-th call (1-based) to any allocation point, like writing `n` to
 * /proc/self/task/<tid>/fail-nth before a syscall. `calls` counts the points reached, so a
 * test loops n = 1, 2, … until `injected` stays false.
 */
export class FailNth implements FaultInjector {
  /** Allocation points reached so far. */
  calls = 0;
  /** Whether the failure was injected. */
  injected = false;
  /** The site that was made to fail. */
  failedSite: string | undefined;
  /** Fails the `n`-th allocation point (n ≥ 1); 0 never fails. */
  constructor(readonly n: number) {}
  /** {@inheritDoc @iommufd/driver-api#FaultInjector.shouldFail} */
  shouldFail(site: string): boolean {
    this.calls++;
    if (this.calls === this.n) {
      this.injected = true;
      this.failedSite = site;
      return true;
    }
    return false;
  }
}
