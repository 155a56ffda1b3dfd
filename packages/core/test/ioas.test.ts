import { describe, expect, it } from 'vitest';
import {
  EEXIST,
  EFAULT,
  EINVAL,
  EMSGSIZE,
  ENODEV,
  ENOENT,
  EOPNOTSUPP,
  EOVERFLOW,
  EPERM,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_ALLOW_IOVAS,
  IOMMU_IOAS_CHANGE_PROCESS,
  IOMMU_IOAS_COPY,
  IOMMU_IOAS_IOVA_RANGES,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FILE,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_UNMAP,
  IOMMU_VFIO_IOAS,
  IOMMU_VFIO_IOAS_GET,
  IOMMU_VFIO_IOAS_SET,
  IOMMU_VFIO_IOAS_CLEAR,
  IOMMU_DESTROY,
  iommu_destroy,
  iommu_ioas_alloc,
  iommu_ioas_allow_iovas,
  iommu_ioas_change_process,
  iommu_ioas_copy,
  iommu_ioas_iova_ranges,
  iommu_ioas_map,
  iommu_ioas_map_file,
  iommu_ioas_unmap,
  iommu_iova_range,
  iommu_vfio_ioas,
} from '@iommufd/uapi';
import { RW, setup, U64_MAX } from './harness.js';


function env() {
  const e = setup();
  const ioas = e.ioctl(iommu_ioas_alloc, IOMMU_IOAS_ALLOC, {}).out.out_ioas_id;
  const map = (user_va: bigint, length: bigint, iova?: bigint, flags = RW) =>
    e.ioctl(iommu_ioas_map, IOMMU_IOAS_MAP, {
      flags: flags | (iova === undefined ? 0 : IOMMU_IOAS_MAP_FIXED_IOVA),
      ioas_id: ioas,
      user_va,
      length,
      iova: iova ?? 0n,
    });
  const unmap = (iova: bigint, length: bigint) => e.ioctl(iommu_ioas_unmap, IOMMU_IOAS_UNMAP, { ioas_id: ioas, iova, length });
  return { ...e, ioas, map, unmap };
}

describe('IOMMU_IOAS_ALLOC', () => {
  it('rejects flags with EOPNOTSUPP', () => {
    const e = setup();
    expect(e.ioctl(iommu_ioas_alloc, IOMMU_IOAS_ALLOC, { flags: 1 }).rc).toBe(-EOPNOTSUPP);
    expect(e.ctx.objects()).toEqual([]);
  });
  it('an EFAULT on copy-back aborts the object and frees the ID', () => {
    const e = setup();
    // A user struct whose size word is readable but the rest is not.
    const va = e.proc.mmap(4096n);
    e.proc.copyToUser(va + 4092n, new Uint8Array([12, 0, 0, 0]));
    expect(e.ctx.ioctl!(IOMMU_IOAS_ALLOC, va + 4092n)).toBe(-EFAULT);
    expect(e.ctx.objects()).toEqual([]);
  });
});

