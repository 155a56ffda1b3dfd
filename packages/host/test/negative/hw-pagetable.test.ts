// §3.2 IOMMU_HWPT_ALLOC, IOMMU_GET_HW_INFO, IOMMU_HWPT_SET_DIRTY_TRACKING,
// IOMMU_HWPT_GET_DIRTY_BITMAP and IOMMU_HWPT_INVALIDATE, each check in the kernel's order.
import { expect } from 'vitest';
import { PAGE, table, U, U64_MAX, UNMAPPED, withU32, type Env, type Row } from './harness.js';

const { IOMMU_HWPT_ALLOC_NEST_PARENT: NEST_PARENT, IOMMU_HWPT_ALLOC_DIRTY_TRACKING: DIRTY, IOMMU_HWPT_FAULT_ID_VALID: FAULT_ID, IOMMU_HWPT_ALLOC_PASID: PASID } = U;
const alloc = (value: Record<string, number | bigint>) => ({ layout: U.iommu_hwpt_alloc, value });
type S = { ioas: number; parent: number; viommu: number; data: bigint; fault: number };

const withIoas = (e: Env): Partial<S> => ({ ioas: e.ioas() });
const withParent = (e: Env): Partial<S> => {
  const ioas = e.ioas();
  const n = e.prof.nestedOnParent;
  return { ioas, parent: e.hwpt(ioas, NEST_PARENT), data: n ? e.put(n.data) : 0n };
};
const nestedData = (e: Env, s: Partial<S>) => ({ data_type: e.prof.nestedOnParent!.type, data_len: e.prof.nestedOnParent!.data.length, data_uptr: s.data! });
const withViommu = (e: Env): Partial<S> => ({ ...e.viommu(), data: e.put(e.prof.viommu!.hwptData) });
const viommuData = (e: Env, s: Partial<S>) => ({ data_type: e.prof.viommu!.hwptType, data_len: e.prof.viommu!.hwptData.length, data_uptr: s.data! });

