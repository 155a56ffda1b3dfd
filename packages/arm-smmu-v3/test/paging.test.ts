import { describe, expect, it } from 'vitest';
import { IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE } from '@iommufd/driver-api';
import { CMDQ_OP, SMMU_CD, SMMU_CMD_ATC_INV, SMMU_CMD_TLBI, SMMU_STE } from '@iommufd/hw-model';
import { EEXIST, EINVAL, EOPNOTSUPP, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_ALLOC_NEST_PARENT } from '@iommufd/uapi';
import { ArmSmmuDomain, armSmmuBlockedDomain, buildCmd } from '../src/index.js';
import { getSteUsed, writeEntry } from '../src/entry-writer.js';
import { addDevice, issued, opcodes, pagingDomain, rig } from './support/harness.js';

const RW = IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE;
const SYNC = 0; // a completed MSIPOLL CMD_SYNC reads back with opcode 0

describe('stage-1 paging domain', () => {
  it('writes the CD and S1 STE Linux writes and translates DMA', () => {
    const { smmu, devs, pci, machine } = rig();
    const d = pagingDomain(devs[0]!) as ArmSmmuDomain;
    expect(d.stage).toBe(1);
    expect(d.asid).toBe(1);
    expect(d.ops.attachDev!(d, devs[0]!)).toBe(0);
    const ste = smmu.readSte(pci[0]!.streamId);
    const cd = SMMU_CD.fromBytes(machine.memory.read(SMMU_STE.get(ste, 'S1CONTEXTPTR') << 6n, 64));
    expect(cd).toEqual(
      SMMU_CD.encode({ T0SZ: 16, IR0: 1, OR0: 1, SH0: 3, EPD1: 1, V: 1, IPS: 5, AA64: 1, R: 1, A: 1, ASET: 1, ASID: 1, TTB0: d.pgtbl.pgd >> 4n, MAIR: 0xf404ff44n }),
    );
    expect(SMMU_STE.decode(ste)).toMatchObject({ V: 1n, CONFIG: 5n, S1FMT: 0n, S1CDMAX: 0n, S1DSS: 2n, S1CIR: 1n, S1COR: 1n, S1CSH: 3n, EATS: 0n, STRW: 0n, S2VMID: 0n });
    const buf = machine.memory.allocPages(1)[0]!;
    expect(d.ops.mapPages!(d, 0x10_0000n, buf, 4096n, 1, RW)).toEqual({ mapped: 4096n, status: 0 });
    expect(d.ops.iovaToPhys!(d, 0x10_0123n)).toBe(buf + 0x123n);
    expect(pci[0]!.dma({ iova: 0x10_0010n, length: 4, write: true, data: new Uint8Array([1, 2, 3, 4]) })).toEqual({ ok: true });
    expect([...machine.memory.read(buf + 0x10n, 4)]).toEqual([1, 2, 3, 4]);
    // The other device, not attached, still aborts.
    expect(pci[1]!.dma({ iova: 0x10_0010n, length: 4, write: false }).ok).toBe(false);
  });

  it('unmap issues TLBI_NH_VA range commands (RIL) + SYNC and the DMA then faults', () => {
    const { smmu, devs, pci, machine } = rig();
    const d = pagingDomain(devs[0]!) as ArmSmmuDomain;
    d.ops.attachDev!(d, devs[0]!);
    const buf = machine.memory.allocPages(8)[0]!;
    d.ops.mapPages!(d, 0x20_0000n, buf, 4096n, 8, RW);
    expect(pci[0]!.dma({ iova: 0x20_3000n, length: 8, write: false }).ok).toBe(true);
    let unmapped = 0n;
    const cmds = issued(smmu, () => (unmapped = d.ops.unmapPages!(d, 0x20_0000n, 4096n, 8)));
    expect(unmapped).toBe(0x8000n);
    expect(opcodes(cmds)).toEqual([CMDQ_OP.TLBI_NH_VA, SYNC]);
    // 8 pages = NUM 0 · 2^3: one range command, TG 4K, TTL 3 (leaf at level 3).
    expect(cmds[0]).toEqual([...buildCmd({ opcode: 'TLBI_NH_VA', asid: 1, addr: 0x20_0000n, leaf: true, num: 0, scale: 3, tg: 1, ttl: 3 })]);
    expect(SMMU_CMD_TLBI.decode(cmds[0]!)).toMatchObject({ NUM: 0n, SCALE: 3n, TG: 1n, TTL: 3n, ASID: 1n, VMID: 0n, LEAF: 1n, ADDR: 0x200n });
    const r = pci[0]!.dma({ iova: 0x20_3000n, length: 8, write: false });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.fault.kind).toBe('F_TRANSLATION');
  });

  it('without RIL issues one TLBI_NH_VA per page', () => {
    const { smmu, devs, machine } = rig({ smmu: { ril: false } });
    const d = pagingDomain(devs[0]!) as ArmSmmuDomain;
    d.ops.attachDev!(d, devs[0]!);
    d.ops.mapPages!(d, 0x0n, machine.memory.allocPages(3)[0]!, 4096n, 3, RW);
    const cmds = issued(smmu, () => d.ops.unmapPages!(d, 0n, 4096n, 3));
    expect(opcodes(cmds)).toEqual([0x12, 0x12, 0x12, SYNC]);
    expect(cmds.slice(0, 3).map((c) => SMMU_CMD_TLBI.get(c, 'ADDR'))).toEqual([0n, 1n, 2n]);
  });

  it('maps 2 MiB blocks, refuses to overlap (EEXIST) and refuses partial block unmaps', () => {
    const { devs, machine } = rig();
    const d = pagingDomain(devs[0]!) as ArmSmmuDomain;
    const pa = machine.memory.allocPages(512, { align: 0x20_0000n })[0]!;
    expect(d.ops.mapPages!(d, 0x4000_0000n, pa, 0x20_0000n, 1, RW)).toEqual({ mapped: 0x20_0000n, status: 0 });
    expect(d.ops.mapPages!(d, 0x4000_1000n, pa, 4096n, 1, RW).status).toBe(EEXIST);
    expect(d.ops.unmapPages!(d, 0x4000_1000n, 4096n, 1)).toBe(0n);
    expect(d.ops.iovaToPhys!(d, 0x401f_ffffn)).toBe(pa + 0x1f_ffffn);
    expect(d.ops.mapPages!(d, 0x0n, pa, 8192n, 1, RW).status).toBe(EINVAL);
  });

  it('frees ASID and tables on free after TLBI_NH_ASID', () => {
    const { smmu, devs, machine } = rig();
    const before = machine.memory.allocatedPages;
    const d = pagingDomain(devs[0]!) as ArmSmmuDomain;
    d.ops.mapPages!(d, 0x1000n, 0x4000_0000n, 4096n, 1, RW);
    const cmds = issued(smmu, () => d.ops.free!(d));
    expect(cmds[0]).toEqual([...buildCmd({ opcode: 'TLBI_NH_ASID', asid: 1, vmid: 0 })]);
    expect(machine.memory.allocatedPages).toBe(before);
    expect((pagingDomain(devs[0]!) as ArmSmmuDomain).asid).toBe(1);
  });
});

