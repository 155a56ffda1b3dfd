/**
 * VT-d register file: offsets, the bit layouts of every register, the capability options
 * and the reset table (reset value, writable bits, write-1-to-clear bits) in one place.
 */
import { addr, defineFieldLayout, num } from './vtd-bitfields.js';

/** Register offsets of a VT-d remapping unit (IVA/IOTLB and FRCD follow QEMU's placement). */
export const VTD_REG = {
  VER: 0x000,
  CAP: 0x008,
  ECAP: 0x010,
  GCMD: 0x018,
  GSTS: 0x01c,
  RTADDR: 0x020,
  CCMD: 0x028,
  FSTS: 0x034,
  FECTL: 0x038,
  FEDATA: 0x03c,
  FEADDR: 0x040,
  FEUADDR: 0x044,
  AFLOG: 0x058,
  PMEN: 0x064,
  IQH: 0x080,
  IQT: 0x088,
  IQA: 0x090,
  ICS: 0x09c,
  IECTL: 0x0a0,
  IEDATA: 0x0a4,
  IEADDR: 0x0a8,
  IEUADDR: 0x0ac,
  IQER: 0x0b0,
  IRTA: 0x0b8,
  PQH: 0x0c0,
  PQT: 0x0c8,
  PQA: 0x0d0,
  PRS: 0x0dc,
  PECTL: 0x0e0,
  PEDATA: 0x0e4,
  PEADDR: 0x0e8,
  PEUADDR: 0x0ec,
  /** IVA at ECAP.IRO × 16 (IRO = 0xF). */
  IVA: 0x0f0,
  /** IOTLB invalidate register at ECAP.IRO × 16 + 8. */
  IOTLB: 0x0f8,
  /** FRCD[0] at CAP.FRO × 16 (FRO = 0x22); FRCD[i] at + 16·i. */
  FRCD: 0x220,
} as const;

/** Size of the register window (one 4 KiB page). */
export const VTD_MMIO_SIZE = 0x1000;

/** CAP register (0x08). */
export const VtdCap = defineFieldLayout('CAP', 1, [
  num('ND', 0, 2, 0),
  num('AFL', 0, 3),
  num('RWBF', 0, 4),
  num('PLMR', 0, 5),
  num('PHMR', 0, 6),
  num('CM', 0, 7),
  num('SAGAW', 0, 12, 8),
  num('MGAW', 0, 21, 16),
  num('ZLR', 0, 22),
  num('FRO', 0, 33, 24),
  num('SLLPS', 0, 37, 34),
  num('PSI', 0, 39),
  num('NFR', 0, 47, 40),
  num('MAMV', 0, 53, 48),
  num('DWD', 0, 54),
  num('DRD', 0, 55),
  num('FS1GP', 0, 56),
  num('PI', 0, 59),
  num('FS5LP', 0, 60),
  num('ECMDS', 0, 61),
  num('ESIRTPS', 0, 62),
  num('ESRTPS', 0, 63),
]);

/** ECAP register (0x10), kernel macro names. */
export const VtdEcap = defineFieldLayout('ECAP', 1, [
  num('C', 0, 0),
  num('QI', 0, 1),
  num('DT', 0, 2),
  num('IR', 0, 3),
  num('EIM', 0, 4),
  num('PT', 0, 6),
  num('SC', 0, 7),
  num('IRO', 0, 17, 8),
  num('MHMV', 0, 23, 20),
  num('MTS', 0, 25),
  num('NEST', 0, 26),
  num('PRS', 0, 29),
  num('ERS', 0, 30),
  num('SRS', 0, 31),
  num('NWFS', 0, 33),
  num('EAFS', 0, 34),
  num('PSS', 0, 39, 35),
  num('PASID', 0, 40),
  num('DIT', 0, 41),
  num('PDS', 0, 42),
  num('SMTS', 0, 43),
  num('SLADS', 0, 45),
  num('SLTS', 0, 46),
  num('FLTS', 0, 47),
  num('SMPWC', 0, 48),
  num('RPS', 0, 49),
]);

/** GCMD (0x18) command bits and GSTS (0x1C) status bits share positions. */
export const VtdGcmd = defineFieldLayout('GCMD', 1, [
  num('CFI', 0, 23),
  num('SIRTP', 0, 24),
  num('IRE', 0, 25),
  num('QIE', 0, 26),
  num('WBF', 0, 27),
  num('EAFL', 0, 28),
  num('SFL', 0, 29),
  num('SRTP', 0, 30),
  num('TE', 0, 31),
]);

