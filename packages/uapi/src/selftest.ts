/**
 * `drivers/iommu/iommufd/iommufd_test.h` (Linux 6.17): the `IOMMU_TEST_CMD` ioctl of a
 * CONFIG_IOMMUFD_TEST kernel and the mock driver's data types, used by the selftest port on
 * the mock platform.
 *
 * `struct iommu_test_cmd` is a 16-byte header, a union of per-op payloads and a trailing
 * `u32 last`. Each union member is declared once below; for each op this module derives a
 * whole-struct layout (header + that member + padding to the union size + `last`), so the
 * union size, the member offsets and `last`'s offset are computed, never written.
 */
import { IOMMUFD_CMD_BASE, IOMMUFD_TYPE } from './iommufd.js';
import { _IO } from './ioctl.js';
import {
  array,
  defineStruct,
  u32,
  u64,
  type FieldSpec,
  type ScalarFieldSpec,
  type StructLayout,
} from './layout.js';

/** `IOMMU_TEST_CMD` = _IO(';', 0x80 + 32) = 0x3ba0. */
export const IOMMU_TEST_CMD = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 32);

/** Test op: reserve an IOVA range in the IOAS `id`. */
export const IOMMU_TEST_OP_ADD_RESERVED = 1;
/** Test op: create a mock device, bind it and attach it to `id` (IOAS or HWPT). */
export const IOMMU_TEST_OP_MOCK_DOMAIN = 2;
/** Test op: check the mock page table of HWPT `id` maps the user VA's pages. */
export const IOMMU_TEST_OP_MD_CHECK_MAP = 3;
/** Test op: check the pin count of the user VA's pages. */
export const IOMMU_TEST_OP_MD_CHECK_REFS = 4;
/** Test op: create an in-kernel access on IOAS `id`, returned as an fd. */
export const IOMMU_TEST_OP_CREATE_ACCESS = 5;
/** Test op: unpin a pages item of the access fd `id`. */
export const IOMMU_TEST_OP_DESTROY_ACCESS_PAGES = 6;
/** Test op: pin pages through the access fd `id`. */
export const IOMMU_TEST_OP_ACCESS_PAGES = 7;
/** Test op: read/write through the access fd `id`. */
export const IOMMU_TEST_OP_ACCESS_RW = 8;
/** Test op: set the temporary pinned-memory limit. */
export const IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT = 9;
/** Test op: replace the attachment of mock device `id`. */
export const IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE = 10;
/** Test op: move the access fd `id` to another IOAS. */
export const IOMMU_TEST_OP_ACCESS_REPLACE_IOAS = 11;
/** Test op: as MOCK_DOMAIN with mock device flags. */
export const IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS = 12;
/** Test op: set mock IOPTE dirty bits of HWPT `id` from a bitmap. */
export const IOMMU_TEST_OP_DIRTY = 13;
/** Test op: compare one mock IOTLB entry of nested HWPT `id`. */
export const IOMMU_TEST_OP_MD_CHECK_IOTLB = 14;
/** Test op: inject a page request (IOPF). */
export const IOMMU_TEST_OP_TRIGGER_IOPF = 15;
/** Test op: compare one mock device cache entry of device `id`. */
export const IOMMU_TEST_OP_DEV_CHECK_CACHE = 16;
/** Test op: report a vEVENT for a device. */
export const IOMMU_TEST_OP_TRIGGER_VEVENT = 17;
/** Test op: attach a PASID of mock device `id`. */
export const IOMMU_TEST_OP_PASID_ATTACH = 18;
/** Test op: replace a PASID attachment of mock device `id`. */
export const IOMMU_TEST_OP_PASID_REPLACE = 19;
/** Test op: detach a PASID of mock device `id`. */
export const IOMMU_TEST_OP_PASID_DETACH = 20;
/** Test op: check which HWPT a PASID of mock device `id` is attached to. */
export const IOMMU_TEST_OP_PASID_CHECK_HWPT = 21;