describe('IOMMU_IOAS_MAP', () => {
  it('checks in the kernel order', () => {
    const e = env();
    const va = e.proc.mmap(0x10000n);
    expect(e.ioctl(iommu_ioas_map, IOMMU_IOAS_MAP, { flags: 8 | RW, ioas_id: e.ioas, user_va: va, length: 4096n }).rc).toBe(-EOPNOTSUPP);
    expect(e.ioctl(iommu_ioas_map, IOMMU_IOAS_MAP, { flags: RW, __reserved: 1, ioas_id: e.ioas, user_va: va, length: 4096n }).rc).toBe(-EOPNOTSUPP);
    expect(e.ioctl(iommu_ioas_map, IOMMU_IOAS_MAP, { flags: RW, ioas_id: e.ioas, user_va: va, length: U64_MAX }).rc).toBe(-EOVERFLOW);
    expect(e.ioctl(iommu_ioas_map, IOMMU_IOAS_MAP, { flags: 0, ioas_id: 99, user_va: va, length: 4096n }).rc).toBe(-EINVAL);
    expect(e.ioctl(iommu_ioas_map, IOMMU_IOAS_MAP, { flags: RW, ioas_id: 99, user_va: va, length: 4096n }).rc).toBe(-ENOENT);
    expect(e.map(U64_MAX - 10n, 4096n).rc).toBe(-EOVERFLOW);
    expect(e.map(va, 0n).rc).toBe(-EINVAL);
  });

  it('automatic IOVA: first fit from PAGE_SIZE keeping the source alignment', () => {
    const e = env();
    const va = e.proc.mmap(0x4000n);
    const a = e.map(va, 0x1000n);
    expect(a.rc).toBe(0);
    expect(a.out.iova).toBe(0x1000n);
    const b = e.map(va, 0x2000n);
    expect(b.out.iova).toBe(0x2000n);
    // An offset inside the page is preserved in the IOVA.
    const c = e.map(va + 0x10n, 0x100n);
    expect(c.out.iova % 0x1000n).toBe(0x10n);
  });

  it('fixed IOVA: EEXIST on overlap, EINVAL on a reserved range', () => {
    const e = env();
    const va = e.proc.mmap(0x4000n);
    expect(e.map(va, 0x2000n, 0x100000n).rc).toBe(0);
    expect(e.map(va, 0x1000n, 0x101000n).rc).toBe(-EEXIST);
    expect(e.map(va, 0x1000n, 0x102000n).rc).toBe(0);
  });

  it('pins nothing without a domain; GUP errors surface when a domain is attached', () => {
    const e = env();
    // Unmapped user memory maps fine into an IOAS with no domain (pinning is lazy).
    expect(e.map(0x5000_0000n, 0x1000n, 0x200000n).rc).toBe(0);
    expect(e.proc.pinnedPages).toBe(0);
  });
});

describe('IOMMU_IOAS_UNMAP', () => {
  it('whole areas only, ENOENT when nothing or part of an area is covered', () => {
    const e = env();
    const va = e.proc.mmap(0x4000n);
    e.map(va, 0x2000n, 0x100000n);
    e.map(va, 0x2000n, 0x102000n);
    expect(e.unmap(0x100000n, 0x1000n).rc).toBe(-ENOENT);
    expect(e.unmap(0x200000n, 0x1000n).rc).toBe(-ENOENT);
    expect(e.unmap(0x100000n, 0n).rc).toBe(-EINVAL);
    expect(e.unmap(U64_MAX, 1n).rc).toBe(-EOVERFLOW);
    const r = e.unmap(0x100000n, 0x4000n);
    expect([r.rc, r.out.length]).toEqual([0, 0x4000n]);
  });
  it('unmap-all succeeds on an empty IOAS with length 0 out', () => {
    const e = env();
    const r = e.unmap(0n, U64_MAX);
    expect([r.rc, r.out.length]).toEqual([0, 0n]);
    const va = e.proc.mmap(0x1000n);
    e.map(va, 0x1000n);
    e.map(va, 0x1000n);
    const r2 = e.unmap(0n, U64_MAX);
    expect([r2.rc, r2.out.length]).toEqual([0, 0x2000n]);
  });
});