/** Bit values of GCMD / GSTS (TE = TES, SRTP = RTPS, …). */
export const VTD_GCMD = {
  CFI: 1 << 23,
  SIRTP: 1 << 24,
  IRE: 1 << 25,
  QIE: 1 << 26,
  WBF: 1 << 27,
  EAFL: 1 << 28,
  SFL: 1 << 29,
  SRTP: 1 << 30,
  TE: 2 ** 31,
} as const;

/** RTADDR (0x20): root table address and translation table mode (TTM 1 = scalable). */
export const VtdRtaddr = defineFieldLayout('RTADDR', 1, [num('TTM', 0, 11, 10), addr('RTA', 0, 63, 12)]);

/** CCMD (0x28): register-based context-cache invalidation. */
export const VtdCcmd = defineFieldLayout('CCMD', 1, [
  num('DID', 0, 15, 0),
  num('SID', 0, 31, 16),
  num('FM', 0, 33, 32),
  num('CAIG', 0, 60, 59),
  num('CIRG', 0, 62, 61),
  num('ICC', 0, 63),
]);

/** IVA (IRO×16): address / mask / hint of a register-based page-selective IOTLB invalidation. */
export const VtdIva = defineFieldLayout('IVA', 1, [num('AM', 0, 5, 0), num('IH', 0, 6), addr('ADDR', 0, 63, 12)]);

/** IOTLB register (IRO×16 + 8). */
export const VtdIotlbReg = defineFieldLayout('IOTLB_REG', 1, [
  num('DID', 0, 47, 32),
  num('DW', 0, 48),
  num('DR', 0, 49),
  num('IAIG', 0, 58, 57),
  num('IIRG', 0, 61, 60),
  num('IVT', 0, 63),
]);

/** FSTS (0x34). */
export const VtdFsts = defineFieldLayout('FSTS', 1, [
  num('PFO', 0, 0),
  num('PPF', 0, 1),
  num('IQE', 0, 4),
  num('ICE', 0, 5),
  num('ITE', 0, 6),
  num('FRI', 0, 15, 8),
]);

/** FSTS bit values. */
export const VTD_FSTS = { PFO: 1 << 0, PPF: 1 << 1, IQE: 1 << 4, ICE: 1 << 5, ITE: 1 << 6 } as const;

/** Event control registers (FECTL, IECTL, PECTL): interrupt mask and pending. */
export const VTD_ECTL = { IP: 1 << 30, IM: 2 ** 31 } as const;

/** IQA (0x90): queue base, descriptor width (1 = 256-bit), queue size (2^QS pages). */
export const VtdIqa = defineFieldLayout('IQA', 1, [num('QS', 0, 2, 0), num('DW', 0, 11), addr('IQA', 0, 63, 12)]);

/** IQH / IQT (0x80 / 0x88): descriptor index × 16 (bit 4 must be 0 with 256-bit descriptors). */
export const VtdIqPointer = defineFieldLayout('IQ_POINTER', 1, [num('QH', 0, 18, 4)]);

/** PQH / PQT (0xC0 / 0xC8): byte offset of a 32-byte page request descriptor. */
export const VtdPqPointer = defineFieldLayout('PQ_POINTER', 1, [num('PQ', 0, 18, 5)]);

/** IQER (0xB0): invalidation queue error record. */
export const VtdIqer = defineFieldLayout('IQER', 1, [num('IQEI', 0, 3, 0), num('ITESID', 0, 47, 32), num('ICESID', 0, 63, 48)]);

/** PQA (0xD0): page request queue base and size (2^PQS pages). */
export const VtdPqa = defineFieldLayout('PQA', 1, [num('PQS', 0, 2, 0), addr('PQA', 0, 63, 12)]);

/** PRS (0xDC) bit values. */
export const VTD_PRS = { PPR: 1 << 0, PRO: 1 << 1 } as const;

/** ICS (0x9C) bit values. */
export const VTD_ICS = { IWC: 1 << 0 } as const;

