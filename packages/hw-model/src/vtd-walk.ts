/**
 * VT-d page-table walkers: second stage (VT-d native format, 3/4/5 levels) and first stage
 * (x86-64 4/5-level format), the latter optionally nested, i.e. every first-stage table
 * address is a guest-physical address translated through the second stage.
 */
import { offsetIn, pageOf, POW2, TWO_32 } from './address.js';
import { halfWordField, type HalfWordField } from './bitfield.js';
import type { Word64 } from './memory.js';
import { readWord, writeWord, type StructureMemory } from './vtd-bitfields.js';
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

/** Descriptor fields as seen from the 32-bit halves of an entry (from the layouts). */
const SSH = {
  R: halfWordField(VtdSsPte.raw, 'R'),
  W: halfWordField(VtdSsPte.raw, 'W'),
  PS: halfWordField(VtdSsPte.raw, 'PS'),
  A: halfWordField(VtdSsPte.raw, 'A'),
  SNP: halfWordField(VtdSsPte.raw, 'SNP'),
  ADDR: halfWordField(VtdSsPte.raw, 'ADDR'),
};
const FSH = {
  P: halfWordField(VtdFsPte.raw, 'P'),
  RW: halfWordField(VtdFsPte.raw, 'RW'),
  US: halfWordField(VtdFsPte.raw, 'US'),
  A: halfWordField(VtdFsPte.raw, 'A'),
  PS: halfWordField(VtdFsPte.raw, 'PS'),
  G: halfWordField(VtdFsPte.raw, 'G'),
  XD: halfWordField(VtdFsPte.raw, 'XD'),
  ADDR: halfWordField(VtdFsPte.raw, 'ADDR'),
};
const SS_RES_LO = Number(VtdSsPte.reservedMasks[0]! & 0xffff_ffffn);
const SS_RES_HI = Number(VtdSsPte.reservedMasks[0]! >> 32n);
/** Pages (4 KiB) under one entry of each level (level 1 maps one page). */
const LEVEL_PAGES = [0, 1, 2 ** 9, 2 ** 18, 2 ** 27, 2 ** 36] as const;

/** The ADDR field (bits 51:12, as on both formats) of an entry's halves: below 2^52, exact. */
function entryAddress(lo: number, hi: number, f: HalfWordField): number {
  return (hi & f.hi) * TWO_32 + ((lo & f.lo) >>> 0);
}

/**
 * @internal A leaf reached by a walk in Numbers (VT-d output addresses are at most 52 bits,
 * exact in a double; see {@link VtdPageWalk} for the fields).
 */
export interface VtdLeafNumbers extends Pick<VtdPageWalk, 'ok' | 'read' | 'write' | 'exec' | 'user' | 'global' | 'leafWritable'> {
  /** Output page base. */
  readonly pa: number;
  /** Page size. */
  readonly size: number;
  /** Address of the leaf entry. */
  readonly leafAddr: number;
  /** The leaf entry as read (after the accessed-bit update): bits 31:0. */
  readonly leafLo: number;
  /** Bits 63:32 of the leaf entry. */
  readonly leafHi: number;
}

/** The {@link VtdPageWalk} (BigInt) form of a leaf. */
function bigLeaf(w: VtdLeafNumbers): VtdPageWalk {
  const { read, write, exec, user, global } = w;
  return { ok: true, pa: BigInt(w.pa), size: BigInt(w.size), read, write, exec, user, global, leafAddr: BigInt(w.leafAddr), leaf: (BigInt(w.leafHi) << 32n) | BigInt(w.leafLo), leafWritable: w.leafWritable };
}

/** The entry being examined (one walk reads at a time; nested second-stage walks complete before the next read). */
const desc: Word64 = { lo: 0, hi: 0 };

/**
 * @internal Walks the second-stage tables for the 4 KiB page `pn` of a GPA (a Number page
 * number is exact for every 64-bit address).
 */
