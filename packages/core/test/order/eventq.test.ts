// Error order of IOMMU_VEVENTQ_ALLOC and IOMMU_FAULT_QUEUE_ALLOC (eventq.ts, §3.2).
import { describe, expect, it } from 'vitest';
import {
  EEXIST,
  EINVAL,
  ENOENT,
  EOPNOTSUPP,
  IOMMU_FAULT_QUEUE_ALLOC,
  IOMMU_VEVENTQ_ALLOC,
  IOMMU_VEVENTQ_TYPE_SELFTEST,
  iommu_fault_alloc,
  iommu_veventq_alloc,
} from '@iommufd/uapi';
import { expectErrorOrder } from '../harness.js';
import { orderEnv } from './env.js';

describe('error order: event queues', () => {
  it('IOMMU_VEVENTQ_ALLOC: flags, __reserved, type, depth, vIOMMU, one queue per type (any non-zero type accepted)', () => {
    const e = orderEnv();
    const { viommu, parent } = e.viommu();
    expect(e.ioctl(iommu_veventq_alloc, IOMMU_VEVENTQ_ALLOC, { viommu_id: viommu, type: IOMMU_VEVENTQ_TYPE_SELFTEST, veventq_depth: 2 }).rc).toBe(0);
    const last = expectErrorOrder(e, iommu_veventq_alloc, IOMMU_VEVENTQ_ALLOC, { flags: 1, __reserved: 1, type: 0, veventq_depth: 0, viommu_id: parent }, [
      { check: 'flags≠0', errno: EOPNOTSUPP, fix: { flags: 0 } },
      { check: '__reserved', errno: EOPNOTSUPP, fix: { __reserved: 0 } },
      { check: 'type DEFAULT', errno: EOPNOTSUPP, fix: { type: IOMMU_VEVENTQ_TYPE_SELFTEST } },
      { check: 'depth 0', errno: EINVAL, fix: { veventq_depth: 1 } },
      { check: 'vIOMMU lookup (a HWPT id)', errno: ENOENT, fix: { viommu_id: viommu } },
      { check: 'same type already there', errno: EEXIST, fix: { type: 0x1234 } },
    ]);
    expect(e.ioctl(iommu_veventq_alloc, IOMMU_VEVENTQ_ALLOC, last).rc).toBe(0);
  });

  it('IOMMU_FAULT_QUEUE_ALLOC: flags only', () => {
    const e = orderEnv();
    const last = expectErrorOrder(e, iommu_fault_alloc, IOMMU_FAULT_QUEUE_ALLOC, { flags: 0x80 }, [{ check: 'flags≠0', errno: EOPNOTSUPP, fix: { flags: 0 } }]);
    expect(e.ioctl(iommu_fault_alloc, IOMMU_FAULT_QUEUE_ALLOC, last).rc).toBe(0);
  });
});
