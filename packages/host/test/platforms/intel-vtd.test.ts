// The VMM scenario of issue 7 on the `intel-vtd` preset, through the Host contract only:
// guest RAM in an IOAS, a device bound and attached, DMA through the VT-d model, a nesting
// parent, a nested HWPT over guest x86 first-stage tables in guest RAM, stale translations
// until IOMMU_HWPT_INVALIDATE, bad invalidation entries, GET_HW_INFO, and a clean teardown.
import * as U from '@iommufd/uapi';
import { describe, expect, it } from 'vitest';
import { VtdCcDesc, VtdDevTlbDesc, VtdPiotlbDesc } from '@iommufd/hw-model';
import {
  iommu_vevent_vtd_fault,
  IOMMU_HWPT_DATA_VTD_S1_VDID_EXP,
  IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP,
  IOMMU_VIOMMU_INVALIDATE_DATA_VTD_QI_EXP,
  IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP,
  iommu_hwpt_vtd_s1_vdid,
} from '@iommufd/intel-vtd';
import { INTEL_VTD_BASE, intelVtdUnitOf } from '../../src/platforms/intel-vtd.js';
import { bootVmm, errnoOf, invalidateResult, pattern } from './vmm.js';
import { guestPageTable, inv, S1_ROOT, s1 } from './vtd-fixture.js';

async function boot(devices = 1) {
  const vmm = await bootVmm({ platform: 'intel-vtd', devices, strict: true });
  const { host, p, fd, devIds, deviceFds, ioas } = vmm;
  const parent = U.hwptAlloc(p, fd, { devId: devIds[0]!, ptId: ioas, flags: U.IOMMU_HWPT_ALLOC_NEST_PARENT });
  expect(U.vfioDeviceAttachIommufdPt(p, deviceFds[0]!, { ptId: parent })).toBe(parent);
  const dma = (iova: bigint, data: Uint8Array | number, dev = 0) =>
    typeof data === 'number'
      ? host.dma(host.vfioDevices[dev]!, { iova, length: data, write: false })
      : host.dma(host.vfioDevices[dev]!, { iova, length: data.length, write: true, data });
  return { ...vmm, parent, dma, inspect: intelVtdUnitOf(host.memory)! };
}

describe("preset 'intel-vtd': the machine", () => {
  it('has one VFIO cdev per PCI function; GET_HW_INFO returns INTEL_VTD with the unit’s CAP and ECAP registers', async () => {
    const { host, p, fd, devIds } = await boot(3);
    expect(host.platform).toBe('intel-vtd');
    expect(host.vfioDevices).toEqual(['/dev/vfio/devices/vfio0', '/dev/vfio/devices/vfio1', '/dev/vfio/devices/vfio2']);
    expect(devIds).toEqual([1, 2, 3]);
    const info = U.getHwInfo(p, fd, { devId: devIds[1]! });
    expect(info.type).toBe(U.IOMMU_HW_INFO_TYPE_INTEL_VTD);
    const cap = new DataView(host.memory.read(INTEL_VTD_BASE + 0x08n, 8).buffer).getBigUint64(0, true);
    const ecap = new DataView(host.memory.read(INTEL_VTD_BASE + 0x10n, 8).buffer).getBigUint64(0, true);
    expect(U.iommu_hw_info_vtd.decode(info.data)).toEqual({ flags: U.IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17, __reserved: 0, cap_reg: cap, ecap_reg: ecap });
    // ECAP: QI (1), DT (2), PASID (40), SMTS (43), NEST (26) — what the preset promises.
    for (const bit of [1n, 2n, 26n, 40n, 43n]) expect((ecap >> bit) & 1n).toBe(1n);
    // The device has ATS + PASID (20 bits, = ECAP.PSS + 1 of the unit).
    expect(info.capabilities).toBe(BigInt(U.IOMMU_HW_CAP_PCI_PASID_PRIV) | 1n);
    expect(info.maxPasidLog2).toBe(20);
  });

  it('ramBytes bounds the machine: pinning more guest RAM than the machine has is ENOMEM, and nothing stays pinned', async () => {
    const { host, p, fd, ioas, deviceFds } = await bootVmm({ platform: 'intel-vtd', devices: 1, ramBytes: 4n << 20n, guestRam: 1n << 20n });
    // With a domain attached, IOAS_MAP pins (without one it would only record the range).
    expect(U.vfioDeviceAttachIommufdPt(p, deviceFds[0]!, { ptId: ioas })).toBeGreaterThan(0);
    expect(host.pinnedPages).toBe(256);
    const big = p.mmap(8n << 20n, U.PROT_READ | U.PROT_WRITE, U.MAP_SHARED | U.MAP_ANONYMOUS, -1, 0);
    expect(errnoOf(() => U.ioasMap(p, fd, { ioasId: ioas, userVa: big, length: 8n << 20n, iova: 1n << 30n }))).toBe(U.ENOMEM);
    expect(host.pinnedPages).toBe(256);
  });

  it('translates DMA at IOVAs through the second-stage table of a paging HWPT, byte for byte', async () => {
    const { p, ram, dma } = await boot();
    expect(dma(0x3004n, pattern(8, 0x10))).toEqual({ ok: true });
    expect(p.peek(ram + 0x3000n, 16)).toEqual(Uint8Array.from([0, 0, 0, 0, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0, 0, 0, 0]));
    p.poke(ram + 0x1f_fffcn, pattern(4, 0xa0));
    // A read crossing no mapping end, and one that runs past the 2 MiB of guest RAM.
    expect(dma(0x1f_fffcn, 4)).toEqual({ ok: true, data: Uint8Array.from([0xa0, 0xa1, 0xa2, 0xa3]) });
    const past = dma(0x1f_fffcn, 8);
    expect(past.ok).toBe(false);
    expect(!past.ok && past.fault).toMatchObject({ iova: 0x20_0000n, write: false });
  });
});

