import { describe, expect, it } from 'vitest';
import { VtdCap, VtdEcap, VtdIommu, VtdOptionsError, createMachine } from '../src/index.js';
import { LinuxVtd, QIE, REG, SRTP, TE, VTD_BASE } from './vtd-linux.js';

describe('VT-d registers: reset values', () => {
  it('VER, CAP, ECAP and event controls reset to the documented values', () => {
    const v = new LinuxVtd();
    expect(v.r32(REG.VER)).toBe(0x30);
    // ND=6, SAGAW=0b0110, MGAW=47, FRO=0x22, SLLPS=3, PSI, NFR=3, MAMV=18, FS1GP.
    expect(v.r64(REG.CAP)).toBe(0x0112_038c_222f_0606n);
    const cap = VtdCap.decode([v.r64(REG.CAP)]);
    expect(cap).toMatchObject({ ND: 6, SAGAW: 0b0110, MGAW: 47, FRO: 0x22, SLLPS: 3, PSI: 1, NFR: 3, MAMV: 18, FS1GP: 1, FS5LP: 0, CM: 0 });
    const ecap = VtdEcap.decode([v.r64(REG.ECAP)]);
    expect(ecap).toMatchObject({ C: 1, QI: 1, DT: 1, PT: 1, IRO: 0xf, NEST: 1, PRS: 1, SRS: 1, PSS: 19, PASID: 1, PDS: 1, SMTS: 1, SLADS: 1, SLTS: 1, FLTS: 1, SMPWC: 1, RPS: 1 });
    expect(v.r64(REG.ECAP)).toBe(0x0003_ed98_a400_0f47n);
    expect(v.r32(REG.GSTS)).toBe(0);
    expect(v.r32(REG.FECTL)).toBe(0x8000_0000);
    expect(v.r32(REG.IECTL)).toBe(0x8000_0000);
    expect(v.r32(REG.PECTL)).toBe(0x8000_0000);
    expect(v.r32(REG.FSTS)).toBe(0);
    expect(v.r64(REG.IQH)).toBe(0n);
  });

  it('legacy-only units report VER 1.0 and no scalable-mode capabilities', () => {
    const v = new LinuxVtd({ scalableMode: false, addressWidth: 39 });
    expect(v.r32(REG.VER)).toBe(0x10);
    const ecap = VtdEcap.decode([v.r64(REG.ECAP)]);
    expect(ecap).toMatchObject({ SMTS: 0, FLTS: 0, SLTS: 0, NEST: 0, PASID: 0, PRS: 0 });
    expect(VtdCap.decode([v.r64(REG.CAP)])).toMatchObject({ SAGAW: 0b0010, MGAW: 38 });
  });

  it('5-level configuration advertises SAGAW bit 3 and FS5LP', () => {
    const v = new LinuxVtd({ addressWidth: 57 });
    expect(VtdCap.decode([v.r64(REG.CAP)])).toMatchObject({ SAGAW: 0b1110, MGAW: 56, FS5LP: 1 });
  });

  it('rejects unknown and out-of-range options with a typed error', () => {
    const m = createMachine({ ramBytes: 0x10_0000n });
    expect(() => new VtdIommu(m.memory, { faultRecords: 9 })).toThrow(VtdOptionsError);
    expect(() => new VtdIommu(m.memory, { bogus: 1 } as never)).toThrow(/unknown VT-d option 'bogus'/);
  });
});