/** Capabilities of a modelled VT-d unit (each maps to CAP/ECAP bits). */
export interface VtdOptions {
  /** Host / guest address width in bits: 39, 48 or 57 (MGAW = width − 1; SAGAW = every level count ≤ it). Default 48. */
  readonly addressWidth?: 39 | 48 | 57;
  /** Scalable-mode translation (ECAP.SMTS). Default true. */
  readonly scalableMode?: boolean;
  /** First-stage translation (ECAP.FLTS). Default true. */
  readonly firstStage?: boolean;
  /** Second-stage translation in scalable mode (ECAP.SLTS). Default true. */
  readonly secondStage?: boolean;
  /** Nested translation (ECAP.NEST). Default true. */
  readonly nested?: boolean;
  /** Pass-through (ECAP.PT). Default true. */
  readonly passThrough?: boolean;
  /** PASID support (ECAP.PASID) with this many PASID bits (ECAP.PSS + 1); 0 disables. Default 20. */
  readonly pasidBits?: number;
  /** Page requests (ECAP.PRS). Default true. */
  readonly pageRequests?: boolean;
  /** Device-TLB / ATS (ECAP.DT). Default true. */
  readonly deviceTlb?: boolean;
  /** Snoop control (ECAP.SC). Default false. */
  readonly snoopControl?: boolean;
  /** Supervisor requests (ECAP.SRS). Default true. */
  readonly supervisorRequests?: boolean;
  /** Execute requests (ECAP.ERS). Default false. */
  readonly executeRequests?: boolean;
  /** Second-stage A/D (ECAP.SLADS) and scalable page-walk coherency (SMPWC). Default true. */
  readonly secondStageAccessDirty?: boolean;
  /** Page-request drain in wait descriptors (ECAP.PDS). Default true. */
  readonly pageRequestDrain?: boolean;
  /** Caching mode (CAP.CM). Default false. */
  readonly cachingMode?: boolean;
  /** Write-buffer flushing required (CAP.RWBF). Default false. */
  readonly rwbf?: boolean;
  /** First-stage 1 GiB pages (CAP.FS1GP). Default true. */
  readonly firstStage1G?: boolean;
  /** First-stage 5-level paging (CAP.FS5LP). Default: addressWidth = 57. */
  readonly firstStage5Level?: boolean;
  /** Second-stage large pages (CAP.SLLPS): bit0 2 MiB, bit1 1 GiB. Default 0b11. */
  readonly secondStageLargePages?: number;
  /** Max address-mask value of page-selective invalidation (CAP.MAMV). Default 18. */
  readonly mamv?: number;
  /** CAP.ND: 2^(4+2·ND) domain ids. Default 6 (16-bit DIDs). */
  readonly nd?: number;
  /** Number of fault recording registers (CAP.NFR + 1), 1..8. Default 4. */
  readonly faultRecords?: number;
  /** VER register value. Default 0x30 in scalable mode, else 0x10 (as QEMU). */
  readonly version?: number;
  /** Caches never evict. Default false. */
  readonly strict?: boolean;
  /** Entries per cache (context, PASID, IOTLB, device-TLB) before eviction. Default 1024. */
  readonly cacheCapacity?: number;
}

/** Options with every default applied. */
export type ResolvedVtdOptions = { readonly [K in keyof VtdOptions]-?: Exclude<VtdOptions[K], undefined> };

/** Thrown for an inconsistent option set. */
export class VtdOptionsError extends Error {
  /** Error name. */
  override readonly name = 'VtdOptionsError';
}

