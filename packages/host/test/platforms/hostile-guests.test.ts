// Hostile guests on the SMMUv3 presets (issue 9): two VMs side by side, each in its own host
// process with its own /dev/iommu, guest RAM, nest parent (VMID), vIOMMU, vDEVICE and nested
// HWPT on its own PCI function. Both pick the same vSID, ASID and guest VA, so only the VMID
// and the StreamID keep them apart. VM B leaves a stale translation in the TLB (it remapped
// its VA without a TLBI); VM A then attacks through every channel a guest has: its
// invalidation arrays, its VCMDQ (Tegra241, through the mmapped VINTF page), its vSTE, its
// page tables, its CD and its PASID (CD table) entries. Each attack is refused or faulted as
// the architecture says, the work it causes is bounded, and B's translation, B's cached
// entries, B's STE, B's vEVENTQ and the SMMU's global error state stay as they were — until
// B's own TLBI.
import * as U from '@iommufd/uapi';
import { describe, expect, it, vi } from 'vitest';
import { buildCmd, type ArmSmmuV3 } from '@iommufd/arm-smmu-v3';
import { ARM_PTE, CMD_SYNC_CS, CMDQ_OP, SMMU_CMD_SYNC, SMMU_EVENT, SMMU_L1CD, SMMU_REG, SMMU_STE, TEGRA241_CMDQV_REG as R, type SmmuV3 } from '@iommufd/hw-model';
import { createHost, type Host, type HostProcess } from '../../src/index.js';
import { armSmmuOf } from '../../src/platforms/arm-smmuv3.js';
import { GUEST_LEAF, cmdEntries, presetViommu, smmuGuest, smmuLeftNothing, vsteData } from './smmu-guest.js';
import { errnoOf, invalidateResult, poke64, userProcess } from './vmm.js';

const PRESETS = ['arm-smmuv3', 'tegra241-cmdqv'] as const;
type Preset = (typeof PRESETS)[number];
const RAM = 2n << 20n;
const VSID = 0x31n;
const GVA = 0x4000_0000n;
const RW = U.PROT_READ | U.PROT_WRITE;
/** StreamIDs of functions 00:01.0 (VM A) and 00:02.0 (VM B). */
const SIDS = [0x08, 0x10] as const;
type Cmd = readonly [bigint, bigint];
const cmd = (c: Parameters<typeof buildCmd>[0]): Cmd => {
  const [a, b] = buildCmd(c);
  return [a!, b!];
};
const SYNC: Cmd = [BigInt(CMDQ_OP.CMD_SYNC), 0n];

