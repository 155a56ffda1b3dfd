// The VMM scenario of issue 6 on the `arm-smmuv3` and `tegra241-cmdqv` presets, through the
// Host contract only: guest RAM at IPA 0 in an IOAS, a nesting parent, a vIOMMU with a
// vDEVICE (vSID), a nested HWPT from the guest's STE whose CD and stage-1 tables live in guest
// RAM, DMA at guest VAs, stale TLB entries until the guest's TLBI (through
// IOMMU_HWPT_INVALIDATE, or on Tegra through the guest's own VCMDQ in the mmapped VINTF page),
// and a translation fault read from the vEVENTQ with the vSID. The guest's structures are
// encoded with hw-model's bit layouts and commands with the driver's builder, as a guest
// driver's headers would.
import * as U from '@iommufd/uapi';
import { describe, expect, it } from 'vitest';
import { buildCmd } from '@iommufd/arm-smmu-v3';
import { CMDQ_OP, SMMU_EVENT, TEGRA241_CMDQV_REG as R } from '@iommufd/hw-model';
import { cmdEntries, smmuGuest, vsteData } from './smmu-guest.js';
import { bootVmm, errnoOf, invalidateResult, pattern, poke64 } from './vmm.js';

const VSID = 0x31n;
const ASID = 3;
const GVA = 0x4000_0000n;
const RW = U.PROT_READ | U.PROT_WRITE;

async function boot(platform: 'arm-smmuv3' | 'tegra241-cmdqv', viommuType: number, viommuData?: Uint8Array) {
  const vmm = await bootVmm({ platform, devices: 2, strict: true });
  const { host, p, fd, ram, devIds, deviceFds, ioas } = vmm;
  const parent = U.hwptAlloc(p, fd, { devId: devIds[0]!, ptId: ioas, flags: U.IOMMU_HWPT_ALLOC_NEST_PARENT });
  expect(U.vfioDeviceAttachIommufdPt(p, deviceFds[0]!, { ptId: parent })).toBe(parent);
  const viommu = U.viommuAlloc(p, fd, { devId: devIds[0]!, hwptId: parent, type: viommuType, ...(viommuData ? { data: viommuData } : {}) });
  const vdev = U.vdeviceAlloc(p, fd, { viommuId: viommu.id, devId: devIds[0]!, virtId: VSID });
  // The guest's page allocator over its RAM (IPA 0 left alone), its stage-1 table and CD table.
  const g = smmuGuest(p, ram, { asid: ASID });
  const { allocIpa, map } = g;
  const nestedAlloc = () => U.hwptAlloc(p, fd, { devId: devIds[0]!, ptId: viommu.id, data: vsteData(g.vste()) });
  const dma = (iova: bigint, data: Uint8Array | number) =>
    typeof data === 'number' ? host.dma(host.vfioDevices[0]!, { iova, length: data, write: false }) : host.dma(host.vfioDevices[0]!, { iova, length: data.length, write: true, data });
  return { ...vmm, parent, viommu, vdev, allocIpa, map, nestedAlloc, dma };
}


