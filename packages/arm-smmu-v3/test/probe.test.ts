import { describe, expect, it, vi } from 'vitest';
import { SMMU_REG, SMMU_STE, SMMU_STRTAB_BASE_CFG, createMachine } from '@iommufd/hw-model';
import { ENXIO, ENODEV } from '@iommufd/uapi';
import { ArmSmmuProbeError, armSmmuV3Probe, buildCmd } from '../src/index.js';
import { SMMU_BASE, issued, opcodes, rig } from './support/harness.js';

describe('probe and bring-up', () => {
  it('derives features from the ID registers and enables the SMMU as Linux does', () => {
    const { smmu } = rig();
    expect(smmu.features).toMatchObject({ twoLvlStrtab: true, twoLvlCdtab: true, transS1: true, transS2: true, nesting: true, rangeInv: true, s2fwb: true, ats: true, pri: true, coherency: true, msi: true, hd: false });
    expect(smmu.msiPoll).toBe(true);
    expect([smmu.asidBits, smmu.vmidBits, smmu.sidBits, smmu.ssidBits, smmu.ias, smmu.oas]).toEqual([16, 16, 16, 20, 48, 48]);
    // iommu.max_pasids = 1 << ssid_bits: what GET_HW_INFO's out_max_pasid_log2 is capped by.
    expect(smmu.maxPasidLog2).toBe(20);
    // SMMUEN | PRIQEN | EVTQEN | CMDQEN | ATSCHK, acknowledged.
    expect(smmu.readReg(SMMU_REG.CR0)).toBe(0x1f);
    expect(smmu.readReg(SMMU_REG.CR0ACK)).toBe(0x1f);
    expect(smmu.readReg(SMMU_REG.CR1)).toBe(0xd75);
    expect(smmu.readReg(SMMU_REG.CR2)).toBe(0x6);
    expect(smmu.readReg(SMMU_REG.IRQ_CTRL)).toBe(0x7);
    const cfg = smmu.readReg(SMMU_REG.STRTAB_BASE_CFG);
    expect(SMMU_STRTAB_BASE_CFG.decode([BigInt(cfg)])).toEqual({ LOG2SIZE: 16n, SPLIT: 8n, FMT: 1n });
    // CMDQ: 2^18 entries (CMDQ_MAX_SZ_SHIFT), RWA set, naturally aligned.
    expect(smmu.cmdq.log2Size).toBe(18);
    expect(smmu.cmdq.base % (16n << 18n)).toBe(0n);
    expect(smmu.messages).toEqual([]);
  });

  it('issues CFGI_ALL + SYNC and TLBI_NSNH_ALL + SYNC at reset', () => {
    const { smmu } = rig();
    const first = [0, 1, 2, 3].map((i) => [smmu.memory.read64(smmu.cmdq.slot(i)), smmu.memory.read64(smmu.cmdq.slot(i) + 8n)]);
    expect(first[0]).toEqual([...buildCmd({ opcode: 'CFGI_ALL' })]);
    // A completed MSIPOLL CMD_SYNC has its first word overwritten by MSIData = 0.
    expect(first[1]![0]! & 0xffff_ffffn).toBe(0n);
    expect(first[1]![1]).toBe((smmu.cmdq.slot(1) >> 2n) << 2n);
    expect(first[2]).toEqual([...buildCmd({ opcode: 'TLBI_NSNH_ALL' })]);
    expect(smmu.cmdq.prod).toBe(4);
  });

  it('uses a linear stream table when StreamIDs fit one bus, and polls CONS without MSIs', () => {
    const { smmu } = rig({ smmu: { sidBits: 8, msi: false } });
    expect(smmu.features.twoLvlStrtab).toBe(false);
    expect(smmu.msiPoll).toBe(false);
    expect(SMMU_STRTAB_BASE_CFG.decode([BigInt(smmu.readReg(SMMU_REG.STRTAB_BASE_CFG))])).toEqual({ LOG2SIZE: 8n, SPLIT: 0n, FMT: 0n });
    // Every STE starts as abort.
    expect(smmu.readSte(255)).toEqual(SMMU_STE.encode({ V: 1 }));
    const cmds = issued(smmu, () => smmu.issueCmdWithSync({ opcode: 'TLBI_NSNH_ALL' }));
    // CS=SEV sync, left intact by the SMMU.
    expect(cmds[1]).toEqual([...buildCmd({ opcode: 'CMD_SYNC' })]);
  });

  it('probes each device: STE of its SID is abort in an L2 table allocated on demand', () => {
    const { smmu, pci } = rig();
    expect(smmu.readSte(pci[0]!.streamId)).toEqual(SMMU_STE.encode({ V: 1, CONFIG: 0 }));
    expect(smmu.readSte(pci[1]!.streamId)).toEqual(SMMU_STE.encode({ V: 1, CONFIG: 0 }));
  });

  it('rejects a device the firmware does not describe with ENODEV', () => {
    const { smmu } = rig();
    expect(smmu.ops.probeDevice!({ name: 'nope', iommu: smmu, groupId: 9, pasid: undefined, pri: false, ats: false, isVf: false, iommuPriv: undefined })).toBe(ENODEV);
  });

  it('refuses a command queue of 64 entries or less (ENXIO)', () => {
    const m = createMachine({ ramBytes: 0x100_0000n, iommus: [{ kind: 'smmuv3', base: SMMU_BASE, options: { cmdqLog2: 6 } }] });
    let err: unknown;
    try {
      armSmmuV3Probe({ memory: m.memory, base: SMMU_BASE });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ArmSmmuProbeError);
    expect((err as ArmSmmuProbeError).errno).toBe(ENXIO);
  });

  it('skips an illegal command like Linux: replaced by a CMD_SYNC, GERRORN acknowledged, queue resumes', () => {
    const { smmu } = rig();
    const at = smmu.cmdq.slot(smmu.cmdq.prod);
    const st = smmu.cmdq.issueCmdlist([[0x7fn, 0x1234n], buildCmd({ opcode: 'TLBI_NSNH_ALL' })], true);
    expect(st).toBe(0);
    expect([smmu.memory.read64(at), smmu.memory.read64(at + 8n)]).toEqual([...buildCmd({ opcode: 'CMD_SYNC' })]);
    expect(smmu.readReg(SMMU_REG.GERROR)).toBe(smmu.readReg(SMMU_REG.GERRORN));
    expect(smmu.messages).toContain('skipping command in error state: 0x000000000000007f 0x0000000000001234');
    expect(smmu.readReg(SMMU_REG.CMDQ_CONS) & 0x7f00_0000).toBe(0x0100_0000);
    expect(opcodes(issued(smmu, () => smmu.issueCmdWithSync({ opcode: 'TLBI_NSNH_ALL' })))).toEqual([0x30, 0]);
  });

  it('writes a batch given as bytes into the ring in order across the wrap, one PROD write, executed by the SMMU', () => {
    const { smmu, hw } = rig({ smmu: { cmdqLog2: 7 } });
    expect(smmu.cmdq.prod).toBe(4);
    // 115 commands + SYNC leave PROD at slot 120 of 128.
    expect(smmu.cmdq.issueCmdlist(Array.from({ length: 115 }, () => buildCmd({ opcode: 'TLBI_NSNH_ALL' })), true)).toBe(0);
    expect(smmu.cmdq.prod).toBe(120);
    const cmds = Array.from({ length: 10 }, (_, i) => buildCmd({ opcode: 'TLBI_NH_ASID', asid: 0x40 + i, vmid: 7 }));
    const bytes = new Uint8Array(160);
    const view = new DataView(bytes.buffer);
    cmds.forEach(([dw0, dw1], i) => (view.setBigUint64(16 * i, dw0, true), view.setBigUint64(16 * i + 8, dw1, true)));
    const before = hw.commandCounts.get(0x11) ?? 0;
    const executed = vi.spyOn(hw, 'executeCommand');
    const ring = issued(smmu, () => expect(smmu.cmdq.issueCmdlist(bytes, true)).toBe(0));
    // The SMMU saw the commands, then the MSIPOLL SYNC exactly as buildCmd makes it.
    expect(executed.mock.calls).toEqual([...cmds, buildCmd({ opcode: 'CMD_SYNC', msiaddr: smmu.cmdq.slot(2) })].map((c) => [...c]));
    executed.mockRestore();
    // Slots 120..127, then 0..1, the SYNC at 2: PROD 3 with the wrap bit.
    expect(smmu.cmdq.prod).toBe(0x80 | 3);
    expect(ring.slice(0, 10)).toEqual(cmds.map((c) => [...c]));
    // The MSIPOLL SYNC, its first word overwritten by MSIData 0 on completion.
    expect(ring.slice(10)).toEqual([[0n, (smmu.cmdq.slot(2) >> 2n) << 2n]]);
    expect(smmu.readReg(SMMU_REG.CMDQ_CONS) & 0xfffff).toBe(0x83);
    expect(hw.commandCounts.get(0x11)).toBe(before + 10);
    // The same commands as an array land identically.
    const again = issued(smmu, () => expect(smmu.cmdq.issueCmdlist(cmds, false)).toBe(0));
    expect(again).toEqual(cmds.map((c) => [...c]));
    expect(() => smmu.cmdq.issueCmdlist(bytes.subarray(0, 24), true)).toThrow(RangeError);
  });

  it('re-probing an enabled SMMU first aborts incoming traffic through GBPA, as Linux warns', () => {
    const { machine } = rig();
    const again = armSmmuV3Probe({ memory: machine.memory, base: SMMU_BASE });
    expect(again.messages[0]).toBe('SMMU currently enabled! Resetting...');
    expect((again.readReg(SMMU_REG.GBPA) >>> 20) & 1).toBe(1);
    expect(again.readReg(SMMU_REG.CR0)).toBe(0x1f);
  });

  it('detects an event queue overflow, reports it and acknowledges OVFLG', () => {
    const { smmu, pci } = rig({ smmu: { evtqLog2: 1 } });
    // An abort STE records nothing; a V=0 STE makes every access a recorded C_BAD_STE.
    smmu.memory.write(smmu.steAddress(pci[0]!.streamId), SMMU_STE.toBytes(SMMU_STE.encode({ V: 0 })));
    smmu.issueCmdWithSync({ opcode: 'CFGI_STE', sid: pci[0]!.streamId, leaf: true });
    for (let i = 0; i < 3; i++) pci[0]!.dma({ iova: BigInt(i) << 12n, length: 4, write: false });
    smmu.serviceInterrupts();
    expect(smmu.messages.filter((m) => m.startsWith('event 0x04 received'))).toHaveLength(2);
    expect(smmu.messages).toContain('EVTQ overflow detected -- events lost');
    const prod = smmu.readReg(0x100a8);
    expect(smmu.readReg(0x100ac) >>> 31).toBe(prod >>> 31);
  });
});