describe('IOMMU_IOAS_IOVA_RANGES and ALLOW_IOVAS', () => {
  it('EMSGSIZE still copies back the count and alignment', () => {
    const e = env();
    const r = e.ioctl(iommu_ioas_iova_ranges, IOMMU_IOAS_IOVA_RANGES, { ioas_id: e.ioas, num_iovas: 0, allowed_iovas: 0n });
    expect(r.rc).toBe(-EMSGSIZE);
    expect([r.out.num_iovas, r.out.out_iova_alignment]).toEqual([1, 1n]);
    const arr = e.proc.mmap(4096n);
    const r2 = e.ioctl(iommu_ioas_iova_ranges, IOMMU_IOAS_IOVA_RANGES, { ioas_id: e.ioas, num_iovas: 4, allowed_iovas: arr });
    expect(r2.rc).toBe(0);
    expect(iommu_iova_range.decode(e.proc.copyFromUser(arr, 16) as Uint8Array)).toEqual({ start: 0n, last: U64_MAX });
    expect(e.ioctl(iommu_ioas_iova_ranges, IOMMU_IOAS_IOVA_RANGES, { ioas_id: e.ioas, __reserved: 1 }).rc).toBe(-EOPNOTSUPP);
  });

  it('ALLOW_IOVAS: start >= last and overlaps are EINVAL; automatic IOVAs land inside', () => {
    const e = env();
    const arr = e.proc.mmap(4096n);
    const put = (ranges: [bigint, bigint][]) =>
      ranges.forEach(([start, last], i) => e.proc.copyToUser(arr + BigInt(16 * i), iommu_iova_range.encode({ start, last })));
    put([[0x1000n, 0x1000n]]);
    expect(e.ioctl(iommu_ioas_allow_iovas, IOMMU_IOAS_ALLOW_IOVAS, { ioas_id: e.ioas, num_iovas: 1, allowed_iovas: arr }).rc).toBe(-EINVAL);
    put([
      [0x10000n, 0x1ffffn],
      [0x18000n, 0x28000n],
    ]);
    expect(e.ioctl(iommu_ioas_allow_iovas, IOMMU_IOAS_ALLOW_IOVAS, { ioas_id: e.ioas, num_iovas: 2, allowed_iovas: arr }).rc).toBe(-EINVAL);
    put([[0x40000n, 0x4ffffn]]);
    expect(e.ioctl(iommu_ioas_allow_iovas, IOMMU_IOAS_ALLOW_IOVAS, { ioas_id: e.ioas, num_iovas: 1, allowed_iovas: arr }).rc).toBe(0);
    const va = e.proc.mmap(0x1000n);
    expect(e.map(va, 0x1000n).out.iova).toBe(0x40000n);
    expect(e.ioctl(iommu_ioas_allow_iovas, IOMMU_IOAS_ALLOW_IOVAS, { ioas_id: e.ioas, num_iovas: 1, allowed_iovas: 0n }).rc).toBe(-EFAULT);
  });
});

describe('IOMMU_IOAS_COPY', () => {
  it('shares the source pages; ENOENT when the source is not fully mapped', () => {
    const e = env();
    const dst = e.ioctl(iommu_ioas_alloc, IOMMU_IOAS_ALLOC, {}).out.out_ioas_id;
    const va = e.proc.mmap(0x2000n);
    e.map(va, 0x2000n, 0x100000n);
    const copy = (src_iova: bigint, length: bigint, flags = RW) =>
      e.ioctl(iommu_ioas_copy, IOMMU_IOAS_COPY, { flags, dst_ioas_id: dst, src_ioas_id: e.ioas, length, src_iova, dst_iova: 0n });
    expect(copy(0x100000n, 0x3000n).rc).toBe(-ENOENT);
    expect(copy(0x100000n, 0x1000n, 8).rc).toBe(-EOPNOTSUPP);
    expect(copy(0x100000n, 0n).rc).toBe(-EINVAL);
    const r = copy(0x101000n, 0x1000n);
    expect(r.rc).toBe(0);
    expect(r.out.dst_iova).toBe(0x1000n);
  });
  it('WRITEABLE on pages mapped read-only is EPERM', () => {
    const e = env();
    const dst = e.ioctl(iommu_ioas_alloc, IOMMU_IOAS_ALLOC, {}).out.out_ioas_id;
    const va = e.proc.mmap(0x1000n);
    e.map(va, 0x1000n, 0x100000n, IOMMU_IOAS_MAP_READABLE);
    const r = e.ioctl(iommu_ioas_copy, IOMMU_IOAS_COPY, { flags: RW, dst_ioas_id: dst, src_ioas_id: e.ioas, length: 0x1000n, src_iova: 0x100000n });
    expect(r.rc).toBe(-EPERM);
  });
});

