import { describe, expect, it } from 'vitest';
import * as uapi from '../src/index.js';
import { IOMMU_TEST_CMD_LAYOUTS, type StructLayout } from '../src/index.js';

const fieldsOf = (l: StructLayout) => l.fieldList.map((f) => [f.name, f.offset, f.size]);

describe('VFIO cdev ↔ iommufd (vfio.h, reference §3.8)', () => {
  it('numbers', () => {
    expect(uapi.VFIO_TYPE).toBe(0x3b);
    expect(uapi.VFIO_BASE).toBe(100);
    expect([uapi.VFIO_DEVICE_BIND_IOMMUFD, uapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT, uapi.VFIO_DEVICE_DETACH_IOMMUFD_PT]).toEqual([
      0x3b76, 0x3b77, 0x3b78,
    ]);
    expect([uapi.VFIO_DEVICE_BIND_FLAG_TOKEN, uapi.VFIO_DEVICE_ATTACH_PASID, uapi.VFIO_DEVICE_DETACH_PASID]).toEqual([1, 1, 1]);
  });

  it('vfio_device_bind_iommufd: 24 bytes, min 16', () => {
    const l = uapi.vfio_device_bind_iommufd;
    expect([l.size, l.minSize]).toEqual([24, 16]);
    expect(fieldsOf(l)).toEqual([['argsz', 0, 4], ['flags', 4, 4], ['iommufd', 8, 4], ['out_devid', 12, 4], ['token_uuid_ptr', 16, 8]]);
    expect(l.decode(l.encode({ iommufd: -1 })).iommufd).toBe(-1);
  });

  it('vfio_device_attach_iommufd_pt: 16 bytes, min 12', () => {
    const l = uapi.vfio_device_attach_iommufd_pt;
    expect([l.size, l.minSize]).toEqual([16, 12]);
    expect(fieldsOf(l)).toEqual([['argsz', 0, 4], ['flags', 4, 4], ['pt_id', 8, 4], ['pasid', 12, 4]]);
  });

  it('vfio_device_detach_iommufd_pt: 12 bytes, min 8', () => {
    const l = uapi.vfio_device_detach_iommufd_pt;
    expect([l.size, l.minSize]).toEqual([12, 8]);
    expect(fieldsOf(l)).toEqual([['argsz', 0, 4], ['flags', 4, 4], ['pasid', 8, 4]]);
  });
});

