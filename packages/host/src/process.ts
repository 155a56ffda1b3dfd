/**
 * The VMM process: an address space, an fd table and the system calls a VMM makes
 * (open/close/ioctl/read/write/mmap/munmap), each returning 0 / a value or -errno as Linux
 * does. It is also the `KernelProcess` the core copies from, pins and installs fds into.
 */
import { AddressSpace, type MmioBacking, type VmaInfo } from './address-space.js';
import { EBADF, EFAULT, EINVAL, ENODEV, ENOMEM, ENOTTY } from '@iommufd/uapi';
import { FdTable, OpenFile } from './fd-table.js';
import type { Errno, KernelFile, KernelMemFile, KernelProcess } from './kernel-types.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '@iommufd/uapi';
import { MemFile } from './memfd.js';
import { HOST_PAGE_SIZE, type HostPhysicalMemory, type PageRefs } from './physical.js';

/** Opens a path of the simulated filesystem for a process: a file, or a positive errno. */
export type PathOpener = (path: string, process: ProcessImpl) => KernelFile | Errno;

/** Resource limits and privileges of a {@link HostProcess}. */
export interface ProcessCredentials {
  /** CAP_IPC_LOCK (pinned pages are not charged against RLIMIT_MEMLOCK). Default true (selftests run as root). */
  capIpcLock: boolean;
  /** CAP_SYS_RESOURCE. Default true. */
  capSysResource: boolean;
  /** RLIMIT_MEMLOCK in pages. Default 8 MiB worth. */
  memlockLimitPages: number;
}

/** One row of {@link HostProcess.fds}. */
export interface FdInfo {
  readonly fd: number;
  /** The file's kind: '[iommufd]', '[vfio-device]', '[memfd]', '[iommufd-viommu-event]' … */
  readonly kind: string;
}

/** 0 stays 0 (never -0); an errno becomes -errno. */
const neg = (e: number): number => (e === 0 ? 0 : -e);

const scratchAlign = (n: number): bigint => ((BigInt(Math.max(n, 1)) + HOST_PAGE_SIZE - 1n) / HOST_PAGE_SIZE) * HOST_PAGE_SIZE;

/**
 * The VMM process as a program sees it: the system calls, returning 0 / a value or -errno as
 * Linux does, plus memfd helpers and inspection.
 */
export interface HostProcess {
  /** Process id. */
  readonly pid: number;
  /** Privileges and limits; tests may change them (e.g. drop CAP_IPC_LOCK). */
  readonly credentials: ProcessCredentials;
  /** Pages charged to RLIMIT_MEMLOCK right now. */
  readonly lockedPages: number;
  /** open(2): an fd or -errno (ENOENT for a path the host does not have). */
  open(path: string): number;
  /** close(2): 0 or -EBADF. The file is released when its last holder goes. */
  close(fd: number): number;
  /**
   * ioctl(2). `arg` is a user VA, or a buffer the host places in process memory for the
   * call and copies back afterwards (so the caller sees exactly what the kernel wrote).
   */
  ioctl(fd: number, request: number, arg?: bigint | Uint8Array): number;
  /** read(2) at file position 0 (event queues are not seekable): bytes or -errno. */
  read(fd: number, buf: Uint8Array): number;
  /** write(2) at file position 0: bytes or -errno. */
  write(fd: number, buf: Uint8Array): number;
  /** poll(2) of one fd: the EPOLL* mask, or -EBADF. */
  poll(fd: number): number;
  /**
   * mmap(2): `fd` -1 with MAP_ANONYMOUS for memory, a memfd for shared file memory, an
   * iommufd for a driver MMIO region. Returns the VA, or -errno as a bigint.
   */
  mmap(length: bigint | number, prot: number, flags: number, fd?: number, offset?: bigint | number, addr?: bigint): bigint;
  /** munmap(2): 0 or -EINVAL; partial unmaps split mappings. */
  munmap(va: bigint, length: bigint | number): number;
  /** The process writing its own memory: 0, or -EFAULT (where a real process would get SIGSEGV). */
  poke(va: bigint, bytes: Uint8Array): number;
  /** The process reading its own memory: the bytes, or -EFAULT as a number. */
  peek(va: bigint, length: number): Uint8Array | number;
  /** memfd_create(2) + ftruncate(size): an fd of a shmem file, or -errno. */
  memfdCreate(name: string, size?: bigint | number): number;
  /** ftruncate(2) of a memfd: 0 or -errno. */
  ftruncate(fd: number, size: bigint | number): number;
  /** Open descriptors and their file kinds. */
  fds(): FdInfo[];
  /** The process's mappings. */
  mappings(): VmaInfo[];
}

