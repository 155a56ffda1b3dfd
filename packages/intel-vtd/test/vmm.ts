// A VMM process on the machine: its anonymous memory is machine RAM (so pinned pages are
// the pages DMA reaches), it implements the core's KernelProcess and the uapi wrappers'
// UserProcess, and owns one /dev/iommu context as fd 3.
import { EBADF, EFAULT, ENOMEM } from '@iommufd/uapi';
import type { UserProcess } from '@iommufd/uapi';
import { IommuCore, type IommufdContext, type KernelFile, type KernelMemFile, type KernelProcess } from '@iommufd/core';
import type { PhysicalMemory } from '@iommufd/hw-model';

const PAGE = 4096n;

export class VmmProcess implements KernelProcess, UserProcess {
  private readonly pages = new Map<bigint, bigint>();
  private readonly fds = new Map<number, KernelFile | 'reserved'>();
  private nextVa = 0x7f00_0000_0000n;
  readonly ctx: IommufdContext;
  readonly iommufd: number;

  constructor(
    readonly mem: PhysicalMemory,
    core: IommuCore,
  ) {
    this.ctx = core.open(this);
    this.iommufd = this.reserveFd();
    this.installFd(this.iommufd, this.ctx);
  }

  /** Anonymous memory backed by RAM pages; returns the VA. */
  alloc(length: bigint): bigint {
    const va = this.nextVa;
    const n = Number((length + PAGE - 1n) / PAGE);
    const pas = this.mem.allocPages(n, { contiguous: false });
    pas.forEach((pa, i) => this.pages.set(va / PAGE + BigInt(i), pa));
    this.nextVa += BigInt(n + 1) * PAGE;
    return va;
  }
  /** Physical address behind a VA. */
  pa(va: bigint): bigint {
    const p = this.pages.get(va / PAGE);
    if (p === undefined) throw new Error(`VA 0x${va.toString(16)} is not mapped`);
    return p + (va % PAGE);
  }

  // KernelProcess
  copyFromUser(va: bigint, length: number): Uint8Array | number {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; ) {
      const a = va + BigInt(i);
      const p = this.pages.get(a / PAGE);
      if (p === undefined) return EFAULT;
      const n = Math.min(4096 - Number(a % PAGE), length - i);
      out.set(this.mem.read(p + (a % PAGE), n), i);
      i += n;
    }
    return out;
  }
  copyToUser(va: bigint, bytes: Uint8Array): 0 | number {
    for (let i = 0; i < bytes.length; i += 1) if (!this.pages.has((va + BigInt(i)) / PAGE)) return EFAULT;
    for (let i = 0; i < bytes.length; ) {
      const a = va + BigInt(i);
      const n = Math.min(4096 - Number(a % PAGE), bytes.length - i);
      this.mem.write(this.pages.get(a / PAGE)! + (a % PAGE), bytes.subarray(i, i + n));
      i += n;
    }
    return 0;
  }
  pinPages(va: bigint, npages: number): { pfns: bigint[] } | number {
    const pfns: bigint[] = [];
    for (let i = 0; i < npages; i++) {
      const p = this.pages.get(va / PAGE + BigInt(i));
      if (p === undefined) return EFAULT;
      pfns.push(p / PAGE);
    }
    return { pfns };
  }
  unpinPages(): void {}
  fileForFd(): KernelMemFile | number {
    return EBADF;
  }
  reserveFd(): number {
    let fd = 3;
    while (this.fds.has(fd)) fd++;
    this.fds.set(fd, 'reserved');
    return fd;
  }
  installFd(fd: number, file: KernelFile): void {
    this.fds.set(fd, file);
  }
  releaseFd(fd: number): void {
    this.fds.delete(fd);
  }
  capable(): boolean {
    return true;
  }
  chargeLockedPages(): 0 | number {
    return 0;
  }
  unchargeLockedPages(): void {}

  // UserProcess
  private file(fd: number): KernelFile | undefined {
    const f = this.fds.get(fd);
    return f === undefined || f === 'reserved' ? undefined : f;
  }
  ioctl(fd: number, request: number, arg: bigint | Uint8Array): number {
    const f = this.file(fd);
    if (f?.ioctl === undefined) return -EBADF;
    if (typeof arg === 'bigint') return f.ioctl(request, arg);
    const va = this.alloc(BigInt(arg.length));
    this.copyToUser(va, arg);
    const rc = f.ioctl(request, va);
    arg.set(this.copyFromUser(va, arg.length) as Uint8Array);
    this.munmap(va, BigInt(arg.length));
    return rc;
  }
  mmap(length: bigint | number): bigint {
    return this.alloc(BigInt(length));
  }
  munmap(va: bigint, length: bigint | number): number {
    for (let off = 0n; off < BigInt(length); off += PAGE) {
      const pa = this.pages.get((va + off) / PAGE);
      if (pa === undefined) continue;
      this.pages.delete((va + off) / PAGE);
      this.mem.freePages([pa]);
    }
    return 0;
  }
  poke(va: bigint, bytes: Uint8Array): void {
    if (this.copyToUser(va, bytes) !== 0) throw new Error('poke: unmapped');
  }
  peek(va: bigint, length: number): Uint8Array {
    const r = this.copyFromUser(va, length);
    if (typeof r === 'number') throw new Error('peek: unmapped');
    return r;
  }
  read(fd: number, buf: Uint8Array): number {
    return this.file(fd)?.read?.(buf, 0) ?? -EBADF;
  }
  write(fd: number, buf: Uint8Array): number {
    return this.file(fd)?.write?.(buf, 0) ?? -ENOMEM;
  }
}
