// Hostile guests on VT-d (issue 9), two VMs side by side on one intel-vtd host: VM A in the
// VMM process, VM B in a second process (host.spawnProcess(), its own /dev/iommu). Each VM
// has guest RAM in an IOAS, a nest parent, the experimental VT-d vIOMMU with a vDEVICE for
// its function — both at the SAME guest RID 01:00.0 and the SAME guest DID 7 — and a nested
// HWPT over guest first-stage tables in its own RAM.
//
// B reads a guest IOVA, then remaps it in its tables without invalidating: B's IOTLB entry
// and its function's ATC hold a stale translation that only B's own invalidation may end.
// A then sends garbage and foreign numbers through the vIOMMU and the nested HWPT, and
// builds hostile first-stage tables. Each input is rejected with the architecture's errno or
// faulted with its fault reason; every descriptor A's calls issue carries only A's host DIDs
// and SID; a walk reads a bounded number of table entries; and B's stale translation, B's
// PASID entry, B's RAM, B's vEVENTQ and the host's pins are exactly as before.
import { type PhysicalMemory, VtdDevTlbDesc, VtdIotlbDesc, VtdPdevTlbDesc, VtdPiotlbDesc } from '@iommufd/hw-model';
import {
  IOMMU_HWPT_DATA_VTD_S1_VDID_EXP,
  IOMMU_VEVENT_VTD_FAULT_READ,
  IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP,
  IOMMU_VIOMMU_INVALIDATE_DATA_VTD_QI_EXP,
  IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP,
  iommu_vevent_vtd_fault,
} from '@iommufd/intel-vtd';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { U } from '../selftest/helpers.js';
import { GUEST_RAM, guestPageTable, inv, openVmm, qiEntry, readVtdVevents, s1vdid, sidOf, vtdHost, vtdInspect, type VtdVmm } from './vtd-fixture.js';

const GUEST_RID = 0x0100n;
const GUEST_DID = 7;
const GIOVA = 0x4000_0000n;
const QI = IOMMU_VIOMMU_INVALIDATE_DATA_VTD_QI_EXP;
const payload = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (seed + 5 * i) & 0xff);

/** One VM on device `index` of the host, with its vIOMMU, vDEVICE, vEVENTQ and nested HWPT attached. */
function vm(vmm: VtdVmm, index: number) {
  const { t, devIds, ioas, proc, host } = vmm;
  const parent = t.hwptAlloc(devIds[0]!, ioas, U.IOMMU_HWPT_ALLOC_NEST_PARENT).id;
  expect(vmm.attach(0, parent).rc).toBe(0);
  const viommu = t.viommuAlloc(devIds[0]!, parent, IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP).id;
  expect(t.vdeviceAlloc(viommu, devIds[0]!, GUEST_RID).rc).toBe(0);
  const q = t.veventqAlloc(viommu, IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP, 64);
  expect(q.rc).toBe(0);
  const nested = t.hwptAlloc(devIds[0]!, viommu, 0, { type: IOMMU_HWPT_DATA_VTD_S1_VDID_EXP, bytes: s1vdid(GUEST_DID) }).id;
  expect(vmm.attach(0, nested)).toEqual({ rc: 0, pt: nested });
  const gpt = guestPageTable(proc, vmm.ram);
  const path = host.vfioDevices[index]!;
  const dma = (iova: bigint, data: Uint8Array | number) => {
    const r = typeof data === 'number' ? host.dma(path, { iova, length: data, write: false }) : host.dma(path, { iova, length: data.length, write: true, data });
    return r.ok ? (r.data ?? 'ok') : 'fault';
  };
  const invalidate = (entries: readonly Uint8Array[], type = QI, len = 32) => t.invalidate(viommu, type, Uint8Array.from(entries.flatMap((e) => [...e])), len, entries.length);
  return { ...vmm, index, parent, viommu, veventq: q, nested, gpt, dma, invalidate };
}