describe('stage-2 paging domain', () => {
  it('NEST_PARENT gives an S2 domain with a VMID and the S2 STE Linux writes (S2FWB)', () => {
    const { smmu, devs, pci, machine } = rig();
    const d = pagingDomain(devs[0]!, IOMMU_HWPT_ALLOC_NEST_PARENT) as ArmSmmuDomain;
    expect([d.stage, d.vmid, d.nestParent]).toEqual([2, 1, true]);
    expect(d.ops.attachDev!(d, devs[0]!)).toBe(0);
    expect(smmu.readSte(pci[0]!.streamId)).toEqual(
      SMMU_STE.encode({ V: 1, CONFIG: 6, S2FWB: 1, S2VMID: 1, S2T0SZ: 16, S2SL0: 2, S2IR0: 1, S2OR0: 1, S2SH0: 3, S2TG: 0, S2PS: 5, S2AA64: 1, S2PTW: 1, S2R: 1, S2TTB: d.pgtbl.pgd >> 4n }),
    );
    const buf = machine.memory.allocPages(1)[0]!;
    d.ops.mapPages!(d, 0x8000_0000n, buf, 4096n, 1, IOMMU_READ | IOMMU_CACHE);
    expect(pci[0]!.dma({ iova: 0x8000_0000n, length: 4, write: false }).ok).toBe(true);
    const w = pci[0]!.dma({ iova: 0x8000_0000n, length: 4, write: true, data: new Uint8Array(4) });
    expect(w.ok).toBe(false);
    if (!w.ok) expect(w.fault.kind).toBe('F_PERMISSION');
    // A nest parent's unmap also flushes nested S1 entries of its VMID.
    const cmds = issued(smmu, () => d.ops.unmapPages!(d, 0x8000_0000n, 4096n, 1));
    expect(opcodes(cmds)).toEqual([CMDQ_OP.TLBI_S2_IPA, SYNC, CMDQ_OP.TLBI_NH_ALL, SYNC]);
    expect(cmds[2]).toEqual([...buildCmd({ opcode: 'TLBI_NH_ALL', vmid: 1 })]);
  });

  it('rejects DIRTY_TRACKING without HTTU and any unknown flag (EOPNOTSUPP)', () => {
    const { devs } = rig();
    expect(devs[0]!.iommu.ops.domainAllocPagingFlags!(devs[0]!, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, undefined)).toBe(EOPNOTSUPP);
    expect(devs[0]!.iommu.ops.domainAllocPagingFlags!(devs[0]!, 1 << 7, undefined)).toBe(EOPNOTSUPP);
    expect(devs[0]!.iommu.ops.capable(devs[0]!, 'DIRTY_TRACKING')).toBe(false);
  });

  it('NEST_PARENT needs stage 1 + stage 2 (EOPNOTSUPP without S1P)', () => {
    const { devs } = rig({ smmu: { stage1: false } });
    expect(devs[0]!.iommu.ops.domainAllocPagingFlags!(devs[0]!, IOMMU_HWPT_ALLOC_NEST_PARENT, undefined)).toBe(EOPNOTSUPP);
    expect((pagingDomain(devs[0]!) as ArmSmmuDomain).stage).toBe(2);
  });
});

