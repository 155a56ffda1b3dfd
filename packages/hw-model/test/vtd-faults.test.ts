import { describe, expect, it } from 'vitest';
import type { DmaRequest, VtdIommuOptions } from '../src/index.js';
import { DEVFN, GPA_OFF, LinuxVtd, mapFs, mapFsGuest, mapSs, REG, req, SID, sidOf } from './vtd-linux.js';

/** The FRCD high qword the kernel decodes: SID, PP, FR, PV, T (1 = read), F. */
function frcdHi(sid: number, fr: number, write: boolean, pasid?: number): bigint {
  return BigInt(sid) | (BigInt(fr) << 32n) | (pasid !== undefined ? (1n << 31n) | (BigInt(pasid) << 40n) : 0n) | (write ? 0n : 1n << 62n) | (1n << 63n);
}

interface Case {
  readonly name: string;
  readonly code: number;
  readonly options?: VtdIommuOptions;
  readonly setup: (v: LinuxVtd) => void;
  readonly req?: Partial<DmaRequest>;
  readonly iova?: bigint;
}

function smDevice(v: LinuxVtd, f: Parameters<LinuxVtd['smContext']>[2] = {}): void {
  v.smContext(0, DEVFN, f);
}

function fsSetup(map: (v: LinuxVtd, root: bigint) => void, entry: Partial<Parameters<typeof LinuxVtd.pasidEntry>[0]> = {}) {
  return (v: LinuxVtd): void => {
    smDevice(v);
    const root = v.page();
    map(v, root);
    v.setPasidEntry(SID, 0, LinuxVtd.pasidEntry({ pgtt: 1, did: 5, fsptptr: root, ...entry }));
  };
}

function ssSetup(map: (v: LinuxVtd, root: bigint) => void) {
  return (v: LinuxVtd): void => {
    smDevice(v);
    const root = v.page();
    map(v, root);
    v.setPasidEntry(SID, 0, LinuxVtd.pasidEntry({ pgtt: 2, did: 6, ssptptr: root }));
  };
}

/** Nested: S2 maps RAM at GPA_OFF with 4 KiB leaves whose permissions `perm(hpa)` chooses. */
function nestedSetup(perm: (v: LinuxVtd, tables: bigint[]) => (hpa: bigint) => { read: boolean; write: boolean }, fsAd = true, fsRootGpa?: bigint) {
  return (v: LinuxVtd): void => {
    smDevice(v);
    const fsRoot = v.page();
    const data = v.page();
    const tables: bigint[] = [fsRoot];
    let t = fsRoot;
    for (let level = 4; level > 1; level--) {
      const next = v.page();
      tables.push(next);
      v.mem.write64(t + ((0x3000n >> BigInt(12 + 9 * (level - 1))) & 511n) * 8n, (next + GPA_OFF) | (fsAd ? 0x27n : 0x7n));
      t = next;
    }
    v.mem.write64(t + 3n * 8n, (data + GPA_OFF) | (fsAd ? 0x67n : 0x7n));
    const s2 = v.page();
    const p = perm(v, tables);
    for (const hpa of [...tables, data]) mapSs(v, s2, hpa + GPA_OFF, hpa, { levels: 4, ...p(hpa) });
    v.setPasidEntry(SID, 0, LinuxVtd.pasidEntry({ pgtt: 3, did: 8, ssptptr: s2, fsptptr: fsRootGpa ?? fsRoot + GPA_OFF }));
  };
}

const RW = { read: true, write: true };

function withPasid(setup: (v: LinuxVtd) => void) {
  return (v: LinuxVtd): void => {
    setup(v);
    v.smContext(0, DEVFN, { paside: true });
  };
}

/** An address that is not RAM (RAM starts at 0x4000_0000 in the test machine). */
const NOT_RAM = 0x10_0000n;

