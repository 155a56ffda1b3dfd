// The source process of IOAS pages (pages.c `source_mm`/`source_task`/`source_user`): later
// pins come from it, accounting (VmPin, locked_vm) goes to it, IOMMU_IOAS_CHANGE_PROCESS moves
// it to the caller, and in-kernel accesses reach its pages through the pinned ones once it
// has gone.
import { describe, expect, it } from 'vitest';
import {
  EFAULT,
  EINVAL,
  ENOMEM,
  EPERM,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_CHANGE_PROCESS,
  IOMMU_IOAS_COPY,
  IOMMU_IOAS_UNMAP,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FILE,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_OPTION,
  IOMMU_OPTION_OP_SET,
  IOMMU_OPTION_RLIMIT_MODE,
  iommu_ioas_alloc,
  iommu_ioas_change_process,
  iommu_ioas_copy,
  iommu_ioas_unmap,
  iommu_ioas_map,
  iommu_ioas_map_file,
  iommu_option,
  type StructLayout,
} from '@iommufd/uapi';
import { MOCK_APERTURE_FIRST_IOVA, mockDomainLookup } from '@iommufd/mock-iommu';
import {
  deviceAttachedDomain,
  iommufdAccessCreate,
  iommufdAccessDestroy,
  iommufdAccessPinPages,
  iommufdAccessRw,
  iommufdAccessUnpinPages,
  iommufdDeviceAttach,
  iommufdDeviceDetach,
  iommufdDeviceUnbind,
  type BoundDevice,
  type IommufdContext,
} from '../src/index.js';
import { bindOrThrow, FakeProcess, RW, setup } from './harness.js';

const PAGE = 4096n;
const IOVA = MOCK_APERTURE_FIRST_IOVA;

/** Issues `request` as `proc` (the kernel's `current`), with the struct in `proc`'s memory. */
function callAs<F extends StructLayout>(ctx: IommufdContext, proc: FakeProcess, layout: F, request: number, value: Record<string, unknown>): number {
  const arg = proc.mmap(PAGE);
  proc.copyToUser(arg, layout.encode({ ...value, size: layout.size } as never));
  const rc = ctx.ioctl(request, arg, proc);
  proc.munmap(arg, PAGE);
  return rc;
}

/** A core with two mock devices, an IOAS, and a forked process sharing the machine's RAM. */
function env(opts: { mmAccounting?: boolean; capIpcLock?: boolean } = {}) {
  const e = setup();
  e.proc.caps.CAP_IPC_LOCK = opts.capIpcLock ?? false;
  if (opts.mmAccounting) {
    expect(e.ioctl(iommu_option, IOMMU_OPTION, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, object_id: 0, val64: 1n }).rc).toBe(0);
  }
  const ioas = e.ioctl(iommu_ioas_alloc, IOMMU_IOAS_ALLOC, {}).out.out_ioas_id;
  const child = new FakeProcess(e.proc.frames);
  child.caps = { ...e.proc.caps };
  child.nextVa = 0x5000_0000_0000n;
  child.nextPfn = 0x80000n;
  const mapAs = (proc: FakeProcess, va: bigint, length: bigint, iova = IOVA) =>
    callAs(e.ctx, proc, iommu_ioas_map, IOMMU_IOAS_MAP, { flags: RW | IOMMU_IOAS_MAP_FIXED_IOVA, ioas_id: ioas, user_va: va, length, iova });
  const mapFileAs = (proc: FakeProcess, fd: number, length: bigint, iova = IOVA) =>
    callAs(e.ctx, proc, iommu_ioas_map_file, IOMMU_IOAS_MAP_FILE, { flags: RW | IOMMU_IOAS_MAP_FIXED_IOVA, ioas_id: ioas, fd, start: 0n, length, iova });
  const changeProcessAs = (proc: FakeProcess) => callAs(e.ctx, proc, iommu_ioas_change_process, IOMMU_IOAS_CHANGE_PROCESS, {});
  const bind = (i: number): BoundDevice => bindOrThrow(e.ctx, e.devs[i]!).idev;
  /** Binds device `i` and attaches it to the IOAS: the attach's result and the device. */
  const tryAttach = (i: number) => {
    const idev = bind(i);
    return { idev, rc: iommufdDeviceAttach(idev, undefined, ioas) };
  };
  const attach = (i: number): BoundDevice => {
    const { idev, rc } = tryAttach(i);
    expect(rc).not.toBeTypeOf('number');
    return idev;
  };
  const release = (...idevs: BoundDevice[]) => {
    for (const idev of idevs) {
      iommufdDeviceDetach(idev, undefined);
      iommufdDeviceUnbind(idev);
    }
    e.ctx.release();
  };
  /** The fork's memory: `npages` pages filled with a pattern. */
  const childBuffer = (npages: number) => {
    const va = child.mmap(BigInt(npages) * PAGE);
    const bytes = Uint8Array.from({ length: npages * 4096 }, (_, i) => (i * 13 + 5) & 0xff);
    child.copyToUser(va, bytes);
    return { va, bytes };
  };
  return { ...e, ioas, child, mapAs, mapFileAs, changeProcessAs, tryAttach, attach, release, childBuffer };
}