/** Applies defaults and checks ranges. */
export function resolveVtdOptions(o: VtdOptions = {}): ResolvedVtdOptions {
  const addressWidth = o.addressWidth ?? 48;
  if (![39, 48, 57].includes(addressWidth)) throw new VtdOptionsError(`addressWidth must be 39, 48 or 57, got ${addressWidth}`);
  const scalableMode = o.scalableMode ?? true;
  const faultRecords = o.faultRecords ?? 4;
  if (!Number.isInteger(faultRecords) || faultRecords < 1 || faultRecords > 8) {
    throw new VtdOptionsError(`faultRecords must be 1..8 (the register window holds 8), got ${faultRecords}`);
  }
  const pasidBits = o.pasidBits ?? 20;
  if (!Number.isInteger(pasidBits) || pasidBits < 0 || pasidBits > 20) throw new VtdOptionsError(`pasidBits must be 0..20, got ${pasidBits}`);
  const mamv = o.mamv ?? 18;
  if (!Number.isInteger(mamv) || mamv < 0 || mamv > 63) throw new VtdOptionsError(`mamv must be 0..63, got ${mamv}`);
  const nd = o.nd ?? 6;
  if (!Number.isInteger(nd) || nd < 0 || nd > 6) throw new VtdOptionsError(`nd must be 0..6, got ${nd}`);
  const cacheCapacity = o.cacheCapacity ?? 1024;
  if (!Number.isInteger(cacheCapacity) || cacheCapacity < 1) throw new VtdOptionsError(`cacheCapacity must be a positive integer, got ${cacheCapacity}`);
  return {
    addressWidth,
    scalableMode,
    firstStage: (o.firstStage ?? true) && scalableMode,
    secondStage: (o.secondStage ?? true) && scalableMode,
    nested: (o.nested ?? true) && scalableMode,
    passThrough: o.passThrough ?? true,
    pasidBits: scalableMode ? pasidBits : 0,
    pageRequests: (o.pageRequests ?? true) && scalableMode,
    deviceTlb: o.deviceTlb ?? true,
    snoopControl: o.snoopControl ?? false,
    supervisorRequests: o.supervisorRequests ?? true,
    executeRequests: o.executeRequests ?? false,
    secondStageAccessDirty: (o.secondStageAccessDirty ?? true) && scalableMode,
    pageRequestDrain: o.pageRequestDrain ?? true,
    cachingMode: o.cachingMode ?? false,
    rwbf: o.rwbf ?? false,
    firstStage1G: o.firstStage1G ?? true,
    firstStage5Level: o.firstStage5Level ?? addressWidth === 57,
    secondStageLargePages: o.secondStageLargePages ?? 0b11,
    mamv,
    nd,
    faultRecords,
    version: o.version ?? (scalableMode ? 0x30 : 0x10),
    strict: o.strict ?? false,
    cacheCapacity,
  };
}

/** The CAP value of an option set. */
export function vtdCapValue(o: ResolvedVtdOptions): bigint {
  const sagaw = o.addressWidth === 39 ? 0b0010 : o.addressWidth === 48 ? 0b0110 : 0b1110;
  return VtdCap.encode({
    ND: o.nd,
    RWBF: o.rwbf ? 1 : 0,
    CM: o.cachingMode ? 1 : 0,
    SAGAW: sagaw,
    MGAW: o.addressWidth - 1,
    FRO: VTD_REG.FRCD / 16,
    SLLPS: o.secondStageLargePages,
    PSI: 1,
    NFR: o.faultRecords - 1,
    MAMV: o.mamv,
    FS1GP: o.firstStage1G ? 1 : 0,
    FS5LP: o.firstStage5Level ? 1 : 0,
  })[0];
}

/** The ECAP value of an option set. */
export function vtdEcapValue(o: ResolvedVtdOptions): bigint {
  const sm = o.scalableMode;
  return VtdEcap.encode({
    C: 1,
    QI: 1,
    DT: o.deviceTlb ? 1 : 0,
    PT: o.passThrough ? 1 : 0,
    SC: o.snoopControl ? 1 : 0,
    IRO: VTD_REG.IVA / 16,
    NEST: o.nested ? 1 : 0,
    PRS: o.pageRequests ? 1 : 0,
    ERS: o.executeRequests ? 1 : 0,
    SRS: o.supervisorRequests ? 1 : 0,
    PSS: o.pasidBits > 0 ? o.pasidBits - 1 : 0,
    PASID: o.pasidBits > 0 ? 1 : 0,
    PDS: o.pageRequestDrain ? 1 : 0,
    SMTS: sm ? 1 : 0,
    SLADS: o.secondStageAccessDirty ? 1 : 0,
    SLTS: o.secondStage ? 1 : 0,
    FLTS: o.firstStage ? 1 : 0,
    SMPWC: o.secondStageAccessDirty ? 1 : 0,
    RPS: sm ? 1 : 0,
  })[0];
}

/** One register of the reset table. */
export interface VtdRegisterSpec {
  /** Register name. */
  readonly name: string;
  /** Offset in the window. */
  readonly offset: number;
  /** Width in bytes. */
  readonly width: 4 | 8;
  /** Reset value. */
  readonly reset: bigint;
  /** Bits software may write. */
  readonly rw: bigint;
  /** Bits software clears by writing 1. */
  readonly w1c: bigint;
  /** Write-only: reads return zero. */
  readonly writeOnly?: boolean;
}

