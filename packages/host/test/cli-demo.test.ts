import { describe, expect, it } from 'vitest';
import { cli } from './cli-helpers.js';

describe('iommufd-sim demo on every preset', () => {
  for (const platform of ['mock', 'arm-smmuv3', 'tegra241-cmdqv', 'intel-vtd']) {
    it(`--platform ${platform}: progress, a summary with nothing pinned after close, exit 0`, async () => {
      const r = await cli('demo', '--platform', platform, '--devices', '2');
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(r.out).toMatch(new RegExp(`» host: platform ${platform}, 2 VFIO device\\(s\\)`));
      expect(r.out).toMatch(/DMA \/dev\/vfio\/devices\/vfio0 read {2}IOVA 0x(100)?1000: "hello from guest RAM"/);
      expect(r.out).toMatch(/DMA \/dev\/vfio\/devices\/vfio1 write IOVA 0x(100)?2000: guest RAM now reads "written by the device"/);
      expect(r.out).toMatch(/: blocked \(\S+\)/);
      expect(r.out).toMatch(/ {2}platform {10}\S+/);
      expect(r.out).toMatch(/pinned pages after close: 0\ndemo: OK\n$/);
    });
  }

  it('on the hardware presets the nest parent and (SMMU) vIOMMU + vDEVICE appear in the summary', async () => {
    const smmu = await cli('demo', '--platform', 'arm-smmuv3', '--quiet');
    expect(smmu.out).not.toMatch(/^»/m);
    expect(smmu.out).toMatch(/HWPT_PAGING  users 3\n +6  VIOMMU {7}users 2\n/);
    expect(smmu.out).toMatch(/ 7  VDEVICE {6}users 1/);
    const vtd = await cli('demo', '--platform', 'intel-vtd');
    expect(vtd.out).toMatch(/IOMMU_GET_HW_INFO\(DEVICE 2\): type INTEL_VTD/);
  });
});
