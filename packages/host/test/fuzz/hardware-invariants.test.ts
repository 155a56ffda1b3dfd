import { SMMU_STE, STE_CFG, VTD_PGTT, VtdPasidDirEntry, VtdPasidEntry } from '@iommufd/hw-model';
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
    host.memory.write(smmu.steAddress(SID), toBytes(SMMU_STE.encode({ V: 1, CONFIG: STE_CFG.S2_TRANS, S2VMID: vmid, S2TTB: STALE >> 4n })));
    expect(s.execute(readOnly, 1).map((f) => [f.kind, f.message])).toEqual([
      ['invariant', 'device /dev/vfio/devices/vfio1 (StreamID 0x10) is attached to nothing at its RID, but its STE has CONFIG 6, not the blocked domain\'s'],
      ['invariant', `device /dev/vfio/devices/vfio1 (StreamID 0x10): STE names VMID ${vmid}, which the driver has not allocated`],
      ['invariant', 'device /dev/vfio/devices/vfio1 (StreamID 0x10): STE S2TTB 0x7dead0000 is not in an allocated machine page'],
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
});