/** The reset table: every register's reset value and write semantics, in one place. */
export function vtdRegisterTable(o: ResolvedVtdOptions): VtdRegisterSpec[] {
  const r = (name: string, offset: number, width: 4 | 8, reset: bigint, rw: bigint, w1c = 0n, writeOnly = false): VtdRegisterSpec => ({
    name,
    offset,
    width,
    reset,
    rw,
    w1c,
    writeOnly,
  });
  const table: VtdRegisterSpec[] = [
    r('VER', VTD_REG.VER, 4, BigInt(o.version), 0n),
    r('CAP', VTD_REG.CAP, 8, vtdCapValue(o), 0n),
    r('ECAP', VTD_REG.ECAP, 8, vtdEcapValue(o), 0n),
    r('GCMD', VTD_REG.GCMD, 4, 0n, 0xff80_0000n, 0n, true),
    r('GSTS', VTD_REG.GSTS, 4, 0n, 0n),
    r('RTADDR', VTD_REG.RTADDR, 8, 0n, 0xffff_ffff_ffff_fc00n),
    r('CCMD', VTD_REG.CCMD, 8, 0n, 0xe000_0003_ffff_ffffn),
    r('FSTS', VTD_REG.FSTS, 4, 0n, 0n, 0x71n),
    r('FECTL', VTD_REG.FECTL, 4, 0x8000_0000n, 0x8000_0000n),
    r('FEDATA', VTD_REG.FEDATA, 4, 0n, 0xffff_ffffn),
    r('FEADDR', VTD_REG.FEADDR, 4, 0n, 0xffff_fffcn),
    r('FEUADDR', VTD_REG.FEUADDR, 4, 0n, 0xffff_ffffn),
    r('AFLOG', VTD_REG.AFLOG, 8, 0n, 0n),
    r('PMEN', VTD_REG.PMEN, 4, 0n, 0n),
    r('IQH', VTD_REG.IQH, 8, 0n, 0n),
    r('IQT', VTD_REG.IQT, 8, 0n, 0x7fff0n),
    r('IQA', VTD_REG.IQA, 8, 0n, 0xffff_ffff_ffff_f807n),
    r('ICS', VTD_REG.ICS, 4, 0n, 0n, 0x1n),
    r('IECTL', VTD_REG.IECTL, 4, 0x8000_0000n, 0x8000_0000n),
    r('IEDATA', VTD_REG.IEDATA, 4, 0n, 0xffff_ffffn),
    r('IEADDR', VTD_REG.IEADDR, 4, 0n, 0xffff_fffcn),
    r('IEUADDR', VTD_REG.IEUADDR, 4, 0n, 0xffff_ffffn),
    r('IQER', VTD_REG.IQER, 8, 0n, 0n),
    r('IRTA', VTD_REG.IRTA, 8, 0n, 0xffff_ffff_ffff_f80fn),
    r('PQH', VTD_REG.PQH, 8, 0n, 0x7ffe0n),
    r('PQT', VTD_REG.PQT, 8, 0n, 0n),
    r('PQA', VTD_REG.PQA, 8, 0n, 0xffff_ffff_ffff_f007n),
    r('PRS', VTD_REG.PRS, 4, 0n, 0n, 0x3n),
    r('PECTL', VTD_REG.PECTL, 4, 0x8000_0000n, 0x8000_0000n),
    r('PEDATA', VTD_REG.PEDATA, 4, 0n, 0xffff_ffffn),
    r('PEADDR', VTD_REG.PEADDR, 4, 0n, 0xffff_fffcn),
    r('PEUADDR', VTD_REG.PEUADDR, 4, 0n, 0xffff_ffffn),
    r('IVA', VTD_REG.IVA, 8, 0n, 0xffff_ffff_ffff_f07fn),
    r('IOTLB', VTD_REG.IOTLB, 8, 0n, 0xb003_ffff_0000_0000n),
  ];
  for (let i = 0; i < o.faultRecords; i++) {
    table.push(r(`FRCD${i}_LO`, VTD_REG.FRCD + 16 * i, 8, 0n, 0n));
    table.push(r(`FRCD${i}_HI`, VTD_REG.FRCD + 16 * i + 8, 8, 0n, 0n, 1n << 63n));
  }
  return table;
}