describe('IOMMU_IOAS_MAP_FILE and CHANGE_PROCESS', () => {
  it('maps a memfd; EBADF for a bad fd; CHANGE_PROCESS needs every area file backed', () => {
    const e = env();
    const fd = e.proc.memfd(4);
    const mf = (fdn: number, start: bigint, length: bigint) =>
      e.ioctl(iommu_ioas_map_file, IOMMU_IOAS_MAP_FILE, { flags: RW, ioas_id: e.ioas, fd: fdn, start, length });
    expect(mf(99, 0n, 0x1000n).rc).toBe(-9);
    expect(mf(fd, 0n, 0n).rc).toBe(-EINVAL);
    expect(mf(fd, 0n, 0x2000n).rc).toBe(0);
    expect(e.ioctl(iommu_ioas_change_process, IOMMU_IOAS_CHANGE_PROCESS, {}).rc).toBe(0);
    expect(e.ioctl(iommu_ioas_change_process, IOMMU_IOAS_CHANGE_PROCESS, { __reserved: 1 }).rc).toBe(-EOPNOTSUPP);
    const va = e.proc.mmap(0x1000n);
    e.map(va, 0x1000n);
    expect(e.ioctl(iommu_ioas_change_process, IOMMU_IOAS_CHANGE_PROCESS, {}).rc).toBe(-EINVAL);
  });
});

describe('the calling process (current)', () => {
  it('an ioctl copies and pins through its caller, and CHANGE_PROCESS moves the accounting to the caller', async () => {
    const { FakeProcess } = await import('./harness.js');
    const { iommufdDeviceBind, iommufdDeviceAttach, iommufdDeviceDetach, iommufdDeviceUnbind } = await import('../src/index.js');
    const e = env();
    const child = new FakeProcess();
    child.nextVa = 0x5000_0000_0000n;
    child.nextPfn = 0x8000n;
    const b = iommufdDeviceBind(e.ctx, e.devs[0]!) as Exclude<ReturnType<typeof iommufdDeviceBind>, number>;
    iommufdDeviceAttach(b.idev, undefined, e.ioas);
    // A memfd mapped by the opener: pinned by the domain, charged to the opener.
    const fd = e.proc.memfd(2);
    expect(e.ioctl(iommu_ioas_map_file, IOMMU_IOAS_MAP_FILE, { flags: RW, ioas_id: e.ioas, fd, start: 0n, length: 0x2000n }).rc).toBe(0);
    expect(e.proc.locked).toBe(2);
    // The struct lives only in the child's memory: the opener cannot read it there.
    const arg = child.mmap(0x1000n);
    child.copyToUser(arg, iommu_ioas_change_process.encode({ size: iommu_ioas_change_process.size }));
    expect(e.ctx.ioctl(IOMMU_IOAS_CHANGE_PROCESS, arg)).toBe(-14);
    expect(e.ctx.ioctl(IOMMU_IOAS_CHANGE_PROCESS, arg, child)).toBe(0);
    expect([e.proc.locked, child.locked]).toEqual([0, 2]);
    // A mapping made by the child pins the child's pages.
    const va = child.mmap(0x1000n);
    child.copyToUser(arg, iommu_ioas_map.encode({ size: iommu_ioas_map.size, flags: RW, ioas_id: e.ioas, user_va: va, length: 0x1000n, iova: 0n }));
    expect(e.ctx.ioctl(IOMMU_IOAS_MAP, arg, child)).toBe(0);
    // (The opener's two are its memfd's pages, pinned through the file.)
    expect([e.proc.pinnedPages, child.pinnedPages]).toEqual([2, 1]);
    expect(child.locked).toBe(3);
    // After the call the opener is current again.
    expect(e.ioctl(iommu_ioas_change_process, IOMMU_IOAS_CHANGE_PROCESS, {}).rc).toBe(-EINVAL);
    iommufdDeviceDetach(b.idev, undefined);
    iommufdDeviceUnbind(b.idev);
    e.ctx.release();
    expect([child.pinnedPages, child.locked, e.proc.locked]).toEqual([0, 0, 0]);
  });
});

