/**
 * The TypeScript twin of asm/engine.ts: the same four entry points with the same semantics,
 * reading the very same structures in the PhysicalStore's memory through a Uint32Array
 * (u64 fields as lo/hi halves, no BigInt in the loop). Used where WebAssembly is not
 * available; the differential tests hold it byte-identical to the WebAssembly engine.
 */
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
} from './abi.js';

/**
 * The entry points both engines export; every argument is a byte offset into the shared
 * memory or a plain integer (the WebAssembly ABI). Queue state lives in the control block.
 */
export interface EngineCore {
  /** Consumes the SMMU queue of control block `q` from CONS to PROD; returns a STOP_* code. */
  smmuConsume(q: number): number;
  /** Converts `n` guest commands at `src` in place; returns the index of the first refused one, or `n`. */
  vsmmuConvert(src: number, n: number, vmid: number, sidtab: number, sidLog2: number): number;
  /** Converts, issues and consumes `n` guest commands through host queue `q`; returns a VSMMU_* code (index at `res` + 4). */
  vsmmuInvalidate(src: number, n: number, q: number, vmid: number, sidtab: number, sidLog2: number, res: number): number;
  /** Drains the VT-d queue of control block `q` from IQH to IQT; returns a STOP_* code. */
  iqConsume(q: number): number;
}

const ABORT = 0xffffffff;
const ALL = 0xffffffff;

/** Reserved-bit masks of each VT-d descriptor type, [qw0 lo, qw0 hi, qw1 lo, qw1 hi] (vtd.md §6.2). */
const VTD_RSVD: Record<number, readonly [number, number, number, number]> = {
  [QI_CC_TYPE]: [0x0000ffc0, 0xfffc0000, ALL, ALL],
  [QI_IOTLB_TYPE]: [0x0000ff00, 0xffffffff, 0xf80, 0],
  [QI_IEC_TYPE]: [0x07fff1e0, 0xffff0000, ALL, ALL],
  [QI_EIOTLB_TYPE]: [0x0000f1c0, 0xfff00000, 0xf80, 0],
  [QI_PC_TYPE]: [0x0000f1c0, 0xfff00000, ALL, ALL],
  [QI_PGRP_RESP_TYPE]: [0x000001c0, 0xfff00000, 0xfffff003, ALL],
};

/** The TypeScript engine over `memory`. */
export class TsEngineCore implements EngineCore {
  private m: Uint32Array;
  constructor(private readonly memory: WebAssembly.Memory) {
    this.m = new Uint32Array(memory.buffer);
  }

  private mem(): Uint32Array {
    if (this.m.buffer !== this.memory.buffer) this.m = new Uint32Array(this.memory.buffer);
    return this.m;
  }

  /** Word index of ring byte `byteOff`, or -1 when that page is not RAM. */
  private static ringAt(m: Uint32Array, pt: number, flat: number, byteOff: number): number {
    if (flat !== ABORT) return (flat + byteOff) >>> 2;
    const frame = m[(pt + ((byteOff >>> 12) << 2)) >>> 2]!;
    return frame === ABORT ? -1 : (frame + (byteOff & 4095)) >>> 2;
  }

  private static sidLookup(m: Uint32Array, tab: number, log2: number, key: number): number {
    if (log2 === 0) return -1;
    const mask = (1 << log2) - 1;
    let slot = Math.imul(key, 0x9e3779b1) >>> (32 - log2);
    for (;;) {
      const p = (tab + (slot << 4)) >>> 2;
      if (m[p] === 0) return -1;
      if (m[p + 1] === key) return m[p + 2]!;
      slot = (slot + 1) & mask;
    }
  }

  private static putFx(m: Uint32Array, p: number, kind: number, pos: number,
    w1l: number, w1h: number, w2l: number, w2h: number, w3l: number, w3h: number): void {
    m[p] = kind; m[p + 1] = pos; m[p + 2] = w1l; m[p + 3] = w1h; m[p + 4] = w2l; m[p + 5] = w2h; m[p + 6] = w3l; m[p + 7] = w3h;
  }

