/**
 * VT-d page-table walkers: second stage (VT-d native format, 3/4/5 levels) and first stage
 * (x86-64 4/5-level format), the latter optionally nested, i.e. every first-stage table
 * address is a guest-physical address translated through the second stage.
 */
import { readable, type StructureMemory } from './vtd-bitfields.js';
import { VTD_FAULT } from './vtd-faults.js';
import { aboveWidthMask, VtdFsPte, VtdSsPte } from './vtd-tables.js';

/** A successful walk: the leaf page and the permissions accumulated over every level. */
export interface VtdPageWalk {
  /** The walk reached a leaf. */
  readonly ok: true;
  /** Output page base. */
  readonly pa: bigint;
  /** Page size. */
  readonly size: bigint;
  /** Read permitted (second stage: R on every level; first stage: always). */
  readonly read: boolean;
  /** Write permitted on every level. */
  readonly write: boolean;
  /** Execute permitted. */
  readonly exec: boolean;
  /** User access permitted (first stage U/S on every level). */
  readonly user: boolean;
  /** First-stage G bit of the leaf. */
  readonly global: boolean;
  /** Physical address of the leaf entry. */
  readonly leafAddr: bigint;
  /** The leaf entry as read (after the accessed-bit update). */
  readonly leaf: bigint;
  /** The leaf entry may be written back (nested: the second stage grants write on its table page). */
  readonly leafWritable: boolean;
}

type Permissions = Pick<VtdPageWalk, 'read' | 'write' | 'exec' | 'user' | 'global'>;

/** The result of a walk that reached a leaf of size 2^shift whose address field is `next`. */
function leafWalk(next: bigint, shift: bigint, perms: Permissions, leafAddr: bigint, leaf: bigint, leafWritable: boolean): VtdPageWalk {
  const size = 1n << shift;
  return { ok: true, pa: next & ~(size - 1n), size, ...perms, leafAddr, leaf, leafWritable };
}

/** Why a second-stage walk failed. */
export type VtdSsFailure = 'beyond-width' | 'root-invalid' | 'access' | 'not-present' | 'reserved';

/** A failed second-stage walk. */
export interface VtdSsWalkFailure {
  /** The walk failed. */
  readonly ok: false;
  /** The condition. */
  readonly why: VtdSsFailure;
  /** Level at which it was detected (levels count down to 1). */
  readonly level: number;
}

/** Parameters of a second-stage walk. */
export interface VtdSsWalkParams {
  /** Memory the tables live in. */
  readonly mem: StructureMemory;
  /** Host address width: address bits at or above it are reserved. */
  readonly haw: number;
  /** Root table (SSPTPTR). */
  readonly root: bigint;
  /** Levels (AW + 2). */
  readonly levels: number;
  /** CAP.SLLPS: bit0 2 MiB, bit1 1 GiB leaves allowed. */
  readonly largePages: number;
  /** SSADE: hardware sets A on walked entries and D on written leaves. */
  readonly accessDirty: boolean;
}

const MASK9 = 511n;
const SS_RES = VtdSsPte.reservedMasks[0];
const SS = VtdSsPte.f;
const FS = VtdFsPte.f;

/** Walks the second-stage tables for `gpa`. */
export function walkSecondStage(p: VtdSsWalkParams, gpa: bigint): VtdPageWalk | VtdSsWalkFailure {
  const width = 12 + 9 * p.levels;
  if (gpa >> BigInt(width) !== 0n) return { ok: false, why: 'beyond-width', level: p.levels };
  if ((p.root & aboveWidthMask(p.haw)) !== 0n || p.root >> 52n !== 0n) return { ok: false, why: 'root-invalid', level: p.levels };
  const above = aboveWidthMask(p.haw);
  let table = p.root;
  let read = true;
  let write = true;
  for (let level: number = p.levels; level >= 1; level--) {
    const shift = BigInt(12 + 9 * (level - 1));
    const pteAddr = table + ((gpa >> shift) & MASK9) * 8n;
    if (!readable(p.mem, pteAddr, 8)) return { ok: false, why: 'access', level };
    let pte = p.mem.read64(pteAddr);
    if (SS.R.of(pte) === 0 && SS.W.of(pte) === 0) return { ok: false, why: 'not-present', level };
    const ps = SS.PS.of(pte) === 1 && level > 1;
    const leaf = level === 1 || ps;
    let reserved = (pte & SS_RES) !== 0n || (pte & above) !== 0n;
    if (ps && (level > 3 || (level === 3 && (p.largePages & 2) === 0) || (level === 2 && (p.largePages & 1) === 0))) reserved = true;
    if (!leaf && SS.SNP.of(pte) === 1) reserved = true;
    if (ps && (pte & ((1n << shift) - 1n) & ~0xfffn) !== 0n) reserved = true;
    if (reserved) return { ok: false, why: 'reserved', level };
    read &&= SS.R.of(pte) === 1;
    write &&= SS.W.of(pte) === 1;
    if (p.accessDirty && SS.A.of(pte) === 0) {
      pte |= SS.A.mask;
      p.mem.write64(pteAddr, pte);
    }
    const next = SS.ADDR.of(pte);
    if (leaf) return leafWalk(next, shift, { read, write, exec: read, user: true, global: false }, pteAddr, pte, true);
    table = next;
  }
  /* c8 ignore next */
  return { ok: false, why: 'not-present', level: 1 };
}

