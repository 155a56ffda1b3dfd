/**
 * The selftest uAPI of the mock platform (`drivers/iommu/iommufd/iommufd_test.h`):
 * IOMMU_TEST_CMD, its ops and payloads, and the mock driver's data types. Payload layouts are
 * declared as the header plus that op's union member, so each is one struct of the same
 * size as `struct iommu_test_cmd`.
 */
import { _IO, array, defineStruct, type FieldSpec, IOMMUFD_TYPE, u32, u64 } from '@iommufd/uapi';

/** `IOMMU_TEST_CMD` = `_IO(';', 0xa0)`. */
export const IOMMU_TEST_CMD = _IO(IOMMUFD_TYPE, 0xa0);

/** Test ops (`enum` in iommufd_test.h). */
export const IOMMU_TEST_OP_ADD_RESERVED = 1;
export const IOMMU_TEST_OP_MOCK_DOMAIN = 2;
export const IOMMU_TEST_OP_MD_CHECK_MAP = 3;
export const IOMMU_TEST_OP_MD_CHECK_REFS = 4;
export const IOMMU_TEST_OP_CREATE_ACCESS = 5;
export const IOMMU_TEST_OP_DESTROY_ACCESS_PAGES = 6;
export const IOMMU_TEST_OP_ACCESS_PAGES = 7;
export const IOMMU_TEST_OP_ACCESS_RW = 8;
export const IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT = 9;
export const IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE = 10;
export const IOMMU_TEST_OP_ACCESS_REPLACE_IOAS = 11;
export const IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS = 12;
export const IOMMU_TEST_OP_DIRTY = 13;
export const IOMMU_TEST_OP_MD_CHECK_IOTLB = 14;
export const IOMMU_TEST_OP_TRIGGER_IOPF = 15;
export const IOMMU_TEST_OP_DEV_CHECK_CACHE = 16;
export const IOMMU_TEST_OP_TRIGGER_VEVENT = 17;
export const IOMMU_TEST_OP_PASID_ATTACH = 18;
export const IOMMU_TEST_OP_PASID_REPLACE = 19;
export const IOMMU_TEST_OP_PASID_DETACH = 20;
export const IOMMU_TEST_OP_PASID_CHECK_HWPT = 21;

/** The mock domain aperture. */
export const MOCK_APERTURE_START = 1n << 24n;
export const MOCK_APERTURE_LAST = (1n << 31n) - 1n;
export const MOCK_FLAGS_ACCESS_WRITE = 1 << 0;
export const MOCK_ACCESS_RW_WRITE = 1 << 0;
export const MOCK_ACCESS_RW_SLOW_PATH = 1 << 2;
export const MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES = 1 << 0;
export const MOCK_FLAGS_DEVICE_NO_DIRTY = 1 << 0;
export const MOCK_FLAGS_DEVICE_HUGE_IOVA = 1 << 1;
export const MOCK_FLAGS_DEVICE_PASID = 1 << 2;
export const MOCK_NESTED_DOMAIN_IOTLB_ID_MAX = 3;
export const MOCK_NESTED_DOMAIN_IOTLB_NUM = 4;
export const MOCK_DEV_CACHE_ID_MAX = 3;
export const MOCK_DEV_CACHE_NUM = 4;
/** The PASID whose every second replace fails with ENOMEM in the mock driver. */
export const IOMMU_TEST_PASID_RESERVED = 1024;
export const MOCK_PASID_WIDTH = 20;
export const IOMMU_HW_INFO_TYPE_SELFTEST = 0xfeedbeef;
export const IOMMU_HW_INFO_SELFTEST_REGVAL = 0xdeadbeef;
export const IOMMU_HWPT_DATA_SELFTEST = 0xdead;
export const IOMMU_TEST_IOTLB_DEFAULT = 0xbadbeef;
export const IOMMU_TEST_DEV_CACHE_DEFAULT = 0xbaddad;
export const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST = 0xdeadbeef;
export const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID = 0xdadbeef;
export const IOMMU_TEST_INVALIDATE_FLAG_ALL = 1 << 0;
export const IOMMU_VIOMMU_TYPE_SELFTEST = 0xdeadbeef;
export const IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST = 0xdeadbeef;
export const IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID = 0xdadbeef;
export const IOMMU_VEVENTQ_TYPE_SELFTEST = 0xbeefbeef;
export const IOMMU_HW_QUEUE_TYPE_SELFTEST = 0xdeadbeef;
export const IOMMU_TEST_HW_QUEUE_MAX = 2;

const head = [u32('size'), u32('op'), u32('id'), u32('__reserved')] as const;

