import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE, type IommufdViommu, type IommuDomain } from '@iommufd/driver-api';
import { CMDQ_OP, SMMU_CD, SMMU_CMD, SMMU_CMD_TLBI, SMMU_EVENT, SMMU_STE } from '@iommufd/hw-model';
import {
  EINVAL,
  EIO,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_ARM_SMMUV3,
  IOMMU_HW_INFO_TYPE_ARM_SMMUV3,
  IOMMU_HW_INFO_TYPE_INTEL_VTD,
  IOMMU_VEVENTQ_TYPE_ARM_SMMUV3,
  IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3,
  IOMMU_VIOMMU_TYPE_ARM_SMMUV3,
  IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV,
  EOPNOTSUPP,
  iommu_hw_info_arm_smmuv3,
  iommu_hwpt_arm_smmuv3,
  iommu_vevent_arm_smmuv3,
  iommu_viommu_arm_smmuv3_invalidate,
} from '@iommufd/uapi';
import { ArmSmmuDomain, ArmSmmuNestedDomain, arm_vsmmu, buildCmd } from '../src/index.js';
import { FakeCore, FlatUser, GuestRam, GuestS1, issued, opcodes, pagingDomain, rig } from './support/harness.js';

const IPA0 = 0x8000_0000n;
const VSID = 0x21n;

/** A VMM's setup: guest RAM in a nest-parent S2, a vSMMU, a vDEVICE, the guest's CD table and S1. */
function vm(o: Parameters<typeof rig>[0] = {}) {
  const r = rig(o);
  const core = new FakeCore();
  const user = new FlatUser();
  const s2 = pagingDomain(r.devs[0]!, IOMMU_HWPT_ALLOC_NEST_PARENT) as ArmSmmuDomain;
  const ram = new GuestRam(r.machine, IPA0, 64);
  expect(s2.ops.mapPages!(s2, IPA0, ram.pa, 4096n, 64, IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE).status).toBe(0);
  const viommu = core.viommuAlloc(r.devs[0]!, s2, IOMMU_VIOMMU_TYPE_ARM_SMMUV3) as IommufdViommu;
  core.vdeviceAlloc(viommu, r.devs[0]!, VSID);
  const s1 = new GuestS1(ram);
  const cdTable = ram.allocPage();
  const writeCd = (asid: number) => r.machine.memory.write(ram.toPa(cdTable), SMMU_CD.toBytes(s1.cd(asid)));
  writeCd(7);
  const vste = (fields: Partial<Record<'V' | 'CONFIG' | 'S1FMT' | 'S1CONTEXTPTR' | 'S1CDMAX' | 'S1DSS' | 'EATS' | 'SHCFG' | 'MEV', bigint | number>>) =>
    SMMU_STE.encode(fields).slice(0, 2) as [bigint, bigint];
  const nested = (ste: [bigint, bigint]) => viommu.ops!.allocDomainNested!(viommu, 0, user.data(IOMMU_HWPT_DATA_ARM_SMMUV3, iommu_hwpt_arm_smmuv3.encode({ ste })));
  const invalidate = (cmds: (readonly [bigint, bigint])[]) => {
    const array = user.array(IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3, 16, cmds.map((c) => iommu_viommu_arm_smmuv3_invalidate.encode({ cmd: [...c] })));
    const st = viommu.ops!.cacheInvalidate!(viommu, array);
    return { st, entryNum: array.entryNum };
  };
  return { ...r, core, user, s2, ram, viommu, s1, cdTable, writeCd, vste, nested, invalidate };
}