  private static smmuEffect(m: Uint32Array, p: number, op: number, pos: number, lo0: number, hi0: number, lo1: number, hi1: number): void {
    let w1l = 0, w1h = 0, w2l = 0, w2h = 0, w3l = 0;
    const sidHi = ((lo0 >>> 12) & 0xfffff) | (((lo0 >>> 11) & 1) << 20);
    const range = (lo1 & 0xfff) | (((lo0 >>> 12) & 0x1f) << 16) | (((lo0 >>> 20) & 0x1f) << 24);
    switch (op) {
      case CMDQ_OP_PREFETCH_CFG: w1l = hi0; w1h = sidHi; break;
      case CMDQ_OP_PREFETCH_ADDR: w1l = hi0; w1h = sidHi; w2l = lo1 & 0xfffff000; w2h = hi1; w3l = lo1 & 0x1f; break;
      case CMDQ_OP_CFGI_STE: w1l = hi0; w3l = lo1 & 1; break;
      case CMDQ_OP_CFGI_STE_RANGE: w1l = hi0; w3l = lo1 & 0x1f; break;
      case CMDQ_OP_CFGI_CD: w1l = hi0; w1h = sidHi; w3l = lo1 & 1; break;
      case CMDQ_OP_CFGI_CD_ALL: case CMDQ_OP_STALL_TERM: w1l = hi0; break;
      case CMDQ_OP_TLBI_NH_ALL: case CMDQ_OP_TLBI_S12_VMALL: w1l = hi0 & 0xffff; break;
      case CMDQ_OP_TLBI_NH_ASID: w1l = hi0; break;
      case CMDQ_OP_TLBI_EL2_ASID: w1l = hi0 & 0xffff0000; break;
      case CMDQ_OP_TLBI_NH_VA: w1l = hi0; w2l = lo1 & 0xfffff000; w2h = hi1; w3l = range; break;
      case CMDQ_OP_TLBI_NH_VAA: w1l = hi0 & 0xffff; w2l = lo1 & 0xfffff000; w2h = hi1; w3l = range; break;
      case CMDQ_OP_TLBI_EL2_VA: w1l = hi0 & 0xffff0000; w2l = lo1 & 0xfffff000; w2h = hi1; w3l = range; break;
      case CMDQ_OP_TLBI_EL2_VAA: case CMDQ_OP_TLBI_EL3_VA: w2l = lo1 & 0xfffff000; w2h = hi1; w3l = range; break;
      case CMDQ_OP_TLBI_S2_IPA: w1l = hi0 & 0xffff; w2l = lo1 & 0xfffff000; w2h = hi1 & 0xfffff; w3l = range; break;
      case CMDQ_OP_ATC_INV: w1l = hi0; w1h = sidHi | (((lo0 >>> 9) & 1) << 21); w2l = lo1 & 0xfffff000; w2h = hi1; w3l = lo1 & 0x3f; break;
      case CMDQ_OP_PRI_RESP: w1l = hi0; w1h = sidHi; w3l = lo1 & 0x31ff; break;
      case CMDQ_OP_RESUME: w1l = hi0; w3l = (lo1 & 0xffff) | (((lo0 >>> 12) & 3) << 16); break;
      case CMDQ_OP_CMD_SYNC:
        w1l = ((lo0 >>> 12) & 3) | (((lo0 >>> 22) & 3) << 4) | (((lo0 >>> 24) & 0xf) << 8);
        w1h = hi0; w2l = lo1 & 0xfffffffc; w2h = hi1 & 0xfffff;
        break;
      default: break;
    }
    TsEngineCore.putFx(m, p, op, pos, w1l, w1h, w2l, w2h, w3l, 0);
  }