describe('VFIO type1 container compat (vfio.h)', () => {
  it('ioctl numbers are _IO(";", 100 + n), all below iommufd base 0x80', () => {
    expect(uapi.VFIO_GET_API_VERSION).toBe(0x3b64);
    expect(uapi.VFIO_CHECK_EXTENSION).toBe(0x3b65);
    expect(uapi.VFIO_SET_IOMMU).toBe(0x3b66);
    expect(uapi.VFIO_IOMMU_GET_INFO).toBe(0x3b70);
    expect(uapi.VFIO_IOMMU_MAP_DMA).toBe(0x3b71);
    expect(uapi.VFIO_IOMMU_UNMAP_DMA).toBe(0x3b72);
    expect(uapi.VFIO_IOMMU_DIRTY_PAGES).toBe(0x3b75);
    expect(uapi.VFIO_IOMMU_UNMAP_DMA & 0xff).toBeLessThan(uapi.IOMMUFD_CMD_BASE);
  });

  it('extensions and flags', () => {
    expect(uapi.VFIO_API_VERSION).toBe(0);
    expect([
      uapi.VFIO_TYPE1_IOMMU, uapi.VFIO_SPAPR_TCE_IOMMU, uapi.VFIO_TYPE1v2_IOMMU, uapi.VFIO_DMA_CC_IOMMU, uapi.VFIO_EEH,
      uapi.__VFIO_RESERVED_TYPE1_NESTING_IOMMU, uapi.VFIO_SPAPR_TCE_v2_IOMMU, uapi.VFIO_NOIOMMU_IOMMU, uapi.VFIO_UNMAP_ALL,
      uapi.VFIO_UPDATE_VADDR,
    ]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect([uapi.VFIO_IOMMU_INFO_PGSIZES, uapi.VFIO_IOMMU_INFO_CAPS]).toEqual([1, 2]);
    expect([uapi.VFIO_DMA_MAP_FLAG_READ, uapi.VFIO_DMA_MAP_FLAG_WRITE, uapi.VFIO_DMA_MAP_FLAG_VADDR]).toEqual([1, 2, 4]);
    expect([uapi.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, uapi.VFIO_DMA_UNMAP_FLAG_ALL, uapi.VFIO_DMA_UNMAP_FLAG_VADDR]).toEqual([1, 2, 4]);
    expect([
      uapi.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, uapi.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, uapi.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
    ]).toEqual([1, 2, 3]);
  });

  it('struct layouts', () => {
    expect([uapi.vfio_iommu_type1_info.size, uapi.vfio_iommu_type1_info.minSize]).toEqual([24, 16]);
    expect(fieldsOf(uapi.vfio_iommu_type1_info)).toEqual([
      ['argsz', 0, 4], ['flags', 4, 4], ['iova_pgsizes', 8, 8], ['cap_offset', 16, 4], ['pad', 20, 4],
    ]);
    expect(fieldsOf(uapi.vfio_info_cap_header)).toEqual([['id', 0, 2], ['version', 2, 2], ['next', 4, 4]]);
    expect(uapi.vfio_iommu_type1_info_cap_iova_range.size).toBe(16);
    expect(uapi.vfio_iommu_type1_info_cap_iova_range.offsetOf('nr_iovas')).toBe(8);
    expect(uapi.vfio_iova_range.size).toBe(16);
    expect(fieldsOf(uapi.vfio_iommu_type1_info_cap_migration)).toEqual([
      ['id', 0, 2], ['version', 2, 2], ['next', 4, 4], ['flags', 8, 4], ['pgsize_bitmap', 16, 8], ['max_dirty_bitmap_size', 24, 8],
    ]);
    expect(uapi.vfio_iommu_type1_info_dma_avail.size).toBe(12);
    expect(uapi.vfio_iommu_type1_info_dma_avail.offsetOf('avail')).toBe(8);
    expect(fieldsOf(uapi.vfio_iommu_type1_dma_map)).toEqual([
      ['argsz', 0, 4], ['flags', 4, 4], ['vaddr', 8, 8], ['iova', 16, 8], ['size', 24, 8],
    ]);
    expect(uapi.vfio_iommu_type1_dma_map.size).toBe(32);
    expect(fieldsOf(uapi.vfio_iommu_type1_dma_unmap)).toEqual([['argsz', 0, 4], ['flags', 4, 4], ['iova', 8, 8], ['size', 16, 8]]);
    expect(uapi.vfio_bitmap.size).toBe(24);
  });
});

describe('IOMMU_TEST_CMD (iommufd_test.h)', () => {
  it('request and op numbers', () => {
    expect(uapi.IOMMU_TEST_CMD).toBe(0x3ba0);
    expect(uapi.IOMMU_TEST_OP_ADD_RESERVED).toBe(1);
    expect(uapi.IOMMU_TEST_OP_DIRTY).toBe(13);
    expect(uapi.IOMMU_TEST_OP_TRIGGER_VEVENT).toBe(17);
    expect(uapi.IOMMU_TEST_OP_PASID_CHECK_HWPT).toBe(21);
    expect(Object.keys(uapi.IOMMU_TEST_OP_MEMBER).map(Number)).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
  });

  it('union of 48 bytes at 16, last at 64, sizeof 72, min 68 — for every member', () => {
    expect(uapi.IOMMU_TEST_CMD_UNION_SIZE).toBe(48);
    expect([uapi.iommu_test_cmd.size, uapi.iommu_test_cmd.minSize, uapi.iommu_test_cmd.offsetOf('last')]).toEqual([72, 68, 64]);
    for (const [member, l] of Object.entries(IOMMU_TEST_CMD_LAYOUTS) as [string, StructLayout][]) {
      expect([member, l.size, l.minSize, l.offsetOf('last' as never)]).toEqual([member, 72, 68, 64]);
      expect(l.fieldList.slice(0, 4).map((f) => [f.name, f.offset])).toEqual([['size', 0], ['op', 4], ['id', 8], ['__reserved', 12]]);
    }
  });

  it('member offsets follow the C union (u64 members 8-aligned after a u32)', () => {
    const L = IOMMU_TEST_CMD_LAYOUTS;
    expect([L.mock_domain.offsetOf('out_stdev_id'), L.mock_domain.offsetOf('out_idev_id')]).toEqual([16, 24]);
    expect(L.dirty.offsetOf('iova')).toBe(24);
    expect(L.dirty.offsetOf('out_nr_dirty')).toBe(56);
    expect(L.access_pages.offsetOf('iova')).toBe(24);
    expect(L.access_rw.offsetOf('flags')).toBe(40);
    expect(L.check_refs.offsetOf('refs')).toBe(32);
    expect(L.trigger_iopf.offsetOf('addr')).toBe(32);
    expect(L.check_iotlb.offsetOf('check_iotlb.id')).toBe(16);
    expect(L.check_iotlb.offsetOf('iotlb')).toBe(20);
    const bytes = L.mock_domain.encode({ size: 72, op: uapi.IOMMU_TEST_OP_MOCK_DOMAIN, id: 3, out_hwpt_id: 9 });
    expect(Array.from(bytes.subarray(0, 24))).toEqual([72, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0]);
    expect(uapi.iommu_test_cmd.decode(bytes).op).toBe(2);
  });

  it('mock data types', () => {
    expect(uapi.iommu_viommu_selftest.size).toBe(24);
    expect(uapi.iommu_viommu_selftest.offsetOf('out_mmap_offset')).toBe(8);
    expect(uapi.iommu_viommu_invalidate_selftest.size).toBe(12);
    expect(uapi.iommu_hwpt_invalidate_selftest.size).toBe(8);
    expect(uapi.iommu_test_hw_info.size).toBe(8);
    expect(uapi.iommu_hwpt_selftest.size).toBe(4);
    expect(uapi.iommu_viommu_event_selftest.size).toBe(4);
    expect([uapi.IOMMU_HW_INFO_TYPE_SELFTEST, uapi.IOMMU_HWPT_DATA_SELFTEST, uapi.IOMMU_VEVENTQ_TYPE_SELFTEST]).toEqual([
      0xfeedbeef, 0xdead, 0xbeefbeef,
    ]);
    expect([uapi.MOCK_APERTURE_START, uapi.MOCK_APERTURE_LAST]).toEqual([0x1000000, 0x7fffffff]);
  });
});

describe('mmap, open and poll constants (Linux x86-64/arm64)', () => {
  it('values', () => {
    expect([uapi.PROT_READ, uapi.PROT_WRITE, uapi.PROT_EXEC]).toEqual([1, 2, 4]);
    expect([uapi.MAP_SHARED, uapi.MAP_PRIVATE, uapi.MAP_FIXED, uapi.MAP_ANONYMOUS]).toEqual([1, 2, 0x10, 0x20]);
    expect([uapi.O_RDWR, uapi.O_CLOEXEC, uapi.O_NONBLOCK]).toEqual([2, 0x80000, 0x800]);
    expect([uapi.EPOLLIN, uapi.EPOLLOUT, uapi.EPOLLRDNORM, uapi.EPOLLERR, uapi.EPOLLHUP]).toEqual([1, 4, 0x40, 8, 0x10]);
    expect(uapi.PAGE_SIZE).toBe(1 << uapi.PAGE_SHIFT);
  });
});
