import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { runPresetDemo } from '../src/cli/preset-demo.js';
import { createHost, DemoError } from '../src/index.js';
import { cli, tmp } from './cli-helpers.js';

/** The steps of a demo summary (between `steps:` and `objects before close:`), checked numbered 1, 2, … */
function summarySteps(out: string): string[] {
  const lines = out.split('\n');
  const steps = lines.slice(lines.indexOf('  steps:') + 1, lines.indexOf('  objects before close:'));
  steps.forEach((line, i) => expect(line.startsWith(`${String(i + 1).padStart(5)}. `)).toBe(true));
  return steps.map((line) => line.replace(/^ +\d+\. /, ''));
}

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
  for (const platform of ['arm-smmuv3', 'tegra241-cmdqv', 'intel-vtd']) {
    it(`--platform ${platform} --devices 1: the VMM run needs only one device`, async () => {
      const r = await cli('demo', '--platform', platform, '--devices', '1', '--quiet');
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/teardown: .*context released with no object left; 0 page\(s\) pinned\n/);
    });
  }
});

/** What each hardware preset's demo (`--devices 2`) must state, step by step. */
const PRESET_STEPS: Readonly<Record<string, { readonly what: string; readonly steps: readonly string[] }>> = {
  'arm-smmuv3': {
    what: 'guest STE → CD → stage 1, a stale TLB entry until the TLBI through the vIOMMU, an F_TRANSLATION vEVENT with the vSID',
    steps: [
      'guest RAM: 2 MiB memfd at VMM VA 0x10000000000, mapped in IOAS 1 at IOVA 0x0..0x1fffff',
      'IOMMU_GET_HW_INFO: DEVICE 2: type ARM_SMMUV3, max PASID log2 20',
      'DMA on the IOAS: /dev/vfio/devices/vfio0 read "hello from guest RAM" at IOVA 0x1000; the last device wrote IOVA 0x2000; IOVA 0x200000 (past guest RAM) blocked',
      'nest parent: HWPT 5 (stage 2 over IOAS 1); /dev/vfio/devices/vfio0 replaced onto it',
      'vIOMMU: vIOMMU 6 (ARM_SMMUV3) on nest parent HWPT 5',
      'vDEVICEs: vDEVICE 7: vSID 0x31 → DEVICE 2; vDEVICE 8: vSID 0x32 → DEVICE 4',
      'vEVENTQ: vEVENTQ 9 (ARM_SMMUV3, depth 8) on fd 7',
      'guest tables: STE (S1_TRANS) → CD table at IPA 0x13000 (CD 0: ASID 3, TTB0 0x10000) → stage-1 tables; GVA 0x40000000 → IPA 0x11000',
      'nested HWPT: HWPT 10 from the guest STE 0x1300b 0x0 on vIOMMU 6; /dev/vfio/devices/vfio0 attached',
      'DMA at a guest VA: write GVA 0x40000100 landed at IPA 0x11100 ("DMA at a guest VA"); read GVA 0x40000000 = "guest page A"',
      'stale translation: guest remapped GVA 0x40000000 → "guest page B" at IPA 0x12000 without invalidating; DMA still reads "guest page A" (67 75 65 73 74 20 70 61 67 65 20 41)',
      'IOMMU_HWPT_INVALIDATE: TLBI_NH_VA (ASID 3, VA 0x40000000) on vIOMMU 6: 1 command(s) handled; DMA now reads "guest page B" (67 75 65 73 74 20 70 61 67 65 20 42)',
      'vEVENT: /dev/vfio/devices/vfio0 read GVA 0x40100000 (unmapped by the guest): F_TRANSLATION; read(vEVENTQ fd 7) = 40 bytes: sequence 0, F_TRANSLATION (0x10), vSID 0x31, RnW 1, input address 0x40100000; record 10 00 00 00 31 00 00 00 00 00 00 00 08 02 00 00 00 00 10 40 00 00 00 00 00 00 00 00 00 00 00 00',
      'teardown: destroyed nested HWPT 10, vDEVICE 7, vDEVICE 8, vEVENTQ 9, vIOMMU 6, the nest parent; closed every fd; context released with no object left; 0 page(s) pinned',
    ],
  },
  'tegra241-cmdqv': {
    what: 'the SMMUv3 run plus the guest\'s own TLBI + CMD_SYNC through VCMDQ 0 of the mmapped VINTF page',
    steps: [
      'guest RAM: 2 MiB memfd at VMM VA 0x10000000000, mapped in IOAS 1 at IOVA 0x0..0x1fffff',
      'IOMMU_GET_HW_INFO: DEVICE 2: type ARM_SMMUV3, max PASID log2 20',
      'DMA on the IOAS: /dev/vfio/devices/vfio0 read "hello from guest RAM" at IOVA 0x1000; the last device wrote IOVA 0x2000; IOVA 0x200000 (past guest RAM) blocked',
      'nest parent: HWPT 5 (stage 2 over IOAS 1); /dev/vfio/devices/vfio0 replaced onto it',
      'vIOMMU: vIOMMU 6 (TEGRA241_CMDQV) on nest parent HWPT 5',
      'vDEVICEs: vDEVICE 7: vSID 0x31 → DEVICE 2; vDEVICE 8: vSID 0x32 → DEVICE 4',
      'vEVENTQ: vEVENTQ 9 (ARM_SMMUV3, depth 8) on fd 7',
      'guest tables: STE (S1_TRANS) → CD table at IPA 0x13000 (CD 0: ASID 3, TTB0 0x10000) → stage-1 tables; GVA 0x40000000 → IPA 0x11000',
      'nested HWPT: HWPT 10 from the guest STE 0x1300b 0x0 on vIOMMU 6; /dev/vfio/devices/vfio0 attached',
      'DMA at a guest VA: write GVA 0x40000100 landed at IPA 0x11100 ("DMA at a guest VA"); read GVA 0x40000000 = "guest page A"',
      'stale translation: guest remapped GVA 0x40000000 → "guest page B" at IPA 0x12000 without invalidating; DMA still reads "guest page A" (67 75 65 73 74 20 70 61 67 65 20 41)',
      'IOMMU_HWPT_INVALIDATE: TLBI_NH_VA (ASID 3, VA 0x40000000) on vIOMMU 6: 1 command(s) handled; DMA now reads "guest page B" (67 75 65 73 74 20 70 61 67 65 20 42)',
      'stale translation (Tegra): guest remapped GVA 0x40000000 → "guest page C" at IPA 0x18000 without invalidating; DMA still reads "guest page B" (67 75 65 73 74 20 70 61 67 65 20 42)',
      'guest VCMDQ: VINTF page mmapped at VMM VA 0x10000204000 (64 KiB), HW queue 11 = VCMDQ 0 at IPA 0x17000; guest wrote TLBI_NH_VA + CMD_SYNC, PROD = 2, CONS = 2; DMA now reads "guest page C" (67 75 65 73 74 20 70 61 67 65 20 43)',
      'vEVENT: /dev/vfio/devices/vfio0 read GVA 0x40100000 (unmapped by the guest): F_TRANSLATION; read(vEVENTQ fd 7) = 40 bytes: sequence 0, F_TRANSLATION (0x10), vSID 0x31, RnW 1, input address 0x40100000; record 10 00 00 00 31 00 00 00 00 00 00 00 08 02 00 00 00 00 10 40 00 00 00 00 00 00 00 00 00 00 00 00',
      'teardown: destroyed HW queue 11, nested HWPT 10, vDEVICE 7, vDEVICE 8, vEVENTQ 9, vIOMMU 6, the nest parent; closed every fd; context released with no object left; 0 page(s) pinned',
    ],
  },
  'intel-vtd': {
    what: 'iommu_hwpt_vtd_s1 over x86 first-stage tables, a stale IOTLB entry until the descriptor invalidation, a page request on the FAULT fd; then the experimental vIOMMU: guest QI descriptors rewritten with the host DID and RID, a recorded fault as a vEVENT with the guest RID',
    steps: [
      'guest RAM: 2 MiB memfd at VMM VA 0x10000000000, mapped in IOAS 1 at IOVA 0x0..0x1fffff',
      'IOMMU_GET_HW_INFO: DEVICE 2: type INTEL_VTD, max PASID log2 20',
      'DMA on the IOAS: /dev/vfio/devices/vfio0 read "hello from guest RAM" at IOVA 0x1000; the last device wrote IOVA 0x2000; IOVA 0x200000 (past guest RAM) blocked',
      'nest parent: HWPT 5 (stage 2 over IOAS 1); /dev/vfio/devices/vfio0 replaced onto it',
      'FAULT queue: FAULT 6 on fd 7 (VT-d has no vIOMMU in Linux 6.17; its ATS+PRI functions report translation faults as page requests)',
      'guest tables: x86 first-stage PML4 at GPA 0x10000 (4-level, 48-bit); GVA 0x40000000 → GPA 0x11000',
      'nested HWPT: HWPT 7 from iommu_hwpt_vtd_s1 { pgtbl_addr 0x10000, addr_width 48 } on nest parent HWPT 5, faults to FAULT 6; /dev/vfio/devices/vfio0 attached',
      'DMA at a guest VA: write GVA 0x40000100 landed at IPA 0x11100 ("DMA at a guest VA"); read GVA 0x40000000 = "guest page A"',
      'stale translation: guest remapped GVA 0x40000000 → "guest page B" at IPA 0x12000 without invalidating; DMA still reads "guest page A" (67 75 65 73 74 20 70 61 67 65 20 41)',
      'IOMMU_HWPT_INVALIDATE: iommu_hwpt_vtd_s1_invalidate { addr 0x40000000, npages 1 } on HWPT 7: 1 descriptor(s) handled; DMA now reads "guest page B" (67 75 65 73 74 20 70 61 67 65 20 42)',
      'I/O page fault: /dev/vfio/devices/vfio0 read GVA 0x40100000 (unmapped by the guest): SM_FS_NOT_PRESENT; read(FAULT fd 7) = 40 bytes: DEVICE 2, addr 0x40100000, perm 0x1, grpid 1, cookie 1; record 02 00 00 00 02 00 00 00 00 00 00 00 01 00 00 00 01 00 00 00 00 00 00 00 00 00 10 40 00 00 00 00 00 00 00 00 01 00 00 00; guest mapped GPA 0x16000, 1 response(s) written, retried DMA reads "guest page D"',
      'beyond Linux 6.17: the experimental VT-d vIOMMU: vIOMMU 8 (INTEL_VTD_EXP, type 0x8086, not in Linux) on nest parent HWPT 5: the host resolves guest DIDs and RIDs and forwards recorded faults',
      'vDEVICEs: vDEVICE 9: guest RID 0x18 (00:03.0) → DEVICE 2; vDEVICE 10: guest RID 0x20 (00:04.0) → DEVICE 4',
      'vEVENTQ: vEVENTQ 11 (INTEL_VTD_EXP, depth 8) on fd 8',
      'guest tables (vIOMMU): guest domain 5: x86 first-stage PML4 at GPA 0x17000; GVA 0x40000000 → GPA 0x18000',
      'nested HWPT (vIOMMU): HWPT 12 from iommu_hwpt_vtd_s1_vdid { pgtbl_addr 0x17000, addr_width 48, guest_did 5 } on vIOMMU 8; /dev/vfio/devices/vfio0 replaced from HWPT 7 onto it',
      'DMA through the vIOMMU: read GVA 0x40000000 through HWPT 12 = "guest page E"',
      'stale translation (vIOMMU): guest remapped GVA 0x40000000 → "guest page F" at IPA 0x19000 without invalidating; DMA still reads "guest page E" (67 75 65 73 74 20 70 61 67 65 20 45)',
      'IOMMU_HWPT_INVALIDATE (vIOMMU): guest PIOTLB (DID 5, PASID 0, G 3, ADDR 0x40000000, AM 0) 0x50036 0x40000000 + dev-TLB (SID 0x18, ADDR 0x40000000) 0x1800000003 0x40000000 on vIOMMU 8: 2 descriptor(s) handled, issued rewritten with the host DID and RID as PIOTLB (DID 3, PASID 0, G 3, ADDR 0x40000000, AM 0) 0x30036 0x40000000 + dev-TLB (SID 0x8, ADDR 0x40000000) 0x800000003 0x40000000; DMA now reads "guest page F" (67 75 65 73 74 20 70 61 67 65 20 46)',
      'vEVENT: /dev/vfio/devices/vfio0 untranslated read of GVA 0x40100000 (unmapped by the guest; an ATS translation request would have become a page request): SM_FS_NOT_PRESENT, recorded in a fault recording register; read(vEVENTQ fd 8) = 32 bytes: sequence 0, virt_rid 0x18, reason 0x71 (SM_FS_NOT_PRESENT), addr 0x40100000, read; record 00 00 10 40 00 00 00 00 18 00 00 00 00 00 00 00 71 00 00 00 02 00 00 00',
      'teardown: destroyed nested HWPT 12, nested HWPT 7, FAULT 6, vDEVICE 9, vDEVICE 10, vEVENTQ 11, vIOMMU 8, the nest parent; closed every fd; context released with no object left; 0 page(s) pinned',
    ],
  },
};