table('IOMMU_HWPT_ALLOC', U.IOMMU_HWPT_ALLOC, [
  {
    name: '§3.2.1 __reserved≠0 → EOPNOTSUPP (wins over a data type/len mismatch)',
    arg: (e) => alloc({ dev_id: e.devIds[0]!, pt_id: 99, __reserved: 1, data_len: 4 }),
    errno: U.EOPNOTSUPP,
  },
  {
    name: '§3.2.1/§5.9 __reserved2 is not checked: an unknown device is still ENOENT',
    arg: () => alloc({ dev_id: 99, __reserved2: 1 }),
    errno: U.ENOENT,
  },
  { name: '§3.2.2 data_type NONE with data_len≠0 → EINVAL (wins over an unknown device)', arg: () => alloc({ dev_id: 99, data_len: 4 }), errno: U.EINVAL },
  { name: '§3.2.2 data_type≠NONE with data_len 0 → EINVAL', arg: () => alloc({ dev_id: 99, data_type: U.IOMMU_HWPT_DATA_SELFTEST }), errno: U.EINVAL },
  { name: '§3.2.3 unknown dev_id → ENOENT (wins over a bad pt_id)', arg: () => alloc({ dev_id: 99, pt_id: 98 }), errno: U.ENOENT },
  { name: '§3.2.3 dev_id of an IOAS → ENOENT', setup: withIoas, arg: (_e, s) => alloc({ dev_id: s.ioas!, pt_id: s.ioas! }), errno: U.ENOENT },
  { name: '§3.2.4/§5.8 unknown pt_id → EINVAL, not ENOENT', arg: (e) => alloc({ dev_id: e.devIds[0]!, pt_id: 99 }), errno: U.EINVAL },
  { name: '§3.2.4 pt_id 0 → EINVAL', arg: (e) => alloc({ dev_id: e.devIds[0]!, pt_id: 0 }), errno: U.EINVAL },
  { name: '§3.2.5 pt_id of a DEVICE (anything else) → EINVAL', arg: (e) => alloc({ dev_id: e.devIds[0]!, pt_id: e.devIds[1]! }), errno: U.EINVAL },
  {
    name: '§3.2.5 IOAS: unknown flag bit → EOPNOTSUPP',
    setup: withIoas,
    arg: (e, s) => alloc({ dev_id: e.devIds[0]!, pt_id: s.ioas!, flags: 1 << 4 }),
    errno: U.EOPNOTSUPP,
  },
  {
    name: '§3.2.5 IOAS: FAULT_ID_VALID together with NEST_PARENT → EOPNOTSUPP',
    setup: withIoas,
    arg: (e, s) => alloc({ dev_id: e.devIds[0]!, pt_id: s.ioas!, flags: FAULT_ID | NEST_PARENT }),
    errno: U.EOPNOTSUPP,
  },
  {
    name: '§3.2.6 IOAS: FAULT_ID_VALID with an unknown fault_id → ENOENT, the HWPT is aborted (IOAS unpinned, ID free)',
    setup: withIoas,
    arg: (e, s) => alloc({ dev_id: e.devIds[0]!, pt_id: s.ioas!, flags: FAULT_ID, fault_id: 99 }),
    errno: U.ENOENT,
  },
  {
    name: '§3.2.6 IOAS: fault_id of an IOAS → ENOENT',
    setup: withIoas,
    arg: (e, s) => alloc({ dev_id: e.devIds[0]!, pt_id: s.ioas!, flags: FAULT_ID, fault_id: s.ioas! }),
    errno: U.ENOENT,
  },
  {
    name: '§2.5/§3.1 a 24-byte struct: fault_id reads as 0 even with a FAULT id in the bytes after it → ENOENT',
    setup: (e) => ({ ioas: e.ioas(), fault: e.fault().id }),
    arg: (e, s) => {
      const bytes = U.iommu_hwpt_alloc.encode({ size: 24, dev_id: e.devIds[0]!, pt_id: s.ioas!, flags: FAULT_ID, fault_id: s.fault! });
      return { va: e.put(bytes), bytes };
    },
    errno: U.ENOENT,
  },
  {
    name: '§3.2.5 IOAS: an existing mapping misaligned for the new domain → EADDRINUSE, HWPT aborted',
    setup: (e) => {
      const ioas = e.ioas();
      e.map(ioas, e.prof.domainAlignment / 2n, e.prof.base);
      return { ioas };
    },
    arg: (e, s) => alloc({ dev_id: e.devIds[0]!, pt_id: s.ioas! }),
    errno: U.EADDRINUSE,
  },
  {
    name: '§3.2.5 IOAS: a mapping outside the new domain aperture → EADDRINUSE',
    setup: (e) => {
      const ioas = e.ioas();
      e.map(ioas, PAGE, 1n << 60n);
      return { ioas };
    },
    arg: (e, s) => alloc({ dev_id: e.devIds[0]!, pt_id: s.ioas! }),
    errno: U.EADDRINUSE,
  },
  {
    name: '§3.2.5 IOAS: an allowed range outside the new domain aperture → EADDRINUSE',
    setup: (e) => ({ ioas: e.ioasAllowedOutsideAperture() }),
    arg: (e, s) => alloc({ dev_id: e.devIds[0]!, pt_id: s.ioas! }),
    errno: U.EADDRINUSE,
  },
  {
    name: '§3.2.7 respond EFAULT (read-only struct) → the HWPT is aborted, the IOAS unpinned',
    setup: withIoas,
    arg: (e, s) => {
      const bytes = U.iommu_hwpt_alloc.encode({ size: U.iommu_hwpt_alloc.size, dev_id: e.devIds[0]!, pt_id: s.ioas! });
      return { va: e.readOnly(bytes), bytes };
    },
    errno: U.EFAULT,
  },
  {
    name: '§3.2.5 HWPT_PAGING parent: flags other than FAULT_ID_VALID|PASID → EOPNOTSUPP',
    setup: withParent,
    arg: (e, s) => alloc({ dev_id: e.devIds[0]!, pt_id: s.parent!, flags: NEST_PARENT, data_type: U.IOMMU_HWPT_DATA_SELFTEST, data_len: 4, data_uptr: s.ioas! }),
    errno: U.EOPNOTSUPP,
  },
  {
    name: '§3.2.5 HWPT_PAGING parent: no user data → EOPNOTSUPP',
    setup: withParent,
    arg: (e, s) => alloc({ dev_id: e.devIds[0]!, pt_id: s.parent! }),
    errno: U.EOPNOTSUPP,
  },
  {
    name: '§3.2.5 HWPT_PAGING parent without NEST_PARENT → EINVAL',
    needsNestedOnParent: true,
    setup: (e) => {
      const s = withParent(e);
      return { ...s, parent: e.hwpt(s.ioas!) };
    },
    arg: (e, s) => alloc({ dev_id: e.devIds[0]!, pt_id: s.parent!, ...nestedData(e, s) }),
    errno: U.EINVAL,
  },
  {
    name: '§3.2.5/§5.12 an automatic HWPT is never a nest parent → EINVAL',
    needsNestedOnParent: true,
    setup: (e) => {
      const s = withParent(e);
      return { ...s, parent: e.attach(0, s.ioas!) };
    },
    arg: (e, s) => alloc({ dev_id: e.devIds[0]!, pt_id: s.parent!, ...nestedData(e, s) }),
    errno: U.EINVAL,
  },
  {
    name: '§3.2.5 HWPT_PAGING parent: the driver has no domain_alloc_nested → EOPNOTSUPP',
    presets: ['arm-smmuv3'],
    setup: withParent,
    arg: (e, s) => alloc({ dev_id: e.devIds[0]!, pt_id: s.parent!, data_type: U.IOMMU_HWPT_DATA_ARM_SMMUV3, data_len: 16, data_uptr: e.put(e.prof.viommu!.hwptData) }),
    errno: U.EOPNOTSUPP,
  },
  {
    name: '§3.2.5 VIOMMU: flags other than FAULT_ID_VALID|PASID → EOPNOTSUPP',
    needsViommu: true,
    setup: withViommu,
    arg: (e, s) => alloc({ dev_id: e.devIds[0]!, pt_id: s.viommu!, flags: DIRTY, ...viommuData(e, s) }),
    errno: U.EOPNOTSUPP,
  },
  {
    name: '§3.2.5 VIOMMU: no user data → EOPNOTSUPP',
    needsViommu: true,
    setup: withViommu,
    arg: (e, s) => alloc({ dev_id: e.devIds[0]!, pt_id: s.viommu! }),
    errno: U.EOPNOTSUPP,
  },
  {
    name: '§3.2.6 VIOMMU: FAULT_ID_VALID with an unknown fault → ENOENT, the nested HWPT aborted (vIOMMU unpinned)',
    needsViommu: true,
    setup: withViommu,
    arg: (e, s) => alloc({ dev_id: e.devIds[0]!, pt_id: s.viommu!, flags: FAULT_ID, fault_id: 99, ...viommuData(e, s) }),
    errno: U.ENOENT,
  },
  {
    name: '§3.3/§5.10 VIOMMU: driver data longer than the driver struct → EINVAL',
    needsViommu: true,
    setup: withViommu,
    arg: (e, s) => alloc({ dev_id: e.devIds[0]!, pt_id: s.viommu!, ...viommuData(e, s), data_len: e.prof.viommu!.hwptData.length + 8 }),
    errno: U.EINVAL,
  },
  {
    name: '§3.3 ARM_SMMUV3: a guest STE with a bit outside the allowed fields → EIO',
    presets: ['arm-smmuv3'],
    setup: withViommu,
    arg: (e, s) => alloc({ dev_id: e.devIds[0]!, pt_id: s.viommu!, ...viommuData(e, s), data_uptr: e.put(U.iommu_hwpt_arm_smmuv3.encode({ ste: [0x9n, 1n << 63n] })) }),
    errno: U.EIO,
  },
  {
    name: '§3.2.5 VIOMMU: driver data unreadable → EFAULT',
    needsViommu: true,
    setup: withViommu,
    arg: (e, s) => alloc({ dev_id: e.devIds[0]!, pt_id: s.viommu!, ...viommuData(e, s), data_uptr: UNMAPPED }),
    errno: U.EFAULT,
  },
] satisfies Row<Partial<S>>[]);

