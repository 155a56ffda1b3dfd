// Error order of IOMMU_HW_QUEUE_ALLOC (hw-queue.ts, iommufd-core.md §3.2 steps 1-8).
import { describe, expect, it } from 'vitest';
import {
  EINVAL,
  EIO,
  ENOENT,
  EOPNOTSUPP,
  EOVERFLOW,
  EPERM,
  ERANGE,
  IOMMU_HW_QUEUE_ALLOC,
  IOMMU_HW_QUEUE_TYPE_SELFTEST,
  IOMMU_IOAS_MAP_WRITEABLE,
  iommu_hw_queue_alloc,
} from '@iommufd/uapi';
import { expectErrorOrder } from '../harness.js';
import { BASE, orderEnv, U64_MAX } from './env.js';

describe('error order: IOMMU_HW_QUEUE_ALLOC', () => {
  it('flags, type, length, overflow, vIOMMU, queue size, span, coverage, permission, driver init', () => {
    const e = orderEnv();
    const { viommu, parent } = e.viommu();
    e.map(0x1000n, BASE);
    e.map(0x1000n, BASE + 0x1000n, e.ioas, IOMMU_IOAS_MAP_WRITEABLE);
    const last = expectErrorOrder(e, iommu_hw_queue_alloc, IOMMU_HW_QUEUE_ALLOC, { flags: 1, type: 0, length: 0n, nesting_parent_iova: U64_MAX, viommu_id: parent, index: 1 }, [
      { check: 'flags≠0', errno: EOPNOTSUPP, fix: { flags: 0 } },
      { check: 'type DEFAULT', errno: EOPNOTSUPP, fix: { type: 0x77 } },
      { check: 'length 0', errno: EINVAL, fix: { length: 2n } },
      { check: 'iova + length − 1 overflows', errno: EOVERFLOW, fix: { nesting_parent_iova: 0xfffn, length: U64_MAX - 0xfffn } },
      { check: 'vIOMMU lookup (a HWPT id)', errno: ENOENT, fix: { viommu_id: viommu } },
      { check: 'get_hw_queue_size 0 for an unknown type', errno: EOPNOTSUPP, fix: { type: IOMMU_HW_QUEUE_TYPE_SELFTEST } },
      { check: 'page-rounded span overflows', errno: ERANGE, fix: { nesting_parent_iova: BASE + 0x2000n, length: 0x800n } },
      { check: 'not mapped in the parent IOAS', errno: ENOENT, fix: { nesting_parent_iova: BASE + 0x1000n } },
      { check: 'area without READ', errno: EPERM, fix: { nesting_parent_iova: BASE } },
      { check: 'hw_queue_init_phys: index 1 before index 0', errno: EIO, fix: { index: 0 } },
    ]);
    expect(e.ioctl(iommu_hw_queue_alloc, IOMMU_HW_QUEUE_ALLOC, last).rc).toBe(0);
  });
});
