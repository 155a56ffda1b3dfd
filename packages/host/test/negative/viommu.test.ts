// §3.2 IOMMU_VIOMMU_ALLOC, IOMMU_VDEVICE_ALLOC, IOMMU_VEVENTQ_ALLOC, IOMMU_HW_QUEUE_ALLOC and
// IOMMU_FAULT_QUEUE_ALLOC, each check in the kernel's order. The failures after the object
// was allocated (driver init, copy-back) must unwind completely: the ID is free again and
// every pin the object took (parent HWPT, vIOMMU, queue memory) is dropped.
import { expect } from 'vitest';
import { PAGE, table, U, U64_MAX, UNMAPPED, type Env, type Row } from './harness.js';

type V = { ioas: number; parent: number; viommu: number; vdev: number; iova: bigint };
const withParent = (e: Env): Partial<V> => {
  const ioas = e.ioas();
  return { ioas, parent: e.hwpt(ioas, U.IOMMU_HWPT_ALLOC_NEST_PARENT) };
};
const va = (value: Record<string, number | bigint>) => ({ layout: U.iommu_viommu_alloc, value });
const vtype = (e: Env) => e.prof.viommu!.type;

table('IOMMU_VIOMMU_ALLOC', U.IOMMU_VIOMMU_ALLOC, [
  { name: '§3.2.1 flags≠0 → EOPNOTSUPP (wins over an unknown device)', arg: () => va({ flags: 1, type: 1, dev_id: 99 }), errno: U.EOPNOTSUPP },
  { name: '§3.2.1 type DEFAULT → EOPNOTSUPP', arg: (e) => va({ type: U.IOMMU_VIOMMU_TYPE_DEFAULT, dev_id: e.devIds[0]! }), errno: U.EOPNOTSUPP },
  { name: '§3.2.2 unknown dev_id → ENOENT (wins over an unknown HWPT)', arg: () => va({ type: 1, dev_id: 99, hwpt_id: 98 }), errno: U.ENOENT },
  { name: '§3.2/§5.9 __reserved is not checked: an unknown device is still ENOENT', arg: () => va({ type: 1, dev_id: 99, __reserved: 1 }), errno: U.ENOENT },
  {
    name: '§3.2.4 a type the driver does not know: size 0 → EOPNOTSUPP (wins over an unknown HWPT)',
    arg: (e) => va({ type: 0x4242, dev_id: e.devIds[0]!, hwpt_id: 99 }),
    errno: U.EOPNOTSUPP,
  },
  { name: '§3.2.5 unknown hwpt_id → ENOENT', needsViommu: true, arg: (e) => va({ type: vtype(e), dev_id: e.devIds[0]!, hwpt_id: 99 }), errno: U.ENOENT },
  {
    name: '§3.2.5 hwpt_id of an IOAS → ENOENT',
    needsViommu: true,
    setup: withParent,
    arg: (e, s) => va({ type: vtype(e), dev_id: e.devIds[0]!, hwpt_id: s.ioas! }),
    errno: U.ENOENT,
  },
  {
    name: '§3.2.5/§5.8 hwpt_id of a vIOMMU or a nested HWPT → ENOENT (type mismatch)',
    needsViommu: true,
    setup: (e) => {
      const v = e.viommu();
      return { ...v, parent: e.nested(v.viommu) };
    },
    arg: (e, s) => va({ type: vtype(e), dev_id: e.devIds[0]!, hwpt_id: s.parent! }),
    errno: U.ENOENT,
  },
  {
    name: '§3.2.5 a HWPT_PAGING without NEST_PARENT → EINVAL',
    needsViommu: true,
    setup: (e) => ({ parent: e.hwpt(e.ioas()) }),
    arg: (e, s) => va({ type: vtype(e), dev_id: e.devIds[0]!, hwpt_id: s.parent! }),
    errno: U.EINVAL,
  },
  {
    name: '§3.2.5 an automatic HWPT (never a nest parent) → EINVAL',
    needsViommu: true,
    setup: (e) => ({ parent: e.attach(0, e.ioas()) }),
    arg: (e, s) => va({ type: vtype(e), dev_id: e.devIds[0]!, hwpt_id: s.parent! }),
    errno: U.EINVAL,
  },
  {
    name: '§3.2.8/§5.10 viommu_init rejects driver data longer than its struct → EINVAL; ID and parent pin released',
    presets: ['mock'],
    setup: withParent,
    arg: (e, s) => va({ type: vtype(e), dev_id: e.devIds[0]!, hwpt_id: s.parent!, data_len: U.iommu_viommu_selftest.size + 8, data_uptr: e.put(new Uint8Array(64)) }),
    errno: U.EINVAL,
  },
  {
    name: '§3.2.8 viommu_init: driver data unreadable → EFAULT; unwound',
    presets: ['mock'],
    setup: withParent,
    arg: (e, s) => va({ type: vtype(e), dev_id: e.devIds[0]!, hwpt_id: s.parent!, data_len: U.iommu_viommu_selftest.size, data_uptr: UNMAPPED }),
    errno: U.EFAULT,
  },
  {
    name: '§3.2.10 respond EFAULT (read-only struct) → the vIOMMU is destroyed (driver destroy, parent unpinned, mmap region gone)',
    needsViommu: true,
    setup: withParent,
    arg: (e, s) => {
      const bytes = U.iommu_viommu_alloc.encode({ size: U.iommu_viommu_alloc.size, type: vtype(e), dev_id: e.devIds[0]!, hwpt_id: s.parent! });
      return { va: e.readOnly(bytes), bytes };
    },
    errno: U.EFAULT,
  },
] satisfies Row<Partial<V>>[]);

