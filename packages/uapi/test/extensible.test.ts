import { describe, expect, it } from 'vitest';
import { copyStructFromUser, E2BIG, iommu_hwpt_alloc, iommu_ioas_map, structBytesForUser } from '../src/index.js';

describe('size extensibility helpers', () => {
  it('a short struct reads its tail as zero', () => {
    const user = iommu_hwpt_alloc.encode({ size: 24, dev_id: 1, data_type: 9, fault_id: 5 }).subarray(0, 24);
    expect(copyStructFromUser(iommu_hwpt_alloc, user)).toMatchObject({ size: 24, dev_id: 1, data_type: 0, fault_id: 0 });
  });

  it('a longer struct needs a zero tail, else E2BIG', () => {
    const user = new Uint8Array(48);
    iommu_ioas_map.encode({ size: 48, ioas_id: 2, iova: 0x1000n }, user);
    expect(copyStructFromUser(iommu_ioas_map, user)).toMatchObject({ size: 48, ioas_id: 2, iova: 0x1000n });
    user[47] = 1;
    expect(copyStructFromUser(iommu_ioas_map, user)).toBe(E2BIG);
    expect(E2BIG).toBe(7);
  });

  it('responses copy min(user size, sizeof) bytes', () => {
    expect(structBytesForUser(iommu_hwpt_alloc, { out_hwpt_id: 3 }, 24).length).toBe(24);
    expect(structBytesForUser(iommu_hwpt_alloc, { out_hwpt_id: 3 }, 64).length).toBe(48);
    expect(Array.from(structBytesForUser(iommu_hwpt_alloc, { out_hwpt_id: 3 }, 20).subarray(16, 20))).toEqual([3, 0, 0, 0]);
    expect(structBytesForUser(iommu_hwpt_alloc, {}, -1).length).toBe(0);
  });
});
