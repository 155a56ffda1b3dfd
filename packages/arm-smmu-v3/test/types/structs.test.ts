import { describe, expectTypeOf, it, expect } from 'vitest';
import { HW_QUEUE_STRUCT_SIZE, VDEVICE_STRUCT_SIZE, VIOMMU_STRUCT_SIZE, IOMMUFD_VIOMMU, coreMember, defineDriverStruct, du32 } from '@iommufd/driver-api';
import { arm_vsmmu, tegra241_vcmdq, tegra241_vintf, tegra241_vintf_sid } from '../../src/index.js';

describe('driver struct layouts', () => {
  it('put the core struct first, so the *_STRUCT_SIZE helpers accept them', () => {
    expect(VIOMMU_STRUCT_SIZE(arm_vsmmu, 'core')).toBe(arm_vsmmu.size);
    expect(VIOMMU_STRUCT_SIZE(tegra241_vintf, 'core')).toBe(tegra241_vintf.size);
    expect(VDEVICE_STRUCT_SIZE(tegra241_vintf_sid, 'core')).toBe(tegra241_vintf_sid.size);
    expect(HW_QUEUE_STRUCT_SIZE(tegra241_vcmdq, 'core')).toBe(tegra241_vcmdq.size);
    expectTypeOf(VIOMMU_STRUCT_SIZE(arm_vsmmu, 'core')).toBeNumber();
  });

  it('keep tegra241_vintf a prefix-compatible extension of arm_vsmmu (container_of of either works)', () => {
    for (const f of ['core', 'smmu', 's2_parent', 'vmid'] as const) expect(tegra241_vintf.offsetOf(f)).toBe(arm_vsmmu.offsetOf(f));
  });

  it('reject at compile time a core member that is not first or of the wrong kind', () => {
    const bad = defineDriverStruct('bad', [du32('x'), coreMember('core', IOMMUFD_VIOMMU)]);
    // @ts-expect-error the core member must be the first field
    expect(() => VIOMMU_STRUCT_SIZE(bad, 'core')).toThrow();
    // @ts-expect-error a vIOMMU struct is not a vDEVICE struct
    expect(() => VDEVICE_STRUCT_SIZE(arm_vsmmu, 'core')).toThrow();
  });
});
