/**
 * AArch64 VMSAv8-64 4 KiB-granule table walks for SMMUv3 stage 1 and stage 2
 * (reference §2.5). In a nested walk every table address goes through `tableAddress`
 * (the stage-2 translation) before it is read.
 */
import { POW2, TWO_32 } from './address.js';
import { halfWordField } from './bitfield.js';
import type { PhysicalMemory, Word64 } from './memory.js';
import { ARM_PTE, EVT_ID } from './smmuv3-layouts.js';

/** Permission bits of a cached translation. */
export const PERM = { R: 1, W: 2, EL0: 4, XPRIV: 8, XUNPRIV: 16 } as const;

/** A fault found by a walk (before it becomes an event record). */
export interface WalkFault {
  /** Event ID ({@link EVT_ID}). */
  readonly id: number;
  /** Descriptor address whose fetch aborted (F_WALK_EABT). */
  readonly fetchAddr?: bigint;
  /** For stage-2 faults met while translating a stage-1 table address: that address. */
  readonly tableIpa?: bigint;
  /** Fault belongs to stage 2. */
  readonly stage2?: boolean;
}

/** A leaf found by a walk. */
export interface WalkLeaf {
  /** Output address of the page / block base. */
  readonly oa: bigint;
  /** Page or block size. */
  readonly size: bigint;
  /** {@link PERM} bits. */
  readonly perm: number;
  /** Stage 1 with nG = 0: matches every ASID (always false for stage 2). */
  readonly global: boolean;
  /** Level of the leaf (1..3). */
  readonly level: number;
}

/** Geometry of one stage's walk. */
export interface WalkParams {
  /** Stage 1 or 2 (selects the permission encoding). */
  readonly stage: 1 | 2;
  /** Table base (TTB0 / S2TTB), an IPA for nested stage 1. */
  readonly ttb: bigint;
  /** Input address bits (64 − TxSZ). */
  readonly iaBits: number;
  /** Start level (0..3). */
  readonly startLevel: number;
  /** Output address bits (effective IPS / S2PS). */
  readonly oaBits: number;
  /** Access-flag faults disabled. */
  readonly affd: boolean;
}

/** Descriptor fields as seen from the 32-bit halves of the descriptor (from {@link ARM_PTE}). */
const PTE = {
  VALID: halfWordField(ARM_PTE, 'VALID'),
  TABLE: halfWordField(ARM_PTE, 'TABLE'),
  AP: halfWordField(ARM_PTE, 'AP'),
  AF: halfWordField(ARM_PTE, 'AF'),
  NG: halfWordField(ARM_PTE, 'NG'),
  OA: halfWordField(ARM_PTE, 'OA'),
  PXN: halfWordField(ARM_PTE, 'PXN'),
  XN: halfWordField(ARM_PTE, 'XN'),
  PXNTABLE: halfWordField(ARM_PTE, 'PXNTABLE'),
  XNTABLE: halfWordField(ARM_PTE, 'XNTABLE'),
  APTABLE: halfWordField(ARM_PTE, 'APTABLE'),
};
/** 2^shift for each level's shift (Number division by it is exact below 2^53). */
const LEVEL_SIZE = [2 ** 39, 2 ** 30, 2 ** 21, 2 ** 12] as const;

/** Shift of the address bits one level indexes (4 KiB granule). */
export function levelShift(level: number): number {
  return 12 + 9 * (3 - level);
}

/** Stage-1 start level of a 4 KiB-granule walk with `iaBits` input bits. */
export function s1StartLevel(iaBits: number): number {
  return 4 - Math.floor((iaBits - 4) / 9);
}

/** Result of a table-address translation: the PA, or a fault. */
export type TableAddress = { readonly ok: true; readonly pa: bigint } | { readonly ok: false; readonly fault: WalkFault };

/**
 * @internal A leaf with its addresses as Numbers. VMSAv8-64 output addresses are at most 52
 * bits (the model accepts 48), so a double holds them exactly; a walk in Numbers reads each
 * descriptor as two 32-bit halves and allocates no BigInt.
 */
export interface WalkLeafNumbers {
  /** The walk reached a leaf. */
  readonly ok: true;
  /** Output address of the page / block base. */
  readonly oa: number;
  /** Page or block size. */
  readonly size: number;
  /** {@link PERM} bits. */
  readonly perm: number;
  /** Stage 1 with nG = 0. */
  readonly global: boolean;
  /** Level of the leaf (1..3). */
  readonly level: number;
}

/** @internal A failed walk. */
export interface WalkFailure {
  /** The walk failed. */
  readonly ok: false;
  /** Why. */
  readonly fault: WalkFault;
}

/** @internal Maps a table address to the PA to read (a Number), or the fault met doing so. */
export type TableAddressNumbers = (addr: number) => number | WalkFailure;

/** The descriptor being examined (one walk at a time: walks never nest inside a read). */
const desc: Word64 = { lo: 0, hi: 0 };

/**
 * @internal Walks one stage for input address `ia` in Numbers (`ia` may be any value: one
 * that is not below 2^iaBits is a translation fault before anything is read).
 * `tableAddress` maps each table address to the PA to read; undefined is the identity.
 */
