/**
 * SMMUv3 register offsets and every in-memory / register structure as bit-field data
 * (reference/smmuv3.md §1–4). Shared by the SMMUv3 model, the Tegra241 CMDQV and drivers.
 */
import { defineBitLayout, type BitFieldSpec, type BitLayout } from './bitfield.js';

/** A layout of any field list. */
type AnyBitLayout = BitLayout<readonly BitFieldSpec[]>;

/** SMMUv3 register offsets (page 0; page 1 at +0x10000 aliases page 0). */
export const SMMU_REG = {
  IDR0: 0x00,
  IDR1: 0x04,
  IDR2: 0x08,
  IDR3: 0x0c,
  IDR4: 0x10,
  IDR5: 0x14,
  IIDR: 0x18,
  AIDR: 0x1c,
  CR0: 0x20,
  CR0ACK: 0x24,
  CR1: 0x28,
  CR2: 0x2c,
  STATUSR: 0x40,
  GBPA: 0x44,
  IRQ_CTRL: 0x50,
  IRQ_CTRLACK: 0x54,
  GERROR: 0x60,
  GERRORN: 0x64,
  GERROR_IRQ_CFG0: 0x68,
  GERROR_IRQ_CFG1: 0x70,
  GERROR_IRQ_CFG2: 0x74,
  STRTAB_BASE: 0x80,
  STRTAB_BASE_CFG: 0x88,
  CMDQ_BASE: 0x90,
  CMDQ_PROD: 0x98,
  CMDQ_CONS: 0x9c,
  EVTQ_BASE: 0xa0,
  EVTQ_PROD: 0xa8,
  EVTQ_CONS: 0xac,
  EVTQ_IRQ_CFG0: 0xb0,
  EVTQ_IRQ_CFG1: 0xb8,
  EVTQ_IRQ_CFG2: 0xbc,
  PRIQ_BASE: 0xc0,
  PRIQ_PROD: 0xc8,
  PRIQ_CONS: 0xcc,
  PRIQ_IRQ_CFG0: 0xd0,
  PRIQ_IRQ_CFG1: 0xd8,
  PRIQ_IRQ_CFG2: 0xdc,
} as const;

/** Size of the SMMUv3 register frame (two 64 KiB pages). */
export const SMMU_MMIO_SIZE = 0x20000n;
/** Offset of register page 1 (EVTQ/PRIQ PROD/CONS are used there by Linux). */
export const SMMU_PAGE1 = 0x10000;

/** IDR0 fields. */
export const SMMU_IDR0 = defineBitLayout('IDR0', 1, [
  ['S2P', 0, 0, 0],
  ['S1P', 0, 1, 1],
  ['TTF', 0, 3, 2],
  ['COHACC', 0, 4, 4],
  ['BTM', 0, 5, 5],
  ['HTTU', 0, 7, 6],
  ['HYP', 0, 9, 9],
  ['ATS', 0, 10, 10],
  ['ASID16', 0, 12, 12],
  ['MSI', 0, 13, 13],
  ['SEV', 0, 14, 14],
  ['PRI', 0, 16, 16],
  ['VMID16', 0, 18, 18],
  ['CD2L', 0, 19, 19],
  ['TTENDIAN', 0, 22, 21],
  ['STALL_MODEL', 0, 25, 24],
  ['TERM_MODEL', 0, 26, 26],
  ['ST_LEVEL', 0, 28, 27],
] as const);

/** IDR1 fields (queue and ID sizes, log2). */
export const SMMU_IDR1 = defineBitLayout('IDR1', 1, [
  ['SIDSIZE', 0, 5, 0],
  ['SSIDSIZE', 0, 10, 6],
  ['PRIQS', 0, 15, 11],
  ['EVTQS', 0, 20, 16],
  ['CMDQS', 0, 25, 21],
  ['ATTR_TYPES_OVR', 0, 27, 27],
  ['REL', 0, 28, 28],
  ['QUEUES_PRESET', 0, 29, 29],
  ['TABLES_PRESET', 0, 30, 30],
] as const);

/** IDR3 fields. */
export const SMMU_IDR3 = defineBitLayout('IDR3', 1, [
  ['HAD', 0, 2, 2],
  ['FWB', 0, 8, 8],
  ['RIL', 0, 10, 10],
  ['BBML', 0, 12, 11],
] as const);