export function walkSecondStagePage(p: VtdSsWalkParams, pn: number): VtdLeafNumbers | VtdSsWalkFailure {
  const width = 12 + 9 * p.levels;
  if (pn < 0 || pn >= POW2[width - 12]!) return { ok: false, why: 'beyond-width', level: p.levels };
  // Root bits at or above the host address width (or above bit 51) are reserved.
  const haw = Math.min(p.haw, 52);
  if (p.root >= ROOT_LIMITS[haw]!) return { ok: false, why: 'root-invalid', level: p.levels };
  const addrLimit = POW2[haw]!;
  let table = Number(p.root);
  let read = true;
  let write = true;
  for (let level: number = p.levels; level >= 1; level--) {
    const pages = LEVEL_PAGES[level]!;
    const pteAddr = table + (Math.floor(pn / pages) & 511) * 8;
    if (!readWord(p.mem, pteAddr, desc)) return { ok: false, why: 'access', level };
    let lo = desc.lo;
    const hi = desc.hi;
    if ((lo & SSH.R.lo) === 0 && (lo & SSH.W.lo) === 0) return { ok: false, why: 'not-present', level };
    const ps = (lo & SSH.PS.lo) !== 0 && level > 1;
    const leaf = level === 1 || ps;
    const next = entryAddress(lo, hi, SSH.ADDR);
    let reserved = (lo & SS_RES_LO) !== 0 || (hi & SS_RES_HI) !== 0 || next >= addrLimit;
    if (ps && (level > 3 || (level === 3 && (p.largePages & 2) === 0) || (level === 2 && (p.largePages & 1) === 0))) reserved = true;
    if (!leaf && (lo & SSH.SNP.lo) !== 0) reserved = true;
    // A large leaf's address bits below its size must be zero.
    if (ps && next % (pages * 4096) !== 0) reserved = true;
    if (reserved) return { ok: false, why: 'reserved', level };
    read &&= (lo & SSH.R.lo) !== 0;
    write &&= (lo & SSH.W.lo) !== 0;
    if (p.accessDirty && (lo & SSH.A.lo) === 0) {
      lo = (lo | SSH.A.lo) >>> 0;
      writeWord(p.mem, pteAddr, lo, hi);
    }
    if (leaf) return { ok: true, pa: next, size: pages * 4096, read, write, exec: read, user: true, global: false, leafAddr: pteAddr, leafLo: lo, leafHi: hi, leafWritable: true };
    table = next;
  }
  /* c8 ignore next */
  return { ok: false, why: 'not-present', level: 1 };
}

/** Root pointers at or above 2^haw (haw ≤ 52) are invalid: the limits as BigInt, compared without allocating. */
const ROOT_LIMITS = Array.from({ length: 53 }, (_, n) => 1n << BigInt(n));

