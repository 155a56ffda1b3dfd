// §2.6 Device bind / attach / HW info (fixture iommufd_ioas): hwpt_attach, get_hw_info.
// (replace and alloc_hwpt live in §2.4, device_dirty_capability in §2.7, pasid_attach in §2.14.)
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IOAS_VARIANTS, ioasFixture, ioasTeardown, U, type IoasFixture } from './helpers.js';

describe.each(IOAS_VARIANTS)('fixture iommufd_ioas / $name', (v) => {
  let f: IoasFixture;
  beforeEach(async () => {
    f = await ioasFixture(v);
  });
  afterEach(() => ioasTeardown(f));

  it('hwpt_attach', () => {
    if (f.stdev) {
      const d = f.t.mockDomain(f.hwpt);
      expect(d.rc).toBe(0);
      expect(d.hwpt).toBe(f.hwpt);
    } else {
      expect(f.t.mockDomain(f.hwpt).rc).toBe(-U.ENOENT);
    }
  });

  /** _test_cmd_get_hw_info's checks on a successful call. */
  const getHwInfo = (dev: number, len: number) => {
    const r = f.t.hwInfo(dev, len);
    expect(r.rc).toBe(0);
    expect(r.out.out_data_type).toBe(U.IOMMU_HW_INFO_TYPE_SELFTEST);
    expect(r.out.data_len).toBe(U.iommu_test_hw_info.size);
    // Bytes past what the kernel reports are zeroed
    expect(r.data.subarray(U.iommu_test_hw_info.size)).toEqual(new Uint8Array(Math.max(0, len - 8)));
    if (len >= 8) expect(U.iommu_test_hw_info.get(r.data, 'test_reg')).toBe(U.IOMMU_HW_INFO_SELFTEST_REGVAL);
    if (len >= 4) expect(U.iommu_test_hw_info.get(r.data, 'flags')).toBe(0);
    return r.out;
  };

  it('get_hw_info', () => {
    if (f.device) {
      getHwInfo(f.device, 0);
      getHwInfo(f.device, 8);
      getHwInfo(f.device, 16);
      const small = getHwInfo(f.device, 4);
      expect(small.out_max_pasid_log2).toBe(0);
      if (v.pasidCapable) expect(getHwInfo(f.devicePasid, 0).out_max_pasid_log2).toBe(U.MOCK_PASID_WIDTH);
      // An explicit input type: only the driver's own type is accepted.
      const flags = U.IOMMU_HW_INFO_FLAG_INPUT_TYPE;
      expect(f.t.hwInfo(f.device, 8, { flags, inType: U.IOMMU_HW_INFO_TYPE_SELFTEST + 1 }).rc).toBe(-U.EOPNOTSUPP);
      expect(f.t.hwInfo(f.device, 8, { flags, inType: U.IOMMU_HW_INFO_TYPE_SELFTEST }).rc).toBe(0);
    } else {
      expect(f.t.hwInfo(f.device, 8).rc).toBe(-U.ENOENT);
      expect(f.t.hwInfo(f.device, 16).rc).toBe(-U.ENOENT);
    }
  });
});