/** IDR5 fields. */
export const SMMU_IDR5 = defineBitLayout('IDR5', 1, [
  ['OAS', 0, 2, 0],
  ['GRAN4K', 0, 4, 4],
  ['GRAN16K', 0, 5, 5],
  ['GRAN64K', 0, 6, 6],
  ['VAX', 0, 11, 10],
  ['STALL_MAX', 0, 31, 16],
] as const);

/** CR0 / CR0ACK bits. */
export const SMMU_CR0 = defineBitLayout('CR0', 1, [
  ['SMMUEN', 0, 0, 0],
  ['PRIQEN', 0, 1, 1],
  ['EVTQEN', 0, 2, 2],
  ['CMDQEN', 0, 3, 3],
  ['ATSCHK', 0, 4, 4],
] as const);

/** GBPA bits. */
export const SMMU_GBPA = defineBitLayout('GBPA', 1, [
  ['SHCFG', 0, 13, 12],
  ['ABORT', 0, 20, 20],
  ['UPDATE', 0, 31, 31],
] as const);

/** IRQ_CTRL / IRQ_CTRLACK bits. */
export const SMMU_IRQ_CTRL = defineBitLayout('IRQ_CTRL', 1, [
  ['GERROR_IRQEN', 0, 0, 0],
  ['PRIQ_IRQEN', 0, 1, 1],
  ['EVTQ_IRQEN', 0, 2, 2],
] as const);

/** GERROR / GERRORN bits. */
export const SMMU_GERROR = defineBitLayout('GERROR', 1, [
  ['CMDQ_ERR', 0, 0, 0],
  ['EVTQ_ABT_ERR', 0, 2, 2],
  ['PRIQ_ABT_ERR', 0, 3, 3],
  ['MSI_CMDQ_ABT_ERR', 0, 4, 4],
  ['MSI_EVTQ_ABT_ERR', 0, 5, 5],
  ['MSI_PRIQ_ABT_ERR', 0, 6, 6],
  ['MSI_GERROR_ABT_ERR', 0, 7, 7],
  ['SFM_ERR', 0, 8, 8],
] as const);

/** STRTAB_BASE and STRTAB_BASE_CFG. */
export const SMMU_STRTAB_BASE = defineBitLayout('STRTAB_BASE', 1, [
  ['ADDR', 0, 51, 6],
  ['RA', 0, 62, 62],
] as const);
/** STRTAB_BASE_CFG fields. */
export const SMMU_STRTAB_BASE_CFG = defineBitLayout('STRTAB_BASE_CFG', 1, [
  ['LOG2SIZE', 0, 5, 0],
  ['SPLIT', 0, 10, 6],
  ['FMT', 0, 17, 16],
] as const);

/** CMDQ_BASE / EVTQ_BASE / PRIQ_BASE. */
export const SMMU_Q_BASE = defineBitLayout('Q_BASE', 1, [
  ['LOG2SIZE', 0, 4, 0],
  ['ADDR', 0, 51, 5],
  ['RA', 0, 62, 62],
] as const);

/** CMDQ_CONS error field and EVTQ/PRIQ overflow flags (index + wrap are below them). */
export const SMMU_Q_PTR = defineBitLayout('Q_PTR', 1, [
  ['IDX_WRAP', 0, 19, 0],
  ['ERR', 0, 30, 24],
  ['OVFLG', 0, 31, 31],
] as const);

/** Level-1 stream table descriptor (8 bytes). */
export const SMMU_L1STD = defineBitLayout('L1STD', 1, [
  ['SPAN', 0, 4, 0],
  ['L2PTR', 0, 51, 6],
] as const);

/** STE configuration values (dw0 Config [3:1]). */
export const STE_CFG = { ABORT: 0, BYPASS: 4, S1_TRANS: 5, S2_TRANS: 6, NESTED: 7 } as const;