/** Walks the second-stage tables for `gpa`. */
export function walkSecondStage(p: VtdSsWalkParams, gpa: bigint): VtdPageWalk | VtdSsWalkFailure {
  const w = walkSecondStagePage(p, pageOf(gpa));
  return w.ok ? bigLeaf(w) : w;
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

/** The 48-bit (4-level) or 57-bit (5-level) canonical form: bits above the top one copy it. */
function canonicalPage(pn: number, levels: 4 | 5): boolean {
  const bits = levels === 4 ? 48 : 57;
  const top = Math.floor(pn / POW2[bits - 13]!);
  return top === 0 || top === POW2[65 - bits]! - 1;
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

/**
 * The host address of first-stage table `gpa` (a Number: an ADDR field, or a 4 KiB-aligned
 * root, both exact), or a fault; `writable` tells whether the second stage lets the walk set A.
 */
function tableAddress(p: VtdFsWalkParams, gpa: number, isRoot: boolean): number | VtdFsWalkFailure {
  if (p.stage2 === undefined) {
    tableWritable = true;
    return gpa;
  }
  const w = walkSecondStagePage(p.stage2, Math.floor(gpa / 4096));
  if (!w.ok) return { ok: false, code: secondStageFaultCode(w.why, true) };
  if (!w.read) return { ok: false, code: isRoot ? VTD_FAULT.SM_FS_ROOT_READ_NESTED : VTD_FAULT.SM_FS_READ_NESTED };
  tableWritable = w.write;
  return w.pa + offsetIn(gpa, w.size);
}
/** Second-stage write permission of the table {@link tableAddress} last returned. */
let tableWritable = true;

/**
 * @internal Walks the first-stage tables for the 4 KiB page `pn` of an IOVA, setting
 * accessed bits on every entry walked.
 */
export function walkFirstStagePage(p: VtdFsWalkParams, pn: number): VtdLeafNumbers | VtdFsWalkFailure {
  if (!canonicalPage(pn, p.levels)) return { ok: false, code: VTD_FAULT.SM_NON_CANONICAL };
  const nested = p.stage2 !== undefined;
  const above = nested ? 0n : aboveWidthMask(p.haw);
  if ((p.root & above) !== 0n) return { ok: false, code: VTD_FAULT.SM_FS_ROOT_INVALID };
  // Non-nested, entry addresses at or above the host width are reserved; nested, the second stage bounds them.
  const addrLimit = nested ? POW2[52]! : POW2[Math.min(p.haw, 52)]!;
  let tableGpa = Number(p.root);
  let write = true;
  let user = true;
  let exec = true;
  for (let level: number = p.levels; level >= 1; level--) {
    const t = tableAddress(p, tableGpa, level === p.levels);
    if (typeof t !== 'number') return t;
    const writable = tableWritable;
    const pages = LEVEL_PAGES[level]!;
    const pteAddr = t + (Math.floor(pn / pages) & 511) * 8;
    // A first-stage table that is not memory: 0x73 for the root table, 0x70 below it.
    if (!readWord(p.mem, pteAddr, desc)) return { ok: false, code: level === p.levels ? VTD_FAULT.SM_FS_ROOT_INVALID : VTD_FAULT.SM_FS_ACCESS };
    let lo = desc.lo;
    const hi = desc.hi;
    if ((lo & FSH.P.lo) === 0) return { ok: false, code: VTD_FAULT.SM_FS_NOT_PRESENT };
    const ps = (lo & FSH.PS.lo) !== 0 && level > 1;
    const leaf = level === 1 || ps;
    const next = entryAddress(lo, hi, FSH.ADDR);
    let reserved = next >= addrLimit;
    if (ps && (level > 3 || (level === 3 && !p.allow1G))) reserved = true;
    // Large leaves keep PAT in bit 12; the address bits below the page size must be zero.
    if (ps && (next % (pages * 4096)) - ((lo & 0x1000) >>> 0) !== 0) reserved = true;
    if (reserved) return { ok: false, code: VTD_FAULT.SM_FS_RESERVED };
    write &&= (lo & FSH.RW.lo) !== 0;
    user &&= (lo & FSH.US.lo) !== 0;
    exec &&= (hi & FSH.XD.hi) === 0;
    if ((lo & FSH.A.lo) === 0) {
      // Setting A writes the entry: nested, that needs second-stage write permission.
      if (!writable) return { ok: false, code: VTD_FAULT.SM_FS_WRITE_NESTED };
      lo = (lo | FSH.A.lo) >>> 0;
      writeWord(p.mem, pteAddr, lo, hi);
    }
    if (leaf) {
      const size = pages * 4096;
      return { ok: true, pa: Math.floor(next / size) * size, size, read: true, write, exec, user, global: (lo & FSH.G.lo) !== 0, leafAddr: pteAddr, leafLo: lo, leafHi: hi, leafWritable: writable };
    }
    tableGpa = next;
  }
  /* c8 ignore next */
  return { ok: false, code: VTD_FAULT.SM_FS_NOT_PRESENT };
}

/** Walks the first-stage tables for `iova`, setting accessed bits on every entry walked. */
export function walkFirstStage(p: VtdFsWalkParams, iova: bigint): VtdPageWalk | VtdFsWalkFailure {
  const w = walkFirstStagePage(p, pageOf(iova));
  return w.ok ? bigLeaf(w) : w;
}