/** One VM: a process, its iommufd objects on function `dev`, its guest's S1 and CD in its RAM. */
function bootVm(host: Host, smmu: ArmSmmuV3, proc: HostProcess, dev: number, preset: Preset, fill: number) {
  const p = userProcess(host, proc);
  const fd = proc.open('/dev/iommu');
  const dfd = proc.open(host.vfioDevices[dev]!);
  const devId = U.vfioDeviceBindIommufd(p, dfd, { iommufd: fd });
  const ram = p.mmap(RAM, RW, U.MAP_SHARED | U.MAP_ANONYMOUS, -1, 0);
  const ioas = U.ioasAlloc(p, fd);
  expect(U.ioasMap(p, fd, { ioasId: ioas, userVa: ram, length: RAM, iova: 0n })).toBe(0n);
  const parent = U.hwptAlloc(p, fd, { devId, ptId: ioas, flags: U.IOMMU_HWPT_ALLOC_NEST_PARENT });
  const viommu = U.viommuAlloc(p, fd, { devId, hwptId: parent, ...presetViommu(preset) });
  U.vdeviceAlloc(p, fd, { viommuId: viommu.id, devId, virtId: VSID });
  const events = U.veventqAlloc(p, fd, { viommuId: viommu.id, type: U.IOMMU_VEVENTQ_TYPE_ARM_SMMUV3, depth: 16 });
  const g = smmuGuest(p, ram, { firstIpa: 0x10_0000n });
  const pages = [g.allocIpa(), g.allocIpa()] as const;
  p.poke(ram + pages[0], new Uint8Array(16).fill(fill));
  p.poke(ram + pages[1], new Uint8Array(16).fill(fill + 1));
  g.map(GVA, pages[0]);
  const nested = U.hwptAlloc(p, fd, { devId, ptId: viommu.id, data: vsteData(g.vste()) });
  expect(U.vfioDeviceAttachIommufdPt(p, dfd, { ptId: nested })).toBe(nested);
  const sid = SIDS[dev]!;
  const vmid = Number(SMMU_STE.decode(smmu.readSte(sid)).S2VMID);
  const dma = (iova: bigint, length = 4, pasid?: number) => host.dma(host.vfioDevices[dev]!, { iova, length, write: false, ...(pasid !== undefined ? { pasid } : {}) });
  const inv = (...cmds: Cmd[]) => invalidateResult(p, fd, { hwptId: viommu.id, dataType: U.IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3, entryLen: 16, entries: cmdEntries(...cmds) });
  const readEvents = () => {
    const buf = new Uint8Array(1024);
    const n = p.read(events.fd, buf);
    return U.parseVevents(buf.subarray(0, Math.max(0, n)), U.IOMMU_VEVENTQ_TYPE_ARM_SMMUV3).map((e) => SMMU_EVENT.decode(U.iommu_vevent_arm_smmuv3.decode(e.data).evt));
  };
  const allocNested = (ste: readonly bigint[]) => errnoOf(() => U.hwptAlloc(p, fd, { devId, ptId: viommu.id, data: vsteData(ste) }));
  return { p, proc, fd, dfd, devId, ram, ioas, parent, viommu, nested, g, pages, sid, vmid, dma, inv, readEvents, allocNested, fill };
}

async function twoVms(preset: Preset) {
  const host = await createHost({ platform: preset, devices: 2, strict: true });
  const { smmu, hw } = armSmmuOf(host.memory)!;
  const a = bootVm(host, smmu, host.process, 0, preset, 0xa0);
  const b = bootVm(host, smmu, host.spawnProcess(), 1, preset, 0xb0);
  expect(a.vmid).not.toBe(b.vmid);
  // B's DMA fills its TLB entry, then B remaps its VA without a TLBI: the entry is stale.
  expect(b.dma(GVA)).toEqual({ ok: true, data: new Uint8Array(4).fill(0xb0) });
  b.g.map(GVA, b.pages[1]);
  const smmuHw = hw as SmmuV3;
  const bEntries = () => smmuHw.tlb.entries().filter((e) => e.vmid === b.vmid);
  const snapshot = { tlb: bEntries(), ste: smmu.readSte(b.sid) };
  expect(snapshot.tlb.length).toBeGreaterThan(0);
  /** B is as it was: still the stale translation, the same cached entries and STE, no event, no global error. */
  const bUntouched = () => {
    expect(b.dma(GVA)).toEqual({ ok: true, data: new Uint8Array(4).fill(0xb0) });
    expect(bEntries()).toEqual(snapshot.tlb);
    expect(smmu.readSte(b.sid)).toEqual(snapshot.ste);
    expect(b.readEvents()).toEqual([]);
    expect(smmu.readReg(SMMU_REG.GERROR)).toBe(smmu.readReg(SMMU_REG.GERRORN));
  };
  /** B's own TLBI ends its stale translation. */
  const bFixes = () => {
    expect(b.inv(cmd({ opcode: 'TLBI_NH_VA', asid: b.g.asid, vmid: 0, addr: GVA, leaf: true }))).toEqual([0, 1]);
    expect(b.dma(GVA)).toEqual({ ok: true, data: new Uint8Array(4).fill(0xb1) });
  };
  const count = (op: number) => smmuHw.commandCounts.get(op) ?? 0;
  let logged = smmu.messages.length;
  /** The event records the host driver logged (kept, not forwarded) since the last call. */
  const hostEvents = () => {
    const lines = smmu.messages.slice(logged);
    logged = smmu.messages.length;
    return lines.flatMap((l) => {
      const m = /^event 0x[0-9a-f]+ received: (.*)$/.exec(l);
      return m ? [SMMU_EVENT.decode(m[1]!.split(' ').map((w) => BigInt(w)))] : [];
    });
  };
  /** Closing both VMs' fds leaves no object, pin, ASID, VMID, live STE or guest VINTF/VCMDQ. */
  const teardown = () => {
    for (const proc of host.processes) for (const { fd } of proc.fds()) expect(proc.close(fd)).toBe(0);
    expect(host.contexts().every((c) => c.released && c.objects.length === 0)).toBe(true);
    expect(host.pinnedPages).toBe(0);
    smmuLeftNothing(host, SIDS);
  };
  return { host, smmu, hw: smmuHw, a, b, bEntries, bUntouched, bFixes, count, hostEvents, teardown };
}