/** Stream table entry (64 bytes). */
export const SMMU_STE = defineBitLayout('STE', 8, [
  ['V', 0, 0, 0],
  ['CONFIG', 0, 3, 1],
  ['S1FMT', 0, 5, 4],
  ['S1CONTEXTPTR', 0, 51, 6],
  ['S1CDMAX', 0, 63, 59],
  ['S1DSS', 1, 1, 0],
  ['S1CIR', 1, 3, 2],
  ['S1COR', 1, 5, 4],
  ['S1CSH', 1, 7, 6],
  ['MEV', 1, 19, 19],
  ['S2FWB', 1, 25, 25],
  ['S1STALLD', 1, 27, 27],
  ['EATS', 1, 29, 28],
  ['STRW', 1, 31, 30],
  ['SHCFG', 1, 45, 44],
  ['S2VMID', 2, 15, 0],
  ['S2T0SZ', 2, 37, 32],
  ['S2SL0', 2, 39, 38],
  ['S2IR0', 2, 41, 40],
  ['S2OR0', 2, 43, 42],
  ['S2SH0', 2, 45, 44],
  ['S2TG', 2, 47, 46],
  ['S2PS', 2, 50, 48],
  ['S2AA64', 2, 51, 51],
  ['S2ENDI', 2, 52, 52],
  ['S2AFFD', 2, 53, 53],
  ['S2PTW', 2, 54, 54],
  ['S2HD', 2, 55, 55],
  ['S2HA', 2, 56, 56],
  ['S2S', 2, 57, 57],
  ['S2R', 2, 58, 58],
  ['S2TTB', 3, 51, 4],
] as const);

/** Level-1 context descriptor (8 bytes) of a 2-level CD table. */
export const SMMU_L1CD = defineBitLayout('L1CD', 1, [
  ['V', 0, 0, 0],
  ['L2PTR', 0, 51, 12],
] as const);

/** Context descriptor (64 bytes). */
export const SMMU_CD = defineBitLayout('CD', 8, [
  ['T0SZ', 0, 5, 0],
  ['TG0', 0, 7, 6],
  ['IR0', 0, 9, 8],
  ['OR0', 0, 11, 10],
  ['SH0', 0, 13, 12],
  ['EPD0', 0, 14, 14],
  ['ENDI', 0, 15, 15],
  ['T1SZ', 0, 21, 16],
  ['TG1', 0, 23, 22],
  ['IR1', 0, 25, 24],
  ['OR1', 0, 27, 26],
  ['SH1', 0, 29, 28],
  ['EPD1', 0, 30, 30],
  ['V', 0, 31, 31],
  ['IPS', 0, 34, 32],
  ['AFFD', 0, 35, 35],
  ['TBI', 0, 39, 38],
  ['AA64', 0, 41, 41],
  ['HD', 0, 42, 42],
  ['HA', 0, 43, 43],
  ['S', 0, 44, 44],
  ['R', 0, 45, 45],
  ['A', 0, 46, 46],
  ['ASET', 0, 47, 47],
  ['ASID', 0, 63, 48],
  ['HAD0', 1, 1, 1],
  ['TTB0', 1, 51, 4],
  ['HAD1', 2, 1, 1],
  ['TTB1', 2, 51, 4],
  ['MAIR', 3, 63, 0],
] as const);

/** AArch64 VMSAv8-64 translation table descriptor, 4 KiB granule (stage 1 and stage 2 views). */
export const ARM_PTE = defineBitLayout('PTE', 1, [
  ['VALID', 0, 0, 0],
  ['TABLE', 0, 1, 1],
  ['ATTR', 0, 5, 2],
  ['AP', 0, 7, 6],
  ['SH', 0, 9, 8],
  ['AF', 0, 10, 10],
  ['NG', 0, 11, 11],
  ['OA', 0, 47, 12],
  ['DBM', 0, 51, 51],
  ['CONT', 0, 52, 52],
  ['PXN', 0, 53, 53],
  ['XN', 0, 54, 54],
  ['PXNTABLE', 0, 59, 59],
  ['XNTABLE', 0, 60, 60],
  ['APTABLE', 0, 62, 61],
  ['NSTABLE', 0, 63, 63],
] as const);