describe('IOMMU_VFIO_IOAS', () => {
  it('GET without a compat IOAS is ENODEV; SET/GET/CLEAR; destroy clears it', () => {
    const e = env();
    const v = (op: number, ioas_id = 0, __reserved = 0) => e.ioctl(iommu_vfio_ioas, IOMMU_VFIO_IOAS, { op, ioas_id, __reserved });
    expect(v(IOMMU_VFIO_IOAS_GET).rc).toBe(-ENODEV);
    expect(v(IOMMU_VFIO_IOAS_GET, 0, 1).rc).toBe(-EOPNOTSUPP);
    expect(v(IOMMU_VFIO_IOAS_SET, 77).rc).toBe(-ENOENT);
    expect(v(IOMMU_VFIO_IOAS_SET, e.ioas).rc).toBe(0);
    expect(v(IOMMU_VFIO_IOAS_GET).out.ioas_id).toBe(e.ioas);
    expect(v(IOMMU_VFIO_IOAS_CLEAR).rc).toBe(0);
    expect(v(IOMMU_VFIO_IOAS_GET).rc).toBe(-ENODEV);
    v(IOMMU_VFIO_IOAS_SET, e.ioas);
    expect(e.ioctl(iommu_destroy, IOMMU_DESTROY, { id: e.ioas }).rc).toBe(0);
    expect(v(IOMMU_VFIO_IOAS_GET).rc).toBe(-ENODEV);
    expect(v(7).rc).toBe(-EOPNOTSUPP);
  });
});