describe('the source process of IOAS pages', () => {
  it('a domain attached after the mapping pins from the process that mapped, even when another one attaches', () => {
    const e = env();
    const { va } = e.childBuffer(2);
    expect(e.mapAs(e.child, va, 2n * PAGE)).toBe(0);
    expect([e.child.pinnedPages, e.proc.pinnedPages]).toEqual([0, 0]);
    const idev = e.attach(0);
    expect([e.child.pinnedPages, e.proc.pinnedPages]).toEqual([2, 0]);
    // Accounted to the source: its user's locked_vm and its VmPin.
    expect([e.child.locked, e.child.pinnedVm, e.proc.locked, e.proc.pinnedVm]).toEqual([2, 2, 0, 0]);
    const pte = mockDomainLookup(deviceAttachedDomain(e.devs[0]!, undefined)!, IOVA);
    expect(pte?.pa).toBe(e.child.pages.get(va / PAGE)!.pfn * PAGE);
    e.release(idev);
    expect([e.child.pinnedPages, e.child.locked, e.child.pinnedVm]).toEqual([0, 0, 0]);
  });

  it('once the source has exited, pinning from it fails with EFAULT and leaves the IOAS as it was', () => {
    const e = env();
    const { va } = e.childBuffer(2);
    expect(e.mapAs(e.child, va, 2n * PAGE)).toBe(0);
    e.child.exited = true;
    const a = e.tryAttach(0);
    expect(a.rc).toBe(EFAULT);
    expect(e.ctx.objects().map((o) => o.type)).toEqual(['IOAS', 'DEVICE']);
    expect([e.child.pinnedPages, e.child.locked, e.child.pinnedVm]).toEqual([0, 0, 0]);
    e.release(a.idev);
  });

  it('pages already pinned for a domain are copied into a new domain after the source exited', () => {
    const e = env();
    const first = e.attach(0);
    const { va } = e.childBuffer(2);
    expect(e.mapAs(e.child, va, 2n * PAGE)).toBe(0);
    e.child.exited = true;
    const second = e.attach(1);
    for (const i of [0, 1]) {
      const pte = mockDomainLookup(deviceAttachedDomain(e.devs[i]!, undefined)!, IOVA + PAGE);
      expect(pte?.pa).toBe(e.child.pages.get(va / PAGE + 1n)!.pfn * PAGE);
    }
    // One pin per page however many domains.
    expect(e.child.pinnedPages).toBe(2);
    e.release(first, second);
    expect([e.child.pinnedPages, e.child.locked]).toEqual([0, 0]);
  });

  it('pages an access pinned are the source for a domain attached after the source exited', () => {
    const e = env();
    const a = iommufdAccessCreate(e.ctx, e.ioas, { needsPin: true, unmap: () => undefined });
    if (typeof a === 'number') throw new Error(`access ${a}`);
    const { va } = e.childBuffer(2);
    expect(e.mapAs(e.child, va, 2n * PAGE)).toBe(0);
    expect(iommufdAccessPinPages(a.access, IOVA, 2n * PAGE, false)).toEqual([0n, 1n].map((i) => e.child.pages.get(va / PAGE + i)!.pfn));
    e.child.exited = true;
    const idev = e.attach(0);
    expect(mockDomainLookup(deviceAttachedDomain(e.devs[0]!, undefined)!, IOVA + PAGE)?.pa).toBe(e.child.pages.get(va / PAGE + 1n)!.pfn * PAGE);
    iommufdAccessUnpinPages(a.access, IOVA, 2n * PAGE);
    iommufdAccessDestroy(a.access);
    e.release(idev);
    expect(e.child.pinnedPages).toBe(0);
  });

  it('a GUP failure wins over the RLIMIT_MEMLOCK one (the kernel pins, then accounts)', () => {
    const e = env();
    e.proc.memlockLimit = 0;
    const va = e.proc.mmap(2n * PAGE);
    expect(e.mapAs(e.proc, va, 2n * PAGE)).toBe(0);
    e.proc.munmap(va + PAGE, PAGE);
    const a = e.tryAttach(0);
    expect(a.rc).toBe(EFAULT);
    expect(e.proc.pinnedPages).toBe(0);
    e.release(a.idev);
  });
});

