/**
 * The VMM process: an address space, an fd table and the system calls a VMM makes
 * (open/close/ioctl/read/write/mmap/munmap), each returning 0 / a value or -errno as Linux
 * does. It is also the `KernelProcess` the core copies from, pins and installs fds into.
 */
import { AddressSpace, type MmioBacking, type VmaInfo } from './address-space.js';
import { EBADF, EFAULT, EINVAL, ENODEV, ENOMEM, ENOTTY } from '@iommufd/uapi';
import { HostError } from './errors.js';
import { FdTable, OpenFile } from './fd-table.js';
import type { Errno, KernelFile, KernelMemFile, KernelProcess, MmapRegion } from './kernel-types.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, MAP_SHARED_VALIDATE, PROT_READ, PROT_WRITE } from '@iommufd/uapi';
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

/** A process's `/proc/<pid>/status` figures that iommufd moves. */
export interface ProcessStatus {
  /** Process id. */
  readonly pid: number;
  /** `'running'`, or `'exited'` after {@link HostProcess.exit} (its figures then read 0). */
  readonly state: 'running' | 'exited';
  /** VmPin: memory of this address space held long-term pinned by the kernel (iommufd), in KiB. */
  readonly vmPinKiB: number;
  /** VmLck: memory charged to this address space's locked_vm (iommufd's MM accounting mode), in KiB. */
  readonly vmLckKiB: number;
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
  /**
   * Pages charged against this process's RLIMIT_MEMLOCK right now: its user's locked_vm
   * (every process of a host runs as the same user) plus its own address space's (VmLck).
   */
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
  /**
   * fork(2): a child process (the next pid) whose fd table refers to the same open files
   * (closing a descriptor in one leaves the file open for the other), whose shared mappings
   * (MAP_SHARED memory, memfds, driver MMIO) are the same pages and whose private memory is
   * a copy. Credentials and limits are inherited; nothing is pinned or charged to the child.
   *
   * @throws {@link HostError} `OUT_OF_MEMORY` when RAM runs out copying private pages.
   */
  fork(): HostProcess;
  /**
   * exit(2): the address space is torn down (pages the kernel pinned from it stay pinned,
   * but nothing more can be pinned from it: EFAULT), then every descriptor is closed.
   * Afterwards every system call and inspection of this process throws {@link HostError}
   * `PROCESS_EXITED` — no real program can call into a dead process, so this is a test bug,
   * not an errno to compare. A second `exit()` does nothing.
   */
  exit(): void;
  /** The `/proc/<pid>/status` figures iommufd changes (VmPin, VmLck); readable after exit. */
  status(): ProcessStatus;
}

/**
 * What the processes of one host share: their pid sequence and their user (every process
 * runs as the same user, so IOPT_PAGES_ACCOUNT_USER charges go to one locked_vm).
 */
export class ProcessFamily {
  /** Every process, in pid order (exited ones included). */
  readonly members: ProcessImpl[] = [];
  /** The user's locked_vm in pages (`user_struct->locked_vm`). */
  userLockedPages = 0;

  /** The pid the next process gets. */
  nextPid(): number {
    return this.members.length + 1;
  }

  /** The process whose kernel view is `kernel`. */
  byKernel(kernel: unknown): ProcessImpl | undefined {
    return this.members.find((p) => p.kernel === kernel);
  }
}

/** What a forked child starts from. */
interface Inherited {
  readonly mm: AddressSpace;
  readonly table: FdTable;
  readonly credentials: ProcessCredentials;
}

/** The process implementation: also the `KernelProcess` the core copies from, pins and installs fds into. */
export class ProcessImpl implements HostProcess {
  /** The process's memory map. */
  readonly mm: AddressSpace;
  /** Privileges and limits; tests may change them (e.g. drop CAP_IPC_LOCK). */
  readonly credentials: ProcessCredentials;
  private readonly table: FdTable;
  /** This address space's locked_vm (IOPT_PAGES_ACCOUNT_MM), in pages. */
  private mmLocked = 0;
  /** This address space's pinned_vm, in pages. */
  private pinnedVm = 0;
  private exitedFlag = false;
  /** The view of this process the core uses (copy_*_user, GUP, fd install, rlimits). */
  readonly kernel: KernelProcess;

