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
  /** nG = 0 (stage 1): matches every ASID. */
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

const OA_MASK = ((1n << 48n) - 1n) & ~0xfffn;

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
  let table = p.ttb;
  // Hierarchical permission limits (APTable, XNTable, PXNTable) of stage 1.
  let noWrite = false;
  let noEl0 = false;
  let noXp = false;
  let noXu = false;
  for (let level = p.startLevel; level <= 3; level++) {
    const shift = levelShift(level);
    const bits = level === p.startLevel ? p.iaBits - shift : 9;
    const idx = (ia >> BigInt(shift)) & ((1n << BigInt(bits)) - 1n);
    const t = tableAddress(table + idx * 8n);
    if (!t.ok) return t;
    if (!memory.isRam(t.pa, 8)) return { ok: false, fault: { id: EVT_ID.F_WALK_EABT, fetchAddr: t.pa, stage2 } };
    const d = [memory.read64(t.pa)];
    if (ARM_PTE.get(d, 'VALID') === 0n) return { ok: false, fault: { id: EVT_ID.F_TRANSLATION, stage2 } };
    const isTable = ARM_PTE.get(d, 'TABLE') === 1n;
    if (level < 3 && isTable) {
      table = d[0]! & OA_MASK;
      if (table >> BigInt(p.oaBits) !== 0n) return { ok: false, fault: { id: EVT_ID.F_ADDR_SIZE, stage2 } };
      if (!stage2) {
        const apt = ARM_PTE.num(d, 'APTABLE');
        noWrite ||= (apt & 2) !== 0;
        noEl0 ||= (apt & 1) !== 0;
        noXp ||= ARM_PTE.get(d, 'PXNTABLE') === 1n;
        noXu ||= ARM_PTE.get(d, 'XNTABLE') === 1n;
      }
      continue;
    }
    // Level 3 needs 0b11 (0b01 is reserved); a 4 KiB granule has no level-0 blocks.
    if ((level === 3 && !isTable) || level === 0) return { ok: false, fault: { id: EVT_ID.F_TRANSLATION, stage2 } };
    const size = 1n << BigInt(shift);
    const oa = d[0]! & OA_MASK & ~(size - 1n);
    if (oa >> BigInt(p.oaBits) !== 0n) return { ok: false, fault: { id: EVT_ID.F_ADDR_SIZE, stage2 } };
    if (ARM_PTE.get(d, 'AF') === 0n && !p.affd) return { ok: false, fault: { id: EVT_ID.F_ACCESS, stage2 } };
    const ap = ARM_PTE.num(d, 'AP');
    let perm: number;
    if (stage2) {
      // S2AP: bit 6 read, bit 7 write; XN[54:53] with FEAT_XNX encoding.
      const xn = Number((d[0]! >> 53n) & 3n);
      perm = PERM.EL0 | (ap & 1 ? PERM.R : 0) | (ap & 2 ? PERM.W : 0);
      if (xn === 0 || xn === 3) perm |= PERM.XPRIV;
      if (xn === 0 || xn === 1) perm |= PERM.XUNPRIV;
    } else {
      perm = PERM.R;
      if ((ap & 2) === 0 && !noWrite) perm |= PERM.W;
      if ((ap & 1) !== 0 && !noEl0) perm |= PERM.EL0;
      if (ARM_PTE.get(d, 'PXN') === 0n && !noXp) perm |= PERM.XPRIV;
      if (ARM_PTE.get(d, 'XN') === 0n && !noXu) perm |= PERM.XUNPRIV;
    }
    return { ok: true, leaf: { oa, size, perm, global: stage2 || ARM_PTE.get(d, 'NG') === 0n, level } };
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
