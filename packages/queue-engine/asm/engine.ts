// The WebAssembly queue engine (AssemblyScript, compiled with --runtime stub: nothing here
// allocates). Every function works on structures that live in the PhysicalStore's memory,
// which this module imports: queue control blocks, ring page tables, effect buffers and the
// rings themselves. src/engine-ts.ts is the TypeScript twin of this file; the differential
// tests hold the two to byte-identical results, so change both or neither.
import {
  QB_PT, QB_LOG2, QB_PROD, QB_CONS, QB_FLAGS, QB_VMID, QB_SIDTAB, QB_SIDTAB_LOG2, QB_FX, QB_FX_CAP,
  QB_FX_COUNT, QB_LOG, QB_LOG_CAP, QB_LOG_LEN, QB_COUNTERS, QB_STOP, QB_PENDING, QB_LAST_SYNC,
  QB_FSTS, QB_IQER_LO, QB_IQER_HI, QB_MAMV, QB_FAULT_SID, QB_RING_FLAT, QB_LEGAL,
  QF_GUEST, QF_EFFECTS, QF_DW256, QF_DIT, QF_PDS,
  STOP_EMPTY, STOP_ERROR, STOP_EFFECTS_FULL, STOP_BARRIER, STOP_LOG_FULL, STOP_HALTED,
  PEND_DEVTLB, PEND_TIMEOUT, FX_VTD_BASE,
  CERROR_ILL, CERROR_ABT, CERROR_ATC_INV_SYNC, CONS_ERR_SHIFT, CONS_ERR_MASK,
  CMDQ_OP_PREFETCH_CFG, CMDQ_OP_PREFETCH_ADDR, CMDQ_OP_CFGI_STE, CMDQ_OP_CFGI_STE_RANGE, CMDQ_OP_CFGI_CD,
  CMDQ_OP_CFGI_CD_ALL, CMDQ_OP_TLBI_NH_ALL, CMDQ_OP_TLBI_NH_ASID, CMDQ_OP_TLBI_NH_VA, CMDQ_OP_TLBI_NH_VAA,
  CMDQ_OP_TLBI_EL3_ALL, CMDQ_OP_TLBI_EL3_VA, CMDQ_OP_TLBI_EL2_ALL, CMDQ_OP_TLBI_EL2_ASID, CMDQ_OP_TLBI_EL2_VA,
  CMDQ_OP_TLBI_EL2_VAA, CMDQ_OP_TLBI_S12_VMALL, CMDQ_OP_TLBI_S2_IPA, CMDQ_OP_TLBI_NSNH_ALL, CMDQ_OP_ATC_INV,
  CMDQ_OP_PRI_RESP, CMDQ_OP_RESUME, CMDQ_OP_STALL_TERM, CMDQ_OP_CMD_SYNC,
  VSMMU_BATCH, VSMMU_OK, VSMMU_BAD_COMMAND, VSMMU_ISSUE_ERROR, VS_RESULT, VS_INDEX,
  FSTS_IQE, FSTS_ITE, IQEI_INVALID_TAIL, IQEI_FETCH, IQEI_INVALID_TYPE, IQEI_RESERVED, IQEI_INVALID_WIDTH,
  IQEI_TAIL_MISALIGNED,
  QI_CC_TYPE, QI_IOTLB_TYPE, QI_DIOTLB_TYPE, QI_IEC_TYPE, QI_IWD_TYPE, QI_EIOTLB_TYPE, QI_PC_TYPE,
  QI_DEIOTLB_TYPE, QI_PGRP_RESP_TYPE,
} from '../src/abi';

const ABORT: u32 = 0xffffffff;
const NOT_FOUND: u64 = 0xffffffffffffffff;
// Bit 10 of dw0: SSec. Our queues are Non-secure; a Secure-only command is CERROR_ILL.
const SSEC: u64 = 1 << 10;

/** Byte offset in memory of ring byte `byteOff`, or ABORT when that page is not RAM. */
@inline function ringAt(pt: u32, flat: u32, byteOff: u32): u32 {
  if (flat != ABORT) return flat + byteOff;
  const frame = load<u32>(pt + ((byteOff >>> 12) << 2));
  return frame == ABORT ? ABORT : frame + (byteOff & 4095);
}