describe('accounting modes', () => {
  it.each([
    { name: 'NONE (CAP_IPC_LOCK): VmPin only', capIpcLock: true, mmAccounting: false, want: { locked: 0, lockedMm: 0, pinnedVm: 3 } },
    { name: 'USER: the user locked_vm and VmPin', capIpcLock: false, mmAccounting: false, want: { locked: 3, lockedMm: 0, pinnedVm: 3 } },
    { name: 'MM: the mm locked_vm (VmLck) and VmPin', capIpcLock: false, mmAccounting: true, want: { locked: 0, lockedMm: 3, pinnedVm: 3 } },
  ])('$name', ({ capIpcLock, mmAccounting, want }) => {
    const e = env({ capIpcLock, mmAccounting });
    const idev = e.attach(0);
    expect(e.mapAs(e.proc, e.proc.mmap(3n * PAGE), 3n * PAGE)).toBe(0);
    expect({ locked: e.proc.locked, lockedMm: e.proc.lockedMm, pinnedVm: e.proc.pinnedVm }).toEqual(want);
    e.release(idev);
    expect([e.proc.locked, e.proc.lockedMm, e.proc.pinnedVm]).toEqual([0, 0, 0]);
  });

  it('MM accounting of a file mapped by a process that has exited is EINVAL (its mm is gone)', () => {
    const e = env({ mmAccounting: true });
    const fd = e.child.memfd(2);
    expect(e.mapFileAs(e.child, fd, 2n * PAGE)).toBe(0);
    e.child.exited = true;
    const a = e.tryAttach(0);
    expect(a.rc).toBe(EINVAL);
    expect(e.child.pinnedPages).toBe(0);
    e.release(a.idev);
  });
});