const info = (value: Record<string, number | bigint | number[]>) => ({ layout: U.iommu_hw_info, value });

table('IOMMU_GET_HW_INFO', U.IOMMU_GET_HW_INFO, [
  { name: '§3.2 unknown flag → EOPNOTSUPP (wins over an unknown device)', arg: () => info({ flags: 2, dev_id: 99 }), errno: U.EOPNOTSUPP },
  { name: '§3.2 __reserved[0]≠0 → EOPNOTSUPP', arg: (e) => info({ dev_id: e.devIds[0]!, __reserved: [1, 0, 0] }), errno: U.EOPNOTSUPP },
  { name: '§3.2 __reserved[2]≠0 → EOPNOTSUPP (wins over an unknown device)', arg: () => info({ dev_id: 99, __reserved: [0, 0, 1] }), errno: U.EOPNOTSUPP },
  { name: '§3.2 unknown dev_id → ENOENT', arg: () => info({ dev_id: 99 }), errno: U.ENOENT },
  { name: '§3.2 dev_id of an IOAS → ENOENT', setup: (e) => ({ ioas: e.ioas() }), arg: (_e, s) => info({ dev_id: s.ioas! }), errno: U.ENOENT },
  {
    name: '§3.2 INPUT_TYPE with a type the driver does not report → EOPNOTSUPP',
    arg: (e) => info({ dev_id: e.devIds[0]!, flags: U.IOMMU_HW_INFO_FLAG_INPUT_TYPE, in_data_type: 0x77 }),
    errno: U.EOPNOTSUPP,
  },
  {
    name: '§3.2 the data buffer not writable → EFAULT, nothing copied back',
    arg: (e) => info({ dev_id: e.devIds[0]!, data_len: 8, data_uptr: UNMAPPED }),
    errno: U.EFAULT,
  },
  {
    name: '§3.1 a 32-byte struct: out_capabilities past the user size is not written',
    arg: (e) => {
      const bytes = U.iommu_hw_info.encode({ size: 32, dev_id: e.devIds[0]!, out_capabilities: 0x5a5a5a5a5a5a5a5an });
      return { va: e.put(bytes), bytes };
    },
    errno: 0,
    checkBytes: (sent, back) => {
      // data_len, the out types and the max PASID may change; the bytes past size stay.
      expect(back.subarray(32)).toEqual(sent.subarray(32));
      expect(back.subarray(0, 4)).toEqual(sent.subarray(0, 4));
    },
  },
] satisfies Row<Partial<S>>[]);