describe("preset 'intel-vtd': nested translation over guest first-stage tables", () => {
  it('DMA at guest IOVAs; a guest PTE change is stale until IOMMU_HWPT_INVALIDATE; then it takes effect', async () => {
    const { p, fd, ram, devIds, deviceFds, parent, dma, inspect } = await boot();
    const gpt = guestPageTable(p, ram);
    const giova = 0x4000_0000n;
    gpt.map(giova, 0x8_0000n);
    gpt.map(giova + 0x1000n, 0x8_1000n);
    const nested = U.hwptAlloc(p, fd, { devId: devIds[0]!, ptId: parent, data: { type: U.IOMMU_HWPT_DATA_VTD_S1, bytes: s1() } });
    expect(U.vfioDeviceAttachIommufdPt(p, deviceFds[0]!, { ptId: nested })).toBe(nested);

    // A write spanning two guest pages lands in the two guest-physical pages.
    expect(dma(giova + 0xffcn, pattern(8, 1))).toEqual({ ok: true });
    expect(p.peek(ram + 0x8_0ffcn, 4)).toEqual(pattern(4, 1));
    expect(p.peek(ram + 0x8_1000n, 4)).toEqual(pattern(4, 5));
    expect(dma(giova + 0xffcn, 8)).toEqual({ ok: true, data: pattern(8, 1) });

    // The guest remaps the page without telling the IOMMU: the IOTLB (and ATC) still hold the old one.
    gpt.map(giova, 0x9_0000n);
    expect(dma(giova + 0x10n, pattern(4, 0x40))).toEqual({ ok: true });
    expect(p.peek(ram + 0x8_0010n, 4)).toEqual(pattern(4, 0x40));
    expect(p.peek(ram + 0x9_0010n, 4)).toEqual(new Uint8Array(4));

    const mark = inspect.unit.qi.log.length;
    expect(invalidateResult(p, fd, { hwptId: nested, dataType: U.IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, entryLen: 24, entries: [inv(giova, 1n)] })).toEqual([0, 1]);
    // One batch: a PASID-based IOTLB invalidation (type 6) of the nested domain's DID, then the
    // device-TLB invalidation (type 3) of the ATS function at 00:01.0 (SID 0x08).
    const batches = inspect.unit.qi.log.slice(mark).map((b) => b.descs.map((d) => d[0]! & 0xfn));
    expect(batches).toEqual([[0x6n, 0x3n]]);

    expect(dma(giova + 0x10n, pattern(4, 0x50))).toEqual({ ok: true });
    expect(p.peek(ram + 0x9_0010n, 4)).toEqual(pattern(4, 0x50));
    expect(p.peek(ram + 0x8_0010n, 4)).toEqual(pattern(4, 0x40));
    // The neighbouring page was not invalidated and is still right.
    expect(dma(giova + 0x1000n, 4)).toEqual({ ok: true, data: pattern(4, 5) });
  });

  it('an unmapped guest IOVA faults; a guest mapping is walked once present (non-present entries are not cached)', async () => {
    const { p, fd, ram, devIds, deviceFds, parent, dma } = await boot();
    const gpt = guestPageTable(p, ram);
    gpt.map(0x1000_0000n, 0x6_0000n);
    const nested = U.hwptAlloc(p, fd, { devId: devIds[0]!, ptId: parent, data: { type: U.IOMMU_HWPT_DATA_VTD_S1, bytes: s1() } });
    expect(U.vfioDeviceAttachIommufdPt(p, deviceFds[0]!, { ptId: nested })).toBe(nested);
    const miss = dma(0x2000_0000n, pattern(4, 9));
    expect(miss.ok).toBe(false);
    expect(!miss.ok && miss.fault).toMatchObject({ iova: 0x2000_0000n, write: true });
    gpt.map(0x2000_0000n, 0x7_0000n);
    expect(dma(0x2000_0000n, pattern(4, 9))).toEqual({ ok: true });
    expect(p.peek(ram + 0x7_0000n, 4)).toEqual(pattern(4, 9));
  });

  it('bad invalidation entries: exact errno and entry_num (entries before the bad one are issued)', async () => {
    const { p, fd, devIds, parent } = await boot();
    const nested = U.hwptAlloc(p, fd, { devId: devIds[0]!, ptId: parent, data: { type: U.IOMMU_HWPT_DATA_VTD_S1, bytes: s1() } });
    const run = (entries: Uint8Array[], entryLen = 24, dataType = U.IOMMU_HWPT_INVALIDATE_DATA_VTD_S1) => invalidateResult(p, fd, { hwptId: nested, dataType, entryLen, entries });
    // Misaligned address.
    expect(run([inv(0x1000n, 1n), inv(0x2001n, 1n)])).toEqual([U.EINVAL, 1]);
    // Unknown flag, then a non-zero reserved field.
    expect(run([inv(0x1000n, 1n), inv(0x2000n, 1n), inv(0x3000n, 1n, 0x2)])).toEqual([U.EOPNOTSUPP, 2]);
    expect(run([inv(0x1000n, 1n, 0, 1)])).toEqual([U.EOPNOTSUPP, 0]);
    // npages = U64_MAX (all) needs addr 0.
    expect(run([inv(0n, 0xffff_ffff_ffff_ffffn), inv(0x1000n, 0xffff_ffff_ffff_ffffn)])).toEqual([U.EINVAL, 1]);
    // __iommu_copy_struct_from_user refuses an entry longer than the struct (data_len < len)
    // even with a zero tail, and one shorter than offsetofend(__reserved); the wrong data
    // type too: all before the first entry is handled.
    expect(run([Uint8Array.from([...inv(0x1000n, 1n), 0, 0, 0, 0, 0, 0, 0, 0])], 32)).toEqual([U.EINVAL, 0]);
    expect(run([inv(0x1000n, 1n).subarray(0, 16)], 16)).toEqual([U.EINVAL, 0]);
    expect(run([inv(0x1000n, 1n)], 24, U.IOMMU_HWPT_INVALIDATE_DATA_SELFTEST)).toEqual([U.EINVAL, 0]);
    // The nest parent is a paging HWPT, neither nested nor a vIOMMU: EINVAL.
    expect(invalidateResult(p, fd, { hwptId: parent, dataType: U.IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, entryLen: 24, entries: [inv(0x1000n, 1n)] })).toEqual([U.EINVAL, 0]);
    // All good: every entry counted.
    expect(run([inv(0x1000n, 1n), inv(0n, 0xffff_ffff_ffff_ffffn, U.IOMMU_VTD_INV_FLAGS_LEAF)])).toEqual([0, 2]);
  });

  it('nested HWPT allocation errors: a non-nesting parent, another vendor’s data type, a wrong data length', async () => {
    const { p, fd, devIds, ioas, parent } = await boot();
    const plain = U.hwptAlloc(p, fd, { devId: devIds[0]!, ptId: ioas });
    const alloc = (pt: number, bytes: Uint8Array, type = U.IOMMU_HWPT_DATA_VTD_S1) => errnoOf(() => U.hwptAlloc(p, fd, { devId: devIds[0]!, ptId: pt, data: { type, bytes } }));
    expect(alloc(plain, s1())).toBe(U.EINVAL);
    expect(alloc(parent, s1().subarray(0, 20))).toBe(U.EINVAL);
    expect(alloc(parent, Uint8Array.from([...s1(), 0, 0, 0, 0, 0, 0, 0, 0]))).toBe(U.EINVAL);
    expect(alloc(parent, s1(), U.IOMMU_HWPT_DATA_ARM_SMMUV3)).toBe(U.EOPNOTSUPP);
    expect(alloc(parent, s1())).toBe(0);
  });
});

