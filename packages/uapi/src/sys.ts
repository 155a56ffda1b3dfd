/**
 * The few non-iommufd Linux constants a VMM process needs around iommufd: mmap protections
 * and flags, open flags and poll bits, with their Linux values on x86-64 and arm64 (both
 * use the asm-generic numbers for these) and the 4 KiB base page.
 */

/** Base page size of the modelled machines (x86-64 and arm64 with 4 KiB pages). */
export const PAGE_SIZE = 4096;
/** log2 of {@link PAGE_SIZE}. */
export const PAGE_SHIFT = 12;

/** mmap prot: no access. */
export const PROT_NONE = 0x0;
/** mmap prot: readable. */
export const PROT_READ = 0x1;
/** mmap prot: writable. */
export const PROT_WRITE = 0x2;
/** mmap prot: executable (refused with EPERM on iommufd MMIO). */
export const PROT_EXEC = 0x4;

/** mmap flags: shared mapping (required for iommufd MMIO). */
export const MAP_SHARED = 0x01;
/** mmap flags: private copy-on-write mapping. */
export const MAP_PRIVATE = 0x02;
/** mmap flags: shared, with unknown flags rejected. */
export const MAP_SHARED_VALIDATE = 0x03;
/** mmap flags: place the mapping exactly at addr, replacing what is there. */
export const MAP_FIXED = 0x10;
/** mmap flags: not backed by a file (fd is -1). */
export const MAP_ANONYMOUS = 0x20;
/** mmap flags: do not reserve swap. */
export const MAP_NORESERVE = 0x4000;
/** mmap flags: prefault the pages. */
export const MAP_POPULATE = 0x8000;
/** mmap flags: like MAP_FIXED but fail with EEXIST instead of replacing. */
export const MAP_FIXED_NOREPLACE = 0x100000;
/** mmap's error return, `(void *)-1`. */
export const MAP_FAILED = -1n;

/** open flags: read only. */
export const O_RDONLY = 0o0;
/** open flags: write only. */
export const O_WRONLY = 0o1;
/** open flags: read and write. */
export const O_RDWR = 0o2;
/** open flags: non-blocking. */
export const O_NONBLOCK = 0o4000;
/** open flags: close on exec. */
export const O_CLOEXEC = 0o2000000;

/** poll bit: data to read. */
export const EPOLLIN = 0x001;
/** poll bit: urgent data. */
export const EPOLLPRI = 0x002;
/** poll bit: writing will not block. */
export const EPOLLOUT = 0x004;
/** poll bit: error. */
export const EPOLLERR = 0x008;
/** poll bit: hang up. */
export const EPOLLHUP = 0x010;
/** poll bit: invalid fd. */
export const EPOLLNVAL = 0x020;
/** poll bit: normal data to read. */
export const EPOLLRDNORM = 0x040;
/** poll bit: priority band data to read. */
export const EPOLLRDBAND = 0x080;
/** poll bit: normal data may be written. */
export const EPOLLWRNORM = 0x100;
/** poll bit: priority band data may be written. */
export const EPOLLWRBAND = 0x200;
/** poll bit: message (unused by Linux). */
export const EPOLLMSG = 0x400;
/** poll bit: peer closed its write side. */
export const EPOLLRDHUP = 0x2000;
