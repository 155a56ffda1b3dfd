import { describe, expect, it } from 'vitest';
import { PAGE_RESPONSE_LOG_LENGTH } from '../src/index.js';
import { DEVFN, LinuxVtd, mapFs, QI, QIE, REG, req, SID } from './vtd-linux.js';
import { QUEUE_CONSUMERS, useQueueConsumer } from './support/consumers.js';

const IQE = 1 << 4;
const ICE = 1 << 5;
const ITE = 1 << 6;

function up(options = {}) {
  const v = new LinuxVtd(options);
  v.bringUp();
  return v;
}

describe.each(QUEUE_CONSUMERS)('%s queue consumer', (consumer) => {
  useQueueConsumer(consumer);

  describe('VT-d invalidation queue: wait descriptors', () => {
    it('SW writes the status data (qi_submit_sync sees QI_DONE) and IQH follows IQT', () => {
      const v = up();
      expect(v.submit([QI.iotlbGlobal(), QI.ccGlobal()])).toBe(2);
      expect(v.r64(REG.IQH)).toBe(3n << 5n);
      expect(v.r64(REG.IQT)).toBe(3n << 5n);
    });

    it('IF sets ICS.IWC and sends the completion event; a masked event stays pending until unmasked', () => {
      const v = up();
      v.enqueue([[0x5n | (1n << 4n), 0n]]);
      expect(v.r32(REG.ICS)).toBe(1);
      expect(v.iommu.interrupts).toEqual([{ source: 'invalidation', address: 0xfee0_1000n, data: 0x42 }]);
      // IWC still set: a second IF wait sends nothing.
      v.enqueue([[0x5n | (1n << 4n), 0n]]);
      expect(v.iommu.interrupts).toHaveLength(1);
      v.w32(REG.ICS, 1);
      v.w32(REG.IECTL, 0x8000_0000);
      v.enqueue([[0x5n | (1n << 4n), 0n]]);
      expect(v.r32(REG.IECTL)).toBe(0xc000_0000);
      v.w32(REG.IECTL, 0);
      expect(v.iommu.interrupts).toHaveLength(2);
    });

    it('a fence-only wait (FN, neither SW nor IF) is accepted, as the PRQ drain uses it', () => {
      const v = up();
      expect(v.submit([[0x5n | (1n << 6n), 0n]])).toBe(2);
      expect(v.r32(REG.FSTS)).toBe(0);
    });

    it('IEC descriptors are accepted (no interrupt remapping cache to drop)', () => {
      const v = up();
      expect(v.submit([[0x4n, 0n]])).toBe(2);
    });
  });

  describe('VT-d invalidation queue errors (IQE)', () => {
    const cases: { name: string; desc: bigint[]; iqei: number }[] = [
      { name: 'unknown type 0xA (page-stream response)', desc: [0xan, 0n], iqei: 3 },
      { name: 'type bits 11:9 set', desc: [0x2n | (1n << 9n) | (1n << 4n), 0n], iqei: 3 },
      { name: 'reserved bit 8 of an IOTLB descriptor', desc: [0x2n | (1n << 4n) | (1n << 8n), 0n], iqei: 4 },
      { name: 'granularity 0 of a context-cache descriptor', desc: [0x1n, 0n], iqei: 4 },
      { name: 'IOTLB PSI with AM above MAMV', desc: [0x2n | (3n << 4n), 19n], iqei: 4 },
      { name: 'PASID IOTLB with granularity 1', desc: [0x6n | (1n << 4n), 0n], iqei: 4 },
      { name: 'upper half of a 256-bit slot not zero', desc: [0x2n | (1n << 4n), 0n, 1n, 0n], iqei: 4 },
      { name: 'wait status address not dword aligned', desc: [0x5n | (1n << 5n), 0x4000_0002n], iqei: 4 },
      { name: 'device-TLB PFSID without ECAP.DIT', desc: [0x3n | (1n << 12n), 0n], iqei: 4 },
      { name: 'page-group response data in the upper half without PDP', desc: [0x9n, 0n, 0n, 5n], iqei: 4 },
    ];
    for (const c of cases) {
      it(`${c.name} → IQEI ${c.iqei}, IQH stays at the bad descriptor, nothing after it runs`, () => {
        const v = up();
        expect(v.submit([QI.iotlbGlobal()])).toBe(2);
        const status = v.submit([c.desc]);
        expect(status).toBe(1); // QI_IN_USE: the wait behind it did not run
        expect(v.r32(REG.FSTS)).toBe(IQE);
        expect(v.r64(REG.IQER)).toBe(BigInt(c.iqei));
        expect(v.r64(REG.IQH)).toBe(2n << 5n);
        expect(v.iommu.interrupts).toEqual([{ source: 'fault', address: 0xfee0_0000n, data: 0x41 }]);
      });
    }

    it('kernel recovery: overwrite the bad slot with the wait, clear IQE, hardware resumes at IQH', () => {
      const v = up();
      v.submit([[0xan, 0n]]);
      const bad = v.iq;
      const wait = [v.mem.read64(bad + 32n), v.mem.read64(bad + 40n)];
      v.mem.write64(bad, wait[0]);
      v.mem.write64(bad + 8n, wait[1]);
      v.w32(REG.FSTS, IQE);
      expect(v.r32(REG.FSTS)).toBe(0);
      expect(v.r64(REG.IQH)).toBe(2n << 5n);
      expect(v.mem.read32(v.statusPage)).toBe(2);
      expect(v.submit([QI.iotlbGlobal()])).toBe(2);
    });

    it('a tail with bit 4 set in a 256-bit queue is misaligned (IQEI 6); bit 4 is cleared', () => {
      const v = up();
      v.w32(REG.IQT, 0x30);
      expect(v.r32(REG.FSTS)).toBe(IQE);
      expect(v.r64(REG.IQER)).toBe(6n);
      expect(v.r64(REG.IQT)).toBe(0x20n);
    });

    it('a queue that is not in memory cannot be fetched (IQEI 2)', () => {
      const v = new LinuxVtd();
      v.w64(REG.IQA, 0x10_0000n | (1n << 11n));
      v.w32(REG.GCMD, QIE);
      v.w32(REG.IQT, 1 << 5);
      expect(v.r32(REG.FSTS)).toBe(IQE);
      expect(v.r64(REG.IQER)).toBe(2n);
      expect(v.r64(REG.IQH)).toBe(0n);
    });

    it('a tail beyond the queue size is invalid (IQEI 1)', () => {
      const v = new LinuxVtd();
      v.bringUp({ te: false });
      v.w32(REG.GCMD, 0);
      v.w64(REG.IQA, v.iq | (1n << 11n)); // QS=0: 128 entries of 256 bits
      v.w32(REG.GCMD, QIE);
      v.w32(REG.IQT, 200 << 5);
      expect(v.r64(REG.IQER)).toBe(1n);
      expect(v.r32(REG.FSTS)).toBe(IQE);
    });

    it('PASID-based descriptors in a 128-bit queue are an invalid width (IQEI 5)', () => {
      const v = new LinuxVtd();
      v.bringUp({ te: false });
      v.w32(REG.GCMD, 0);
      v.w64(REG.IQA, v.iq); // DW=0
      v.w32(REG.GCMD, QIE);
      v.mem.write64(v.iq, QI.piotlbAll(1, 0)[0]);
      v.w32(REG.IQT, 1 << 4);
      expect(v.r64(REG.IQER)).toBe(5n);
    });

    it('a 256-bit queue on a unit without scalable mode is an invalid width (IQEI 5)', () => {
      const v = new LinuxVtd({ scalableMode: false });
      v.w64(REG.IQA, 0x4000_0000n | (1n << 11n));
      expect(v.r64(REG.IQER)).toBe(5n);
    });

    it('PASID-based descriptors are invalid types on a legacy-only unit (IQEI 3)', () => {
      const v = up({ scalableMode: false });
      v.enqueue([QI.pcGlobal()]);
      expect(v.r64(REG.IQER)).toBe(3n);
    });

    it('a wait with PD on a unit without ECAP.PDS is a reserved-field error', () => {
      const v = up({ pageRequestDrain: false });
      expect(v.submit([], 1n << 7n)).toBe(1);
      expect(v.r64(REG.IQER)).toBe(4n);
    });
  });

  describe('VT-d device-TLB invalidation errors (ITE, ICE)', () => {
    it('a device-TLB invalidation to an absent endpoint times out: ITE, ITESID, the wait is aborted', () => {
      const v = up();
      const ghost = 0x0300;
      expect(v.submit([QI.devTlb(ghost, 0n, 0)])).toBe(1); // aborted: never QI_DONE
      expect(v.r32(REG.FSTS)).toBe(ITE);
      expect(v.r64(REG.IQER)).toBe(BigInt(ghost) << 32n);
      expect(v.r64(REG.IQH)).toBe(2n << 5n);
      // Nothing is fetched while ITE is set.
      const st = v.submit([QI.iotlbGlobal()]);
      expect(st).toBe(1);
      v.w32(REG.FSTS, ITE);
      expect(v.mem.read32(v.statusPage + 2n * 4n)).toBe(2);
    });

    it('an injected bad completion sets ICE and ICESID and processing continues', () => {
      const v = new LinuxVtd({}, [{ bus: 0, dev: 2, fn: 0, capabilities: { ats: true } }]);
      v.bringUp();
      v.iommu.injectDeviceTlbError(SID, 'completion-error');
      expect(v.submit([QI.devTlb(SID, 0n, 0)])).toBe(2);
      expect(v.r32(REG.FSTS)).toBe(ICE);
      expect(v.r64(REG.IQER)).toBe(BigInt(SID) << 48n);
      v.iommu.injectDeviceTlbError(SID, 'timeout');
      expect(v.submit([QI.pdevTlb(SID, 3, 0n, 0)])).toBe(1);
      expect(v.r32(REG.FSTS)).toBe(ICE | ITE);
    });
  });

  describe('VT-d page requests and page-group responses', () => {
    function priSetup() {
      const v = new LinuxVtd({}, [{ bus: 0, dev: 2, fn: 0, capabilities: { ats: true, pri: true, pasid: { maxPasidLog2: 20, exec: false, priv: false } } }]);
      v.bringUp();
      v.smContext(0, DEVFN, { dte: true, pre: true, paside: true });
      const root = v.page();
      v.setPasidEntry(SID, 7, LinuxVtd.pasidEntry({ pgtt: 1, did: 5, fsptptr: root }));
      return { v, root };
    }

    it('a recoverable fault of a PRI device’s translation request becomes a page request descriptor (not a fault record)', () => {
      const { v } = priSetup();
      const t = v.iommu.translate(req(0x1234_5678n, true, { pasid: 7, translationRequest: true }));
      expect(t.ok ? undefined : t.fault).toEqual({ kind: 'SM_FS_NOT_PRESENT', code: 0x71, iova: 0x1234_5678n, write: true, recorded: false, stall: true });
      expect(v.r32(REG.FSTS)).toBe(0);
      expect(v.r64(REG.PQT)).toBe(0x20n);
      expect(v.r32(REG.PRS)).toBe(1);
      // type 1, PASID present, RID, PASID 7; WR, LPIG, PRG index 0, page address.
      expect([0, 8, 16, 24].map((o) => v.mem.read64(v.prq + BigInt(o)))).toEqual([0x1n | (1n << 8n) | (BigInt(SID) << 16n) | (7n << 32n), 0x1234_5000n | 0x2n | 0x4n, 0n, 0n]);
      expect(v.iommu.interrupts).toEqual([{ source: 'page-request', address: 0xfee0_2000n, data: 0x43 }]);
      // The PRQ thread: PPR cleared, head := tail, then a page-group response through the IQ.
      v.w32(REG.PRS, 1);
      v.w64(REG.PQH, v.r64(REG.PQT));
      expect(v.submit([QI.pageResponse(SID, 7, 0, 0)])).toBe(2);
      expect(v.iommu.pageResponses).toEqual([{ requesterId: SID, pasid: 7, code: 0, groupIndex: 0 }]);
    });

    it('an untranslated request of the same PRI device faults and is recorded (no page request)', () => {
      const { v } = priSetup();
      const t = v.iommu.translate(req(0x1234_5678n, true, { pasid: 7 }));
      expect(t.ok ? undefined : t.fault).toEqual({ kind: 'SM_FS_NOT_PRESENT', code: 0x71, iova: 0x1234_5678n, write: true, recorded: true });
      expect(v.r64(REG.PQT)).toBe(0n);
      expect(v.r32(REG.FSTS) & 2).toBe(2);
    });

    it('the unit keeps the last PAGE_RESPONSE_LOG_LENGTH page-group responses (a bounded log)', () => {
      const { v } = priSetup();
      for (let i = 0; i < PAGE_RESPONSE_LOG_LENGTH + 2; i++) expect(v.submit([QI.pageResponse(SID, 7, 0, i & 0x1ff)])).toBe(2);
      expect(v.iommu.pageResponses).toHaveLength(PAGE_RESPONSE_LOG_LENGTH);
      expect(v.iommu.pageResponses[0]).toEqual({ requesterId: SID, pasid: 7, code: 0, groupIndex: 2 });
      expect(v.iommu.pageResponses.at(-1)).toEqual({ requesterId: SID, pasid: 7, code: 0, groupIndex: (PAGE_RESPONSE_LOG_LENGTH + 1) & 0x1ff });
    });

    it('a page-group response may carry private data in the upper half when PDP is set', () => {
      const { v } = priSetup();
      const r = QI.pageResponse(SID, 7, 1, 9);
      expect(v.submit([[r[0] | (1n << 5n), r[1], 0x1234n, 0x5678n]])).toBe(2);
      expect(v.iommu.pageResponses).toEqual([{ requesterId: SID, pasid: 7, code: 1, groupIndex: 9 }]);
    });

    it('the fault is served once the response says the page is mapped', () => {
      const { v, root } = priSetup();
      v.iommu.translate(req(0x5000n, false, { pasid: 7, translationRequest: true }));
      const data = v.page();
      mapFs(v, root, 0x5000n, data, { levels: 4 });
      v.submit([QI.pageResponse(SID, 7, 0, 0)]);
      expect(v.iommu.translate(req(0x5000n, false, { pasid: 7 }))).toMatchObject({ ok: true, pa: data });
    });

    it('a full page request queue sets PRS.PRO and drops the request', () => {
      const { v } = priSetup();
      v.w64(REG.PQA, v.prq); // PQS = 0: 128 slots, 127 usable
      for (let i = 0; i < 127; i++) {
        expect(v.iommu.pageRequest({ requesterId: SID, pasid: 7, address: BigInt(i) << 12n, read: true, write: false, lastInGroup: true, groupIndex: i })).toBe(true);
      }
      expect(v.iommu.pageRequest({ requesterId: SID, pasid: 7, address: 0n, read: true, write: false, lastInGroup: true, groupIndex: 1 })).toBe(false);
      expect(v.r32(REG.PRS)).toBe(3);
      expect(v.r64(REG.PQT)).toBe(127n * 32n);
    });

    it('a page request from a device whose context has PRE clear records fault 0x47', () => {
      const v = new LinuxVtd();
      v.bringUp();
      v.smContext(0, DEVFN);
      expect(v.iommu.pageRequest({ requesterId: SID, address: 0x1000n, read: true, write: false, lastInGroup: true, groupIndex: 0 })).toBe(false);
      expect(v.frcd(0)[1]).toBe(BigInt(SID) | (0x47n << 32n) | (1n << 62n) | (1n << 63n));
    });
  });
});