/** First IOVA of the mock domain aperture (16 MiB). */
export const MOCK_APERTURE_START = 1 << 24;
/** Last IOVA of the mock domain aperture (2 GiB − 1). */
export const MOCK_APERTURE_LAST = 2 ** 31 - 1;
/** access_pages flags: pin for write. */
export const MOCK_FLAGS_ACCESS_WRITE = 1 << 0;
/** access_pages flags: syzkaller mode (iova is an offset into the area list). */
export const MOCK_FLAGS_ACCESS_SYZ = 1 << 16;
/** access_rw flags: write. */
export const MOCK_ACCESS_RW_WRITE = 1 << 0;
/** access_rw flags: take the slow (page by page) path. */
export const MOCK_ACCESS_RW_SLOW_PATH = 1 << 2;
/** create_access flags: the access pins pages (needs an unmap callback). */
export const MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES = 1 << 0;
/** mock_domain_flags.dev_flags: the device has no dirty tracking. */
export const MOCK_FLAGS_DEVICE_NO_DIRTY = 1 << 0;
/** mock_domain_flags.dev_flags: the device's domains use a huge IOVA aperture. */
export const MOCK_FLAGS_DEVICE_HUGE_IOVA = 1 << 1;
/** mock_domain_flags.dev_flags: the device supports PASID. */
export const MOCK_FLAGS_DEVICE_PASID = 1 << 2;
/** Largest mock nested-domain IOTLB index. */
export const MOCK_NESTED_DOMAIN_IOTLB_ID_MAX = 3;
/** Number of mock nested-domain IOTLB entries. */
export const MOCK_NESTED_DOMAIN_IOTLB_NUM = 4;
/** Largest mock device cache index. */
export const MOCK_DEV_CACHE_ID_MAX = 3;
/** Number of mock device cache entries. */
export const MOCK_DEV_CACHE_NUM = 4;
/** PASID reserved for the special PASID replace test. */
export const IOMMU_TEST_PASID_RESERVED = 1024;
/** Width of the mock PASID space in bits. */
export const MOCK_PASID_WIDTH = 20;

/** hw_info type reported by the mock driver. */
export const IOMMU_HW_INFO_TYPE_SELFTEST = 0xfeedbeef;
/** `iommu_test_hw_info.test_reg` value. */
export const IOMMU_HW_INFO_SELFTEST_REGVAL = 0xdeadbeef;
/** HWPT data type of the mock driver's nested domains. */
export const IOMMU_HWPT_DATA_SELFTEST = 0xdead;
/** Initial value of every mock IOTLB entry. */
export const IOMMU_TEST_IOTLB_DEFAULT = 0xbadbeef;
/** Initial value of every mock device cache entry. */
export const IOMMU_TEST_DEV_CACHE_DEFAULT = 0xbaddad;
/** HWPT invalidation data type of the mock driver. */
export const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST = 0xdeadbeef;
/** A data type the mock driver rejects. */
export const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID = 0xdadbeef;
/** Invalidation flag: every entry (the index is ignored). */
export const IOMMU_TEST_INVALIDATE_FLAG_ALL = 1 << 0;
/** vIOMMU type of the mock driver. */
export const IOMMU_VIOMMU_TYPE_SELFTEST = 0xdeadbeef;
/** vIOMMU invalidation data type of the mock driver. */
export const IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST = 0xdeadbeef;
/** A vIOMMU data type the mock driver rejects. */
export const IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID = 0xdadbeef;
/** vEVENTQ type of the mock driver. */
export const IOMMU_VEVENTQ_TYPE_SELFTEST = 0xbeefbeef;
/** HW queue type of the mock driver. */
export const IOMMU_HW_QUEUE_TYPE_SELFTEST = 0xdeadbeef;
/** Number of HW queues a mock vIOMMU accepts. */
export const IOMMU_TEST_HW_QUEUE_MAX = 2;