describe.each(PRESETS)("hostile guest on '%s': VM A attacks, VM B and the host are untouched", (preset) => {
  it('invalidation arrays: garbage, host-only commands, foreign SIDs and VMIDs are EIO at their index or confined to A’s VMID', async () => {
    const { a, b, smmu, bUntouched, bFixes, count, teardown } = await twoVms(preset);
    const asidB = b.g.asid;
    // Commands naming B's VMID / ASID / VA: the VMID field is overwritten with A's, so they
    // only reach A's entries; TLBI_NSNH_ALL becomes NH_ALL of A's VMID.
    expect(a.inv(cmd({ opcode: 'TLBI_NH_VA', asid: asidB, vmid: b.vmid, addr: GVA, leaf: true }), cmd({ opcode: 'TLBI_NH_ASID', asid: asidB, vmid: b.vmid }), cmd({ opcode: 'TLBI_NH_ALL', vmid: b.vmid }), cmd({ opcode: 'TLBI_NH_VAA', vmid: b.vmid, addr: GVA, leaf: false }), cmd({ opcode: 'TLBI_NSNH_ALL' }))).toEqual([0, 5]);
    bUntouched();
    // Host-only commands, and commands on B's physical SID (not a vSID of A's vIOMMU): EIO
    // at their index; the valid TLBI converted before them is not issued either.
    const tlbiA = cmd({ opcode: 'TLBI_NH_ASID', asid: a.g.asid, vmid: 0 });
    const hostile: Cmd[] = [
      cmd({ opcode: 'CFGI_STE', sid: b.sid, leaf: true }),
      cmd({ opcode: 'CFGI_ALL' }),
      cmd({ opcode: 'TLBI_S12_VMALL', vmid: b.vmid }),
      cmd({ opcode: 'TLBI_S2_IPA', vmid: b.vmid, addr: 0n, leaf: false }),
      cmd({ opcode: 'TLBI_EL2_ALL' }),
      cmd({ opcode: 'PREFETCH_CFG', sid: b.sid }),
      cmd({ opcode: 'CFGI_CD', sid: b.sid, ssid: 0, leaf: true }),
      cmd({ opcode: 'CFGI_CD_ALL', sid: b.sid }),
      SYNC,
    ];
    const before = [CMDQ_OP.CFGI_STE, CMDQ_OP.CFGI_STE_RANGE, CMDQ_OP.TLBI_S12_VMALL, CMDQ_OP.TLBI_S2_IPA, CMDQ_OP.CFGI_CD].map(count);
    for (const h of hostile) expect(a.inv(tlbiA, h)).toEqual([U.EIO, 1]);
    expect([CMDQ_OP.CFGI_STE, CMDQ_OP.CFGI_STE_RANGE, CMDQ_OP.TLBI_S12_VMALL, CMDQ_OP.TLBI_S2_IPA, CMDQ_OP.CFGI_CD].map(count)).toEqual(before);
    // Garbage: every opcode outside the converted set, with random payloads, is EIO at index 0.
    let seed = 0x1234_5678;
    const rnd = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return BigInt(seed);
    };
    const allowed = new Set<number>([CMDQ_OP.TLBI_NSNH_ALL, CMDQ_OP.TLBI_NH_VA, CMDQ_OP.TLBI_NH_VAA, CMDQ_OP.TLBI_NH_ALL, CMDQ_OP.TLBI_NH_ASID, CMDQ_OP.ATC_INV, CMDQ_OP.CFGI_CD, CMDQ_OP.CFGI_CD_ALL]);
    for (let op = 0; op < 256; op++) {
      if (allowed.has(op)) continue;
      const garbage: Cmd = [(rnd() << 40n) | (rnd() << 8n) | BigInt(op), (rnd() << 32n) | rnd()];
      expect(a.inv(garbage)).toEqual([U.EIO, 0]);
    }
    bUntouched();
    // Convertible opcodes with garbage in every other bit: the vIOMMU only rewrites VMID/SID,
    // so an SSec or reserved bit reaches the host CMDQ, which stops with CERROR_ILL; the host
    // driver skips the command (replaced by a CMD_SYNC, GERRORN acknowledged) as Linux does,
    // and the call still returns 0. SID commands name a vSID A does not have: EIO.
    const sidOps = new Set<number>([CMDQ_OP.ATC_INV, CMDQ_OP.CFGI_CD, CMDQ_OP.CFGI_CD_ALL]);
    const ssec: Cmd = [tlbiA[0] | (1n << 10n), tlbiA[1]];
    const logged = smmu.messages.length;
    expect(a.inv(ssec)).toEqual([0, 1]);
    // The command the host skipped is A's TLBI as converted: ASID 3, VMID stamped to A's.
    const converted = (BigInt(a.g.asid) << 48n) | (BigInt(a.vmid) << 32n) | (1n << 10n) | BigInt(CMDQ_OP.TLBI_NH_ASID);
    expect(smmu.messages.slice(logged)).toEqual([
      'unexpected global error reported (0x1), this could be serious',
      expect.stringMatching(/^CMDQ error \(cons 0x1[0-9a-f]{6}\): CERROR_ILL$/),
      `skipping command in error state: 0x${converted.toString(16).padStart(16, '0')} 0x0000000000000000`,
    ]);
    for (const op of allowed) {
      const garbage: Cmd = [(rnd() << 40n) | (rnd() << 8n) | BigInt(op), (rnd() << 32n) | rnd()];
      expect(a.inv(garbage)).toEqual(sidOps.has(op) ? [U.EIO, 0] : [0, 1]);
    }
    expect(smmu.readReg(SMMU_REG.GERROR)).toBe(smmu.readReg(SMMU_REG.GERRORN));
    bUntouched();
    // A long valid array costs one CMD_SYNC per 63 converted commands.
    const syncs = count(CMDQ_OP.CMD_SYNC);
    expect(a.inv(...Array.from({ length: 630 }, () => tlbiA))).toEqual([0, 630]);
    expect(count(CMDQ_OP.CMD_SYNC) - syncs).toBe(10);
    bUntouched();
    bFixes();
    teardown();
  });

  it('vSTEs: reserved or forbidden bits, S2/host configurations, EATS 2 are EIO; a vSTE cannot name a VMID or a StreamID', async () => {
    const { a, bUntouched, bFixes, teardown } = await twoVms(preset);
    const [w0, w1] = a.g.vste();
    const bad: bigint[][] = [
      a.g.vste(a.g.cdTable, { CONFIG: 6 }), // S2 translate: the host's parent only
      a.g.vste(a.g.cdTable, { CONFIG: 7 }), // nested
      a.g.vste(a.g.cdTable, { CONFIG: 2 }), // reserved
      a.g.vste(a.g.cdTable, { EATS: 2 }), // split-stage ATS
      [w0! | (0x7fn << 52n), w1!], // dw0 bits 58:52 (reserved / S1 fields the guest may not set)
      [w0!, w1! | (1n << 8n)], // dw1 outside S1DSS/CIR/COR/CSH/STALLD/EATS
      [w0!, w1! | (0xffn << 32n)], // STRW, SHCFG, … the host's
    ];
    for (const ste of bad) expect(a.allocNested(ste)).toBe(U.EIO);
    // The uAPI vSTE is two words: S2VMID (dw2) and the S2 table (dw3) are out of its reach.
    expect(U.iommu_hwpt_arm_smmuv3.size).toBe(16);
    bUntouched();
    bFixes();
    teardown();
  });

  it('page tables: a loop is walked at most four levels, output beyond IPS is F_ADDR_SIZE, reserved encodings fault; all stay in A', async () => {
    const { a, hw, bUntouched, bFixes, hostEvents, teardown } = await twoVms(preset);
    const cdWord = (fields: Record<string, number | bigint>) => poke64(a.p, a.ram + a.g.cdTable, ...a.g.cd(fields));
    const cfgiCd = cmd({ opcode: 'CFGI_CD', sid: Number(VSID), ssid: 0, leaf: true });
    // A loop: LOOP_VA indexes slot 256 at every level, and root[256] points at the root
    // itself, so every level reads the root again and the "leaf" at level 3 is the root page.
    const LOOP_VA = (256n << 39n) | (256n << 30n) | (256n << 21n) | (256n << 12n);
    poke64(a.p, a.ram + a.g.root + 256n * 8n, ARM_PTE.encode({ ...GUEST_LEAF, OA: a.g.root >> 12n })[0]!);
    const reads = vi.spyOn(hw.memory, 'readRamWord');
    const looped = a.dma(LOOP_VA, 8);
    // The walk ends at level 3 with the root page (A's own RAM), after at most 4 stage-1
    // descriptors, each behind a stage-2 walk of its table address (≤ 4), plus the output's.
    expect(looped).toEqual({ ok: true, data: a.p.peek(a.ram + a.g.root, 8) });
    expect(reads.mock.calls.length).toBeGreaterThanOrEqual(4);
    expect(reads.mock.calls.length).toBeLessThanOrEqual(4 + 5 * 4);
    reads.mockRestore();
    bUntouched();
    // Output beyond the CD's IPS (40 bits): F_ADDR_SIZE, a stage-1 fault, forwarded to A only.
    const FAR_VA = GVA + 0x20_0000n;
    a.g.map(FAR_VA, 1n << 44n);
    cdWord({ IPS: 2 });
    expect(a.inv(cfgiCd)).toEqual([0, 1]);
    expect(a.dma(FAR_VA).ok).toBe(false);
    expect(a.readEvents()).toEqual([expect.objectContaining({ ID: 0x11n, SID: VSID, S2: 0n, INPUT_ADDR: FAR_VA })]);
    bUntouched();
    // Output inside IPS but beyond A's guest RAM: a stage-2 fault, the host's (not forwarded).
    cdWord({});
    expect(a.inv(cfgiCd, cmd({ opcode: 'TLBI_NH_ASID', asid: a.g.asid, vmid: 0 }))).toEqual([0, 2]);
    a.g.map(FAR_VA, 1n << 44n);
    hostEvents();
    expect(a.dma(FAR_VA).ok).toBe(false);
    expect(a.readEvents()).toEqual([]);
    expect(hostEvents()).toEqual([expect.objectContaining({ ID: 0x10n, SID: BigInt(a.sid), S2: 1n, CLASS: 2n, INPUT_ADDR: FAR_VA, IPA: (1n << 44n) >> 12n })]);
    // Reserved encodings: a level-3 descriptor 0b01 and a level-0 block are F_TRANSLATION.
    const RSV_VA = GVA + 0x40_0000n;
    a.g.map(RSV_VA, 0n, ARM_PTE.encode({ ...GUEST_LEAF, TABLE: 0, OA: a.pages[0] >> 12n })[0]!);
    expect(a.dma(RSV_VA).ok).toBe(false);
    const BLOCK_VA = 0x0000_c000_0000_0000n;
    poke64(a.p, a.ram + a.g.root + ((BLOCK_VA >> 39n) & 511n) * 8n, ARM_PTE.encode({ ...GUEST_LEAF, TABLE: 0, OA: 0n })[0]!);
    expect(a.dma(BLOCK_VA).ok).toBe(false);
    expect(a.readEvents().map((e) => [e.ID, e.SID, e.INPUT_ADDR])).toEqual([
      [0x10n, VSID, RSV_VA],
      [0x10n, VSID, BLOCK_VA],
    ]);
    bUntouched();
    bFixes();
    teardown();
  });

  it('CD tables at absurd IPAs: the CD fetch faults at stage 2 (the host’s), A’s DMA aborts, nothing reaches B', async () => {
    const { a, bUntouched, bFixes, hostEvents, teardown } = await twoVms(preset);
    for (const ipa of [RAM, 1n << 40n, (1n << 48n) - 64n]) {
      expect(a.allocNested(a.g.vste(ipa))).toBe(0);
    }
    const far = U.hwptAlloc(a.p, a.fd, { devId: a.devId, ptId: a.viommu.id, data: vsteData(a.g.vste((1n << 48n) - 64n)) });
    expect(U.vfioDeviceAttachIommufdPt(a.p, a.dfd, { ptId: far })).toBe(far);
    hostEvents();
    expect(a.dma(GVA).ok).toBe(false);
    expect(a.readEvents()).toEqual([]);
    // The host logs it: F_TRANSLATION at stage 2, CLASS CD, the CD's IPA, A's physical SID.
    expect(hostEvents()).toEqual([expect.objectContaining({ ID: 0x10n, SID: BigInt(a.sid), S2: 1n, CLASS: 0n, INPUT_ADDR: GVA, IPA: ((1n << 48n) - 64n) >> 12n })]);
    bUntouched();
    // A CD whose own table pointer is absurd faults in the walk instead (stage 2, the host's).
    expect(U.vfioDeviceAttachIommufdPt(a.p, a.dfd, { ptId: a.nested })).toBe(a.nested);
    poke64(a.p, a.ram + a.g.cdTable, ...a.g.cd({ TTB0: ((1n << 48n) - 0x1000n) >> 4n }));
    expect(a.inv(cmd({ opcode: 'CFGI_CD', sid: Number(VSID), ssid: 0, leaf: true }), cmd({ opcode: 'TLBI_NH_ASID', asid: a.g.asid, vmid: 0 }))).toEqual([0, 2]);
    expect(a.dma(GVA).ok).toBe(false);
    expect(a.readEvents()).toEqual([]);
    expect(hostEvents()).toEqual([expect.objectContaining({ ID: 0x10n, SID: BigInt(a.sid), S2: 1n, CLASS: 1n, TTRNW: 1n, IPA: ((1n << 48n) - 0x1000n) >> 12n })]);
    bUntouched();
    bFixes();
    teardown();
  });

  it('PASID entries: SSIDs past S1CDMAX and invalid L1 CDs are C_BAD_SUBSTREAMID for A’s vEVENTQ; a level-1 CD pointer at an absurd IPA is a stage-2 fault, the host’s', async () => {
    const { a, bUntouched, bFixes, hostEvents, teardown } = await twoVms(preset);
    // Linear CD table of 2 CDs (S1CDMAX 1): SSID 1 gets its own CD (ASID 5, same table).
    poke64(a.p, a.ram + a.g.cdTable + 64n, ...a.g.cd({ ASID: 5 }));
    const linear = U.hwptAlloc(a.p, a.fd, { devId: a.devId, ptId: a.viommu.id, data: vsteData(a.g.vste(a.g.cdTable, { S1CDMAX: 1 })) });
    expect(U.vfioDeviceAttachIommufdPt(a.p, a.dfd, { ptId: linear })).toBe(linear);
    expect(a.dma(GVA, 4, 1)).toEqual({ ok: true, data: new Uint8Array(4).fill(0xa0) });
    // A configuration error of the guest's own CD table: forwarded to A with its vSID
    // (arm_smmu_handle_event accepts C_BAD_SUBSTREAMID for a vmaster), not logged by the host.
    hostEvents();
    expect(a.dma(GVA, 4, 2).ok).toBe(false);
    expect(a.readEvents()).toEqual([expect.objectContaining({ ID: 0x08n, SID: VSID, SSV: 1n, SSID: 2n, S2: 0n })]);
    expect(hostEvents()).toEqual([]);
    bUntouched();
    // Two-level CD table (S1FMT 1: 64 CDs per leaf): L1[0] points at an IPA A never mapped,
    // L1[1] is invalid.
    const l1 = a.g.allocIpa();
    poke64(a.p, a.ram + l1, SMMU_L1CD.encode({ V: 1, L2PTR: (1n << 47n) >> 12n })[0]!, 0n);
    const twoLevel = U.hwptAlloc(a.p, a.fd, { devId: a.devId, ptId: a.viommu.id, data: vsteData(a.g.vste(l1, { S1FMT: 1, S1CDMAX: 7 })) });
    expect(U.vfioDeviceAttachIommufdPt(a.p, a.dfd, { ptId: twoLevel })).toBe(twoLevel);
    expect(a.dma(GVA, 4, 1).ok).toBe(false);
    expect(hostEvents()).toEqual([expect.objectContaining({ ID: 0x10n, SID: BigInt(a.sid), SSV: 1n, SSID: 1n, S2: 1n, CLASS: 0n, IPA: (1n << 47n) >> 12n })]);
    expect(a.readEvents()).toEqual([]);
    expect(a.dma(GVA, 4, 64).ok).toBe(false);
    expect(a.readEvents()).toEqual([expect.objectContaining({ ID: 0x08n, SID: VSID, SSV: 1n, SSID: 64n })]);
    expect(hostEvents()).toEqual([]);
    bUntouched();
    bFixes();
    teardown();
  });

  if (preset === 'tegra241-cmdqv')
    it('VCMDQ through the mmapped VINTF page: foreign VMIDs stamped, foreign SIDs and host commands CERROR_ILL, one doorbell consumes at most the queue', async () => {
      const { host, a, b, smmu, bEntries, bUntouched, bFixes, count, teardown } = await twoVms(preset);
      const out = U.iommu_viommu_tegra241_cmdqv.decode(a.viommu.data);
      const vintf = a.p.mmap(out.out_vintf_mmap_length, RW, U.MAP_SHARED, a.fd, out.out_vintf_mmap_offset);
      expect(vintf > 0n).toBe(true);
      const qIpa = 0x8_0000n; // 4 KiB = 256 commands, aligned to its length
      const hwq = U.hwQueueAlloc(a.p, a.fd, { viommuId: a.viommu.id, type: U.IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV, index: 0, nestingParentIova: qIpa, length: 4096n });
      expect(hwq).toBeGreaterThan(0);
      const cmdqvEvents = U.veventqAlloc(a.p, a.fd, { viommuId: a.viommu.id, type: U.IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV, depth: 4 });
      const w32 = (off: number, v: number) => a.p.poke(vintf + BigInt(off), Uint8Array.from([v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >>> 24]));
      const r32 = (off: number) => new DataView(U.peekUser(a.p, vintf + BigInt(off), 4).buffer).getUint32(0, true);
      const put = (index: number, ...list: Cmd[]) => poke64(a.p, a.ram + qIpa + BigInt(16 * index), ...list.flat());
      w32(R.VCMDQ_CONFIG, 1);
      expect(r32(R.VCMDQ_STATUS)).toBe(1);
      // B's VMID and ASID in A's queue: the VINTF stamps A's VMID; B's entry survives.
      put(0, cmd({ opcode: 'TLBI_NH_ASID', asid: b.g.asid, vmid: b.vmid }), cmd({ opcode: 'TLBI_NH_VA', asid: b.g.asid, vmid: b.vmid, addr: GVA, leaf: true }), SYNC);
      w32(R.VCMDQ_PROD, 3);
      expect(r32(R.VCMDQ_CONS)).toBe(3);
      bUntouched();
      // CMD_SYNC with CS=IRQ naming host physical addresses — B's page behind its stale TLB
      // entry, B's STE in the stream table — as MSI targets: completes through CONS only, no
      // MSI write (hw-model: a guest queue's SYNC never DMAs to a guest-chosen PA).
      const bPage = bEntries().find((e) => e.stage === 'nested')!.oa;
      for (const [i, pa] of [bPage, smmu.steAddress(b.sid)].entries()) {
        put(3 + i, [SMMU_CMD_SYNC.encode({ OPCODE: CMDQ_OP.CMD_SYNC, CS: CMD_SYNC_CS.IRQ, MSIDATA: 0xdead_beefn })[0]!, SMMU_CMD_SYNC.encode({ MSIADDR: pa >> 2n })[1]!]);
      }
      w32(R.VCMDQ_PROD, 5);
      expect(r32(R.VCMDQ_CONS)).toBe(5);
      bUntouched();
      // ATC_INV on B's physical SID: no SID_MATCH slot of A's VINTF → CERROR_ILL, queue stops.      // ATC_INV on B's physical SID: no SID_MATCH slot of A's VINTF → CERROR_ILL, queue stops.
      const atcB = cmd({ opcode: 'ATC_INV', sid: b.sid, ssid: 0, substreamValid: false, addr: 0n, size: 52 });
      put(5, atcB);
      w32(R.VCMDQ_PROD, 6);
      expect(r32(R.VCMDQ_CONS)).toBe(5 | (1 << 24));
      // The error interrupt is A's vEVENT (LVCMDQ 0 in its error map), nothing for B.
      bUntouched();
      const buf = new Uint8Array(64);
      const n = a.p.read(cmdqvEvents.fd, buf);
      const errs = U.parseVevents(buf.subarray(0, n), U.IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV);
      expect(errs.map((e) => U.iommu_vevent_tegra241_cmdqv.decode(e.data).lvcmdq_err_map)).toEqual([[1n, 0n]]);
      // The guest repairs its queue (the bad slot becomes a SYNC) and acknowledges the error.
      // CONS.ERR keeps the last error's reason (as SMMU_CMDQ_CONS.ERR); RD moves on.
      put(5, SYNC);
      w32(R.VCMDQ_GERRORN, r32(R.VCMDQ_GERROR));
      expect(r32(R.VCMDQ_CONS)).toBe(6 | (1 << 24));
      // Host-only commands and TLBI_NH_ALL (not a guest-queue command) stop it the same way.
      for (const [i, bad] of [cmd({ opcode: 'CFGI_STE', sid: b.sid, leaf: true }), cmd({ opcode: 'TLBI_S12_VMALL', vmid: b.vmid }), cmd({ opcode: 'TLBI_NH_ALL', vmid: b.vmid }), cmd({ opcode: 'CFGI_ALL' })].entries()) {
        const at = 6 + i;
        put(at, bad);
        w32(R.VCMDQ_PROD, at + 1);
        expect(r32(R.VCMDQ_CONS)).toBe(at | (1 << 24));
        put(at, SYNC);
        w32(R.VCMDQ_GERRORN, r32(R.VCMDQ_GERROR));
        expect(r32(R.VCMDQ_CONS)).toBe((at + 1) | (1 << 24));
      }
      bUntouched();
      // A full queue behind one doorbell (PROD = CONS with the wrap bit flipped): exactly the
      // 256 commands of the ring run, then the queue is empty again.
      const cons = r32(R.VCMDQ_CONS) & 0xf_ffff;
      for (let i = 0; i < 256; i++) put(i, cmd({ opcode: 'TLBI_NH_ASID', asid: a.g.asid, vmid: 0 }));
      const tlbis = count(CMDQ_OP.TLBI_NH_ASID);
      w32(R.VCMDQ_PROD, cons ^ 0x100);
      expect(count(CMDQ_OP.TLBI_NH_ASID) - tlbis).toBe(256);
      expect(r32(R.VCMDQ_CONS)).toBe((cons ^ 0x100) | (1 << 24));
      // A PROD with garbage above the index: the hardware keeps 20 bits, the ring 8 + wrap;
      // the work stays within one ring's worth.
      const again = count(CMDQ_OP.TLBI_NH_ASID);
      w32(R.VCMDQ_PROD, 0xffff_ffff);
      expect(count(CMDQ_OP.TLBI_NH_ASID) - again).toBeLessThanOrEqual(256);
      bUntouched();
      // Only A's VINTF page is A's: its mmap ends at 64 KiB.
      expect(() => a.p.poke(vintf + out.out_vintf_mmap_length, Uint8Array.of(1))).toThrow();
      expect(smmu.readReg(SMMU_REG.GERROR)).toBe(smmu.readReg(SMMU_REG.GERRORN));
      expect(a.p.munmap(vintf, out.out_vintf_mmap_length)).toBe(0);
      expect(host.dma(host.vfioDevices[1]!, { iova: GVA, length: 4, write: false }).ok).toBe(true);
      bFixes();
      teardown();
    });
});
