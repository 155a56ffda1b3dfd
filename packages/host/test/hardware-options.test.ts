/**
 * createHost's `hardware` option: it types per preset, is refused with a message naming the
 * field and the allowed range, and what it sets reaches user space only through the driver's
 * probe of the ID / capability registers (GET_HW_INFO, the LVCMDQs a VINTF hands out).
 */
import * as U from '@iommufd/uapi';
import { SMMU_IDR0, SMMU_IDR1, SMMU_IDR3, SMMU_IDR5, VtdCap, VtdEcap } from '@iommufd/hw-model';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { createHost, HostError, type HostOptions, type PlatformName, type SmmuHardwareOptions } from '../src/index.js';
import { bootVmm } from './platforms/vmm.js';

const idrs = (info: U.HwInfo) => U.iommu_hw_info_arm_smmuv3.decode(info.data).idr.map((v) => [BigInt(v)]);
const vtdRegs = (info: U.HwInfo) => U.iommu_hw_info_vtd.decode(info.data);

describe('hardware option: types', () => {
  it('takes only the preset’s own sections', () => {
    expectTypeOf<HostOptions<'tegra241-cmdqv'>['hardware']>().toEqualTypeOf<
      { readonly smmu?: SmmuHardwareOptions; readonly devices?: { readonly ats?: boolean; readonly pri?: boolean; readonly pasidBits?: number }; readonly cmdqv?: { readonly vcmdqsLog2?: number; readonly vintfsLog2?: number; readonly sidsPerVintfLog2?: number } } | undefined
    >();
    expectTypeOf<HostOptions<'mock'>['hardware']>().toEqualTypeOf<undefined>();
    const ok = (o: HostOptions<'arm-smmuv3'>) => o;
    ok({ platform: 'arm-smmuv3', hardware: { smmu: { ril: false, asidBits: 8 }, devices: { pasidBits: 0 } } });
    // The platform literal picks the sections: a VT-d capability on an SMMU preset, a CMDQV
    // size on plain SMMUv3 and any hardware on the selftest mock do not type-check.
    const rejectedAtCompileTime = () => [
      // @ts-expect-error vtd is not a section of arm-smmuv3
      createHost({ platform: 'arm-smmuv3', hardware: { vtd: { nested: false } } }),
      // @ts-expect-error cmdqv needs the tegra241-cmdqv preset
      createHost({ platform: 'arm-smmuv3', hardware: { cmdqv: { vcmdqsLog2: 7 } } }),
      // @ts-expect-error smmu is not a section of intel-vtd
      createHost({ platform: 'intel-vtd', hardware: { smmu: { ril: false } } }),
      // @ts-expect-error the mock has no hardware options
      createHost({ platform: 'mock', hardware: { devices: { ats: false } } }),
      // @ts-expect-error asidBits is 8 or 16
      createHost({ platform: 'arm-smmuv3', hardware: { smmu: { asidBits: 12 } } }),
      // @ts-expect-error addressWidth is 39, 48 or 57
      createHost({ platform: 'intel-vtd', hardware: { vtd: { addressWidth: 52 } } }),
    ];
    expect(typeof rejectedAtCompileTime).toBe('function');
    // A platform only known at run time takes any preset's sections (checked at run time).
    const wide = (platform: PlatformName): HostOptions => ({ platform, hardware: { vtd: { nd: 4 } } });
    expect(wide('intel-vtd').hardware).toEqual({ vtd: { nd: 4 } });
  });
});