const dirty = (value: Record<string, number | bigint>) => ({ layout: U.iommu_hwpt_set_dirty_tracking, value });

table('IOMMU_HWPT_SET_DIRTY_TRACKING', U.IOMMU_HWPT_SET_DIRTY_TRACKING, [
  { name: '§3.2 unknown flag → EOPNOTSUPP (wins over an unknown HWPT)', arg: () => dirty({ flags: 2, hwpt_id: 99 }), errno: U.EOPNOTSUPP },
  { name: '§3.2/§5.9 __reserved is not checked: an unknown HWPT is ENOENT', arg: () => dirty({ hwpt_id: 99, __reserved: 1 }), errno: U.ENOENT },
  { name: '§3.2 hwpt_id of an IOAS → ENOENT', setup: withIoas, arg: (_e, s) => dirty({ hwpt_id: s.ioas! }), errno: U.ENOENT },
  {
    name: '§3.2 hwpt_id of a HWPT_NESTED → ENOENT',
    needsViommu: true,
    setup: (e) => ({ parent: e.nested(e.viommu().viommu) }),
    arg: (_e, s) => dirty({ hwpt_id: s.parent!, flags: 1 }),
    errno: U.ENOENT,
  },
  {
    name: '§3.2 a domain without dirty ops → EOPNOTSUPP',
    setup: (e) => ({ parent: e.hwpt(e.ioas()) }),
    arg: (_e, s) => dirty({ hwpt_id: s.parent!, flags: 1 }),
    errno: U.EOPNOTSUPP,
  },
] satisfies Row<Partial<S>>[]);