/** SID hash table lookup (16-byte slots {used, key, value, 0}, linear probing). */
@inline function sidLookup(tab: u32, log2: u32, key: u32): u64 {
  if (log2 == 0) return NOT_FOUND;
  const mask: u32 = (1 << log2) - 1;
  let slot = (key * 0x9e3779b1) >>> (32 - log2);
  while (true) {
    const p = tab + (slot << 4);
    if (load<u32>(p) == 0) return NOT_FOUND;
    if (load<u32>(p, 4) == key) return <u64>load<u32>(p, 8);
    slot = (slot + 1) & mask;
  }
  return NOT_FOUND;
}

@inline function putFx(p: u32, kind: u32, pos: u32, w1: u64, w2: u64, w3: u64): void {
  store<u64>(p, <u64>kind | (<u64>pos << 32));
  store<u64>(p, w1, 8);
  store<u64>(p, w2, 16);
  store<u64>(p, w3, 24);
}

// Guest opcodes whose VMID field the trapped path stamps (NSNH_ALL becomes NH_ALL).
const VSMMU_STAMP: u64 = (<u64>1 << CMDQ_OP_TLBI_NH_ALL) | (1 << CMDQ_OP_TLBI_NH_ASID) | (1 << CMDQ_OP_TLBI_NH_VA) |
  (1 << CMDQ_OP_TLBI_NH_VAA) | (<u64>1 << CMDQ_OP_TLBI_NSNH_ALL);

// Effect words of an SMMU command, laid out as EFFECT_KINDS in src/effects.ts declares.
@inline function sidWord(dw0: u64): u64 {
  return (dw0 >> 32) | (((dw0 >> 12) & 0xfffff) << 32) | (((dw0 >> 11) & 1) << 52) | (((dw0 >> 9) & 1) << 53);
}
@inline function rangeWord(dw0: u64, dw1: u64): u64 {
  return (dw1 & 0xfff) | (((dw0 >> 12) & 0x1f) << 16) | (((dw0 >> 20) & 0x1f) << 24);
}

// Not inlined: keeps the consume loop's register pressure low; only queues with a cache
// model pay the call.
function smmuEffect(p: u32, op: u32, pos: u32, dw0: u64, dw1: u64): void {
  let w1: u64 = 0, w2: u64 = 0, w3: u64 = 0;
  switch (op) {
    case CMDQ_OP_PREFETCH_CFG: w1 = sidWord(dw0) & 0x1fffffffffffff; break;
    case CMDQ_OP_PREFETCH_ADDR: w1 = sidWord(dw0) & 0x1fffffffffffff; w2 = dw1 & ~(<u64>0xfff); w3 = dw1 & 0x1f; break;
    case CMDQ_OP_CFGI_STE: w1 = dw0 >> 32; w3 = dw1 & 1; break;
    case CMDQ_OP_CFGI_STE_RANGE: w1 = dw0 >> 32; w3 = dw1 & 0x1f; break;
    case CMDQ_OP_CFGI_CD: w1 = sidWord(dw0) & 0x1fffffffffffff; w3 = dw1 & 1; break;
    case CMDQ_OP_CFGI_CD_ALL: case CMDQ_OP_STALL_TERM: w1 = dw0 >> 32; break;
    case CMDQ_OP_TLBI_NH_ALL: case CMDQ_OP_TLBI_S12_VMALL: w1 = (dw0 >> 32) & 0xffff; break;
    case CMDQ_OP_TLBI_NH_ASID: w1 = dw0 >> 32; break;
    case CMDQ_OP_TLBI_EL2_ASID: w1 = (dw0 >> 32) & 0xffff0000; break;
    case CMDQ_OP_TLBI_NH_VA: w1 = dw0 >> 32; w2 = dw1 & ~(<u64>0xfff); w3 = rangeWord(dw0, dw1); break;
    case CMDQ_OP_TLBI_NH_VAA: w1 = (dw0 >> 32) & 0xffff; w2 = dw1 & ~(<u64>0xfff); w3 = rangeWord(dw0, dw1); break;
    case CMDQ_OP_TLBI_EL2_VA: w1 = (dw0 >> 32) & 0xffff0000; w2 = dw1 & ~(<u64>0xfff); w3 = rangeWord(dw0, dw1); break;
    case CMDQ_OP_TLBI_EL2_VAA: case CMDQ_OP_TLBI_EL3_VA: w2 = dw1 & ~(<u64>0xfff); w3 = rangeWord(dw0, dw1); break;
    case CMDQ_OP_TLBI_S2_IPA: w1 = (dw0 >> 32) & 0xffff; w2 = dw1 & 0xffffffffff000; w3 = rangeWord(dw0, dw1); break;
    case CMDQ_OP_ATC_INV: w1 = sidWord(dw0); w2 = dw1 & ~(<u64>0xfff); w3 = dw1 & 0x3f; break;
    case CMDQ_OP_PRI_RESP: w1 = sidWord(dw0) & 0x1fffffffffffff; w3 = dw1 & 0x31ff; break;
    case CMDQ_OP_RESUME: w1 = dw0 >> 32; w3 = (dw1 & 0xffff) | (((dw0 >> 12) & 3) << 16); break;
    case CMDQ_OP_CMD_SYNC:
      w1 = ((dw0 >> 12) & 3) | (((dw0 >> 22) & 3) << 4) | (((dw0 >> 24) & 0xf) << 8) | (dw0 & 0xffffffff00000000);
      w2 = dw1 & 0xffffffffffffc;
      break;
    default: break; // TLBI_EL2_ALL, TLBI_EL3_ALL, TLBI_NSNH_ALL carry no fields
  }
  putFx(p, op, pos, w1, w2, w3);
}