const SM_CASES: Case[] = [
  { name: 'root table not in memory', code: 0x38, setup: (v) => (v.w64(REG.RTADDR, NOT_RAM | (1n << 10n)), v.w32(0x18, (1 << 30) | (1 << 26) | (1 << 31))) },
  { name: 'context table not in memory', code: 0x40, setup: (v) => v.mem.write64(v.rootTable, NOT_RAM | 1n) },
  {
    name: 'PASID directory not in memory',
    code: 0x50,
    setup: (v) => {
      const at = v.smContext(0, DEVFN);
      v.mem.write64(at, (v.mem.read64(at) & 0xfffn) | NOT_RAM);
    },
  },
  {
    name: 'PASID table not in memory',
    code: 0x58,
    setup: (v) => {
      const at = v.smContext(0, DEVFN);
      v.mem.write64(v.mem.read64(at) & ~0xfffn, NOT_RAM | 1n);
    },
  },
  { name: 'first-stage root table not in memory', code: 0x73, setup: fsSetup(() => {}, { fsptptr: NOT_RAM }) },
  { name: 'first-stage table not in memory', code: 0x70, setup: fsSetup((v, root) => v.mem.write64(root, NOT_RAM | 0x27n)) },
  { name: 'second-stage table not in memory', code: 0x78, setup: ssSetup((v, root) => v.mem.write64(root, NOT_RAM | 0x3n)) },
  { name: 'root entry not present', code: 0x39, setup: () => {} },
  {
    name: 'root entry reserved bits',
    code: 0x3a,
    setup: (v) => {
      smDevice(v);
      v.mem.write64(v.rootTable, v.mem.read64(v.rootTable) | 0x8n);
    },
  },
  { name: 'context entry not present', code: 0x41, setup: (v) => v.smContext(0, DEVFN + 1) },
  {
    name: 'context entry reserved bits',
    code: 0x42,
    setup: (v) => {
      const at = v.smContext(0, DEVFN);
      v.mem.write64(at, v.mem.read64(at) | 0x20n);
    },
  },
  { name: 'context entry invalid (DTE without ECAP.DT)', code: 0x43, options: { deviceTlb: false }, setup: (v) => smDevice(v, { dte: true }) },
  { name: 'translated request with DTE clear', code: 0x44, setup: (v) => smDevice(v), req: { ats: 'translated' } },
  { name: 'PASID request with PASIDE clear', code: 0x45, setup: (v) => smDevice(v), req: { pasid: 3 } },
  { name: 'PASID beyond the directory size', code: 0x46, setup: (v) => smDevice(v, { paside: true, pdts: 0 }), req: { pasid: 8192 } },
  { name: 'PASID directory entry not present', code: 0x51, setup: (v) => smDevice(v) },
  {
    name: 'PASID directory entry reserved bits',
    code: 0x52,
    setup: (v) => {
      smDevice(v);
      const pe = v.pasidEntryAddr(SID, 0);
      const dir = v.mem.read64(v.rootTable) & ~0xfffn; // context table
      const ctx = v.mem.read64(dir + BigInt(DEVFN) * 32n) & ~0xfffn;
      v.mem.write64(ctx, (pe & ~0xfffn) | 0x21n);
    },
  },
  {
    name: 'PASID table entry not present',
    code: 0x59,
    setup: (v) => {
      smDevice(v);
      v.pasidEntryAddr(SID, 0);
    },
  },
  {
    name: 'PASID table entry reserved bits',
    code: 0x5a,
    setup: (v) => {
      smDevice(v);
      const e = LinuxVtd.pasidEntry({ pgtt: 4, did: 1 });
      e[3] = 1n;
      v.setPasidEntry(SID, 0, e);
    },
  },
  {
    name: 'PASID table entry with invalid PGTT',
    code: 0x5b,
    setup: (v) => {
      smDevice(v);
      v.setPasidEntry(SID, 0, [1n | (5n << 6n), 1n, 0n]);
    },
  },
  { name: 'supervisor request with SRE clear', code: 0x5d, setup: withPasid(fsSetup(() => {})), req: { priv: true, pasid: 0 } },
  { name: 'execute request with ERE clear', code: 0x5c, setup: withPasid(fsSetup(() => {})), req: { exec: true, pasid: 0 } },
  { name: 'first-stage entry not present', code: 0x71, setup: fsSetup(() => {}) },
  {
    name: 'first-stage entry reserved (PS in a PML4 entry)',
    code: 0x72,
    setup: fsSetup((v, root) => v.mem.write64(root, v.page() | 0xa7n)),
  },
  { name: 'first-stage root beyond the host address width', code: 0x73, setup: fsSetup(() => {}, { fsptptr: 1n << 50n }) },
  { name: 'non-canonical input address', code: 0x80, setup: fsSetup(() => {}), iova: 0x0000_8000_0000_0000n },
  { name: 'user request on a supervisor-only page', code: 0x81, setup: fsSetup((v, root) => mapFs(v, root, 0x3000n, v.page(), { levels: 4, user: false })) },
  { name: 'write to a read-only first-stage page', code: 0x85, setup: fsSetup((v, root) => mapFs(v, root, 0x3000n, v.page(), { levels: 4, write: false })), req: { write: true } },
  { name: 'interrupt-range output address', code: 0x87, setup: fsSetup((v, root) => mapFs(v, root, 0x3000n, 0xfee0_0000n, { levels: 4 })) },
  { name: 'second-stage entry not present', code: 0x79, setup: ssSetup(() => {}) },
  {
    name: 'second-stage reserved (SNP in a non-leaf entry)',
    code: 0x7a,
    setup: ssSetup((v, root) => v.mem.write64(root, v.page() | 0x803n)),
  },
  { name: 'read from a write-only second-stage page', code: 0x86, setup: ssSetup((v, root) => mapSs(v, root, 0x3000n, v.page(), { levels: 4, read: false })) },
  { name: 'input beyond the second-stage width', code: 0x83, setup: ssSetup(() => {}), iova: 1n << 48n },
  {
    name: 'nested: second stage denies read of the first-stage root',
    code: 0x75,
    setup: nestedSetup((_v, tables) => (hpa) => (hpa === tables[0] ? { read: false, write: true } : RW)),
  },
  {
    name: 'nested: second stage denies read of a first-stage table',
    code: 0x76,
    setup: nestedSetup((_v, tables) => (hpa) => (hpa === tables[2] ? { read: false, write: true } : RW)),
  },
  {
    name: 'nested: accessed-bit update through a read-only second-stage mapping',
    code: 0x77,
    setup: nestedSetup(() => () => ({ read: true, write: false }), false),
  },
  {
    name: 'nested: first-stage root GPA beyond the second-stage width',
    code: 0x74,
    setup: nestedSetup(() => () => RW, true, 1n << 48n),
  },
  {
    name: 'nested: second stage does not map the output GPA',
    code: 0x79,
    setup: (v) => {
      smDevice(v);
      const s2 = v.page();
      mapSs(v, s2, GPA_OFF + 0x4000_0000n, 0x4000_0000n, { levels: 4, leafLevel: 3 });
      const fs = v.page();
      mapFsGuest(v, fs, 0x3000n, 0x3000_0000n - GPA_OFF + (1n << 44n), 4);
      v.setPasidEntry(SID, 0, LinuxVtd.pasidEntry({ pgtt: 3, did: 8, ssptptr: s2, fsptptr: fs + GPA_OFF }));
    },
  },
];

