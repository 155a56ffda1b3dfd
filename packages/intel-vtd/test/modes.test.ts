import { describe, expect, it } from 'vitest';
import { IOMMU_READ, IOMMU_WRITE } from '@iommufd/driver-api';
import { createMachine, VTD_REG } from '@iommufd/hw-model';
import { EOPNOTSUPP, IOMMU_HWPT_ALLOC_NEST_PARENT } from '@iommufd/uapi';
import { IntelVtdError, intelIommuOps, pasidEntryBytes, probeIntelIommu, type DmarDomain } from '../src/index.js';
import { ATS_PASID_PRI, VTD_BASE, VtdTestbed, hexDesc, words } from './harness.js';

const RW = IOMMU_READ | IOMMU_WRITE;

describe('capability-dependent behaviour', () => {
  it('57-bit unit with FS5LP: first-stage domains are 5-level (FSPM=1) and translate above 2^48', () => {
    const t = new VtdTestbed({ addressWidth: 57 });
    expect(t.iommu.agaw).toBe(3);
    const d = t.allocPaging() as DmarDomain;
    expect(d.pgtable!.levels).toBe(5);
    expect(d.geometry.apertureEnd).toBe((1n << 56n) - 1n);
    expect(d.ops.attachDev!(d, t.devs[0]!)).toBe(0);
    const e = words(pasidEntryBytes(t.iommu, t.iommu.devices.get(0x10)!));
    expect(e[0]).toBe((3n << 2n) | (1n << 6n) | 1n);
    expect(e[2]).toBe(d.pgtable!.root | (1n << 2n));
    const buf = t.page();
    const iova = 0x00ab_cdef_1234_5000n;
    expect(d.ops.mapPages!(d, iova, buf, 4096n, 1, RW).status).toBe(0);
    expect(t.pci[0]!.dma({ iova, length: 2, write: true, data: new Uint8Array([7, 7]) })).toEqual({ ok: true });
    expect([...t.mem.read(buf, 2)]).toEqual([7, 7]);
  });

  it('caching mode: new PASID entries and new second-stage mappings are invalidated (non-present entries may be cached)', () => {
    const t = new VtdTestbed({ cachingMode: true });
    const d = t.allocPaging(IOMMU_HWPT_ALLOC_NEST_PARENT);
    const mark = t.iommu.qi.log.length;
    expect(d.ops.attachDev!(d, t.devs[0]!)).toBe(0);
    expect(d.ops.mapPages!(d, 0x3000n, t.page(), 4096n, 1, RW).status).toBe(0);
    expect(t.batchesSince(mark).map((b) => b.map((x) => hexDesc(x.slice(0, 2))))).toEqual([
      [['0x0000000000020017', '0x0000000000000000']], // PASID cache, PASID-selective, DID 2
      [['0x0000000000020026', '0x0000000000000000']], // PIOTLB all in PASID
      [['0x0000000000020032', '0x0000000000003000']], // iotlb_sync_map: PSI
    ]);
    // First-stage mappings need no flush even in caching mode.
    const fs = t.allocPaging();
    const m2 = t.iommu.qi.log.length;
    expect(fs.ops.mapPages!(fs, 0x3000n, t.page(), 4096n, 1, RW).status).toBe(0);
    expect(t.iommu.qi.log.length).toBe(m2);
  });

  it('without first-stage support every paging domain is second stage', () => {
    const t = new VtdTestbed({ firstStage: false });
    expect((t.allocPaging() as DmarDomain).stage).toBe('second-stage');
  });

  it('an address without a unit reads ECAP.QI = 0 and is refused', () => {
    const noUnit = createMachine({ ramBytes: 0x100_0000n });
    expect(() => probeIntelIommu({ memory: noUnit.memory, base: VTD_BASE })).toThrow(IntelVtdError);
  });

  it('legacy mode: 128-bit queue, legacy root/context entries per attached domain, DMA, PSI, context teardown', () => {
    const t = new VtdTestbed({ scalableMode: false }, [{ bdf: { bus: 0, dev: 2, fn: 0 }, capabilities: { ats: true } }]);
    expect(t.iommu.smSupported).toBe(false);
    expect(t.iommu.regs.read64(VTD_REG.RTADDR)).toBe(t.iommu.rootTable);
    expect(t.iommu.regs.read64(VTD_REG.IQA)).toBe(t.iommu.qi.base);
    // Global context-cache and IOTLB flushes only (no PASID cache without scalable mode).
    expect(t.iommu.qi.log.map((b) => hexDesc(b.descs[0]!.slice(0, 2)))).toEqual([
      ['0x0000000000000011', '0x0000000000000000'],
      ['0x0000000000000012', '0x0000000000000000'],
    ]);
    expect(words(t.iommu.contextEntry(0x10))).toEqual([0n, 0n]);
    const d = t.allocPaging() as DmarDomain;
    expect(d.stage).toBe('second-stage');
    expect(d.ops.setDevPasid!(d, t.devs[0]!, 1, undefined)).toBe(EOPNOTSUPP);
    expect(d.ops.attachDev!(d, t.devs[0]!)).toBe(0);
    // P, TT=1 (device-TLB), SSPTPTR; AW=2, DID=2.
    expect(words(t.iommu.contextEntry(0x10))).toEqual([d.pgtable!.root | (1n << 2n) | 1n, 2n | (2n << 8n)]);
    const buf = t.page();
    expect(d.ops.mapPages!(d, 0x7000n, buf, 4096n, 1, RW).status).toBe(0);
    expect(t.pci[0]!.dma({ iova: 0x7000n, length: 2, write: true, data: new Uint8Array([4, 2]) })).toEqual({ ok: true });
    expect([...t.mem.read(buf, 2)]).toEqual([4, 2]);
    const mark = t.iommu.qi.log.length;
    expect(d.ops.unmapPages!(d, 0x7000n, 4096n, 1)).toBe(4096n);
    expect(intelIommuOps.blockedDomain.ops.attachDev!(intelIommuOps.blockedDomain, t.devs[0]!)).toBe(0);
    expect(t.batchesSince(mark).map((b) => b.map((x) => hexDesc(x.slice(0, 2))))).toEqual([
      [
        ['0x0000000000020032', '0x0000000000007000'],
        ['0x0000001000000003', '0x0000000000007000'],
      ],
      [['0x0000001000020031', '0x0000000000000000']], // context cache, device-selective, DID 2
      [['0x0000000000020022', '0x0000000000000000']],
      [['0x0000001000000003', '0x7ffffffffffff001']],
    ]);
    expect(words(t.iommu.contextEntry(0x10))).toEqual([0n, 0n]);
    expect(t.iommu.allocatedDids).toEqual([]);
    expect(t.pci[0]!.dma({ iova: 0x7000n, length: 2, write: false }).ok).toBe(false);
  });

  it('the PRQ drain on teardown of a fault-capable attachment: fence wait, DSI, device-TLB, and a PD wait', () => {
    const t = new VtdTestbed({}, [ATS_PASID_PRI]);
    const d = t.allocPaging(IOMMU_HWPT_ALLOC_NEST_PARENT);
    d.iopfHandler = () => 0;
    expect(d.ops.attachDev!(d, t.devs[0]!)).toBe(0);
    const other = t.allocPaging(IOMMU_HWPT_ALLOC_NEST_PARENT);
    const mark = t.iommu.qi.log.length;
    expect(other.ops.attachDev!(other, t.devs[0]!)).toBe(0);
    const log = t.iommu.qi.log.slice(mark);
    expect(log.map((b) => b.descs.map((x) => hexDesc(x.slice(0, 2))))).toEqual([
      [['0x0000000000020017', '0x0000000000000000']],
      [['0x0000000000020022', '0x0000000000000000']],
      [['0x0000001800000003', '0x7ffffffffffff001']],
      [
        ['0x0000000200000045', '0x0000000000000000'],
        ['0x0000000000020022', '0x0000000000000000'],
        ['0x0000001800000003', '0x7ffffffffffff001'],
      ],
    ]);
    expect(log.every((b) => b.status === 0)).toBe(true);
    // The drain batch's wait carries PD (bit 7).
    expect(log[3]!.wait[0]! & 0xffn).toBe(0xa5n);
  });
});
