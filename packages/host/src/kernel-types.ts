/**
 * The host side of the core ↔ host facade (CORE-HOST-CONTRACT): the shapes the host
 * implements for the core (a process, open files, mmap regions, memfd files).
 */

/** A positive Linux errno value. */
export type Errno = number;

/** An open file as the fd table holds it. */
export interface KernelFile {
  readonly kind: string;
  ioctl?(request: number, arg: bigint): number;
  read?(buf: Uint8Array, position: number): number;
  write?(buf: Uint8Array, position: number): number;
  poll?(): number;
  mmap?(length: bigint, prot: number, flags: number, offset: bigint): MmapRegion | Errno;
  release(): void;
}

/** A successful mmap of driver MMIO. */
export interface MmapRegion {
  readonly physAddr: bigint;
  readonly length: bigint;
  close(): void;
}

/** The memfd-like file behind an fd, as IOMMU_IOAS_MAP_FILE sees it. */
export interface KernelMemFile {
  readonly size: bigint;
  pinPages(offsetPage: bigint, npages: number, write: boolean): { pfns: bigint[] } | Errno;
  unpinPages(pfns: readonly bigint[]): void;
}

/** What the core may ask of the process that called it. */
export interface KernelProcess {
  copyFromUser(va: bigint, length: number): Uint8Array | Errno;
  copyToUser(va: bigint, bytes: Uint8Array): 0 | Errno;
  pinPages(va: bigint, npages: number, write: boolean): { pfns: bigint[] } | Errno;
  unpinPages(pfns: readonly bigint[]): void;
  fileForFd(fd: number): KernelMemFile | Errno;
  reserveFd(): number | Errno;
  installFd(fd: number, file: KernelFile): void;
  releaseFd(fd: number): void;
  capable(cap: 'CAP_IPC_LOCK' | 'CAP_SYS_RESOURCE'): boolean;
  chargeLockedPages(npages: number): 0 | Errno;
  unchargeLockedPages(npages: number): void;
}