describe('VT-d scalable-mode fault reasons, with byte-exact fault records', () => {
  for (const c of SM_CASES) {
    it(`0x${c.code.toString(16)}: ${c.name}`, () => {
      const v = new LinuxVtd(c.options ?? {});
      v.bringUp();
      c.setup(v);
      const iova = c.iova ?? 0x3123n;
      const r = req(iova, c.req?.write ?? false, c.req);
      const t = v.iommu.translate(r);
      expect(t.ok).toBe(false);
      if (t.ok) return;
      expect(t.fault).toMatchObject({ code: c.code, iova, write: r.write, recorded: true });
      expect(v.frcd(0)).toEqual([iova & ~0xfffn, frcdHi(SID, c.code, r.write, c.req?.pasid) | (c.req?.priv === true ? 1n << 29n : 0n) | (c.req?.exec === true ? 1n << 30n : 0n)]);
      // PPF set, FRI = 0; one fault event with FEDATA/FEADDR.
      expect(v.r32(REG.FSTS)).toBe(0x2);
      expect(v.iommu.interrupts).toEqual([{ source: 'fault', address: 0xfee0_0000n, data: 0x41 }]);
    });
  }
});

describe('VT-d legacy-mode fault reasons', () => {
  const legacy: Case[] = [
    { name: 'root table not in memory', code: 0x8, setup: (v) => (v.w64(REG.RTADDR, NOT_RAM), v.w32(0x18, (1 << 30) | (1 << 26) | (1 << 31))) },
    { name: 'context table not in memory', code: 0x9, setup: (v) => v.mem.write64(v.rootTable, NOT_RAM | 1n) },
    {
      name: 'next page-table pointer not in memory',
      code: 0x7,
      setup: (v) => {
        const root = v.page();
        v.mem.write64(root, NOT_RAM | 3n);
        v.legacyContext(0, DEVFN, { tt: 0, aw: 2, did: 1, ssptptr: root });
      },
    },
    { name: 'root not present', code: 0x1, setup: () => {} },
    { name: 'context not present', code: 0x2, setup: (v) => v.legacyContext(0, DEVFN + 1, { tt: 2, aw: 2, did: 1, ssptptr: 0n }) },
    { name: 'invalid context (TT=3)', code: 0x3, setup: (v) => v.legacyContext(0, DEVFN, { tt: 3, aw: 2, did: 1, ssptptr: v.page() }) },
    { name: 'beyond MGAW', code: 0x4, setup: (v) => v.legacyContext(0, DEVFN, { tt: 0, aw: 2, did: 1, ssptptr: v.page() }), iova: 1n << 48n },
    {
      name: 'write to a read-only page',
      code: 0x5,
      setup: (v) => {
        const root = v.page();
        mapSs(v, root, 0x3000n, v.page(), { levels: 4, write: false });
        v.legacyContext(0, DEVFN, { tt: 0, aw: 2, did: 1, ssptptr: root });
      },
      req: { write: true },
    },
    { name: 'read of a non-present page', code: 0x6, setup: (v) => v.legacyContext(0, DEVFN, { tt: 0, aw: 2, did: 1, ssptptr: v.page() }) },
    {
      name: 'interrupt-range output',
      code: 0xe,
      setup: (v) => {
        const root = v.page();
        mapSs(v, root, 0x3000n, 0xfee0_0000n, { levels: 4 });
        v.legacyContext(0, DEVFN, { tt: 0, aw: 2, did: 1, ssptptr: root });
      },
    },
  ];
  for (const c of legacy) {
    it(`0x${c.code.toString(16)}: ${c.name}`, () => {
      const v = new LinuxVtd({ scalableMode: false });
      v.bringUp();
      c.setup(v);
      const iova = c.iova ?? 0x3123n;
      const r = req(iova, c.req?.write ?? false);
      const t = v.iommu.translate(r);
      expect(t.ok ? 0 : t.fault.code).toBe(c.code);
      expect(v.frcd(0)).toEqual([iova & ~0xfffn, frcdHi(SID, c.code, r.write)]);
    });
  }
});

