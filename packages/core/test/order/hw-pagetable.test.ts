// Error order of the HWPT ioctls (hw-pagetable.ts): HWPT_ALLOC on each kind of pt_id,
// HWPT_SET_DIRTY_TRACKING, HWPT_GET_DIRTY_BITMAP and HWPT_INVALIDATE (iommu-core.md §3.2).
import { describe, expect, it } from 'vitest';
import {
  EINVAL,
  ENOENT,
  ENOMEM,
  EOPNOTSUPP,
  EOVERFLOW,
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_ALLOC_PASID,
  IOMMU_HWPT_DATA_SELFTEST,
  IOMMU_HWPT_FAULT_ID_VALID,
  IOMMU_HWPT_GET_DIRTY_BITMAP,
  IOMMU_HWPT_INVALIDATE,
  IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
  IOMMU_HWPT_SET_DIRTY_TRACKING,
  IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST,
  iommu_hwpt_alloc,
  iommu_hwpt_get_dirty_bitmap,
  iommu_hwpt_invalidate,
  iommu_hwpt_selftest,
  iommu_hwpt_set_dirty_tracking,
} from '@iommufd/uapi';
import { expectErrorOrder } from '../harness.js';
import { BASE, orderEnv, U64_MAX } from './env.js';

describe('error order: HWPT ioctls', () => {
  it('IOMMU_HWPT_ALLOC on an IOAS: __reserved, data type/len, device, pt_id (EINVAL), flags, fault', () => {
    const e = orderEnv();
    const dev = e.devIds[0]!;
    const last = expectErrorOrder(e, iommu_hwpt_alloc, IOMMU_HWPT_ALLOC, { __reserved: 1, data_len: 4, dev_id: 99, pt_id: 98, flags: 1 << 6, fault_id: 97 }, [
      { check: '__reserved', errno: EOPNOTSUPP, fix: { __reserved: 0 } },
      { check: 'data_type NONE with data_len≠0', errno: EINVAL, fix: { data_len: 0 } },
      { check: 'device lookup', errno: ENOENT, fix: { dev_id: dev } },
      { check: 'pt_id lookup (ANY) → EINVAL', errno: EINVAL, fix: { pt_id: e.ioas } },
      { check: 'unknown flag', errno: EOPNOTSUPP, fix: { flags: IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_NEST_PARENT } },
      { check: 'FAULT_ID_VALID with NEST_PARENT', errno: EOPNOTSUPP, fix: { flags: IOMMU_HWPT_FAULT_ID_VALID } },
      { check: 'fault lookup after the HWPT was allocated (aborted)', errno: ENOENT, fix: { flags: 0 } },
    ]);
    expect(e.ioctl(iommu_hwpt_alloc, IOMMU_HWPT_ALLOC, last).rc).toBe(0);
  });

  it('IOMMU_HWPT_ALLOC on a HWPT_PAGING: flags, user data, nest_parent', () => {
    const e = orderEnv();
    const plain = e.hwpt();
    const parent = e.hwpt(IOMMU_HWPT_ALLOC_NEST_PARENT);
    const data = e.proc.mmap(4096n);
    e.proc.copyToUser(data, iommu_hwpt_selftest.encode({ iotlb: 1 }));
    const last = expectErrorOrder(e, iommu_hwpt_alloc, IOMMU_HWPT_ALLOC, { dev_id: e.devIds[0]!, pt_id: plain, flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING }, [
      { check: 'flags other than FAULT_ID_VALID|PASID', errno: EOPNOTSUPP, fix: { flags: IOMMU_HWPT_ALLOC_PASID } },
      { check: 'no user data', errno: EOPNOTSUPP, fix: { data_type: IOMMU_HWPT_DATA_SELFTEST, data_len: 4, data_uptr: data } },
      { check: 'parent not NEST_PARENT', errno: EINVAL, fix: { pt_id: parent, data_len: 8 } },
      { check: 'driver: data longer than its struct', errno: EINVAL, fix: { data_len: 4 } },
    ]);
    expect(e.ioctl(iommu_hwpt_alloc, IOMMU_HWPT_ALLOC, last).rc).toBe(0);
  });

  it('IOMMU_HWPT_ALLOC on a vIOMMU: flags, user data, then the fault lookup', () => {
    const e = orderEnv();
    const { viommu } = e.viommu();
    const data = e.proc.mmap(4096n);
    e.proc.copyToUser(data, iommu_hwpt_selftest.encode({ iotlb: 1 }));
    const last = expectErrorOrder(e, iommu_hwpt_alloc, IOMMU_HWPT_ALLOC, { dev_id: e.devIds[0]!, pt_id: viommu, flags: IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_NEST_PARENT, fault_id: 99 }, [
      { check: 'flags other than FAULT_ID_VALID|PASID', errno: EOPNOTSUPP, fix: { flags: IOMMU_HWPT_FAULT_ID_VALID } },
      { check: 'no user data', errno: EOPNOTSUPP, fix: { data_type: IOMMU_HWPT_DATA_SELFTEST, data_len: 4, data_uptr: data } },
      { check: 'fault lookup (nested HWPT aborted)', errno: ENOENT, fix: { flags: 0 } },
    ]);
    expect(e.ioctl(iommu_hwpt_alloc, IOMMU_HWPT_ALLOC, last).rc).toBe(0);
  });

  it('IOMMU_HWPT_SET_DIRTY_TRACKING: flags, HWPT_PAGING lookup (__reserved unchecked), dirty ops', () => {
    const e = orderEnv();
    const plain = e.hwpt();
    const dirty = e.hwpt(IOMMU_HWPT_ALLOC_DIRTY_TRACKING);
    const last = expectErrorOrder(e, iommu_hwpt_set_dirty_tracking, IOMMU_HWPT_SET_DIRTY_TRACKING, { flags: 3, hwpt_id: e.ioas, __reserved: 1 }, [
      { check: 'unknown flag', errno: EOPNOTSUPP, fix: { flags: 1 } },
      { check: 'HWPT_PAGING lookup (an IOAS id)', errno: ENOENT, fix: { hwpt_id: plain } },
      { check: 'domain without dirty ops', errno: EOPNOTSUPP, fix: { hwpt_id: dirty } },
    ]);
    expect(e.ioctl(iommu_hwpt_set_dirty_tracking, IOMMU_HWPT_SET_DIRTY_TRACKING, last).rc).toBe(0);
  });

  it('IOMMU_HWPT_GET_DIRTY_BITMAP: flags/__reserved, lookup, overflow, IOAS alignment, page_size, dirty ops, bitmap', () => {
    const e = orderEnv();
    const plain = e.hwpt();
    const dirty = e.hwpt(IOMMU_HWPT_ALLOC_DIRTY_TRACKING);
    const bitmap = e.proc.mmap(4096n);
    const last = expectErrorOrder(e, iommu_hwpt_get_dirty_bitmap, IOMMU_HWPT_GET_DIRTY_BITMAP, { flags: 2, __reserved: 1, hwpt_id: 99, iova: BASE + 1n, length: 0n, page_size: 0n, data: 0x10n }, [
      { check: 'unknown flag', errno: EOPNOTSUPP, fix: { flags: 0 } },
      { check: '__reserved', errno: EOPNOTSUPP, fix: { __reserved: 0 } },
      { check: 'HWPT_PAGING lookup', errno: ENOENT, fix: { hwpt_id: plain } },
      { check: 'length 0 at iova≠0 wraps', errno: EOVERFLOW, fix: { length: 0x1fffn } },
      { check: 'iova not aligned to the IOAS alignment', errno: EINVAL, fix: { iova: BASE } },
      { check: 'end not aligned to the IOAS alignment', errno: EINVAL, fix: { length: 0x2000n } },
      { check: 'page_size 0', errno: EINVAL, fix: { page_size: 0x2000n, iova: BASE + 0x1000n } },
      { check: 'iova not aligned to page_size', errno: EINVAL, fix: { iova: BASE } },
      { check: 'domain without dirty ops', errno: EOPNOTSUPP, fix: { hwpt_id: dirty } },
      { check: 'the bitmap page cannot be pinned', errno: ENOMEM, fix: { data: bitmap } },
    ]);
    expect(e.ioctl(iommu_hwpt_get_dirty_bitmap, IOMMU_HWPT_GET_DIRTY_BITMAP, last).rc).toBe(0);
    // A 2^62-byte range only touches the words that get bits.
    expect(e.ioctl(iommu_hwpt_get_dirty_bitmap, IOMMU_HWPT_GET_DIRTY_BITMAP, { ...last, iova: 0n, length: 1n << 62n }).rc).toBe(0);
    expect(e.ioctl(iommu_hwpt_get_dirty_bitmap, IOMMU_HWPT_GET_DIRTY_BITMAP, { ...last, iova: 0n, length: 0n }).rc).toBe(0);
    expect(e.ioctl(iommu_hwpt_get_dirty_bitmap, IOMMU_HWPT_GET_DIRTY_BITMAP, { ...last, iova: U64_MAX - 0x1fffn, length: 0x4000n }).rc).toBe(-EOVERFLOW);
  });

  it('IOMMU_HWPT_INVALIDATE: __reserved, array sanity, lookup (ANY), type, driver — entry_num always written', () => {
    const e = orderEnv();
    const { viommu } = e.viommu();
    const plain = e.hwpt();
    const reqs = e.proc.mmap(4096n);
    const steps = [
      { check: '__reserved', errno: EOPNOTSUPP, fix: { __reserved: 0 } },
      { check: 'entry_num≠0 with entry_len 0', errno: EINVAL, fix: { entry_len: 12 } },
      { check: 'entry_num≠0 with data_uptr 0', errno: EINVAL, fix: { data_uptr: reqs } },
      { check: 'lookup', errno: ENOENT, fix: { hwpt_id: plain } },
      { check: 'a HWPT_PAGING', errno: EINVAL, fix: { hwpt_id: viommu } },
      { check: 'driver: unknown data type', errno: EINVAL, fix: { data_type: IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST } },
    ];
    let v: Parameters<typeof iommu_hwpt_invalidate.encode>[0] = { __reserved: 1, entry_num: 1, entry_len: 0, data_uptr: 0n, hwpt_id: 99, data_type: IOMMU_HWPT_INVALIDATE_DATA_SELFTEST };
    for (const step of steps) {
      const r = e.ioctl(iommu_hwpt_invalidate, IOMMU_HWPT_INVALIDATE, v);
      expect({ check: step.check, rc: r.rc, entry_num: r.out.entry_num }).toEqual({ check: step.check, rc: -step.errno, entry_num: 0 });
      v = { ...v, ...step.fix };
    }
  });
});