const vd = (value: Record<string, number | bigint>) => ({ layout: U.iommu_vdevice_alloc, value });

table('IOMMU_VDEVICE_ALLOC', U.IOMMU_VDEVICE_ALLOC, [
  { name: '§3.2.2 unknown viommu_id → ENOENT (wins over an unknown device)', arg: () => vd({ viommu_id: 99, dev_id: 98, virt_id: 1n }), errno: U.ENOENT },
  {
    name: '§3.2.2 viommu_id of a HWPT_PAGING → ENOENT',
    needsViommu: true,
    setup: (e) => e.viommu(),
    arg: (e, s) => vd({ viommu_id: s.parent!, dev_id: e.devIds[0]!, virt_id: 1n }),
    errno: U.ENOENT,
  },
  { name: '§3.2.2 unknown dev_id → ENOENT', needsViommu: true, setup: (e) => e.viommu(), arg: (_e, s) => vd({ viommu_id: s.viommu!, dev_id: 99, virt_id: 1n }), errno: U.ENOENT },
  {
    name: '§3.2.4/§5.13 the device already has a vDEVICE → EEXIST (checked before the virt_id slot)',
    needsViommu: true,
    setup: (e) => {
      const v = e.viommu();
      return { ...v, vdev: e.vdevice(v.viommu, 1n) };
    },
    arg: (e, s) => vd({ viommu_id: s.viommu!, dev_id: e.devIds[0]!, virt_id: 2n }),
    errno: U.EEXIST,
  },
  {
    name: '§3.2.7/§5.13 the virt_id is taken by another device → EEXIST; the new vDEVICE is aborted',
    needsViommu: true,
    setup: (e) => {
      const v = e.viommu();
      return { ...v, vdev: e.vdevice(v.viommu, 1n, 0) };
    },
    arg: (e, s) => vd({ viommu_id: s.viommu!, dev_id: e.devIds[1]!, virt_id: 1n }),
    errno: U.EEXIST,
    after: (e, s, before) => {
      expect(e.host.objects(e.fd)).toEqual(before.objects);
      // The abort cleared the device link: the same device gets a vDEVICE at a free virt_id.
      expect(e.vdevice(s.viommu!, 2n, 1)).toBe(s.vdev! + 1);
    },
  },
  {
    name: '§3.2.9 respond EFAULT → the vDEVICE is aborted (slot, device link and vIOMMU pin released)',
    needsViommu: true,
    setup: (e) => e.viommu(),
    arg: (e, s) => {
      const bytes = U.iommu_vdevice_alloc.encode({ size: U.iommu_vdevice_alloc.size, viommu_id: s.viommu!, dev_id: e.devIds[0]!, virt_id: 1n });
      return { va: e.readOnly(bytes), bytes };
    },
    errno: U.EFAULT,
    after: (e, s, before) => {
      expect(e.host.objects(e.fd)).toEqual(before.objects);
      expect(e.vdevice(s.viommu!, 1n, 0)).toBeGreaterThan(0);
    },
  },
] satisfies Row<Partial<V>>[]);

const vq = (value: Record<string, number | bigint>) => ({ layout: U.iommu_veventq_alloc, value });