describe('VT-d fault recording rules', () => {
  it('FPD suppresses qualified faults but root-level faults are always recorded', () => {
    const v = new LinuxVtd();
    v.bringUp();
    v.smContext(0, DEVFN, { fpd: true });
    const t = v.iommu.translate(req(0x1000n));
    expect(t.ok ? undefined : t.fault).toMatchObject({ code: 0x51, recorded: false });
    expect(v.r32(REG.FSTS)).toBe(0);
    const other = sidOf(5, 0, 0);
    const u = v.iommu.translate({ requesterId: other, streamId: other, iova: 0n, write: false });
    expect(u.ok ? undefined : u.fault).toMatchObject({ code: 0x39, recorded: true });
  });

  it('a second fault of a source with a pending record is compressed (not recorded)', () => {
    const v = new LinuxVtd();
    v.bringUp();
    v.iommu.translate(req(0x1000n));
    const t = v.iommu.translate(req(0x2000n, true));
    expect(t.ok ? undefined : t.fault.recorded).toBe(false);
    expect(v.frcd(1)).toEqual([0n, 0n]);
  });

  it('records round-robin; a full ring sets PFO; the kernel handler clears F and status (FRI, PPF)', () => {
    const v = new LinuxVtd({ faultRecords: 2 });
    v.bringUp();
    const fault = (bus: number) => v.iommu.translate({ requesterId: bus << 8, streamId: 0, iova: BigInt(bus) << 12n, write: false });
    fault(1);
    fault(2);
    expect(v.r32(REG.FSTS)).toBe(0x2);
    const third = fault(3);
    expect(third.ok ? undefined : third.fault.recorded).toBe(false);
    expect(v.r32(REG.FSTS)).toBe(0x3); // PFO | PPF, FRI = 0
    expect(v.frcd(0)[1]).toBe(frcdHi(0x100, 0x39, false));
    expect(v.frcd(1)[1]).toBe(frcdHi(0x200, 0x39, false));
    // dmar_fault: clear F by writing bit 31 of the record's top dword.
    v.w32(REG.FRCD + 12, 0x8000_0000);
    expect(v.frcd(0)[1] >> 63n).toBe(0n);
    expect(v.r32(REG.FSTS)).toBe(0x3);
    v.w32(REG.FRCD + 16 + 12, 0x8000_0000);
    expect(v.r32(REG.FSTS)).toBe(0x1);
    // While PFO is set nothing new is recorded.
    expect((fault(4) as { fault: { recorded: boolean } }).fault.recorded).toBe(false);
    v.w32(REG.FSTS, 0x1 | 0x2 | 0x80);
    expect(v.r32(REG.FSTS)).toBe(0);
    fault(5);
    expect(v.r32(REG.FSTS)).toBe(0x2 | (0 << 8));
    fault(6);
    // FRI keeps pointing at the first pending record.
    expect(v.r32(REG.FSTS) >> 8).toBe(0);
    expect(v.frcd(1)[1]).toBe(frcdHi(0x600, 0x39, false));
  });

  it('a masked fault event stays pending (IP) and fires when unmasked', () => {
    const v = new LinuxVtd();
    v.bringUp();
    v.w32(REG.FECTL, 0x8000_0000);
    v.iommu.translate(req(0x1000n));
    expect(v.iommu.interrupts).toEqual([]);
    expect(v.r32(REG.FECTL)).toBe(0xc000_0000);
    v.w32(REG.FECTL, 0);
    expect(v.r32(REG.FECTL)).toBe(0);
    expect(v.iommu.interrupts).toEqual([{ source: 'fault', address: 0xfee0_0000n, data: 0x41 }]);
  });
});
