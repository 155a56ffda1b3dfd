// §3.2 IOAS ioctls: IOAS_ALLOC, IOAS_IOVA_RANGES, IOAS_ALLOW_IOVAS, IOAS_MAP, IOAS_MAP_FILE,
// IOAS_COPY, IOAS_UNMAP, each check in the kernel's order (a row with two faults shows which
// one wins).
import { expect } from 'vitest';
import { PAGE, RW, table, U, U64_MAX, UNMAPPED, withU32, withU64, type Env, type Row } from './harness.js';

const ULONG_MAX = U64_MAX;
const R = U.IOMMU_IOAS_MAP_READABLE;
const W = U.IOMMU_IOAS_MAP_WRITEABLE;
const FIXED = U.IOMMU_IOAS_MAP_FIXED_IOVA;

table('IOMMU_IOAS_ALLOC', U.IOMMU_IOAS_ALLOC, [
  { name: '§3.2 flags≠0 → EOPNOTSUPP', arg: () => ({ layout: U.iommu_ioas_alloc, value: { flags: 1 } }), errno: U.EOPNOTSUPP },
  { name: '§3.2 flags bit 31 → EOPNOTSUPP', arg: () => ({ layout: U.iommu_ioas_alloc, value: { flags: 0x8000_0000 } }), errno: U.EOPNOTSUPP },
  {
    name: '§3.2 respond EFAULT (read-only struct) → the reserved IOAS is aborted, its ID free again',
    arg: (e) => {
      const bytes = U.iommu_ioas_alloc.encode({ size: U.iommu_ioas_alloc.size });
      return { va: e.readOnly(bytes), bytes };
    },
    errno: U.EFAULT,
    after: (e, _s, before) => {
      expect(e.host.objects(e.fd)).toEqual(before.objects);
      expect(e.ioas()).toBe(e.devIds.length + 1);
    },
  },
] satisfies Row[]);

type Ranges = { ioas: number; arr: bigint };
const ranges = (e: Env): Ranges => ({ ioas: e.ioas(), arr: e.alloc(PAGE) });

table('IOMMU_IOAS_IOVA_RANGES', U.IOMMU_IOAS_IOVA_RANGES, [
  {
    name: '§3.2 __reserved≠0 → EOPNOTSUPP (before the IOAS lookup: unknown ID too)',
    arg: () => ({ layout: U.iommu_ioas_iova_ranges, value: { ioas_id: 99, __reserved: 1 } }),
    errno: U.EOPNOTSUPP,
  },
  { name: '§3.2 unknown ioas_id → ENOENT', arg: () => ({ layout: U.iommu_ioas_iova_ranges, value: { ioas_id: 99 } }), errno: U.ENOENT },
  { name: '§3.2 ioas_id 0 → ENOENT', arg: () => ({ layout: U.iommu_ioas_iova_ranges, value: { ioas_id: 0 } }), errno: U.ENOENT },
  {
    name: '§3.2 ioas_id of a DEVICE → ENOENT (type mismatch)',
    arg: (e) => ({ layout: U.iommu_ioas_iova_ranges, value: { ioas_id: e.devIds[0]! } }),
    errno: U.ENOENT,
  },
  {
    name: '§3.2/§5.15 capacity 0 → EMSGSIZE, and the struct is still copied back (num_iovas = total, alignment)',
    setup: (e) => ({ ioas: e.ioas() }),
    arg: (_e, s) => ({ layout: U.iommu_ioas_iova_ranges, value: { ioas_id: s.ioas!, num_iovas: 0 } }),
    errno: U.EMSGSIZE,
    copyBack: (sent) => withU64(withU32(sent, U.iommu_ioas_iova_ranges.offsetOf('num_iovas'), 1), U.iommu_ioas_iova_ranges.offsetOf('out_iova_alignment'), 1n),
  },
  {
    name: '§3.2 the range array not writable → EFAULT, nothing copied back',
    setup: (e) => ({ ioas: e.ioas() }),
    arg: (_e, s) => ({ layout: U.iommu_ioas_iova_ranges, value: { ioas_id: s.ioas!, num_iovas: 1, allowed_iovas: UNMAPPED } }),
    errno: U.EFAULT,
  },
] satisfies Row[]);