const bitmap = (value: Record<string, number | bigint>) => ({ layout: U.iommu_hwpt_get_dirty_bitmap, value });
type B = { hwpt: number; bm: bigint; base: bigint };
/** An attached HWPT_PAGING over four mapped pages; with dirty tracking only where asked (mock). */
const pagingHwpt = (e: Env, flags = 0): B => {
  const ioas = e.ioas();
  const hwpt = e.hwpt(ioas, flags);
  e.attach(0, hwpt);
  e.map(ioas, 4n * PAGE, e.prof.base);
  return { hwpt, bm: e.alloc(PAGE), base: e.prof.base };
};
const dirtyHwpt = (e: Env): B => pagingHwpt(e, DIRTY);
/** A row decided before the dirty-ops check: any HWPT_PAGING will do, so it runs on every preset. */
function bitmapRow(name: string, errno: number, value: (s: B) => Record<string, number | bigint>, extra: Partial<Row<B>> = {}): Row<B> {
  return {
    name,
    setup: (e) => pagingHwpt(e),
    arg: (_e, s) => bitmap({ hwpt_id: s.hwpt, iova: s.base, length: 4n * PAGE, page_size: PAGE, data: s.bm, ...value(s) }),
    errno,
    ...extra,
  };
}

table('IOMMU_HWPT_GET_DIRTY_BITMAP', U.IOMMU_HWPT_GET_DIRTY_BITMAP, [
  bitmapRow('§3.2 unknown flag → EOPNOTSUPP (wins over an unknown HWPT)', U.EOPNOTSUPP, () => ({ flags: 2, hwpt_id: 99 })),
  bitmapRow('§3.2 __reserved≠0 → EOPNOTSUPP', U.EOPNOTSUPP, () => ({ __reserved: 1 })),
  bitmapRow('§3.2 unknown HWPT → ENOENT (wins over EOVERFLOW)', U.ENOENT, () => ({ hwpt_id: 99, iova: U64_MAX })),
  bitmapRow('§3.2 iova + length − 1 overflows → EOVERFLOW', U.EOVERFLOW, () => ({ iova: U64_MAX - PAGE + 1n, length: 2n * PAGE })),
  bitmapRow('§3.2 length 0 at iova≠0: iova + (length − 1) wraps → EOVERFLOW', U.EOVERFLOW, () => ({ length: 0n })),
  bitmapRow('§3.2 iova not aligned to the IOAS alignment → EINVAL (wins over page_size 0)', U.EINVAL, (s) => ({ iova: s.base + 1n, page_size: 0n })),
  bitmapRow('§3.2 end not aligned to the IOAS alignment → EINVAL', U.EINVAL, () => ({ length: 4n * PAGE - 1n })),
  bitmapRow('§3.2 page_size 0 → EINVAL', U.EINVAL, () => ({ page_size: 0n })),
  bitmapRow('§3.2 iova not aligned to page_size → EINVAL', U.EINVAL, (s) => ({ iova: s.base + PAGE, page_size: 4n * PAGE })),
  bitmapRow('§3.2 bitmap memory unmapped → ENOMEM (iova_bitmap setup)', U.ENOMEM, () => ({ data: UNMAPPED }), { presets: ['mock'], setup: dirtyHwpt }),
  bitmapRow('§3.2 a huge range with an unmapped bitmap → ENOMEM, never a crash', U.ENOMEM, () => ({ iova: 0n, length: 1n << 62n, data: UNMAPPED }), {
    presets: ['mock'],
    setup: dirtyHwpt,
  }),
  bitmapRow('§3.2 a bitmap page mapped read-only → ENOMEM (pinned for write)', U.ENOMEM, () => ({}), {
    presets: ['mock'],
    setup: (e) => ({ ...dirtyHwpt(e), bm: e.alloc(PAGE, U.PROT_READ) }),
  }),
  bitmapRow('§3.2 a domain without dirty ops → EOPNOTSUPP (after the range checks, before the bitmap)', U.EOPNOTSUPP, () => ({ data: UNMAPPED })),
  {
    name: '§3.2 hwpt_id of an IOAS → ENOENT',
    setup: (e) => ({ hwpt: e.ioas(), bm: 0n, base: 0n }),
    arg: (_e, s) => bitmap({ hwpt_id: s.hwpt, page_size: PAGE, length: PAGE }),
    errno: U.ENOENT,
  },
] satisfies Row<B>[]);

