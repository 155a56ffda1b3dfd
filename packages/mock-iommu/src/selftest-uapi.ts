/**
 * The selftest's own data types (the kernel's drivers/iommu/iommufd/iommufd_test.h): they
 * belong to the mock driver, not to include/uapi, so they live here.
 */
import { defineStruct, u32, u64 } from '@iommufd/uapi';

/** `IOMMU_HW_INFO_TYPE_SELFTEST` */
export const IOMMU_HW_INFO_TYPE_SELFTEST = 0xfeedbeef;
/** The value of `iommu_test_hw_info.test_reg`. */
export const IOMMU_HW_INFO_SELFTEST_REGVAL = 0xdeadbeef;
/** `struct iommu_test_hw_info` */
export const iommu_test_hw_info = defineStruct('iommu_test_hw_info', [u32('flags'), u32('test_reg')]);

/** `IOMMU_HWPT_DATA_SELFTEST` */
export const IOMMU_HWPT_DATA_SELFTEST = 0xdead;
/** The IOTLB value a nested mock domain starts with when `iotlb` is not used. */
export const IOMMU_TEST_IOTLB_DEFAULT = 0xbadbeef;
/** `struct iommu_hwpt_selftest` */
export const iommu_hwpt_selftest = defineStruct('iommu_hwpt_selftest', [u32('iotlb')]);

/** `IOMMU_HWPT_INVALIDATE_DATA_SELFTEST` */
export const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST = 0xdeadbeef;
/** `IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID` (a type the mock rejects) */
export const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID = 0xdadbeef;
/** `IOMMU_TEST_INVALIDATE_FLAG_ALL` */
export const IOMMU_TEST_INVALIDATE_FLAG_ALL = 1 << 0;
/** `struct iommu_hwpt_invalidate_selftest` */
export const iommu_hwpt_invalidate_selftest = defineStruct('iommu_hwpt_invalidate_selftest', [u32('flags'), u32('iotlb_id')], {
  minField: 'iotlb_id',
});

/** `IOMMU_VIOMMU_TYPE_SELFTEST` */
export const IOMMU_VIOMMU_TYPE_SELFTEST = 0xdeadbeef;
/** `struct iommu_viommu_selftest` (driver data of VIOMMU_ALLOC) */
export const iommu_viommu_selftest = defineStruct('iommu_viommu_selftest', [
  u32('in_data'),
  u32('out_data'),
  u64('out_mmap_offset'),
  u64('out_mmap_length'),
]);

/** `IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST` */
export const IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST = 0xdeadbeef;
/** `struct iommu_viommu_invalidate_selftest` */
export const iommu_viommu_invalidate_selftest = defineStruct('iommu_viommu_invalidate_selftest', [
  u32('flags'),
  u32('vdev_id'),
  u32('cache_id'),
]);

/** `IOMMU_VEVENTQ_TYPE_SELFTEST` */
export const IOMMU_VEVENTQ_TYPE_SELFTEST = 0xbeefbeef;
/** `struct iommu_viommu_event_selftest` */
export const iommu_viommu_event_selftest = defineStruct('iommu_viommu_event_selftest', [u32('virt_id')]);

/** `IOMMU_HW_QUEUE_TYPE_SELFTEST` */
export const IOMMU_HW_QUEUE_TYPE_SELFTEST = 0xdeadbeef;
/** `IOMMU_TEST_HW_QUEUE_MAX`: queue indexes 0 and 1. */
export const IOMMU_TEST_HW_QUEUE_MAX = 2;

/** `MOCK_APERTURE_START` */
export const MOCK_APERTURE_START = 1n << 24n;
/** `MOCK_APERTURE_LAST` */
export const MOCK_APERTURE_LAST = (1n << 31n) - 1n;
/** `MOCK_IO_PAGE_SIZE` = PAGE_SIZE / 2: smaller than the CPU page on purpose. */
export const MOCK_IO_PAGE_SIZE = 2048n;
/** `MOCK_HUGE_PAGE_SIZE` */
export const MOCK_HUGE_PAGE_SIZE = 512n * MOCK_IO_PAGE_SIZE;
/** `MOCK_NESTED_DOMAIN_IOTLB_NUM` */
export const MOCK_NESTED_DOMAIN_IOTLB_NUM = 4;
/** `MOCK_DEV_CACHE_NUM` */
export const MOCK_DEV_CACHE_NUM = 4;
/** `IOMMU_TEST_DEV_CACHE_DEFAULT` */
export const IOMMU_TEST_DEV_CACHE_DEFAULT = 0xbaddad;

/** `MOCK_FLAGS_DEVICE_NO_DIRTY` */
export const MOCK_FLAGS_DEVICE_NO_DIRTY = 1 << 0;
/** `MOCK_FLAGS_DEVICE_HUGE_IOVA` */
export const MOCK_FLAGS_DEVICE_HUGE_IOVA = 1 << 1;
/** `MOCK_FLAGS_DEVICE_PASID` */
export const MOCK_FLAGS_DEVICE_PASID = 1 << 2;