  smmuConsume(q: number): number {
    const m = this.mem();
    const Q = q >>> 2;
    const log2 = m[Q + QB_LOG2 / 4]!;
    const ptrMask = (2 << log2) - 1;
    const idxMask = (1 << log2) - 1;
    const prod = m[Q + QB_PROD / 4]! & ptrMask;
    const consReg = m[Q + QB_CONS / 4]!;
    let cons = consReg & ptrMask;
    const flags = m[Q + QB_FLAGS / 4]!;
    const pt = m[Q + QB_PT / 4]!;
    const flat = m[Q + QB_RING_FLAT / 4]!;
    const fx = m[Q + QB_FX / 4]!;
    const fxCap = m[Q + QB_FX_CAP / 4]!;
    let fxCount = m[Q + QB_FX_COUNT / 4]!;
    const log = m[Q + QB_LOG / 4]!;
    const logCap = m[Q + QB_LOG_CAP / 4]!;
    let logLen = m[Q + QB_LOG_LEN / 4]!;
    const counters = m[Q + QB_COUNTERS / 4]!;
    let pending = m[Q + QB_PENDING / 4]!;
    let lastSync = m[Q + QB_LAST_SYNC / 4]!;
    const vmid = m[Q + QB_VMID / 4]! & 0xffff;
    const sidtab = m[Q + QB_SIDTAB / 4]!;
    const sidLog2 = m[Q + QB_SIDTAB_LOG2 / 4]!;
    const effects = (flags & QF_EFFECTS) !== 0;
    let err = 0;
    let stop = STOP_EMPTY;
    while (cons !== prod) {
      const at = TsEngineCore.ringAt(m, pt, flat, (cons & idxMask) << 4);
      if (at < 0) { err = CERROR_ABT; break; }
      const lo0 = m[at]!;
      let hi0 = m[at + 1]!;
      const lo1 = m[at + 2]!;
      const hi1 = m[at + 3]!;
      const op = lo0 & 0xff;
      if (flags & QF_GUEST) {
        if (op === CMDQ_OP_TLBI_NH_ASID || op === CMDQ_OP_TLBI_NH_VA) {
          hi0 = ((hi0 & 0xffff0000) | vmid) >>> 0;
        } else if (op === CMDQ_OP_ATC_INV) {
          const psid = TsEngineCore.sidLookup(m, sidtab, sidLog2, hi0);
          if (psid < 0) { err = CERROR_ILL; break; }
          hi0 = psid;
        }
      }
      const legal = q + QB_LEGAL + op;
      if (((m[legal >>> 2]! >>> ((legal & 3) << 3)) & 0xff) === 0 || (lo0 & 0x400)) { err = CERROR_ILL; break; }
      if (op === CMDQ_OP_CMD_SYNC) {
        if (((lo0 >>> 12) & 3) === 3) { err = CERROR_ILL; break; }
        if ((pending & PEND_DEVTLB) && effects) { stop = STOP_BARRIER; break; }
        if (pending & PEND_TIMEOUT) { pending &= ~PEND_TIMEOUT; err = CERROR_ATC_INV_SYNC; break; }
      }
      if (effects && fxCount === fxCap) { stop = STOP_EFFECTS_FULL; break; }
      if (log) {
        if (logLen + 16 > logCap) { stop = STOP_LOG_FULL; break; }
        const l = (log + logLen) >>> 2;
        m[l] = lo0; m[l + 1] = hi0; m[l + 2] = lo1; m[l + 3] = hi1;
        logLen += 16;
      }
      if (effects) { TsEngineCore.smmuEffect(m, (fx + (fxCount << 5)) >>> 2, op, cons, lo0, hi0, lo1, hi1); fxCount++; }
      if (counters) m[(counters >>> 2) + ((cons & 1) << 8) + op]!++; // bank = ring index parity
      if (effects && op === CMDQ_OP_ATC_INV) pending |= PEND_DEVTLB;
      else if (op === CMDQ_OP_CMD_SYNC) { pending &= ~PEND_DEVTLB; lastSync = hi0; }
      cons = (cons + 1) & ptrMask;
    }
    if (err) {
      stop = STOP_ERROR;
      m[Q + QB_CONS / 4] = (consReg & ~(CONS_ERR_MASK | ptrMask)) | (err << CONS_ERR_SHIFT) | cons;
    } else {
      m[Q + QB_CONS / 4] = (consReg & ~ptrMask) | cons;
    }
    m[Q + QB_FX_COUNT / 4] = fxCount;
    m[Q + QB_LOG_LEN / 4] = logLen;
    m[Q + QB_PENDING / 4] = pending;
    m[Q + QB_LAST_SYNC / 4] = lastSync;
    m[Q + QB_STOP / 4] = stop;
    return stop;
  }

  /** Converts the command at word index `p` in place; false when the trapped path refuses it. */
  private static vsmmuConvertAt(m: Uint32Array, p: number, vmid: number, sidtab: number, sidLog2: number): boolean {
    switch (m[p]! & 0xff) {
      case CMDQ_OP_TLBI_NSNH_ALL:
        m[p] = CMDQ_OP_TLBI_NH_ALL; m[p + 1] = vmid; m[p + 2] = 0; m[p + 3] = 0;
        return true;
      case CMDQ_OP_TLBI_NH_VA: case CMDQ_OP_TLBI_NH_VAA: case CMDQ_OP_TLBI_NH_ALL: case CMDQ_OP_TLBI_NH_ASID:
        m[p + 1] = (m[p + 1]! & 0xffff0000) | vmid;
        return true;
      case CMDQ_OP_ATC_INV: case CMDQ_OP_CFGI_CD: case CMDQ_OP_CFGI_CD_ALL: {
        const psid = TsEngineCore.sidLookup(m, sidtab, sidLog2, m[p + 1]!);
        if (psid < 0) return false;
        m[p + 1] = psid;
        return true;
      }
      default:
        return false;
    }
  }

