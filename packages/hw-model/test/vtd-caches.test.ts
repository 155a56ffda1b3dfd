import { describe, expect, it } from 'vitest';
import { DEVFN, GPA_OFF, LinuxVtd, mapFs, mapFsGuest, mapSs, QI, req, SID, sidOf } from './vtd-linux.js';
import { QUEUE_CONSUMERS, useQueueConsumer } from './support/consumers.js';

function code(t: ReturnType<LinuxVtd['iommu']['translate']>): number | bigint {
  return t.ok ? t.pa : t.fault.code;
}

function fsDevice(v: LinuxVtd, did = 5, pasid = 0) {
  v.smContext(0, DEVFN);
  const root = v.page();
  const data = v.page();
  mapFs(v, root, 0x3000n, data, { levels: 4 });
  const entry = v.setPasidEntry(SID, pasid, LinuxVtd.pasidEntry({ pgtt: 1, did, fsptptr: root }));
  return { root, data, entry };
}

function leafAddr(v: LinuxVtd, root: bigint, iova: bigint, levels = 4): bigint {
  let t = root;
  for (let l = levels; l > 1; l--) t = v.mem.read64(t + ((iova >> BigInt(12 + 9 * (l - 1))) & 511n) * 8n) & 0xf_ffff_ffff_f000n;
  return t + ((iova >> 12n) & 511n) * 8n;
}

