import { SMMU_CD, SMMU_L1CD, SMMU_STE, STE_CFG, VTD_PGTT, VtdPasidDirEntry, VtdPasidEntry } from '@iommufd/hw-model';
import { describe, expect, it } from 'vitest';
import { FuzzSession } from '../../src/fuzz/session.js';
import { armSmmuOf } from '../../src/platforms/arm-smmuv3.js';
import { intelVtdUnitOf } from '../../src/platforms/intel-vtd.js';
import type { FuzzOp } from '../../src/index.js';

// The second device (00:02.0): requester ID / StreamID 0x10.
const SID = 0x10;
/** A page no allocator handed out: far above the presets' driver allocations. */
const STALE = 0x7_dead_0000n;
const readOnly: FuzzOp = { kind: 'GET_HW_INFO', args: Array<number>(16).fill(0) };

function toBytes(words: readonly bigint[]): Uint8Array {
  const b = new Uint8Array(8 * words.length);
  const v = new DataView(b.buffer);
  words.forEach((w, i) => v.setBigUint64(8 * i, w, true));
  return b;
}

describe('fuzzer hardware invariant: the tables point only at live domains and memory', () => {
  it.each(['arm-smmuv3', 'tegra241-cmdqv'] as const)('%s: a translating STE of an unattached device with a free VMID and S2TTB is reported', async (platform) => {
    const s = await FuzzSession.create({ platform, devices: 2 });
    expect(s.execute(readOnly, 0)).toEqual([]);
    const host = s.hostUnderTest;
    const { smmu } = armSmmuOf(host.memory)!;
    const vmid = 1 + Math.max(0, ...smmu.vmidsInUse);
    host.memory.write(smmu.steAddress(SID), SMMU_STE.toBytes(SMMU_STE.encode({ V: 1, CONFIG: STE_CFG.S2_TRANS, S2VMID: vmid, S2TTB: STALE >> 4n })));
    expect(s.execute(readOnly, 1).map((f) => [f.kind, f.message])).toEqual([
      ['invariant', 'device /dev/vfio/devices/vfio1 (StreamID 0x10) is attached to nothing at its RID, but its STE has CONFIG 6, not the blocked domain\'s'],
      ['invariant', `device /dev/vfio/devices/vfio1 (StreamID 0x10): STE names VMID ${vmid}, which the driver has not allocated`],
      ['invariant', 'device /dev/vfio/devices/vfio1 (StreamID 0x10): STE S2TTB 0x7dead0000 is not in an allocated machine page'],
    ]);
  });

  it('arm-smmuv3: a stage-1 CD naming a freed ASID and page table is reported, and the attached STE itself is not', async () => {
    const w = (...xs: number[]): number[] => [...xs, ...Array<number>(16 - xs.length).fill(0)];
    // vfio0 (StreamID 0x8) bound and attached to an IOAS: the auto domain is stage 1.
    const ops: FuzzOp[] = [
      { kind: 'OPEN_IOMMUFD', args: w() },
      { kind: 'IOAS_ALLOC', args: w(50, 0, 0) },
      { kind: 'VFIO_OPEN', args: w(0) },
      { kind: 'VFIO_BIND', args: w(0, 99, 50, 0, 0) },
      { kind: 'VFIO_ATTACH', args: w(0, 99, 0, 0, 0) },
    ];
    const s = await FuzzSession.create({ platform: 'arm-smmuv3', devices: 2 });
    for (const [i, op] of ops.entries()) expect(s.execute(op, i), `${i} ${op.kind}`).toEqual([]);
    const host = s.hostUnderTest;
    const { smmu } = armSmmuOf(host.memory)!;
    const ste = smmu.readSte(0x8);
    expect([SMMU_STE.num(ste, 'CONFIG'), SMMU_STE.num(ste, 'S1FMT')]).toEqual([STE_CFG.S1_TRANS, 2]);
    const l1 = SMMU_L1CD.fromBytes(host.memory.read(SMMU_STE.get(ste, 'S1CONTEXTPTR') << 6n, 8));
    const cdAt = SMMU_L1CD.get(l1, 'L2PTR') << 12n;
    const cd = SMMU_CD.fromBytes(host.memory.read(cdAt, 64));
    const asid = 1 + Math.max(0, ...smmu.asidsInUse);
    SMMU_CD.set(cd, 'ASID', asid);
    SMMU_CD.set(cd, 'TTB0', STALE >> 4n);
    host.memory.write(cdAt, SMMU_CD.toBytes(cd));
    expect(s.execute(readOnly, ops.length).map((f) => f.message)).toEqual([
      `device /dev/vfio/devices/vfio0 (StreamID 0x8): CD of SSID 0 names ASID ${asid}, which the driver has not allocated`,
      'device /dev/vfio/devices/vfio0 (StreamID 0x8): CD of SSID 0 TTB0 0x7dead0000 is not in an allocated machine page',
    ]);
  });

  it('intel-vtd: a present RID_PASID entry of an unattached device with a free DID and table pointer is reported', async () => {
    const s = await FuzzSession.create({ platform: 'intel-vtd', devices: 2 });
    expect(s.execute(readOnly, 0)).toEqual([]);
    const host = s.hostUnderTest;
    const { unit } = intelVtdUnitOf(host.memory)!;
    const info = unit.devices.get(SID)!;
    const table = VtdPasidDirEntry.f.PASIDPTPTR.of(unit.mem.read64(info.pasidDir));
    const did = 1 + Math.max(0, ...unit.allocatedDids);
    host.memory.write(table, toBytes(VtdPasidEntry.encode({ P: 1, PGTT: VTD_PGTT.SECOND_STAGE, AW: 2, DID: did, SSPTPTR: STALE })));
    expect(s.execute(readOnly, 1).map((f) => [f.kind, f.message])).toEqual([
      ['invariant', `device /dev/vfio/devices/vfio1 (RID 0x10) is attached to nothing at its RID, but its PASID 0 entry at 0x${table.toString(16)} is present (PGTT 2, DID ${did})`],
      ['invariant', `device /dev/vfio/devices/vfio1 (RID 0x10): PASID 0 entry at 0x${table.toString(16)} names DID ${did}, which the driver has not allocated`],
      ['invariant', `device /dev/vfio/devices/vfio1 (RID 0x10): PASID 0 entry at 0x${table.toString(16)} SSPTPTR 0x7dead0000 is not in an allocated machine page`],
    ]);
  });

  it('intel-vtd: a PASID directory entry pointing at a free page is reported', async () => {
    const s = await FuzzSession.create({ platform: 'intel-vtd', devices: 2 });
    const host = s.hostUnderTest;
    const { unit } = intelVtdUnitOf(host.memory)!;
    host.memory.write(unit.devices.get(SID)!.pasidDir, toBytes([VtdPasidDirEntry.encode({ P: 1, PASIDPTPTR: STALE })[0]!]));
    expect(s.execute(readOnly, 0).map((f) => f.message)).toEqual(['device /dev/vfio/devices/vfio1 (RID 0x10): PASID directory entry for PASID 0 points at 0x7dead0000, not an allocated machine page']);
  });
});