  vsmmuConvert(src: number, n: number, vmid: number, sidtab: number, sidLog2: number): number {
    const m = this.mem();
    const v = vmid & 0xffff;
    for (let i = 0; i < n; i++) {
      if (!TsEngineCore.vsmmuConvertAt(m, (src + (i << 4)) >>> 2, v, sidtab, sidLog2)) return i;
    }
    return n;
  }

  vsmmuInvalidate(src: number, n: number, q: number, vmid: number, sidtab: number, sidLog2: number, res: number): number {
    const m = this.mem();
    const Q = q >>> 2;
    const R = res >>> 2;
    const v = vmid & 0xffff;
    const log2 = m[Q + QB_LOG2 / 4]!;
    const ptrMask = (2 << log2) - 1;
    const idxMask = (1 << log2) - 1;
    const pt = m[Q + QB_PT / 4]!;
    const flat = m[Q + QB_RING_FLAT / 4]!;
    let prod = m[Q + QB_PROD / 4]! & ptrMask;
    let inBatch = 0;
    for (let i = 0; i < n; i++) {
      const p = (src + (i << 4)) >>> 2;
      if (!TsEngineCore.vsmmuConvertAt(m, p, v, sidtab, sidLog2)) {
        m[R + VS_RESULT / 4] = VSMMU_BAD_COMMAND;
        m[R + VS_INDEX / 4] = i;
        return VSMMU_BAD_COMMAND;
      }
      const at = TsEngineCore.ringAt(m, pt, flat, (prod & idxMask) << 4);
      m[at] = m[p]!; m[at + 1] = m[p + 1]!; m[at + 2] = m[p + 2]!; m[at + 3] = m[p + 3]!;
      prod = (prod + 1) & ptrMask;
      inBatch++;
      if (inBatch === VSMMU_BATCH || i + 1 === n) {
        const s = TsEngineCore.ringAt(m, pt, flat, (prod & idxMask) << 4);
        m[s] = CMDQ_OP_CMD_SYNC | (1 << 12); m[s + 1] = i + 1; m[s + 2] = 0; m[s + 3] = 0;
        prod = (prod + 1) & ptrMask;
        m[Q + QB_PROD / 4] = prod;
        if (this.smmuConsume(q) !== STOP_EMPTY) {
          m[R + VS_RESULT / 4] = VSMMU_ISSUE_ERROR;
          m[R + VS_INDEX / 4] = i;
          return VSMMU_ISSUE_ERROR;
        }
        inBatch = 0;
      }
    }
    m[R + VS_RESULT / 4] = VSMMU_OK;
    m[R + VS_INDEX / 4] = n;
    return VSMMU_OK;
  }

  private static vtdCheck(type: number, lo0: number, hi0: number, lo1: number, hi1: number, rest: number,
    flags: number, mamv: number): number {
    const wide = (flags & QF_DW256) !== 0;
    const dit = (flags & QF_DIT) !== 0;
    let r: readonly [number, number, number, number];
    let extra = false;
    switch (type) {
      case QI_CC_TYPE:
        if (((lo0 >>> 4) & 3) === 0) return IQEI_RESERVED;
        r = VTD_RSVD[type]!; break;
      case QI_IOTLB_TYPE: {
        const g = (lo0 >>> 4) & 3;
        if (g === 0 || (g === 3 && (lo1 & 0x3f) > mamv)) return IQEI_RESERVED;
        r = VTD_RSVD[type]!; break;
      }
      case QI_DIOTLB_TYPE:
        r = dit ? [0xffe00ff8, 0x000f0000, 0xffe, 0] : [0xffe0fff8, 0xffff0000, 0xffe, 0]; break;
      case QI_IEC_TYPE:
        r = VTD_RSVD[type]!; break;
      case QI_IWD_TYPE:
        r = [(flags & QF_PDS) ? 0xffffff00 : 0xffffff80, 0, 3, 0]; break;
      case QI_EIOTLB_TYPE: {
        if (!wide) return IQEI_INVALID_WIDTH;
        const g = (lo0 >>> 4) & 3;
        if (g < 2 || (g === 3 && (lo1 & 0x3f) > mamv)) return IQEI_RESERVED;
        r = VTD_RSVD[type]!; break;
      }
      case QI_PC_TYPE:
        if (!wide) return IQEI_INVALID_WIDTH;
        if (((lo0 >>> 4) & 3) === 2) return IQEI_RESERVED;
        r = VTD_RSVD[type]!; break;
      case QI_DEIOTLB_TYPE:
        if (!wide) return IQEI_INVALID_WIDTH;
        r = dit ? [0, 0, 0x7fe, 0] : [0x0000f000, 0xfff00000, 0x7fe, 0]; break;
      case QI_PGRP_RESP_TYPE:
        r = VTD_RSVD[type]!; extra = ((lo0 >>> 5) & 1) !== 0; break;
      default:
        return IQEI_INVALID_TYPE;
    }
    if ((lo0 & r[0]) | (hi0 & r[1]) | (lo1 & r[2]) | (hi1 & r[3])) return IQEI_RESERVED;
    if (wide && !extra && rest) return IQEI_RESERVED;
    return 0;
  }