/**
 * A guest-owned VINTF substitutes the VINTF's VMID into TLBI_NH_ASID / TLBI_NH_VA and the
 * SID_REPLACE of a matching SID_MATCH into ATC_INV (the legality table already limits the
 * queue to what tegra241_guest_vcmdq_supports_cmd routes there). Returns the substituted
 * dw0, or NOT_FOUND for an unmatched vSID (an all-ones dw0 is an illegal opcode anyway).
 */
function guestSubstitute(dw0: u64, op: u32, q: u32): u64 {
  if (op == CMDQ_OP_TLBI_NH_ASID || op == CMDQ_OP_TLBI_NH_VA) {
    return (dw0 & 0xffff0000ffffffff) | (<u64>(load<u32>(q + QB_VMID) & 0xffff) << 32);
  }
  if (op == CMDQ_OP_ATC_INV) {
    const psid = sidLookup(load<u32>(q + QB_SIDTAB), load<u32>(q + QB_SIDTAB_LOG2), <u32>(dw0 >> 32));
    return psid == NOT_FOUND ? NOT_FOUND : (dw0 & 0xffffffff) | (psid << 32);
  }
  return dw0;
}

/**
 * Consumes an SMMUv3 CMDQ or Tegra241 VCMDQ from CONS up to PROD (smmuv3.md §3.3): fetch,
 * validate, substitute (guest VCMDQ), execute (effect record), advance; on error CONS stays
 * at the faulting command with CONS.ERR set. Returns the STOP_* reason.
 */
export function smmuConsume(q: u32): u32 {
  // One specialised copy of the loop per (guest, effects) combination: the constant
  // arguments fold away, so the common host-queue loop carries no dead paths and V8 keeps
  // its state in registers.
  const flags = load<u32>(q + QB_FLAGS);
  if (load<u32>(q + QB_RING_FLAT) != ABORT) {
    if (flags & QF_GUEST) {
      return flags & QF_EFFECTS ? smmuLoop(q, true, true, true) : smmuLoop(q, true, false, true);
    }
    return flags & QF_EFFECTS ? smmuLoop(q, false, true, true) : smmuLoop(q, false, false, true);
  }
  if (flags & QF_GUEST) {
    return flags & QF_EFFECTS ? smmuLoop(q, true, true, false) : smmuLoop(q, true, false, false);
  }
  return flags & QF_EFFECTS ? smmuLoop(q, false, true, false) : smmuLoop(q, false, false, false);
}