describe.each(QUEUE_CONSUMERS)('%s queue consumer', (consumer) => {
  useQueueConsumer(consumer);

  describe('VT-d context-cache', () => {
    it('keeps a removed context entry until a matching context-cache invalidation', () => {
      const v = new LinuxVtd();
      v.bringUp();
      const { data } = fsDevice(v);
      expect(code(v.iommu.translate(req(0x3000n)))).toBe(data);
      const ctxAt = v.mem.read64(v.rootTable) & ~0xfffn;
      v.mem.write64(ctxAt + BigInt(DEVFN) * 32n, 0n);
      // PASID-cache and IOTLB flushes do not drop the cached context entry.
      v.submit([QI.pcGlobal(), QI.iotlbGlobal()]);
      expect(code(v.iommu.translate(req(0x3000n)))).toBe(data);
      // Device-selective for another function (FM=0) leaves it.
      v.submit([QI.ccDevice(0, SID + 1)]);
      expect(code(v.iommu.translate(req(0x3000n)))).toBe(data);
      // FM=3 masks function bits 2:0, so SID+1 now covers 00:02.0.
      v.submit([QI.ccDevice(0, SID + 1, 3)]);
      expect(code(v.iommu.translate(req(0x3000n)))).toBe(0x41);
    });

    it('is emptied, with the PASID-cache and IOTLB, by SRTP', () => {
      const v = new LinuxVtd();
      v.bringUp();
      fsDevice(v);
      v.iommu.translate(req(0x3000n));
      expect(v.iommu.caches.context.size).toBe(1);
      v.w32(0x18, 1 << 30); // SRTP
      expect(v.iommu.caches.context.size).toBe(0);
      expect(v.iommu.caches.pasid.size).toBe(0);
      expect(v.iommu.caches.iotlb.size).toBe(0);
    });
  });

  describe('VT-d PASID-cache', () => {
    it('keeps an old PASID entry until a PASID-cache invalidation of its DID (and PASID)', () => {
      const v = new LinuxVtd();
      v.bringUp();
      const { data } = fsDevice(v, 5);
      expect(code(v.iommu.translate(req(0x3000n)))).toBe(data);
      // Teardown to pass-through (pasid.c order: clear P, rewrite, set P).
      v.mem.write64(v.pasidEntryAddr(SID, 0), 0n);
      v.setPasidEntry(SID, 0, LinuxVtd.pasidEntry({ pgtt: 4, did: 1 }));
      v.submit([QI.piotlbAll(5, 0)]);
      expect(code(v.iommu.translate(req(0x3000n)))).toBe(data); // walked again with the cached FS entry
      v.submit([QI.pcPasid(6, 0), QI.pcPasid(5, 1), QI.piotlbAll(5, 0)]);
      expect(code(v.iommu.translate(req(0x3000n)))).toBe(data);
      v.submit([QI.pcPasid(5, 0), QI.piotlbAll(5, 0)]);
      expect(code(v.iommu.translate(req(0x3000n)))).toBe(0x3000n);
    });

    it('domain-selective PASID-cache invalidation drops every PASID of the DID', () => {
      const v = new LinuxVtd();
      v.bringUp();
      fsDevice(v, 5);
      v.iommu.translate(req(0x3000n));
      expect(v.iommu.caches.pasid.entries()).toEqual([expect.objectContaining({ sid: SID, pasid: 0, did: 5 })]);
      v.submit([QI.pcDomain(4)]);
      expect(v.iommu.caches.pasid.size).toBe(1);
      v.submit([QI.pcDomain(5)]);
      expect(v.iommu.caches.pasid.size).toBe(0);
    });
  });

  describe('VT-d IOTLB', () => {
    it('serves a stale first-stage translation until a PASID-based IOTLB invalidation covers it', () => {
      const v = new LinuxVtd();
      v.bringUp();
      const { root, data } = fsDevice(v, 5);
      expect(code(v.iommu.translate(req(0x3000n)))).toBe(data);
      v.mem.write64(leafAddr(v, root, 0x3000n), 0n); // unmap
      expect(code(v.iommu.translate(req(0x3000n)))).toBe(data);
      v.submit([QI.piotlbPsi(5, 1, 0x3000n, 0), QI.piotlbPsi(6, 0, 0x3000n, 0), QI.piotlbPsi(5, 0, 0x4000n, 0), QI.iotlbDsi(6)]);
      expect(code(v.iommu.translate(req(0x3000n)))).toBe(data);
      v.submit([QI.piotlbPsi(5, 0, 0x2000n, 1)]); // 0x2000..0x3fff
      expect(code(v.iommu.translate(req(0x3000n)))).toBe(0x71);
    });

    it('type-2 PSI drops every first-stage entry of the DID; type-6 leaves second-stage entries alone', () => {
      const v = new LinuxVtd();
      v.bringUp();
      const { data } = fsDevice(v, 5);
      v.iommu.translate(req(0x3000n));
      v.submit([QI.iotlbPsi(5, 0x9000_0000n, 0)]);
      expect(v.iommu.caches.iotlb.size).toBe(0);
      expect(code(v.iommu.translate(req(0x3000n)))).toBe(data);

      const ss = v.page();
      const ssData = v.page();
      mapSs(v, ss, 0x3000n, ssData, { levels: 4 });
      v.mem.write64(v.pasidEntryAddr(SID, 0), 0n);
      v.setPasidEntry(SID, 0, LinuxVtd.pasidEntry({ pgtt: 2, did: 7, ssptptr: ss }));
      v.submit([QI.pcPasid(5, 0), QI.piotlbAll(5, 0)]);
      expect(code(v.iommu.translate(req(0x3000n)))).toBe(ssData);
      v.mem.write64(leafAddr(v, ss, 0x3000n), 0n);
      v.submit([QI.piotlbAll(7, 0), QI.piotlbPsi(7, 0, 0x3000n, 0), QI.iotlbPsi(7, 0x4000n, 0)]);
      expect(code(v.iommu.translate(req(0x3000n)))).toBe(ssData);
      v.submit([QI.iotlbPsi(7, 0x3000n, 0)]);
      expect(code(v.iommu.translate(req(0x3000n)))).toBe(0x79);
    });

    it('global first-stage entries survive PASID-selective invalidation but not page-selective', () => {
      const v = new LinuxVtd();
      v.bringUp();
      const { root, data } = fsDevice(v, 5);
      const leaf = leafAddr(v, root, 0x3000n);
      v.mem.write64(leaf, v.mem.read64(leaf) | 0x100n);
      v.iommu.translate(req(0x3000n));
      v.submit([QI.piotlbAll(5, 0)]);
      expect(v.iommu.caches.iotlb.entries()).toEqual([expect.objectContaining({ global: true, pa: data })]);
      v.submit([QI.piotlbPsi(5, 0, 0x3000n, 0)]);
      expect(v.iommu.caches.iotlb.size).toBe(0);
    });

    it('bounded caches evict the oldest entry; strict caches never evict', () => {
      for (const strict of [false, true]) {
        const v = new LinuxVtd({ cacheCapacity: 2 }, undefined, strict);
        v.bringUp();
        v.smContext(0, DEVFN);
        v.setPasidEntry(SID, 0, LinuxVtd.pasidEntry({ pgtt: 4, did: 1 }));
        for (const a of [0x4000_1000n, 0x4000_2000n, 0x4000_3000n]) v.iommu.translate(req(a));
        expect(v.iommu.caches.iotlb.entries().map((e) => e.iova)).toEqual(strict ? [0x4000_1000n, 0x4000_2000n, 0x4000_3000n] : [0x4000_2000n, 0x4000_3000n]);
      }
    });
  });

  describe('VT-d device-TLB (ATS endpoint ATC)', () => {
    function atsSetup(pasidCap = false) {
      const v = new LinuxVtd({}, [{ bus: 0, dev: 2, fn: 0, capabilities: { ats: true, ...(pasidCap ? { pasid: { maxPasidLog2: 20, exec: false, priv: false } } : {}) } }]);
      v.bringUp();
      v.smContext(0, DEVFN, { dte: true, paside: pasidCap });
      const dev = v.machine.devices[0];
      dev.atsEnabled = true;
      const root = v.page();
      const data = v.page();
      mapFs(v, root, 0x3000n, data, { levels: 4 });
      v.setPasidEntry(SID, pasidCap ? 9 : 0, LinuxVtd.pasidEntry({ pgtt: 1, did: 5, fsptptr: root }));
      return { v, dev, root, data };
    }

    it('keeps serving a translation from the ATC until a device-TLB invalidation reaches the device', () => {
      const { v, dev, root, data } = atsSetup();
      v.mem.write(data, new Uint8Array([0xaa]));
      expect(dev.dma({ iova: 0x3000n, length: 1, write: false })).toEqual({ ok: true, data: new Uint8Array([0xaa]) });
      v.mem.write64(leafAddr(v, root, 0x3000n), 0n);
      v.submit([QI.piotlbAll(5, 0)]);
      expect(dev.dma({ iova: 0x3000n, length: 1, write: false }).ok).toBe(true);
      v.submit([QI.devTlb(SID, 0x8000n, 0)]);
      expect(dev.dma({ iova: 0x3000n, length: 1, write: false }).ok).toBe(true);
      v.submit([QI.devTlb(SID, 0x0n, 4)]); // 64 KiB at 0
      const r = dev.dma({ iova: 0x3000n, length: 1, write: false });
      expect(r.ok ? 0 : r.fault.code).toBe(0x71);
    });

    it('PASID-based device-TLB invalidation drops that PASID\'s translations', () => {
      const { v, dev, root } = atsSetup(true);
      expect(dev.dma({ iova: 0x3000n, length: 4, write: false, pasid: 9 }).ok).toBe(true);
      v.mem.write64(leafAddr(v, root, 0x3000n), 0n);
      v.submit([QI.piotlbAll(5, 9)]);
      expect(dev.dma({ iova: 0x3000n, length: 4, write: false, pasid: 9 }).ok).toBe(true);
      v.submit([QI.pdevTlb(SID, 9, 0x3000n, 0)]);
      expect(dev.dma({ iova: 0x3000n, length: 4, write: false, pasid: 9 }).ok).toBe(false);
    });
  });

  describe('VT-d IOTLB is tagged by domain id', () => {
    it('two devices in different domains with the same IOVA get their own entries', () => {
      const v = new LinuxVtd({}, [
        { bus: 0, dev: 2, fn: 0 },
        { bus: 0, dev: 3, fn: 0 },
      ]);
      v.bringUp();
      v.smContext(0, DEVFN);
      v.smContext(0, 0x18);
      const a = v.page();
      const b = v.page();
      const ra = v.page();
      const rb = v.page();
      mapFs(v, ra, 0x3000n, a, { levels: 4 });
      mapFs(v, rb, 0x3000n, b, { levels: 4 });
      v.setPasidEntry(SID, 0, LinuxVtd.pasidEntry({ pgtt: 1, did: 5, fsptptr: ra }));
      const sid2 = sidOf(0, 3, 0);
      v.setPasidEntry(sid2, 0, LinuxVtd.pasidEntry({ pgtt: 1, did: 6, fsptptr: rb }));
      expect(code(v.iommu.translate(req(0x3000n)))).toBe(a);
      expect(code(v.iommu.translate({ requesterId: sid2, streamId: sid2, iova: 0x3000n, write: false }))).toBe(b);
      v.submit([QI.iotlbDsi(5)]);
      expect(v.iommu.caches.iotlb.entries().map((e) => e.did)).toEqual([6]);
    });
  });

  describe('VT-d flows as the Linux driver runs them', () => {
    it('intel_pasid_tear_down_entry: clear P, PASID-cache, PIOTLB, device-TLB, zero the entry — DMA then faults 0x59', () => {
      const v = new LinuxVtd({}, [{ bus: 0, dev: 2, fn: 0, capabilities: { ats: true } }]);
      v.bringUp();
      v.smContext(0, DEVFN, { dte: true });
      const dev = v.machine.devices[0];
      dev.atsEnabled = true;
      const root = v.page();
      const data = v.page();
      mapFs(v, root, 0x3000n, data, { levels: 4 });
      const at = v.setPasidEntry(SID, 0, LinuxVtd.pasidEntry({ pgtt: 1, did: 5, fsptptr: root }));
      expect(dev.dma({ iova: 0x3000n, length: 4, write: true }).ok).toBe(true);
      expect([v.iommu.caches.pasid.size, v.iommu.caches.iotlb.size, dev.atc?.entries().length]).toEqual([1, 1, 1]);
      v.mem.write64(at, v.mem.read64(at) & ~1n);
      expect(v.submit([QI.pcPasid(5, 0), QI.piotlbAll(5, 0), QI.devTlb(SID, 0n, 52)])).toBe(2);
      for (let i = 0; i < 8; i++) v.mem.write64(at + BigInt(i * 8), 0n);
      expect([v.iommu.caches.pasid.size, v.iommu.caches.iotlb.size, dev.atc?.entries().length]).toEqual([0, 0, 0]);
      const r = dev.dma({ iova: 0x3000n, length: 4, write: true });
      expect(r.ok ? 0 : r.fault).toMatchObject({ code: 0x59, recorded: true });
    });

    it('a host second-stage unmap under a nested domain needs a type-2 invalidation with the nested DID', () => {
      const v = new LinuxVtd();
      v.bringUp();
      v.smContext(0, DEVFN);
      const s2 = v.page();
      const data = v.page();
      // Guest RAM: the first-stage tables and the data page are visible at GPA = HPA + 2^40.
      const fs = v.page();
      mapFsGuest(v, fs, 0x3000n, data, 4);
      let t = fs;
      const tables = [fs];
      for (let l = 4; l > 1; l--) {
        t = (v.mem.read64(t + ((0x3000n >> BigInt(12 + 9 * (l - 1))) & 511n) * 8n) & 0xf_ffff_ffff_f000n) - GPA_OFF;
        tables.push(t);
      }
      for (const hpa of [...tables, data]) mapSs(v, s2, hpa + GPA_OFF, hpa, { levels: 4 });
      v.setPasidEntry(SID, 0, LinuxVtd.pasidEntry({ pgtt: 3, did: 9, ssptptr: s2, fsptptr: fs + GPA_OFF }));
      expect(code(v.iommu.translate(req(0x3000n)))).toBe(data);
      v.mem.write64(leafAddr(v, s2, data + GPA_OFF), 0n); // host unmaps the data page from the parent
      v.submit([QI.piotlbPsi(9, 0, 0x8000n, 0), QI.iotlbDsi(7)]);
      expect(code(v.iommu.translate(req(0x3000n)))).toBe(data);
      // The parent's PSI names the GPA, not the IOVA: it still drops every nested entry of DID 9.
      v.submit([QI.iotlbPsi(9, data + GPA_OFF, 0)]);
      expect(code(v.iommu.translate(req(0x3000n)))).toBe(0x79);
    });
  });
});
