import { describe, expect, it } from 'vitest';
import { CMDQ_OP, SMMU_CD, SMMU_CMD, SMMU_CMD_ATC_INV, SMMU_STE } from '../src/index.js';
import { GuestRam, PageTables, SmmuDriver, s1Cd, s2Ste } from './support/smmu-driver.js';
import { QUEUE_CONSUMERS, useQueueConsumer } from './support/consumers.js';

function s1(opts: ConstructorParameters<typeof SmmuDriver>[0] = {}) {
  const d = new SmmuDriver(opts);
  d.bringUp();
  const alloc = () => d.mem.allocPages(1)[0]!;
  const pt = new PageTables(d.mem, 1, 0, alloc);
  const [a, b] = [alloc(), alloc()];
  pt.map(0x10_0000n, a);
  const cd = alloc();
  d.mem.write(cd, SMMU_CD.toBytes(s1Cd(pt.root, 1)));
  d.writeSte(8, SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: cd >> 6n, EATS: 1 }));
  d.cfgiSte(8);
  const t = (iova = 0x10_0000n, write = false) => d.smmu.translate({ requesterId: 8, streamId: 8, iova, write });
  return { d, pt, a, b, cd, alloc, t };
}

describe.each(QUEUE_CONSUMERS)('%s queue consumer', (consumer) => {
  useQueueConsumer(consumer);

  describe('SMMUv3 caches keep stale state until the architected invalidation', () => {
    it('STE: a rewritten STE is ignored until CFGI_STE', () => {
      const { d, t } = s1();
      expect(t().ok).toBe(true);
      d.writeSte(8, SMMU_STE.encode({ V: 1, CONFIG: 0 }));
      expect(t().ok).toBe(true);
      d.issue([SMMU_CMD.encode({ OPCODE: CMDQ_OP.CFGI_CD_ALL, SID: 8 }) as [bigint, bigint]], true);
      expect(t().ok).toBe(true); // CD invalidation does not drop the STE
      d.cfgiSte(8);
      expect(t()).toMatchObject({ ok: false, fault: { kind: 'STE_ABORT' } });
    });

    it('STE range: CFGI_STE_RANGE covers the aligned SID block', () => {
      const { d, t } = s1();
      t();
      d.writeSte(8, SMMU_STE.encode({ V: 1, CONFIG: 0 }));
      d.issue([[BigInt(CMDQ_OP.CFGI_STE_RANGE) | (16n << 32n), 2n]], true); // SIDs 16..23
      expect(t().ok).toBe(true);
      d.issue([[BigInt(CMDQ_OP.CFGI_STE_RANGE) | (9n << 32n), 2n]], true); // SIDs 8..15
      expect(t().ok).toBe(false);
    });

    it('CD: a new TTB0 / ASID is ignored until CFGI_CD, and old TLB entries until TLBI', () => {
      const { d, t, cd, alloc, a, b } = s1();
      expect(t()).toMatchObject({ pa: a });
      const pt2 = new PageTables(d.mem, 1, 0, alloc);
      pt2.map(0x10_0000n, b);
      d.mem.write(cd, SMMU_CD.toBytes(s1Cd(pt2.root, 2)));
      expect(t()).toMatchObject({ pa: a });
      d.cfgiCd(8, 0);
      expect(t()).toMatchObject({ pa: b }); // new ASID 2 misses the TLB
      expect(d.smmu.configCache.entries().map((e) => e.kind)).toEqual(['ste', 'cd']);
    });

    it('TLB: unmap is visible only after TLBI_NH_VA (single, range) or TLBI_NH_ASID', () => {
      const { d, t, pt, a, alloc } = s1();
      for (let i = 1; i < 4; i++) pt.map(0x10_0000n + BigInt(i) * 0x1000n, alloc());
      for (let i = 0; i < 4; i++) expect(t(0x10_0000n + BigInt(i) * 0x1000n).ok).toBe(true);
      d.mem.write64(pt.root, 0n); // tear down the whole tree
      expect(t()).toMatchObject({ ok: true, pa: a });
      d.tlbi(CMDQ_OP.TLBI_NH_VA, { VMID: 0, ASID: 2, ADDR: 0x100n }); // other ASID: no effect
      expect(t().ok).toBe(true);
      d.tlbi(CMDQ_OP.TLBI_NH_VA, { VMID: 0, ASID: 1, ADDR: 0x100n, LEAF: 1 });
      expect(t()).toMatchObject({ ok: false, fault: { kind: 'F_TRANSLATION' } });
      expect(t(0x10_1000n).ok).toBe(true);
      // Range: NUM=1, SCALE=0, TG=4K → 2 pages from 0x10_1000.
      d.tlbi(CMDQ_OP.TLBI_NH_VA, { VMID: 0, ASID: 1, ADDR: 0x101n, NUM: 1, SCALE: 0, TG: 1, TTL: 3 });
      expect(t(0x10_1000n).ok).toBe(false);
      expect(t(0x10_2000n).ok).toBe(false);
      expect(t(0x10_3000n).ok).toBe(true);
      d.tlbi(CMDQ_OP.TLBI_NH_ASID, { VMID: 0, ASID: 1 });
      expect(t(0x10_3000n).ok).toBe(false);
    });

    it('TLB: TLBI_NH_VAA, NH_ALL and NSNH_ALL', () => {
      for (const [op, f] of [
        [CMDQ_OP.TLBI_NH_VAA, { VMID: 0, ADDR: 0x100n }],
        [CMDQ_OP.TLBI_NH_ALL, { VMID: 0 }],
        [CMDQ_OP.TLBI_NSNH_ALL, {}],
      ] as const) {
        const { d, t, pt } = s1();
        t();
        d.mem.write64(pt.root, 0n);
        expect(t().ok).toBe(true);
        d.tlbi(op, f);
        expect(t().ok).toBe(false);
      }
    });

    it('nested: TLBI_S2_IPA drops S2 entries, combined entries stay until TLBI_NH_ALL(VMID); S12_VMALL drops both', () => {
      const d = new SmmuDriver();
      d.bringUp();
      const g = new GuestRam(d.mem, 16);
      const { s2, host: guest } = g;
      const G = GuestRam.BASE;
      const s1t = g.stage1();
      const toPa = g.toPa;
      s1t.map(0x5000n, G + 15n * 0x1000n);
      const cd = G + 14n * 0x1000n;
      d.mem.write(toPa(cd), SMMU_CD.toBytes(s1Cd(s1t.root, 4)));
      d.writeSte(8, SMMU_STE.encode({ ...s2Ste(s2.root, 3, 7), S1CONTEXTPTR: cd >> 6n }));
      d.cfgiSte(8);
      const t = () => d.smmu.translate({ requesterId: 8, streamId: 8, iova: 0x5000n, write: true });
      expect(t()).toMatchObject({ ok: true, pa: guest[15] });
      s2.map(G + 15n * 0x1000n, guest[0]!); // hypervisor moves the guest page
      d.tlbi(CMDQ_OP.TLBI_S2_IPA, { VMID: 3, ADDR: (G >> 12n) + 15n });
      expect(t()).toMatchObject({ ok: true, pa: guest[15] }); // stale combined entry
      d.tlbi(CMDQ_OP.TLBI_NH_ALL, { VMID: 3 });
      expect(t()).toMatchObject({ ok: true, pa: guest[0] });
      s2.map(G + 15n * 0x1000n, guest[1]!);
      d.tlbi(CMDQ_OP.TLBI_S12_VMALL, { VMID: 4 });
      expect(t()).toMatchObject({ pa: guest[0] });
      d.tlbi(CMDQ_OP.TLBI_S12_VMALL, { VMID: 3 });
      expect(t()).toMatchObject({ pa: guest[1] });
    });

    it('stage 2 only: a remapped IPA is stale until TLBI_S2_IPA of that VMID', () => {
      const d = new SmmuDriver();
      d.bringUp();
      const alloc = () => d.mem.allocPages(1)[0]!;
      const s2 = new PageTables(d.mem, 2, 0, alloc);
      const [p1, p2] = [alloc(), alloc()];
      s2.map(0x8000_0000n, p1);
      d.writeSte(8, SMMU_STE.encode(s2Ste(s2.root, 6)));
      d.cfgiSte(8);
      const t = () => d.smmu.translate({ requesterId: 8, streamId: 8, iova: 0x8000_0000n, write: true });
      expect(t()).toMatchObject({ pa: p1 });
      s2.map(0x8000_0000n, p2);
      d.tlbi(CMDQ_OP.TLBI_S2_IPA, { VMID: 7, ADDR: 0x8_0000n });
      expect(t()).toMatchObject({ pa: p1 });
      d.tlbi(CMDQ_OP.TLBI_NH_ALL, { VMID: 6 }); // stage-1 scope: no effect on stage-2 entries
      expect(t()).toMatchObject({ pa: p1 });
      d.tlbi(CMDQ_OP.TLBI_S2_IPA, { VMID: 6, ADDR: 0x8_0000n });
      expect(t()).toMatchObject({ pa: p2 });
    });

    it('ATC: the device keeps using its ATC until ATC_INV reaches it', () => {
      const { d, pt, a, b, cd } = s1();
      const dev = d.machine.devices[0]!;
      dev.atsEnabled = true;
      d.mem.write32(a, 0x11);
      d.mem.write32(b, 0x22);
      expect(dev.dma({ iova: 0x10_0000n, length: 1, write: false })).toEqual({ ok: true, data: Uint8Array.of(0x11) });
      pt.map(0x10_0000n, b);
      d.tlbi(CMDQ_OP.TLBI_NH_ASID, { VMID: 0, ASID: 1 });
      expect(dev.dma({ iova: 0x10_0000n, length: 1, write: false })).toEqual({ ok: true, data: Uint8Array.of(0x11) });
      d.issue([SMMU_CMD_ATC_INV.encode({ OPCODE: CMDQ_OP.ATC_INV, SID: 8, SIZE: 52 }) as [bigint, bigint]], true);
      expect(dev.dma({ iova: 0x10_0000n, length: 1, write: false })).toEqual({ ok: true, data: Uint8Array.of(0x22) });
      // The STE stops allowing ATS: translated transactions from the (stale) ATC are forbidden.
      d.writeSte(8, SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: cd >> 6n, EATS: 0 }));
      d.cfgiSte(8);
      expect(dev.dma({ iova: 0x10_0000n, length: 1, write: false })).toMatchObject({ ok: false, fault: { kind: 'F_TRANSL_FORBIDDEN', iova: b } });
    });

    it('bounded caches evict the oldest entry; strict caches never evict', () => {
      for (const strict of [false, true]) {
        const { d, pt, alloc, t } = s1({ strict, smmu: { tlbEntries: 4 } });
        for (let i = 0; i < 8; i++) pt.map(0x20_0000n + BigInt(i) * 0x1000n, alloc());
        for (let i = 0; i < 8; i++) t(0x20_0000n + BigInt(i) * 0x1000n);
        expect(d.smmu.tlb.size).toBe(strict ? 8 : 4);
        expect(d.smmu.tlb.evictions).toBe(strict ? 0 : 4);
      }
    });
  });
});