/** The process implementation: also the `KernelProcess` the core copies from, pins and installs fds into. */
export class ProcessImpl implements HostProcess {
  /** The process's memory map. */
  readonly mm: AddressSpace;
  /** Privileges and limits; tests may change them (e.g. drop CAP_IPC_LOCK). */
  readonly credentials: ProcessCredentials = {
    capIpcLock: true,
    capSysResource: true,
    memlockLimitPages: (8 << 20) / 4096,
  };
  private readonly table = new FdTable();
  private locked = 0;
  /** The view of this process the core uses (copy_*_user, GUP, fd install, rlimits). */
  readonly kernel: KernelProcess;

  constructor(
    readonly pid: number,
    private readonly memory: HostPhysicalMemory,
    private readonly refs: PageRefs,
    private readonly opener: PathOpener,
  ) {
    const files = new Map<MemFile, OpenFile>();
    this.memfdFiles = files;
    this.mm = new AddressSpace(memory, refs, {
      get: (f) => files.get(f)?.get(),
      put: (f) => files.get(f)?.put(),
    });
    this.kernel = this.makeKernelView();
  }

  private readonly memfdFiles: Map<MemFile, OpenFile>;

  /** Pages charged to RLIMIT_MEMLOCK right now (what /proc/pid/status shows as VmPin, in pages). */
  get lockedPages(): number {
    return this.locked;
  }

  /** open(2): an fd or -errno (ENOENT for a path the host does not have). */
  open(path: string): number {
    const fd = this.table.reserve();
    if (fd < 0) return fd;
    const file = this.opener(path, this);
    if (typeof file === 'number') {
      this.table.unreserve(fd);
      return -file;
    }
    this.table.install(fd, new OpenFile(file));
    return fd;
  }

  /** close(2): 0 or -EBADF. The file is released when its last holder goes. */
  close(fd: number): number {
    return neg(this.table.close(fd));
  }

  /**
   * ioctl(2). `arg` is a user VA, or a buffer the host places in process memory for the
   * call and copies back afterwards (so the caller sees exactly what the kernel wrote).
   */
  ioctl(fd: number, request: number, arg: bigint | Uint8Array = 0n): number {
    const of = this.table.lookup(fd);
    if (!of) return -EBADF;
    const f = of.file;
    if (!f.ioctl) return -ENOTTY;
    if (typeof arg === 'bigint') return f.ioctl(request, arg);
    const len = scratchAlign(arg.length);
    const va = this.mm.mmap(0n, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, { kind: 'anon' });
    if (typeof va === 'number') return -va;
    this.mm.write(va, arg);
    try {
      return f.ioctl(request, va);
    } finally {
      const back = this.mm.read(va, arg.length);
      if (typeof back !== 'number') arg.set(back);
      this.mm.munmap(va, len);
    }
  }

  /** read(2) at file position 0 (event queues are not seekable). */
  read(fd: number, buf: Uint8Array): number {
    const of = this.table.lookup(fd);
    if (!of) return -EBADF;
    if (!of.file.read) return -EINVAL;
    return of.file.read(buf, 0);
  }

  /** write(2) at file position 0. */
  write(fd: number, buf: Uint8Array): number {
    const of = this.table.lookup(fd);
    if (!of) return -EBADF;
    if (!of.file.write) return -EINVAL;
    return of.file.write(buf, 0);
  }

  /** poll(2) of one fd: the EPOLL* mask (0 when the file cannot be polled), or -EBADF. */
  poll(fd: number): number {
    const of = this.table.lookup(fd);
    if (!of) return -EBADF;
    return of.file.poll?.() ?? 0;
  }

  /**
   * mmap(2): `fd` -1 with MAP_ANONYMOUS for memory, a memfd for shared file memory, an
   * iommufd for a driver MMIO region. Returns the VA, or -errno as a bigint.
   */
  mmap(length: bigint | number, prot: number, flags: number, fd = -1, offset: bigint | number = 0n, addr = 0n): bigint {
    const len = BigInt(length);
    const off = BigInt(offset);
    const r = this.doMmap(addr, len, prot, flags, fd, off);
    return typeof r === 'number' ? BigInt(-r) : r;
  }

