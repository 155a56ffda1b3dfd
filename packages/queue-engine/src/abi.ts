/**
 * The binary interface shared by the WebAssembly engine (asm/engine.ts, compiled by
 * AssemblyScript, which imports this very file) and the TypeScript twin: the layout of a
 * queue control block, the effect record, the stop reasons and the architecture codes.
 * Only plain integer constants live here so that both compilers read the same source.
 */

// ---------------------------------------------------------------------------------------
// Queue control block: 128 bytes of u32 fields in linear memory, one per queue.
// ---------------------------------------------------------------------------------------

/** Byte size of a queue control block (fields, then the opcode legality table). */
export const QB_SIZE = 384;
/** SMMU: 256 bytes, one per opcode: nonzero when the opcode executes on this queue (features, guest VINTF). */
export const QB_LEGAL = 128;
/** Offset of the ring page table (u32 frame offsets, one per 4 KiB page of the ring; `RING_ABORT` = fetch abort). */
export const QB_PT = 0;
/** log2 of the number of ring entries. */
export const QB_LOG2 = 4;
/** Producer register: SMMU PROD (index + wrap) or VT-d IQT (byte offset). */
export const QB_PROD = 8;
/** Consumer register: SMMU CONS (index + wrap, ERR in [30:24]) or VT-d IQH (byte offset). */
export const QB_CONS = 12;
/** `QF_*` flags. */
export const QB_FLAGS = 16;
/** VMID stamped into TLBI_NH_* on a guest-owned VCMDQ (VINTF CONFIG.VMID). */
export const QB_VMID = 20;
/** Offset of the SID hash table (guest VCMDQ: SID_MATCH → SID_REPLACE). */
export const QB_SIDTAB = 24;
/** log2 of the SID hash table's slot count (0 = no table). */
export const QB_SIDTAB_LOG2 = 28;
/** Offset of the effect buffer. */
export const QB_FX = 32;
/** Capacity of the effect buffer in records. */
export const QB_FX_CAP = 36;
/** Records written into the effect buffer (the wrapper resets it after each flush). */
export const QB_FX_COUNT = 40;
/** Offset of the execution log (raw 16/32-byte entries as executed), or 0. */
export const QB_LOG = 44;
/** Capacity of the execution log in bytes. */
export const QB_LOG_CAP = 48;
/** Bytes appended to the execution log. */
export const QB_LOG_LEN = 52;
/** Offset of per-opcode (per-type) execution counters, or 0: two banks of 256 u32 (SMMU alternates banks per command). */
export const QB_COUNTERS = 56;
/** Why the last consume call returned (`STOP_*`). */
export const QB_STOP = 60;
/** `PEND_*` bits: device-TLB/ATC invalidations awaiting completion, reported timeouts. */
export const QB_PENDING = 64;
/** dw0[63:32] (MSIData) of the last CMD_SYNC executed. */
export const QB_LAST_SYNC = 68;
/** VT-d: FSTS bits raised by the queue (IQE 4, ICE 5, ITE 6). */
export const QB_FSTS = 72;
/** VT-d: IQER[31:0] (IQEI in [3:0]). */
export const QB_IQER_LO = 76;
/** VT-d: IQER[63:32] (ITESID in [15:0], ICESID in [31:16]). */
export const QB_IQER_HI = 80;
/** VT-d: CAP.MAMV (largest address mask of a page-selective invalidation). */
export const QB_MAMV = 84;
/** Source id of the device-TLB/ATC completion failure reported by the cache model. */
export const QB_FAULT_SID = 88;
/** Offset of the ring in linear memory when it is contiguous there, else `RING_ABORT`. */
export const QB_RING_FLAT = 92;

/** Page-table value for a ring page that is not RAM: fetching from it aborts. */
export const RING_ABORT = -1;

/** SMMU: stage 1 implemented (IDR0.S1P): CFGI_CD* and TLBI_NH_* are legal. */
export const QF_S1P = 1;
/** SMMU: stage 2 implemented (IDR0.S2P): TLBI_S12_VMALL and TLBI_S2_IPA are legal. */
export const QF_S2P = 2;
/** SMMU: ATS implemented (IDR0.ATS): ATC_INV is legal. */
export const QF_ATS = 4;
/** Guest-owned Tegra241 VCMDQ (VINTF HYP_OWN=0): restricted opcodes, VMID and SID substitution. */
export const QF_GUEST = 8;
/** Emit effect records. */
export const QF_EFFECTS = 16;
/** VT-d: 256-bit descriptors (IQA.DW). */
export const QF_DW256 = 32;
/** VT-d: ECAP.DIT (PFSID fields are meaningful, not reserved). */
export const QF_DIT = 64;
/** VT-d: ECAP.PDS (the page-request drain bit of the wait descriptor is legal). */
export const QF_PDS = 128;

