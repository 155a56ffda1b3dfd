import { describe, expect, it } from 'vitest';
import { DEVFN, GPA_OFF, LinuxVtd, mapFs, mapFsGuest, mapSs, req, s2Identity, SID } from './vtd-linux.js';

function dmaRoundTrip(v: LinuxVtd, iova: bigint, pa: bigint, pasid?: number): void {
  const dev = v.machine.devices[0];
  const data = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
  const w = dev.dma({ iova: iova + 8n, length: 8, write: true, data, ...(pasid !== undefined ? { pasid } : {}) });
  expect(w).toEqual({ ok: true });
  expect([...v.mem.read(pa + 8n, 8)]).toEqual([...data]);
  const r = dev.dma({ iova: iova + 8n, length: 8, write: false, ...(pasid !== undefined ? { pasid } : {}) });
  expect(r.ok && [...(r.data ?? [])]).toEqual([...data]);
}

describe('VT-d scalable-mode translation, one test per PGTT and level count', () => {
  for (const levels of [4, 5] as const) {
    it(`first-stage only, ${levels}-level (PGTT=1)`, () => {
      const v = new LinuxVtd(levels === 5 ? { addressWidth: 57 } : {});
      v.bringUp();
      v.smContext(0, DEVFN);
      const root = v.page();
      const data = v.page();
      const iova = levels === 5 ? 0x00ab_cdef_1234_5000n : 0x7fff_1234_5000n;
      mapFs(v, root, iova, data, { levels });
      v.setPasidEntry(SID, 0, LinuxVtd.pasidEntry({ pgtt: 1, did: 5, fsptptr: root, fspm: levels === 5 ? 1 : 0, aw: levels === 5 ? 3 : 2 }));
      dmaRoundTrip(v, iova, data);
      expect(v.iommu.caches.iotlb.entries()).toEqual([
        expect.objectContaining({ did: 5, pasid: 0, kind: 'first-stage', iova, size: 4096n, pa: data, write: true, dirty: true }),
      ]);
    });

    it(`second-stage only, ${levels}-level (PGTT=2, AW=${levels - 2})`, () => {
      const v = new LinuxVtd(levels === 5 ? { addressWidth: 57 } : {});
      v.bringUp();
      v.smContext(0, DEVFN);
      const root = v.page();
      const data = v.page();
      const iova = levels === 5 ? 0x0100_0000_0000_3000n : 0x0000_8000_0000_3000n;
      mapSs(v, root, iova, data, { levels });
      v.setPasidEntry(SID, 0, LinuxVtd.pasidEntry({ pgtt: 2, did: 7, ssptptr: root, aw: levels - 2 }));
      dmaRoundTrip(v, iova, data);
      expect(v.iommu.caches.iotlb.entries()[0]).toMatchObject({ did: 7, kind: 'second-stage', iova, pa: data });
    });

    it(`nested ${levels}+${levels} (PGTT=3): every first-stage table fetch goes through the second stage`, () => {
      const v = new LinuxVtd(levels === 5 ? { addressWidth: 57 } : {});
      v.bringUp();
      v.smContext(0, DEVFN);
      const s2 = s2Identity(v, levels);
      const fsRoot = v.page();
      const data = v.page();
      const iova = 0x1234_5678_9000n;
      // Guest tables hold GPAs: allocate host pages and record them at GPA = HPA + 2^40.
      mapFsGuest(v, fsRoot, iova, data, levels);
      v.setPasidEntry(SID, 0, LinuxVtd.pasidEntry({ pgtt: 3, did: 9, ssptptr: s2, aw: levels - 2, fsptptr: fsRoot + GPA_OFF, fspm: levels === 5 ? 1 : 0 }));
      dmaRoundTrip(v, iova, data);
      expect(v.iommu.caches.iotlb.entries()[0]).toMatchObject({ did: 9, kind: 'nested', iova, pa: data, size: 4096n });
    });
  }

  it('pass-through (PGTT=4) maps IOVA = PA', () => {
    const v = new LinuxVtd();
    v.bringUp();
    v.smContext(0, DEVFN);
    v.setPasidEntry(SID, 0, LinuxVtd.pasidEntry({ pgtt: 4, did: 1 }));
    const data = v.page();
    dmaRoundTrip(v, data, data);
  });

  it('second-stage 3-level (AW=1) and large leaves: SS 2 MiB, FS 2 MiB and 1 GiB', () => {
    const v = new LinuxVtd();
    v.bringUp();
    v.smContext(0, DEVFN);
    const ss = v.page();
    mapSs(v, ss, 0x4000_0000n, 0x4020_0000n, { levels: 3, leafLevel: 2 });
    v.setPasidEntry(SID, 0, LinuxVtd.pasidEntry({ pgtt: 2, did: 3, ssptptr: ss, aw: 1 }));
    const t = v.iommu.translate(req(0x4001_2345n));
    expect(t).toEqual({ ok: true, pa: 0x4021_2345n, pageSize: 0x20_0000n, writable: true });
    expect(v.iommu.translate(req(1n << 39n)).ok).toBe(false);

    const fs = v.page();
    mapFs(v, fs, 0x20_0000n, 0x4040_0000n, { levels: 4, leafLevel: 2 });
    mapFs(v, fs, 0x8000_0000n, 0x4000_0000n, { levels: 4, leafLevel: 3, write: false });
    v.setPasidEntry(SID, 1, LinuxVtd.pasidEntry({ pgtt: 1, did: 4, fsptptr: fs }));
    v.smContext(0, DEVFN, { paside: true });
    v.submit([[0x7n | (3n << 4n), 0n]]); // PASID-cache global (context changed: CC too)
    v.submit([[0x1n | (1n << 4n), 0n]]);
    expect(v.iommu.translate(req(0x21_0004n, true, { pasid: 1 }))).toEqual({ ok: true, pa: 0x4041_0004n, pageSize: 0x20_0000n, writable: true });
    expect(v.iommu.translate(req(0x8765_4321n, false, { pasid: 1 }))).toEqual({ ok: true, pa: 0x4765_4321n, pageSize: 0x4000_0000n, writable: false });
  });

  it('requests with a PASID use that PASID entry; requests without use RID_PASID', () => {
    const v = new LinuxVtd({}, [{ bus: 0, dev: 2, fn: 0, capabilities: { pasid: { maxPasidLog2: 20, exec: false, priv: true } } }]);
    v.bringUp();
    v.smContext(0, DEVFN, { paside: true, ridPasid: 0 });
    const a = v.page();
    const b = v.page();
    const fsA = v.page();
    const fsB = v.page();
    mapFs(v, fsA, 0x1000n, a, { levels: 4 });
    mapFs(v, fsB, 0x1000n, b, { levels: 4 });
    v.setPasidEntry(SID, 0, LinuxVtd.pasidEntry({ pgtt: 1, did: 2, fsptptr: fsA }));
    v.setPasidEntry(SID, 0x12345, LinuxVtd.pasidEntry({ pgtt: 1, did: 3, fsptptr: fsB }));
    dmaRoundTrip(v, 0x1000n, a);
    dmaRoundTrip(v, 0x1000n, b, 0x12345);
  });

  it('first-stage walks set A on every level and D on the written leaf', () => {
    const v = new LinuxVtd();
    v.bringUp();
    v.smContext(0, DEVFN);
    const root = v.page();
    const data = v.page();
    mapFs(v, root, 0x5000n, data, { levels: 4, ad: false });
    v.setPasidEntry(SID, 0, LinuxVtd.pasidEntry({ pgtt: 1, did: 5, fsptptr: root }));
    const entries = (): bigint[] => {
      const out: bigint[] = [];
      let t = root;
      for (let l = 4; l >= 1; l--) {
        const e = v.mem.read64(t + ((0x5000n >> BigInt(12 + 9 * (l - 1))) & 511n) * 8n);
        out.push(e);
        t = e & 0xf_ffff_ffff_f000n;
      }
      return out;
    };
    expect(entries().map((e) => e & 0x60n)).toEqual([0n, 0n, 0n, 0n]);
    expect(v.iommu.translate(req(0x5000n)).ok).toBe(true);
    expect(entries().map((e) => e & 0x60n)).toEqual([0x20n, 0x20n, 0x20n, 0x20n]);
    expect(v.iommu.translate(req(0x5000n, true)).ok).toBe(true);
    expect(entries().map((e) => e & 0x60n)).toEqual([0x20n, 0x20n, 0x20n, 0x60n]);
  });

  it('second-stage A/D are set only with SSADE', () => {
    for (const ssade of [false, true]) {
      const v = new LinuxVtd();
      v.bringUp();
      v.smContext(0, DEVFN);
      const root = v.page();
      const data = v.page();
      mapSs(v, root, 0x7000n, data, { levels: 4 });
      v.setPasidEntry(SID, 0, LinuxVtd.pasidEntry({ pgtt: 2, did: 5, ssptptr: root, ssade }));
      expect(v.iommu.translate(req(0x7000n, true)).ok).toBe(true);
      let t = root;
      const ad: bigint[] = [];
      for (let l = 4; l >= 1; l--) {
        const e = v.mem.read64(t + ((0x7000n >> BigInt(12 + 9 * (l - 1))) & 511n) * 8n);
        ad.push(e & 0x300n);
        t = e & 0xf_ffff_ffff_f000n;
      }
      expect(ad).toEqual(ssade ? [0x100n, 0x100n, 0x100n, 0x300n] : [0n, 0n, 0n, 0n]);
    }
  });

  it('with translation disabled (TE=0) DMA addresses pass through untranslated', () => {
    const v = new LinuxVtd();
    v.bringUp({ te: false });
    expect(v.iommu.translate(req(0x4000_1234n, true))).toEqual({ ok: true, pa: 0x4000_1234n, pageSize: 4096n, writable: true });
  });
});

