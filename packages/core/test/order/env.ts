/**
 * A core with the mock driver, two devices bound (the first attached to the IOAS, so its
 * alignment is the mock page and the aperture is reserved around it), for the error-order
 * tests of test/order/*.
 */
import {
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_VIOMMU_ALLOC,
  IOMMU_VIOMMU_TYPE_SELFTEST,
  iommu_hwpt_alloc,
  iommu_ioas_alloc,
  iommu_ioas_map,
  iommu_viommu_alloc,
} from '@iommufd/uapi';
import { MOCK_APERTURE_FIRST_IOVA } from '@iommufd/mock-iommu';
import { expect } from 'vitest';
import { iommufdDeviceAttach } from '../../src/index.js';
import { bindOrThrow, RW, setup } from '../harness.js';

export { RW, U64_MAX } from '../harness.js';

export const FIXED = IOMMU_IOAS_MAP_FIXED_IOVA;
export const BASE = MOCK_APERTURE_FIRST_IOVA;

export function orderEnv(opts: { attach?: boolean } = {}) {
  const e = setup();
  const ioasAlloc = () => e.ioctl(iommu_ioas_alloc, IOMMU_IOAS_ALLOC, {}).out.out_ioas_id;
  const ioas = ioasAlloc();
  const bound = e.devs.map((d) => bindOrThrow(e.ctx, d));
  if (opts.attach !== false) expect(iommufdDeviceAttach(bound[0]!.idev, undefined, ioas)).toEqual({ ptId: 4 });
  const map = (length: bigint, iova: bigint, target = ioas, flags = RW) => {
    const r = e.ioctl(iommu_ioas_map, IOMMU_IOAS_MAP, { flags: flags | FIXED, ioas_id: target, user_va: e.proc.mmap(length), length, iova });
    expect(r.rc).toBe(0);
    return r.out.iova;
  };
  const hwpt = (flags = 0, pt = ioas) => {
    const r = e.ioctl(iommu_hwpt_alloc, IOMMU_HWPT_ALLOC, { dev_id: bound[0]!.devId, pt_id: pt, flags });
    expect(r.rc).toBe(0);
    return r.out.out_hwpt_id;
  };
  const viommu = () => {
    const parent = hwpt(IOMMU_HWPT_ALLOC_NEST_PARENT);
    const r = e.ioctl(iommu_viommu_alloc, IOMMU_VIOMMU_ALLOC, { type: IOMMU_VIOMMU_TYPE_SELFTEST, dev_id: bound[0]!.devId, hwpt_id: parent });
    expect(r.rc).toBe(0);
    return { parent, viommu: r.out.out_viommu_id };
  };
  return { ...e, ioas, ioasAlloc, bound, devIds: bound.map((b) => b.devId), map, hwpt, viommu };
}
