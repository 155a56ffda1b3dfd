import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  coreMember,
  defineDriverStruct,
  dptr,
  pointee,
  du32,
  du64,
  darray,
  HW_QUEUE_STRUCT_SIZE,
  IOMMUFD_HW_QUEUE,
  IOMMUFD_VDEVICE,
  IOMMUFD_VIOMMU,
  VDEVICE_STRUCT_SIZE,
  VIOMMU_STRUCT_SIZE,
  type CoreStructSizes,
  type IommuDomain,
} from '../../src/index.js';

// Accepted: the core member is the first field and of the right core type.
const goodViommu = defineDriverStruct('good_viommu', [
  coreMember('core', IOMMUFD_VIOMMU),
  dptr('s2_parent', pointee<IommuDomain>()),
  du32('vmid'),
]);
const goodVdevice = defineDriverStruct('good_vdevice', [coreMember('core', IOMMUFD_VDEVICE), du32('sid')]);
const goodHwQueue = defineDriverStruct('good_hw_queue', [coreMember('core', IOMMUFD_HW_QUEUE), du64('cons')]);

// Rejected: the core member is not at offset 0.
const coreNotFirst = defineDriverStruct('core_not_first', [du32('vmid'), coreMember('core', IOMMUFD_VIOMMU)]);
// Rejected: the member at offset 0 is a core struct of the wrong type.
const wrongCoreType = defineDriverStruct('wrong_core_type', [coreMember('core', IOMMUFD_VDEVICE), du32('vmid')]);
// Rejected: no core struct at all.
const noCore = defineDriverStruct('no_core', [du64('core')]);

describe('*_STRUCT_SIZE type-level checks', () => {
  it('accept a layout whose named core member is first and of the core type', () => {
    // The byte size is computed by the type checker: 64 + ptr 8 + u32 4 + tail padding 4.
    expectTypeOf<VIOMMU_STRUCT_SIZE<typeof goodViommu, 'core'>>().toEqualTypeOf<80>();
    expectTypeOf<VDEVICE_STRUCT_SIZE<typeof goodVdevice, 'core'>>().toEqualTypeOf<48>();
    expectTypeOf<HW_QUEUE_STRUCT_SIZE<typeof goodHwQueue, 'core'>>().toEqualTypeOf<64>();
    expectTypeOf(VIOMMU_STRUCT_SIZE(goodViommu, 'core')).toEqualTypeOf<80>();
    expect(VIOMMU_STRUCT_SIZE(goodViommu, 'core')).toBe(IOMMUFD_VIOMMU.size + 16);
    expect(VDEVICE_STRUCT_SIZE(goodVdevice, 'core')).toBe(IOMMUFD_VDEVICE.size + 8);
    expect(HW_QUEUE_STRUCT_SIZE(goodHwQueue, 'core')).toBe(IOMMUFD_HW_QUEUE.size + 8);
  });

  it('reject a core member that is not at offset 0', () => {
    // @ts-expect-error the core member must be the first field
    type T = VIOMMU_STRUCT_SIZE<typeof coreNotFirst, 'core'>;
    // @ts-expect-error the core member must be the first field
    expect(() => VIOMMU_STRUCT_SIZE(coreNotFirst, 'core')).toThrow(/first field/);
  });

  it('reject a member of the wrong core type', () => {
    // @ts-expect-error struct iommufd_vdevice is not struct iommufd_viommu
    type T = VIOMMU_STRUCT_SIZE<typeof wrongCoreType, 'core'>;
    // @ts-expect-error struct iommufd_vdevice is not struct iommufd_viommu
    expect(() => VIOMMU_STRUCT_SIZE(wrongCoreType, 'core')).toThrow(/struct iommufd_viommu/);
    // @ts-expect-error struct iommufd_viommu is not struct iommufd_hw_queue
    expect(() => HW_QUEUE_STRUCT_SIZE(goodViommu, 'core')).toThrow(/struct iommufd_hw_queue/);
  });

  it('reject a layout without a core struct, or the wrong member name', () => {
    // @ts-expect-error a u64 is not a core struct
    expect(() => VDEVICE_STRUCT_SIZE(noCore, 'core')).toThrow(/struct iommufd_vdevice/);
    // @ts-expect-error the first field is named core, not base
    expect(() => VIOMMU_STRUCT_SIZE(goodViommu, 'base')).toThrow(/first field/);
  });
});

describe('type-level sizeof', () => {
  it('matches the runtime layout for alignment, arrays and tail padding', () => {
    const mixed = defineDriverStruct('mixed', [
      coreMember('core', IOMMUFD_HW_QUEUE),
      du32('a'),
      darray('b', 'u16', 3),
      du64('c'),
      darray('d', 'u32', 3),
    ]);
    // 56 + 4 + 6 (pad 6) + 8 + 12 → 92, rounded to 96.
    expectTypeOf<HW_QUEUE_STRUCT_SIZE<typeof mixed, 'core'>>().toEqualTypeOf<96>();
    expect(HW_QUEUE_STRUCT_SIZE(mixed, 'core')).toBe(96);
    expectTypeOf<CoreStructSizes['iommufd_viommu']>().toEqualTypeOf<64>();
    expect([IOMMUFD_VIOMMU.size, IOMMUFD_VDEVICE.size, IOMMUFD_HW_QUEUE.size]).toEqual([64, 40, 56]);
  });
});

describe('driver struct layouts', () => {
  it('lay fields out with C alignment after the core struct', () => {
    expect(IOMMUFD_VIOMMU.size).toBe(64);
    expect(IOMMUFD_VDEVICE.size).toBe(40);
    expect(IOMMUFD_HW_QUEUE.size).toBe(56);
    expect(goodViommu.offsetOf('core')).toBe(0);
    expect(goodViommu.offsetOf('s2_parent')).toBe(64);
    expect(goodViommu.offsetOf('vmid')).toBe(72);
    expect(goodViommu.size).toBe(80);
    expect(coreNotFirst.offsetOf('core')).toBe(8);
  });
});