function allowRow(name: string, list: [bigint, bigint][], errno: number, extra: Partial<Row<Ranges>> = {}): Row<Ranges> {
  return {
    name,
    setup: ranges,
    arg: (e, s) => {
      list.forEach(([start, last], i) => e.p.poke(s.arr + BigInt(16 * i), U.iommu_iova_range.encode({ start, last })));
      return { layout: U.iommu_ioas_allow_iovas, value: { ioas_id: s.ioas, num_iovas: list.length, allowed_iovas: s.arr } };
    },
    errno,
    ...extra,
  };
}

table('IOMMU_IOAS_ALLOW_IOVAS', U.IOMMU_IOAS_ALLOW_IOVAS, [
  {
    name: '§3.2 __reserved≠0 → EOPNOTSUPP (wins over an unknown IOAS)',
    arg: () => ({ layout: U.iommu_ioas_allow_iovas, value: { ioas_id: 99, __reserved: 1 } }),
    errno: U.EOPNOTSUPP,
  },
  {
    name: '§3.2 unknown IOAS → ENOENT (wins over an unreadable array)',
    arg: () => ({ layout: U.iommu_ioas_allow_iovas, value: { ioas_id: 99, num_iovas: 1, allowed_iovas: UNMAPPED } }),
    errno: U.ENOENT,
  },
  {
    name: '§3.2 array unreadable → EFAULT',
    setup: ranges,
    arg: (_e, s) => ({ layout: U.iommu_ioas_allow_iovas, value: { ioas_id: s.ioas, num_iovas: 1, allowed_iovas: UNMAPPED } }),
    errno: U.EFAULT,
  },
  allowRow('§3.2 start == last (single byte) → EINVAL', [[0x1000n, 0x1000n]], U.EINVAL),
  allowRow('§3.2 start > last → EINVAL', [[0x2000n, 0x1fffn]], U.EINVAL),
  allowRow('§3.2 two given ranges overlap → EINVAL', [[0x1000n, 0x2fffn], [0x2000n, 0x4fffn]], U.EINVAL),
  allowRow('§3.2 the second range bad after a good first → EINVAL, nothing applied', [[0x1000n, 0x1fffn], [0x3000n, 0x3000n]], U.EINVAL),
  {
    ...allowRow('§3.2 an allowed range over a reserved one (outside the attached domain aperture) → EADDRINUSE', [[0n, U64_MAX - 1n]], U.EADDRINUSE),
    setup: (e) => {
      const s = ranges(e);
      e.attach(0, s.ioas);
      return s;
    },
  },
] satisfies Row<Ranges>[]);

type MapS = { ioas: number; va: bigint };
const mapSetup = (e: Env): MapS => ({ ioas: e.ioas(), va: e.alloc(4n * PAGE) });
const mapSetupAttached = (e: Env): MapS => {
  const s = mapSetup(e);
  e.attach(0, s.ioas);
  return s;
};
function mapRow(name: string, errno: number, value: (e: Env, s: MapS) => Record<string, number | bigint>, extra: Partial<Row<MapS>> = {}): Row<MapS> {
  return {
    name,
    setup: mapSetup,
    arg: (e, s) => ({
      layout: U.iommu_ioas_map,
      value: { ioas_id: s.ioas, flags: RW | FIXED, user_va: s.va, length: PAGE, iova: e.prof.base, ...value(e, s) },
    }),
    errno,
    ...extra,
  };
}