table('IOMMU_VEVENTQ_ALLOC', U.IOMMU_VEVENTQ_ALLOC, [
  { name: '§3.2 flags≠0 → EOPNOTSUPP (wins over depth 0 and an unknown vIOMMU)', arg: () => vq({ flags: 1, type: 1, viommu_id: 99 }), errno: U.EOPNOTSUPP },
  { name: '§3.2 __reserved≠0 → EOPNOTSUPP', arg: () => vq({ type: 1, veventq_depth: 1, viommu_id: 99, __reserved: 1 }), errno: U.EOPNOTSUPP },
  { name: '§3.2 type DEFAULT → EOPNOTSUPP', arg: () => vq({ type: 0, veventq_depth: 1, viommu_id: 99 }), errno: U.EOPNOTSUPP },
  { name: '§3.2 depth 0 → EINVAL (wins over an unknown vIOMMU)', arg: () => vq({ type: 1, viommu_id: 99 }), errno: U.EINVAL },
  { name: '§3.2 unknown viommu_id → ENOENT', arg: () => vq({ type: 1, veventq_depth: 1, viommu_id: 99 }), errno: U.ENOENT },
  {
    name: '§3.2 viommu_id of a HWPT_PAGING → ENOENT',
    needsViommu: true,
    setup: (e) => e.viommu(),
    arg: (_e, s) => vq({ type: 1, veventq_depth: 1, viommu_id: s.parent! }),
    errno: U.ENOENT,
  },
  {
    name: '§3.2 a vEVENTQ of the same type already on the vIOMMU → EEXIST',
    needsViommu: true,
    setup: (e) => {
      const v = e.viommu();
      e.veventq(v.viommu);
      return v;
    },
    arg: (e, s) => vq({ type: e.prof.viommu!.veventqType, veventq_depth: 2, viommu_id: s.viommu! }),
    errno: U.EEXIST,
  },
  {
    name: '§3.2 respond EFAULT → the fd number is released and the vEVENTQ aborted',
    needsViommu: true,
    setup: (e) => e.viommu(),
    arg: (e, s) => {
      const bytes = U.iommu_veventq_alloc.encode({ size: U.iommu_veventq_alloc.size, type: e.prof.viommu!.veventqType, veventq_depth: 2, viommu_id: s.viommu! });
      return { va: e.readOnly(bytes), bytes };
    },
    errno: U.EFAULT,
  },
] satisfies Row<Partial<V>>[]);

const hq = (value: Record<string, number | bigint>) => ({ layout: U.iommu_hw_queue_alloc, value });
const SEL = U.IOMMU_HW_QUEUE_TYPE_SELFTEST;
/** A mock vIOMMU with one page of queue memory mapped in the nesting parent's IOAS. */
const queueSetup = (e: Env, opts: { flags?: number; scatter?: boolean } = {}): Partial<V> => {
  const v = e.viommu();
  const buf = e.alloc(2n * PAGE);
  if (opts.scatter) {
    // Fault page 1 in, then other memory, so page 0 gets a frame that is not next to it.
    e.p.poke(buf + PAGE, Uint8Array.of(1));
    e.p.poke(e.alloc(PAGE), Uint8Array.of(1));
  }
  const iova = e.ok(U.IOMMU_IOAS_MAP, U.iommu_ioas_map, {
    ioas_id: v.ioas,
    flags: (opts.flags ?? U.IOMMU_IOAS_MAP_READABLE | U.IOMMU_IOAS_MAP_WRITEABLE) | U.IOMMU_IOAS_MAP_FIXED_IOVA,
    user_va: buf,
    length: 2n * PAGE,
    iova: e.prof.base,
  }).iova;
  return { ...v, iova };
};

