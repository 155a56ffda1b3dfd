/**
 * The page-table view of `inspect`: the mapped ranges of an I/O page table, decoded from the
 * table pages in memory (the bytes the IOMMU walks) — IOVA range → output range, permissions,
 * level — for the formats the presets' IOMMUs walk: AArch64 VMSAv8-64 stage 1 and stage 2
 * (4 KiB granule, SMMUv3) and VT-d first- and second-stage tables. Adjacent leaves of the
 * same level and permissions whose outputs are contiguous merge into one range.
 */
import { ARM_PTE, VtdFsPte, VtdSsPte, levelShift, s1StartLevel } from '@iommufd/hw-model';

/** One mapped range of a table. */
export interface MappedRange {
  /** First input address. */
  readonly iova: bigint;
  /** Last input address. */
  readonly last: bigint;
  /** Output address of `iova` (a PA, or an IPA / GPA for a guest's stage-1 table). */
  readonly output: bigint;
  /** `r`, `rw`, `w` (as the format grants). */
  readonly perms: string;
  /** Level of the leaves in the format's own numbering (AArch64: 1–3, 3 = 4 KiB; VT-d: 1–3, 1 = 4 KiB). */
  readonly level: number;
  /** Bytes one leaf maps. */
  readonly pageSize: bigint;
}

/** What a descriptor is at some depth of a table. */
type Entry = { readonly kind: 'invalid' } | { readonly kind: 'table'; readonly next: bigint } | { readonly kind: 'leaf'; readonly output: bigint; readonly perms: string };

/** A radix table format: entries at the root, depth count, per-depth shift and level name, the descriptor decoder. */
export interface TableFormat {
  /** Caption of the format (`AArch64 stage 2`, `VT-d second-stage`). */
  readonly name: string;
  /** Entries in the (possibly concatenated) root table. */
  readonly rootEntries: number;
  /** Number of levels from the root to the smallest leaves. */
  readonly depths: number;
  /** Input-address shift of one entry at `depth` (0 = root). */
  shift(depth: number): number;
  /** The format's level number of `depth`. */
  level(depth: number): number;
  /** Decodes a descriptor at `depth`. */
  decode(desc: bigint, depth: number): Entry;
}

const ARM = { VALID: ARM_PTE.reader('VALID'), TABLE: ARM_PTE.reader('TABLE'), AP: ARM_PTE.reader('AP'), OA: ARM_PTE.reader('OA') };

/** AArch64 4 KiB-granule tables of `iaBits` input bits starting at `startLevel`. */
function armFormat(stage: 1 | 2, iaBits: number, startLevel: number): TableFormat {
  return {
    name: `AArch64 stage ${stage}`,
    rootEntries: 2 ** Math.max(0, iaBits - levelShift(startLevel)),
    depths: 4 - startLevel,
    shift: (d) => levelShift(startLevel + d),
    level: (d) => startLevel + d,
    decode(desc, d) {
      const level = startLevel + d;
      if (!ARM.VALID.test(desc)) return { kind: 'invalid' };
      const isTable = ARM.TABLE.test(desc);
      if (level < 3 && isTable) return { kind: 'table', next: desc & ARM.OA.mask };
      // Level 3 needs the page encoding; a 4 KiB granule has no level-0 blocks.
      if ((level === 3 && !isTable) || level === 0) return { kind: 'invalid' };
      const ap = Number(ARM.AP.get(desc));
      // Stage 1 AP[2] = read-only; stage 2 S2AP bit 0 = read, bit 1 = write.
      const perms = stage === 1 ? (ap & 2 ? 'r' : 'rw') : `${ap & 1 ? 'r' : ''}${ap & 2 ? 'w' : ''}`;
      return { kind: 'leaf', output: desc & ARM.OA.mask & ~((1n << BigInt(levelShift(level))) - 1n), perms };
    },
  };
}

/** A stage-1 table of a CD whose T0SZ is `t0sz`. */
export const armStage1Format = (t0sz: number): TableFormat => armFormat(1, 64 - t0sz, s1StartLevel(64 - t0sz));

/** A stage-2 table of an STE whose S2T0SZ / S2SL0 are given. */
export const armStage2Format = (s2t0sz: number, s2sl0: number): TableFormat => armFormat(2, 64 - s2t0sz, 2 - s2sl0);

const SS = { R: VtdSsPte.f.R, W: VtdSsPte.f.W, PS: VtdSsPte.f.PS, ADDR: VtdSsPte.f.ADDR };
const FS = { P: VtdFsPte.f.P, RW: VtdFsPte.f.RW, PS: VtdFsPte.f.PS, ADDR: VtdFsPte.f.ADDR };