/** Parameters of a first-stage walk. */
export interface VtdFsWalkParams {
  /** Memory the tables live in. */
  readonly mem: StructureMemory;
  /** Host address width. */
  readonly haw: number;
  /** Root table (FSPTPTR): a host address, or a guest-physical one when `stage2` is given. */
  readonly root: bigint;
  /** 4 or 5 levels (FSPM). */
  readonly levels: 4 | 5;
  /** 1 GiB leaves allowed (CAP.FS1GP). */
  readonly allow1G: boolean;
  /** Nested translation: every table address is translated through this second stage. */
  readonly stage2?: VtdSsWalkParams;
}

/** A failed first-stage walk, with its scalable-mode fault reason. */
export interface VtdFsWalkFailure {
  /** The walk failed. */
  readonly ok: false;
  /** Fault reason code. */
  readonly code: number;
}

function canonical(iova: bigint, levels: 4 | 5): boolean {
  const bits = levels === 4 ? 48n : 57n;
  const top = iova >> (bits - 1n);
  return top === 0n || top === (1n << (65n - bits)) - 1n;
}

const SS_FAILURE_CODE: { readonly [K in VtdSsFailure]: number } = {
  'beyond-width': VTD_FAULT.SM_BEYOND_MAX,
  'root-invalid': VTD_FAULT.SM_SS_ROOT_INVALID,
  access: VTD_FAULT.SM_SS_ACCESS,
  'not-present': VTD_FAULT.SM_SS_NOT_PRESENT,
  reserved: VTD_FAULT.SM_SS_RESERVED,
};

/**
 * The scalable-mode fault reason of a failed second-stage walk. A first-stage table
 * address beyond the second stage's width (nested walks) is 0x74 rather than 0x83.
 */
export function secondStageFaultCode(why: VtdSsFailure, firstStageTable: boolean): number {
  return firstStageTable && why === 'beyond-width' ? VTD_FAULT.SM_FS_BEYOND_MGAW_NESTED : SS_FAILURE_CODE[why];
}

/** Result of translating a first-stage table address through the second stage. */
type TableHpa = { ok: true; hpa: bigint; writable: boolean } | VtdFsWalkFailure;

function tableAddress(p: VtdFsWalkParams, gpa: bigint, isRoot: boolean): TableHpa {
  if (p.stage2 === undefined) {
    return { ok: true, hpa: gpa, writable: true };
  }
  const w = walkSecondStage(p.stage2, gpa);
  if (!w.ok) return { ok: false, code: secondStageFaultCode(w.why, true) };
  if (!w.read) return { ok: false, code: isRoot ? VTD_FAULT.SM_FS_ROOT_READ_NESTED : VTD_FAULT.SM_FS_READ_NESTED };
  return { ok: true, hpa: w.pa | (gpa & (w.size - 1n)), writable: w.write };
}

/** Walks the first-stage tables for `iova`, setting accessed bits on every entry walked. */
export function walkFirstStage(p: VtdFsWalkParams, iova: bigint): VtdPageWalk | VtdFsWalkFailure {
  if (!canonical(iova, p.levels)) return { ok: false, code: VTD_FAULT.SM_NON_CANONICAL };
  const nested = p.stage2 !== undefined;
  const above = nested ? 0n : aboveWidthMask(p.haw);
  if ((p.root & above) !== 0n) return { ok: false, code: VTD_FAULT.SM_FS_ROOT_INVALID };
  let tableGpa = p.root;
  let write = true;
  let user = true;
  let exec = true;
  for (let level: number = p.levels; level >= 1; level--) {
    const t = tableAddress(p, tableGpa, level === p.levels);
    if (!t.ok) return t;
    const shift = BigInt(12 + 9 * (level - 1));
    const pteAddr = t.hpa + ((iova >> shift) & MASK9) * 8n;
    // A first-stage table that is not memory: 0x73 for the root table, 0x70 below it.
    if (!readable(p.mem, pteAddr, 8)) return { ok: false, code: level === p.levels ? VTD_FAULT.SM_FS_ROOT_INVALID : VTD_FAULT.SM_FS_ACCESS };
    let pte = p.mem.read64(pteAddr);
    if (FS.P.of(pte) === 0) return { ok: false, code: VTD_FAULT.SM_FS_NOT_PRESENT };
    const ps = FS.PS.of(pte) === 1 && level > 1;
    const leaf = level === 1 || ps;
    let reserved = (pte & above) !== 0n;
    if (ps && (level > 3 || (level === 3 && !p.allow1G))) reserved = true;
    // Large leaves keep PAT in bit 12; the address bits below the page size must be zero.
    if (ps && (pte & ((1n << shift) - 1n) & ~0x1fffn) !== 0n) reserved = true;
    if (reserved) return { ok: false, code: VTD_FAULT.SM_FS_RESERVED };
    write &&= FS.RW.of(pte) === 1;
    user &&= FS.US.of(pte) === 1;
    exec &&= FS.XD.of(pte) === 0;
    if (FS.A.of(pte) === 0) {
      // Setting A writes the entry: nested, that needs second-stage write permission.
      if (!t.writable) return { ok: false, code: VTD_FAULT.SM_FS_WRITE_NESTED };
      pte |= FS.A.mask;
      p.mem.write64(pteAddr, pte);
    }
    const next = FS.ADDR.of(pte);
    if (leaf) return leafWalk(next, shift, { read: true, write, exec, user, global: FS.G.of(pte) === 1 }, pteAddr, pte, t.writable);
    tableGpa = next;
  }
  /* c8 ignore next */
  return { ok: false, code: VTD_FAULT.SM_FS_NOT_PRESENT };
}