describe('hw_info and vIOMMU allocation', () => {
  it('reports IDR0-5, IIDR and AIDR as iommu_hw_info_arm_smmuv3', () => {
    const { devs, hw } = rig();
    const info = devs[0]!.iommu.ops.hwInfo!(devs[0]!, 0);
    if (typeof info === 'number') throw new Error('hwInfo failed');
    expect(info.type).toBe(IOMMU_HW_INFO_TYPE_ARM_SMMUV3);
    expect(iommu_hw_info_arm_smmuv3.decode(info.data)).toEqual({ flags: 0, __reserved: 0, idr: [...hw.idr], iidr: hw.iidr, aidr: hw.aidr });
    expect(devs[0]!.iommu.ops.hwInfo!(devs[0]!, IOMMU_HW_INFO_TYPE_INTEL_VTD)).toBe(EOPNOTSUPP);
  });

  it('sizes the vSMMU with VIOMMU_STRUCT_SIZE and shares the parent S2 VMID', () => {
    const { viommu, s2, devs } = vm();
    expect(devs[0]!.iommu.ops.getViommuSize!(devs[0]!, IOMMU_VIOMMU_TYPE_ARM_SMMUV3)).toBe(arm_vsmmu.size);
    expect(devs[0]!.iommu.ops.getViommuSize!(devs[0]!, IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV)).toBe(0);
    expect(s2.vmid).toBe(1);
    expect(viommu.ops).toBeDefined();
  });

  it('offers no vIOMMU without S2FWB or CANWBS, nor without stage 1', () => {
    for (const o of [{ smmu: { fwb: false } }, { smmu: { stage1: false } }]) {
      const { devs } = rig(o);
      expect(devs[0]!.iommu.ops.getViommuSize!(devs[0]!, IOMMU_VIOMMU_TYPE_ARM_SMMUV3)).toBe(0);
    }
    const { devs } = rig({ smmu: { fwb: false }, canwbs: true });
    expect(devs[0]!.iommu.ops.getViommuSize!(devs[0]!, IOMMU_VIOMMU_TYPE_ARM_SMMUV3)).toBe(arm_vsmmu.size);
  });

  it('rejects a parent that is not an S2 domain of this SMMU (EINVAL)', () => {
    const a = rig();
    const b = rig();
    const core = new FakeCore();
    const foreign = pagingDomain(b.devs[0]!, IOMMU_HWPT_ALLOC_NEST_PARENT);
    expect(core.viommuAlloc(a.devs[0]!, foreign, IOMMU_VIOMMU_TYPE_ARM_SMMUV3)).toBe(EINVAL);
  });
});