function vtdFormat(name: string, levels: number, decode: (desc: bigint, level: number) => Entry): TableFormat {
  return {
    name,
    rootEntries: 512,
    depths: levels,
    shift: (d) => 12 + 9 * (levels - 1 - d),
    level: (d) => levels - d,
    decode: (desc, d) => decode(desc, levels - d),
  };
}

/** A VT-d second-stage table of `levels` levels (AW + 2). */
export const vtdSecondStageFormat = (levels: number): TableFormat =>
  vtdFormat('VT-d second-stage', levels, (desc, level) => {
    const r = SS.R.of(desc) === 1;
    const w = SS.W.of(desc) === 1;
    if (!r && !w) return { kind: 'invalid' };
    if (level > 1 && SS.PS.of(desc) === 0) return { kind: 'table', next: SS.ADDR.of(desc) };
    const size = 1n << BigInt(12 + 9 * (level - 1));
    return { kind: 'leaf', output: SS.ADDR.of(desc) & ~(size - 1n), perms: `${r ? 'r' : ''}${w ? 'w' : ''}` };
  });

/** A VT-d first-stage (x86-64) table of 4 or 5 levels. */
export const vtdFirstStageFormat = (levels: number): TableFormat =>
  vtdFormat('VT-d first-stage', levels, (desc, level) => {
    if (FS.P.of(desc) === 0) return { kind: 'invalid' };
    if (level > 1 && FS.PS.of(desc) === 0) return { kind: 'table', next: FS.ADDR.of(desc) };
    const size = 1n << BigInt(12 + 9 * (level - 1));
    return { kind: 'leaf', output: FS.ADDR.of(desc) & ~(size - 1n), perms: FS.RW.of(desc) === 1 ? 'rw' : 'r' };
  });

/** Reads the 64-bit descriptors of a table page; undefined when the address is not RAM. */
export type TableReader = (pa: bigint, entries: number) => readonly bigint[] | undefined;

/**
 * The mapped ranges of the table at `root`, at most `maxRanges` of them. `tableAddress` maps
 * a table address to where it is read (a guest's stage-1 tables sit at IPAs / GPAs: the
 * stage-2 translation of the same device); undefined drops that subtree.
 */
export function mappedRanges(
  format: TableFormat,
  root: bigint,
  read: TableReader,
  maxRanges: number,
  tableAddress: (addr: bigint) => bigint | undefined = (a) => a,
): MappedRange[] {
  const out: MappedRange[] = [];
  const visit = (table: bigint, depth: number, base: bigint, entries: number): void => {
    const pa = tableAddress(table);
    const descs = pa === undefined ? undefined : read(pa, entries);
    if (descs === undefined) return;
    const shift = BigInt(format.shift(depth));
    for (let i = 0; i < descs.length && out.length <= maxRanges; i++) {
      const e = format.decode(descs[i]!, depth);
      const iova = base + (BigInt(i) << shift);
      if (e.kind === 'table') {
        if (depth + 1 < format.depths) visit(e.next, depth + 1, iova, 512);
        continue;
      }
      if (e.kind !== 'leaf') continue;
      const size = 1n << shift;
      const level = format.level(depth);
      const prev = out.at(-1);
      if (prev && prev.last + 1n === iova && prev.output + (iova - prev.iova) === e.output && prev.perms === e.perms && prev.level === level) {
        out[out.length - 1] = { ...prev, last: iova + size - 1n };
      } else {
        out.push({ iova, last: iova + size - 1n, output: e.output, perms: e.perms, level, pageSize: size });
      }
    }
  };
  visit(root, 0, 0n, format.rootEntries);
  return out.slice(0, maxRanges);
}

/** The output address of `ia` in the table at `root` (a single walk), or undefined when unmapped. */
export function lookup(format: TableFormat, root: bigint, read: TableReader, ia: bigint): bigint | undefined {
  let table = root;
  for (let depth = 0; depth < format.depths; depth++) {
    const shift = BigInt(format.shift(depth));
    const index = Number((ia >> shift) & BigInt((depth === 0 ? format.rootEntries : 512) - 1));
    const desc = read(table + BigInt(8 * index), 1)?.[0];
    if (desc === undefined) return undefined;
    const e = format.decode(desc, depth);
    if (e.kind === 'invalid') return undefined;
    if (e.kind === 'leaf') return e.output + (ia & ((1n << shift) - 1n));
    table = e.next;
  }
  return undefined;
}
