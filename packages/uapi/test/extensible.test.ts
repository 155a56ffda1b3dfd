import { describe, expect, it } from 'vitest';
import { copyStructFromUser, copyStructFromUserAt, E2BIG, EFAULT, iommu_hwpt_alloc, iommu_ioas_map, structBytesForUser } from '../src/index.js';

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

  describe('copyStructFromUserAt (a user size that may be garbage)', () => {
    // User memory: 3 pages at 0x10000, the struct at the end of the first page's half.
    const base = 0x10000n;
    const mem = new Uint8Array(3 * 4096);
    const reads: number[] = [];
    const read = (va: bigint, n: number): Uint8Array | number => {
      reads.push(n);
      const off = Number(va - base);
      return va < base || off + n > mem.length ? EFAULT : mem.slice(off, off + n);
    };
    const at = base + 0x800n;
    const put = (): void => {
      mem.fill(0);
      iommu_ioas_map.encode({ size: 48, ioas_id: 2, iova: 0x1000n }, mem, 0x800);
    };

    it('reads a short struct with a zero tail, and a longer one with a zero tail', () => {
      put();
      expect(copyStructFromUserAt(iommu_ioas_map, read, at, 24)).toMatchObject({ size: 48, ioas_id: 2, iova: 0n });
      expect(copyStructFromUserAt(iommu_ioas_map, read, at, 6000)).toMatchObject({ size: 48, ioas_id: 2, iova: 0x1000n });
    });

    it('check_zeroed_user order: a non-zero byte before the first unmapped one is E2BIG, else EFAULT', () => {
      put();
      mem[3 * 4096 - 1] = 1;
      expect(copyStructFromUserAt(iommu_ioas_map, read, at, 0xffff_ffff)).toBe(E2BIG);
      mem[3 * 4096 - 1] = 0;
      reads.length = 0;
      expect(copyStructFromUserAt(iommu_ioas_map, read, at, 0xffff_ffff)).toBe(EFAULT);
      // Page-sized reads up to the fault, never one 4 GiB buffer.
      expect(Math.max(...reads)).toBeLessThanOrEqual(4096);
      expect(reads.length).toBeLessThanOrEqual(4);
      expect(copyStructFromUserAt(iommu_ioas_map, read, base - 8n, 48)).toBe(EFAULT);
    });
  });
});
