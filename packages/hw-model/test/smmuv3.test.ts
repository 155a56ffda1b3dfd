import { describe, expect, it } from 'vitest';
import {
  CMDQ_OP,
  EVT_ID,
  SMMU_CD,
  SMMU_EVENT,
  SMMU_EVENT_FETCH,
  SMMU_IDR0,
  SMMU_IDR1,
  SMMU_L1CD,
  SMMU_REG,
  SMMU_STE,
  SmmuV3,
  SmmuV3OptionsError,
  PhysicalMemory,
} from '../src/index.js';
import { GuestRam, PageTables, SMMU_BASE, SmmuDriver, s1Cd, s1Setup, s2Ste } from './support/smmu-driver.js';

const RAM = 0x4000_0000n;

describe('SMMUv3 registers', () => {
  it('reports the configured ID registers and reset values', () => {
    const d = new SmmuDriver({ smmu: { asidBits: 8, ssidBits: 5, sidBits: 12, ril: false, stage2: false } });
    const idr0 = d.reg32(SMMU_REG.IDR0);
    expect(SMMU_IDR0.decode([BigInt(idr0)])).toMatchObject({ S1P: 1n, S2P: 0n, TTF: 2n, ASID16: 0n, VMID16: 1n, ATS: 1n, PRI: 1n, ST_LEVEL: 1n, TERM_MODEL: 1n, STALL_MODEL: 1n });
    expect(SMMU_IDR1.decode([BigInt(d.reg32(SMMU_REG.IDR1))])).toMatchObject({ SIDSIZE: 12n, SSIDSIZE: 5n, CMDQS: 19n });
    expect(d.reg32(SMMU_REG.IDR3) & (1 << 10)).toBe(0);
    expect(d.reg32(SMMU_REG.IDR5)).toBe(0x15);
    expect(d.reg32(SMMU_REG.IIDR)).toBe(0x43b);
    expect(d.reg32(SMMU_REG.AIDR)).toBe(1);
    expect(d.reg32(SMMU_REG.GBPA)).toBe(0x1000);
    expect(d.reg32(SMMU_REG.CR0)).toBe(0);
    expect(d.reg32(0xfe0)).toBe(0x84);
    expect(() => new SmmuV3(new PhysicalMemory(), { stage1: false, stage2: false })).toThrow(SmmuV3OptionsError);
    expect(() => new SmmuV3(new PhysicalMemory(), { sidBits: 33 })).toThrow(/sidBits must be an integer in 0..32/);
  });

  it('mirrors CR0 in CR0ACK, IRQ_CTRL in IRQ_CTRLACK, applies GBPA only with UPDATE', () => {
    const d = new SmmuDriver();
    d.w32(SMMU_REG.CR0, 0x1c);
    expect(d.reg32(SMMU_REG.CR0ACK)).toBe(0x1c);
    d.w32(SMMU_REG.IRQ_CTRL, 0xff);
    expect(d.reg32(SMMU_REG.IRQ_CTRLACK)).toBe(7);
    d.w32(SMMU_REG.GBPA, 1 << 20);
    expect(d.reg32(SMMU_REG.GBPA)).toBe(0x1000);
    d.w32(SMMU_REG.GBPA, (1 << 31) | (1 << 20));
    expect(d.reg32(SMMU_REG.GBPA)).toBe(1 << 20);
  });

  it('accesses 64-bit registers whole or as halves, and page 1 aliases page 0', () => {
    const d = new SmmuDriver();
    d.w64(SMMU_REG.EVTQ_BASE, 0x4000_0000_1234_5667n);
    expect(d.mem.read64(SMMU_BASE + BigInt(SMMU_REG.EVTQ_BASE))).toBe(0x4000_0000_1234_5667n);
    d.w32(SMMU_REG.EVTQ_BASE + 4, 0x0000_0001);
    expect(d.reg32(SMMU_REG.EVTQ_BASE)).toBe(0x1234_5667);
    expect(d.reg32(SMMU_REG.EVTQ_BASE + 4)).toBe(1);
    d.w32(0x10000 + SMMU_REG.EVTQ_CONS, 5);
    expect(d.reg32(SMMU_REG.EVTQ_CONS)).toBe(5);
    expect(d.mem.read8(SMMU_BASE)).toBe(0); // sub-word accesses are invalid
  });
});