describe('hardware option: run-time checks', () => {
  const refused = async (options: HostOptions, message: string) => {
    const e: unknown = await createHost(options).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(HostError);
    expect((e as HostError).code).toBe('BAD_OPTION');
    expect((e as HostError).message).toBe(message);
  };

  it('names the field, the value and what is allowed', async () => {
    await refused({ platform: 'arm-smmuv3', hardware: { vtd: { nested: false } } }, "hardware.vtd is not an option of platform 'arm-smmuv3'; it takes 'smmu', 'devices'");
    await refused({ platform: 'mock', hardware: {} }, "platform 'mock' has no hardware options (the selftest mock's parameters are the kernel's); remove 'hardware'");
    await refused({ platform: 'intel-vtd', hardware: 7 as never }, "hardware must be an object with some of 'vtd', 'devices', got 7");
    await refused({ platform: 'intel-vtd', hardware: { vtd: [] as never } }, 'hardware.vtd must be an object, got []');
    await refused(
      { platform: 'tegra241-cmdqv', hardware: { cmdqv: { vcmdqs: 64 } as never } },
      "hardware.cmdqv.vcmdqs is not an option; hardware.cmdqv takes 'vcmdqsLog2', 'vintfsLog2', 'sidsPerVintfLog2'",
    );
    await refused({ platform: 'tegra241-cmdqv', hardware: { cmdqv: { vcmdqsLog2: 8 } } }, 'hardware.cmdqv.vcmdqsLog2 must be an integer in [0, 7], got 8');
    await refused({ platform: 'tegra241-cmdqv', hardware: { cmdqv: { sidsPerVintfLog2: 1.5 } } }, 'hardware.cmdqv.sidsPerVintfLog2 must be an integer in [0, 4], got 1.5');
    await refused(
      { platform: 'tegra241-cmdqv', hardware: { cmdqv: { vcmdqsLog2: 2, vintfsLog2: 3 } } },
      'hardware.cmdqv.vintfsLog2 (3) must not exceed vcmdqsLog2 (2): every VINTF needs at least one VCMDQ',
    );
    await refused({ platform: 'arm-smmuv3', hardware: { smmu: { ril: 1 as never } } }, 'hardware.smmu.ril must be true or false, got 1');
    await refused({ platform: 'arm-smmuv3', hardware: { smmu: { vmidBits: 12 as never } } }, 'hardware.smmu.vmidBits must be one of 8, 16, got 12');
    await refused(
      { platform: 'arm-smmuv3', hardware: { smmu: { cmdqLog2: 6 } } },
      "hardware.smmu.cmdqLog2 must be an integer in [7, 19], got 6 (Linux's arm-smmu-v3 refuses to probe an SMMU whose command queue holds no more than one 64-command batch)",
    );
    await refused({ platform: 'arm-smmuv3', hardware: { smmu: { stage1: false, stage2: false } } }, 'hardware.smmu: an SMMU needs stage 1 or stage 2; set stage1 or stage2 to true');
    await refused(
      { platform: 'arm-smmuv3', devices: 40, hardware: { smmu: { sidBits: 8 } } },
      'hardware.smmu.sidBits 8 cannot hold the StreamID 0x148 of device 39 (StreamID = requester ID, 31 functions per bus); use sidBits ≥ 9 or fewer devices',
    );
    await refused({ platform: 'intel-vtd', hardware: { devices: { pasidBits: 21 } } }, 'hardware.devices.pasidBits must be an integer in [0, 20], got 21');
    await refused({ platform: 'intel-vtd', hardware: { vtd: { addressWidth: 52 as never } } }, 'hardware.vtd.addressWidth must be one of 39, 48, 57, got 52');
    await refused({ platform: 'mock', devices: 7937 }, 'devices must be an integer in [0, 7936] (31 per PCI bus, buses 0–255), got 7937');
    // The same StreamIDs fit 8 bits while every function is on bus 0.
    expect((await createHost({ platform: 'arm-smmuv3', devices: 31, hardware: { smmu: { sidBits: 8 } } })).vfioDevices).toHaveLength(31);
  });
});