  constructor(
    readonly pid: number,
    private readonly memory: HostPhysicalMemory,
    private readonly refs: PageRefs,
    private readonly opener: PathOpener,
    private readonly family: ProcessFamily = new ProcessFamily(),
    inherited?: Inherited,
  ) {
    this.mm = inherited?.mm ?? new AddressSpace(memory, refs);
    this.table = inherited?.table ?? new FdTable();
    this.credentials = inherited ? { ...inherited.credentials } : { capIpcLock: true, capSysResource: true, memlockLimitPages: (8 << 20) / 4096 };
    this.kernel = this.makeKernelView();
    family.members.push(this);
  }

  /** {@inheritDoc HostProcess.lockedPages} */
  get lockedPages(): number {
    return this.family.userLockedPages + this.mmLocked;
  }

  /** Whether {@link ProcessImpl.exit} ran. */
  get exited(): boolean {
    return this.exitedFlag;
  }

  /** A dead process makes no system calls: using its handle is a bug of the caller. */
  private live(what: string): void {
    if (this.exitedFlag) {
      throw new HostError('PROCESS_EXITED', `process ${this.pid} has exited: it cannot ${what}. Keep using the process that is still running (host.processes lists them with status().state)`);
    }
  }

  /** open(2): an fd or -errno (ENOENT for a path the host does not have). */
  open(path: string): number {
    this.live('open');
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
    this.live('close');
    return neg(this.table.close(fd));
  }

  /**
   * ioctl(2). `arg` is a user VA, or a buffer the host places in process memory for the
   * call and copies back afterwards (so the caller sees exactly what the kernel wrote).
   */
  ioctl(fd: number, request: number, arg: bigint | Uint8Array = 0n): number {
    this.live('ioctl');
    const of = this.table.lookup(fd);
    if (!of) return -EBADF;
    const f = of.file;
    if (!f.ioctl) return -ENOTTY;
    // The kernel acts on `current`: copies, pins and new fds belong to the calling process.
    if (typeof arg === 'bigint') return f.ioctl(request, arg, this.kernel);
    const len = scratchAlign(arg.length);
    const va = this.mm.mmap(0n, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, { kind: 'anon' });
    if (typeof va === 'number') return -va;
    this.mm.write(va, arg);
    try {
      return f.ioctl(request, va, this.kernel);
    } finally {
      const back = this.mm.read(va, arg.length);
      if (typeof back !== 'number') arg.set(back);
      this.mm.munmap(va, len);
    }
  }

  /** read(2) at file position 0 (event queues are not seekable). */
  read(fd: number, buf: Uint8Array): number {
    this.live('read');
    const of = this.table.lookup(fd);
    if (!of) return -EBADF;
    if (!of.file.read) return -EINVAL;
    return of.file.read(buf, 0);
  }

  /** write(2) at file position 0. */
  write(fd: number, buf: Uint8Array): number {
    this.live('write');
    const of = this.table.lookup(fd);
    if (!of) return -EBADF;
    if (!of.file.write) return -EINVAL;
    return of.file.write(buf, 0);
  }

  /** poll(2) of one fd: the EPOLL* mask (0 when the file cannot be polled), or -EBADF. */
  poll(fd: number): number {
    this.live('poll');
    const of = this.table.lookup(fd);
    if (!of) return -EBADF;
    return of.file.poll?.() ?? 0;
  }

  /**
   * mmap(2): `fd` -1 with MAP_ANONYMOUS for memory, a memfd for shared file memory, an
   * iommufd for a driver MMIO region. Returns the VA, or -errno as a bigint.
   */
  mmap(length: bigint | number, prot: number, flags: number, fd = -1, offset: bigint | number = 0n, addr = 0n): bigint {
    this.live('mmap');
    const len = BigInt(length);
    const off = BigInt(offset);
    const r = this.doMmap(addr, len, prot, flags, fd, off);
    return typeof r === 'number' ? BigInt(-r) : r;
  }