describe('ATS masters', () => {
  it('enable ATS after an ATC flush, and unmap sends ATC_INV after the TLBI', () => {
    const { smmu, devs, pci, machine } = rig({ ats: true });
    const d = pagingDomain(devs[0]!) as ArmSmmuDomain;
    const attach = issued(smmu, () => d.ops.attachDev!(d, devs[0]!));
    expect(opcodes(attach).slice(-2)).toEqual([CMDQ_OP.ATC_INV, SYNC]);
    expect(SMMU_CMD_ATC_INV.decode(attach.at(-2)!)).toMatchObject({ SID: BigInt(pci[0]!.streamId), SIZE: 52n, SSV: 0n });
    expect(pci[0]!.atsEnabled).toBe(true);
    expect(SMMU_STE.get(smmu.readSte(pci[0]!.streamId), 'EATS')).toBe(1n);
    d.ops.mapPages!(d, 0x3000n, machine.memory.allocPages(1)[0]!, 4096n, 1, RW);
    const cmds = issued(smmu, () => d.ops.unmapPages!(d, 0x3000n, 4096n, 1));
    expect(opcodes(cmds)).toEqual([CMDQ_OP.TLBI_NH_VA, SYNC, CMDQ_OP.ATC_INV, SYNC]);
    expect(SMMU_CMD_ATC_INV.decode(cmds[2]!)).toMatchObject({ SIZE: 0n, ADDR: 3n });
    // Blocking turns ATS off at the endpoint, then flushes its ATC.
    const block = issued(smmu, () => armSmmuBlockedDomain.ops.attachDev!(armSmmuBlockedDomain, devs[0]!));
    expect(pci[0]!.atsEnabled).toBe(false);
    expect(opcodes(block)).toContain(CMDQ_OP.ATC_INV);
    expect(smmu.readSte(pci[0]!.streamId)).toEqual(SMMU_STE.encode({ V: 1 }));
  });
});

