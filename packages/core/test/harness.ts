/**
 * Test harness: an in-test KernelProcess (flat user memory backed by fake physical frames),
 * a core with the mock driver, and a helper that runs an ioctl with a struct in user memory.
 */
import { expect } from 'vitest';
import { EBADF, EFAULT, ENOMEM, EPERM, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE, type StructLayout } from '@iommufd/uapi';
import { MockIommu } from '@iommufd/mock-iommu';
import { IommuCore, iommufdDeviceBind, type DirectMap, type KernelFile, type KernelMemFile, type KernelProcess, type FaultInjector } from '../src/index.js';

const PAGE = 4096n;

/** IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE: the access of a plain read-write mapping. */
export const RW = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
/** ULONG_MAX as a u64 (an unmap of everything). */
export const U64_MAX = (1n << 64n) - 1n;

interface Page {
  readonly pfn: bigint;
  readonly data: Uint8Array;
  readonly writable: boolean;
}

/** A process address space: anonymous mappings of fake physical frames. */
export class FakeProcess implements KernelProcess {
  readonly pages = new Map<bigint, Page>();
  readonly pins = new Map<bigint, number>();
  readonly fds = new Map<number, KernelFile | 'reserved'>();
  readonly files = new Map<number, KernelMemFile>();
  nextPfn = 0x1000n;
  nextVa = 0x7f00_0000_0000n;
  /** The user's locked_vm (IOPT_PAGES_ACCOUNT_USER). */
  locked = 0;
  /** The mm's locked_vm, VmLck (IOPT_PAGES_ACCOUNT_MM). */
  lockedMm = 0;
  /** The mm's pinned_vm, VmPin. */
  pinnedVm = 0;
  /** exit_mm() ran. */
  exited = false;
  memlockLimit = Number.MAX_SAFE_INTEGER;
  caps = { CAP_IPC_LOCK: false, CAP_SYS_RESOURCE: true };

  /** `frames`: the machine's RAM, shared by the processes of one test (the direct map reads it). */
  constructor(readonly frames = new Map<bigint, Uint8Array>()) {}

  /** Maps `length` bytes of fresh memory; pages get consecutive PFNs unless `scatter`. */
  mmap(length: bigint, opts: { writable?: boolean; scatter?: boolean; va?: bigint } = {}): bigint {
    const va = opts.va ?? this.nextVa;
    if (!opts.va) this.nextVa += ((length + PAGE - 1n) / PAGE) * PAGE + PAGE;
    for (let off = 0n; off < length; off += PAGE) {
      const pfn = this.nextPfn;
      this.nextPfn += opts.scatter ? 2n : 1n;
      const data = new Uint8Array(4096);
      this.frames.set(pfn, data);
      this.pages.set((va + off) / PAGE, { pfn, data, writable: opts.writable ?? true });
    }
    return va;
  }

  munmap(va: bigint, length: bigint): void {
    for (let off = 0n; off < length; off += PAGE) this.pages.delete((va + off) / PAGE);
  }