  private doMmap(addr: bigint, len: bigint, prot: number, flags: number, fd: number, off: bigint): bigint | Errno {
    if (off & (HOST_PAGE_SIZE - 1n) || off < 0n) return EINVAL;
    if (len === 0n) return EINVAL;
    // MAP_SHARED_VALIDATE is MAP_SHARED whose other flags the kernel checks; we know them all.
    if ((flags & MAP_SHARED_VALIDATE) === MAP_SHARED_VALIDATE) flags &= ~MAP_PRIVATE;
    const type = flags & (MAP_SHARED | MAP_PRIVATE);
    if (type !== MAP_SHARED && type !== MAP_PRIVATE) return EINVAL;
    // The VMA covers whole pages, and a file's mmap sees the VMA's length.
    len = (len + HOST_PAGE_SIZE - 1n) & ~(HOST_PAGE_SIZE - 1n);
    if (flags & MAP_ANONYMOUS) {
      if (type === MAP_PRIVATE) return this.mm.mmap(addr, len, prot, flags, { kind: 'anon' });
      // shmem_zero_setup: shared anonymous memory is a shmem object of its own, which is
      // what a forked child shares.
      const file = new MemFile('dev/zero', ((len + HOST_PAGE_SIZE - 1n) / HOST_PAGE_SIZE) * HOST_PAGE_SIZE, this.refs);
      const handle = new OpenFile(file);
      const va = this.mm.mmap(addr, len, prot, flags, { kind: 'file', file, pgoff: 0n, handle, shmemAnon: true });
      handle.put();
      return va;
    }
    const of = this.table.lookup(fd);
    if (!of) return EBADF;
    const file = of.file;
    if (file instanceof MemFile) return this.mm.mmap(addr, len, prot, flags, { kind: 'file', file, pgoff: off / HOST_PAGE_SIZE, handle: of });
    const region = mmapRegion(of, len, prot, flags, off);
    if (typeof region === 'number') return region;
    const va = this.mm.mmap(addr, len, prot, flags, { kind: 'mmio', physAddr: region.physAddr, region });
    if (typeof va === 'number') region.close();
    return va;
  }

  /** munmap(2): 0 or -EINVAL; partial unmaps split mappings. */
  munmap(va: bigint, length: bigint | number): number {
    this.live('munmap');
    return neg(this.mm.munmap(va, BigInt(length)));
  }

  /** The process writing its own memory: 0, or -EFAULT (where a real process would get SIGSEGV). */
  poke(va: bigint, bytes: Uint8Array): number {
    this.live('touch its memory');
    return neg(this.mm.write(va, bytes));
  }

  /** The process reading its own memory: the bytes, or -EFAULT as a number. */
  peek(va: bigint, length: number): Uint8Array | number {
    this.live('touch its memory');
    const r = this.mm.read(va, length);
    return typeof r === 'number' ? -r : r;
  }

  /** memfd_create(2) + ftruncate(size): an fd of a shmem file, or -errno. */
  memfdCreate(name: string, size: bigint | number = 0n): number {
    this.live('memfd_create');
    const fd = this.table.reserve();
    if (fd < 0) return fd;
    this.table.install(fd, new OpenFile(new MemFile(name, BigInt(size), this.refs)));
    return fd;
  }

  /** ftruncate(2) of a memfd: 0 or -errno. */
  ftruncate(fd: number, size: bigint | number): number {
    this.live('ftruncate');
    const of = this.table.lookup(fd);
    if (!of) return -EBADF;
    if (!(of.file instanceof MemFile)) return -EINVAL;
    if (BigInt(size) < 0n) return -EINVAL;
    of.file.truncate(BigInt(size));
    return 0;
  }

  /** Open descriptors and their file kinds. */
  fds(): FdInfo[] {
    this.live('list its descriptors');
    return this.table.entries().map(([fd, of]) => ({ fd, kind: of.file.kind }));
  }

  /** The process's mappings. */
  mappings(): VmaInfo[] {
    this.live('list its mappings');
    return this.mm.mappings();
  }

  /** The kernel file behind an fd (host-internal: VFIO bind looks up the iommufd this way). */
  fileOf(fd: number): OpenFile | undefined {
    return this.table.lookup(fd);
  }

