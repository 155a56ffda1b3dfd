/**
 * The fd table: lowest free descriptor first (from 3; 0–2 are stdio), reserve/install split
 * as in the kernel, and open-file reference counts (an mmap, a bound VFIO device or a dup
 * keeps a file alive after its fd is closed; `release()` runs on the last reference).
 */
import { EBADF, EMFILE } from '@iommufd/uapi';
import type { KernelFile } from './kernel-types.js';

/** An open file description: the file and how many holders it has. */
export class OpenFile {
  private refs = 1;
  constructor(readonly file: KernelFile) {}

  /** Another holder (fd, mapping, bound device). */
  get(): void {
    this.refs++;
  }

  /** Drops a holder; the file is released with the last one. */
  put(): void {
    if (--this.refs === 0) this.file.release();
  }

  /** Holders right now. */
  get holders(): number {
    return this.refs;
  }
}

const RESERVED = Symbol('reserved');

/** Per-process descriptor table. */
export class FdTable {
  private readonly slots = new Map<number, OpenFile | typeof RESERVED>();

  constructor(private readonly limit = 1024) {}

  /** get_unused_fd: reserves the lowest free descriptor. */
  reserve(): number {
    for (let fd = 3; fd < this.limit; fd++) {
      if (!this.slots.has(fd)) {
        this.slots.set(fd, RESERVED);
        return fd;
      }
    }
    return -EMFILE;
  }

  /** fd_install into a reserved slot. */
  install(fd: number, file: OpenFile): void {
    if (this.slots.get(fd) !== RESERVED) throw new Error(`fd ${fd} was not reserved before install`);
    this.slots.set(fd, file);
  }

  /** put_unused_fd: gives back a reserved slot that was never installed. */
  unreserve(fd: number): void {
    if (this.slots.get(fd) === RESERVED) this.slots.delete(fd);
  }

  /** The open file behind an installed fd. */
  lookup(fd: number): OpenFile | undefined {
    const s = this.slots.get(fd);
    return s === RESERVED ? undefined : s;
  }

  /** close(): 0 or EBADF (as a positive errno). */
  close(fd: number): number {
    const s = this.slots.get(fd);
    if (s === undefined || s === RESERVED) return EBADF;
    this.slots.delete(fd);
    s.put();
    return 0;
  }

  /**
   * dup_fd at fork(2): the same descriptors referring to the same open files, each file
   * gaining a holder (so a close in one process leaves the file open for the other).
   */
  fork(): FdTable {
    const child = new FdTable(this.limit);
    for (const [fd, of] of this.entries()) {
      of.get();
      child.slots.set(fd, of);
    }
    return child;
  }

  /** Installed descriptors, ascending. */
  entries(): [number, OpenFile][] {
    const out: [number, OpenFile][] = [];
    for (const [fd, s] of this.slots) if (s !== RESERVED) out.push([fd, s]);
    return out.sort((a, b) => a[0] - b[0]);
  }
}