// Both converters of the trapped path (queue engine, TypeScript) must give the same results.
describe.each(['engine', 'typescript'] as const)('nested domain from a guest STE (%s converter)', (vsmmuConverter) => {
  const vmc = (o: Parameters<typeof rig>[0] = {}) => vm({ ...o, vsmmuConverter });
  it('converts guest arrays in the queue engine only with the engine converter', () => {
    expect(vmc().smmu.vsmmuConverter() !== undefined).toBe(vsmmuConverter === 'engine');
  });
  it('validates the vSTE: disallowed bits, Config and EATS are EIO; V=0 is accepted as abort', () => {
    const { nested, vste } = vmc();
    expect(nested(vste({ V: 1, CONFIG: 5, SHCFG: 1 }))).toBe(EIO);
    expect(nested(vste({ V: 1, CONFIG: 5, MEV: 1 }))).toBe(EIO);
    expect(nested(vste({ V: 1, CONFIG: 6 }))).toBe(EIO);
    expect(nested(vste({ V: 1, CONFIG: 7 }))).toBe(EIO);
    expect(nested(vste({ V: 1, CONFIG: 5, EATS: 2 }))).toBe(EIO);
    const v0 = nested([0x1234n << 6n, 0x3n]);
    expect(typeof v0).toBe('object');
    expect((v0 as ArmSmmuNestedDomain).ste).toEqual([0n, 0n]);
  });

  it('rejects driver data of the wrong type or length (EINVAL) and flags (EOPNOTSUPP)', () => {
    const { viommu, user, vste } = vmc();
    const ok = iommu_hwpt_arm_smmuv3.encode({ ste: vste({ V: 1 }) });
    expect(viommu.ops!.allocDomainNested!(viommu, 0, user.data(1, ok))).toBe(EINVAL);
    expect(viommu.ops!.allocDomainNested!(viommu, 0, user.data(IOMMU_HWPT_DATA_ARM_SMMUV3, new Uint8Array(24)))).toBe(EINVAL);
    expect(viommu.ops!.allocDomainNested!(viommu, 1 << 3, user.data(IOMMU_HWPT_DATA_ARM_SMMUV3, ok))).toBe(EOPNOTSUPP);
  });

  it('installs the nested STE (S2 of the parent + guest S1 fields + MEV) and translates guest VA → IPA → PA', () => {
    const { nested, vste, devs, pci, smmu, s1, ram, cdTable, s2 } = vmc();
    const page = ram.allocPage();
    s1.map(0x7000_0000n, page);
    const d = nested(vste({ V: 1, CONFIG: 5, S1CONTEXTPTR: cdTable >> 6n, S1DSS: 0 })) as IommuDomain;
    expect(d.ops.attachDev!(d, devs[0]!)).toBe(0);
    expect(smmu.readSte(pci[0]!.streamId)).toEqual(
      SMMU_STE.encode({
        V: 1, CONFIG: 7, S1CONTEXTPTR: cdTable >> 6n, MEV: 1, S2FWB: 1, S2VMID: s2.vmid, S2T0SZ: 16, S2SL0: 2, S2IR0: 1, S2OR0: 1, S2SH0: 3, S2PS: 5,
        S2AA64: 1, S2PTW: 1, S2R: 1, S2TTB: s2.pgtbl.pgd >> 4n,
      }),
    );
    expect(pci[0]!.dma({ iova: 0x7000_0008n, length: 2, write: true, data: new Uint8Array([0xab, 0xcd]) }).ok).toBe(true);
    expect([...smmu.memory.read(ram.toPa(page) + 8n, 2)]).toEqual([0xab, 0xcd]);
  });

  it('keeps a stale translation after the guest edits its table, until the guest TLBI_NH_VA arrives with the VMID stamped', () => {
    const { nested, vste, devs, pci, smmu, s1, ram, cdTable, invalidate, s2 } = vmc();
    const p1 = ram.allocPage();
    const p2 = ram.allocPage();
    s1.map(0x7000_0000n, p1);
    const d = nested(vste({ V: 1, CONFIG: 5, S1CONTEXTPTR: cdTable >> 6n })) as IommuDomain;
    d.ops.attachDev!(d, devs[0]!);
    smmu.memory.write(ram.toPa(p1), new Uint8Array([1]));
    smmu.memory.write(ram.toPa(p2), new Uint8Array([2]));
    const read = () => {
      const r = pci[0]!.dma({ iova: 0x7000_0000n, length: 1, write: false });
      return r.ok ? r.data![0] : -1;
    };
    expect(read()).toBe(1);
    s1.map(0x7000_0000n, p2);
    expect(read()).toBe(1);
    // The guest puts VMID 0x55 in its command: the host replaces it with the vSMMU's.
    const guest = buildCmd({ opcode: 'TLBI_NH_VA', asid: 7, vmid: 0x55, addr: 0x7000_0000n, leaf: true });
    let res = { st: -1, entryNum: -1 };
    const cmds = issued(smmu, () => (res = invalidate([guest])));
    expect(res).toEqual({ st: 0, entryNum: 1 });
    expect(cmds[0]).toEqual([...buildCmd({ opcode: 'TLBI_NH_VA', asid: 7, vmid: s2.vmid, addr: 0x7000_0000n, leaf: true })]);
    expect(opcodes(cmds)).toEqual([CMDQ_OP.TLBI_NH_VA, 0]);
    expect(read()).toBe(2);
  });

  it('converts NSNH_ALL to NH_ALL of the VMID, vSID to pSID; anything else is EIO at its index', () => {
    const { invalidate, smmu, pci, s2 } = vmc();
    const cmds = issued(smmu, () =>
      expect(invalidate([buildCmd({ opcode: 'TLBI_NSNH_ALL' }), buildCmd({ opcode: 'CFGI_CD', sid: Number(VSID), ssid: 0, leaf: true })])).toEqual({ st: 0, entryNum: 2 }),
    );
    expect(cmds[0]).toEqual([...buildCmd({ opcode: 'TLBI_NH_ALL', vmid: s2.vmid })]);
    expect(SMMU_CMD.decode(cmds[1]!)).toMatchObject({ OPCODE: BigInt(CMDQ_OP.CFGI_CD), SID: BigInt(pci[0]!.streamId), LEAF: 1n });
    // Hostile: a CFGI_STE (host-owned), an S2 TLBI, an unknown vSID.
    const before = smmu.cmdq.prod;
    expect(invalidate([buildCmd({ opcode: 'TLBI_NH_ALL', vmid: 0 }), buildCmd({ opcode: 'CFGI_STE', sid: 0, leaf: true })])).toEqual({ st: EIO, entryNum: 1 });
    expect(invalidate([buildCmd({ opcode: 'TLBI_S12_VMALL', vmid: 1 })])).toEqual({ st: EIO, entryNum: 0 });
    expect(invalidate([buildCmd({ opcode: 'ATC_INV', sid: 0x99, ssid: 0, substreamValid: false, addr: 0n, size: 52 })])).toEqual({ st: EIO, entryNum: 0 });
    expect(invalidate([buildCmd({ opcode: 'CMD_SYNC' })])).toEqual({ st: EIO, entryNum: 0 });
    // Nothing of a failed batch reaches the CMDQ.
    expect(smmu.cmdq.prod).toBe(before);
    expect(SMMU_CMD_TLBI.get(buildCmd({ opcode: 'TLBI_NH_ALL', vmid: s2.vmid }), 'VMID')).toBe(BigInt(s2.vmid));
  });

  it('issues 63 converted commands per CMD_SYNC', () => {
    const { invalidate, smmu } = vmc();
    const guest = Array.from({ length: 130 }, () => buildCmd({ opcode: 'TLBI_NH_ASID', asid: 7, vmid: 0 }));
    const cmds = issued(smmu, () => expect(invalidate(guest)).toEqual({ st: 0, entryNum: 130 }));
    const syncs = opcodes(cmds)
      .map((o, i) => (o === 0 ? i : -1))
      .filter((i) => i >= 0);
    expect(syncs).toEqual([63, 127, 132]);
  });

  it('forwards a stage-1 fault as a vEVENT with the vSID; stage-2 faults stay with the host', () => {
    const { nested, vste, devs, pci, smmu, s1, ram, cdTable, core, viommu, s2 } = vmc();
    s1.map(0x7000_0000n, ram.allocPage());
    const d = nested(vste({ V: 1, CONFIG: 5, S1CONTEXTPTR: cdTable >> 6n })) as IommuDomain;
    d.ops.attachDev!(d, devs[0]!);
    const r = pci[0]!.dma({ iova: 0x7100_0000n, length: 4, write: true, data: new Uint8Array(4) });
    expect(r.ok).toBe(false);
    smmu.serviceInterrupts();
    expect(core.events).toHaveLength(1);
    expect(core.events[0]!.viommu).toBe(viommu);
    expect(core.events[0]!.type).toBe(IOMMU_VEVENTQ_TYPE_ARM_SMMUV3);
    const evt = iommu_vevent_arm_smmuv3.decode(core.events[0]!.data).evt;
    expect(SMMU_EVENT.decode(evt)).toMatchObject({ ID: 0x10n, SID: VSID, RNW: 0n, S2: 0n, CLASS: 2n, INPUT_ADDR: 0x7100_0000n });
    // Guest maps a page to an IPA the host never mapped: a stage-2 fault, not forwarded.
    s1.map(0x7200_0000n, IPA0 + 0x100_0000n);
    expect(pci[0]!.dma({ iova: 0x7200_0000n, length: 4, write: false }).ok).toBe(false);
    smmu.serviceInterrupts();
    expect(core.events).toHaveLength(1);
    expect(smmu.messages.some((m) => m.startsWith('event 0x10 received'))).toBe(true);
    expect(s2.vmid).toBe(1);
  });

  it('needs a vDEVICE to attach an S1 vSTE (ENOENT), none for abort/bypass, and a same-SMMU device (EINVAL)', () => {
    const { nested, vste, devs, cdTable } = vmc();
    const d = nested(vste({ V: 1, CONFIG: 5, S1CONTEXTPTR: cdTable >> 6n })) as IommuDomain;
    expect(d.ops.attachDev!(d, devs[1]!)).toBe(2);
    // Only a translating vSTE needs the vSID: abort, bypass and V=0 attach without a vDEVICE.
    for (const fields of [{ V: 1, CONFIG: 0 }, { V: 1, CONFIG: 4 }, { V: 0, CONFIG: 5 }]) {
      const plain = nested(vste(fields)) as IommuDomain;
      expect(plain.ops.attachDev!(plain, devs[1]!)).toBe(0);
    }
    const other = rig();
    expect(d.ops.attachDev!(d, other.devs[0]!)).toBe(EINVAL);
  });

  it('a guest bypass vSTE installs the parent S2 STE; abort installs abort', () => {
    const { nested, vste, devs, pci, smmu, s2 } = vmc();
    const byp = nested(vste({ V: 1, CONFIG: 4 })) as IommuDomain;
    byp.ops.attachDev!(byp, devs[0]!);
    expect(SMMU_STE.decode(smmu.readSte(pci[0]!.streamId))).toMatchObject({ CONFIG: 6n, S2VMID: BigInt(s2.vmid), MEV: 0n });
    const abt = nested(vste({ V: 1, CONFIG: 0 })) as IommuDomain;
    abt.ops.attachDev!(abt, devs[0]!);
    expect(smmu.readSte(pci[0]!.streamId)).toEqual(SMMU_STE.encode({ V: 1 }));
  });

  it('honours the guest EATS for an S1 vSTE: ATS on, and a nest-parent change flushes the whole ATC', () => {
    const { nested, vste, devs, pci, smmu, cdTable, s2 } = vmc({ ats: true });
    const d = nested(vste({ V: 1, CONFIG: 5, S1CONTEXTPTR: cdTable >> 6n, EATS: 1 })) as ArmSmmuNestedDomain;
    expect(d.enableAts).toBe(true);
    expect(d.ste[1]).toBe(0n);
    d.ops.attachDev!(d, devs[0]!);
    expect(SMMU_STE.decode(smmu.readSte(pci[0]!.streamId))).toMatchObject({ CONFIG: 7n, EATS: 1n, MEV: 1n });
    expect(pci[0]!.atsEnabled).toBe(true);
    const cmds = issued(smmu, () => s2.ops.unmapPages!(s2, IPA0 + 0x3f000n, 4096n, 1));
    expect(opcodes(cmds)).toEqual([CMDQ_OP.TLBI_S2_IPA, 0, CMDQ_OP.TLBI_NH_ALL, 0, CMDQ_OP.ATC_INV, 0]);
    expect(SMMU_CMD.decode(cmds[4]!)).toMatchObject({ SID: BigInt(pci[0]!.streamId), SSV: 0n });
    expect(cmds[4]![1] & 0x3fn).toBe(52n);
  });

  it('confines a hostile guest: its NSNH_ALL and foreign vSIDs never reach another VM (second vIOMMU, VMID 2)', () => {
    const a = vmc();
    // VM B: the second device, its own nest parent (VMID 2), vIOMMU and vDEVICE with the same vSID value.
    const coreB = new FakeCore();
    const s2b = pagingDomain(a.devs[1]!, IOMMU_HWPT_ALLOC_NEST_PARENT) as ArmSmmuDomain;
    const ramB = new GuestRam(a.machine, IPA0, 16);
    s2b.ops.mapPages!(s2b, IPA0, ramB.pa, 4096n, 16, IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE);
    const vB = coreB.viommuAlloc(a.devs[1]!, s2b, IOMMU_VIOMMU_TYPE_ARM_SMMUV3) as IommufdViommu;
    coreB.vdeviceAlloc(vB, a.devs[1]!, VSID);
    const s1b = new GuestS1(ramB);
    const cdB = ramB.allocPage();
    a.machine.memory.write(ramB.toPa(cdB), SMMU_CD.toBytes(s1b.cd(7)));
    const b1 = ramB.allocPage();
    const b2 = ramB.allocPage();
    a.machine.memory.write(ramB.toPa(b1), new Uint8Array([0xb1]));
    a.machine.memory.write(ramB.toPa(b2), new Uint8Array([0xb2]));
    s1b.map(0x6000_0000n, b1);
    const steB = iommu_hwpt_arm_smmuv3.encode({ ste: a.vste({ V: 1, CONFIG: 5, S1CONTEXTPTR: cdB >> 6n }) });
    const dB = vB.ops!.allocDomainNested!(vB, 0, a.user.data(IOMMU_HWPT_DATA_ARM_SMMUV3, steB)) as IommuDomain;
    expect(dB.ops.attachDev!(dB, a.devs[1]!)).toBe(0);
    expect(s2b.vmid).toBe(2);
    const readB = () => {
      const x = a.pci[1]!.dma({ iova: 0x6000_0000n, length: 1, write: false });
      return x.ok ? x.data![0] : -1;
    };
    expect(readB()).toBe(0xb1);
    s1b.map(0x6000_0000n, b2);
    // Guest A flushes "everything" and names ASID 7 / VMID 2 explicitly: only VMID 1 is touched.
    expect(a.invalidate([buildCmd({ opcode: 'TLBI_NSNH_ALL' }), buildCmd({ opcode: 'TLBI_NH_ASID', asid: 7, vmid: 2 })])).toEqual({ st: 0, entryNum: 2 });
    expect(readB()).toBe(0xb1);
    // B's own invalidation (through its vIOMMU) is what refreshes B.
    const arr = a.user.array(IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3, 16, [iommu_viommu_arm_smmuv3_invalidate.encode({ cmd: [...buildCmd({ opcode: 'TLBI_NSNH_ALL' })] })]);
    expect(vB.ops!.cacheInvalidate!(vB, arr)).toBe(0);
    expect(readB()).toBe(0xb2);
    // A cannot name B's device: vSID lookup is per vIOMMU, and a pSID is never accepted.
    expect(a.invalidate([buildCmd({ opcode: 'CFGI_CD_ALL', sid: a.pci[1]!.streamId })])).toEqual({ st: EIO, entryNum: 0 });
  });
});