describe('hitless STE updates', () => {
  const record = (cur: bigint[], target: bigint[]) => {
    const log: string[] = [];
    const live = [...cur];
    writeEntry(
      {
        getUsed: getSteUsed,
        writeQword: (i, v) => {
          live[i] = v;
          log.push(`w${i}`);
        },
        sync: () => log.push('sync'),
      },
      cur,
      target,
    );
    return { log, live };
  };
  const s1 = SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: 0x1000n, S1DSS: 2, S1CIR: 1, S1COR: 1, S1CSH: 3 });
  const s2 = SMMU_STE.encode({ V: 1, CONFIG: 6, S2VMID: 3, S2T0SZ: 16, S2SL0: 2, S2AA64: 1, S2PTW: 1, S2R: 1, S2TTB: 0x200n });

  it('abort → S1 is hitless: dw1 (unused by abort) first, then the critical dw0', () => {
    const { log, live } = record(SMMU_STE.encode({ V: 1 }), s1);
    expect(log).toEqual(['w1', 'sync', 'w0', 'sync']);
    expect(live).toEqual(s1);
  });
  it('S2 VMID/TTB change touches two qwords; a TTB-only change is hitless in one step', () => {
    const s2b = [...s2];
    SMMU_STE.set(s2b, 'S2TTB', 0x300n);
    expect(record(s2, s2b).log).toEqual(['w3', 'sync']);
  });
  it('S1 → S2 changes used bits of dw0 and dw2 (VMID): breaking update V=0, dw1..7, then dw0', () => {
    const { log, live } = record(s1, s2);
    expect(live).toEqual(s2);
    expect(log).toEqual(['w0', 'sync', 'w1', 'w2', 'w3', 'sync', 'w0', 'sync']);
  });
});

describe('CMDQ error recovery', () => {
  it('an ATC invalidation timeout fails the SYNC (CERROR_ATC_INV_SYNC); the SYNC is retried and completes', () => {
    const { smmu, devs, pci, machine } = rig({ ats: true });
    const d = pagingDomain(devs[0]!) as ArmSmmuDomain;
    d.ops.attachDev!(d, devs[0]!);
    d.ops.mapPages!(d, 0x5000n, machine.memory.allocPages(1)[0]!, 4096n, 1, RW);
    pci[0]!.atcInvalidationTimeout = true;
    expect(d.ops.unmapPages!(d, 0x5000n, 4096n, 1)).toBe(4096n);
    expect(smmu.messages.filter((m) => m.includes('CERROR_ATC_INV_SYNC'))).toHaveLength(1);
    expect(smmu.readReg(0x60)).toBe(smmu.readReg(0x64));
    expect(smmu.readReg(0x9c) & 0xfffff).toBe(smmu.cmdq.prod);
  });
});

describe('firmware description', () => {
  it('finds the StreamID under the name the core uses and writes ATS enable to the named endpoint', () => {
    const { smmu, pci } = rig({ ats: true, devices: 3 });
    const p = pci[2]!;
    const ep = { atsEnabled: false };
    smmu.addFirmwareStreams([{ name: `0000:${p.name}`, streamId: 0x2000, endpoint: ep }]);
    const dev = addDevice(smmu, { name: `0000:${p.name}` }, { ats: true, pasid: false });
    const d = pagingDomain(dev) as ArmSmmuDomain;
    expect(d.ops.attachDev!(d, dev)).toBe(0);
    expect(ep.atsEnabled).toBe(true);
    expect(SMMU_STE.get(smmu.readSte(0x2000), 'CONFIG')).toBe(5n);
  });
});

