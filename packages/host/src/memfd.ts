/**
 * memfd-like files: shmem pages that several mappings share and that
 * IOMMU_IOAS_MAP_FILE pins by file offset.
 */
import { EFAULT, EINVAL, ENOMEM } from '@iommufd/uapi';
import { HOST_PAGE_SHIFT, HOST_PAGE_SIZE, type PageRefs } from './physical.js';

/** A memfd: a size and lazily allocated pages. */
export class MemFile {
  readonly kind = '[memfd]';
  private readonly pages = new Map<bigint, bigint>();
  private sizeBytes: bigint;

  constructor(
    readonly name: string,
    size: bigint,
    private readonly refs: PageRefs,
  ) {
    this.sizeBytes = size;
  }

  /** The file size in bytes (`i_size`). */
  get size(): bigint {
    return this.sizeBytes;
  }

  /** ftruncate: pages past the new end are dropped (pinned pages live on until unpinned). */
  truncate(size: bigint): void {
    const keep = (size + HOST_PAGE_SIZE - 1n) >> HOST_PAGE_SHIFT;
    for (const [index, pfn] of [...this.pages]) {
      if (index >= keep) {
        this.pages.delete(index);
        this.refs.put(pfn);
      }
    }
    this.sizeBytes = size;
  }

  /**
   * The frame backing page `index`, allocated (zeroed) on first touch; EFAULT beyond the
   * end of the file (SIGBUS for a process), ENOMEM when RAM is exhausted.
   */
  page(index: bigint): bigint | number {
    if (index < 0n || index >= (this.sizeBytes + HOST_PAGE_SIZE - 1n) >> HOST_PAGE_SHIFT) return EFAULT;
    const have = this.pages.get(index);
    if (have !== undefined) return have;
    const pfn = this.refs.alloc();
    if (pfn === undefined) return ENOMEM;
    this.pages.set(index, pfn);
    return pfn;
  }

  /**
   * Pins `npages` pages from page `offsetPage` (the shmem side of IOMMU_IOAS_MAP_FILE).
   * A range reaching past the end of the file is EINVAL, as memfd_pin_folios() returns.
   */
  pinPages(offsetPage: bigint, npages: number, _write: boolean): { pfns: bigint[] } | number {
    if ((offsetPage + BigInt(npages)) << HOST_PAGE_SHIFT > this.sizeBytes + HOST_PAGE_SIZE - 1n) return EINVAL;
    const pfns: bigint[] = [];
    for (let i = 0; i < npages; i++) {
      const pfn = this.page(offsetPage + BigInt(i));
      if (typeof pfn === 'number') {
        this.unpinPages(pfns);
        return pfn;
      }
      this.refs.pin(pfn);
      pfns.push(pfn);
    }
    return { pfns };
  }

  /** Drops pins taken by {@link MemFile.pinPages}. */
  unpinPages(pfns: readonly bigint[]): void {
    for (const pfn of pfns) this.refs.unpin(pfn);
  }

  /** Last close of the file: its pages go (mappings keep their own references). */
  release(): void {
    this.truncate(0n);
  }
}