/** Consumed up to the producer; nothing left. */
export const STOP_EMPTY = 0;
/** Stopped at a faulting command / descriptor (CONS.ERR or FSTS says why). */
export const STOP_ERROR = 1;
/** The effect buffer is full: apply the batch and call again. */
export const STOP_EFFECTS_FULL = 2;
/** A completion barrier (CMD_SYNC / wait) follows ATC / device-TLB invalidations: apply the batch, report timeouts, call again. */
export const STOP_BARRIER = 3;
/** The execution log is full. */
export const STOP_LOG_FULL = 4;
/** VT-d: the queue is stopped by a pending IQE / ITE (the driver must clear FSTS first). */
export const STOP_HALTED = 5;

/** ATC / device-TLB invalidations were emitted and not yet applied. */
export const PEND_DEVTLB = 1;
/** The cache model reported an ATC invalidation time-out (SMMU) / ITE (VT-d). */
export const PEND_TIMEOUT = 2;
/** The cache model reported an invalidation completion error (VT-d ICE). */
export const PEND_ICE = 4;

// ---------------------------------------------------------------------------------------
// Effect record: 32 bytes = four little-endian u64 words w0..w3.
//   w0: kind [15:0], source position (SMMU CONS index+wrap / VT-d descriptor index) [63:32]
//   w1..w3: per-kind fields, declared in effects.ts (EFFECT_KINDS).
// Kind = SMMU opcode (0x00..0xff) or 0x100 + VT-d descriptor type.
// ---------------------------------------------------------------------------------------

/** Bytes per effect record. */
export const FX_RECORD_SIZE = 32;
/** Added to a VT-d descriptor type to form its effect kind. */
export const FX_VTD_BASE = 0x100;

// ---------------------------------------------------------------------------------------
// SMMUv3 command queue.
// ---------------------------------------------------------------------------------------

/** CONS.ERR: no error. */
export const CERROR_NONE = 0;
/** CONS.ERR: illegal / unknown command or field. */
export const CERROR_ILL = 1;
/** CONS.ERR: command fetch abort. */
export const CERROR_ABT = 2;
/** CONS.ERR: an ATC invalidation did not complete before the following CMD_SYNC. */
export const CERROR_ATC_INV_SYNC = 3;
/** Bit position of CONS.ERR. */
export const CONS_ERR_SHIFT = 24;
/** CONS.ERR field mask (bits [30:24]). */
export const CONS_ERR_MASK = 0x7f000000;

/** CMDQ opcode PREFETCH_CONFIG. */
export const CMDQ_OP_PREFETCH_CFG = 0x01;
/** CMDQ opcode PREFETCH_ADDR. */
export const CMDQ_OP_PREFETCH_ADDR = 0x02;
/** CMDQ opcode CFGI_STE. */
export const CMDQ_OP_CFGI_STE = 0x03;
/** CMDQ opcode CFGI_STE_RANGE (CFGI_ALL = Range 31). */
export const CMDQ_OP_CFGI_STE_RANGE = 0x04;
/** CMDQ opcode CFGI_CD. */
export const CMDQ_OP_CFGI_CD = 0x05;
/** CMDQ opcode CFGI_CD_ALL. */
export const CMDQ_OP_CFGI_CD_ALL = 0x06;
/** CMDQ opcode TLBI_NH_ALL. */
export const CMDQ_OP_TLBI_NH_ALL = 0x10;
/** CMDQ opcode TLBI_NH_ASID. */
export const CMDQ_OP_TLBI_NH_ASID = 0x11;
/** CMDQ opcode TLBI_NH_VA. */
export const CMDQ_OP_TLBI_NH_VA = 0x12;
/** CMDQ opcode TLBI_NH_VAA. */
export const CMDQ_OP_TLBI_NH_VAA = 0x13;
/** CMDQ opcode TLBI_EL3_ALL. */
export const CMDQ_OP_TLBI_EL3_ALL = 0x18;
/** CMDQ opcode TLBI_EL3_VA. */
export const CMDQ_OP_TLBI_EL3_VA = 0x1a;
/** CMDQ opcode TLBI_EL2_ALL. */
export const CMDQ_OP_TLBI_EL2_ALL = 0x20;
/** CMDQ opcode TLBI_EL2_ASID. */
export const CMDQ_OP_TLBI_EL2_ASID = 0x21;
/** CMDQ opcode TLBI_EL2_VA. */
export const CMDQ_OP_TLBI_EL2_VA = 0x22;
/** CMDQ opcode TLBI_EL2_VAA. */
export const CMDQ_OP_TLBI_EL2_VAA = 0x23;
/** CMDQ opcode TLBI_S12_VMALL. */
export const CMDQ_OP_TLBI_S12_VMALL = 0x28;
/** CMDQ opcode TLBI_S2_IPA. */
export const CMDQ_OP_TLBI_S2_IPA = 0x2a;
/** CMDQ opcode TLBI_NSNH_ALL. */
export const CMDQ_OP_TLBI_NSNH_ALL = 0x30;
/** CMDQ opcode ATC_INV. */
export const CMDQ_OP_ATC_INV = 0x40;
/** CMDQ opcode PRI_RESP. */
export const CMDQ_OP_PRI_RESP = 0x41;
/** CMDQ opcode RESUME. */
export const CMDQ_OP_RESUME = 0x44;
/** CMDQ opcode STALL_TERM. */
export const CMDQ_OP_STALL_TERM = 0x45;
/** CMDQ opcode CMD_SYNC. */
export const CMDQ_OP_CMD_SYNC = 0x46;