/** Command opcodes (reference §3.2). */
export const CMDQ_OP = {
  PREFETCH_CONFIG: 0x01,
  PREFETCH_ADDR: 0x02,
  CFGI_STE: 0x03,
  CFGI_STE_RANGE: 0x04,
  CFGI_CD: 0x05,
  CFGI_CD_ALL: 0x06,
  TLBI_NH_ALL: 0x10,
  TLBI_NH_ASID: 0x11,
  TLBI_NH_VA: 0x12,
  TLBI_NH_VAA: 0x13,
  TLBI_EL3_ALL: 0x18,
  TLBI_EL3_VA: 0x1a,
  TLBI_EL2_ALL: 0x20,
  TLBI_EL2_ASID: 0x21,
  TLBI_EL2_VA: 0x22,
  TLBI_EL2_VAA: 0x23,
  TLBI_S12_VMALL: 0x28,
  TLBI_S2_IPA: 0x2a,
  TLBI_NSNH_ALL: 0x30,
  ATC_INV: 0x40,
  PRI_RESP: 0x41,
  RESUME: 0x44,
  STALL_TERM: 0x45,
  CMD_SYNC: 0x46,
} as const;

/**
 * The fields common to most 16-byte commands: the architecture keeps each at the same place
 * in every command that has it (SSec, SSV, SSID [31:12], SID [63:32], Leaf, dw1 address
 * [63:12]). Fields that overlap these in some opcodes have their own views:
 * {@link SMMU_CMD_TLBI}, {@link SMMU_CMD_CFGI_RANGE}, {@link SMMU_CMD_ATC_INV},
 * {@link SMMU_CMD_PRI_RESP}, {@link SMMU_CMD_RESUME}, {@link SMMU_CMD_SYNC}.
 */
export const SMMU_CMD = defineBitLayout('CMD', 2, [
  ['OPCODE', 0, 7, 0],
  ['GLOBAL', 0, 9, 9],
  ['SSEC', 0, 10, 10],
  ['SSV', 0, 11, 11],
  ['SSID', 0, 31, 12],
  ['SID', 0, 63, 32],
  ['LEAF', 1, 0, 0],
  ['ADDR', 1, 63, 12],
] as const);

/** TLBI field view of a command (VMID/ASID/range fields that alias SSID/SID). */
export const SMMU_CMD_TLBI = defineBitLayout('CMD_TLBI', 2, [
  ['OPCODE', 0, 7, 0],
  ['NUM', 0, 16, 12],
  ['SCALE', 0, 24, 20],
  ['VMID', 0, 47, 32],
  ['ASID', 0, 63, 48],
  ['LEAF', 1, 0, 0],
  ['TTL', 1, 9, 8],
  ['TG', 1, 11, 10],
  ['ADDR', 1, 63, 12],
] as const);

/** CFGI_STE_RANGE (CFGI_ALL is RANGE 31). */
export const SMMU_CMD_CFGI_RANGE = defineBitLayout('CMD_CFGI_STE_RANGE', 2, [
  ['OPCODE', 0, 7, 0],
  ['SID', 0, 63, 32],
  ['RANGE', 1, 4, 0],
] as const);

/** PRI_RESP. */
export const SMMU_CMD_PRI_RESP = defineBitLayout('CMD_PRI_RESP', 2, [
  ['OPCODE', 0, 7, 0],
  ['SSV', 0, 11, 11],
  ['SSID', 0, 31, 12],
  ['SID', 0, 63, 32],
  ['PRGI', 1, 8, 0],
  ['RESP', 1, 13, 12],
] as const);

/** RESUME. */
export const SMMU_CMD_RESUME = defineBitLayout('CMD_RESUME', 2, [
  ['OPCODE', 0, 7, 0],
  ['ACTION', 0, 13, 12],
  ['SID', 0, 63, 32],
  ['STAG', 1, 15, 0],
] as const);

/** CMD_SYNC fields. */
export const SMMU_CMD_SYNC = defineBitLayout('CMD_SYNC', 2, [
  ['OPCODE', 0, 7, 0],
  ['CS', 0, 13, 12],
  ['MSH', 0, 23, 22],
  ['MSIATTR', 0, 27, 24],
  ['MSIDATA', 0, 63, 32],
  ['MSIADDR', 1, 51, 2],
] as const);

/** CMD_SYNC completion signal (CS). */
export const CMD_SYNC_CS = { NONE: 0, IRQ: 1, SEV: 2 } as const;

