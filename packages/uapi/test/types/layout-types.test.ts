import { describe, expectTypeOf, it } from 'vitest';
import {
  iommu_hw_info,
  iommu_ioas_map,
  IOMMU_TEST_CMD_LAYOUTS,
  iommu_test_cmd,
  type LayoutValue,
  type PageFault,
  type UserProcess,
  ioasMap,
  iommuTestCmd,
  IOMMUFD_IOCTLS,
  type IommufdIoctlName,
} from '../../src/index.js';

describe('public types', () => {
  it('layout values: u64 → bigint, others → number, alias names typed', () => {
    type Map = LayoutValue<typeof iommu_ioas_map>;
    expectTypeOf<Map['iova']>().toEqualTypeOf<bigint>();
    expectTypeOf<Map['flags']>().toEqualTypeOf<number>();
    expectTypeOf<LayoutValue<typeof iommu_hw_info>['out_data_type']>().toEqualTypeOf<number>();
    expectTypeOf<LayoutValue<typeof iommu_hw_info>['__reserved']>().toEqualTypeOf<number[]>();
    expectTypeOf<PageFault['addr']>().toEqualTypeOf<bigint>();
    // @ts-expect-error not a field of iommu_ioas_map
    const misuse = () => iommu_ioas_map.offsetOf('out_ioas_id');
    void misuse;
  });

  it('IOMMU_TEST_CMD layouts carry each member’s fields', () => {
    expectTypeOf(IOMMU_TEST_CMD_LAYOUTS.dirty.zero().out_nr_dirty).toEqualTypeOf<bigint>();
    expectTypeOf(IOMMU_TEST_CMD_LAYOUTS.mock_domain.zero().out_idev_id).toEqualTypeOf<number>();
    expectTypeOf(IOMMU_TEST_CMD_LAYOUTS.check_iotlb.zero()['check_iotlb.id']).toEqualTypeOf<number>();
    expectTypeOf(iommu_test_cmd.zero().last).toEqualTypeOf<number>();
    const p = {} as UserProcess;
    expectTypeOf(iommuTestCmd<'mock_domain'>).returns.toHaveProperty('out_hwpt_id');
    // @ts-expect-error mock_domain has no iova
    const bad = () => iommuTestCmd(p, 3, 'mock_domain', { iova: 1n });
    void bad;
  });

  it('wrappers and the table', () => {
    expectTypeOf(ioasMap).returns.toEqualTypeOf<bigint>();
    expectTypeOf(IOMMUFD_IOCTLS[0].name).toEqualTypeOf<IommufdIoctlName>();
  });
});