/** `struct iommu_test_hw_info` (8 bytes): the mock driver's hw_info payload. */
export const iommu_test_hw_info = defineStruct('iommu_test_hw_info', [u32('flags'), u32('test_reg')]);
/** `struct iommu_hwpt_selftest` (4 bytes): mock nested HWPT data. */
export const iommu_hwpt_selftest = defineStruct('iommu_hwpt_selftest', [u32('iotlb')]);
/** `struct iommu_hwpt_invalidate_selftest` (8 bytes): mock HWPT invalidation entry. */
export const iommu_hwpt_invalidate_selftest = defineStruct('iommu_hwpt_invalidate_selftest', [
  u32('flags'),
  u32('iotlb_id'),
]);
/** `struct iommu_viommu_selftest` (24 bytes): mock vIOMMU data (loopback + mmap region). */
export const iommu_viommu_selftest = defineStruct('iommu_viommu_selftest', [
  u32('in_data'),
  u32('out_data'),
  u64('out_mmap_offset'),
  u64('out_mmap_length'),
]);
/** `struct iommu_viommu_invalidate_selftest` (12 bytes): mock vIOMMU invalidation entry. */
export const iommu_viommu_invalidate_selftest = defineStruct('iommu_viommu_invalidate_selftest', [
  u32('flags'),
  u32('vdev_id'),
  u32('cache_id'),
]);
/** `struct iommu_viommu_event_selftest` (4 bytes): mock vEVENT payload. */
export const iommu_viommu_event_selftest = defineStruct('iommu_viommu_event_selftest', [u32('virt_id')]);

// ---------------------------------------------------------------------------------------
// struct iommu_test_cmd

const TEST_CMD_HEADER = [u32('size'), u32('op'), u32('id'), u32('__reserved')] as const;

// The union members in header order. Where a member's field has the name of a header field
// (`id` in check_iotlb and check_dev_cache) it is qualified with the member name, as C
// would spell the access (`cmd.check_iotlb.id`).
const MEMBERS = {
  add_reserved: [u64('start'), u64('length')],
  mock_domain: [u32('out_stdev_id'), u32('out_hwpt_id'), u32('out_idev_id')],
  mock_domain_flags: [u32('out_stdev_id'), u32('out_hwpt_id'), u32('out_idev_id'), u32('dev_flags')],
  mock_domain_replace: [u32('pt_id')],
  check_map: [u64('iova'), u64('length'), u64('uptr')],
  check_refs: [u64('length'), u64('uptr'), u32('refs')],
  create_access: [u32('out_access_fd'), u32('flags')],
  destroy_access_pages: [u32('access_pages_id')],
  access_pages: [u32('flags'), u32('out_access_pages_id'), u64('iova'), u64('length'), u64('uptr')],
  access_rw: [u64('iova'), u64('length'), u64('uptr'), u32('flags')],
  memory_limit: [u32('limit')],
  access_replace_ioas: [u32('ioas_id')],
  dirty: [u32('flags'), u64('iova'), u64('length'), u64('page_size'), u64('uptr'), u64('out_nr_dirty')],
  check_iotlb: [u32('check_iotlb.id'), u32('iotlb')],
  trigger_iopf: [u32('dev_id'), u32('pasid'), u32('grpid'), u32('perm'), u64('addr')],
  check_dev_cache: [u32('check_dev_cache.id'), u32('cache')],
  trigger_vevent: [u32('dev_id')],
  pasid_attach: [u32('pasid'), u32('pt_id')],
  pasid_replace: [u32('pasid'), u32('pt_id')],
  pasid_detach: [u32('pasid')],
  pasid_check: [u32('pasid'), u32('hwpt_id')],
} as const;

/** The name of a union member of `struct iommu_test_cmd` (`'mock_domain'`, `'access_rw'` …). */
export type IommuTestCmdMember = keyof typeof MEMBERS;

const memberLayouts = Object.fromEntries(
  Object.entries(MEMBERS).map(([m, specs]) => [m, defineStruct(m, specs as readonly FieldSpec[])]),
) as Record<IommuTestCmdMember, StructLayout>;

const IOMMU_TEST_CMD_UNION_ALIGN = Math.max(...Object.values(memberLayouts).map((l) => l.align));

/** Size of the payload union of `struct iommu_test_cmd` (its largest member, rounded to its alignment). */
export const IOMMU_TEST_CMD_UNION_SIZE =
  Math.ceil(Math.max(...Object.values(memberLayouts).map((l) => l.size)) / IOMMU_TEST_CMD_UNION_ALIGN) *
  IOMMU_TEST_CMD_UNION_ALIGN;