describe('SMMUv3 translation', () => {
  it('bypasses or aborts by GBPA while SMMUEN=0', () => {
    const d = new SmmuDriver();
    const dev = d.machine.devices[0]!;
    d.mem.write32(RAM + 0x100n, 0xabcd);
    expect(dev.dma({ iova: RAM + 0x100n, length: 4, write: false })).toEqual({ ok: true, data: Uint8Array.of(0xcd, 0xab, 0, 0) });
    d.w32(SMMU_REG.GBPA, (1 << 31) | (1 << 20));
    expect(dev.dma({ iova: RAM, length: 4, write: false })).toMatchObject({ ok: false, fault: { kind: 'GBPA_ABORT', recorded: false } });
  });

  it('aborts silently for Config=abort and passes through for bypass', () => {
    const d = new SmmuDriver();
    d.bringUp();
    const dev = d.machine.devices[0]!;
    expect(dev.dma({ iova: RAM, length: 4, write: false })).toMatchObject({ ok: false, fault: { kind: 'STE_ABORT', recorded: false } });
    d.writeSte(8, SMMU_STE.encode({ V: 1, CONFIG: 4 }));
    d.cfgiSte(8);
    expect(dev.dma({ iova: RAM, length: 4, write: true, data: Uint8Array.of(1, 2, 3, 4) })).toEqual({ ok: true });
    expect(d.mem.read32(RAM)).toBe(0x04030201);
    expect(d.events()).toEqual([]);
  });

  it('translates stage 1 through a linear and a 2-level stream table', () => {
    for (const twoLevel of [false, true]) {
      const { d, data, dev } = s1Setup({ twoLevel });
      expect(dev.dma({ iova: 0x10_0010n, length: 4, write: true, data: Uint8Array.of(9, 8, 7, 6) })).toEqual({ ok: true });
      expect(d.mem.read32(data + 0x10n)).toBe(0x06070809);
      expect(d.smmu.tlb.entries()).toEqual([{ stage: 's1', vmid: 0, asid: 1, global: false, iova: 0x10_0000n, size: 0x1000n, oa: data, s1perm: 31, s2perm: 31 }]);
    }
  });

  it('maps 2 MiB and 1 GiB blocks', () => {
    const { d, pt, dev } = s1Setup();
    pt.map(0x4000_0000n, RAM + 0x20_0000n, 2);
    pt.map(0x80_0000_0000n, RAM, 1);
    const a = d.smmu.translate({ requesterId: 8, streamId: 8, iova: 0x4001_2345n, write: false });
    expect(a).toEqual({ ok: true, pa: RAM + 0x21_2345n, pageSize: 0x20_0000n, writable: true });
    const b = d.smmu.translate({ requesterId: 8, streamId: 8, iova: 0x80_0765_4321n, write: true });
    expect(b).toEqual({ ok: true, pa: RAM + 0x765_4321n, pageSize: 0x4000_0000n, writable: true });
    void dev;
  });

  it('selects CDs by SubstreamID in linear and 2-level CD tables', () => {
    const { d, alloc } = s1Setup();
    for (const fmt of [0, 1, 2] as const) {
      const pages = [alloc(), alloc()];
      const pt = new PageTables(d.mem, 1, 0, alloc);
      pt.map(0x20_0000n, pages[1]!);
      let ctx: bigint;
      const ssid = fmt === 0 ? 3 : 1029;
      if (fmt === 0) {
        ctx = alloc();
        d.mem.write(ctx + 3n * 64n, SMMU_CD.toBytes(s1Cd(pt.root, 7)));
      } else {
        ctx = alloc();
        const leaf = d.mem.allocPages(16)[0]!;
        const leafBits = fmt === 1 ? 6 : 10;
        d.mem.write64(ctx + BigInt(ssid >> leafBits) * 8n, SMMU_L1CD.encode({ V: 1, L2PTR: leaf >> 12n })[0]!);
        d.mem.write(leaf + BigInt(ssid & ((1 << leafBits) - 1)) * 64n, SMMU_CD.toBytes(s1Cd(pt.root, 7)));
      }
      d.writeSte(16, SMMU_STE.encode({ V: 1, CONFIG: 5, S1FMT: fmt, S1CONTEXTPTR: ctx >> 6n, S1CDMAX: 11, S1DSS: 0 }));
      d.cfgiSte(16);
      const t = d.smmu.translate({ requesterId: 16, streamId: 16, pasid: ssid, iova: 0x20_0008n, write: false, priv: false });
      expect(t).toEqual({ ok: true, pa: pages[1]! + 8n, pageSize: 0x1000n, writable: true });
      d.issue([[BigInt(CMDQ_OP.TLBI_NSNH_ALL), 0n]], true);
    }
  });

  it('translates stage 2 only and nested (every S1 table access through S2)', () => {
    const d = new SmmuDriver();
    d.bringUp();
    // Guest RAM: IPA 0x8000_0000 + n ↦ a host page, for 64 pages.
    const g = new GuestRam(d.mem, 64);
    const { s2, host: guest, toPa } = g;
    const ipaOf = (i: number) => g.ipa(i);
    // S2-only first.
    d.writeSte(8, SMMU_STE.encode(s2Ste(s2.root, 5)));
    d.cfgiSte(8);
    const dev = d.machine.devices[0]!;
    d.mem.write32(guest[40]!, 0x5555);
    expect(dev.dma({ iova: ipaOf(40), length: 4, write: false })).toEqual({ ok: true, data: Uint8Array.of(0x55, 0x55, 0, 0) });
    // Nested: guest S1 tables and CD in guest memory.
    const s1 = g.stage1();
    s1.map(0x1234_5000n, ipaOf(41));
    const cd = g.alloc();
    d.mem.write(toPa(cd), SMMU_CD.toBytes(s1Cd(s1.root, 9)));
    d.writeSte(8, SMMU_STE.encode({ ...s2Ste(s2.root, 5, 7), S1CONTEXTPTR: cd >> 6n, S1CIR: 1, S1COR: 1, S1CSH: 3, MEV: 1 }));
    d.cfgiSte(8);
    d.mem.write32(guest[41]! + 0x10n, 0x7777);
    expect(dev.dma({ iova: 0x1234_5010n, length: 4, write: false })).toEqual({ ok: true, data: Uint8Array.of(0x77, 0x77, 0, 0) });
    const stages = d.smmu.tlb.entries().map((e) => `${e.stage}:${e.vmid}:${e.asid}:${e.iova.toString(16)}`);
    expect(stages).toContain('nested:5:9:12345000');
    expect(stages).toContain(`s2:5:-1:${ipaOf(41).toString(16)}`);
    expect(stages).toContain(`s2:5:-1:${cd.toString(16).replace(/.{3}$/, '000')}`);
  });
});