describe('VFIO type1 compatibility on /dev/iommu', () => {
  it('MAP_DMA / UNMAP_DMA / SET_IOMMU act on the compat IOAS; ENODEV without one', async () => {
    const { iommufdVfioCompatIoasCreate } = await import('../src/index.js');
    const {
      VFIO_IOMMU_MAP_DMA,
      VFIO_IOMMU_UNMAP_DMA,
      VFIO_SET_IOMMU,
      VFIO_DMA_MAP_FLAG_READ,
      VFIO_DMA_MAP_FLAG_WRITE,
      VFIO_DMA_UNMAP_FLAG_ALL,
      vfio_iommu_type1_dma_map,
      vfio_iommu_type1_dma_unmap,
      ENODEV: ENODEV_,
    } = await import('@iommufd/uapi');
    const e = setup();
    const va = e.proc.mmap(0x3000n);
    const arg = e.proc.mmap(4096n);
    const mapDma = (iova: bigint, size: bigint, flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE) => {
      e.proc.copyToUser(arg, vfio_iommu_type1_dma_map.encode({ argsz: 32, flags, vaddr: va, iova, size }));
      return e.ctx.ioctl!(VFIO_IOMMU_MAP_DMA, arg);
    };
    const unmapDma = (iova: bigint, size: bigint, flags = 0) => {
      e.proc.copyToUser(arg, vfio_iommu_type1_dma_unmap.encode({ argsz: 24, flags, iova, size }));
      const rc = e.ctx.ioctl!(VFIO_IOMMU_UNMAP_DMA, arg);
      return { rc, size: vfio_iommu_type1_dma_unmap.decode(e.proc.copyFromUser(arg, 24) as Uint8Array).size };
    };
    expect(mapDma(0x100000n, 0x1000n)).toBe(-ENODEV_);
    expect(e.ctx.ioctl!(VFIO_SET_IOMMU, 3n)).toBe(-ENODEV_);
    const id = iommufdVfioCompatIoasCreate(e.ctx);
    expect(id).toBe(1);
    expect(e.ctx.ioctl!(VFIO_SET_IOMMU, 2n)).toBe(-EINVAL);
    expect(e.ctx.ioctl!(VFIO_SET_IOMMU, 3n)).toBe(0);
    expect(mapDma(0x100000n, 0x1000n, 4)).toBe(-EINVAL);
    expect(mapDma(0x100000n, 0n)).toBe(-EINVAL);
    expect(mapDma(0x100000n, 0x1000n)).toBe(0);
    expect(mapDma(0x100000n, 0x1000n)).toBe(-EEXIST);
    expect(mapDma(0x101000n, 0x2000n)).toBe(0);
    expect(unmapDma(0x100000n, 0x800n)).toEqual({ rc: -ENOENT, size: 0n });
    expect(unmapDma(0x100000n, 0x1000n, VFIO_DMA_UNMAP_FLAG_ALL).rc).toBe(-EINVAL);
    expect(unmapDma(0x100000n, 0x1000n)).toEqual({ rc: 0, size: 0x1000n });
    expect(unmapDma(0n, 0n, VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ rc: 0, size: 0x2000n });
    // TYPE1 (v1) disables large pages, and then a hole may be punched inside a mapping.
    expect(e.ctx.ioctl!(VFIO_SET_IOMMU, 1n)).toBe(0);
    expect(mapDma(0x100000n, 0x3000n)).toBe(0);
    expect(unmapDma(0x101000n, 0x1000n)).toEqual({ rc: 0, size: 0x1000n });
    expect(unmapDma(0x100000n, 0x1000n)).toEqual({ rc: 0, size: 0x1000n });
    expect(unmapDma(0x102000n, 0x1000n)).toEqual({ rc: 0, size: 0x1000n });
    expect(e.proc.pinnedPages).toBe(0);
  });

  it('TYPE1 holes keep the domain mirror exact and the pins balanced', async () => {
    const { VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU, vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_unmap } = await import('@iommufd/uapi');
    const { iommufdVfioCompatIoasCreate, iommufdDeviceBind, iommufdDeviceAttach, deviceAttachedDomain } = await import('../src/index.js');
    const { mockDomainLookup, MOCK_APERTURE_FIRST_IOVA } = await import('@iommufd/mock-iommu');
    const e = setup();
    const id = iommufdVfioCompatIoasCreate(e.ctx) as number;
    expect(e.ctx.ioctl!(VFIO_SET_IOMMU, 1n)).toBe(0);
    const b = iommufdDeviceBind(e.ctx, e.devs[0]!) as { idev: Parameters<typeof iommufdDeviceAttach>[0] };
    iommufdDeviceAttach(b.idev, undefined, id);
    const va = e.proc.mmap(0x4000n);
    const arg = e.proc.mmap(4096n);
    const base = MOCK_APERTURE_FIRST_IOVA;
    e.proc.copyToUser(arg, vfio_iommu_type1_dma_map.encode({ argsz: 32, flags: 3, vaddr: va, iova: base, size: 0x4000n }));
    expect(e.ctx.ioctl!(VFIO_IOMMU_MAP_DMA, arg)).toBe(0);
    expect(e.proc.pinnedPages).toBe(4);
    e.proc.copyToUser(arg, vfio_iommu_type1_dma_unmap.encode({ argsz: 24, iova: base + 0x1000n, size: 0x2000n }));
    expect(e.ctx.ioctl!(VFIO_IOMMU_UNMAP_DMA, arg)).toBe(0);
    const dom = deviceAttachedDomain(e.devs[0]!)!;
    expect(mockDomainLookup(dom, base)).toBeDefined();
    expect(mockDomainLookup(dom, base + 0x1000n)).toBeUndefined();
    expect(mockDomainLookup(dom, base + 0x3000n)).toBeDefined();
    // The hole's pages are unpinned; the two halves keep theirs.
    expect(e.proc.pinnedPages).toBe(2);
    e.proc.copyToUser(arg, vfio_iommu_type1_dma_unmap.encode({ argsz: 24, flags: 2 }));
    expect(e.ctx.ioctl!(VFIO_IOMMU_UNMAP_DMA, arg)).toBe(0);
    expect(e.proc.pinnedPages).toBe(0);
    expect(e.mock.warnings).toEqual([]);
  });
});