@inline function smmuLoop(q: u32, guest: bool, effects: bool, flatRing: bool): u32 {
  const log2 = load<u32>(q + QB_LOG2);
  const ptrMask: u32 = (2 << log2) - 1;
  const ringMask: u32 = (16 << log2) - 1;
  const consReg = load<u32>(q + QB_CONS);
  const cons0 = consReg & ptrMask;
  const count = (load<u32>(q + QB_PROD) - cons0) & ptrMask;
  const flags = load<u32>(q + QB_FLAGS);
  const pt = load<u32>(q + QB_PT);
  const flat = load<u32>(q + QB_RING_FLAT);
  const fx = load<u32>(q + QB_FX);
  let fxPtr = fx + (load<u32>(q + QB_FX_COUNT) << 5);
  const fxEnd = fx + (load<u32>(q + QB_FX_CAP) << 5);
  const log = load<u32>(q + QB_LOG);
  let logPtr = log + load<u32>(q + QB_LOG_LEN);
  const logEnd = log + load<u32>(q + QB_LOG_CAP);
  const counters = load<u32>(q + QB_COUNTERS);
  let pending = load<u32>(q + QB_PENDING);
  const legal = q + QB_LEGAL;
  let err: u32 = 0;
  let stop: u32 = STOP_EMPTY;
  let ro = (cons0 << 4) & ringMask;
  let left = count;
  for (; left != 0; left--) {
    let at = flat + ro;
    if (!flatRing) {
      at = ringAt(pt, flat, ro);
      if (at == ABORT) { err = CERROR_ABT; break; }
    }
    // One 16-byte load; the log takes the command as one 16-byte store.
    let cmd = v128.load(at);
    let dw0 = i64x2.extract_lane(cmd, 0);
    const op = <u32>dw0 & 0xff;
    if (guest) {
      dw0 = guestSubstitute(dw0, op, q);
      if (dw0 == NOT_FOUND) { err = CERROR_ILL; break; }
      cmd = i64x2.replace_lane(cmd, 0, dw0);
    }
    // An opcode this queue does not execute, or SSec set on a Non-secure queue: CERROR_ILL.
    if ((load<u8>(legal + op) == 0) | ((dw0 & SSEC) != 0)) { err = CERROR_ILL; break; }
    const isSync = op == CMDQ_OP_CMD_SYNC;
    if (isSync) {
      if (((dw0 >> 12) & 3) == 3) { err = CERROR_ILL; break; } // CS = 0b11 is reserved
      // The SYNC completes only after every earlier ATC invalidation did: let the cache model
      // apply them first, then report a time-out on this very SYNC.
      if (effects && (pending & PEND_DEVTLB)) { stop = STOP_BARRIER; break; }
      if (pending & PEND_TIMEOUT) { pending &= ~PEND_TIMEOUT; err = CERROR_ATC_INV_SYNC; break; }
    }
    if (effects && fxPtr == fxEnd) { stop = STOP_EFFECTS_FULL; break; }
    if (log) {
      if (logPtr + 16 > logEnd) { stop = STOP_LOG_FULL; break; }
      v128.store(logPtr, cmd);
      logPtr += 16;
    }
    if (effects) { smmuEffect(fxPtr, op, (cons0 + count - left) & ptrMask, dw0, i64x2.extract_lane(cmd, 1)); fxPtr += 32; }
    // Two counter banks chosen by the parity of the ring index: back-to-back commands of one
    // opcode do not wait on each other's store (the reader sums the banks).
    if (counters) { const c = counters + ((ro & 16) << 6) + (op << 2); store<u32>(c, load<u32>(c) + 1); }
    // An ATC_INV is outstanding until the next CMD_SYNC; only a queue with a cache model,
    // which can report its time-out, needs to know.
    if (effects) pending = (pending | (<u32>(op == CMDQ_OP_ATC_INV) * PEND_DEVTLB)) & ~(<u32>isSync * PEND_DEVTLB);
    // Rare (one per batch): kept in the control block rather than in a register.
    if (isSync) store<u32>(q + QB_LAST_SYNC, <u32>(dw0 >> 32));
    ro = (ro + 16) & ringMask;
  }
  const cons = (cons0 + count - left) & ptrMask;
  if (err) {
    stop = STOP_ERROR;
    store<u32>(q + QB_CONS, (consReg & ~(CONS_ERR_MASK | ptrMask)) | (err << CONS_ERR_SHIFT) | cons);
  } else {
    store<u32>(q + QB_CONS, (consReg & ~ptrMask) | cons);
  }
  store<u32>(q + QB_FX_COUNT, (fxPtr - fx) >>> 5);
  store<u32>(q + QB_LOG_LEN, logPtr - log);
  store<u32>(q + QB_PENDING, pending);
  store<u32>(q + QB_STOP, stop);
  return stop;
}

