// Error order of the IOAS ioctls (ioas.ts): each test starts from a struct with every fault
// and repairs one per step (expectErrorOrder), so each check is shown to run after all the
// earlier ones and before all the later ones, as iommufd-core.md §3.2 lists them.
import { describe, expect, it } from 'vitest';
import {
  EADDRINUSE,
  EBADF,
  EEXIST,
  EFAULT,
  EINVAL,
  EMSGSIZE,
  ENODEV,
  ENOENT,
  ENOSPC,
  EOPNOTSUPP,
  EOVERFLOW,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_ALLOW_IOVAS,
  IOMMU_IOAS_CHANGE_PROCESS,
  IOMMU_IOAS_COPY,
  IOMMU_IOAS_IOVA_RANGES,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FILE,
  IOMMU_IOAS_UNMAP,
  IOMMU_VFIO_IOAS,
  IOMMU_VFIO_IOAS_GET,
  IOMMU_VFIO_IOAS_SET,
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
import { expectErrorOrder } from '../harness.js';
import { BASE, FIXED, orderEnv, RW, U64_MAX } from './env.js';

describe('error order: IOAS ioctls', () => {
  it('IOMMU_IOAS_ALLOC: flags, then the copy-back (EFAULT aborts)', () => {
    const e = orderEnv();
    expectErrorOrder(e, iommu_ioas_alloc, IOMMU_IOAS_ALLOC, { flags: 2 }, [{ check: 'flags≠0', errno: EOPNOTSUPP, fix: { flags: 0 } }]);
  });

  it('IOMMU_IOAS_MAP with FIXED_IOVA: flags, __reserved, EOVERFLOW, R/W, IOAS, user_va overflow, length, alignment, fixed IOVA checks', () => {
    const e = orderEnv();
    e.map(0x1000n, BASE + 0x10000n);
    const va = e.proc.mmap(0x2000n);
    const last = expectErrorOrder(e, iommu_ioas_map, IOMMU_IOAS_MAP, { flags: 0x10, __reserved: 1, ioas_id: 99, iova: U64_MAX, length: U64_MAX, user_va: U64_MAX - 10n }, [
      { check: 'unknown flag', errno: EOPNOTSUPP, fix: { flags: FIXED } },
      { check: '__reserved', errno: EOPNOTSUPP, fix: { __reserved: 0 } },
      { check: 'iova ≥ ULONG_MAX', errno: EOVERFLOW, fix: { iova: BASE + 1n } },
      { check: 'length ≥ ULONG_MAX', errno: EOVERFLOW, fix: { length: 0x1001n } },
      { check: 'neither READABLE nor WRITEABLE', errno: EINVAL, fix: { flags: RW | FIXED } },
      { check: 'IOAS lookup', errno: ENOENT, fix: { ioas_id: e.ioas } },
      { check: 'user_va + length overflows', errno: EOVERFLOW, fix: { user_va: va } },
      { check: 'length not a multiple of the IOAS alignment', errno: EINVAL, fix: { length: 0x2000n } },
      { check: 'iova not aligned', errno: EINVAL, fix: { iova: U64_MAX - 0x1000n + 1n } },
      { check: 'iova + length − 1 overflows', errno: EOVERFLOW, fix: { iova: 0n } },
      { check: 'reserved range (outside the aperture)', errno: EINVAL, fix: { iova: BASE + 0x10000n } },
      { check: 'existing mapping', errno: EEXIST, fix: { iova: BASE + 0x20000n } },
    ]);
    expect(e.ioctl(iommu_ioas_map, IOMMU_IOAS_MAP, last).rc).toBe(0);
  });

  it('IOMMU_IOAS_MAP, automatic IOVA: length 0 before the huge-length EOVERFLOW, then ENOSPC', () => {
    const e = orderEnv();
    const arr = e.proc.mmap(4096n);
    e.proc.copyToUser(arr, iommu_iova_range.encode({ start: BASE, last: BASE + 0xfffn }));
    expect(e.ioctl(iommu_ioas_allow_iovas, IOMMU_IOAS_ALLOW_IOVAS, { ioas_id: e.ioas, num_iovas: 1, allowed_iovas: arr }).rc).toBe(0);
    expectErrorOrder(e, iommu_ioas_map, IOMMU_IOAS_MAP, { flags: RW, ioas_id: e.ioas, user_va: 0n, length: 0n }, [
      { check: 'length 0', errno: EINVAL, fix: { length: 1n << 63n } },
      { check: 'automatic: length ≥ ULONG_MAX/2', errno: EOVERFLOW, fix: { length: 0x2000n, user_va: e.proc.mmap(0x2000n) } },
      { check: 'no hole in the allowed window', errno: ENOSPC, fix: {} },
    ]);
  });

  it('IOMMU_IOAS_MAP_FILE: flags, EOVERFLOW, R/W, IOAS, fd (before any length check), overflow, length', () => {
    const e = orderEnv();
    const mfd = e.proc.memfd(2);
    const last = expectErrorOrder(e, iommu_ioas_map_file, IOMMU_IOAS_MAP_FILE, { flags: 0x10, ioas_id: 99, fd: 99, start: U64_MAX, length: U64_MAX, iova: BASE }, [
      { check: 'unknown flag', errno: EOPNOTSUPP, fix: { flags: 0 } },
      { check: 'length ≥ ULONG_MAX', errno: EOVERFLOW, fix: { length: 2n } },
      { check: 'neither READABLE nor WRITEABLE', errno: EINVAL, fix: { flags: RW | FIXED } },
      { check: 'IOAS lookup', errno: ENOENT, fix: { ioas_id: e.ioas } },
      { check: 'fget', errno: EBADF, fix: { fd: mfd } },
      { check: 'start + length − 1 overflows', errno: EOVERFLOW, fix: { start: 0n, length: 0n } },
      { check: 'length 0', errno: EINVAL, fix: { length: U64_MAX - 1n } },
      { check: 'length > SIZE_MAX − PAGE_SIZE', errno: EINVAL, fix: { length: 0x2000n } },
    ]);
    expect(e.ioctl(iommu_ioas_map_file, IOMMU_IOAS_MAP_FILE, last).rc).toBe(0);
  });

  it('IOMMU_IOAS_COPY: flags, EOVERFLOW, R/W, source IOAS, length, overflow, source coverage, destination IOAS, then as MAP', () => {
    const e = orderEnv();
    const dst = e.ioasAlloc();
    e.map(0x2000n, BASE);
    e.map(0x1000n, BASE, dst);
    const last = expectErrorOrder(e, iommu_ioas_copy, IOMMU_IOAS_COPY, { flags: 0x10, dst_ioas_id: 98, src_ioas_id: 99, length: U64_MAX, dst_iova: BASE, src_iova: U64_MAX - 0xfffn }, [
      { check: 'unknown flag', errno: EOPNOTSUPP, fix: { flags: FIXED } },
      { check: 'length ≥ ULONG_MAX', errno: EOVERFLOW, fix: { length: 0n } },
      { check: 'neither READABLE nor WRITEABLE', errno: EINVAL, fix: { flags: RW | FIXED } },
      { check: 'source IOAS lookup', errno: ENOENT, fix: { src_ioas_id: e.ioas } },
      { check: 'length 0', errno: EINVAL, fix: { length: 0x2000n } },
      { check: 'src_iova + length − 1 overflows', errno: EOVERFLOW, fix: { src_iova: BASE + 0x1000n } },
      { check: 'source not fully mapped', errno: ENOENT, fix: { src_iova: BASE } },
      { check: 'destination IOAS lookup', errno: ENOENT, fix: { dst_ioas_id: dst } },
      { check: 'destination overlaps a mapping', errno: EEXIST, fix: { dst_iova: BASE + 0x4000n } },
    ]);
    expect(e.ioctl(iommu_ioas_copy, IOMMU_IOAS_COPY, last).rc).toBe(0);
  });

  it('IOMMU_IOAS_UNMAP: IOAS first, then EOVERFLOW, length, overflow, coverage', () => {
    const e = orderEnv();
    e.map(0x2000n, BASE);
    const last = expectErrorOrder(e, iommu_ioas_unmap, IOMMU_IOAS_UNMAP, { ioas_id: 99, iova: U64_MAX, length: 0n }, [
      { check: 'IOAS lookup', errno: ENOENT, fix: { ioas_id: e.ioas } },
      { check: 'iova ≥ ULONG_MAX', errno: EOVERFLOW, fix: { iova: BASE } },
      { check: 'length 0', errno: EINVAL, fix: { iova: U64_MAX - 0x1000n, length: 0x2000n } },
      { check: 'iova + length − 1 overflows', errno: EOVERFLOW, fix: { iova: BASE, length: 0x1000n } },
      { check: 'area only partly covered', errno: ENOENT, fix: { length: 0x2000n } },
    ]);
    expect(e.ioctl(iommu_ioas_unmap, IOMMU_IOAS_UNMAP, last).rc).toBe(0);
  });

  it('IOMMU_IOAS_IOVA_RANGES: __reserved, IOAS, array, then EMSGSIZE', () => {
    const e = orderEnv();
    const arr = e.proc.mmap(4096n);
    expectErrorOrder(e, iommu_ioas_iova_ranges, IOMMU_IOAS_IOVA_RANGES, { ioas_id: 99, __reserved: 1, num_iovas: 1, allowed_iovas: 0x10n }, [
      { check: '__reserved', errno: EOPNOTSUPP, fix: { __reserved: 0 } },
      { check: 'IOAS lookup', errno: ENOENT, fix: { ioas_id: e.ioas } },
      { check: 'array write', errno: EFAULT, fix: { allowed_iovas: arr } },
      { check: 'one slot for the one usable range (the aperture): success', errno: 0, fix: { num_iovas: 0 } },
      { check: 'capacity 0', errno: EMSGSIZE, fix: {} },
    ]);
  });

  it('IOMMU_IOAS_ALLOW_IOVAS: __reserved, IOAS, copy, start ≥ last, overlap, then reserved collision', () => {
    const e = orderEnv();
    const arr = e.proc.mmap(4096n);
    const put = (ranges: [bigint, bigint][]) => ranges.forEach(([start, last], i) => e.proc.copyToUser(arr + BigInt(16 * i), iommu_iova_range.encode({ start, last })));
    const v = { ioas_id: 99, __reserved: 1, num_iovas: 2, allowed_iovas: 0x10n };
    let cur = expectErrorOrder(e, iommu_ioas_allow_iovas, IOMMU_IOAS_ALLOW_IOVAS, v, [
      { check: '__reserved', errno: EOPNOTSUPP, fix: { __reserved: 0 } },
      { check: 'IOAS lookup', errno: ENOENT, fix: { ioas_id: e.ioas } },
      { check: 'array read', errno: EFAULT, fix: { allowed_iovas: arr } },
    ]);
    put([[0x5000n, 0x5000n], [0x1000n, 0x1fffn]]);
    expect(e.ioctl(iommu_ioas_allow_iovas, IOMMU_IOAS_ALLOW_IOVAS, cur).rc).toBe(-EINVAL);
    put([[0x1000n, 0x5fffn], [0x2000n, 0x2fffn]]);
    expect(e.ioctl(iommu_ioas_allow_iovas, IOMMU_IOAS_ALLOW_IOVAS, cur).rc).toBe(-EINVAL);
    // Both ranges valid and disjoint, but the first covers reserved IOVA below the aperture.
    put([[0n, BASE], [BASE + 0x10000n, BASE + 0x1ffffn]]);
    expect(e.ioctl(iommu_ioas_allow_iovas, IOMMU_IOAS_ALLOW_IOVAS, cur).rc).toBe(-EADDRINUSE);
    cur = { ...cur, num_iovas: 1, allowed_iovas: arr + 16n };
    expect(e.ioctl(iommu_ioas_allow_iovas, IOMMU_IOAS_ALLOW_IOVAS, cur).rc).toBe(0);
  });

  it('IOMMU_VFIO_IOAS: __reserved, then op; GET is ENODEV until SET; SET looks the IOAS up', () => {
    const e = orderEnv();
    const last = expectErrorOrder(e, iommu_vfio_ioas, IOMMU_VFIO_IOAS, { ioas_id: 99, op: 7, __reserved: 1 }, [
      { check: '__reserved', errno: EOPNOTSUPP, fix: { __reserved: 0 } },
      { check: 'unknown op', errno: EOPNOTSUPP, fix: { op: IOMMU_VFIO_IOAS_GET } },
      { check: 'GET without a compat IOAS', errno: ENODEV, fix: { op: IOMMU_VFIO_IOAS_SET } },
      { check: 'SET: IOAS lookup', errno: ENOENT, fix: { ioas_id: e.ioas } },
    ]);
    expect(e.ioctl(iommu_vfio_ioas, IOMMU_VFIO_IOAS, last).rc).toBe(0);
  });

  it('IOMMU_IOAS_CHANGE_PROCESS: __reserved, then every area must be file backed', () => {
    const e = orderEnv();
    e.map(0x1000n, BASE);
    expectErrorOrder(e, iommu_ioas_change_process, IOMMU_IOAS_CHANGE_PROCESS, { __reserved: 1 }, [
      { check: '__reserved', errno: EOPNOTSUPP, fix: { __reserved: 0 } },
      { check: 'an anonymous area', errno: EINVAL, fix: {} },
    ]);
  });
});