describe('VT-d registers: access semantics', () => {
  it('read-only registers ignore writes; GCMD reads as zero', () => {
    const v = new LinuxVtd();
    const cap = v.r64(REG.CAP);
    v.w64(REG.CAP, 0n);
    expect(v.r64(REG.CAP)).toBe(cap);
    v.w32(REG.GSTS, 0xffff_ffff);
    expect(v.r32(REG.GSTS)).toBe(0);
    v.w32(REG.GCMD, 1 << 29); // SFL
    expect(v.r32(REG.GCMD)).toBe(0);
    expect(v.r32(REG.GSTS)).toBe(1 << 29);
  });

  it('reads outside the register window return all-ones and writes there are ignored', () => {
    const v = new LinuxVtd();
    expect(v.iommu.mmioRead(0x1000, 4)).toBe(0xffff_ffffn);
    expect(v.iommu.mmioRead(0x3, 4)).toBe(0xffff_ffffn); // misaligned
    v.iommu.mmioWrite(0x1000, 4, 1n);
  });

  it('SRTP latches RTADDR (with TTM) and sets RTPS; TE sets TES; TE clear resets it', () => {
    const v = new LinuxVtd();
    v.w64(REG.RTADDR, 0x4123_4000n | (1n << 10n));
    expect(v.iommu.rootTable).toBe(0n);
    v.w32(REG.GCMD, SRTP);
    expect(v.iommu.rootTable).toBe(0x4123_4000n);
    expect(v.iommu.ttm).toBe(1);
    expect(v.r32(REG.GSTS)).toBe(SRTP >>> 0);
    v.w32(REG.GCMD, TE);
    expect(v.r32(REG.GSTS) >>> 0).toBe((SRTP | TE) >>> 0);
    v.w32(REG.GCMD, 0);
    expect(v.r32(REG.GSTS) >>> 0).toBe(SRTP >>> 0);
  });

  it('QIE enables only with a latched queue and disables only when the queue is idle after a wait', () => {
    const v = new LinuxVtd();
    v.bringUp({ te: false });
    expect(v.r32(REG.GSTS) & QIE).toBe(QIE);
    // Queue an IOTLB global without a wait: IQH == IQT afterwards but the last descriptor was no wait.
    v.enqueue([[0x12n, 0n]]);
    expect(v.r64(REG.IQH)).toBe(0x20n);
    v.w32(REG.GCMD, 0);
    expect(v.r32(REG.GSTS) & QIE).toBe(QIE);
    v.submit([]);
    v.w32(REG.GCMD, 0);
    expect(v.r32(REG.GSTS) & QIE).toBe(0);
    expect(v.r64(REG.IQH)).toBe(0n);
  });

  it('register-based CCMD and IOTLB invalidation complete at once and report the granularity', () => {
    const v = new LinuxVtd({ scalableMode: false });
    v.w64(REG.CCMD, (1n << 63n) | (1n << 61n));
    expect(v.r64(REG.CCMD)).toBe((1n << 61n) | (1n << 59n));
    v.w64(REG.IOTLB, (1n << 63n) | (2n << 60n) | (5n << 32n));
    expect(v.r64(REG.IOTLB)).toBe((2n << 60n) | (2n << 57n) | (5n << 32n));
  });

  it('is placed in the machine memory map at its base', () => {
    const v = new LinuxVtd();
    expect(v.mem.read32(VTD_BASE + 0x0n)).toBe(0x30);
  });
});

describe('VT-d registers: the other GCMD commands and event controls', () => {
  it('IRE and CFI are persistent, SIRTP / SFL / WBF one-shot; GSTS reports IRES, CFIS, IRTPS, FLS', () => {
    const v = new LinuxVtd();
    v.w64(0xb8, 0x4010_0000n | 0xfn); // IRTA
    v.w32(REG.GCMD, 1 << 24); // SIRTP
    expect(v.r32(REG.GSTS)).toBe(1 << 24);
    v.w32(REG.GCMD, (1 << 25) | (1 << 23)); // IRE | CFI (shadow without SIRTP)
    expect(v.r32(REG.GSTS)).toBe((1 << 24) | (1 << 25) | (1 << 23));
    v.w32(REG.GCMD, 1 << 27); // WBF completes at once: WBFS never reads as set; IRE/CFI drop
    expect(v.r32(REG.GSTS)).toBe(1 << 24);
    expect(v.r64(0xb8)).toBe(0x4010_000fn);
  });

  it('a masked page-request event stays pending; clearing PRS clears the pending bit', () => {
    const v = new LinuxVtd({}, [{ bus: 0, dev: 2, fn: 0, capabilities: { pri: true, ats: true } }]);
    v.bringUp();
    v.smContext(0, 0x10, { pre: true, dte: true });
    v.w32(REG.PECTL, 0x8000_0000);
    expect(v.iommu.pageRequest({ requesterId: 0x10, address: 0x5000n, read: true, write: false, lastInGroup: true, groupIndex: 3 })).toBe(true);
    expect(v.r32(REG.PECTL)).toBe(0xc000_0000);
    expect(v.iommu.interrupts).toEqual([]);
    v.w32(REG.PRS, 1);
    expect(v.r32(REG.PECTL)).toBe(0x8000_0000);
    expect(v.mem.read64(v.prq + 8n)).toBe(0x5000n | (3n << 3n) | 0x4n | 0x1n);
  });
});