/**
 * dw0 of one guest command converted for the host queue (arm_vsmmu_convert_user_cmd,
 * smmuv3.md §5.6), or NOT_FOUND for a command the trapped path refuses (an all-ones dw0 has
 * opcode 0xff, refused anyway). dw1 is kept except for NSNH_ALL, which becomes NH_ALL with
 * dw1 = 0.
 */
@inline function vsmmuConvertDw0(dw0: u64, vmid: u64, sidtab: u32, sidLog2: u32): u64 {
  const op = <u32>dw0 & 0xff;
  // Opcode classes as bits of a mask, so the common commands take no unpredictable branch.
  if (op < 64 && ((VSMMU_STAMP >> <u64>op) & 1) != 0) {
    const base = select<u64>(<u64>CMDQ_OP_TLBI_NH_ALL, dw0, op == CMDQ_OP_TLBI_NSNH_ALL);
    return (base & 0xffff0000ffffffff) | (vmid << 32);
  }
  if (op == CMDQ_OP_ATC_INV || op == CMDQ_OP_CFGI_CD || op == CMDQ_OP_CFGI_CD_ALL) {
    const psid = sidLookup(sidtab, sidLog2, <u32>(dw0 >> 32));
    return psid == NOT_FOUND ? NOT_FOUND : (dw0 & 0xffffffff) | (psid << 32);
  }
  return NOT_FOUND;
}

/** Converts `n` guest commands at `src` in place; returns the index of the first refused one, or n. */
export function vsmmuConvert(src: u32, n: u32, vmid: u32, sidtab: u32, sidLog2: u32): u32 {
  const v = <u64>(vmid & 0xffff);
  for (let i: u32 = 0; i < n; i++) {
    const p = src + (i << 4);
    const dw0 = load<u64>(p);
    const c0 = vsmmuConvertDw0(dw0, v, sidtab, sidLog2);
    if (c0 == NOT_FOUND) return i;
    store<u64>(p, c0);
    if ((<u32>dw0 & 0xff) == CMDQ_OP_TLBI_NSNH_ALL) store<u64>(p, 0, 8);
  }
  return n;
}

/**
 * The trapped vSMMU invalidation end to end (BENCH.md vsmmu-mix): converts the guest array
 * at `src` in place, writes the commands into host queue `q` at PROD, appends a CMD_SYNC
 * (CS=IRQ, MSIData = index of the last command + 1) after every VSMMU_BATCH commands and
 * after the last one, and consumes the queue up to PROD at each SYNC. Writes VSMMU_* and
 * the reported index into `res`; returns the result code.
 */