export function walkNumbers(memory: PhysicalMemory, p: WalkParams, ia: number, tableAddress: TableAddressNumbers | undefined): WalkLeafNumbers | WalkFailure {
  const stage2 = p.stage === 2;
  if (!(ia >= 0 && ia < POW2[p.iaBits]!)) return { ok: false, fault: { id: EVT_ID.F_TRANSLATION, stage2 } };
  const oaLimit = POW2[p.oaBits]!;
  // The start level indexes the remaining input bits (up to 13 with concatenated tables).
  const startMask = POW2[p.iaBits - levelShift(p.startLevel)]! - 1;
  let table = Number(p.ttb);
  // Hierarchical permission limits (APTable, XNTable, PXNTable) of stage 1.
  let noWrite = false;
  let noEl0 = false;
  let noXp = false;
  let noXu = false;
  for (let level = p.startLevel; level <= 3; level++) {
    const size = LEVEL_SIZE[level]!;
    // ToInt32 keeps the low 32 bits of the (integral) quotient: the index bits survive the mask.
    const idx = Math.floor(ia / size) & (level === p.startLevel ? startMask : 511);
    let pa = table + idx * 8;
    if (tableAddress !== undefined) {
      const t = tableAddress(pa);
      if (typeof t !== 'number') return t;
      pa = t;
    }
    if (!memory.readRamWord(pa, desc)) return { ok: false, fault: { id: EVT_ID.F_WALK_EABT, fetchAddr: BigInt(pa), stage2 } };
    const lo = desc.lo;
    const hi = desc.hi;
    if ((lo & PTE.VALID.lo) === 0) return { ok: false, fault: { id: EVT_ID.F_TRANSLATION, stage2 } };
    const isTable = (lo & PTE.TABLE.lo) !== 0;
    // OA[47:12] spans both halves: bits 47:32 from `hi`, 31:12 from `lo`.
    const oaField = (hi & PTE.OA.hi) * TWO_32 + ((lo & PTE.OA.lo) >>> 0);
    if (level < 3 && isTable) {
      table = oaField;
      if (table >= oaLimit) return { ok: false, fault: { id: EVT_ID.F_ADDR_SIZE, stage2 } };
      if (!stage2) {
        const apt = (hi >>> PTE.APTABLE.shift) & PTE.APTABLE.valueMask;
        noWrite ||= (apt & 2) !== 0;
        noEl0 ||= (apt & 1) !== 0;
        noXp ||= (hi & PTE.PXNTABLE.hi) !== 0;
        noXu ||= (hi & PTE.XNTABLE.hi) !== 0;
      }
      continue;
    }
    // Level 3 needs 0b11 (0b01 is reserved); a 4 KiB granule has no level-0 blocks.
    if ((level === 3 && !isTable) || level === 0) return { ok: false, fault: { id: EVT_ID.F_TRANSLATION, stage2 } };
    const oa = Math.floor(oaField / size) * size;
    if (oa >= oaLimit) return { ok: false, fault: { id: EVT_ID.F_ADDR_SIZE, stage2 } };
    if ((lo & PTE.AF.lo) === 0 && !p.affd) return { ok: false, fault: { id: EVT_ID.F_ACCESS, stage2 } };
    const ap = (lo >>> PTE.AP.shift) & PTE.AP.valueMask;
    const pxn = (hi & PTE.PXN.hi) !== 0;
    const xnBit = (hi & PTE.XN.hi) !== 0;
    let perm: number;
    if (stage2) {
      // S2AP: bit 6 read, bit 7 write; XN[54:53] with FEAT_XNX encoding.
      const xn = (pxn ? 1 : 0) | (xnBit ? 2 : 0);
      perm = PERM.EL0 | (ap & 1 ? PERM.R : 0) | (ap & 2 ? PERM.W : 0);
      if (xn === 0 || xn === 3) perm |= PERM.XPRIV;
      if (xn === 0 || xn === 1) perm |= PERM.XUNPRIV;
    } else {
      perm = PERM.R;
      if ((ap & 2) === 0 && !noWrite) perm |= PERM.W;
      if ((ap & 1) !== 0 && !noEl0) perm |= PERM.EL0;
      if (!pxn && !noXp) perm |= PERM.XPRIV;
      if (!xnBit && !noXu) perm |= PERM.XUNPRIV;
    }
    return { ok: true, oa, size, perm, global: !stage2 && (lo & PTE.NG.lo) === 0, level };
  }
  return { ok: false, fault: { id: EVT_ID.F_TRANSLATION, stage2 } };
}

/**
 * Walks one stage for input address `ia`. `tableAddress` maps each table address to the PA to
 * read (identity outside nesting). Addresses are those of VMSAv8-64: `p.iaBits` and
 * `p.oaBits` at most 52.
 */
export function walk(
  memory: PhysicalMemory,
  p: WalkParams,
  ia: bigint,
  tableAddress: (addr: bigint) => TableAddress,
): { ok: true; leaf: WalkLeaf } | { ok: false; fault: WalkFault } {
  if (p.iaBits > 52 || p.oaBits > 52) throw new RangeError(`walk: iaBits ${p.iaBits} / oaBits ${p.oaBits} exceed the 52 address bits of VMSAv8-64`);
  // An `ia` at or above 2^iaBits stays so as a Number (rounding is monotonic): still a fault.
  const w = walkNumbers(memory, p, Number(ia), (a) => {
    const t = tableAddress(BigInt(a));
    return t.ok ? Number(t.pa) : t;
  });
  if (!w.ok) return w;
  return { ok: true, leaf: { oa: BigInt(w.oa), size: BigInt(w.size), perm: w.perm, global: w.global, level: w.level } };
}

/** True when `perm` allows the access (stage 1 checks EL0 for unprivileged accesses). */
export function permits(perm: number, stage: 1 | 2, write: boolean, exec: boolean, priv: boolean): boolean {
  if (stage === 1 && !priv && (perm & PERM.EL0) === 0) return false;
  if (write ? (perm & PERM.W) === 0 : (perm & PERM.R) === 0) return false;
  if (exec && (perm & (priv ? PERM.XPRIV : PERM.XUNPRIV)) === 0) return false;
  return true;
}