describe('IOMMU_IOAS_CHANGE_PROCESS', () => {
  it.each([
    { name: 'USER', mmAccounting: false },
    { name: 'MM', mmAccounting: true },
  ])('moves the pinned count ($name, the mode kept) and the source to the caller', ({ mmAccounting }) => {
    const e = env({ mmAccounting });
    const idev = e.attach(0);
    const fd = e.proc.memfd(2);
    expect(e.mapFileAs(e.proc, fd, 2n * PAGE)).toBe(0);
    const counters = (p: FakeProcess) => [mmAccounting ? p.lockedMm : p.locked, p.pinnedVm];
    expect([counters(e.proc), counters(e.child)]).toEqual([[2, 2], [0, 0]]);
    expect(e.changeProcessAs(e.child)).toBe(0);
    expect([counters(e.proc), counters(e.child)]).toEqual([[0, 0], [2, 2]]);
    // Twice is a no-op: the caller already is the source.
    expect(e.changeProcessAs(e.child)).toBe(0);
    expect(counters(e.child)).toEqual([2, 2]);
    e.release(idev);
    expect([counters(e.proc), counters(e.child)]).toEqual([[0, 0], [0, 0]]);
  });

  it('over the caller RLIMIT_MEMLOCK: ENOMEM and nothing moves', () => {
    const e = env();
    const idev = e.attach(0);
    const fd = e.proc.memfd(2);
    expect(e.mapFileAs(e.proc, fd, 2n * PAGE)).toBe(0);
    e.child.memlockLimit = 1;
    expect(e.changeProcessAs(e.child)).toBe(-ENOMEM);
    expect([e.proc.locked, e.proc.pinnedVm, e.child.locked, e.child.pinnedVm]).toEqual([2, 2, 0, 0]);
    e.release(idev);
    expect([e.proc.locked, e.proc.pinnedVm]).toEqual([0, 0]);
  });

  it('an exited MM-accounted source cannot be uncharged: EINVAL, but the pages moved', () => {
    const e = env({ mmAccounting: true });
    const idev = e.attach(0);
    const fd = e.child.memfd(2);
    expect(e.mapFileAs(e.child, fd, 2n * PAGE)).toBe(0);
    expect([e.child.lockedMm, e.child.pinnedVm]).toEqual([2, 2]);
    e.child.exited = true;
    expect(e.changeProcessAs(e.proc)).toBe(-EINVAL);
    expect([e.proc.lockedMm, e.proc.pinnedVm]).toEqual([2, 2]);
    // The pages are the caller's now: releasing them uncharges the caller.
    e.release(idev);
    expect([e.proc.lockedMm, e.proc.pinnedVm]).toEqual([0, 0]);
  });

  it('a user mapping anywhere refuses with EINVAL before anything is charged', () => {
    const e = env();
    const idev = e.attach(0);
    const fd = e.proc.memfd(1);
    expect(e.mapFileAs(e.proc, fd, PAGE)).toBe(0);
    expect(e.mapAs(e.proc, e.proc.mmap(PAGE), PAGE, IOVA + 0x10000n)).toBe(0);
    expect(e.changeProcessAs(e.child)).toBe(-EINVAL);
    expect([e.proc.locked, e.child.locked]).toEqual([2, 0]);
    e.release(idev);
  });
});

describe('IOMMU_IOAS_MAP_FILE pages', () => {
  it('hold the file open while any area uses them (get_file), however many areas share them', () => {
    const e = env();
    const fd = e.proc.memfd(2);
    const file = e.proc.files.get(fd)!;
    let holds = 0;
    file.get = () => holds++;
    file.put = () => holds--;
    expect(e.mapFileAs(e.proc, fd, 2n * PAGE)).toBe(0);
    expect(holds).toBe(1);
    const dst = e.ioctl(iommu_ioas_alloc, IOMMU_IOAS_ALLOC, {}).out.out_ioas_id;
    const copy = { flags: RW, dst_ioas_id: dst, src_ioas_id: e.ioas, length: 2n * PAGE, src_iova: IOVA, dst_iova: 0n };
    expect(e.ioctl(iommu_ioas_copy, IOMMU_IOAS_COPY, copy).rc).toBe(0);
    expect(holds).toBe(1);
    expect(e.ioctl(iommu_ioas_unmap, IOMMU_IOAS_UNMAP, { ioas_id: e.ioas, iova: 0n, length: (1n << 64n) - 1n }).rc).toBe(0);
    expect(holds).toBe(1);
    expect(e.ioctl(iommu_ioas_unmap, IOMMU_IOAS_UNMAP, { ioas_id: dst, iova: 0n, length: (1n << 64n) - 1n }).rc).toBe(0);
    expect(holds).toBe(0);
    e.release();
  });
});