/** The record written for a fault, decoded. */
function only(d: SmmuDriver): bigint[] {
  const ev = d.events();
  expect(ev).toHaveLength(1);
  return ev[0]!;
}

describe('SMMUv3 S1DSS', () => {
  it('bypasses stage 1 (S1DSS=1) or uses CD 0 (S1DSS=2) for traffic without a SubstreamID', () => {
    const { d, cdTable, pt, alloc } = s1Setup();
    const pasidPage = alloc();
    pt.map(0x40_0000n, pasidPage);
    d.mem.write(cdTable + 64n, SMMU_CD.toBytes(s1Cd(pt.root, 5)));
    const t = (pasid?: number) => d.smmu.translate({ requesterId: 8, streamId: 8, iova: 0x40_0000n, write: false, ...(pasid !== undefined ? { pasid } : {}) });
    d.writeSte(8, SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: cdTable >> 6n, S1CDMAX: 1, S1DSS: 1 }));
    d.cfgiSte(8);
    expect(t()).toEqual({ ok: true, pa: 0x40_0000n, pageSize: 0x1000n, writable: true });
    expect(t(1)).toEqual({ ok: true, pa: pasidPage, pageSize: 0x1000n, writable: true });
    d.writeSte(8, SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: cdTable >> 6n, S1CDMAX: 1, S1DSS: 2 }));
    d.cfgiSte(8);
    expect(t()).toMatchObject({ ok: true, pa: pasidPage });
    expect(t(0)).toMatchObject({ ok: false, fault: { kind: 'C_BAD_SUBSTREAMID' } }); // SSID 0 is reserved with S1DSS=2
  });
});

