/**
 * Linux constants the host (not the iommufd uAPI) owns: mmap protection and flags
 * (`include/uapi/asm-generic/mman-common.h`), open flags, poll bits and the errno values the
 * process layer returns. Values are the x86-64 / arm64 ones.
 */

/** Pages may not be accessed. */
export const PROT_NONE = 0x0;
/** Pages may be read. */
export const PROT_READ = 0x1;
/** Pages may be written. */
export const PROT_WRITE = 0x2;
/** Pages may be executed. */
export const PROT_EXEC = 0x4;

/** Share changes (MMIO mappings of driver regions must be shared). */
export const MAP_SHARED = 0x01;
/** Changes are private (copy on write). */
export const MAP_PRIVATE = 0x02;
/** Place the mapping at exactly `addr` (the host ignores hints without it). */
export const MAP_FIXED = 0x10;
/** Not backed by a file: zero-filled memory. */
export const MAP_ANONYMOUS = 0x20;
/** Pre-fault the pages (allocate the physical pages at mmap time). */
export const MAP_POPULATE = 0x8000;
/** Huge pages (accepted; the host backs them with 4 KiB pages that it allocates contiguously). */
export const MAP_HUGETLB = 0x40000;

/** `read()`/`poll()` readiness bits (`include/uapi/linux/eventpoll.h`). */
export const EPOLLIN = 0x001;
/** Writable. */
export const EPOLLOUT = 0x004;
