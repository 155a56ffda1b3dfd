// Error order of IOMMU_GET_HW_INFO (device.ts, iommufd-core.md §3.2).
import { describe, expect, it } from 'vitest';
import { EFAULT, ENOENT, EOPNOTSUPP, IOMMU_GET_HW_INFO, IOMMU_HW_INFO_FLAG_INPUT_TYPE, iommu_hw_info } from '@iommufd/uapi';
import { expectErrorOrder } from '../harness.js';
import { orderEnv } from './env.js';

describe('error order: IOMMU_GET_HW_INFO', () => {
  it('flags, __reserved, device, driver type, then the data copy', () => {
    const e = orderEnv();
    const last = expectErrorOrder(e, iommu_hw_info, IOMMU_GET_HW_INFO, { flags: 3, __reserved: [0, 1, 0], dev_id: 99, in_data_type: 0x77, data_len: 8, data_uptr: 0x10n }, [
      { check: 'unknown flag', errno: EOPNOTSUPP, fix: { flags: IOMMU_HW_INFO_FLAG_INPUT_TYPE } },
      { check: '__reserved[1]', errno: EOPNOTSUPP, fix: { __reserved: [0, 0, 0] } },
      { check: 'device lookup', errno: ENOENT, fix: { dev_id: e.devIds[0]! } },
      { check: 'driver: unknown requested type', errno: EOPNOTSUPP, fix: { in_data_type: 0 } },
      { check: 'data buffer not writable', errno: EFAULT, fix: { data_uptr: e.proc.mmap(4096n) } },
    ]);
    expect(e.ioctl(iommu_hw_info, IOMMU_GET_HW_INFO, last).rc).toBe(0);
    // Without INPUT_TYPE the type field is forced to DEFAULT: a bad type is then ignored.
    expect(e.ioctl(iommu_hw_info, IOMMU_GET_HW_INFO, { ...last, flags: 0, in_data_type: 0x77 }).rc).toBe(0);
  });
});

describe('IOMMU_GET_HW_INFO data copy', () => {
  it('copies the payload, zeroes the rest of the user buffer, and faults where the memory ends', () => {
    const e = orderEnv();
    const buf = e.proc.mmap(0x2000n);
    e.proc.copyToUser(buf, new Uint8Array(0x2000).fill(0xaa));
    const r = e.ioctl(iommu_hw_info, IOMMU_GET_HW_INFO, { dev_id: e.devIds[0]!, data_len: 0x2000, data_uptr: buf });
    expect(r.rc).toBe(0);
    const len = r.out.data_len;
    const back = e.proc.copyFromUser(buf, 0x2000) as Uint8Array;
    expect(back.subarray(len).every((b) => b === 0)).toBe(true);
    // A 4 GiB buffer over 8 KiB of memory: EFAULT at the end of the mapping.
    expect(e.ioctl(iommu_hw_info, IOMMU_GET_HW_INFO, { dev_id: e.devIds[0]!, data_len: 0xffffffff, data_uptr: buf }).rc).toBe(-EFAULT);
  });
});