describe("preset 'intel-vtd': teardown", () => {
  it('closing the device and iommufd fds leaves no object, pin or domain ID behind', async () => {
    const { host, p, fd, ram, devIds, deviceFds, parent, dma, inspect } = await boot(2);
    // boot() attached the nest parent: the lowest free DID (0 and 1 are reserved).
    expect(inspect.unit.allocatedDids).toEqual([2]);
    const gpt = guestPageTable(p, ram);
    gpt.map(0x4000_0000n, 0x8_0000n);
    const nested = U.hwptAlloc(p, fd, { devId: devIds[0]!, ptId: parent, data: { type: U.IOMMU_HWPT_DATA_VTD_S1, bytes: s1() } });
    expect(U.vfioDeviceAttachIommufdPt(p, deviceFds[0]!, { ptId: nested })).toBe(nested);
    expect(U.vfioDeviceAttachIommufdPt(p, deviceFds[1]!, { ptId: parent })).toBe(parent);
    expect(dma(0x4000_0000n, pattern(4, 1))).toEqual({ ok: true });
    expect(inspect.unit.allocatedDids).toEqual([2, 3]);
    expect(host.objects(fd).map((o) => o.type).sort()).toEqual(['DEVICE', 'DEVICE', 'HWPT_NESTED', 'HWPT_PAGING', 'IOAS']);
    expect(host.pinnedPages).toBe(512);
    // The HWPTs are in use: DESTROY is EBUSY while attached.
    expect(errnoOf(() => U.destroy(p, fd, parent))).toBe(U.EBUSY);
    for (const dfd of deviceFds) expect(host.process.close(dfd)).toBe(0);
    expect(host.process.close(fd)).toBe(0);
    expect(host.contexts()).toEqual([{ released: true, objects: [] }]);
    expect(host.pinnedPages).toBe(0);
    expect(inspect.unit.allocatedDids).toEqual([]);
    // Detached functions are blocked again.
    const blocked = host.dma(host.vfioDevices[0]!, { iova: 0x4000_0000n, length: 4, write: false });
    expect(blocked.ok).toBe(false);
  });
});