/** The whole-struct layout of `iommu_test_cmd` for one union member. */
export type IommuTestCmdLayout<M extends IommuTestCmdMember> = StructLayout<
  readonly [...typeof TEST_CMD_HEADER, ...(typeof MEMBERS)[M], ScalarFieldSpec<'last', 'u32'>]
>;

function testCmdLayout<M extends IommuTestCmdMember>(member: M): IommuTestCmdLayout<M> {
  const payload = memberLayouts[member];
  const used = Math.max(...payload.fieldList.map((f) => f.offset + f.size));
  const pad = IOMMU_TEST_CMD_UNION_SIZE - used;
  // The padding field keeps `last` after the whole union; it is internal and not in the type.
  const specs: readonly FieldSpec[] = [
    ...TEST_CMD_HEADER,
    ...MEMBERS[member],
    ...(pad > 0 ? [array('__union_pad', 'u8', pad)] : []),
    u32('last'),
  ];
  return defineStruct('iommu_test_cmd', specs, { minField: 'last', align: IOMMU_TEST_CMD_UNION_ALIGN }) as unknown as IommuTestCmdLayout<M>;
}

/**
 * `struct iommu_test_cmd` seen through each union member: `IOMMU_TEST_CMD_LAYOUTS.mock_domain`
 * has fields size, op, id, __reserved, out_stdev_id, out_hwpt_id, out_idev_id, last. Every
 * entry has the same size (72) and min size (68 = offsetofend last).
 */
export const IOMMU_TEST_CMD_LAYOUTS: { readonly [M in IommuTestCmdMember]: IommuTestCmdLayout<M> } = Object.freeze(
  Object.fromEntries(Object.keys(MEMBERS).map((m) => [m, testCmdLayout(m as IommuTestCmdMember)])) as {
    [M in IommuTestCmdMember]: IommuTestCmdLayout<M>;
  },
);

/** `struct iommu_test_cmd` with the payload union as raw bytes (for dispatch on `op` before decoding a member). */
export const iommu_test_cmd = defineStruct(
  'iommu_test_cmd',
  [...TEST_CMD_HEADER, array('__union', 'u8', IOMMU_TEST_CMD_UNION_SIZE), u32('last')],
  { minField: 'last', align: IOMMU_TEST_CMD_UNION_ALIGN },
);

/** Which union member each test op uses (PASID ops name theirs after the op). */
export const IOMMU_TEST_OP_MEMBER: Readonly<Record<number, IommuTestCmdMember>> = Object.freeze({
  [IOMMU_TEST_OP_ADD_RESERVED]: 'add_reserved',
  [IOMMU_TEST_OP_MOCK_DOMAIN]: 'mock_domain',
  [IOMMU_TEST_OP_MD_CHECK_MAP]: 'check_map',
  [IOMMU_TEST_OP_MD_CHECK_REFS]: 'check_refs',
  [IOMMU_TEST_OP_CREATE_ACCESS]: 'create_access',
  [IOMMU_TEST_OP_DESTROY_ACCESS_PAGES]: 'destroy_access_pages',
  [IOMMU_TEST_OP_ACCESS_PAGES]: 'access_pages',
  [IOMMU_TEST_OP_ACCESS_RW]: 'access_rw',
  [IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT]: 'memory_limit',
  [IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE]: 'mock_domain_replace',
  [IOMMU_TEST_OP_ACCESS_REPLACE_IOAS]: 'access_replace_ioas',
  [IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS]: 'mock_domain_flags',
  [IOMMU_TEST_OP_DIRTY]: 'dirty',
  [IOMMU_TEST_OP_MD_CHECK_IOTLB]: 'check_iotlb',
  [IOMMU_TEST_OP_TRIGGER_IOPF]: 'trigger_iopf',
  [IOMMU_TEST_OP_DEV_CHECK_CACHE]: 'check_dev_cache',
  [IOMMU_TEST_OP_TRIGGER_VEVENT]: 'trigger_vevent',
  [IOMMU_TEST_OP_PASID_ATTACH]: 'pasid_attach',
  [IOMMU_TEST_OP_PASID_REPLACE]: 'pasid_replace',
  [IOMMU_TEST_OP_PASID_DETACH]: 'pasid_detach',
  [IOMMU_TEST_OP_PASID_CHECK_HWPT]: 'pasid_check',
});