export function vsmmuInvalidate(src: u32, n: u32, q: u32, vmid: u32, sidtab: u32, sidLog2: u32, res: u32): u32 {
  const v = <u64>(vmid & 0xffff);
  const log2 = load<u32>(q + QB_LOG2);
  const ptrMask: u32 = (2 << log2) - 1;
  const ringMask: u32 = (16 << log2) - 1;
  const pt = load<u32>(q + QB_PT);
  const flat = load<u32>(q + QB_RING_FLAT);
  let prod = load<u32>(q + QB_PROD) & ptrMask;
  let i: u32 = 0;
  while (i < n) {
    // One batch: up to VSMMU_BATCH converted commands, then the CMD_SYNC, then the doorbell.
    const start = i;
    const end = min<u32>(n, i + VSMMU_BATCH);
    let ro = (prod << 4) & ringMask;
    for (; i < end; i++) {
      const p = src + (i << 4);
      const dw0 = load<u64>(p);
      const c0 = vsmmuConvertDw0(dw0, v, sidtab, sidLog2);
      if (c0 == NOT_FOUND) {
        store<u32>(res + VS_RESULT, VSMMU_BAD_COMMAND);
        store<u32>(res + VS_INDEX, i);
        return VSMMU_BAD_COMMAND;
      }
      // The converted command goes to the array (in place, as the kernel's copy) and to the
      // ring from registers: re-reading the array would stall on store forwarding.
      const c1 = select<u64>(0, load<u64>(p, 8), (<u32>dw0 & 0xff) == CMDQ_OP_TLBI_NSNH_ALL);
      store<u64>(p, c0);
      store<u64>(p, c1, 8);
      // The wrapper only drives contiguous RAM rings here (QB_RING_FLAT is valid).
      const at = flat + ro;
      store<u64>(at, c0);
      store<u64>(at, c1, 8);
      ro = (ro + 16) & ringMask;
    }
    const s = flat + ro;
    store<u64>(s, <u64>CMDQ_OP_CMD_SYNC | (1 << 12) | (<u64>i << 32));
    store<u64>(s, 0, 8);
    prod = (prod + (i - start) + 1) & ptrMask;
    store<u32>(q + QB_PROD, prod);
    if (smmuConsume(q) != STOP_EMPTY) {
      store<u32>(res + VS_RESULT, VSMMU_ISSUE_ERROR);
      store<u32>(res + VS_INDEX, i - 1);
      return VSMMU_ISSUE_ERROR;
    }
  }
  store<u32>(res + VS_RESULT, VSMMU_OK);
  store<u32>(res + VS_INDEX, n);
  return VSMMU_OK;
}

// ---------------------------------------------------------------------------------------
// VT-d invalidation queue (vtd.md §3).
// ---------------------------------------------------------------------------------------

/** IQEI for descriptor (qw0..qw3) of `type`, or 0 when it is valid. */
@inline function vtdCheck(type: u32, qw0: u64, qw1: u64, qw2: u64, qw3: u64, flags: u32, mamv: u32): u32 {
  const wide = (flags & QF_DW256) != 0;
  const dit = (flags & QF_DIT) != 0;
  let r0: u64 = 0, r1: u64 = 0;
  let extra = false; // qw2/qw3 may carry data (page-group response private data)
  switch (type) {
    case QI_CC_TYPE:
      if (((qw0 >> 4) & 3) == 0) return IQEI_RESERVED;
      r0 = 0xfffc00000000ffc0; r1 = 0xffffffffffffffff; break;
    case QI_IOTLB_TYPE: {
      const g = (qw0 >> 4) & 3;
      if (g == 0 || (g == 3 && <u32>(qw1 & 0x3f) > mamv)) return IQEI_RESERVED;
      r0 = 0xffffffff0000ff00; r1 = 0xf80; break;
    }
    case QI_DIOTLB_TYPE:
      r0 = dit ? 0x000f0000ffe00ff8 : 0xffff0000ffe0fff8; r1 = 0xffe; break;
    case QI_IEC_TYPE:
      r0 = 0xffff000007fff1e0; r1 = 0xffffffffffffffff; break;
    case QI_IWD_TYPE:
      r0 = (flags & QF_PDS) ? 0xffffff00 : 0xffffff80; r1 = 3; break;
    case QI_EIOTLB_TYPE: {
      if (!wide) return IQEI_INVALID_WIDTH;
      const g = (qw0 >> 4) & 3;
      if (g < 2 || (g == 3 && <u32>(qw1 & 0x3f) > mamv)) return IQEI_RESERVED;
      r0 = 0xfff000000000f1c0; r1 = 0xf80; break;
    }
    case QI_PC_TYPE:
      if (!wide) return IQEI_INVALID_WIDTH;
      if (((qw0 >> 4) & 3) == 2) return IQEI_RESERVED;
      r0 = 0xfff000000000f1c0; r1 = 0xffffffffffffffff; break;
    case QI_DEIOTLB_TYPE:
      if (!wide) return IQEI_INVALID_WIDTH;
      r0 = dit ? 0 : 0xfff000000000f000; r1 = 0x7fe; break;
    case QI_PGRP_RESP_TYPE:
      r0 = 0xfff00000000001c0; r1 = 0xfffffffffffff003; extra = ((qw0 >> 5) & 1) != 0; break;
    default:
      return IQEI_INVALID_TYPE;
  }
  if ((qw0 & r0) | (qw1 & r1)) return IQEI_RESERVED;
  if (wide && !extra && (qw2 | qw3)) return IQEI_RESERVED;
  return 0;
}

