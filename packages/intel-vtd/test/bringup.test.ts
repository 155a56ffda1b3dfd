import { describe, expect, it } from 'vitest';
import { VTD_REG } from '@iommufd/hw-model';
import { VtdTestbed, ATS_PASID_PRI, PLAIN, hexDesc, words } from './harness.js';

describe('probe and bring-up, as init_dmars does it', () => {
  it('enables QI (256-bit, 8 KiB), latches a scalable root table, sets up the PRQ and fault event, enables translation', () => {
    const t = new VtdTestbed();
    const r = t.iommu.regs;
    // TES | RTPS | QIES
    expect(r.read32(VTD_REG.GSTS) >>> 0).toBe(0xc400_0000);
    expect(r.read64(VTD_REG.RTADDR)).toBe(t.iommu.rootTable | 0x400n);
    expect(r.read64(VTD_REG.IQA)).toBe(t.iommu.qi.base | 0x801n);
    expect(r.read64(VTD_REG.PQA)).toBe(t.iommu.prq! | 4n);
    expect(r.read32(VTD_REG.FECTL)).toBe(0);
    expect(r.read32(VTD_REG.PECTL)).toBe(0);
    expect(r.read32(VTD_REG.FEDATA)).toBe(0x30);
    expect(r.read32(VTD_REG.PEDATA)).toBe(0x31);
    // Global context-cache, global PASID-cache, global IOTLB (CAP.ESRTPS is clear): one batch each.
    expect(t.iommu.qi.log.map((b) => hexDesc(b.descs[0]!.slice(0, 2)))).toEqual([
      ['0x0000000000000011', '0x0000000000000000'],
      ['0x0000000000000037', '0x0000000000000000'],
      ['0x0000000000000012', '0x0000000000000000'],
    ]);
    // Each batch ends with a status-write wait to its status slot; hardware wrote QI_DONE.
    const b0 = t.iommu.qi.log[0]!;
    expect(hexDesc(b0.wait.slice(0, 2))).toEqual(['0x0000000200000025', '0x' + (t.mem.read64(t.iommu.qi.base + 16n * 2n + 8n)).toString(16).padStart(16, '0')]);
    expect(r.read64(VTD_REG.IQH)).toBe(BigInt(6 * 32));
    expect(r.read64(VTD_REG.IQT)).toBe(BigInt(6 * 32));
    expect(t.iommu.agaw).toBe(2);
    expect(t.iommu.allocatedDids).toEqual([]);
  });

  it('writes the scalable-mode root and context entries of a probed device (PASID directory, PDTS, DTE/PASIDE/PRE per capability)', () => {
    const t = new VtdTestbed({}, [PLAIN, ATS_PASID_PRI]);
    const root = t.iommu.rootTable;
    const lower = t.mem.read64(root);
    expect(lower & 1n).toBe(1n);
    const ctxTable = lower & ~0xfffn;
    const plainInfo = t.iommu.devices.get(0x10)!;
    const atsInfo = t.iommu.devices.get(0x18)!;
    // devfn 0x10: P, PDTS=2 (one 4 KiB directory = 512 entries), no DTE/PASIDE/PRE.
    expect(words(t.mem.read(ctxTable + 0x10n * 32n, 32))).toEqual([plainInfo.pasidDir | (2n << 9n) | 1n, 0n, 0n, 0n]);
    // A 16-bit PASID device gets a two-page directory (1024 entries): PDTS=3.
    expect(words(t.iommu.contextEntry(0x18))).toEqual([atsInfo.pasidDir | (3n << 9n) | 0b11101n, 0n, 0n, 0n]);
    expect(atsInfo.maxPasid).toBe(65536);
    expect(plainInfo.maxPasid).toBe(32768);
    expect(t.pci[1]!.atsEnabled).toBe(true);
    expect(t.pci[0]!.atsEnabled).toBe(false);
  });
});