describe('hardware option: the driver probes what the registers say', () => {
  it('arm-smmuv3: GET_HW_INFO reports the IDR fields the options set', async () => {
    const base = await bootVmm({ platform: 'arm-smmuv3', devices: 1 });
    const [d0, d1, , d3, , d5] = idrs(U.getHwInfo(base.p, base.fd, { devId: base.devIds[0]! }));
    expect([SMMU_IDR3.num(d3!, 'RIL'), SMMU_IDR0.num(d0!, 'ASID16'), SMMU_IDR0.num(d0!, 'ATS'), SMMU_IDR1.num(d1!, 'SSIDSIZE'), SMMU_IDR5.num(d5!, 'OAS')]).toEqual([1, 1, 1, 20, 5]);

    const smmu: SmmuHardwareOptions = { ril: false, asidBits: 8, ats: false, pri: false, ssidBits: 10, oas: 2, cmdqLog2: 8 };
    const v = await bootVmm({ platform: 'arm-smmuv3', devices: 1, hardware: { smmu } });
    const info = U.getHwInfo(v.p, v.fd, { devId: v.devIds[0]! });
    expect(info.type).toBe(U.IOMMU_HW_INFO_TYPE_ARM_SMMUV3);
    const [i0, i1, , i3, , i5] = idrs(info);
    expect(SMMU_IDR3.num(i3!, 'RIL')).toBe(0);
    expect(SMMU_IDR0.num(i0!, 'ASID16')).toBe(0);
    expect([SMMU_IDR0.num(i0!, 'ATS'), SMMU_IDR0.num(i0!, 'PRI')]).toEqual([0, 0]);
    expect(SMMU_IDR1.num(i1!, 'SSIDSIZE')).toBe(10);
    expect(SMMU_IDR1.num(i1!, 'CMDQS')).toBe(8);
    expect(SMMU_IDR5.num(i5!, 'OAS')).toBe(2);
    // The driver took the 10-bit SSID width: the device's 20-bit PASID is capped at it.
    expect(info.maxPasidLog2).toBe(10);

    const more: SmmuHardwareOptions = { fwb: false, cd2l: false, twoLevelStreamTable: false, vmidBits: 8, sidBits: 12, evtqLog2: 5, priqLog2: 6 };
    const w = await bootVmm({ platform: 'arm-smmuv3', devices: 1, hardware: { smmu: more } });
    const [j0, j1, , j3] = idrs(U.getHwInfo(w.p, w.fd, { devId: w.devIds[0]! }));
    expect([SMMU_IDR3.num(j3!, 'FWB'), SMMU_IDR0.num(j0!, 'CD2L'), SMMU_IDR0.num(j0!, 'ST_LEVEL'), SMMU_IDR0.num(j0!, 'VMID16')]).toEqual([0, 0, 0, 0]);
    expect([SMMU_IDR1.num(j1!, 'SIDSIZE'), SMMU_IDR1.num(j1!, 'EVTQS'), SMMU_IDR1.num(j1!, 'PRIQS')]).toEqual([12, 5, 6]);
    // A linear stream table and one-level CD tables still translate.
    U.vfioDeviceAttachIommufdPt(w.p, w.deviceFds[0]!, { ptId: w.ioas });
    expect(w.host.dma(w.host.vfioDevices[0]!, { iova: 0x4000n, length: 1, write: true, data: Uint8Array.of(1) })).toEqual({ ok: true });
  });

  it('arm-smmuv3: without stage 1 there is no nesting parent (-EOPNOTSUPP), a stage-2 IOAS domain still translates', async () => {
    const v = await bootVmm({ platform: 'arm-smmuv3', devices: 1, hardware: { smmu: { stage1: false } } });
    const [i0] = idrs(U.getHwInfo(v.p, v.fd, { devId: v.devIds[0]! }));
    expect([SMMU_IDR0.num(i0!, 'S1P'), SMMU_IDR0.num(i0!, 'S2P')]).toEqual([0, 1]);
    expect(() => U.hwptAlloc(v.p, v.fd, { devId: v.devIds[0]!, ptId: v.ioas, flags: U.IOMMU_HWPT_ALLOC_NEST_PARENT })).toThrow(expect.objectContaining({ errno: U.EOPNOTSUPP }));
    U.vfioDeviceAttachIommufdPt(v.p, v.deviceFds[0]!, { ptId: v.ioas });
    const data = Uint8Array.of(1, 2, 3, 4);
    expect(v.host.dma(v.host.vfioDevices[0]!, { iova: 0x1000n, length: 4, write: true, data })).toEqual({ ok: true });
    expect(v.host.dma(v.host.vfioDevices[0]!, { iova: 0x1000n, length: 4, write: false })).toEqual({ ok: true, data });
  });

  it('devices: the PCI functions’ PASID width and ATS reach GET_HW_INFO on SMMU and VT-d', async () => {
    for (const platform of ['arm-smmuv3', 'intel-vtd'] as const) {
      const dflt = await bootVmm({ platform, devices: 1 });
      expect(U.getHwInfo(dflt.p, dflt.fd, { devId: dflt.devIds[0]! }).maxPasidLog2).toBe(20);
      const v = await bootVmm({ platform, devices: 1, hardware: { devices: { pasidBits: 0, ats: false, pri: false } } });
      const info = U.getHwInfo(v.p, v.fd, { devId: v.devIds[0]! });
      expect(info.maxPasidLog2).toBe(0);
      expect(info.capabilities & BigInt(U.IOMMU_HW_CAP_PCI_PASID_EXEC | U.IOMMU_HW_CAP_PCI_PASID_PRIV)).toBe(0n);
      const w = await bootVmm({ platform, devices: 1, hardware: { devices: { pasidBits: 8 } } });
      expect(U.getHwInfo(w.p, w.fd, { devId: w.devIds[0]! }).maxPasidLog2).toBe(8);
    }
  });

  it('intel-vtd: GET_HW_INFO reports the CAP / ECAP fields the options set', async () => {
    const v = await bootVmm({ platform: 'intel-vtd', devices: 1, hardware: { vtd: { addressWidth: 57, cachingMode: true, nd: 2, faultRecords: 1, pasidBits: 12, nested: false, snoopControl: true } } });
    const info = U.getHwInfo(v.p, v.fd, { devId: v.devIds[0]! });
    expect(info.type).toBe(U.IOMMU_HW_INFO_TYPE_INTEL_VTD);
    const cap = vtdRegs(info).cap_reg;
    const ecap = vtdRegs(info).ecap_reg;
    expect([Number(VtdCap.f.MGAW.of(cap)), Number(VtdCap.f.CM.of(cap)), Number(VtdCap.f.ND.of(cap)), Number(VtdCap.f.NFR.of(cap)), Number(VtdCap.f.FS5LP.of(cap))]).toEqual([56, 1, 2, 0, 1]);
    expect([Number(VtdEcap.f.PSS.of(ecap)), Number(VtdEcap.f.NEST.of(ecap)), Number(VtdEcap.f.SC.of(ecap))]).toEqual([11, 0, 1]);
    const w = await bootVmm({ platform: 'intel-vtd', devices: 1, hardware: { vtd: { passThrough: false, pageRequests: false, deviceTlb: false, secondStage: false } } });
    const wecap = vtdRegs(U.getHwInfo(w.p, w.fd, { devId: w.devIds[0]! })).ecap_reg;
    const f = (n: 'PT' | 'PRS' | 'DT' | 'SLTS' | 'FLTS') => Number(VtdEcap.f[n].of(wecap));
    expect([f('PT'), f('PRS'), f('DT'), f('SLTS'), f('FLTS')]).toEqual([0, 0, 0, 0, 1]);
    // The unit's 12-bit PASIDs cap the device's 20; without ECAP.NEST there is no nesting parent.
    expect(info.maxPasidLog2).toBe(12);
    expect(() => U.hwptAlloc(v.p, v.fd, { devId: v.devIds[0]!, ptId: v.ioas, flags: U.IOMMU_HWPT_ALLOC_NEST_PARENT })).toThrow(expect.objectContaining({ errno: U.EOPNOTSUPP }));
  });

  it('intel-vtd: a 39-bit unit cannot take a 4-level first-stage domain (-EINVAL); with firstStage off the IOAS domain is second-stage', async () => {
    const fs = await bootVmm({ platform: 'intel-vtd', devices: 1, hardware: { vtd: { addressWidth: 39 } } });
    expect(() => U.vfioDeviceAttachIommufdPt(fs.p, fs.deviceFds[0]!, { ptId: fs.ioas })).toThrow(expect.objectContaining({ errno: U.EINVAL }));
    const ss = await bootVmm({ platform: 'intel-vtd', devices: 1, hardware: { vtd: { addressWidth: 39, firstStage: false } } });
    U.vfioDeviceAttachIommufdPt(ss.p, ss.deviceFds[0]!, { ptId: ss.ioas });
    expect(ss.host.dma(ss.host.vfioDevices[0]!, { iova: 0x2000n, length: 2, write: true, data: Uint8Array.of(9, 8) })).toEqual({ ok: true });
    const cap = vtdRegs(U.getHwInfo(ss.p, ss.fd, { devId: ss.devIds[0]! })).cap_reg;
    expect([Number(VtdCap.f.MGAW.of(cap)), Number(VtdCap.f.SAGAW.of(cap))]).toEqual([38, 0b0010]);
  });

  it('tegra241-cmdqv: PARAM sizes set LVCMDQs per VINTF (= VCMDQs / VINTFs) and SID slots; the VINTF hands out exactly that many', async () => {
    for (const [cmdqv, perVintf, sids] of [
      [{}, 4, 16],
      [{ vcmdqsLog2: 7, vintfsLog2: 1, sidsPerVintfLog2: 2 }, 64, 4],
      [{ vcmdqsLog2: 3, vintfsLog2: 3 }, 1, 16],
    ] as const) {
      const v = await bootVmm({ platform: 'tegra241-cmdqv', devices: sids + 1, hardware: { cmdqv } });
      const info = U.getHwInfo(v.p, v.fd, { devId: v.devIds[0]!, type: U.IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV });
      expect(U.iommu_hw_info_tegra241_cmdqv.decode(info.data)).toMatchObject({ version: 1, log2vcmdqs: Math.log2(perVintf), log2vsids: Math.log2(sids) });
      const parent = U.hwptAlloc(v.p, v.fd, { devId: v.devIds[0]!, ptId: v.ioas, flags: U.IOMMU_HWPT_ALLOC_NEST_PARENT });
      for (const dfd of v.deviceFds) U.vfioDeviceAttachIommufdPt(v.p, dfd, { ptId: parent });
      const data = U.iommu_viommu_tegra241_cmdqv.encode({});
      const viommu = U.viommuAlloc(v.p, v.fd, { devId: v.devIds[0]!, hwptId: parent, type: U.IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV, data }).id;
      const queue = (index: number) => U.hwQueueAlloc(v.p, v.fd, { viommuId: viommu, type: U.IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV, index, nestingParentIova: BigInt(index) << 12n, length: 4096n });
      for (let i = 0; i < perVintf; i++) queue(i);
      expect(() => queue(perVintf)).toThrow(expect.objectContaining({ errno: U.EINVAL }));
      // One SID match/replace slot per vDEVICE: the slot count bounds the vDEVICEs.
      for (let i = 0; i < sids; i++) U.vdeviceAlloc(v.p, v.fd, { viommuId: viommu, devId: v.devIds[i]!, virtId: BigInt(i + 1) });
      expect(() => U.vdeviceAlloc(v.p, v.fd, { viommuId: viommu, devId: v.devIds[sids]!, virtId: BigInt(sids + 1) })).toThrow(expect.objectContaining({ errno: U.ENOSPC }));
    }
  });

  it('tegra241-cmdqv with one VINTF: VINTF0 is the kernel’s, so a vIOMMU gets none (-ENOSPC)', async () => {
    const v = await bootVmm({ platform: 'tegra241-cmdqv', devices: 1, hardware: { cmdqv: { vcmdqsLog2: 1, vintfsLog2: 0 } } });
    const parent = U.hwptAlloc(v.p, v.fd, { devId: v.devIds[0]!, ptId: v.ioas, flags: U.IOMMU_HWPT_ALLOC_NEST_PARENT });
    U.vfioDeviceAttachIommufdPt(v.p, v.deviceFds[0]!, { ptId: parent });
    const data = U.iommu_viommu_tegra241_cmdqv.encode({});
    expect(() => U.viommuAlloc(v.p, v.fd, { devId: v.devIds[0]!, hwptId: parent, type: U.IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV, data })).toThrow(expect.objectContaining({ errno: U.ENOSPC }));
  });

  it('more than 64 devices: 31 per bus, each with its own StreamID, DMA through its own domain', async () => {
    const a = await bootVmm({ platform: 'arm-smmuv3', devices: 100 });
    expect(a.host.vfioDevices).toHaveLength(100);
    expect(a.host.vfioDevices[99]).toBe('/dev/vfio/devices/vfio99');
    // Devices 9 and 40 are slot 10 of bus 0 and of bus 1: StreamIDs 0x50 and 0x150, so the
    // bus is part of the StreamID and attaching one leaves the other blocked.
    U.vfioDeviceAttachIommufdPt(a.p, a.deviceFds[40]!, { ptId: a.ioas });
    expect(a.host.dma(a.host.vfioDevices[40]!, { iova: 0x3000n, length: 1, write: true, data: Uint8Array.of(5) })).toEqual({ ok: true });
    expect(a.host.dma(a.host.vfioDevices[9]!, { iova: 0x3000n, length: 1, write: false }).ok).toBe(false);
    const v = await bootVmm({ platform: 'intel-vtd', devices: 70 });
    // Device 69 sits at 02:08.0 (bus 2, slot 69 − 62 + 1).
    U.vfioDeviceAttachIommufdPt(v.p, v.deviceFds[69]!, { ptId: v.ioas });
    expect(v.host.dma(v.host.vfioDevices[69]!, { iova: 0x3000n, length: 1, write: true, data: Uint8Array.of(5) })).toEqual({ ok: true });
    expect(v.host.dma(v.host.vfioDevices[68]!, { iova: 0x3000n, length: 1, write: false }).ok).toBe(false);
  });
});