describe('engine and TypeScript converters of the trapped path', () => {
  it('issue the same bytes and return the same status and entry_num for any guest array', () => {
    const engineVm = vm({ vsmmuConverter: 'engine' });
    const tsVm = vm({ vsmmuConverter: 'typescript' });
    const ops = [
      CMDQ_OP.TLBI_NSNH_ALL, CMDQ_OP.TLBI_NH_VA, CMDQ_OP.TLBI_NH_VAA, CMDQ_OP.TLBI_NH_ALL, CMDQ_OP.TLBI_NH_ASID,
      CMDQ_OP.ATC_INV, CMDQ_OP.CFGI_CD, CMDQ_OP.CFGI_CD_ALL,
    ];
    const opcode = fc.oneof({ arbitrary: fc.constantFrom(...ops), weight: 30 }, { arbitrary: fc.integer({ min: 0, max: 0xff }), weight: 1 });
    const sid = fc.oneof({ arbitrary: fc.constant(Number(VSID)), weight: 20 }, { arbitrary: fc.integer({ min: 0, max: 0xffff_ffff }), weight: 1 });
    // Opcode and vSID chosen, every other bit of both words random.
    const cmd = fc.tuple(opcode, sid, fc.bigInt({ min: 0n, max: (1n << 24n) - 1n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }))
      .map(([op, s, mid, w1]) => [BigInt(op) | (mid << 8n) | (BigInt(s) << 32n), w1] as const);
    fc.assert(
      fc.property(fc.array(cmd, { minLength: 1, maxLength: 140 }), (cmds) => {
        let a = { st: 0, entryNum: 0 };
        let b = { st: 0, entryNum: 0 };
        const byEngine = issued(engineVm.smmu, () => (a = engineVm.invalidate(cmds)));
        const byTs = issued(tsVm.smmu, () => (b = tsVm.invalidate(cmds)));
        expect(a).toEqual(b);
        expect(byEngine).toEqual(byTs);
      }),
      { numRuns: 40, seed: 5 },
    );
  });
});