describe('in-kernel access rw (iommufd_access_rw)', () => {
  const accessOf = (e: ReturnType<typeof env>) => {
    const a = iommufdAccessCreate(e.ctx, e.ioas, { needsPin: false, unmap: () => undefined });
    if (typeof a === 'number') throw new Error(`access ${a}`);
    return a.access;
  };

  it('reaches an exited source through the pages a domain pinned, across pages and both ways', () => {
    const e = env();
    const idev = e.attach(0);
    const access = accessOf(e);
    const { va, bytes } = e.childBuffer(2);
    expect(e.mapAs(e.child, va, 2n * PAGE)).toBe(0);
    e.child.exited = true;
    const out = new Uint8Array(100);
    expect(iommufdAccessRw(access, IOVA + PAGE - 50n, out, false)).toBe(0);
    expect(out).toEqual(bytes.subarray(4096 - 50, 4096 + 50));
    expect(iommufdAccessRw(access, IOVA + 7n, out.subarray(0, 10), false)).toBe(0);
    expect(out.subarray(0, 10)).toEqual(bytes.subarray(7, 17));
    const data = new Uint8Array(64).fill(0xa5);
    expect(iommufdAccessRw(access, IOVA + PAGE - 32n, data, true)).toBe(0);
    expect(e.child.frames.get(e.child.pages.get(va / PAGE)!.pfn)!.subarray(4096 - 32)).toEqual(data.subarray(0, 32));
    expect(e.child.frames.get(e.child.pages.get(va / PAGE + 1n)!.pfn)!.subarray(0, 32)).toEqual(data.subarray(32));
    iommufdAccessDestroy(access);
    e.release(idev);
  });

  it('an exited source whose pages nothing pinned: EFAULT', () => {
    const e = env();
    const access = accessOf(e);
    const { va } = e.childBuffer(2);
    expect(e.mapAs(e.child, va, 2n * PAGE)).toBe(0);
    e.child.exited = true;
    expect(iommufdAccessRw(access, IOVA, new Uint8Array(8), false)).toBe(EFAULT);
    expect(iommufdAccessRw(access, IOVA + PAGE - 4n, new Uint8Array(8), false)).toBe(EFAULT);
    iommufdAccessDestroy(access);
    e.release();
  });

  it('a live source read by another process, fast and slow path alike; temporary pins are dropped', () => {
    const e = env();
    const access = accessOf(e);
    const { va, bytes } = e.childBuffer(2);
    expect(e.mapAs(e.child, va, 2n * PAGE)).toBe(0);
    for (const slowPath of [false, true]) {
      const out = new Uint8Array(300);
      expect(iommufdAccessRw(access, IOVA + PAGE - 150n, out, false, { slowPath })).toBe(0);
      expect(out).toEqual(bytes.subarray(4096 - 150, 4096 + 150));
      expect(iommufdAccessRw(access, IOVA + 9n, out.subarray(0, 9), false, { slowPath })).toBe(0);
      expect(out.subarray(0, 9)).toEqual(bytes.subarray(9, 18));
    }
    expect([e.child.pinnedPages, e.child.locked]).toEqual([0, 0]);
    iommufdAccessDestroy(access);
    e.release();
  });

  it('file-backed areas are read through their pages; a read-only area refuses writes with EPERM', () => {
    const e = env();
    const access = accessOf(e);
    const fd = e.proc.memfd(1);
    expect(e.mapFileAs(e.proc, fd, PAGE)).toBe(0);
    const pins = iommufdAccessPinPages(access, IOVA, PAGE, false);
    expect(pins).not.toBeTypeOf('number');
    e.proc.frames.get((pins as bigint[])[0]!)!.set([1, 2, 3], 100);
    iommufdAccessUnpinPages(access, IOVA, PAGE);
    const out = new Uint8Array(3);
    expect(iommufdAccessRw(access, IOVA + 100n, out, false)).toBe(0);
    expect([...out]).toEqual([1, 2, 3]);
    expect(e.mapAs(e.proc, e.proc.mmap(PAGE), PAGE, IOVA + 0x10000n)).toBe(0);
    const ro = callAs(e.ctx, e.proc, iommu_ioas_map, IOMMU_IOAS_MAP, {
      flags: IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_FIXED_IOVA,
      ioas_id: e.ioas,
      user_va: e.proc.mmap(PAGE),
      length: PAGE,
      iova: IOVA + 0x20000n,
    });
    expect(ro).toBe(0);
    expect(iommufdAccessRw(access, IOVA + 0x20000n, new Uint8Array(4), true)).toBe(EPERM);
    iommufdAccessDestroy(access);
    e.release();
  });
});
