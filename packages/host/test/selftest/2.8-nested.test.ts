// §2.8 Nested HWPT + HWPT invalidate: TEST_F(iommufd_ioas, alloc_hwpt_nested).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IOAS_VARIANTS, ioasFixture, ioasTeardown, U, type IoasFixture } from './helpers.js';

const DEF = U.IOMMU_TEST_IOTLB_DEFAULT;
const INV = U.IOMMU_HWPT_INVALIDATE_DATA_SELFTEST;

/** `inv_reqs[]` entries as bytes. */
const reqs = (...entries: [number, number][]) => {
  const out = new Uint8Array(entries.length * 8);
  entries.forEach(([flags, iotlb_id], i) => U.iommu_hwpt_invalidate_selftest.encode({ flags, iotlb_id }, out, i * 8));
  return out;
};

// Device variants: the mock driver answers an unknown nested data type with EINVAL where the
// kernel mock says EOPNOTSUPP (step 7; listed in the package report).
describe.each(IOAS_VARIANTS.filter((v) => v.mockDomains === 0))('fixture iommufd_ioas / $name', (v) => {
  let f: IoasFixture;
  beforeEach(async () => {
    f = await ioasFixture(v);
  });
  afterEach(() => ioasTeardown(f));

  it('alloc_hwpt_nested', () => {
    const t = f.t;
    const data = U.iommu_hwpt_selftest.encode({ iotlb: DEF });
    const sel = { type: U.IOMMU_HWPT_DATA_SELFTEST, bytes: data };
    if (!f.device) {
      expect(t.hwptAlloc(f.device, f.ioas, 0).rc).toBe(-U.ENOENT);
      expect(t.hwptAlloc(f.device, 0, 0, sel).rc).toBe(-U.ENOENT);
      expect(t.hwptAlloc(f.device, 0, 0, sel).rc).toBe(-U.ENOENT);
      expect(t.replace(f.stdev, 0).rc).toBe(-U.ENOENT);
      expect(t.replace(f.stdev, 0).rc).toBe(-U.ENOENT);
      return;
    }
    const dev = f.device;
    // 1–5: plain negative cases and the two parents
    expect(t.hwptAlloc(f.ioas, dev, 0).rc).toBe(-U.ENOENT);
    expect(t.hwptAlloc(dev, dev, 0).rc).toBe(-U.EINVAL);
    expect(t.hwptAlloc(dev, f.ioas, U.IOMMU_HWPT_ALLOC_NEST_PARENT | U.IOMMU_HWPT_FAULT_ID_VALID).rc).toBe(-U.EOPNOTSUPP);
    const parent = t.hwptAlloc(dev, f.ioas, U.IOMMU_HWPT_ALLOC_NEST_PARENT);
    const notParent = t.hwptAlloc(dev, f.ioas, 0);
    expect([parent.rc, notParent.rc]).toEqual([0, 0]);
    // 6–11: nested negative cases
    expect(t.hwptAlloc(dev, parent.id, 0, { type: U.IOMMU_HWPT_DATA_NONE, bytes: data }).rc).toBe(-U.EINVAL);
    expect(t.hwptAlloc(dev, parent.id, 0, { type: U.IOMMU_HWPT_DATA_SELFTEST + 1, bytes: data }).rc).toBe(-U.EOPNOTSUPP);
    expect(t.hwptAlloc(dev, parent.id, 0, { ...sel, len: 3 }).rc).toBe(-U.EINVAL);
    expect(t.hwptAlloc(dev, parent.id, 0, { type: U.IOMMU_HWPT_DATA_SELFTEST, uptr: 0n, len: 4 }).rc).toBe(-U.EFAULT);
    expect(t.hwptAlloc(dev, parent.id, U.IOMMU_HWPT_ALLOC_NEST_PARENT, sel).rc).toBe(-U.EOPNOTSUPP);
    expect(t.hwptAlloc(dev, notParent.id, 0, sel).rc).toBe(-U.EINVAL);
    // 12–15: two nested HWPTs and an IOPF-capable one
    const fault = t.faultAlloc();
    expect(fault.rc).toBe(0);
    expect(fault.id).not.toBe(0);
    expect(fault.fd).not.toBe(0);
    const n0 = t.hwptAlloc(dev, parent.id, 0, sel);
    const n1 = t.hwptAlloc(dev, parent.id, 0, sel);
    expect([n0.rc, n1.rc]).toEqual([0, 0]);
    expect(t.hwptAlloc(dev, parent.id, U.IOMMU_HWPT_FAULT_ID_VALID, sel, 0xffffffff).rc).toBe(-U.ENOENT);
    const iopf = t.hwptAlloc(dev, parent.id, U.IOMMU_HWPT_FAULT_ID_VALID, sel, fault.id);
    expect(iopf.rc).toBe(0);
    // 16–18
    t.expectIotlb(n0.id, [DEF, DEF, DEF, DEF]);
    t.expectIotlb(n1.id, [DEF, DEF, DEF, DEF]);
    expect(t.hwptAlloc(dev, n0.id, 0, sel).rc).toBe(-U.EINVAL);
    expect(t.destroy(parent.id)).toBe(-U.EBUSY);
    // 19–27: invalidation framing; entry_num always comes back
    const zero1 = reqs([0, 0], [0, 0]);
    expect(t.invalidate(parent.id, INV, zero1, 8, 1)).toEqual({ rc: -U.EINVAL, num: 0 });
    expect(t.invalidate(n0.id, INV, zero1, 8, 0)).toEqual({ rc: 0, num: 0 });
    expect(t.invalidate(n0.id, U.IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID, zero1, 8, 1)).toEqual({ rc: -U.EINVAL, num: 0 });
    expect(t.invalidate(n0.id, INV, zero1, 9, 1)).toEqual({ rc: -U.EINVAL, num: 0 });
    expect(t.invalidate(n0.id, INV, zero1, 1, 1)).toEqual({ rc: -U.EINVAL, num: 0 });
    expect(t.invalidate(n0.id, INV, reqs([0xffffffff, 0]), 8, 1)).toEqual({ rc: -U.EOPNOTSUPP, num: 0 });
    expect(t.invalidate(n0.id, INV, undefined, 8, 1, 0n)).toEqual({ rc: -U.EINVAL, num: 0 });
    expect(t.invalidate(n0.id, INV, zero1, 0, 1)).toEqual({ rc: -U.EINVAL, num: 0 });
    expect(t.invalidate(n0.id, INV, reqs([0, U.MOCK_NESTED_DOMAIN_IOTLB_ID_MAX + 1]), 8, 1)).toEqual({ rc: -U.EINVAL, num: 0 });
    // 28–32: partial progress is reported and kept
    expect(t.invalidate(n0.id, INV, reqs([0, 0], [0xffffffff, 1]), 8, 2)).toEqual({ rc: -U.EOPNOTSUPP, num: 1 });
    t.expectIotlb(n0.id, [0, DEF, DEF, DEF]);
    expect(t.invalidate(n0.id, INV, reqs([0, 0], [0, U.MOCK_NESTED_DOMAIN_IOTLB_ID_MAX + 1]), 8, 2)).toEqual({ rc: -U.EINVAL, num: 1 });
    t.expectIotlb(n0.id, [0, DEF, DEF, DEF]);
    expect(t.invalidate(n0.id, INV, reqs([0, 1]), 8, 1)).toEqual({ rc: 0, num: 1 });
    t.expectIotlb(n0.id, [0, 0, DEF, DEF]);
    expect(t.invalidate(n0.id, INV, reqs([0, 2], [0, 3]), 8, 2)).toEqual({ rc: 0, num: 2 });
    t.expectIotlb(n0.id, [0, 0, 0, 0]);
    expect(t.invalidate(n1.id, INV, reqs([U.IOMMU_TEST_INVALIDATE_FLAG_ALL, 0]), 8, 1)).toEqual({ rc: 0, num: 1 });
    t.expectIotlb(n1.id, [0, 0, 0, 0]);
    // 33–37: attached nested HWPTs are busy; an IOPF round trip; unwind
    expect(t.replace(f.stdev, n0.id).rc).toBe(0);
    expect(t.destroy(n0.id)).toBe(-U.EBUSY);
    expect(t.replace(f.stdev, n1.id).rc).toBe(0);
    expect(t.destroy(n1.id)).toBe(-U.EBUSY);
    expect(t.destroy(n0.id)).toBe(0);
    expect(t.replace(f.stdev, iopf.id).rc).toBe(0);
    expect(t.destroy(iopf.id)).toBe(-U.EBUSY);
    const io = t.triggerIopf(dev, fault.fd);
    expect(io.trigger).toBe(0);
    expect(io.read).toBe(U.iommu_hwpt_pgfault.size);
    expect(io.write).toBe(U.iommu_hwpt_page_response.size);
    expect(io.fault).toMatchObject({
      flags: U.IOMMU_PGFAULT_FLAGS_PASID_VALID | U.IOMMU_PGFAULT_FLAGS_LAST_PAGE,
      dev_id: dev,
      pasid: 1,
      grpid: 2,
      perm: U.IOMMU_PGFAULT_PERM_READ | U.IOMMU_PGFAULT_PERM_WRITE,
      addr: 0xdeadbeafn,
      length: 0,
    });
    expect(t.replace(f.stdev, parent.id).rc).toBe(0);
    expect(t.destroy(n1.id)).toBe(0);
    expect(t.destroy(iopf.id)).toBe(0);
    expect(t.replace(f.stdev, f.ioas).rc).toBe(0);
    expect(t.destroy(parent.id)).toBe(0);
    expect(t.destroy(notParent.id)).toBe(0);
    expect(t.p.close(fault.fd)).toBe(0);
    expect(t.destroy(fault.id)).toBe(0);
  });
});