@inline function vtdEffect(p: u32, type: u32, pos: u32, qw0: u64, qw1: u64, qw2: u64, qw3: u64): void {
  let w1: u64 = 0, w2: u64 = 0, w3: u64 = 0;
  switch (type) {
    case QI_CC_TYPE:
      w1 = ((qw0 >> 4) & 3) | (((qw0 >> 48) & 3) << 8) | (qw0 & 0xffff0000) | (qw0 & 0xffff00000000); break;
    case QI_IOTLB_TYPE:
      w1 = ((qw0 >> 4) & 0xf) | (qw0 & 0xffff0000); w2 = qw1 & ~(<u64>0xfff); w3 = qw1 & 0x7f; break;
    case QI_DIOTLB_TYPE:
      w1 = ((qw0 >> 32) & 0xffff) | (((qw0 >> 12) & 0xf) << 16) | (((qw0 >> 52) & 0xfff) << 20) | (((qw0 >> 16) & 0x1f) << 32);
      w2 = qw1 & ~(<u64>0xfff); w3 = qw1 & 1; break;
    case QI_IEC_TYPE:
      w1 = ((qw0 >> 4) & 1) | (((qw0 >> 27) & 0x1f) << 8) | (((qw0 >> 32) & 0xffff) << 16); break;
    case QI_IWD_TYPE:
      w1 = ((qw0 >> 4) & 0xf) | (qw0 & 0xffffffff00000000); w2 = qw1 & ~(<u64>3); break;
    case QI_EIOTLB_TYPE:
      w1 = ((qw0 >> 4) & 3) | (qw0 & 0xfffffffff0000); w2 = qw1 & ~(<u64>0xfff); w3 = qw1 & 0x7f; break;
    case QI_PC_TYPE:
      w1 = ((qw0 >> 4) & 3) | (qw0 & 0xfffffffff0000); break;
    case QI_DEIOTLB_TYPE:
      w1 = ((qw0 >> 16) & 0xffff) | (((qw0 >> 12) & 0xf) << 16) | (((qw0 >> 52) & 0xfff) << 20) |
        (qw0 & 0xfffff00000000) | (((qw0 >> 4) & 0x1f) << 56);
      w2 = qw1 & ~(<u64>0xfff); w3 = (qw1 & 1) | (((qw1 >> 11) & 1) << 1); break;
    default: // QI_PGRP_RESP_TYPE
      w1 = ((qw0 >> 16) & 0xffff) | (((qw0 >> 12) & 0xf) << 16) | (((qw0 >> 4) & 3) << 20) | (((qw1 >> 2) & 1) << 22) |
        (((qw1 >> 3) & 0x1ff) << 23) | (qw0 & 0xfffff00000000);
      w2 = qw2; w3 = qw3; break;
  }
  putFx(p, FX_VTD_BASE + type, pos, w1, w2, w3);
}

@inline function iqError(q: u32, head: u32, iqei: u32): u32 {
  store<u32>(q + QB_CONS, head);
  store<u32>(q + QB_FSTS, load<u32>(q + QB_FSTS) | FSTS_IQE);
  store<u32>(q + QB_IQER_LO, (load<u32>(q + QB_IQER_LO) & ~0xf) | iqei);
  store<u32>(q + QB_STOP, STOP_ERROR);
  return STOP_ERROR;
}

/**
 * Drains a VT-d invalidation queue from IQH to IQT (vtd.md §3.2): IQH stays on a bad
 * descriptor with FSTS.IQE and IQER.IQEI; a wait descriptor after a timed-out device-TLB
 * invalidation is aborted with FSTS.ITE. Returns the STOP_* reason.
 */
