/**
 * What the typed wrappers need from a process (the Host contract's process satisfies it),
 * the error they throw, and the scratch memory in which they place pointed-to data.
 */
import { errnoName } from './errno.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE } from './sys.js';

/**
 * A user process as the wrappers drive it: the system calls of the Host contract's process
 * (`@iommufd/host`). Return values follow the kernel: 0 or a positive value on success,
 * `-errno` on failure (`mmap` returns the VA, or a negative errno as a bigint).
 */
export interface UserProcess {
  /** `ioctl(fd, request, arg)`: arg is a user VA, or a struct copied in and back. */
  ioctl(fd: number, request: number, arg: bigint | Uint8Array): number;
  /** `mmap(NULL, length, prot, flags, fd, offset)`. */
  mmap(length: bigint | number, prot: number, flags: number, fd: number, offset: bigint | number): bigint;
  /** `munmap(va, length)`. */
  munmap(va: bigint, length: bigint | number): number;
  /** The process writing its own memory: nothing or 0 on success, `-errno` (EFAULT) if unmapped. */
  poke(va: bigint, bytes: Uint8Array): void | number;
  /** The process reading its own memory: the bytes, or `-errno` (EFAULT) if unmapped. */
  peek(va: bigint, length: number): Uint8Array | number;
  /** `read(fd, buf)`: bytes read or `-errno`. */
  read(fd: number, buf: Uint8Array): number;
  /** `write(fd, buf)`: bytes written or `-errno`. */
  write(fd: number, buf: Uint8Array): number;
}

/**
 * A failed uAPI call made through the typed wrappers: the kernel returned `-errno`.
 * `ioctl` names the call (`'IOMMU_HWPT_ALLOC'`, `'read'`, `'mmap'` …).
 */
export class IommufdError extends Error {
  /** Always `'IommufdError'`. */
  override readonly name = 'IommufdError';
  /** The positive Linux errno value. */
  readonly errno: number;
  /** Its C name (`'EINVAL'`). */
  readonly errnoName: string;
  /** The ioctl (or system call) that failed. */
  readonly ioctl: string;
  /** For IOMMU_HWPT_INVALIDATE: how many entries the kernel handled before failing (it always writes entry_num back). */
  readonly entryNum: number | undefined;

  /** `errno` may be given positive or negated (as the kernel returns it). */
  constructor(ioctl: string, errno: number, options: { entryNum?: number; detail?: string } = {}) {
    const n = Math.abs(errno);
    const name = errnoName(n);
    const extra = options.entryNum === undefined ? '' : `; entry_num = ${options.entryNum}`;
    super(`${ioctl} failed: ${name} (${n})${extra}${options.detail ? ` — ${options.detail}` : ''}`);
    this.errno = n;
    this.errnoName = name;
    this.ioctl = ioctl;
    this.entryNum = options.entryNum;
  }
}

/** Rounds `n` up to a multiple of `align` (a power of two). */
function alignUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

/**
 * Bump allocation of user memory for what a uAPI struct points to (range arrays, driver
 * data, invalidation entries, bitmaps), inside anonymous mappings of the process. Memory is
 * handed out until {@link UserScratch.reset}; growing maps a new region so earlier pointers
 * stay valid, and the next reset keeps only the largest region.
 */
export class UserScratch {
  private regions: { va: bigint; length: number }[] = [];
  private used = 0;

  constructor(private readonly process: UserProcess) {}

  /** Reserves `length` zeroed bytes and returns their VA. */
  reserve(length: number, align = 8): bigint {
    const va = this.take(Math.max(length, 1), align);
    if (length > 0) pokeUser(this.process, va, new Uint8Array(length));
    return va;
  }

  /** Copies `bytes` into scratch memory and returns their VA. */
  place(bytes: Uint8Array, align = 8): bigint {
    const va = this.take(Math.max(bytes.length, 1), align);
    if (bytes.length > 0) pokeUser(this.process, va, bytes);
    return va;
  }

  /** Makes every byte reusable (pointers handed out before become invalid). */
  reset(): void {
    if (this.regions.length > 1) {
      const keep = this.regions[this.regions.length - 1];
      for (const r of this.regions.slice(0, -1)) this.process.munmap(r.va, r.length);
      this.regions = [keep];
    }
    this.used = 0;
  }

  /** Unmaps all scratch memory. */
  dispose(): void {
    for (const r of this.regions) this.process.munmap(r.va, r.length);
    this.regions = [];
    this.used = 0;
  }

  /** Bytes currently mapped for scratch use. */
  get mappedBytes(): number {
    return this.regions.reduce((sum, r) => sum + r.length, 0);
  }

  private take(length: number, align: number): bigint {
    let current = this.regions[this.regions.length - 1];
    let offset = alignUp(this.used, align);
    if (!current || offset + length > current.length) {
      const size = alignUp(Math.max(length, (current?.length ?? 0) * 2, 4 * PAGE_SIZE), PAGE_SIZE);
      const va = this.process.mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (va < 0n) throw new IommufdError('mmap', Number(-va), { detail: `mapping ${size} bytes of scratch memory` });
      current = { va, length: size };
      this.regions.push(current);
      offset = 0;
    }
    this.used = offset + length;
    return current.va + BigInt(offset);
  }
}

const scratchOf = new WeakMap<UserProcess, UserScratch>();

/**
 * Runs `fn` with the process's scratch allocator and resets it afterwards, so pointed-to
 * data lives exactly as long as one wrapper call.
 */
export function withScratch<T>(process: UserProcess, fn: (scratch: UserScratch) => T): T {
  let scratch = scratchOf.get(process);
  if (!scratch) {
    scratch = new UserScratch(process);
    scratchOf.set(process, scratch);
  }
  try {
    return fn(scratch);
  } finally {
    scratch.reset();
  }
}

/** `peek` that throws {@link IommufdError} (`'peek'`) when the process reports `-errno`. */
export function peekUser(p: UserProcess, va: bigint, length: number): Uint8Array {
  const r = p.peek(va, length);
  if (typeof r === 'number') throw new IommufdError('peek', -r, { detail: `reading ${length} bytes at 0x${va.toString(16)}` });
  return r;
}

/** `poke` that throws {@link IommufdError} (`'poke'`) when the process reports `-errno`. */
export function pokeUser(p: UserProcess, va: bigint, bytes: Uint8Array): void {
  const r = p.poke(va, bytes);
  if (typeof r === 'number' && r < 0) {
    throw new IommufdError('poke', -r, { detail: `writing ${bytes.length} bytes at 0x${va.toString(16)}` });
  }
}