  /** {@inheritDoc HostProcess.fork} */
  fork(): HostProcess {
    this.live('fork');
    const mm = this.mm.fork();
    if (typeof mm === 'number') {
      throw new HostError('OUT_OF_MEMORY', `fork of process ${this.pid}: RAM ran out copying its private pages; create the host with a larger ramBytes or unmap private memory first`);
    }
    return new ProcessImpl(this.family.nextPid(), this.memory, this.refs, this.opener, this.family, { mm, table: this.table.fork(), credentials: this.credentials });
  }

  /** {@inheritDoc HostProcess.exit} */
  exit(): void {
    if (this.exitedFlag) return;
    // do_exit: exit_mm before exit_files, and from here on mmget_not_zero fails.
    this.exitedFlag = true;
    this.mm.release();
    for (const [fd] of this.table.entries()) this.table.close(fd);
  }

  /** {@inheritDoc HostProcess.status} */
  status(): ProcessStatus {
    const kib = (pages: number): number => (this.exitedFlag ? 0 : pages * Number(HOST_PAGE_SIZE / 1024n));
    return { pid: this.pid, state: this.exitedFlag ? 'exited' : 'running', vmPinKiB: kib(this.pinnedVm), vmLckKiB: kib(this.mmLocked) };
  }

  private makeKernelView(): KernelProcess {
    const mm = this.mm;
    const table = this.table;
    const creds = this.credentials;
    const family = this.family;
    const self = this;
    return {
      get exited() {
        return self.exitedFlag;
      },
      copyFromUser: (va, length) => {
        const r = mm.read(va, length);
        return typeof r === 'number' ? EFAULT : r;
      },
      copyToUser: (va, bytes) => (mm.write(va, bytes) === 0 ? 0 : EFAULT),
      pinPages: (va, npages, write) => mm.pin(va, npages, write),
      unpinPages: (pfns) => mm.unpin(pfns),
      writableExtent: (va, length) => mm.writableExtent(va, length),
      fileForFd: (fd): KernelMemFile | Errno => {
        const of = table.lookup(fd);
        if (!of) return EBADF;
        const file = of.file;
        if (!(file instanceof MemFile)) return EINVAL;
        // The kernel's holds on the file are holds on this open file description.
        return {
          get size() {
            return file.size;
          },
          pinPages: (offsetPage, npages, write) => file.pinPages(offsetPage, npages, write),
          unpinPages: (pfns) => file.unpinPages(pfns),
          get: () => of.get(),
          put: () => of.put(),
        };
      },
      // get_unused_fd_flags: the fd, or -EMFILE as the contract says.
      reserveFd: () => table.reserve(),
      installFd: (fd, file) => table.install(fd, new OpenFile(file)),
      releaseFd: (fd) => table.unreserve(fd),
      capable: (cap) => (cap === 'CAP_IPC_LOCK' ? creds.capIpcLock : creds.capSysResource),
      // The limit is this task's RLIMIT_MEMLOCK; the counter the user's or this mm's.
      chargeLockedPages: (npages, kind = 'user') => {
        const have = kind === 'mm' ? this.mmLocked : family.userLockedPages;
        if (have + npages > creds.memlockLimitPages) return ENOMEM;
        if (kind === 'mm') this.mmLocked += npages;
        else family.userLockedPages += npages;
        return 0;
      },
      unchargeLockedPages: (npages, kind = 'user') => {
        if (kind === 'mm') this.mmLocked -= npages;
        else family.userLockedPages -= npages;
      },
      addPinnedPages: (delta) => {
        this.pinnedVm += delta;
      },
    };
  }
}

/**
 * Maps driver MMIO of `of`'s file. The VMA holds the file open (vm_file) and the driver
 * object (the region), and a forked copy takes its own holds on both (vm_ops->open).
 */
function mmapRegion(of: OpenFile, len: bigint, prot: number, flags: number, off: bigint): MmioBacking | Errno {
  const file = of.file;
  if (!file.mmap) return ENODEV;
  const region: MmapRegion | Errno = file.mmap(len, prot, flags, off);
  if (typeof region === 'number') return region;
  of.get();
  return {
    physAddr: region.physAddr,
    close: () => {
      region.close();
      of.put();
    },
    dup: () => {
      const r = mmapRegion(of, len, prot, flags, off);
      return typeof r === 'number' ? undefined : r;
    },
  };
}
