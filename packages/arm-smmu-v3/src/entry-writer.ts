/**
 * The hitless entry writer shared by STEs and CDs (`arm_smmu_write_entry`): it compares the
 * bits the SMMU uses in the current and the target entry and picks the update sequence that
 * never lets the SMMU observe a mix that is neither the old nor the new configuration.
 */
import { SMMU_CD, SMMU_STE, STE_CFG, type BitLayout, type BitFieldSpec } from '@iommufd/hw-model';

/** Double words per STE / CD (`NUM_ENTRY_QWORDS`). */
export const NUM_ENTRY_QWORDS = 8;

/** An entry as eight 64-bit words. */
export type EntryWords = bigint[];

/** Where an entry lives and how its change is made visible. */
export interface EntryWriter {
  /** `get_used`: the bits of `entry` the SMMU reads in its current configuration. */
  getUsed(entry: readonly bigint[]): EntryWords;
  /** Stores one double word of the live entry. */
  writeQword(index: number, value: bigint): void;
  /** `sync`: CFGI of the entry + CMD_SYNC. */
  sync(): void;
}

/** The all-ones mask of each named field, by word (derived from the layout declaration). */
export function fieldMask<F extends readonly BitFieldSpec[]>(layout: BitLayout<F>, names: readonly F[number][0][]): EntryWords {
  const out = new Array<bigint>(layout.words).fill(0n);
  for (const [name, word, hi, lo] of layout.fields) {
    if (names.includes(name)) out[word] = out[word]! | (((1n << BigInt(hi - lo + 1)) - 1n) << BigInt(lo));
  }
  return out;
}

const orInto = (a: EntryWords, b: readonly bigint[]): void => {
  for (let i = 0; i < a.length; i++) a[i] = a[i]! | (b[i] ?? 0n);
};

const STE_V = fieldMask(SMMU_STE, ['V']);
const STE_CFGM = fieldMask(SMMU_STE, ['CONFIG']);
const STE_S1_USED = fieldMask(SMMU_STE, ['S1FMT', 'S1CONTEXTPTR', 'S1CDMAX', 'S1DSS', 'S1CIR', 'S1COR', 'S1CSH', 'S1STALLD', 'STRW', 'EATS', 'MEV', 'S2VMID']);
const STE_S2_USED = fieldMask(SMMU_STE, [
  'S2FWB', 'EATS', 'SHCFG', 'MEV', 'S2VMID', 'S2T0SZ', 'S2SL0', 'S2IR0', 'S2OR0', 'S2SH0', 'S2TG', 'S2PS',
  'S2AA64', 'S2ENDI', 'S2PTW', 'S2S', 'S2R', 'S2TTB',
]);
const STE_SHCFG = fieldMask(SMMU_STE, ['SHCFG']);

/** `arm_smmu_get_ste_used`. */
export function getSteUsed(ent: readonly bigint[]): EntryWords {
  const used = [...STE_V];
  if (SMMU_STE.get(ent, 'V') === 0n) return used;
  orInto(used, STE_CFGM);
  const cfg = SMMU_STE.num(ent, 'CONFIG');
  if ((cfg & 1) !== 0) {
    orInto(used, STE_S1_USED);
    // SHCFG applies to S1DSS=bypass traffic (SMMU spec 13.5).
    if (SMMU_STE.num(ent, 'S1DSS') === 1) orInto(used, STE_SHCFG);
  }
  if ((cfg & 2) !== 0) orInto(used, STE_S2_USED);
  if (cfg === STE_CFG.BYPASS) orInto(used, STE_SHCFG);
  return used;
}

const CD_V = fieldMask(SMMU_CD, ['V']);
const CD_EPD0_IGNORED = fieldMask(SMMU_CD, ['T0SZ', 'TG0', 'IR0', 'OR0', 'SH0', 'TTB0']);

/** `arm_smmu_get_cd_used`. */
export function getCdUsed(ent: readonly bigint[]): EntryWords {
  if (SMMU_CD.get(ent, 'V') === 0n) return [...CD_V];
  const used = new Array<bigint>(NUM_ENTRY_QWORDS).fill((1n << 64n) - 1n);
  // EPD0 makes the TTB0 walk fields IGNORED.
  if (SMMU_CD.get(ent, 'EPD0') === 1n) for (let i = 0; i < NUM_ENTRY_QWORDS; i++) used[i] = used[i]! & ~(CD_EPD0_IGNORED[i] ?? 0n);
  return used;
}

/** `arm_smmu_entry_qword_diff`: which qwords' used bits change, and the "unused bits first" entry. */
function qwordDiff(writer: EntryWriter, entry: readonly bigint[], target: readonly bigint[]): { diff: number; unusedUpdate: EntryWords } {
  const curUsed = writer.getUsed(entry);
  const targetUsed = writer.getUsed(target);
  const unusedUpdate: EntryWords = [];
  let diff = 0;
  for (let i = 0; i < NUM_ENTRY_QWORDS; i++) {
    if ((target[i]! & ~targetUsed[i]!) !== 0n) {
      throw new Error(`entry writer: target qword ${i} sets bits its own configuration does not use; the make function is wrong`);
    }
    // Bits not used now may change at once.
    unusedUpdate[i] = (entry[i]! & curUsed[i]!) | (target[i]! & ~curUsed[i]!);
    if ((unusedUpdate[i]! & targetUsed[i]!) !== target[i]!) diff |= 1 << i;
  }
  return { diff, unusedUpdate };
}

function entrySet(writer: EntryWriter, entry: EntryWords, target: readonly bigint[], start: number, len: number): boolean {
  let changed = false;
  for (let i = start; i < start + len; i++) {
    if (entry[i] !== target[i]) {
      entry[i] = target[i]!;
      writer.writeQword(i, target[i]!);
      changed = true;
    }
  }
  if (changed) writer.sync();
  return changed;
}

/**
 * `arm_smmu_write_entry`: moves the live `entry` (whose current words are given) to `target`.
 * One qword's used bits change: unused bits first, then that critical qword, then the rest.
 * Several: a breaking update (V=0, the rest, then qword 0). Each step is followed by a sync.
 */
export function writeEntry(writer: EntryWriter, current: readonly bigint[], target: readonly bigint[]): void {
  const entry = [...current];
  const { diff, unusedUpdate } = qwordDiff(writer, entry, target);
  const bits = diff.toString(2).replace(/0/g, '').length;
  if (bits === 1) {
    const critical = 31 - Math.clz32(diff);
    unusedUpdate[critical] = entry[critical]!;
    entrySet(writer, entry, unusedUpdate, 0, NUM_ENTRY_QWORDS);
    entrySet(writer, entry, target, critical, 1);
    entrySet(writer, entry, target, 0, NUM_ENTRY_QWORDS);
  } else if (bits > 1) {
    unusedUpdate[0] = 0n;
    entrySet(writer, entry, unusedUpdate, 0, 1);
    entrySet(writer, entry, target, 1, NUM_ENTRY_QWORDS - 1);
    entrySet(writer, entry, target, 0, 1);
  } else {
    // No used bit changes: only unused bits may differ (Linux WARNs if any write happens).
    entrySet(writer, entry, target, 0, NUM_ENTRY_QWORDS);
  }
}