describe("preset 'arm-smmuv3': the VMM scenario", () => {
  it('GET_HW_INFO returns ARM_SMMUV3 with the IDRs', async () => {
    const { p, fd, devIds, host } = await boot('arm-smmuv3', U.IOMMU_VIOMMU_TYPE_ARM_SMMUV3);
    const info = U.getHwInfo(p, fd, { devId: devIds[1]! });
    expect(info.type).toBe(U.IOMMU_HW_INFO_TYPE_ARM_SMMUV3);
    const idr = U.iommu_hw_info_arm_smmuv3.decode(info.data).idr;
    // IDR0..5 as the SMMU's registers read (a 32-bit load at 0x0900_0000 + 4·n).
    const regs = Array.from({ length: 6 }, (_, i) => new DataView(host.memory.read(0x0900_0000n + BigInt(4 * i), 4).buffer).getUint32(0, true));
    expect(idr).toEqual(regs);
    // IDR0: S1P (bit 1) and S2P (bit 0), what nesting needs.
    expect(idr[0]! & 3).toBe(3);
  });

  it('nested HWPT from the guest STE: DMA at guest VAs, stale until the guest TLBI through IOMMU_HWPT_INVALIDATE, hostile commands EIO', async () => {
    const { p, fd, ram, deviceFds, viommu, allocIpa, map, nestedAlloc, dma } = await boot('arm-smmuv3', U.IOMMU_VIOMMU_TYPE_ARM_SMMUV3);
    const page1 = allocIpa();
    const page2 = allocIpa();
    map(GVA, page1);
    const nested = nestedAlloc();
    expect(U.vfioDeviceAttachIommufdPt(p, deviceFds[0]!, { ptId: nested })).toBe(nested);
    expect(dma(GVA + 8n, pattern(8, 0x20))).toEqual({ ok: true });
    expect(p.peek(ram + page1 + 8n, 8)).toEqual(pattern(8, 0x20));
    expect(dma(GVA + 8n, 8)).toEqual({ ok: true, data: pattern(8, 0x20) });
    // The guest remaps its VA without a TLBI: the TLB still translates to page1.
    map(GVA, page2);
    expect(dma(GVA, 4)).toEqual({ ok: true, data: new Uint8Array(4) });
    expect(dma(GVA + 8n, 4)).toEqual({ ok: true, data: pattern(4, 0x20) });
    const inv = (list: Uint8Array[]) => invalidateResult(p, fd, { hwptId: viommu.id, dataType: U.IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3, entryLen: 16, entries: list });
    const tlbi = buildCmd({ opcode: 'TLBI_NH_VA', asid: ASID, vmid: 0x77, addr: GVA, leaf: true });
    // CMD_SYNC is not a guest command the vIOMMU converts: EIO at its index, and the TLBI
    // converted before it is not issued either (arm_vsmmu_cache_invalidate), so still stale.
    expect(inv(cmdEntries(tlbi, [BigInt(CMDQ_OP.CMD_SYNC), 0n]))).toEqual([U.EIO, 1]);
    expect(dma(GVA + 8n, 4)).toEqual({ ok: true, data: pattern(4, 0x20) });
    // The TLBI alone (the guest's VMID field is ignored: the vIOMMU stamps the parent's).
    expect(inv(cmdEntries(tlbi))).toEqual([0, 1]);
    expect(dma(GVA + 8n, 4)).toEqual({ ok: true, data: new Uint8Array(4) });
    p.poke(ram + page2 + 8n, pattern(4, 0x70));
    expect(dma(GVA + 8n, 4)).toEqual({ ok: true, data: pattern(4, 0x70) });
    // A hostile guest: CFGI_STE (the host's business) is EIO at its index. A short entry is
    // zero-extended (iommu_copy_struct_from_full_user_array): opcode 0 is EIO at entry 0.
    expect(inv(cmdEntries(buildCmd({ opcode: 'TLBI_NH_ASID', asid: ASID, vmid: 0 }), buildCmd({ opcode: 'CFGI_STE', sid: 0, leaf: true })))).toEqual([U.EIO, 1]);
    // Its own vSID converts (CFGI_CD is the guest's); a SID that is no vDEVICE of this vIOMMU
    // (here the host SID of the second function, 00:02.0 = 0x10) is EIO.
    expect(inv(cmdEntries(buildCmd({ opcode: 'CFGI_CD', sid: Number(VSID), ssid: 0, leaf: true }), buildCmd({ opcode: 'CFGI_CD', sid: 0x10, ssid: 0, leaf: true })))).toEqual([U.EIO, 1]);
    expect(inv(cmdEntries(buildCmd({ opcode: 'CFGI_CD', sid: Number(VSID), ssid: 0, leaf: true })))).toEqual([0, 1]);
    expect(invalidateResult(p, fd, { hwptId: viommu.id, dataType: U.IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3, entryLen: 8, entries: [new Uint8Array(8)] })).toEqual([U.EIO, 0]);
  });

  it('a stage-1 translation fault of the nested device arrives on the vEVENTQ with the vSID', async () => {
    const { p, fd, deviceFds, viommu, allocIpa, map, nestedAlloc, dma } = await boot('arm-smmuv3', U.IOMMU_VIOMMU_TYPE_ARM_SMMUV3);
    map(GVA, allocIpa());
    const q = U.veventqAlloc(p, fd, { viommuId: viommu.id, type: U.IOMMU_VEVENTQ_TYPE_ARM_SMMUV3, depth: 8 });
    const nested = nestedAlloc();
    expect(U.vfioDeviceAttachIommufdPt(p, deviceFds[0]!, { ptId: nested })).toBe(nested);
    const miss = dma(GVA + 0x10_0000n, 4);
    expect(miss.ok).toBe(false);
    const buf = new Uint8Array(256);
    const n = p.read(q.fd, buf);
    const events = U.parseVevents(buf.subarray(0, n), U.IOMMU_VEVENTQ_TYPE_ARM_SMMUV3);
    expect(events.map((e) => e.sequence)).toEqual([0]);
    const evt = SMMU_EVENT.decode(U.iommu_vevent_arm_smmuv3.decode(events[0]!.data).evt);
    expect(evt).toMatchObject({ ID: 0x10n, SID: VSID, RNW: 1n, INPUT_ADDR: GVA + 0x10_0000n });
    // Nothing more to read.
    expect(p.read(q.fd, buf)).toBe(0);
  });

  it('closing everything leaves no object and no pin', async () => {
    const { host, p, fd, deviceFds, allocIpa, map, nestedAlloc, viommu } = await boot('arm-smmuv3', U.IOMMU_VIOMMU_TYPE_ARM_SMMUV3);
    map(GVA, allocIpa());
    const nested = nestedAlloc();
    expect(U.vfioDeviceAttachIommufdPt(p, deviceFds[0]!, { ptId: nested })).toBe(nested);
    expect(errnoOf(() => U.destroy(p, fd, viommu.id))).toBe(U.EBUSY);
    expect(host.objects(fd).map((o) => o.type).sort()).toEqual(['DEVICE', 'DEVICE', 'HWPT_NESTED', 'HWPT_PAGING', 'IOAS', 'VDEVICE', 'VIOMMU']);
    for (const dfd of deviceFds) expect(host.process.close(dfd)).toBe(0);
    expect(host.process.close(fd)).toBe(0);
    expect(host.contexts()).toEqual([{ released: true, objects: [] }]);
    expect(host.pinnedPages).toBe(0);
  });
});