describe('iommufd-sim demo on the hardware presets: the summary states every step with its exact values', () => {
  for (const [platform, { what, steps }] of Object.entries(PRESET_STEPS)) {
    it(`${platform}: ${what}`, async () => {
      const r = await cli('demo', '--platform', platform, '--quiet');
      expect(r).toMatchObject({ code: 0, err: '' });
      expect(r.out).not.toMatch(/^»/m);
      expect(summarySteps(r.out)).toEqual(steps);
    });
  }
});
describe('iommufd-sim demo --trace on a hardware preset', () => {
  for (const platform of ['tegra241-cmdqv', 'intel-vtd']) {
    it(`${platform}: the recorded VMM run replays event for event (exit 0)`, async () => {
      const file = join(tmp(), `${platform}.json`);
      expect((await cli('demo', '--platform', platform, '--quiet', '--trace', file)).code).toBe(0);
      const replay = await cli('trace', '--replay', file);
      expect(replay).toMatchObject({ code: 0, err: '' });
      expect(replay.out).toMatch(/replay matches \(\d+ events\)/);
    });
  }
});

describe('a failing step of the VMM run', () => {
  it('is a DemoError naming the step and the errno (here the vIOMMU driver init fails with ENOMEM)', async () => {
    const host = await createHost({ platform: 'arm-smmuv3', devices: 1 });
    host.setFaultInjector({ shouldFail: (site) => site === 'driver-init' });
    const log: string[] = [];
    expect(() => runPresetDemo(host, (line) => log.push(line))).toThrow(new DemoError('vIOMMU: IOMMU_VIOMMU_ALLOC failed: ENOMEM (12)'));
    expect(log.at(-1)).toBe('nest parent: HWPT 4 (stage 2 over IOAS 1); /dev/vfio/devices/vfio0 replaced onto it');
  });
});