  private static vtdEffect(m: Uint32Array, p: number, type: number, pos: number, d: number, wide: boolean): void {
    const lo0 = m[d]!, hi0 = m[d + 1]!, lo1 = m[d + 2]!, hi1 = m[d + 3]!;
    let w1l = 0, w1h = 0, w2l = 0, w2h = 0, w3l = 0, w3h = 0;
    const addrL = lo1 & 0xfffff000;
    const pfsid = (((lo0 >>> 12) & 0xf) << 16) | (((hi0 >>> 20) & 0xfff) << 20);
    switch (type) {
      case QI_CC_TYPE:
        w1l = ((lo0 >>> 4) & 3) | (((hi0 >>> 16) & 3) << 8) | (lo0 & 0xffff0000); w1h = hi0 & 0xffff; break;
      case QI_IOTLB_TYPE:
        w1l = ((lo0 >>> 4) & 0xf) | (lo0 & 0xffff0000); w2l = addrL; w2h = hi1; w3l = lo1 & 0x7f; break;
      case QI_DIOTLB_TYPE:
        w1l = (hi0 & 0xffff) | pfsid; w1h = (lo0 >>> 16) & 0x1f; w2l = addrL; w2h = hi1; w3l = lo1 & 1; break;
      case QI_IEC_TYPE:
        w1l = ((lo0 >>> 4) & 1) | (((lo0 >>> 27) & 0x1f) << 8) | ((hi0 & 0xffff) << 16); break;
      case QI_IWD_TYPE:
        w1l = (lo0 >>> 4) & 0xf; w1h = hi0; w2l = lo1 & 0xfffffffc; w2h = hi1; break;
      case QI_EIOTLB_TYPE:
        w1l = ((lo0 >>> 4) & 3) | (lo0 & 0xffff0000); w1h = hi0 & 0xfffff; w2l = addrL; w2h = hi1; w3l = lo1 & 0x7f; break;
      case QI_PC_TYPE:
        w1l = ((lo0 >>> 4) & 3) | (lo0 & 0xffff0000); w1h = hi0 & 0xfffff; break;
      case QI_DEIOTLB_TYPE:
        w1l = ((lo0 >>> 16) & 0xffff) | pfsid; w1h = (hi0 & 0xfffff) | (((lo0 >>> 4) & 0x1f) << 24);
        w2l = addrL; w2h = hi1; w3l = (lo1 & 1) | (((lo1 >>> 11) & 1) << 1); break;
      default: // QI_PGRP_RESP_TYPE
        w1l = ((lo0 >>> 16) & 0xffff) | (((lo0 >>> 12) & 0xf) << 16) | (((lo0 >>> 4) & 3) << 20) |
          (((lo1 >>> 2) & 1) << 22) | (((lo1 >>> 3) & 0x1ff) << 23);
        w1h = hi0 & 0xfffff;
        if (wide) { w2l = m[d + 4]!; w2h = m[d + 5]!; w3l = m[d + 6]!; w3h = m[d + 7]!; }
        break;
    }
    TsEngineCore.putFx(m, p, FX_VTD_BASE + type, pos, w1l, w1h, w2l, w2h, w3l, w3h);
  }

  private static iqError(m: Uint32Array, Q: number, head: number, iqei: number): number {
    m[Q + QB_CONS / 4] = head;
    m[Q + QB_FSTS / 4] = m[Q + QB_FSTS / 4]! | FSTS_IQE;
    m[Q + QB_IQER_LO / 4] = (m[Q + QB_IQER_LO / 4]! & ~0xf) | iqei;
    m[Q + QB_STOP / 4] = STOP_ERROR;
    return STOP_ERROR;
  }