  copyFromUser(va: bigint, length: number): Uint8Array | number {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; ) {
      const a = va + BigInt(i);
      const p = this.pages.get(a / PAGE);
      if (!p) return EFAULT;
      const off = Number(a % PAGE);
      const n = Math.min(4096 - off, length - i);
      out.set(p.data.subarray(off, off + n), i);
      i += n;
    }
    return out;
  }

  copyToUser(va: bigint, bytes: Uint8Array): 0 | number {
    for (let i = 0; i < bytes.length; i += 1) if (!this.pages.get((va + BigInt(i)) / PAGE)) return EFAULT;
    for (let i = 0; i < bytes.length; i++) {
      const a = va + BigInt(i);
      this.pages.get(a / PAGE)!.data[Number(a % PAGE)] = bytes[i]!;
    }
    return 0;
  }

  pinPages(va: bigint, npages: number, write: boolean): { pfns: bigint[] } | number {
    const pfns: bigint[] = [];
    for (let i = 0; i < npages; i++) {
      const p = this.pages.get(va / PAGE + BigInt(i));
      if (!p) return EFAULT;
      if (write && !p.writable) return EPERM;
      pfns.push(p.pfn);
    }
    for (const pfn of pfns) this.pins.set(pfn, (this.pins.get(pfn) ?? 0) + 1);
    return { pfns };
  }

  unpinPages(pfns: readonly bigint[]): void {
    for (const pfn of pfns) {
      const n = (this.pins.get(pfn) ?? 0) - 1;
      if (n < 0) throw new Error(`unbalanced unpin of pfn ${pfn}`);
      if (n) this.pins.set(pfn, n);
      else this.pins.delete(pfn);
    }
  }

  get pinnedPages(): number {
    let n = 0;
    for (const c of this.pins.values()) n += c;
    return n;
  }

  fileForFd(fd: number): KernelMemFile | number {
    return this.files.get(fd) ?? EBADF;
  }

  /** A memfd of `npages` consecutive frames, installed at a new fd. */
  memfd(npages: number): number {
    const base = this.nextPfn;
    this.nextPfn += BigInt(npages);
    for (let i = 0n; i < BigInt(npages); i++) this.frames.set(base + i, new Uint8Array(4096));
    const pins = this.pins;
    const file: KernelMemFile = {
      size: BigInt(npages) * PAGE,
      pinPages(offsetPage, n) {
        if (offsetPage + BigInt(n) > BigInt(npages)) return EFAULT;
        const pfns = Array.from({ length: n }, (_, i) => base + offsetPage + BigInt(i));
        for (const pfn of pfns) pins.set(pfn, (pins.get(pfn) ?? 0) + 1);
        return { pfns };
      },
      unpinPages: (pfns) => this.unpinPages(pfns),
    };
    const fd = this.reserveFd();
    this.files.set(fd, file);
    return fd;
  }

  reserveFd(): number {
    let fd = 3;
    while (this.fds.has(fd) || this.files.has(fd)) fd++;
    this.fds.set(fd, 'reserved');
    return fd;
  }
  installFd(fd: number, file: KernelFile): void {
    this.fds.set(fd, file);
  }
  releaseFd(fd: number): void {
    this.fds.delete(fd);
  }
  /** close(fd) of an installed file. */
  close(fd: number): void {
    const f = this.fds.get(fd);
    this.fds.delete(fd);
    if (f && f !== 'reserved') f.release();
  }
  file(fd: number): KernelFile {
    const f = this.fds.get(fd);
    if (!f || f === 'reserved') throw new Error(`fd ${fd} is not installed`);
    return f;
  }
  capable(cap: 'CAP_IPC_LOCK' | 'CAP_SYS_RESOURCE'): boolean {
    return this.caps[cap];
  }
  chargeLockedPages(npages: number, kind: 'user' | 'mm' = 'user'): 0 | number {
    const have = kind === 'mm' ? this.lockedMm : this.locked;
    if (have + npages > this.memlockLimit) return ENOMEM;
    if (kind === 'mm') this.lockedMm += npages;
    else this.locked += npages;
    return 0;
  }
  unchargeLockedPages(npages: number, kind: 'user' | 'mm' = 'user'): void {
    if (kind === 'mm') this.lockedMm -= npages;
    else this.locked -= npages;
  }
  addPinnedPages(delta: number): void {
    this.pinnedVm += delta;
  }
}

/** A direct map over fake frames. */
export function fakeDirectMap(frames: Map<bigint, Uint8Array>): DirectMap {
  const frame = (pa: bigint): Uint8Array => {
    const f = frames.get(pa / PAGE);
    if (!f) throw new Error(`no frame at ${pa.toString(16)}`);
    return f;
  };
  return {
    read: (pa, length) => frame(pa).slice(Number(pa % PAGE), Number(pa % PAGE) + length),
    write: (pa, bytes) => frame(pa).set(bytes, Number(pa % PAGE)),
  };
}