// ---------------------------------------------------------------------------------------
// Trapped vSMMU conversion (arm_vsmmu_cache_invalidate) and its issue to the host CMDQ.
// ---------------------------------------------------------------------------------------

/** Converted commands per issued batch before the CMD_SYNC (CMDQ_BATCH_ENTRIES − 1). */
export const VSMMU_BATCH = 63;
/** Conversion result: every command converted / issued. */
export const VSMMU_OK = 0;
/** Conversion result: an opcode outside the whitelist or an unknown vSID (the kernel's -EIO). */
export const VSMMU_BAD_COMMAND = 1;
/** Conversion result: the host command queue stopped with an error while issuing. */
export const VSMMU_ISSUE_ERROR = 2;
/** Byte offset in the vSMMU scratch block of the result code (`VSMMU_*`). */
export const VS_RESULT = 0;
/** Byte offset in the vSMMU scratch block of the reported index (entry_num). */
export const VS_INDEX = 4;

// ---------------------------------------------------------------------------------------
// VT-d invalidation queue.
// ---------------------------------------------------------------------------------------

/** FSTS.IQE. */
export const FSTS_IQE = 0x10;
/** FSTS.ICE. */
export const FSTS_ICE = 0x20;
/** FSTS.ITE. */
export const FSTS_ITE = 0x40;
/** IQEI: hardware detected an invalid tail pointer (IQT beyond the queue). */
export const IQEI_INVALID_TAIL = 1;
/** IQEI: error fetching a descriptor. */
export const IQEI_FETCH = 2;
/** IQEI: invalid descriptor type. */
export const IQEI_INVALID_TYPE = 3;
/** IQEI: a reserved field of the descriptor is set. */
export const IQEI_RESERVED = 4;
/** IQEI: descriptor needs 256-bit width but the queue holds 128-bit descriptors. */
export const IQEI_INVALID_WIDTH = 5;
/** IQEI: IQT not aligned to the 256-bit descriptor width (bit 4 set). */
export const IQEI_TAIL_MISALIGNED = 6;

/** VT-d descriptor type: context-cache invalidate. */
export const QI_CC_TYPE = 0x1;
/** VT-d descriptor type: IOTLB invalidate. */
export const QI_IOTLB_TYPE = 0x2;
/** VT-d descriptor type: device-TLB invalidate. */
export const QI_DIOTLB_TYPE = 0x3;
/** VT-d descriptor type: interrupt-entry-cache invalidate. */
export const QI_IEC_TYPE = 0x4;
/** VT-d descriptor type: invalidation wait. */
export const QI_IWD_TYPE = 0x5;
/** VT-d descriptor type: PASID-based IOTLB invalidate. */
export const QI_EIOTLB_TYPE = 0x6;
/** VT-d descriptor type: PASID-cache invalidate. */
export const QI_PC_TYPE = 0x7;
/** VT-d descriptor type: PASID-based device-TLB invalidate. */
export const QI_DEIOTLB_TYPE = 0x8;
/** VT-d descriptor type: page-group response. */
export const QI_PGRP_RESP_TYPE = 0x9;