const inval = (value: Record<string, number | bigint>) => ({ layout: U.iommu_hwpt_invalidate, value });
const ENTRY_NUM = U.iommu_hwpt_invalidate.offsetOf('entry_num');
/** §5.16: entry_num is always written back (0 for the early errors). */
const zeroEntryNum = (sent: Uint8Array) => withU32(sent, ENTRY_NUM, 0);

table('IOMMU_HWPT_INVALIDATE', U.IOMMU_HWPT_INVALIDATE, [
  { name: '§3.2/§5.16 __reserved≠0 → EOPNOTSUPP, entry_num written back as 0', arg: () => inval({ hwpt_id: 99, __reserved: 1, entry_num: 3 }), errno: U.EOPNOTSUPP, copyBack: zeroEntryNum },
  { name: '§3.2 entry_num≠0 with data_uptr 0 → EINVAL, entry_num 0', arg: () => inval({ hwpt_id: 99, entry_len: 16, entry_num: 1 }), errno: U.EINVAL, copyBack: zeroEntryNum },
  { name: '§3.2 entry_num≠0 with entry_len 0 → EINVAL (wins over an unknown ID)', arg: () => inval({ hwpt_id: 99, data_uptr: 0x1000n, entry_num: 1 }), errno: U.EINVAL, copyBack: zeroEntryNum },
  { name: '§3.2 unknown hwpt_id → ENOENT, entry_num 0', arg: () => inval({ hwpt_id: 99, entry_num: 0 }), errno: U.ENOENT, copyBack: zeroEntryNum },
  {
    name: '§3.2 a HWPT_PAGING → EINVAL, entry_num 0',
    setup: (e) => ({ parent: e.hwpt(e.ioas()) }),
    arg: (_e, s) => inval({ hwpt_id: s.parent!, entry_num: 0 }),
    errno: U.EINVAL,
    copyBack: zeroEntryNum,
  },
  {
    name: '§3.2 an IOAS → EINVAL, entry_num 0',
    setup: withIoas,
    arg: (_e, s) => inval({ hwpt_id: s.ioas!, entry_num: 0 }),
    errno: U.EINVAL,
    copyBack: zeroEntryNum,
  },
  {
    name: '§3.2 VIOMMU: unknown data_type → the driver rejects it, entry_num 0',
    needsViommu: true,
    setup: (e) => e.viommu(),
    arg: (e, s) => inval({ hwpt_id: s.viommu!, data_type: 0x1234, data_uptr: e.put(new Uint8Array(16)), entry_len: 16, entry_num: 1 }),
    errno: U.EINVAL,
    copyBack: zeroEntryNum,
  },
  {
    name: '§3.2 VIOMMU: the entry array unreadable → EFAULT, entry_num 0',
    needsViommu: true,
    setup: (e) => e.viommu(),
    arg: (e, s) => inval({ hwpt_id: s.viommu!, data_type: e.preset === 'mock' ? U.IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST : U.IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3, data_uptr: UNMAPPED, entry_len: 16, entry_num: 1 }),
    errno: U.EFAULT,
    copyBack: zeroEntryNum,
  },
] satisfies Row<Partial<S>>[]);