describe("preset 'intel-vtd': the experimental VT-d vIOMMU with vDEVICEs", () => {
  const le = (words: bigint[]) => {
    const b = new Uint8Array(32);
    words.forEach((w, i) => new DataView(b.buffer).setBigUint64(8 * i, w, true));
    return b;
  };
  const piotlb = (did: number, addr: bigint) => le([...VtdPiotlbDesc.encode({ TYPE: 6, G: 3, DID: did, PASID: 0, ADDR: addr, AM: 0 }), 0n, 0n]);
  const devtlb = (sid: number, addr: bigint) => le([...VtdDevTlbDesc.encode({ TYPE: 3, SID: sid, ADDR: addr }), 0n, 0n]);
  const GUEST_RID = 0x0100n; // 01:00.0 in the guest
  const host_read = (p: U.UserProcess, fd: number) => p.read(fd, new Uint8Array(256));

  async function vm() {
    const b = await boot(2);
    const { p, fd, devIds, parent } = b;
    const viommu = U.viommuAlloc(p, fd, { devId: devIds[0]!, hwptId: parent, type: IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP }).id;
    U.vdeviceAlloc(p, fd, { viommuId: viommu, devId: devIds[0]!, virtId: GUEST_RID });
    const nested = (guestDid: number) =>
      U.hwptAlloc(p, fd, { devId: devIds[0]!, ptId: viommu, data: { type: IOMMU_HWPT_DATA_VTD_S1_VDID_EXP, bytes: iommu_hwpt_vtd_s1_vdid.encode({ flags: 0n, pgtbl_addr: S1_ROOT, addr_width: 48, guest_did: guestDid }) } });
    const invalidate = (entries: Uint8Array[]) => invalidateResult(p, fd, { hwptId: viommu, dataType: IOMMU_VIOMMU_INVALIDATE_DATA_VTD_QI_EXP, entryLen: 32, entries });
    return { ...b, viommu, nested, invalidate };
  }

  it('guest QI descriptors on the vIOMMU (guest DID, guest RID) fix a stale translation; foreign RIDs and VMM-owned types are EIO', async () => {
    const { p, ram, deviceFds, dma, nested, invalidate } = await vm();
    const gpt = guestPageTable(p, ram);
    const giova = 0x2000_0000n;
    gpt.map(giova, 0x8_0000n);
    const h = nested(7);
    expect(U.vfioDeviceAttachIommufdPt(p, deviceFds[0]!, { ptId: h })).toBe(h);
    expect(dma(giova, pattern(4, 1))).toEqual({ ok: true });
    gpt.map(giova, 0x9_0000n);
    expect(dma(giova, pattern(4, 5))).toEqual({ ok: true });
    expect(p.peek(ram + 0x8_0000n, 4)).toEqual(pattern(4, 5));
    // The guest's PASID-based IOTLB descriptor for its DID 7, then the dev-TLB one for its RID.
    expect(invalidate([piotlb(7, giova), devtlb(Number(GUEST_RID), giova)])).toEqual([0, 2]);
    expect(dma(giova, pattern(4, 9))).toEqual({ ok: true });
    expect(p.peek(ram + 0x9_0000n, 4)).toEqual(pattern(4, 9));
    // Another RID is not a vDEVICE of this vIOMMU; a context-cache descriptor is the VMM's business.
    expect(invalidate([piotlb(7, 0n), devtlb(0x0200, 0n)])).toEqual([U.EIO, 1]);
    expect(invalidate([le([...VtdCcDesc.encode({ TYPE: 1, G: 1 }), 0n, 0n])])).toEqual([U.EIO, 0]);
  });

  it('a translation fault of the ATS function is answered in the completion, not recorded: no vEVENT', async () => {
    const { host, p, fd, ram, deviceFds, dma, viommu, nested } = await vm();
    // The guest maps an IOVA to a GPA past its RAM: the nested walk fails in the second stage.
    guestPageTable(p, ram).map(0x5555_0000n, 0x7000_0000n);
    const q = U.veventqAlloc(p, fd, { viommuId: viommu, type: IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP, depth: 8 });
    const h = nested(7);
    expect(U.vfioDeviceAttachIommufdPt(p, deviceFds[0]!, { ptId: h })).toBe(h);
    // The preset's functions use ATS: the failure comes back on the translation request (a
    // PRI-capable function may then ask for the page) and no fault record is written, so the
    // vIOMMU has nothing to forward. (Recorded faults of untranslated requests become vEVENTs
    // with the guest RID: the intel-vtd package's tests show it on a function without ATS.)
    expect(dma(0x5555_0000n, pattern(4, 1))).toEqual({ ok: false, fault: { kind: 'SM_SS_NOT_PRESENT', code: 121, iova: 0x5555_0000n, write: true, recorded: false, stall: true } });
    expect(host_read(p, q.fd)).toBe(0);
    // The same access as an untranslated request (DmaRequest.untranslated, AT = 00b): the unit
    // translates it, records the fault in FRCD, and the vIOMMU forwards it with the guest RID.
    expect(host.dma(host.vfioDevices[0]!, { iova: 0x5555_0000n, length: 4, write: true, data: pattern(4, 1), untranslated: true })).toEqual({ ok: false, fault: { kind: 'SM_SS_NOT_PRESENT', code: 121, iova: 0x5555_0000n, write: true, recorded: true } });
    const buf = new Uint8Array(256);
    const n = p.read(q.fd, buf);
    expect(n).toBe(U.iommufd_vevent_header.size + iommu_vevent_vtd_fault.size);
    const [event] = U.parseVevents(buf.subarray(0, n), IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP, iommu_vevent_vtd_fault.size);
    expect(iommu_vevent_vtd_fault.decode(event!.data)).toEqual({ addr: 0x5555_0000n, virt_rid: Number(GUEST_RID), pasid: 0, reason: 121, flags: 0 });
    // The flag applied to that request only: the function's next request uses ATS again.
    expect(dma(0x5555_0000n, pattern(4, 1))).toMatchObject({ ok: false, fault: { recorded: false, stall: true } });
    expect(host_read(p, q.fd)).toBe(0);
  });
});