async function twoVms() {
  const host = await vtdHost(2);
  const x = vtdInspect(host);
  const a = vm(openVmm(host, [0]), 0);
  const b = vm(openVmm(host, [1], host.spawnProcess()), 1);
  // B: G → 0x8_0000 ("old"), read (IOTLB + ATC filled), then remapped to 0x9_0000 ("new")
  // without an invalidation: B keeps reading "old" until B invalidates.
  b.proc.poke(b.ram + 0x8_0000n, payload(16, 0xb0));
  b.proc.poke(b.ram + 0x9_0000n, payload(16, 0xe0));
  b.gpt.map(GIOVA, 0x8_0000n);
  expect(b.dma(GIOVA, 16)).toEqual(payload(16, 0xb0));
  b.gpt.map(GIOVA, 0x9_0000n);
  expect(b.dma(GIOVA, 16)).toEqual(payload(16, 0xb0));
  const bPasid = x.pasidEntry(1);
  // The stale translation sits in B's function's ATC and in the unit's IOTLB under B's DID.
  const bIotlb = x.hw.caches.iotlb.lookup(bPasid.DID, 0, GIOVA);
  expect(bIotlb).toBeDefined();
  const bRam = b.proc.peek(b.ram, Number(GUEST_RAM)) as Uint8Array;
  const pins = host.pinnedPages;
  /** B and the host exactly as they were: the stale translation included. */
  const bUntouched = () => {
    expect(b.dma(GIOVA, 16)).toEqual(payload(16, 0xb0));
    expect(x.hw.caches.iotlb.lookup(bPasid.DID, 0, GIOVA)).toEqual(bIotlb);
    expect(x.pasidEntry(1)).toEqual(bPasid);
    expect(b.proc.peek(b.ram, Number(GUEST_RAM))).toEqual(bRam);
    expect(readVtdVevents(b.proc, b.veventq.fd)).toEqual([]);
    expect(host.pinnedPages).toBe(pins);
  };
  const aDids = () => new Set([x.pasidEntry(0).DID]);
  return { host, x, a, b, bUntouched, aDids };
}

/** Every descriptor issued since `mark` names only A's host DIDs and A's SID. */
function onlyA(x: ReturnType<typeof vtdInspect>, mark: number, dids: Set<number>): void {
  for (const d of x.qiSince(mark)) {
    const type = Number(d[0]! & 0xfn);
    if (type === 2) {
      const f = VtdIotlbDesc.decode(d);
      if (f.G !== 1) expect(dids.has(f.DID)).toBe(true);
      else throw new Error('a guest descriptor became a global IOTLB flush');
    } else if (type === 6) expect(dids.has(VtdPiotlbDesc.decode(d).DID)).toBe(true);
    else if (type === 3) expect(VtdDevTlbDesc.decode(d).SID).toBe(sidOf(0));
    else if (type === 8) expect(VtdPdevTlbDesc.decode(d).SID).toBe(sidOf(0));
    else throw new Error(`a guest invalidation issued descriptor type ${type}`);
  }
}