  private doMmap(addr: bigint, len: bigint, prot: number, flags: number, fd: number, off: bigint): bigint | Errno {
    if (off & (HOST_PAGE_SIZE - 1n) || off < 0n) return EINVAL;
    if (len === 0n) return EINVAL;
    const type = flags & (MAP_SHARED | MAP_PRIVATE);
    if (type !== MAP_SHARED && type !== MAP_PRIVATE) return EINVAL;
    if (flags & MAP_ANONYMOUS) return this.mm.mmap(addr, len, prot, flags, { kind: 'anon' });
    const of = this.table.lookup(fd);
    if (!of) return EBADF;
    const file = of.file;
    if (file instanceof MemFile) return this.mm.mmap(addr, len, prot, flags, { kind: 'file', file, pgoff: off / HOST_PAGE_SIZE });
    if (!file.mmap) return ENODEV;
    const region = file.mmap(len, prot, flags, off);
    if (typeof region === 'number') return region;
    // The VMA holds the file open (vm_file), like any mapping of a file.
    of.get();
    const backing: MmioBacking = {
      physAddr: region.physAddr,
      close: () => {
        region.close();
        of.put();
      },
    };
    const va = this.mm.mmap(addr, len, prot, flags, { kind: 'mmio', physAddr: region.physAddr, region: backing });
    if (typeof va === 'number') backing.close();
    return va;
  }

  /** munmap(2): 0 or -EINVAL; partial unmaps split mappings. */
  munmap(va: bigint, length: bigint | number): number {
    return neg(this.mm.munmap(va, BigInt(length)));
  }

  /** The process writing its own memory: 0, or -EFAULT (where a real process would get SIGSEGV). */
  poke(va: bigint, bytes: Uint8Array): number {
    return neg(this.mm.write(va, bytes));
  }

  /** The process reading its own memory: the bytes, or -EFAULT as a number. */
  peek(va: bigint, length: number): Uint8Array | number {
    const r = this.mm.read(va, length);
    return typeof r === 'number' ? -r : r;
  }

  /** memfd_create(2) + ftruncate(size): an fd of a shmem file, or -errno. */
  memfdCreate(name: string, size: bigint | number = 0n): number {
    const fd = this.table.reserve();
    if (fd < 0) return fd;
    const file = new MemFile(name, BigInt(size), this.refs);
    const of = new OpenFile(file);
    this.memfdFiles.set(file, of);
    const origRelease = file.release.bind(file);
    file.release = () => {
      this.memfdFiles.delete(file);
      origRelease();
    };
    this.table.install(fd, of);
    return fd;
  }

  /** ftruncate(2) of a memfd: 0 or -errno. */
  ftruncate(fd: number, size: bigint | number): number {
    const of = this.table.lookup(fd);
    if (!of) return -EBADF;
    if (!(of.file instanceof MemFile)) return -EINVAL;
    if (BigInt(size) < 0n) return -EINVAL;
    of.file.truncate(BigInt(size));
    return 0;
  }

  /** Open descriptors and their file kinds. */
  fds(): FdInfo[] {
    return this.table.entries().map(([fd, of]) => ({ fd, kind: of.file.kind }));
  }

  /** The process's mappings. */
  mappings(): VmaInfo[] {
    return this.mm.mappings();
  }

  /** The kernel file behind an fd (host-internal: VFIO bind looks up the iommufd this way). */
  fileOf(fd: number): OpenFile | undefined {
    return this.table.lookup(fd);
  }

  /** Process exit: closes every fd and unmaps everything. */
  exit(): void {
    for (const [fd] of this.table.entries()) this.table.close(fd);
    this.mm.release();
  }

  private makeKernelView(): KernelProcess {
    const mm = this.mm;
    const table = this.table;
    const creds = this.credentials;
    return {
      copyFromUser: (va, length) => {
        const r = mm.read(va, length);
        return typeof r === 'number' ? EFAULT : r;
      },
      copyToUser: (va, bytes) => (mm.write(va, bytes) === 0 ? 0 : EFAULT),
      pinPages: (va, npages, write) => mm.pin(va, npages, write),
      unpinPages: (pfns) => mm.unpin(pfns),
      fileForFd: (fd): KernelMemFile | Errno => {
        const of = table.lookup(fd);
        if (!of) return EBADF;
        return of.file instanceof MemFile ? of.file : EINVAL;
      },
      reserveFd: () => {
        const fd = table.reserve();
        return fd < 0 ? -fd : fd;
      },
      installFd: (fd, file) => table.install(fd, new OpenFile(file)),
      releaseFd: (fd) => table.unreserve(fd),
      capable: (cap) => (cap === 'CAP_IPC_LOCK' ? creds.capIpcLock : creds.capSysResource),
      chargeLockedPages: (npages) => {
        if (this.locked + npages > creds.memlockLimitPages) return ENOMEM;
        this.locked += npages;
        return 0;
      },
      unchargeLockedPages: (npages) => {
        this.locked -= npages;
      },
    };
  }
}