export function iqConsume(q: u32): u32 {
  const flags = load<u32>(q + QB_FLAGS);
  const fsts = load<u32>(q + QB_FSTS);
  if (fsts & (FSTS_IQE | FSTS_ITE)) { store<u32>(q + QB_STOP, STOP_HALTED); return STOP_HALTED; }
  const wide = (flags & QF_DW256) != 0;
  const shift: u32 = wide ? 5 : 4;
  const size: u32 = <u32>1 << (load<u32>(q + QB_LOG2) + shift);
  let head = load<u32>(q + QB_CONS) & (size - 1) & ~((<u32>1 << shift) - 1);
  const tailReg = load<u32>(q + QB_PROD);
  const tail = tailReg & 0x7fff0;
  if (tail >= size) return iqError(q, head, IQEI_INVALID_TAIL);
  if (wide && (tail & 0x10)) return iqError(q, head, IQEI_TAIL_MISALIGNED);
  const pt = load<u32>(q + QB_PT);
  const flat = load<u32>(q + QB_RING_FLAT);
  const fx = load<u32>(q + QB_FX);
  const fxCap = load<u32>(q + QB_FX_CAP);
  let fxCount = load<u32>(q + QB_FX_COUNT);
  const log = load<u32>(q + QB_LOG);
  const logCap = load<u32>(q + QB_LOG_CAP);
  let logLen = load<u32>(q + QB_LOG_LEN);
  const counters = load<u32>(q + QB_COUNTERS);
  const mamv = load<u32>(q + QB_MAMV);
  let pending = load<u32>(q + QB_PENDING);
  const effects = (flags & QF_EFFECTS) != 0;
  let stop: u32 = STOP_EMPTY;
  let iqei: u32 = 0;
  while (head != tail) {
    const at = ringAt(pt, flat, head);
    if (at == ABORT) { iqei = IQEI_FETCH; break; }
    const qw0 = load<u64>(at);
    const qw1 = load<u64>(at, 8);
    let qw2: u64 = 0, qw3: u64 = 0;
    if (wide) { qw2 = load<u64>(at, 16); qw3 = load<u64>(at, 24); }
    const type = (<u32>qw0 & 0xf) | ((<u32>(qw0 >> 9) & 7) << 4);
    iqei = vtdCheck(type, qw0, qw1, qw2, qw3, flags, mamv);
    if (iqei) break;
    if (type == QI_IWD_TYPE) {
      if ((pending & PEND_DEVTLB) && effects) { stop = STOP_BARRIER; break; }
      if (pending & PEND_TIMEOUT) {
        // ITE: the pending wait is aborted (no status write, no IWC) and fetching stops
        // until software clears FSTS.ITE; IQH has moved past the aborted wait.
        pending &= ~PEND_TIMEOUT;
        head = (head + (<u32>1 << shift)) & (size - 1);
        store<u32>(q + QB_FSTS, load<u32>(q + QB_FSTS) | FSTS_ITE);
        store<u32>(q + QB_IQER_HI, (load<u32>(q + QB_IQER_HI) & 0xffff0000) | (load<u32>(q + QB_FAULT_SID) & 0xffff));
        stop = STOP_ERROR;
        break;
      }
    }
    if (effects && fxCount == fxCap) { stop = STOP_EFFECTS_FULL; break; }
    if (log) {
      const w: u32 = <u32>1 << shift;
      if (logLen + w > logCap) { stop = STOP_LOG_FULL; break; }
      store<u64>(log + logLen, qw0);
      store<u64>(log + logLen, qw1, 8);
      if (wide) { store<u64>(log + logLen, qw2, 16); store<u64>(log + logLen, qw3, 24); }
      logLen += w;
    }
    if (effects) { vtdEffect(fx + (fxCount << 5), type, head >>> shift, qw0, qw1, qw2, qw3); fxCount++; }
    if (counters) { const c = counters + (type << 2); store<u32>(c, load<u32>(c) + 1); }
    if (type == QI_DIOTLB_TYPE || type == QI_DEIOTLB_TYPE) pending |= PEND_DEVTLB;
    else if (type == QI_IWD_TYPE) pending &= ~PEND_DEVTLB;
    head = (head + (<u32>1 << shift)) & (size - 1);
  }
  store<u32>(q + QB_FX_COUNT, fxCount);
  store<u32>(q + QB_LOG_LEN, logLen);
  store<u32>(q + QB_PENDING, pending);
  if (iqei) return iqError(q, head, iqei);
  store<u32>(q + QB_CONS, head);
  store<u32>(q + QB_STOP, stop);
  return stop;
}