table('IOMMU_HW_QUEUE_ALLOC', U.IOMMU_HW_QUEUE_ALLOC, [
  { name: '§3.2.1 flags≠0 → EOPNOTSUPP (wins over length 0)', arg: () => hq({ flags: 1, type: SEL, viommu_id: 99 }), errno: U.EOPNOTSUPP },
  { name: '§3.2.1 type DEFAULT → EOPNOTSUPP', arg: () => hq({ type: 0, viommu_id: 99, length: PAGE }), errno: U.EOPNOTSUPP },
  { name: '§3.2.1 length 0 → EINVAL (wins over an unknown vIOMMU)', arg: () => hq({ type: SEL, viommu_id: 99 }), errno: U.EINVAL },
  { name: '§3.2.1 iova + length − 1 overflows → EOVERFLOW (wins over an unknown vIOMMU)', arg: () => hq({ type: SEL, viommu_id: 99, nesting_parent_iova: U64_MAX, length: 2n }), errno: U.EOVERFLOW },
  { name: '§3.2.2 unknown viommu_id → ENOENT', arg: () => hq({ type: SEL, viommu_id: 99, length: PAGE }), errno: U.ENOENT },
  {
    name: '§3.2.3 a vIOMMU whose driver has no HW queue ops → EOPNOTSUPP',
    presets: ['arm-smmuv3'],
    setup: (e) => e.viommu(),
    arg: (e, s) => hq({ type: 1, viommu_id: s.viommu!, nesting_parent_iova: e.prof.base, length: PAGE }),
    errno: U.EOPNOTSUPP,
  },
  {
    name: '§3.2.4 a queue type the driver does not know: size 0 → EOPNOTSUPP',
    presets: ['mock'],
    setup: (e) => queueSetup(e),
    arg: (_e, s) => hq({ type: 0x77, viommu_id: s.viommu!, nesting_parent_iova: s.iova!, length: PAGE }),
    errno: U.EOPNOTSUPP,
  },
  {
    name: '§3.2.6 the page-rounded span overflows → ERANGE (after the ID was reserved; returned)',
    presets: ['mock'],
    setup: (e) => queueSetup(e),
    arg: (_e, s) => hq({ type: SEL, viommu_id: s.viommu!, nesting_parent_iova: 0xfffn, length: U64_MAX - 0xfffn }),
    errno: U.ERANGE,
  },
  {
    name: '§3.2.6 memory not mapped in the nesting parent IOAS → ENOENT; the internal ACCESS is destroyed too',
    presets: ['mock'],
    setup: (e) => queueSetup(e),
    arg: (_e, s) => hq({ type: SEL, viommu_id: s.viommu!, nesting_parent_iova: s.iova! + 2n * PAGE, length: PAGE }),
    errno: U.ENOENT,
  },
  {
    name: '§3.2.6 memory mapped without READ permission → EPERM',
    presets: ['mock'],
    setup: (e) => queueSetup(e, { flags: U.IOMMU_IOAS_MAP_WRITEABLE }),
    arg: (_e, s) => hq({ type: SEL, viommu_id: s.viommu!, nesting_parent_iova: s.iova!, length: PAGE }),
    errno: U.EPERM,
  },
  {
    name: '§3.2.6/§5.3 physically non-contiguous memory → EFAULT, pins and area lock undone',
    presets: ['mock'],
    setup: (e) => queueSetup(e, { scatter: true }),
    arg: (_e, s) => hq({ type: SEL, viommu_id: s.viommu!, nesting_parent_iova: s.iova!, length: 2n * PAGE }),
    errno: U.EFAULT,
    after: (e, s, before) => {
      expect(e.host.objects(e.fd)).toEqual(before.objects);
      expect(e.host.pinnedPages).toBe(before.pinned);
      // The area is not left locked: it can be unmapped.
      const u = U.iommu_ioas_unmap.encode({ size: 24, ioas_id: s.ioas!, iova: s.iova!, length: 2n * PAGE });
      expect(e.p.ioctl(e.fd, U.IOMMU_IOAS_UNMAP, u)).toBe(0);
    },
  },
  {
    name: '§3.2.8 hw_queue_init_phys fails (index 1 before index 0: mock EIO) → everything unwound',
    presets: ['mock'],
    setup: (e) => queueSetup(e),
    arg: (_e, s) => hq({ type: SEL, index: 1, viommu_id: s.viommu!, nesting_parent_iova: s.iova!, length: PAGE }),
    errno: U.EIO,
  },
  {
    name: '§3.2.9 respond EFAULT → the queue is destroyed: both IDs free, pages unpinned, area unlocked',
    presets: ['mock'],
    setup: (e) => queueSetup(e),
    arg: (e, s) => {
      const bytes = U.iommu_hw_queue_alloc.encode({ size: U.iommu_hw_queue_alloc.size, type: SEL, viommu_id: s.viommu!, nesting_parent_iova: s.iova!, length: PAGE });
      return { va: e.readOnly(bytes), bytes };
    },
    errno: U.EFAULT,
  },
] satisfies Row<Partial<V>>[]);

/** A Tegra241 CMDQV vIOMMU (VINTF) with a page of queue memory at the base of its parent IOAS. */
const tegraSetup = (e: Env): Partial<V> => {
  const ioas = e.ioas();
  const parent = e.hwpt(ioas, U.IOMMU_HWPT_ALLOC_NEST_PARENT);
  const data = e.put(new Uint8Array(U.iommu_viommu_tegra241_cmdqv.size));
  const viommu = e.ok(U.IOMMU_VIOMMU_ALLOC, U.iommu_viommu_alloc, {
    type: U.IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV,
    dev_id: e.devIds[0]!,
    hwpt_id: parent,
    data_len: U.iommu_viommu_tegra241_cmdqv.size,
    data_uptr: data,
  }).out_viommu_id;
  return { ioas, parent, viommu, iova: e.map(ioas, PAGE, e.prof.base) };
};
const TEGRA = U.IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV;