  iqConsume(q: number): number {
    const m = this.mem();
    const Q = q >>> 2;
    const flags = m[Q + QB_FLAGS / 4]!;
    const fsts = m[Q + QB_FSTS / 4]!;
    if (fsts & (FSTS_IQE | FSTS_ITE)) { m[Q + QB_STOP / 4] = STOP_HALTED; return STOP_HALTED; }
    const wide = (flags & QF_DW256) !== 0;
    const shift = wide ? 5 : 4;
    const width = 1 << shift;
    const size = 1 << (m[Q + QB_LOG2 / 4]! + shift);
    let head = m[Q + QB_CONS / 4]! & (size - 1) & ~(width - 1);
    const tail = m[Q + QB_PROD / 4]! & 0x7fff0;
    if (tail >= size) return TsEngineCore.iqError(m, Q, head, IQEI_INVALID_TAIL);
    if (wide && (tail & 0x10)) return TsEngineCore.iqError(m, Q, head, IQEI_TAIL_MISALIGNED);
    const pt = m[Q + QB_PT / 4]!;
    const flat = m[Q + QB_RING_FLAT / 4]!;
    const fx = m[Q + QB_FX / 4]!;
    const fxCap = m[Q + QB_FX_CAP / 4]!;
    let fxCount = m[Q + QB_FX_COUNT / 4]!;
    const log = m[Q + QB_LOG / 4]!;
    const logCap = m[Q + QB_LOG_CAP / 4]!;
    let logLen = m[Q + QB_LOG_LEN / 4]!;
    const counters = m[Q + QB_COUNTERS / 4]!;
    const mamv = m[Q + QB_MAMV / 4]!;
    let pending = m[Q + QB_PENDING / 4]!;
    const effects = (flags & QF_EFFECTS) !== 0;
    let stop = STOP_EMPTY;
    let iqei = 0;
    while (head !== tail) {
      const at = TsEngineCore.ringAt(m, pt, flat, head);
      if (at < 0) { iqei = IQEI_FETCH; break; }
      const lo0 = m[at]!, hi0 = m[at + 1]!, lo1 = m[at + 2]!, hi1 = m[at + 3]!;
      const rest = wide ? (m[at + 4]! | m[at + 5]! | m[at + 6]! | m[at + 7]!) : 0;
      const type = (lo0 & 0xf) | (((lo0 >>> 9) & 7) << 4);
      iqei = TsEngineCore.vtdCheck(type, lo0, hi0, lo1, hi1, rest, flags, mamv);
      if (iqei) break;
      if (type === QI_IWD_TYPE) {
        if ((pending & PEND_DEVTLB) && effects) { stop = STOP_BARRIER; break; }
        if (pending & PEND_TIMEOUT) {
          pending &= ~PEND_TIMEOUT;
          head = (head + width) & (size - 1);
          m[Q + QB_FSTS / 4] = m[Q + QB_FSTS / 4]! | FSTS_ITE;
          m[Q + QB_IQER_HI / 4] = (m[Q + QB_IQER_HI / 4]! & 0xffff0000) | (m[Q + QB_FAULT_SID / 4]! & 0xffff);
          stop = STOP_ERROR;
          break;
        }
      }
      if (effects && fxCount === fxCap) { stop = STOP_EFFECTS_FULL; break; }
      if (log) {
        if (logLen + width > logCap) { stop = STOP_LOG_FULL; break; }
        m.copyWithin((log + logLen) >>> 2, at, at + (width >>> 2));
        logLen += width;
      }
      if (effects) { TsEngineCore.vtdEffect(m, (fx + (fxCount << 5)) >>> 2, type, head >>> shift, at, wide); fxCount++; }
      if (counters) m[(counters >>> 2) + type]!++;
      if (type === QI_DIOTLB_TYPE || type === QI_DEIOTLB_TYPE) pending |= PEND_DEVTLB;
      else if (type === QI_IWD_TYPE) pending &= ~PEND_DEVTLB;
      head = (head + width) & (size - 1);
    }
    m[Q + QB_FX_COUNT / 4] = fxCount;
    m[Q + QB_LOG_LEN / 4] = logLen;
    m[Q + QB_PENDING / 4] = pending;
    if (iqei) return TsEngineCore.iqError(m, Q, head, iqei);
    m[Q + QB_CONS / 4] = head;
    m[Q + QB_STOP / 4] = stop;
    return stop;
  }
}
