/**
 * What the SMMUv3 platform tests share. A guest's structures in its RAM: a page allocator over
 * guest RAM (IPA 0 left alone), a 48-bit stage-1 table with 4 KiB pages, one CD pointing at
 * it and the vSTE pointing at the CD table, encoded with hw-model's bit layouts as a guest
 * driver's headers would; the 16-byte command entries of IOMMU_HWPT_INVALIDATE; the preset's
 * vIOMMU; and the leak check after every fd is closed.
 */
import * as U from '@iommufd/uapi';
import { expect } from 'vitest';
import type { Tegra241Cmdqv } from '@iommufd/arm-smmu-v3';
import { ARM_PTE, SMMU_CD, SMMU_STE, TEGRA241_CMDQV_REG as R } from '@iommufd/hw-model';
import type { Host } from '../../src/index.js';
import { armSmmuOf } from '../../src/platforms/arm-smmuv3.js';
import { peek64, poke64 } from './vmm.js';

/** A stage-1 leaf: RW, inner-shareable write-back, AF set, non-global (ASID-tagged). */
export const GUEST_LEAF = { VALID: 1, TABLE: 1, ATTR: 1, AP: 1, SH: 3, AF: 1, NG: 1 } as const;

/** A guest whose RAM is mapped by the user process at `ram`. */
export function smmuGuest(p: U.UserProcess, ram: bigint, opts: { asid?: number; firstIpa?: bigint } = {}) {
  let nextIpa = opts.firstIpa ?? 0x1000n;
  const allocIpa = (): bigint => {
    const ipa = nextIpa;
    nextIpa += 0x1000n;
    return ipa;
  };
  const root = allocIpa();
  /** The IPA of the level-`depth` table on `va`'s path, creating tables as needed (0 = root). */
  const tableOf = (va: bigint, depth = 3): bigint => {
    let table = root;
    for (let level = 0; level < depth; level++) {
      const slot = ram + table + ((va >> BigInt(12 + 9 * (3 - level))) & 511n) * 8n;
      let d = peek64(p, slot);
      if ((d & 3n) !== 3n) {
        d = ARM_PTE.encode({ VALID: 1, TABLE: 1, OA: allocIpa() >> 12n })[0]!;
        poke64(p, slot, d);
      }
      table = ARM_PTE.get([d], 'OA') << 12n;
    }
    return table;
  };
  /** The guest-RAM VA of `va`'s descriptor at `level` (0..3). */
  const slotOf = (va: bigint, level: number): bigint => ram + tableOf(va, level) + ((va >> BigInt(12 + 9 * (3 - level))) & 511n) * 8n;
  /** Maps the 4 KiB page at `va` to `ipa` (or writes a raw leaf descriptor). */
  const map = (va: bigint, ipa: bigint, leaf: bigint = ARM_PTE.encode({ ...GUEST_LEAF, OA: ipa >> 12n })[0]!): void => poke64(p, slotOf(va, 3), leaf);
  const asid = opts.asid ?? 3;
  /** A CD of this guest's table (48-bit VA, 4 KiB granule, IPS 48 bits), fields overridable. */
  const cd = (fields: Record<string, number | bigint> = {}): bigint[] =>
    SMMU_CD.encode({ T0SZ: 16, TG0: 0, IR0: 1, OR0: 1, SH0: 3, EPD1: 1, V: 1, IPS: 5, AA64: 1, R: 1, A: 1, ASET: 1, ASID: asid, TTB0: root >> 4n, MAIR: 0xf404ff44n, ...fields });
  const cdTable = allocIpa();
  poke64(p, ram + cdTable, ...cd());
  /** The two vSTE words of an S1 vSTE on the CD table at `cdIpa`. */
  const vste = (cdIpa: bigint = cdTable, fields: Record<string, number | bigint> = {}): bigint[] => SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: cdIpa >> 6n, ...fields }).slice(0, 2);
  return { allocIpa, root, tableOf, slotOf, map, cd, cdTable, vste, asid };
}

/** IOMMU_HWPT_DATA_ARM_SMMUV3 driver data for a vSTE. */
export function vsteData(ste: readonly bigint[]): { type: number; bytes: Uint8Array } {
  return { type: U.IOMMU_HWPT_DATA_ARM_SMMUV3, bytes: U.iommu_hwpt_arm_smmuv3.encode({ ste: [...ste] }) };
}

/** 16-byte IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3 entries from command words. */
export function cmdEntries(...list: readonly (readonly [bigint, bigint])[]): Uint8Array[] {
  return list.map((c) => U.iommu_viommu_arm_smmuv3_invalidate.encode({ cmd: [...c] }));
}

/**
 * The vIOMMU a VMM allocates on an SMMU preset: TEGRA241_CMDQV with its driver data (the VINTF
 * page mmap offset/length come back in it) on 'tegra241-cmdqv', else ARM_SMMUV3 without data.
 */
export function presetViommu(preset: string): { type: number; data?: Uint8Array } {
  return preset === 'tegra241-cmdqv'
    ? { type: U.IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV, data: U.iommu_viommu_tegra241_cmdqv.encode({ out_vintf_mmap_offset: 0n, out_vintf_mmap_length: 0n }) }
    : { type: U.IOMMU_VIOMMU_TYPE_ARM_SMMUV3 };
}

/**
 * After every fd is closed: no ASID or VMID allocated, the STE of each StreamID in `sids` back
 * to abort (V=1, Config 0, an unbound function's), and on Tegra241 no guest VINTF and no global
 * VCMDQ mapped (CMDQ_ALLOC.ALLOCATED) beyond VINTF0's.
 */
export function smmuLeftNothing(host: Host, sids: readonly number[]): void {
  const { smmu } = armSmmuOf(host.memory)!;
  expect([smmu.asidsInUse, smmu.vmidsInUse]).toEqual([[], []]);
  for (const sid of sids) expect(smmu.readSte(sid)[0]! & 0xfn).toBe(1n);
  const cmdqv = smmu.impl as Tegra241Cmdqv | undefined;
  if (cmdqv === undefined) return;
  expect(cmdqv.vintfs.slice(1).every((v) => v === undefined)).toBe(true);
  for (let q = cmdqv.numLvcmdqsPerVintf; q < cmdqv.numVcmdqs; q++) expect(smmu.readReg(cmdqv.offset + R.CMDQ_ALLOC + 4 * q) & 1).toBe(0);
}