/** ATC_INV dw1 (Size [5:0], Addr [63:12]). */
export const SMMU_CMD_ATC_INV = defineBitLayout('CMD_ATC_INV', 2, [
  ['OPCODE', 0, 7, 0],
  ['GLOBAL', 0, 9, 9],
  ['SSV', 0, 11, 11],
  ['SSID', 0, 31, 12],
  ['SID', 0, 63, 32],
  ['SIZE', 1, 5, 0],
  ['ADDR', 1, 63, 12],
] as const);

/**
 * The field view of each opcode: the layout whose fields that command has (TLBI, CFGI range,
 * ATC_INV, PRI_RESP, RESUME, CMD_SYNC views; the common {@link SMMU_CMD} otherwise).
 */
export const SMMU_COMMAND_LAYOUTS: ReadonlyMap<number, BitLayout<readonly BitFieldSpec[]>> = new Map(
  (
    [
      [[CMDQ_OP.PREFETCH_CONFIG, CMDQ_OP.PREFETCH_ADDR, CMDQ_OP.CFGI_STE, CMDQ_OP.CFGI_CD, CMDQ_OP.CFGI_CD_ALL, CMDQ_OP.STALL_TERM], SMMU_CMD],
      [
        [
          CMDQ_OP.TLBI_NH_ALL, CMDQ_OP.TLBI_NH_ASID, CMDQ_OP.TLBI_NH_VA, CMDQ_OP.TLBI_NH_VAA, CMDQ_OP.TLBI_EL3_ALL, CMDQ_OP.TLBI_EL3_VA,
          CMDQ_OP.TLBI_EL2_ALL, CMDQ_OP.TLBI_EL2_ASID, CMDQ_OP.TLBI_EL2_VA, CMDQ_OP.TLBI_EL2_VAA, CMDQ_OP.TLBI_S12_VMALL,
          CMDQ_OP.TLBI_S2_IPA, CMDQ_OP.TLBI_NSNH_ALL,
        ],
        SMMU_CMD_TLBI,
      ],
      [[CMDQ_OP.CFGI_STE_RANGE], SMMU_CMD_CFGI_RANGE],
      [[CMDQ_OP.ATC_INV], SMMU_CMD_ATC_INV],
      [[CMDQ_OP.PRI_RESP], SMMU_CMD_PRI_RESP],
      [[CMDQ_OP.RESUME], SMMU_CMD_RESUME],
      [[CMDQ_OP.CMD_SYNC], SMMU_CMD_SYNC],
    ] as const
  ).flatMap(([ops, layout]) => ops.map((op) => [op, layout as unknown as AnyBitLayout] as const)),
);

/** CMDQ_CONS.ERR codes. */
export const CMDQ_ERR = { NONE: 0, ILL: 1, ABT: 2, ATC_INV_SYNC: 3, ILL_ACCESS: 4 } as const;

/** Event record IDs (reference §4.2). */
export const EVT_ID = {
  F_UUT: 0x01,
  C_BAD_STREAMID: 0x02,
  F_STE_FETCH: 0x03,
  C_BAD_STE: 0x04,
  F_BAD_ATS_TREQ: 0x05,
  F_STREAM_DISABLED: 0x06,
  F_TRANSL_FORBIDDEN: 0x07,
  C_BAD_SUBSTREAMID: 0x08,
  F_CD_FETCH: 0x09,
  C_BAD_CD: 0x0a,
  F_WALK_EABT: 0x0b,
  F_TRANSLATION: 0x10,
  F_ADDR_SIZE: 0x11,
  F_ACCESS: 0x12,
  F_PERMISSION: 0x13,
  F_TLB_CONFLICT: 0x20,
  F_CFG_CONFLICT: 0x21,
  E_PAGE_REQUEST: 0x24,
  F_VMS_FETCH: 0x25,
} as const;

/** Name of an event ID. */
export type SmmuEventName = keyof typeof EVT_ID;

/** Event CLASS values. */
export const EVT_CLASS = { CD: 0, TT: 1, IN: 2 } as const;

