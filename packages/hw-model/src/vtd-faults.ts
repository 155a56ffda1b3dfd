/**
 * VT-d fault reasons (the numeric code space of the kernel's dmar.c tables) and the
 * fault recording register (FRCD) layout.
 */
import { addr, defineFieldLayout, num } from './vtd-bitfields.js';

/** Fault reason codes the model reports, by name (legacy 0x1–0xE, scalable 0x38–0x87). */
export const VTD_FAULT = {
  ROOT_NOT_PRESENT: 0x1,
  CONTEXT_NOT_PRESENT: 0x2,
  CONTEXT_INVALID: 0x3,
  BEYOND_MGAW: 0x4,
  PTE_WRITE: 0x5,
  PTE_READ: 0x6,
  NEXT_PTR_INVALID: 0x7,
  ROOT_ADDR_INVALID: 0x8,
  CONTEXT_PTR_INVALID: 0x9,
  ROOT_RESERVED: 0xa,
  CONTEXT_RESERVED: 0xb,
  PTE_RESERVED: 0xc,
  TRANSLATION_BLOCKED: 0xd,
  INTERRUPT_ADDRESS: 0xe,
  SM_ROOT_ACCESS: 0x38,
  SM_ROOT_NOT_PRESENT: 0x39,
  SM_ROOT_RESERVED: 0x3a,
  SM_CONTEXT_ACCESS: 0x40,
  SM_CONTEXT_NOT_PRESENT: 0x41,
  SM_CONTEXT_RESERVED: 0x42,
  SM_CONTEXT_INVALID: 0x43,
  SM_DTE_CLEAR: 0x44,
  SM_PASIDE_CLEAR: 0x45,
  SM_PASID_TOO_LARGE: 0x46,
  SM_PRE_CLEAR: 0x47,
  SM_PASID_DIR_ACCESS: 0x50,
  SM_PASID_DIR_NOT_PRESENT: 0x51,
  SM_PASID_DIR_RESERVED: 0x52,
  SM_PASID_ACCESS: 0x58,
  SM_PASID_NOT_PRESENT: 0x59,
  SM_PASID_RESERVED: 0x5a,
  SM_PASID_INVALID: 0x5b,
  SM_ERE_CLEAR: 0x5c,
  SM_SRE_CLEAR: 0x5d,
  SM_FS_ACCESS: 0x70,
  SM_FS_NOT_PRESENT: 0x71,
  SM_FS_RESERVED: 0x72,
  SM_FS_ROOT_INVALID: 0x73,
  SM_FS_BEYOND_MGAW_NESTED: 0x74,
  SM_FS_ROOT_READ_NESTED: 0x75,
  SM_FS_READ_NESTED: 0x76,
  SM_FS_WRITE_NESTED: 0x77,
  SM_SS_ACCESS: 0x78,
  SM_SS_NOT_PRESENT: 0x79,
  SM_SS_RESERVED: 0x7a,
  SM_SS_ROOT_INVALID: 0x7b,
  SM_NON_CANONICAL: 0x80,
  SM_US_CLEAR: 0x81,
  SM_NO_EXECUTE: 0x82,
  SM_BEYOND_MAX: 0x83,
  SM_NO_WRITE: 0x85,
  SM_NO_READ: 0x86,
  SM_INTERRUPT_ADDRESS: 0x87,
} as const;

/** A fault reason name. */
export type VtdFaultName = keyof typeof VTD_FAULT;

const NAMES = new Map<number, VtdFaultName>(Object.entries(VTD_FAULT).map(([k, v]) => [v, k as VtdFaultName]));

/** The name of a fault reason code (`UNKNOWN_0x..` for codes the model never reports). */
export function vtdFaultName(code: number): string {
  return NAMES.get(code) ?? `UNKNOWN_0x${code.toString(16)}`;
}

/**
 * Faults that FPD (fault processing disable, in the context, PASID-directory or PASID
 * entry) suppresses; root-level and table-access errors are always recorded.
 */
export const VTD_QUALIFIED_FAULTS: ReadonlySet<number> = new Set<number>([
  VTD_FAULT.CONTEXT_NOT_PRESENT,
  VTD_FAULT.CONTEXT_INVALID,
  VTD_FAULT.BEYOND_MGAW,
  VTD_FAULT.PTE_WRITE,
  VTD_FAULT.PTE_READ,
  VTD_FAULT.NEXT_PTR_INVALID,
  VTD_FAULT.PTE_RESERVED,
  VTD_FAULT.TRANSLATION_BLOCKED,
  VTD_FAULT.INTERRUPT_ADDRESS,
  VTD_FAULT.SM_CONTEXT_NOT_PRESENT,
  VTD_FAULT.SM_CONTEXT_INVALID,
  VTD_FAULT.SM_PASID_DIR_NOT_PRESENT,
  VTD_FAULT.SM_PASID_NOT_PRESENT,
  VTD_FAULT.SM_PASID_INVALID,
  VTD_FAULT.SM_FS_ACCESS,
  VTD_FAULT.SM_FS_NOT_PRESENT,
  VTD_FAULT.SM_FS_RESERVED,
  VTD_FAULT.SM_FS_ROOT_INVALID,
  VTD_FAULT.SM_FS_BEYOND_MGAW_NESTED,
  VTD_FAULT.SM_FS_ROOT_READ_NESTED,
  VTD_FAULT.SM_FS_READ_NESTED,
  VTD_FAULT.SM_FS_WRITE_NESTED,
  VTD_FAULT.SM_SS_NOT_PRESENT,
  VTD_FAULT.SM_SS_RESERVED,
  VTD_FAULT.SM_NON_CANONICAL,
  VTD_FAULT.SM_US_CLEAR,
  VTD_FAULT.SM_NO_EXECUTE,
  VTD_FAULT.SM_BEYOND_MAX,
  VTD_FAULT.SM_NO_WRITE,
  VTD_FAULT.SM_NO_READ,
  VTD_FAULT.SM_INTERRUPT_ADDRESS,
]);

/** Fault recording register FRCD[i] (128 bit). T: 0 = write, 1 = read. F is write-1-to-clear. */
export const VtdFaultRecord = defineFieldLayout('frcd', 2, [
  addr('FI', 0, 63, 12),
  num('SID', 1, 15, 0),
  num('PRIV', 1, 29),
  num('EXE', 1, 30),
  num('PP', 1, 31),
  num('FR', 1, 39, 32),
  num('PV', 1, 59, 40),
  num('AT', 1, 61, 60),
  num('T', 1, 62),
  num('F', 1, 63),
]);