describe('SMMUv3 faults and event records', () => {
  it('F_TRANSLATION: byte-exact record with SSV/SSID, RnW, PnU, InD', () => {
    const { d, dev } = s1Setup();
    const r = dev.dma({ iova: 0x30_0000n, length: 4, write: false });
    expect(r).toEqual({ ok: false, bytesDone: 0, fault: { kind: 'F_TRANSLATION', code: 0x10, iova: 0x30_0000n, write: false, recorded: true, stall: false } });
    const ev = only(d);
    expect(ev).toEqual([0x0000_0008_0000_0010n, (1n << 35n) | (2n << 40n), 0x30_0000n, 0n]);
    expect(SMMU_EVENT.decode(ev)).toMatchObject({ ID: 0x10n, SID: 8n, RNW: 1n, CLASS: 2n, INPUT_ADDR: 0x30_0000n });
  });

  it('F_PERMISSION on a write to a read-only page, F_ACCESS before permission, F_ADDR_SIZE', () => {
    const { d, pt, dev, alloc } = s1Setup();
    pt.map(0x11_0000n, alloc(), 3, { write: false });
    expect(dev.dma({ iova: 0x11_0000n, length: 4, write: false }).ok).toBe(true);
    expect(dev.dma({ iova: 0x11_0000n, length: 4, write: true })).toMatchObject({ ok: false, fault: { kind: 'F_PERMISSION' } });
    expect(only(d)[1]).toBe(2n << 40n);
    pt.map(0x12_0000n, alloc(), 3, { write: false, af: false });
    expect(dev.dma({ iova: 0x12_0000n, length: 4, write: true })).toMatchObject({ ok: false, fault: { kind: 'F_ACCESS', code: 0x12 } });
    d.events();
    // A 40-bit IPS: an output address at 2^40 is an address size fault.
    const { cdTable } = { cdTable: d.mem.allocPages(1)[0]! };
    d.mem.write(cdTable, SMMU_CD.toBytes(s1Cd(pt.root, 2, { IPS: 2 })));
    d.writeSte(8, SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: cdTable >> 6n }));
    d.cfgiSte(8);
    pt.map(0x14_0000n, 1n << 40n, 3);
    pt.map(0x15_0000n, (1n << 40n) - 0x1000n, 3);
    expect(d.smmu.translate({ requesterId: 8, streamId: 8, iova: 0x14_0000n, write: false, priv: true })).toMatchObject({ ok: false, fault: { kind: 'F_ADDR_SIZE', code: 0x11 } });
    expect(d.smmu.translate({ requesterId: 8, streamId: 8, iova: 0x15_0000n, write: false, priv: true }).ok).toBe(true);
    expect(only(d)[0]).toBe(0x0000_0008_0000_0011n);
  });

  it('unprivileged accesses need AP[1] (EL0) and exec needs XN clear', () => {
    const { d, pt, dev, alloc } = s1Setup();
    pt.map(0x15_0000n, alloc(), 3, { el0: false });
    expect(dev.dma({ iova: 0x15_0000n, length: 4, write: false })).toMatchObject({ ok: false, fault: { kind: 'F_PERMISSION' } });
    expect(dev.dma({ iova: 0x15_0000n, length: 4, write: false, priv: true, pasid: undefined }).ok).toBe(true);
    pt.map(0x16_0000n, alloc(), 3, { xn: true });
    expect(d.smmu.translate({ requesterId: 8, streamId: 8, iova: 0x16_0000n, write: false, exec: true })).toMatchObject({ ok: false, fault: { kind: 'F_PERMISSION' } });
    const ev = d.events();
    expect(SMMU_EVENT.decode(ev[1]!)).toMatchObject({ IND: 1n, PNU: 0n, RNW: 1n });
  });

  it('does not record stage-1 faults when CD.R = 0', () => {
    const { d, pt, cdTable, dev } = s1Setup();
    d.mem.write(cdTable, SMMU_CD.toBytes(s1Cd(pt.root, 1, { R: 0 })));
    d.cfgiCd(8, 0);
    expect(dev.dma({ iova: 0x30_0000n, length: 4, write: false })).toMatchObject({ ok: false, fault: { kind: 'F_TRANSLATION', recorded: false } });
    expect(d.events()).toEqual([]);
  });

  it('configuration faults: C_BAD_STREAMID, C_BAD_STE, F_STE_FETCH, C_BAD_CD, F_CD_FETCH, C_BAD_SUBSTREAMID, F_STREAM_DISABLED', () => {
    const { d, cdTable, pt } = s1Setup();
    const t = (sid: number, pasid?: number) => d.smmu.translate({ requesterId: sid, streamId: sid, iova: 0x10_0000n, write: true, ...(pasid !== undefined ? { pasid } : {}) });
    expect(t(4096)).toMatchObject({ ok: false, fault: { kind: 'C_BAD_STREAMID', code: 2 } });
    expect(only(d)).toEqual([0x0000_1000_0000_0002n, 0n, 0n, 0n]); // config errors carry no address
    d.writeSte(9, SMMU_STE.encode({ V: 0 }));
    expect(t(9)).toMatchObject({ ok: false, fault: { kind: 'C_BAD_STE' } });
    expect(only(d)[0]).toBe(0x0000_0009_0000_0004n);
    d.writeSte(10, SMMU_STE.encode({ V: 1, CONFIG: 2 })); // reserved Config
    expect(t(10)).toMatchObject({ ok: false, fault: { kind: 'C_BAD_STE' } });
    d.events();
    // S1 with a CD pointer outside RAM.
    d.writeSte(11, SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: 0x1000_0000n >> 6n }));
    expect(t(11)).toMatchObject({ ok: false, fault: { kind: 'F_CD_FETCH' } });
    expect(SMMU_EVENT_FETCH.decode(only(d))).toMatchObject({ ID: 9n, SID: 11n, FETCH_ADDR: 0x1000_0000n >> 3n });
    // Bad CD (A = 0).
    d.mem.write(cdTable + 64n, SMMU_CD.toBytes(s1Cd(pt.root, 1, { A: 0 })));
    d.writeSte(12, SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: (cdTable + 64n) >> 6n }));
    expect(t(12)).toMatchObject({ ok: false, fault: { kind: 'C_BAD_CD', code: 0x0a } });
    d.events();
    // SSID on an STE without substreams; SSID beyond S1CDMax; no SSID with S1DSS=terminate.
    expect(t(8, 1)).toMatchObject({ ok: false, fault: { kind: 'C_BAD_SUBSTREAMID' } });
    expect(only(d)[0]).toBe(0x0000_0008_0000_1808n);
    d.writeSte(13, SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: cdTable >> 6n, S1CDMAX: 2, S1DSS: 0 }));
    expect(t(13, 4)).toMatchObject({ ok: false, fault: { kind: 'C_BAD_SUBSTREAMID' } });
    expect(t(13)).toMatchObject({ ok: false, fault: { kind: 'F_STREAM_DISABLED', code: 6 } });
    expect(d.events()).toEqual([
      [0x0000_000d_0000_4808n, 0n, 0n, 0n],
      [0x0000_000d_0000_0006n, 0n, 0n, 0n],
    ]);
  });

  it('F_STE_FETCH and C_BAD_STREAMID from a 2-level stream table', () => {
    const d = new SmmuDriver({ twoLevel: true });
    d.bringUp();
    const t = (sid: number) => d.smmu.translate({ requesterId: sid, streamId: sid, iova: 0n, write: false });
    expect(t(0x300)).toMatchObject({ ok: false, fault: { kind: 'C_BAD_STREAMID' } }); // L1 SPAN = 0
    d.mem.write64(d.strtab + 4n * 8n, (0x2000_0000n) | 9n);
    expect(t(0x400)).toMatchObject({ ok: false, fault: { kind: 'F_STE_FETCH' } });
    const ev = d.events();
    expect(ev.map((e) => e[0]! & 0xffn)).toEqual([2n, 3n]);
    expect(SMMU_EVENT_FETCH.get(ev[1]!, 'FETCH_ADDR') << 3n).toBe(0x2000_0000n);
  });

  it('nested stage-2 faults carry S2=1, CLASS CD/TT/IN and the IPA', () => {
    const d = new SmmuDriver();
    d.bringUp();
    const g = new GuestRam(d.mem, 8);
    const { s2, toPa } = g;
    const s1 = g.stage1();
    s1.map(0x1000n, 0x9000_0000n); // leaf IPA not mapped by S2
    const cd = 0x8000_0000n + 7n * 0x1000n;
    d.mem.write(toPa(cd), SMMU_CD.toBytes(s1Cd(s1.root, 3)));
    const ste = (ctx: bigint) => SMMU_STE.encode({ ...s2Ste(s2.root, 2, 7), S1CONTEXTPTR: ctx >> 6n });
    d.writeSte(8, ste(cd));
    d.cfgiSte(8);
    const t = (iova: bigint) => d.smmu.translate({ requesterId: 8, streamId: 8, iova, write: true });
    expect(t(0x1000n)).toMatchObject({ ok: false, fault: { kind: 'F_TRANSLATION', recorded: true } });
    expect(only(d)).toEqual([0x0000_0008_0000_0010n, (1n << 39n) | (2n << 40n), 0x1000n, 0x9000_0000n]);
    // CD pointer IPA not mapped: CLASS = CD.
    d.writeSte(8, ste(0xa000_0000n));
    d.cfgiSte(8);
    expect(t(0x1000n)).toMatchObject({ ok: false, fault: { kind: 'F_TRANSLATION' } });
    expect(only(d)).toEqual([0x0000_0008_0000_0010n, (1n << 39n) | (0n << 40n), 0x1000n, 0xa000_0000n]);
    // S1 TTB IPA not mapped: CLASS = TT, TTRnW = 1.
    d.mem.write(toPa(cd), SMMU_CD.toBytes(s1Cd(0xb000_0000n, 3)));
    d.writeSte(8, ste(cd));
    d.cfgiSte(8);
    expect(t(0x1000n)).toMatchObject({ ok: false, fault: { kind: 'F_TRANSLATION' } });
    expect(only(d)).toEqual([0x0000_0008_0000_0010n, (1n << 39n) | (1n << 40n) | (1n << 44n), 0x1000n, 0xb000_0000n]);
  });

  it('F_WALK_EABT when a table pointer leaves RAM', () => {
    const { d, pt } = s1Setup();
    d.mem.write64(pt.root + 8n, (0x2000_0000n) | 3n); // L0 index 1 → table outside RAM
    const r = d.smmu.translate({ requesterId: 8, streamId: 8, iova: 1n << 39n, write: false });
    expect(r).toMatchObject({ ok: false, fault: { kind: 'F_WALK_EABT', code: 0x0b, recorded: true } });
    expect(SMMU_EVENT_FETCH.decode(only(d))).toMatchObject({ ID: 0x0bn, CLASS: 1n, FETCH_ADDR: 0x2000_0000n >> 3n });
  });

  it('F_TRANSL_FORBIDDEN and F_BAD_ATS_TREQ for ATS traffic the STE does not allow', () => {
    const { d } = s1Setup();
    d.writeSte(16, SMMU_STE.encode({ V: 1, CONFIG: 4 }));
    d.cfgiSte(16);
    expect(d.smmu.translate({ requesterId: 16, streamId: 16, iova: 0x5000n, write: true, ats: 'translated' })).toMatchObject({ ok: false, fault: { kind: 'F_TRANSL_FORBIDDEN' } });
    expect(d.smmu.translate({ requesterId: 16, streamId: 16, iova: 0x5000n, write: true, translationRequest: true })).toMatchObject({ ok: false, fault: { kind: 'F_BAD_ATS_TREQ' } });
    expect(d.smmu.translate({ requesterId: 8, streamId: 8, iova: RAM, write: true, ats: 'translated' })).toEqual({ ok: true, pa: RAM, pageSize: 0x1000n, writable: true });
    // CR0.ATSCHK = 0: translated traffic is not checked against the STE at all.
    d.w32(SMMU_REG.CR0, 0x0f);
    expect(d.smmu.translate({ requesterId: 16, streamId: 16, iova: 0x5000n, write: true, ats: 'translated' }).ok).toBe(true);
    d.w32(SMMU_REG.CR0, 0x1f);
    // A translation fault of an ATS Translation Request goes back in the completion, unrecorded.
    expect(d.smmu.translate({ requesterId: 8, streamId: 8, iova: 0x7000_0000n, write: false, translationRequest: true })).toMatchObject({ ok: false, fault: { kind: 'F_TRANSLATION', recorded: false } });
    expect(d.events()).toEqual([
      [BigInt(EVT_ID.F_TRANSL_FORBIDDEN) | (16n << 32n), 0n, 0x5000n, 0n],
      [BigInt(EVT_ID.F_BAD_ATS_TREQ) | (16n << 32n), 0n, 0x5000n, 0n],
    ]);
  });
});