/** `struct iommu_test_cmd` as a whole: header, the 48-byte union, `last` (72 bytes, min 68). */
export const iommu_test_cmd = defineStruct('iommu_test_cmd', [...head, array('payload', 'u64', 6), u32('last')], {
  minField: 'last',
});

/** A payload view: header + one union member, padded to the full command. */
function payload<const F extends readonly FieldSpec[]>(name: string, fields: F) {
  return defineStruct(name, [...head, ...fields] as const);
}

export const iommu_test_cmd_add_reserved = payload('iommu_test_cmd.add_reserved', [u64('start'), u64('length')]);
export const iommu_test_cmd_mock_domain = payload('iommu_test_cmd.mock_domain_flags', [
  u32('out_stdev_id'),
  u32('out_hwpt_id'),
  u32('out_idev_id'),
  u32('dev_flags'),
]);
export const iommu_test_cmd_mock_domain_replace = payload('iommu_test_cmd.mock_domain_replace', [u32('pt_id')]);
export const iommu_test_cmd_check_map = payload('iommu_test_cmd.check_map', [u64('iova'), u64('length'), u64('uptr')]);
export const iommu_test_cmd_check_refs = payload('iommu_test_cmd.check_refs', [u64('length'), u64('uptr'), u32('refs')]);
export const iommu_test_cmd_create_access = payload('iommu_test_cmd.create_access', [u32('out_access_fd'), u32('flags')]);
export const iommu_test_cmd_destroy_access_pages = payload('iommu_test_cmd.destroy_access_pages', [u32('access_pages_id')]);
export const iommu_test_cmd_access_pages = payload('iommu_test_cmd.access_pages', [
  u32('flags'),
  u32('out_access_pages_id'),
  u64('iova'),
  u64('length'),
  u64('uptr'),
]);
export const iommu_test_cmd_access_rw = payload('iommu_test_cmd.access_rw', [u64('iova'), u64('length'), u64('uptr'), u32('flags')]);
export const iommu_test_cmd_memory_limit = payload('iommu_test_cmd.memory_limit', [u32('limit')]);
export const iommu_test_cmd_access_replace_ioas = payload('iommu_test_cmd.access_replace_ioas', [u32('ioas_id')]);
export const iommu_test_cmd_dirty = payload('iommu_test_cmd.dirty', [
  u32('flags'),
  u64('iova'),
  u64('length'),
  u64('page_size'),
  u64('uptr'),
  u64('out_nr_dirty'),
]);
/** `check_iotlb` (`id` is named `iotlb_id` here: the header already has an `id`). */
export const iommu_test_cmd_check_iotlb = payload('iommu_test_cmd.check_iotlb', [u32('iotlb_id'), u32('iotlb')]);
export const iommu_test_cmd_trigger_iopf = payload('iommu_test_cmd.trigger_iopf', [
  u32('dev_id'),
  u32('pasid'),
  u32('grpid'),
  u32('perm'),
  u64('addr'),
]);
/** `check_dev_cache` (`id` is named `cache_id` here: the header already has an `id`). */
export const iommu_test_cmd_check_dev_cache = payload('iommu_test_cmd.check_dev_cache', [u32('cache_id'), u32('cache')]);
export const iommu_test_cmd_trigger_vevent = payload('iommu_test_cmd.trigger_vevent', [u32('dev_id')]);
export const iommu_test_cmd_pasid = payload('iommu_test_cmd.pasid', [u32('pasid'), u32('pt_id')]);

/** `struct iommu_test_hw_info` (GET_HW_INFO payload of the mock). */
export const iommu_test_hw_info = defineStruct('iommu_test_hw_info', [u32('flags'), u32('test_reg')]);
/** `struct iommu_hwpt_selftest` (nested HWPT data). */
export const iommu_hwpt_selftest = defineStruct('iommu_hwpt_selftest', [u32('iotlb')]);
/** `struct iommu_hwpt_invalidate_selftest`. */
export const iommu_hwpt_invalidate_selftest = defineStruct('iommu_hwpt_invalidate_selftest', [u32('flags'), u32('iotlb_id')]);
/** `struct iommu_viommu_selftest` (vIOMMU data with the mmap'able page). */
export const iommu_viommu_selftest = defineStruct('iommu_viommu_selftest', [
  u32('in_data'),
  u32('out_data'),
  u64('out_mmap_offset'),
  u64('out_mmap_length'),
], { minField: 'out_data' });
/** `struct iommu_viommu_invalidate_selftest`. */
export const iommu_viommu_invalidate_selftest = defineStruct('iommu_viommu_invalidate_selftest', [
  u32('flags'),
  u32('vdev_id'),
  u32('cache_id'),
]);
/** `struct iommu_viommu_event_selftest` (vEVENT payload). */
export const iommu_viommu_event_selftest = defineStruct('iommu_viommu_event_selftest', [u32('virt_id')]);
