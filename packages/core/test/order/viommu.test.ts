// Error order of IOMMU_VIOMMU_ALLOC (viommu.ts, iommufd-core.md §3.2 steps 1-9).
import { describe, expect, it } from 'vitest';
import { EFAULT, EINVAL, ENOENT, EOPNOTSUPP, IOMMU_VIOMMU_ALLOC, IOMMU_VIOMMU_TYPE_SELFTEST, iommu_viommu_alloc, iommu_viommu_selftest } from '@iommufd/uapi';
import { expectErrorOrder } from '../harness.js';
import { orderEnv } from './env.js';

describe('error order: IOMMU_VIOMMU_ALLOC', () => {
  it('flags, type, device, driver size, HWPT lookup, nest_parent, then viommu_init (unwound)', () => {
    const e = orderEnv();
    const plain = e.hwpt();
    const { parent } = e.viommu();
    const data = e.proc.mmap(4096n);
    const last = expectErrorOrder(e, iommu_viommu_alloc, IOMMU_VIOMMU_ALLOC, { flags: 1, type: 0, dev_id: 99, hwpt_id: 98, data_len: 64, data_uptr: 0x10n }, [
      { check: 'flags≠0', errno: EOPNOTSUPP, fix: { flags: 0 } },
      { check: 'type DEFAULT', errno: EOPNOTSUPP, fix: { type: 0x4242 } },
      { check: 'device lookup', errno: ENOENT, fix: { dev_id: e.devIds[0]! } },
      { check: 'get_viommu_size 0 for an unknown type', errno: EOPNOTSUPP, fix: { type: IOMMU_VIOMMU_TYPE_SELFTEST } },
      { check: 'HWPT_PAGING lookup (an IOAS id)', errno: ENOENT, fix: { hwpt_id: e.ioas } },
      { check: 'HWPT_PAGING lookup (still ENOENT for an IOAS)', errno: ENOENT, fix: { hwpt_id: plain } },
      { check: 'not a nest parent', errno: EINVAL, fix: { hwpt_id: parent } },
      { check: 'viommu_init: data longer than the driver struct', errno: EINVAL, fix: { data_len: iommu_viommu_selftest.size } },
      { check: 'viommu_init: data unreadable', errno: EFAULT, fix: { data_uptr: data } },
    ]);
    expect(e.ioctl(iommu_viommu_alloc, IOMMU_VIOMMU_ALLOC, last).rc).toBe(0);
  });
});