/** A fresh core, mock driver, process and /dev/iommu context. */
export function setup(opts: { devices?: number; faultInjection?: FaultInjector } = {}) {
  const proc = new FakeProcess();
  const core = new IommuCore({ faultInjection: opts.faultInjection, directMap: fakeDirectMap(proc.frames) });
  const mock = new MockIommu();
  core.registerIommu(mock.instance);
  const devs = Array.from({ length: opts.devices ?? 2 }, (_, i) =>
    core.addDevice({ name: `mock${i}`, iommu: mock.instance, group: i + 1, pasid: { maxPasidLog2: 20 } }),
  );
  const ctx = core.open(proc);
  const scratch = proc.mmap(0x4000n);
  /** Runs `request` with `value` encoded in user memory (size field = `size` or the struct size). */
  function ioctl<F extends StructLayout>(
    layout: F,
    request: number,
    value: Parameters<F['encode']>[0],
    opts: { size?: number; tail?: Uint8Array } = {},
  ): { rc: number; out: ReturnType<F['decode']> } {
    const size = opts.size ?? layout.size;
    // `tail` are the bytes right after the kernel's struct (inside a longer user struct).
    const bytes = new Uint8Array(Math.max(size, layout.size + (opts.tail?.length ?? 0)));
    layout.encode({ ...(value as object), size } as never, bytes);
    if (opts.tail) bytes.set(opts.tail, layout.size);
    proc.copyToUser(scratch, bytes.subarray(0, size));
    const rc = ctx.ioctl!(request, scratch);
    const back = proc.copyFromUser(scratch, layout.size) as Uint8Array;
    return { rc, out: layout.decode(back.subarray(0, Math.min(size, layout.size))) as ReturnType<F['decode']> };
  }
  return { core, mock, devs, proc, ctx, scratch, ioctl };
}

/** Binds `dev` to `ctx` (iommufd_device_bind); throws when the bind fails, for tests whose set-up needs it. */
export function bindOrThrow(...args: Parameters<typeof iommufdDeviceBind>): Exclude<ReturnType<typeof iommufdDeviceBind>, number> {
  const b = iommufdDeviceBind(...args);
  if (typeof b === 'number') throw new Error(`bind ${b}`);
  return b;
}

/** One step of {@link expectErrorOrder}: the errno now expected, and the fix for the next step. */
export interface OrderStep<V> {
  /** The check that must fire with the struct as it is now (iommufd-core.md's words). */
  readonly check: string;
  /** Its errno (positive). */
  readonly errno: number;
  /** Fields that repair this fault, so the next check can fire. */
  readonly fix: Partial<V>;
}

/**
 * The error-order method: start from a struct with every fault at once and repair one fault
 * per step. Each step must fail with its own errno — so every check is shown to come after
 * all the earlier ones and before all the later ones — and no failing step may leave an
 * object or a pin behind. Returns the fully repaired struct.
 */
export function expectErrorOrder<F extends StructLayout>(
  e: ReturnType<typeof setup>,
  layout: F,
  request: number,
  start: Parameters<F['encode']>[0],
  steps: readonly OrderStep<Parameters<F['encode']>[0]>[],
): Parameters<F['encode']>[0] {
  let value = start;
  const objects = () => e.ctx.objects().map((o) => ({ id: o.id, type: o.type, users: o.users }));
  for (const step of steps) {
    const before = { objects: objects(), pins: e.proc.pinnedPages };
    const { rc } = e.ioctl(layout, request, value);
    expect({ check: step.check, rc }).toEqual({ check: step.check, rc: step.errno ? -step.errno : 0 });
    expect({ check: step.check, objects: objects(), pins: e.proc.pinnedPages }).toEqual({ check: step.check, ...before });
    value = { ...(value as object), ...(step.fix as object) } as typeof value;
  }
  return value;
}