table('IOMMU_VIOMMU_ALLOC (Tegra241 CMDQV)', U.IOMMU_VIOMMU_ALLOC, [
  {
    name: '§3.2 TEGRA241_CMDQV without its driver data → EINVAL; unwound',
    presets: ['tegra241-cmdqv'],
    setup: withParent,
    arg: (e, s) => va({ type: U.IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV, dev_id: e.devIds[0]!, hwpt_id: s.parent! }),
    errno: U.EINVAL,
  },
] satisfies Row<Partial<V>>[]);

table('IOMMU_HW_QUEUE_ALLOC (Tegra241 CMDQV)', U.IOMMU_HW_QUEUE_ALLOC, [
  {
    name: '§3.2 Tegra241: an index past the VINTF LVCMDQs → EINVAL (before the ascending-order rule)',
    presets: ['tegra241-cmdqv'],
    setup: tegraSetup,
    arg: (_e, s) => hq({ type: TEGRA, index: 0x1000, viommu_id: s.viommu!, nesting_parent_iova: s.iova!, length: PAGE }),
    errno: U.EINVAL,
  },
  {
    name: '§3.2 Tegra241: index 1 before index 0 → EIO (wins over a bad length)',
    presets: ['tegra241-cmdqv'],
    setup: tegraSetup,
    arg: (_e, s) => hq({ type: TEGRA, index: 1, viommu_id: s.viommu!, nesting_parent_iova: s.iova!, length: 48n }),
    errno: U.EIO,
  },
  {
    name: '§3.2 Tegra241: an index already allocated → EEXIST',
    presets: ['tegra241-cmdqv'],
    setup: (e) => {
      const s = tegraSetup(e);
      e.ok(U.IOMMU_HW_QUEUE_ALLOC, U.iommu_hw_queue_alloc, { type: TEGRA, index: 0, viommu_id: s.viommu!, nesting_parent_iova: s.iova!, length: PAGE / 2n });
      return s;
    },
    arg: (_e, s) => hq({ type: TEGRA, index: 0, viommu_id: s.viommu!, nesting_parent_iova: s.iova! + PAGE / 2n, length: PAGE / 2n }),
    errno: U.EEXIST,
  },
  {
    name: '§3.2 Tegra241: a length that is not a power of two → EINVAL',
    presets: ['tegra241-cmdqv'],
    setup: tegraSetup,
    arg: (_e, s) => hq({ type: TEGRA, index: 0, viommu_id: s.viommu!, nesting_parent_iova: s.iova!, length: 48n }),
    errno: U.EINVAL,
  },
  {
    name: '§3.2 Tegra241: a length below 32 bytes → EINVAL',
    presets: ['tegra241-cmdqv'],
    setup: tegraSetup,
    arg: (_e, s) => hq({ type: TEGRA, index: 0, viommu_id: s.viommu!, nesting_parent_iova: s.iova!, length: 16n }),
    errno: U.EINVAL,
  },
  {
    name: '§3.2 Tegra241: a base not aligned to the length → EINVAL',
    presets: ['tegra241-cmdqv'],
    setup: tegraSetup,
    arg: (_e, s) => hq({ type: TEGRA, index: 0, viommu_id: s.viommu!, nesting_parent_iova: s.iova! + 0x100n, length: 0x200n }),
    errno: U.EINVAL,
  },
  {
    name: '§3.2 Tegra241: a queue type the driver does not know → EOPNOTSUPP (size 0)',
    presets: ['tegra241-cmdqv'],
    setup: tegraSetup,
    arg: (_e, s) => hq({ type: 0x77, index: 0, viommu_id: s.viommu!, nesting_parent_iova: s.iova!, length: PAGE }),
    errno: U.EOPNOTSUPP,
  },
] satisfies Row<Partial<V>>[]);

table('IOMMU_FAULT_QUEUE_ALLOC', U.IOMMU_FAULT_QUEUE_ALLOC, [
  { name: '§3.2 flags≠0 → EOPNOTSUPP', arg: () => ({ layout: U.iommu_fault_alloc, value: { flags: 1 } }), errno: U.EOPNOTSUPP },
  {
    name: '§3.2 respond EFAULT → the fd number is released and the FAULT aborted (file released)',
    arg: (e) => {
      const bytes = U.iommu_fault_alloc.encode({ size: U.iommu_fault_alloc.size });
      return { va: e.readOnly(bytes), bytes };
    },
    errno: U.EFAULT,
  },
] satisfies Row<Partial<V>>[]);