table('IOMMU_IOAS_MAP', U.IOMMU_IOAS_MAP, [
  mapRow('§3.2 unknown flag bit → EOPNOTSUPP (wins over EOVERFLOW, EINVAL and ENOENT)', U.EOPNOTSUPP, () => ({ flags: 8, iova: U64_MAX, ioas_id: 99 })),
  mapRow('§3.2 __reserved≠0 → EOPNOTSUPP', U.EOPNOTSUPP, () => ({ __reserved: 1 })),
  mapRow('§3.2 iova ≥ ULONG_MAX → EOVERFLOW (wins over no R/W and an unknown IOAS)', U.EOVERFLOW, () => ({ iova: ULONG_MAX, flags: FIXED, ioas_id: 99 })),
  mapRow('§3.2 length ≥ ULONG_MAX → EOVERFLOW', U.EOVERFLOW, () => ({ length: ULONG_MAX })),
  mapRow('§3.2 neither READABLE nor WRITEABLE → EINVAL (wins over an unknown IOAS)', U.EINVAL, () => ({ flags: FIXED, ioas_id: 99 })),
  mapRow('§3.2 unknown IOAS → ENOENT (wins over length 0)', U.ENOENT, () => ({ ioas_id: 99, length: 0n })),
  mapRow('§3.2 IOAS id of a DEVICE → ENOENT', U.ENOENT, (e) => ({ ioas_id: e.devIds[0]! })),
  mapRow('§3.2 user_va + length overflows → EOVERFLOW (wins over the length limit)', U.EOVERFLOW, () => ({ user_va: U64_MAX - PAGE, length: ULONG_MAX - 1n })),
  mapRow('§3.2 length 0 → EINVAL', U.EINVAL, () => ({ length: 0n })),
  mapRow('§3.2 length > SIZE_MAX − PAGE_SIZE → EINVAL', U.EINVAL, () => ({ user_va: 0n, length: ULONG_MAX - 1n })),
  mapRow('§3.2 length not a multiple of the IOAS alignment (domain attached) → EINVAL', U.EINVAL, () => ({ length: 1n }), { setup: mapSetupAttached }),
  mapRow('§3.2 FIXED: iova not aligned to the IOAS alignment → EINVAL', U.EINVAL, (e) => ({ iova: e.prof.base + 1n }), { setup: mapSetupAttached }),
  mapRow('§3.2 FIXED: iova + length − 1 overflows → EOVERFLOW', U.EOVERFLOW, () => ({ iova: U64_MAX - PAGE + 1n, length: 2n * PAGE })),
  mapRow('§3.2 FIXED: range hits a reserved range (outside the attached domain aperture) → EINVAL', U.EINVAL, () => ({ iova: 1n << 60n }), {
    setup: mapSetupAttached,
  }),
  mapRow('§3.2 FIXED: range intersects an existing mapping → EEXIST', U.EEXIST, (e) => ({ iova: e.prof.base + PAGE }), {
    setup: (e) => {
      const s = mapSetup(e);
      e.map(s.ioas, 2n * PAGE, e.prof.base);
      return s;
    },
  }),
  mapRow('§3.2 automatic: length ≥ ULONG_MAX/2 → EOVERFLOW', U.EOVERFLOW, () => ({ flags: RW, user_va: 0n, length: 1n << 63n })),
  mapRow('§3.2 automatic: no hole in the allowed ranges → ENOSPC', U.ENOSPC, () => ({ flags: RW, length: 2n * PAGE }), {
    setup: (e) => {
      const s = mapSetup(e);
      const arr = e.put(U.iommu_iova_range.encode({ start: e.prof.base, last: e.prof.base + PAGE - 1n }));
      e.ok(U.IOMMU_IOAS_ALLOW_IOVAS, U.iommu_ioas_allow_iovas, { ioas_id: s.ioas, num_iovas: 1, allowed_iovas: arr });
      return s;
    },
  }),
  mapRow('§3.2 automatic: the source alignment is below the IOAS alignment (domain attached) → EINVAL', U.EINVAL, (e, s) => ({ flags: RW, user_va: s.va + 1n, length: e.prof.domainAlignment }), {
    setup: mapSetupAttached,
  }),
  mapRow('§3.2 FIXED: the source page offset is not aligned to the IOAS alignment → EINVAL', U.EINVAL, (e, s) => ({ user_va: s.va + 1n, length: e.prof.domainAlignment }), {
    setup: mapSetupAttached,
  }),
  mapRow('§3.2 pinning into an attached domain: source not mapped → EFAULT', U.EFAULT, () => ({ user_va: UNMAPPED }), { setup: mapSetupAttached }),
  mapRow('§3.2 pinning: WRITEABLE on read-only memory (GUP for write) → EFAULT', U.EFAULT, (e) => ({ user_va: e.alloc(PAGE, U.PROT_READ) }), {
    setup: mapSetupAttached,
  }),
  mapRow('§3.2 pinning: over RLIMIT_MEMLOCK without CAP_IPC_LOCK → ENOMEM, nothing charged', U.ENOMEM, () => ({ length: 4n * PAGE }), {
    setup: (e) => {
      const s = mapSetupAttached(e);
      e.proc.credentials.capIpcLock = false;
      e.proc.credentials.memlockLimitPages = 2;
      return s;
    },
    after: (e, _s, before) => {
      e.proc.credentials.capIpcLock = true;
      e.proc.credentials.memlockLimitPages = 2048;
      expect(e.host.objects(e.fd)).toEqual(before.objects);
      expect(e.host.pinnedPages).toBe(before.pinned);
    },
  }),
] satisfies Row<MapS>[]);