describe('VFIO_IOMMU_GET_INFO', () => {
  it('returns page sizes and the DMA_AVAIL + IOVA_RANGE chain; a short argsz learns the needed size', async () => {
    const U = await import('@iommufd/uapi');
    const { iommufdVfioCompatIoasCreate } = await import('../src/index.js');
    const e = setup();
    const arg = e.proc.mmap(4096n);
    const call = (argsz: number) => {
      e.proc.copyToUser(arg, new Uint8Array(256));
      e.proc.copyToUser(arg, U.vfio_iommu_type1_info.encode({ argsz }));
      return e.ctx.ioctl!(U.VFIO_IOMMU_GET_INFO, arg);
    };
    expect(call(24)).toBe(-U.ENODEV);
    iommufdVfioCompatIoasCreate(e.ctx);
    expect(call(8)).toBe(-EINVAL);
    expect(call(24)).toBe(0);
    const short = U.vfio_iommu_type1_info.decode(e.proc.copyFromUser(arg, 24) as Uint8Array);
    // 24 + dma_avail (12 → 16) + iova_range (16 + 1 range of 16).
    // No domain: every size, with the sub-page ones folded into PAGE_SIZE (iommufd_get_pagesizes).
    expect(short).toMatchObject({ argsz: 72, flags: 3, iova_pgsizes: 0xffff_ffff_ffff_f000n, cap_offset: 0 });
    expect(call(72)).toBe(0);
    const all = e.proc.copyFromUser(arg, 72) as Uint8Array;
    expect(U.vfio_iommu_type1_info.decode(all)).toMatchObject({ argsz: 72, cap_offset: 24 });
    expect(U.vfio_iommu_type1_info_dma_avail.decode(all, 24)).toEqual({ id: 3, version: 1, next: 40, avail: 0xffffffff });
    expect(U.vfio_iommu_type1_info_cap_iova_range.decode(all, 40)).toEqual({ id: 1, version: 1, next: 0, nr_iovas: 1, reserved: 0 });
    expect(U.vfio_iova_range.decode(all, 56)).toEqual({ start: 0n, end: (1n << 64n) - 1n });
  });

  it('reports a 2 KiB-page domain as PAGE_SIZE', async () => {
    const U = await import('@iommufd/uapi');
    const { iommufdVfioCompatIoasCreate, iommufdDeviceBind, iommufdDeviceAttach } = await import('../src/index.js');
    const e = setup();
    const arg = e.proc.mmap(4096n);
    const id = iommufdVfioCompatIoasCreate(e.ctx) as number;
    const b = iommufdDeviceBind(e.ctx, e.devs[0]!) as { idev: Parameters<typeof iommufdDeviceAttach>[0] };
    iommufdDeviceAttach(b.idev, undefined, id);
    e.proc.copyToUser(arg, U.vfio_iommu_type1_info.encode({ argsz: 24 }));
    expect(e.ctx.ioctl!(U.VFIO_IOMMU_GET_INFO, arg)).toBe(0);
    expect(U.vfio_iommu_type1_info.decode(e.proc.copyFromUser(arg, 24) as Uint8Array).iova_pgsizes).toBe(0x1000n);
  });
});

describe('per-page pinning', () => {
  it('an access pins only the pages it asks for, once each however many users', async () => {
    const { iommufdAccessCreate, iommufdAccessPinPages, iommufdAccessUnpinPages, iommufdAccessDestroy } = await import('../src/index.js');
    const e = env();
    const va = e.proc.mmap(0x4000n);
    e.map(va, 0x4000n, 0x100000n);
    const acc = iommufdAccessCreate(e.ctx, e.ioas, { needsPin: true, unmap: () => undefined });
    if (typeof acc === 'number') throw new Error(`access ${acc}`);
    const pfns = iommufdAccessPinPages(acc.access, 0x101800n, 0x1000n, true);
    expect(pfns).toEqual([e.proc.pages.get(va / 4096n + 1n)!.pfn, e.proc.pages.get(va / 4096n + 2n)!.pfn]);
    expect(e.proc.pinnedPages).toBe(2);
    iommufdAccessPinPages(acc.access, 0x102000n, 0x1000n, false);
    expect(e.proc.pinnedPages).toBe(2);
    // The area cannot be unmapped under the pins: the owner's unmap callback did not unpin.
    expect(e.unmap(0x100000n, 0x4000n).rc).toBe(-35);
    iommufdAccessUnpinPages(acc.access, 0x101800n, 0x1000n);
    expect(e.proc.pinnedPages).toBe(1);
    iommufdAccessUnpinPages(acc.access, 0x102000n, 0x1000n);
    expect(e.proc.pinnedPages).toBe(0);
    expect(e.unmap(0x100000n, 0x4000n).rc).toBe(0);
    iommufdAccessDestroy(acc.access);
    expect(e.ctx.objects().map((o) => o.type)).toEqual(['IOAS']);
  });
});
