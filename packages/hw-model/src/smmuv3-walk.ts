/**
 * AArch64 VMSAv8-64 4 KiB-granule table walks for SMMUv3 stage 1 and stage 2
 * (reference §2.5). In a nested walk every table address goes through `tableAddress`
 * (the stage-2 translation) before it is read.
 */
import type { PhysicalMemory } from './memory.js';
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

const PTE = {
  VALID: ARM_PTE.reader('VALID'),
  TABLE: ARM_PTE.reader('TABLE'),
  AP: ARM_PTE.reader('AP'),
  AF: ARM_PTE.reader('AF'),
  NG: ARM_PTE.reader('NG'),
  OA: ARM_PTE.reader('OA'),
  PXN: ARM_PTE.reader('PXN'),
  XN: ARM_PTE.reader('XN'),
  PXNTABLE: ARM_PTE.reader('PXNTABLE'),
  XNTABLE: ARM_PTE.reader('XNTABLE'),
  APTABLE: ARM_PTE.reader('APTABLE'),
};
/** Stage-2 XN[54:53] (FEAT_XNX): the PXN and XN bits of the stage-1 view read together. */
const S2_XN = { get: (d: bigint) => Number((PTE.PXN.get(d) | (PTE.XN.get(d) << 1n))) };

const LEVEL_SHIFT = [39n, 30n, 21n, 12n] as const;

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
 * Walks one stage for input address `ia`. `tableAddress` maps each table address to the PA to
 * read (identity outside nesting).
 */
export function walk(
  memory: PhysicalMemory,
  p: WalkParams,
  ia: bigint,
  tableAddress: (addr: bigint) => TableAddress,
): { ok: true; leaf: WalkLeaf } | { ok: false; fault: WalkFault } {
  const stage2 = p.stage === 2;
  if (ia >> BigInt(p.iaBits) !== 0n) return { ok: false, fault: { id: EVT_ID.F_TRANSLATION, stage2 } };
  const oaBits = BigInt(p.oaBits);
  // The start level indexes the remaining input bits (up to 13 with concatenated tables).
  const startMask = (1n << BigInt(p.iaBits - levelShift(p.startLevel))) - 1n;
  let table = p.ttb;
  // Hierarchical permission limits (APTable, XNTable, PXNTable) of stage 1.
  let noWrite = false;
  let noEl0 = false;
  let noXp = false;
  let noXu = false;
  for (let level = p.startLevel; level <= 3; level++) {
    const shift = LEVEL_SHIFT[level]!;
    const idx = (ia >> shift) & (level === p.startLevel ? startMask : 511n);
    const t = tableAddress(table + idx * 8n);
    if (!t.ok) return t;
    const d = memory.readRam64(t.pa);
    if (d === undefined) return { ok: false, fault: { id: EVT_ID.F_WALK_EABT, fetchAddr: t.pa, stage2 } };
    if (!PTE.VALID.test(d)) return { ok: false, fault: { id: EVT_ID.F_TRANSLATION, stage2 } };
    const isTable = PTE.TABLE.test(d);
    if (level < 3 && isTable) {
      table = d & PTE.OA.mask;
      if (table >> oaBits !== 0n) return { ok: false, fault: { id: EVT_ID.F_ADDR_SIZE, stage2 } };
      if (!stage2) {
        const apt = PTE.APTABLE.get(d);
        noWrite ||= (apt & 2n) !== 0n;
        noEl0 ||= (apt & 1n) !== 0n;
        noXp ||= PTE.PXNTABLE.test(d);
        noXu ||= PTE.XNTABLE.test(d);
      }
      continue;
    }
    // Level 3 needs 0b11 (0b01 is reserved); a 4 KiB granule has no level-0 blocks.
    if ((level === 3 && !isTable) || level === 0) return { ok: false, fault: { id: EVT_ID.F_TRANSLATION, stage2 } };
    const size = 1n << shift;
    const oa = d & PTE.OA.mask & ~(size - 1n);
    if (oa >> oaBits !== 0n) return { ok: false, fault: { id: EVT_ID.F_ADDR_SIZE, stage2 } };
    if (!PTE.AF.test(d) && !p.affd) return { ok: false, fault: { id: EVT_ID.F_ACCESS, stage2 } };
    const ap = Number(PTE.AP.get(d));
    let perm: number;
    if (stage2) {
      // S2AP: bit 6 read, bit 7 write; XN[54:53] with FEAT_XNX encoding.
      const xn = S2_XN.get(d);
      perm = PERM.EL0 | (ap & 1 ? PERM.R : 0) | (ap & 2 ? PERM.W : 0);
      if (xn === 0 || xn === 3) perm |= PERM.XPRIV;
      if (xn === 0 || xn === 1) perm |= PERM.XUNPRIV;
    } else {
      perm = PERM.R;
      if ((ap & 2) === 0 && !noWrite) perm |= PERM.W;
      if ((ap & 1) !== 0 && !noEl0) perm |= PERM.EL0;
      if (!PTE.PXN.test(d) && !noXp) perm |= PERM.XPRIV;
      if (!PTE.XN.test(d) && !noXu) perm |= PERM.XUNPRIV;
    }
    return { ok: true, leaf: { oa, size, perm, global: !stage2 && !PTE.NG.test(d), level } };
  }
  return { ok: false, fault: { id: EVT_ID.F_TRANSLATION, stage2 } };
}

/** True when `perm` allows the access (stage 1 checks EL0 for unprivileged accesses). */
export function permits(perm: number, stage: 1 | 2, write: boolean, exec: boolean, priv: boolean): boolean {
  if (stage === 1 && !priv && (perm & PERM.EL0) === 0) return false;
  if (write ? (perm & PERM.W) === 0 : (perm & PERM.R) === 0) return false;
  if (exec && (perm & (priv ? PERM.XPRIV : PERM.XUNPRIV)) === 0) return false;
  return true;
}