type FileS = { ioas: number; mfd: number };
const fileSetup = (e: Env): FileS => ({ ioas: e.ioas(), mfd: e.p.memfdCreate('guest', 4n * PAGE) });
function fileRow(name: string, errno: number, value: (e: Env, s: FileS) => Record<string, number | bigint>, extra: Partial<Row<FileS>> = {}): Row<FileS> {
  return {
    name,
    setup: fileSetup,
    arg: (e, s) => ({
      layout: U.iommu_ioas_map_file,
      value: { ioas_id: s.ioas, flags: RW | FIXED, fd: s.mfd, start: 0n, length: PAGE, iova: e.prof.base, ...value(e, s) },
    }),
    errno,
    ...extra,
  };
}

table('IOMMU_IOAS_MAP_FILE', U.IOMMU_IOAS_MAP_FILE, [
  fileRow('§3.2 unknown flag bit → EOPNOTSUPP', U.EOPNOTSUPP, () => ({ flags: RW | 0x10 })),
  fileRow('§3.2 iova ≥ ULONG_MAX → EOVERFLOW', U.EOVERFLOW, () => ({ iova: ULONG_MAX })),
  fileRow('§3.2 length ≥ ULONG_MAX → EOVERFLOW', U.EOVERFLOW, () => ({ length: ULONG_MAX })),
  fileRow('§3.2 no READABLE/WRITEABLE → EINVAL', U.EINVAL, () => ({ flags: FIXED })),
  fileRow('§3.2 unknown IOAS → ENOENT (wins over a bad fd)', U.ENOENT, () => ({ ioas_id: 99, fd: 999 })),
  fileRow('§3.2 bad fd → EBADF (fget comes before the length checks: wins over length 0)', U.EBADF, () => ({ fd: 999, length: 0n })),
  fileRow('§3.2 bad fd → EBADF (wins over start + length − 1 overflowing)', U.EBADF, () => ({ fd: 999, start: U64_MAX, length: 2n })),
  fileRow('§3.2 negative fd → EBADF', U.EBADF, () => ({ fd: -1 })),
  fileRow('§3.2 start + length − 1 overflows → EOVERFLOW', U.EOVERFLOW, () => ({ start: U64_MAX - PAGE + 1n, length: 2n * PAGE })),
  fileRow('§3.2 length 0 → EINVAL', U.EINVAL, () => ({ length: 0n })),
  fileRow('§3.2 length > SIZE_MAX − PAGE_SIZE → EINVAL', U.EINVAL, () => ({ length: ULONG_MAX - 1n })),
  fileRow('§3.2 FIXED: range intersects a mapping → EEXIST', U.EEXIST, () => ({}), {
    setup: (e) => {
      const s = fileSetup(e);
      e.map(s.ioas, PAGE, e.prof.base);
      return s;
    },
  }),
] satisfies Row<FileS>[]);