describe("preset 'tegra241-cmdqv': the guest's VCMDQ through the mmapped VINTF page", () => {
  it('vIOMMU TEGRA241_CMDQV, VINTF page mmap, HW_QUEUE; the guest invalidation written into its VCMDQ fixes a stale translation', async () => {
    const data = U.iommu_viommu_tegra241_cmdqv.encode({ out_vintf_mmap_offset: 0n, out_vintf_mmap_length: 0n });
    const { host, p, fd, ram, deviceFds, viommu, allocIpa, map, nestedAlloc, dma } = await boot('tegra241-cmdqv', U.IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV, data);
    const out = U.iommu_viommu_tegra241_cmdqv.decode(viommu.data);
    expect(out.out_vintf_mmap_length).toBe(0x10000n);
    const vintf = p.mmap(out.out_vintf_mmap_length, RW, U.MAP_SHARED, fd, out.out_vintf_mmap_offset);
    expect(vintf > 0n).toBe(true);
    const page1 = allocIpa();
    const page2 = allocIpa();
    p.poke(ram + page1, Uint8Array.of(1));
    p.poke(ram + page2, Uint8Array.of(2));
    map(GVA, page1);
    const nested = nestedAlloc();
    expect(U.vfioDeviceAttachIommufdPt(p, deviceFds[0]!, { ptId: nested })).toBe(nested);
    expect(dma(GVA, 1)).toEqual({ ok: true, data: Uint8Array.of(1) });
    map(GVA, page2);
    expect(dma(GVA, 1)).toEqual({ ok: true, data: Uint8Array.of(1) });

    // The guest's queue: one page (256 commands) of its RAM, VCMDQ 0 of its VINTF.
    const qIpa = allocIpa();
    const hwq = U.hwQueueAlloc(p, fd, { viommuId: viommu.id, type: U.IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV, index: 0, nestingParentIova: qIpa, length: 4096n });
    expect(hwq).toBeGreaterThan(0);
    const w32 = (off: number, v: number) => p.poke(vintf + BigInt(off), Uint8Array.from([v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >>> 24]));
    const r32 = (off: number) => new DataView(U.peekUser(p, vintf + BigInt(off), 4).buffer).getUint32(0, true);
    poke64(p, ram + qIpa, ...buildCmd({ opcode: 'TLBI_NH_VA', asid: ASID, vmid: 0, addr: GVA, leaf: true }), BigInt(CMDQ_OP.CMD_SYNC), 0n);
    w32(R.VCMDQ_CONFIG, 1);
    w32(R.VCMDQ_PROD, 2);
    expect(r32(R.VCMDQ_CONS)).toBe(2);
    expect(dma(GVA, 1)).toEqual({ ok: true, data: Uint8Array.of(2) });
    // A host-only command stops the queue with CERROR_ILL in CONS.
    poke64(p, ram + qIpa + 32n, ...buildCmd({ opcode: 'CFGI_STE', sid: 0, leaf: true }));
    w32(R.VCMDQ_PROD, 3);
    expect(r32(R.VCMDQ_CONS)).toBe(2 | (1 << 24));

    // Teardown: the queue and the mapping go with the fds.
    expect(host.process.munmap(vintf, out.out_vintf_mmap_length)).toBe(0);
    for (const dfd of deviceFds) expect(host.process.close(dfd)).toBe(0);
    expect(host.process.close(fd)).toBe(0);
    expect(host.contexts()).toEqual([{ released: true, objects: [] }]);
    expect(host.pinnedPages).toBe(0);
  });

  it('GET_HW_INFO of type TEGRA241_CMDQV describes the CMDQV', async () => {
    const data = U.iommu_viommu_tegra241_cmdqv.encode({ out_vintf_mmap_offset: 0n, out_vintf_mmap_length: 0n });
    const { p, fd, devIds } = await boot('tegra241-cmdqv', U.IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV, data);
    const info = U.getHwInfo(p, fd, { devId: devIds[0]!, type: U.IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV });
    expect(info.type).toBe(U.IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV);
    expect(U.iommu_hw_info_tegra241_cmdqv.decode(info.data)).toEqual({ flags: 0, version: 1, log2vcmdqs: 2, log2vsids: 4, __reserved: 0 });
  });
});