describe('VT-d legacy mode', () => {
  it('TT=0 walks the second stage from the context entry; TT=2 passes through', () => {
    const v = new LinuxVtd({ scalableMode: false });
    v.bringUp();
    const root = v.page();
    const data = v.page();
    mapSs(v, root, 0x9000n, data, { levels: 4 });
    v.legacyContext(0, DEVFN, { tt: 0, aw: 2, did: 11, ssptptr: root });
    dmaRoundTrip(v, 0x9000n, data);
    expect(v.iommu.caches.iotlb.entries()[0]).toMatchObject({ did: 11, kind: 'legacy' });
    v.legacyContext(0, DEVFN + 1, { tt: 2, aw: 2, did: 1, ssptptr: 0n });
    expect(v.iommu.translate({ requesterId: SID + 1, streamId: SID + 1, iova: 0x4000_5000n, write: false })).toMatchObject({ ok: true, pa: 0x4000_5000n });
  });
});

describe('VT-d request attributes', () => {
  function fsWith(v: LinuxVtd, leaf: { write?: boolean; user?: boolean }, entry: { sre?: boolean; wpe?: boolean; ere?: boolean }) {
    v.bringUp();
    v.smContext(0, DEVFN, { paside: true });
    const root = v.page();
    const data = v.page();
    mapFs(v, root, 0x3000n, data, { levels: 4, ...leaf });
    const e = LinuxVtd.pasidEntry({ pgtt: 1, did: 5, fsptptr: root, ...(entry.sre ? { sre: true } : {}), ...(entry.wpe ? { wpe: true } : {}) });
    if (entry.ere) e[2] |= 2n;
    v.setPasidEntry(SID, 1, e);
    return data;
  }

  it('supervisor writes ignore first-stage R/W unless WPE; user writes never do', () => {
    const v = new LinuxVtd();
    const data = fsWith(v, { write: false }, { sre: true });
    expect(v.iommu.translate(req(0x3000n, true, { pasid: 1, priv: true }))).toEqual({ ok: true, pa: data, pageSize: 4096n, writable: true });
    const u = v.iommu.translate(req(0x3000n, true, { pasid: 1 }));
    expect(u.ok ? 0 : u.fault.code).toBe(0x85);
    const w = new LinuxVtd();
    fsWith(w, { write: false }, { sre: true, wpe: true });
    const t = w.iommu.translate(req(0x3000n, true, { pasid: 1, priv: true }));
    expect(t.ok ? 0 : t.fault.code).toBe(0x85);
  });

  it('execute requests need ERE and an entry without XD (0x82)', () => {
    const v = new LinuxVtd({ executeRequests: true });
    fsWith(v, {}, { ere: true });
    expect(v.iommu.translate(req(0x3000n, false, { pasid: 1, exec: true })).ok).toBe(true);
    const root = v.mem.read64(v.pasidEntryAddr(SID, 1) + 16n) & ~0xfffn;
    const pml4e = v.mem.read64(root);
    v.mem.write64(root, pml4e | (1n << 63n));
    v.submit([[0x6n | (2n << 4n) | (5n << 16n) | (1n << 32n), 0n]]);
    const t = v.iommu.translate(req(0x3000n, false, { pasid: 1, exec: true }));
    expect(t.ok ? 0 : t.fault).toMatchObject({ code: 0x82, kind: 'SM_NO_EXECUTE' });
    expect(v.frcd(0)[1] & ((1n << 30n) | (1n << 31n))).toBe((1n << 30n) | (1n << 31n));
  });

  it('ATS-translated requests pass through when the context has DTE set', () => {
    const v = new LinuxVtd();
    v.bringUp();
    v.smContext(0, DEVFN, { dte: true });
    expect(v.iommu.translate(req(0x4000_7000n, true, { ats: 'translated' }))).toEqual({ ok: true, pa: 0x4000_7000n, pageSize: 4096n, writable: true });
    const l = new LinuxVtd({ scalableMode: false });
    l.bringUp();
    l.legacyContext(0, DEVFN, { tt: 1, aw: 2, did: 3, ssptptr: l.page() });
    expect(l.iommu.translate(req(0x4000_7000n, false, { ats: 'translated' })).ok).toBe(true);
    l.legacyContext(0, DEVFN, { tt: 0, aw: 2, did: 3, ssptptr: l.page() });
    l.submit([[0x1n | (1n << 4n), 0n]]);
    const t = l.iommu.translate(req(0x4000_7000n, false, { ats: 'translated' }));
    expect(t.ok ? 0 : t.fault.code).toBe(0xd);
  });

  it('register-based invalidation is ignored while QI is on; with QI off it empties the caches', () => {
    const v = new LinuxVtd({ scalableMode: false });
    v.bringUp();
    const root = v.page();
    mapSs(v, root, 0x9000n, v.page(), { levels: 4 });
    v.legacyContext(0, DEVFN, { tt: 0, aw: 2, did: 11, ssptptr: root });
    v.iommu.translate(req(0x9000n));
    v.w64(0x28, (1n << 63n) | (1n << 61n)); // CCMD global, ignored under QI
    v.w64(0xf8, (1n << 63n) | (1n << 60n)); // IOTLB global, ignored under QI
    expect([v.iommu.caches.context.size, v.iommu.caches.iotlb.size]).toEqual([1, 1]);
    v.submit([]);
    v.w32(0x18, 1 << 31); // QIE off (TE stays)
    v.w64(0xf0, 0x9000n); // IVA
    v.w64(0xf8, (1n << 63n) | (3n << 60n) | (12n << 32n)); // PSI, other DID
    expect(v.iommu.caches.iotlb.size).toBe(1);
    v.w64(0xf8, (1n << 63n) | (3n << 60n) | (11n << 32n)); // PSI, DID 11
    expect(v.iommu.caches.iotlb.size).toBe(0);
    v.w64(0x28, (1n << 63n) | (3n << 61n) | (BigInt(SID) << 16n)); // CCMD device-selective
    expect(v.iommu.caches.context.size).toBe(0);
  });

  it('toggling TE drops the context-cache', () => {
    const v = new LinuxVtd();
    v.bringUp();
    v.smContext(0, DEVFN);
    v.setPasidEntry(SID, 0, LinuxVtd.pasidEntry({ pgtt: 4, did: 1 }));
    v.iommu.translate(req(0x4000_0000n));
    expect(v.iommu.caches.context.size).toBe(1);
    v.w32(0x18, 1 << 26);
    expect(v.iommu.caches.context.size).toBe(0);
  });
});