/** Event record (32 bytes); translation-fault view with IPA in dw3. */
export const SMMU_EVENT = defineBitLayout('EVENT', 4, [
  ['ID', 0, 7, 0],
  ['SSV', 0, 11, 11],
  ['SSID', 0, 31, 12],
  ['SID', 0, 63, 32],
  ['STAG', 1, 15, 0],
  ['STALL', 1, 31, 31],
  ['PNU', 1, 33, 33],
  ['IND', 1, 34, 34],
  ['RNW', 1, 35, 35],
  ['S2', 1, 39, 39],
  ['CLASS', 1, 41, 40],
  ['TTRNW', 1, 44, 44],
  ['INPUT_ADDR', 2, 63, 0],
  ['IPA', 3, 51, 12],
] as const);

/** Event record, fetch-abort view (F_STE_FETCH, F_CD_FETCH, F_WALK_EABT): FetchAddr in dw3. */
export const SMMU_EVENT_FETCH = defineBitLayout('EVENT_FETCH', 4, [
  ['ID', 0, 7, 0],
  ['SSV', 0, 11, 11],
  ['SSID', 0, 31, 12],
  ['SID', 0, 63, 32],
  ['PNU', 1, 33, 33],
  ['IND', 1, 34, 34],
  ['RNW', 1, 35, 35],
  ['S2', 1, 39, 39],
  ['CLASS', 1, 41, 40],
  ['INPUT_ADDR', 2, 63, 0],
  ['FETCH_ADDR', 3, 51, 3],
] as const);

/** PRI queue record (16 bytes): one page request. */
export const SMMU_PRIQ = defineBitLayout('PRIQ', 2, [
  ['SID', 0, 31, 0],
  ['SSID', 0, 51, 32],
  ['PERM_PRIV', 0, 58, 58],
  ['PERM_EXEC', 0, 59, 59],
  ['PERM_READ', 0, 60, 60],
  ['PERM_WRITE', 0, 61, 61],
  ['PRG_LAST', 0, 62, 62],
  ['SSID_V', 0, 63, 63],
  ['PRG_IDX', 1, 8, 0],
  ['ADDR', 1, 63, 12],
] as const);

/** Record fields an event carries besides its ID (the SMMUv3 event record formats, §4). */
export const EVENT_RECORD_FIELDS: Readonly<Partial<Record<SmmuEventName, readonly string[]>>> = {
  C_BAD_STREAMID: ['SID', 'SSV', 'SSID'],
  C_BAD_STE: ['SID', 'SSV', 'SSID'],
  C_BAD_SUBSTREAMID: ['SID', 'SSV', 'SSID'],
  C_BAD_CD: ['SID', 'SSV', 'SSID'],
  F_STREAM_DISABLED: ['SID'],
  F_TRANSL_FORBIDDEN: ['SID', 'INPUT_ADDR', 'RNW'],
  F_BAD_ATS_TREQ: ['SID', 'SSV', 'SSID', 'INPUT_ADDR', 'RNW', 'PNU', 'IND'],
  F_STE_FETCH: ['SID', 'SSV', 'SSID', 'FETCH_ADDR'],
  F_CD_FETCH: ['SID', 'SSV', 'SSID', 'FETCH_ADDR'],
  F_WALK_EABT: ['SID', 'SSV', 'SSID', 'RNW', 'PNU', 'IND', 'S2', 'CLASS', 'INPUT_ADDR', 'FETCH_ADDR'],
  F_TRANSLATION: ['SID', 'SSV', 'SSID', 'STAG', 'STALL', 'RNW', 'PNU', 'IND', 'S2', 'CLASS', 'TTRNW', 'INPUT_ADDR', 'IPA'],
  F_ADDR_SIZE: ['SID', 'SSV', 'SSID', 'STAG', 'STALL', 'RNW', 'PNU', 'IND', 'S2', 'CLASS', 'TTRNW', 'INPUT_ADDR', 'IPA'],
  F_ACCESS: ['SID', 'SSV', 'SSID', 'STAG', 'STALL', 'RNW', 'PNU', 'IND', 'S2', 'CLASS', 'TTRNW', 'INPUT_ADDR', 'IPA'],
  F_PERMISSION: ['SID', 'SSV', 'SSID', 'STAG', 'STALL', 'RNW', 'PNU', 'IND', 'S2', 'CLASS', 'TTRNW', 'INPUT_ADDR', 'IPA'],
};