type CopyS = { src: number; dst: number };
const copySetup = (e: Env): CopyS => {
  const src = e.ioas();
  e.map(src, 2n * PAGE, e.prof.base);
  e.map(src, 2n * PAGE, e.prof.base + 2n * PAGE);
  return { src, dst: e.ioas() };
};
function copyRow(name: string, errno: number, value: (e: Env, s: CopyS) => Record<string, number | bigint>, extra: Partial<Row<CopyS>> = {}): Row<CopyS> {
  return {
    name,
    setup: copySetup,
    arg: (e, s) => ({
      layout: U.iommu_ioas_copy,
      value: { flags: RW | FIXED, dst_ioas_id: s.dst, src_ioas_id: s.src, length: PAGE, dst_iova: e.prof.base, src_iova: e.prof.base, ...value(e, s) },
    }),
    errno,
    ...extra,
  };
}

table('IOMMU_IOAS_COPY', U.IOMMU_IOAS_COPY, [
  copyRow('§3.2 unknown flag bit → EOPNOTSUPP (wins over EOVERFLOW)', U.EOPNOTSUPP, () => ({ flags: 0x100, length: ULONG_MAX })),
  copyRow('§3.2 length ≥ ULONG_MAX → EOVERFLOW', U.EOVERFLOW, () => ({ length: ULONG_MAX })),
  copyRow('§3.2 src_iova ≥ ULONG_MAX → EOVERFLOW', U.EOVERFLOW, () => ({ src_iova: ULONG_MAX })),
  copyRow('§3.2 dst_iova ≥ ULONG_MAX → EOVERFLOW (wins over no R/W)', U.EOVERFLOW, () => ({ dst_iova: ULONG_MAX, flags: FIXED })),
  copyRow('§3.2 no READABLE/WRITEABLE → EINVAL (wins over an unknown source)', U.EINVAL, () => ({ flags: FIXED, src_ioas_id: 99 })),
  copyRow('§3.2 unknown source IOAS → ENOENT', U.ENOENT, () => ({ src_ioas_id: 99 })),
  copyRow('§3.2 length 0 → EINVAL (after the source lookup)', U.EINVAL, () => ({ length: 0n })),
  copyRow('§3.2 src_iova + length − 1 overflows → EOVERFLOW', U.EOVERFLOW, () => ({ src_iova: U64_MAX - PAGE + 1n, length: 2n * PAGE })),
  copyRow('§3.2 source range not fully mapped → ENOENT (wins over an unknown destination)', U.ENOENT, (e) => ({ src_iova: e.prof.base + 3n * PAGE, length: 2n * PAGE, dst_ioas_id: 99 })),
  copyRow('§3.2 source range runs past the last area → ENOENT', U.ENOENT, (e) => ({ src_iova: e.prof.base, length: 5n * PAGE })),
  copyRow('§3.2 unknown destination IOAS → ENOENT', U.ENOENT, () => ({ dst_ioas_id: 99 })),
  copyRow('§3.2 destination range intersects a mapping → EEXIST', U.EEXIST, () => ({}), {
    setup: (e) => {
      const s = copySetup(e);
      e.map(s.dst, PAGE, e.prof.base);
      return s;
    },
  }),
  copyRow('§3.2 WRITEABLE copy of pages mapped read-only → EPERM', U.EPERM, () => ({ flags: RW | FIXED }), {
    setup: (e) => {
      const src = e.ioas();
      e.map(src, PAGE, e.prof.base, R);
      return { src, dst: e.ioas() };
    },
  }),
] satisfies Row<CopyS>[]);

type UnmapS = { ioas: number };
/** A HW queue on a page of the parent IOAS: its internal access locks the area (mock). */
const lockedQueue = (e: Env): UnmapS => {
  const v = e.viommu();
  e.map(v.ioas, PAGE, e.prof.base);
  e.hwQueue(v.viommu, e.prof.base, 0, PAGE);
  return { ioas: v.ioas };
};
const unmapSetup = (e: Env): UnmapS => {
  const ioas = e.ioas();
  e.map(ioas, 2n * PAGE, e.prof.base);
  e.map(ioas, 2n * PAGE, e.prof.base + 4n * PAGE);
  return { ioas };
};
function unmapRow(name: string, errno: number, value: (e: Env, s: UnmapS) => Record<string, number | bigint>, extra: Partial<Row<UnmapS>> = {}): Row<UnmapS> {
  return {
    name,
    setup: unmapSetup,
    arg: (e, s) => ({ layout: U.iommu_ioas_unmap, value: { ioas_id: s.ioas, iova: e.prof.base, length: 2n * PAGE, ...value(e, s) } }),
    errno,
    ...extra,
  };
}

