// §2.12 HW_QUEUE: TEST_F(iommufd_viommu, hw_queue) (mock_viommu only; the kernel skips no_viommu).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AP, PAGE, teardown, U, viommuFixture, type ViommuFixture } from './helpers.js';

describe('fixture iommufd_viommu / mock_viommu', () => {
  let f: ViommuFixture;
  beforeEach(async () => {
    f = await viommuFixture({ viommu: true });
  });
  afterEach(() => teardown(f.t, f.buffer));

  it('hw_queue', () => {
    const t = f.t;
    const SEL = U.IOMMU_HW_QUEUE_TYPE_SELFTEST;
    const alloc = (type: number, index: number, iova: bigint, len: bigint) => t.hwQueueAlloc(f.viommu, type, index, iova, len);
    expect(alloc(U.IOMMU_HW_QUEUE_TYPE_DEFAULT, 0, AP, PAGE).rc).toBe(-U.EOPNOTSUPP);
    expect(alloc(SEL, 0, AP, 0n).rc).toBe(-U.EINVAL);
    expect(alloc(SEL, 0, (1n << 64n) - 1n, PAGE).rc).toBe(-U.EOVERFLOW);
    expect(alloc(SEL, 0, AP, PAGE).rc).toBe(-U.ENOENT);
    const m1 = t.map(f.ioas, f.buffer, PAGE);
    const m2 = t.map(f.ioas, f.buffer + PAGE, PAGE);
    expect([m1.rc, m2.rc]).toEqual([0, 0]);
    expect(alloc(SEL, 1, m1.iova, PAGE).rc).toBe(-U.EIO);
    expect(alloc(SEL, U.IOMMU_TEST_HW_QUEUE_MAX, m1.iova, PAGE).rc).toBe(-U.EINVAL);
    const q0 = alloc(SEL, 0, m1.iova, PAGE);
    expect(q0.rc).toBe(0);
    expect(alloc(SEL, 0, m1.iova, PAGE).rc).toBe(-U.EEXIST);
    // The queue's internal access owns the first page.
    expect(t.unmap(f.ioas, m1.iova, PAGE).rc).toBe(-U.EBUSY);
    expect(t.unmap(f.ioas, m2.iova, PAGE).rc).toBe(0);
    const q1 = alloc(SEL, 1, m1.iova + PAGE / 2n, PAGE / 2n);
    expect(q1.rc).toBe(0);
    expect(t.destroy(q0.id)).toBe(-U.EBUSY);
    expect(t.destroy(q1.id)).toBe(0);
    expect(t.destroy(q0.id)).toBe(0);
    expect(t.unmap(f.ioas, m1.iova, PAGE).rc).toBe(0);
  });
});