describe('hostile guest A next to guest B on intel-vtd', () => {
  it('foreign numbers: B’s guest DID/RID are A’s own names, B’s host DID and SID are nobody’s; B’s stale translation survives until B invalidates', async () => {
    const { x, a, b, bUntouched, aDids } = await twoVms();
    const bHostDid = x.pasidEntry(1).DID;
    expect(bHostDid).not.toBe(x.pasidEntry(0).DID);
    const piotlb = (did: number, g = 2) => qiEntry(VtdPiotlbDesc.encode({ TYPE: 6, G: g, DID: did, PASID: 0 }));
    const iotlb = (did: number, g: number) => qiEntry(VtdIotlbDesc.encode({ TYPE: 2, G: g, DID: did }));
    const devtlb = (sid: number) => qiEntry(VtdDevTlbDesc.encode({ TYPE: 3, SID: sid, S: 1, ADDR: 0x7fff_ffff_ffff_f000n }));
    const mark = x.unit.qi.log.length;
    // The same guest numbers as B's: they resolve inside A's vIOMMU only.
    expect(a.invalidate([piotlb(GUEST_DID), iotlb(GUEST_DID, 2), iotlb(0, 1), devtlb(Number(GUEST_RID))])).toEqual({ rc: 0, num: 4 });
    // B's host DID as a guest DID: not a guest DID of A's → nothing issued, still handled.
    expect(a.invalidate([piotlb(bHostDid), iotlb(bHostDid, 3)])).toEqual({ rc: 0, num: 2 });
    // Host SIDs are never names a guest can use — B's, and A's own: not vDEVICEs of A's vIOMMU.
    expect(a.invalidate([devtlb(sidOf(1))])).toEqual({ rc: -U.EIO, num: 0 });
    expect(a.invalidate([devtlb(sidOf(0))])).toEqual({ rc: -U.EIO, num: 0 });
    expect(a.invalidate([qiEntry(VtdPdevTlbDesc.encode({ TYPE: 8, SID: sidOf(1), PASID: 0, G: 1 }))])).toEqual({ rc: -U.EIO, num: 0 });
    onlyA(x, mark, aDids());
    bUntouched();
    // Only B's own invalidation ends B's stale translation.
    expect(b.invalidate([piotlb(GUEST_DID), devtlb(Number(GUEST_RID))])).toEqual({ rc: 0, num: 2 });
    expect(b.dma(GIOVA, 16)).toEqual(payload(16, 0xe0));
  });

  it('garbage descriptor arrays through A’s vIOMMU and garbage iommu_hwpt_vtd_s1_invalidate arrays: 0 or an architectural errno, entry_num ≤ n, only A’s DIDs/SID, B untouched', async () => {
    const { x, a, bUntouched, aDids } = await twoVms();
    const dids = aDids();
    const qw = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
    // Half raw garbage, half well-typed descriptors of the forwardable types with random fields.
    const typed = fc.tuple(fc.constantFrom(2n, 3n, 6n, 8n), qw, qw).map(([t, w0, w1]) => qiEntry([(w0 & ~0xfn & ~(7n << 9n)) | t, w1]));
    const entry = fc.oneof(fc.uint8Array({ minLength: 32, maxLength: 32 }), typed);
    fc.assert(
      fc.property(fc.array(entry, { minLength: 1, maxLength: 6 }), fc.constantFrom(16, 24, 32, 40), (entries, len) => {
        const mark = x.unit.qi.log.length;
        const sized = entries.map((e) => (len <= 32 ? e.subarray(0, len) : Uint8Array.from([...e, ...new Uint8Array(len - 32)])));
        const r = a.invalidate(sized, QI, len);
        expect([0, -U.EINVAL, -U.EIO, -U.E2BIG]).toContain(r.rc);
        expect(r.num).toBeLessThanOrEqual(entries.length);
        if (r.rc === 0) expect(r.num).toBe(entries.length);
        // Bounded work: A has one nested HWPT with one attachment, so each handled guest
        // descriptor becomes at most one host descriptor.
        expect(x.qiSince(mark).length).toBeLessThanOrEqual(r.num);
        onlyA(x, mark, dids);
      }),
      { numRuns: 150, seed: 9 },
    );
    const T = U.IOMMU_HWPT_INVALIDATE_DATA_VTD_S1;
    fc.assert(
      // Addresses mostly page-aligned, page counts small, huge, 0 or U64_MAX: most entries are
      // valid and issued, so the property covers the flushes as well as the refusals.
      fc.property(fc.array(fc.tuple(fc.oneof(qw, qw.map((v) => v & ~0xfffn), fc.constant(0n)), fc.oneof(qw, fc.bigInt({ min: 0n, max: 4096n }), fc.constant((1n << 64n) - 1n)), fc.nat(), fc.nat()), { minLength: 1, maxLength: 6 }), (raw) => {
        const mark = x.unit.qi.log.length;
        const entries = raw.map(([addr, npages, flags, res]) => inv(addr, npages, flags & 3, res & 1));
        const r = a.t.invalidate(a.nested, T, Uint8Array.from(entries.flatMap((e) => [...e])), 24, entries.length);
        // A vIOMMU's nested HWPT also takes iommu_hwpt_vtd_s1_invalidate arrays on its own ID.
        expect([0, -U.EINVAL, -U.EOPNOTSUPP]).toContain(r.rc);
        expect(r.num).toBeLessThanOrEqual(entries.length);
        // Each handled entry: one PASID-based IOTLB + one device-TLB descriptor.
        expect(x.qiSince(mark).length).toBe(2 * r.num);
        onlyA(x, mark, dids);
      }),
      { numRuns: 100, seed: 10 },
    );
    bUntouched();
  });

  it('hostile first-stage tables: a self-referencing PML4 is a bounded 4-level walk; non-canonical, reserved-bit, beyond-width and unbacked entries fault with their reasons; B untouched', async () => {
    const { host, x, a, bUntouched } = await twoVms();
    const q = a.veventq.fd;
    // A's function stops using its ATC, so each failing request is recorded (reason bytes) and
    // forwarded to A's vEVENTQ with A's guest RID.
    x.unit.devices.get(sidOf(0))!.endpoint.atsEnabled = false;
    // Table entries are fetched through readRamWord (one call per entry the walk reads).
    const read64 = vi.spyOn(x.hw.mem as PhysicalMemory, 'readRamWord');
    const faultOf = (iova: bigint, write = false) => {
      read64.mockClear();
      expect(a.dma(iova, write ? payload(4, 1) : 4)).toBe('fault');
      const events = readVtdVevents(a.proc, q);
      expect(events).toHaveLength(1);
      return { ...iommu_vevent_vtd_fault.decode(events[0]!.data), reads: read64.mock.calls.length };
    };
    const pml4 = 0x1000n;
    // A well-formed walk first (context and PASID entries then cached), then one more, counted.
    a.gpt.map(0x6000_0000n, 0x1_0000n);
    a.gpt.map(0x6000_1000n, 0x1_1000n);
    expect(a.dma(0x6000_0000n, 4)).toEqual(new Uint8Array(4));
    read64.mockClear();
    expect(a.dma(0x6000_1000n, 4)).toEqual(new Uint8Array(4));
    const normalReads = read64.mock.calls.length;
    // 4 first-stage entries, each fetched through the 4-level second stage, then the
    // output's second stage: 4·(4+1) + 4 = 24 table reads.
    expect(normalReads).toBe(24);
    // A loop: PML4[1] points at the PML4 itself, at every level of the walk. Architecturally a
    // recursive mapping: exactly 4 levels are read and the "leaf" is the PML4 page.
    a.gpt.setEntry(1n << 39n, 4, pml4 | 0x7n);
    const loop = (1n << 39n) | (1n << 30n) | (1n << 21n) | (1n << 12n);
    read64.mockClear();
    expect(a.dma(loop + 8n, 8)).toEqual(a.proc.peek(a.ram + pml4 + 8n, 8));
    const loopReads = read64.mock.calls.length;
    expect(loopReads).toBe(normalReads);
    // Non-canonical for a 48-bit first stage.
    expect(faultOf(1n << 47n)).toMatchObject({ addr: 1n << 47n, virt_rid: Number(GUEST_RID), reason: 0x80, flags: IOMMU_VEVENT_VTD_FAULT_READ });
    // PS in a PML4 entry is reserved.
    a.gpt.setEntry(2n << 39n, 4, 0x2000n | 0x87n);
    expect(faultOf(2n << 39n)).toMatchObject({ addr: 2n << 39n, reason: 0x72 });
    // A next-level pointer (bit 51) beyond what the nesting parent's second stage can
    // translate: 0x74, a first-stage entry address beyond MGAW in nested translation.
    a.gpt.setEntry(3n << 39n, 4, (1n << 51n) | 0x7n);
    expect(faultOf(3n << 39n)).toMatchObject({ addr: 3n << 39n, reason: 0x74 });
    // A table GPA that A's second stage does not back (past A's 2 MiB of RAM).
    a.gpt.setEntry(4n << 39n, 4, 0x7000_0000n | 0x7n);
    const unbacked = faultOf(4n << 39n);
    expect(unbacked).toMatchObject({ addr: 4n << 39n, reason: 0x79 });
    // A leaf whose output is B's RAM's host physical address, and one far beyond A's RAM.
    const bPa = x.unit.devices.get(sidOf(1))!.domain!.s2Domain!.pgtable!.iovaToPhys(0x9_0000n);
    a.gpt.map(0x5000_0000n, bPa);
    expect(faultOf(0x5000_0000n, true)).toMatchObject({ addr: 0x5000_0000n, reason: 0x79, flags: 0 });
    a.gpt.map(0x5000_1000n, 1n << 45n);
    expect(faultOf(0x5000_1000n)).toMatchObject({ reason: 0x79 });
    // No failing walk read more than a complete one.
    expect(unbacked.reads).toBeLessThanOrEqual(normalReads);
    expect(readVtdVevents(a.proc, q)).toEqual([]);
    read64.mockRestore();
    expect(host.pinnedPages).toBeGreaterThan(0);
    bUntouched();
  });

  it('hostile s1 data on A: bad address widths and flags are EINVAL at attach, a root beyond every width faults; A’s attachment stays, B untouched', async () => {
    const { x, a, bUntouched } = await twoVms();
    x.unit.devices.get(sidOf(0))!.endpoint.atsEnabled = false;
    const alloc = (f: Parameters<typeof s1vdid>[1]) => a.t.hwptAlloc(a.devIds[0]!, a.viommu, 0, { type: IOMMU_HWPT_DATA_VTD_S1_VDID_EXP, bytes: s1vdid(GUEST_DID, f) });
    // The preset's unit: no 5-level first stage (CAP.FS5LP 0), no extended accessed flag
    // (ECAP.EAFS 0): 57 and EAFE are refused like any other bad width or flag.
    expect([x.unit.capField('FS5LP'), x.unit.ecapField('EAFS')]).toEqual([0, 0]);
    const bad: Parameters<typeof s1vdid>[1][] = [0, 39, 47, 49, 57, 64, 0xffff_ffff].map((w) => ({ addr_width: w }));
    bad.push({ flags: BigInt(U.IOMMU_VTD_S1_EAFE) }, { flags: BigInt(U.IOMMU_VTD_S1_EAFE | U.IOMMU_VTD_S1_SRE | U.IOMMU_VTD_S1_WPE) });
    for (const f of bad) {
      const h = alloc(f);
      expect(h.rc).toBe(0);
      expect(a.attach(0, h.id).rc).toBe(-U.EINVAL);
      // The failed attach left A on its nested HWPT.
      expect(x.pasidEntry(0)).toMatchObject({ P: 1, PGTT: 3 });
      expect(a.t.destroy(h.id)).toBe(0);
    }
    // A root far beyond the address width: accepted (the kernel masks only the low 12 bits),
    // and every DMA faults reading the root through the second stage.
    const far = alloc({ pgtbl_addr: 0xffff_ffff_ffff_f000n });
    expect(a.attach(0, far.id).rc).toBe(0);
    expect(x.pasidEntry(0).FSPTPTR).toBe(0xffff_ffff_ffff_f000n & ((1n << 64n) - 0x1000n));
    expect(a.dma(0x1000n, 4)).toBe('fault');
    const [e] = readVtdVevents(a.proc, a.veventq.fd);
    // 0x74: the first-stage root's GPA is beyond what the second stage translates (MGAW 48).
    expect(iommu_vevent_vtd_fault.decode(e!.data)).toMatchObject({ addr: 0x1000n, virt_rid: Number(GUEST_RID), reason: 0x74 });
    bUntouched();
  });
});