table('IOMMU_IOAS_UNMAP', U.IOMMU_IOAS_UNMAP, [
  unmapRow('§3.2 unknown IOAS → ENOENT (looked up first: wins over EOVERFLOW)', U.ENOENT, () => ({ ioas_id: 99, iova: ULONG_MAX })),
  unmapRow('§3.2 iova ≥ ULONG_MAX → EOVERFLOW', U.EOVERFLOW, () => ({ iova: ULONG_MAX })),
  unmapRow('§3.2 length U64_MAX with iova≠0 is not unmap-all → EOVERFLOW', U.EOVERFLOW, (e) => ({ iova: e.prof.base, length: U64_MAX })),
  unmapRow('§3.2 length 0 → EINVAL', U.EINVAL, () => ({ length: 0n })),
  unmapRow('§3.2 iova + length − 1 overflows → EOVERFLOW', U.EOVERFLOW, () => ({ iova: U64_MAX - PAGE, length: 2n * PAGE })),
  unmapRow('§3.2 nothing mapped in the range → ENOENT', U.ENOENT, (e) => ({ iova: e.prof.base + 2n * PAGE, length: 2n * PAGE })),
  unmapRow('§3.2 an area only partly inside the range → ENOENT (no splitting)', U.ENOENT, (e) => ({ iova: e.prof.base, length: PAGE })),
  unmapRow('§3.2 a range ending inside an area → ENOENT', U.ENOENT, (e) => ({ iova: e.prof.base + PAGE, length: 4n * PAGE })),
  {
    name: '§3.2 unmap-all (iova 0, length U64_MAX) of an empty IOAS → 0, length copied back as 0',
    setup: (e) => ({ ioas: e.ioas() }),
    arg: (_e, s) => ({ layout: U.iommu_ioas_unmap, value: { ioas_id: s.ioas, iova: 0n, length: U64_MAX } }),
    errno: 0,
    copyBack: (sent) => withU64(sent, U.iommu_ioas_unmap.offsetOf('length'), 0n),
  },
  {
    name: '§3.2/§5.3 an area locked by a HW_QUEUE (internal access) → EBUSY',
    presets: ['mock'],
    setup: lockedQueue,
    arg: (e, s) => ({ layout: U.iommu_ioas_unmap, value: { ioas_id: s.ioas, iova: e.prof.base, length: PAGE } }),
    errno: U.EBUSY,
  },
  {
    name: '§3.2 a locked area only partly inside the range → EBUSY (the lock is checked before the split)',
    presets: ['mock'],
    setup: lockedQueue,
    arg: (e, s) => ({ layout: U.iommu_ioas_unmap, value: { ioas_id: s.ioas, iova: e.prof.base, length: PAGE / 2n } }),
    errno: U.EBUSY,
  },
  {
    name: '§3.2 unmap-all with a locked area → EBUSY',
    presets: ['mock'],
    setup: lockedQueue,
    arg: (_e, s) => ({ layout: U.iommu_ioas_unmap, value: { ioas_id: s.ioas, iova: 0n, length: U64_MAX } }),
    errno: U.EBUSY,
  },
  {
    name: '§3.2 the first area is removed before the second fails → ENOENT, first area stays removed, no copy-back',
    setup: unmapSetup,
    arg: (e, s) => ({ layout: U.iommu_ioas_unmap, value: { ioas_id: s.ioas, iova: e.prof.base, length: 5n * PAGE } }),
    errno: U.ENOENT,
    after: (e, s) => {
      // The first area is gone (a FIXED map over it now succeeds), the second still there.
      expect(e.map(s.ioas, 2n * PAGE, e.prof.base)).toBe(e.prof.base);
      const again = U.iommu_ioas_unmap.encode({ size: 24, ioas_id: s.ioas, iova: e.prof.base + 4n * PAGE, length: 2n * PAGE });
      expect(e.p.ioctl(e.fd, U.IOMMU_IOAS_UNMAP, again)).toBe(0);
    },
  },
] satisfies Row<UnmapS>[]);

