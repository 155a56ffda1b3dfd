/**
 * NVIDIA Tegra241 CMDQV (reference/smmuv3.md §6): extra SMMU command queues (VCMDQs) grouped
 * into virtual interfaces (VINTFs). The hardware consumes each VCMDQ directly; a guest-owned
 * VINTF (HYP_OWN = 0) only executes the commands a guest queue may carry, with its VMID
 * stamped in and virtual StreamIDs replaced through the SID match/replace slots.
 */
import { defineBitLayout } from './bitfield.js';
import type { CommandExecutor } from './cmdq.js';
import type { MmioDevice } from './memory.js';
import { queuePointer } from './queue.js';
import { CMD_SYNC_CS, CMDQ_ERR, CMDQ_OP, SMMU_CMD, SMMU_CMD_SYNC, SMMU_CMD_TLBI, SMMU_IDR1, SMMU_MMIO_SIZE } from './smmuv3-layouts.js';
import { SmmuV3, type SmmuV3Options } from './smmuv3.js';

/** CMDQV global register offsets (config page) and page bases. */
export const TEGRA241_CMDQV_REG = {
  CONFIG: 0x000,
  PARAM: 0x004,
  STATUS: 0x008,
  VINTF_ERR_MAP: 0x014,
  VINTF_INT_MASK: 0x01c,
  CMDQ_ERR_MAP: 0x024,
  CMDQ_ALLOC: 0x200,
  /** VINTF v register block at VINTF_BASE + VINTF_STRIDE·v. */
  VINTF_BASE: 0x1000,
  VINTF_STRIDE: 0x100,
  VINTF_CONFIG: 0x00,
  VINTF_STATUS: 0x04,
  VINTF_SID_MATCH: 0x40,
  VINTF_SID_REPLACE: 0x80,
  VINTF_LVCMDQ_ERR_MAP: 0xc0,
  /** Global VCMDQ page 0 / page 1. */
  VCMDQ_PAGE0: 0x10000,
  VCMDQ_PAGE1: 0x20000,
  /** VINTF i page 0 at VINTF_PAGE0 + VINTF_PAGE_STRIDE·i; page 1 at +0x10000. */
  VINTF_PAGE0: 0x30000,
  VINTF_PAGE_STRIDE: 0x20000,
  /** Queue stride inside a VCMDQ page. */
  VCMDQ_STRIDE: 0x80,
  VCMDQ_CONS: 0x00,
  VCMDQ_PROD: 0x04,
  VCMDQ_CONFIG: 0x08,
  VCMDQ_STATUS: 0x0c,
  VCMDQ_GERROR: 0x10,
  VCMDQ_GERRORN: 0x14,
  VCMDQ_BASE: 0x00,
  VCMDQ_CONS_INDX_BASE: 0x08,
} as const;

/** CMDQV CONFIG. */
export const CMDQV_CONFIG = defineBitLayout('CMDQV_CONFIG', 1, [
  ['CMDQV_EN', 0, 0, 0],
  ['PER_CMD_OFFSET', 0, 3, 1],
  ['MAX_CLK_BATCH', 0, 11, 4],
  ['MAX_CMD_BATCH', 0, 19, 12],
  ['CONS_DRAM_EN', 0, 20, 20],
] as const);
/** CMDQV PARAM. */
export const CMDQV_PARAM = defineBitLayout('CMDQV_PARAM', 1, [
  ['VER', 0, 3, 0],
  ['NUM_VCMDQ_LOG2', 0, 7, 4],
  ['NUM_VINTF_LOG2', 0, 11, 8],
  ['NUM_SID_PER_VM_LOG2', 0, 15, 12],
] as const);
/** CMDQ_ALLOC(q). */
export const CMDQV_CMDQ_ALLOC = defineBitLayout('CMDQ_ALLOC', 1, [
  ['ALLOCATED', 0, 0, 0],
  ['LVCMDQ', 0, 7, 1],
  ['VINTF', 0, 20, 15],
] as const);
/** VINTF CONFIG. */
export const VINTF_CONFIG = defineBitLayout('VINTF_CONFIG', 1, [
  ['EN', 0, 0, 0],
  ['VMID', 0, 16, 1],
  ['HYP_OWN', 0, 17, 17],
] as const);
/** VINTF STATUS. */
export const VINTF_STATUS = defineBitLayout('VINTF_STATUS', 1, [
  ['ENABLED', 0, 0, 0],
  ['STATUS', 0, 3, 1],
  ['VI_NUM_LVCMDQ', 0, 23, 16],
] as const);
/** VINTF SID_MATCH(s). */
export const VINTF_SID_MATCH = defineBitLayout('SID_MATCH', 1, [
  ['ENABLE', 0, 0, 0],
  ['VIRT_SID', 0, 20, 1],
] as const);
/** VINTF SID_REPLACE(s). */
export const VINTF_SID_REPLACE = defineBitLayout('SID_REPLACE', 1, [['PHYS_SID', 0, 19, 0]] as const);
/** VCMDQ CONS. */
export const VCMDQ_CONS = defineBitLayout('VCMDQ_CONS', 1, [
  ['RD', 0, 19, 0],
  ['ERR', 0, 30, 24],
] as const);
/** VCMDQ BASE (page 1). */
export const VCMDQ_BASE = defineBitLayout('VCMDQ_BASE', 1, [
  ['LOG2SIZE', 0, 4, 0],
  ['ADDR', 0, 47, 5],
] as const);
/** VCMDQ GERROR / GERRORN. */
export const VCMDQ_GERROR = defineBitLayout('VCMDQ_GERROR', 1, [
  ['CMDQ_ERR', 0, 0, 0],
  ['CONS_DRAM_WR_ABT_ERR', 0, 1, 1],
  ['CMDQ_INIT_ERR', 0, 2, 2],
] as const);

/** Sizes of the CMDQV (PARAM). */
export interface Tegra241CmdqvOptions {
  /** log2 of the number of VCMDQs. Default 4 (16). */
  readonly vcmdqsLog2?: number;
  /** log2 of the number of VINTFs. Default 2 (4). */
  readonly vintfsLog2?: number;
  /** log2 of SID match/replace slots per VINTF. Default 4 (16). */
  readonly sidsPerVintfLog2?: number;
}

interface Vcmdq {
  cons: number;
  prod: number;
  config: number;
  gerror: number;
  gerrorn: number;
  base: bigint;
  consIndxBase: bigint;
}
interface Vintf {
  config: number;
  sidMatch: number[];
  sidReplace: number[];
  lvcmdqErrMap: bigint;
}

/** Commands a guest-owned VINTF's queues execute (what Linux routes there); others are CERROR_ILL. */
const GUEST_OPCODES: ReadonlySet<number> = new Set([CMDQ_OP.TLBI_NH_ASID, CMDQ_OP.TLBI_NH_VA, CMDQ_OP.ATC_INV, CMDQ_OP.CMD_SYNC]);

/** The CMDQV register file attached to an {@link SmmuV3}. */
export class Tegra241Cmdqv implements MmioDevice {
  /** Register-file size: config page, two global VCMDQ pages, two pages per VINTF. */
  readonly mmioSize: bigint;
  /** Number of VCMDQs. */
  readonly numVcmdqs: number;
  /** Number of VINTFs. */
  readonly numVintfs: number;
  /** SID slots per VINTF. */
  readonly sidsPerVintf: number;
  /** CMDQV interrupts signalled. */
  interrupts = 0;
  private config = 0x0002_0403;
  private vintfErrMap = 0n;
  private vintfIntMask = 0n;
  private cmdqErrMap = 0n;
  private readonly alloc: number[];
  private readonly queues: Vcmdq[];
  private readonly vintfs: Vintf[];
  private readonly param: number;

  constructor(
    /** The SMMU whose caches the queues' commands act on. */
    readonly smmu: SmmuV3,
    options: Tegra241CmdqvOptions = {},
  ) {
    const q = options.vcmdqsLog2 ?? 4;
    const v = options.vintfsLog2 ?? 2;
    const s = options.sidsPerVintfLog2 ?? 4;
    for (const [name, val, hi] of [['vcmdqsLog2', q, 7], ['vintfsLog2', v, 6], ['sidsPerVintfLog2', s, 4]] as const) {
      if (!Number.isInteger(val) || val < 0 || val > hi) throw new RangeError(`${name} must be an integer in 0..${hi}, got ${val}`);
    }
    if (v > q) throw new RangeError(`vintfsLog2 (${v}) must not exceed vcmdqsLog2 (${q}): every VINTF needs a queue`);
    this.numVcmdqs = 1 << q;
    this.numVintfs = 1 << v;
    this.sidsPerVintf = 1 << s;
    this.param = Number(CMDQV_PARAM.encode({ VER: 1, NUM_VCMDQ_LOG2: q, NUM_VINTF_LOG2: v, NUM_SID_PER_VM_LOG2: s })[0]);
    this.mmioSize = BigInt(TEGRA241_CMDQV_REG.VINTF_PAGE0 + TEGRA241_CMDQV_REG.VINTF_PAGE_STRIDE * this.numVintfs);
    this.alloc = new Array<number>(this.numVcmdqs).fill(0);
    this.queues = Array.from({ length: this.numVcmdqs }, () => ({ cons: 0, prod: 0, config: 0, gerror: 0, gerrorn: 0, base: 0n, consIndxBase: 0n }));
    this.vintfs = Array.from({ length: this.numVintfs }, () => ({
      config: 0,
      sidMatch: new Array<number>(this.sidsPerVintf).fill(0),
      sidReplace: new Array<number>(this.sidsPerVintf).fill(0),
      lvcmdqErrMap: 0n,
    }));
  }

  /** Reads a register (32-bit; 64-bit registers also as one 64-bit access). */
  mmioRead(offset: number, size: 1 | 2 | 4 | 8): bigint {
    if (size < 4) return 0n;
    if (size === 8) return this.read32(offset) | (this.read32(offset + 4) << 32n);
    return this.read32(offset);
  }

  /** Writes a register. */
  mmioWrite(offset: number, size: 1 | 2 | 4 | 8, value: bigint): void {
    if (size < 4) return;
    if (size === 8) {
      // 64-bit registers take the whole value at once so consumption sees a consistent BASE.
      const q = this.queueAt(offset);
      if (q !== undefined && q.page === 1) return this.writeQueue(q.index, q.page, q.reg, value, true);
      this.write32(offset, Number(value & 0xffff_ffffn));
      this.write32(offset + 4, Number(value >> 32n));
      return;
    }
    this.write32(offset, Number(value & 0xffff_ffffn));
  }

  /** Global VCMDQ index and register of an offset inside a VCMDQ page, if any. */
  private queueAt(offset: number): { index: number; page: 0 | 1; reg: number } | undefined {
    const R = TEGRA241_CMDQV_REG;
    if (offset >= R.VCMDQ_PAGE0 && offset < R.VINTF_PAGE0) {
      const page = offset >= R.VCMDQ_PAGE1 ? 1 : 0;
      const rel = offset - (page ? R.VCMDQ_PAGE1 : R.VCMDQ_PAGE0);
      const index = Math.floor(rel / R.VCMDQ_STRIDE);
      return index < this.numVcmdqs ? { index, page, reg: rel % R.VCMDQ_STRIDE } : undefined;
    }
    if (offset >= R.VINTF_PAGE0) {
      const v = Math.floor((offset - R.VINTF_PAGE0) / R.VINTF_PAGE_STRIDE);
      const inV = (offset - R.VINTF_PAGE0) % R.VINTF_PAGE_STRIDE;
      const page = inV >= 0x10000 ? 1 : 0;
      const rel = inV % 0x10000;
      const lidx = Math.floor(rel / R.VCMDQ_STRIDE);
      const index = this.globalOf(v, lidx);
      return index === undefined ? undefined : { index, page, reg: rel % R.VCMDQ_STRIDE };
    }
    return undefined;
  }

  /** The global VCMDQ mapped (ALLOCATED) as logical queue `lidx` of VINTF `v`. */
  globalOf(v: number, lidx: number): number | undefined {
    for (let q = 0; q < this.numVcmdqs; q++) {
      const a = [BigInt(this.alloc[q]!)];
      if (CMDQV_CMDQ_ALLOC.num(a, 'ALLOCATED') === 1 && CMDQV_CMDQ_ALLOC.num(a, 'VINTF') === v && CMDQV_CMDQ_ALLOC.num(a, 'LVCMDQ') === lidx) return q;
    }
    return undefined;
  }

  private read32(offset: number): bigint {
    const R = TEGRA241_CMDQV_REG;
    const q = this.queueAt(offset);
    if (q !== undefined) return this.readQueue(q.index, q.page, q.reg);
    if (offset >= R.VCMDQ_PAGE0) return 0n; // unmapped logical queue: reads as zero
    const half = (v: bigint, o: number) => BigInt.asUintN(32, v >> BigInt(32 * o));
    switch (offset) {
      case R.CONFIG:
        return BigInt(this.config);
      case R.PARAM:
        return BigInt(this.param);
      case R.STATUS:
        return BigInt(this.config & 1);
      case R.VINTF_ERR_MAP:
      case R.VINTF_ERR_MAP + 4:
        return half(this.vintfErrMap, (offset - R.VINTF_ERR_MAP) / 4);
      case R.VINTF_INT_MASK:
      case R.VINTF_INT_MASK + 4:
        return half(this.vintfIntMask, (offset - R.VINTF_INT_MASK) / 4);
    }
    if (offset >= R.CMDQ_ERR_MAP && offset < R.CMDQ_ERR_MAP + 16) return half(this.cmdqErrMap, (offset - R.CMDQ_ERR_MAP) / 4);
    if (offset >= R.CMDQ_ALLOC && offset < R.CMDQ_ALLOC + 4 * this.numVcmdqs) return BigInt(this.alloc[(offset - R.CMDQ_ALLOC) / 4]!);
    const vb = this.vintfBlock(offset);
    if (vb === undefined) return 0n;
    const vi = this.vintfs[vb.v]!;
    const r = vb.reg;
    if (r === R.VINTF_CONFIG) return BigInt(vi.config);
    if (r === R.VINTF_STATUS) {
      let n = 0;
      for (let lidx = 0; lidx < 128; lidx++) if (this.globalOf(vb.v, lidx) !== undefined) n++;
      return VINTF_STATUS.encode({ ENABLED: vi.config & 1, STATUS: vi.lvcmdqErrMap !== 0n ? 1 : 0, VI_NUM_LVCMDQ: n })[0]!;
    }
    if (r >= R.VINTF_SID_MATCH && r < R.VINTF_SID_MATCH + 4 * this.sidsPerVintf) return BigInt(vi.sidMatch[(r - R.VINTF_SID_MATCH) / 4]!);
    if (r >= R.VINTF_SID_REPLACE && r < R.VINTF_SID_REPLACE + 4 * this.sidsPerVintf) return BigInt(vi.sidReplace[(r - R.VINTF_SID_REPLACE) / 4]!);
    if (r >= R.VINTF_LVCMDQ_ERR_MAP && r < R.VINTF_LVCMDQ_ERR_MAP + 16) return half(vi.lvcmdqErrMap, (r - R.VINTF_LVCMDQ_ERR_MAP) / 4);
    return 0n;
  }

  private vintfBlock(offset: number): { v: number; reg: number } | undefined {
    const R = TEGRA241_CMDQV_REG;
    if (offset < R.VINTF_BASE) return undefined;
    const v = Math.floor((offset - R.VINTF_BASE) / R.VINTF_STRIDE);
    return v < this.numVintfs ? { v, reg: (offset - R.VINTF_BASE) % R.VINTF_STRIDE } : undefined;
  }

  private write32(offset: number, value: number): void {
    const R = TEGRA241_CMDQV_REG;
    const q = this.queueAt(offset);
    if (q !== undefined) return this.writeQueue(q.index, q.page, q.reg, BigInt(value >>> 0), false);
    if (offset >= R.VCMDQ_PAGE0) return;
    if (offset === R.CONFIG) {
      this.config = value & 0x1f_ffff;
      this.kickAll();
      return;
    }
    if (offset === R.VINTF_INT_MASK || offset === R.VINTF_INT_MASK + 4) {
      const sh = BigInt(32 * ((offset - R.VINTF_INT_MASK) / 4));
      this.vintfIntMask = (this.vintfIntMask & ~(0xffff_ffffn << sh)) | (BigInt(value >>> 0) << sh);
      return;
    }
    if (offset >= R.CMDQ_ALLOC && offset < R.CMDQ_ALLOC + 4 * this.numVcmdqs) {
      this.alloc[(offset - R.CMDQ_ALLOC) / 4] = value & 0x1f_80ff;
      this.kickAll();
      return;
    }
    const vb = this.vintfBlock(offset);
    if (vb === undefined) return;
    const vi = this.vintfs[vb.v]!;
    const r = vb.reg;
    if (r === R.VINTF_CONFIG) {
      vi.config = value & 0x3_ffff;
      this.kickAll();
    } else if (r >= R.VINTF_SID_MATCH && r < R.VINTF_SID_MATCH + 4 * this.sidsPerVintf) vi.sidMatch[(r - R.VINTF_SID_MATCH) / 4] = value & 0x1f_ffff;
    else if (r >= R.VINTF_SID_REPLACE && r < R.VINTF_SID_REPLACE + 4 * this.sidsPerVintf) vi.sidReplace[(r - R.VINTF_SID_REPLACE) / 4] = value & 0xf_ffff;
  }

  private readQueue(index: number, page: 0 | 1, reg: number): bigint {
    const R = TEGRA241_CMDQV_REG;
    const q = this.queues[index]!;
    if (page === 1) {
      if (reg === R.VCMDQ_BASE) return BigInt.asUintN(32, q.base);
      if (reg === R.VCMDQ_BASE + 4) return q.base >> 32n;
      if (reg === R.VCMDQ_CONS_INDX_BASE) return BigInt.asUintN(32, q.consIndxBase);
      if (reg === R.VCMDQ_CONS_INDX_BASE + 4) return q.consIndxBase >> 32n;
      return 0n;
    }
    const regs: Record<number, number> = {
      [R.VCMDQ_CONS]: q.cons,
      [R.VCMDQ_PROD]: q.prod,
      [R.VCMDQ_CONFIG]: q.config,
      [R.VCMDQ_STATUS]: q.config & 1,
      [R.VCMDQ_GERROR]: q.gerror,
      [R.VCMDQ_GERRORN]: q.gerrorn,
    };
    return BigInt((regs[reg] ?? 0) >>> 0);
  }

  private writeQueue(index: number, page: 0 | 1, reg: number, value: bigint, wide: boolean): void {
    const R = TEGRA241_CMDQV_REG;
    const q = this.queues[index]!;
    const merge = (old: bigint, off: number) =>
      wide ? BigInt.asUintN(64, value) : off === 0 ? (old & ~0xffff_ffffn) | value : (old & 0xffff_ffffn) | (value << 32n);
    if (page === 1) {
      if (reg === R.VCMDQ_BASE || reg === R.VCMDQ_BASE + 4) q.base = merge(q.base, reg - R.VCMDQ_BASE) & 0x0000_ffff_ffff_ffffn;
      else if (reg === R.VCMDQ_CONS_INDX_BASE || reg === R.VCMDQ_CONS_INDX_BASE + 4) q.consIndxBase = merge(q.consIndxBase, reg - R.VCMDQ_CONS_INDX_BASE);
      return;
    }
    const v = Number(value & 0xffff_ffffn);
    if (reg === R.VCMDQ_PROD) q.prod = v & 0xf_ffff;
    else if (reg === R.VCMDQ_CONS) {
      if ((q.config & 1) === 0) q.cons = v & 0x7f0f_ffff; // CONS is the hardware's while enabled
    } else if (reg === R.VCMDQ_CONFIG) q.config = v & 1;
    else if (reg === R.VCMDQ_GERRORN) {
      q.gerrorn = v & 7;
      if (((q.gerror ^ q.gerrorn) & 1) === 0) this.clearErrorMaps(index);
    } else return;
    this.consume(index);
  }

  private kickAll(): void {
    for (let i = 0; i < this.numVcmdqs; i++) this.consume(i);
  }

  private clearErrorMaps(index: number): void {
    const a = [BigInt(this.alloc[index]!)];
    const v = CMDQV_CMDQ_ALLOC.num(a, 'VINTF');
    const lidx = CMDQV_CMDQ_ALLOC.num(a, 'LVCMDQ');
    this.cmdqErrMap &= ~(1n << BigInt(index));
    const vi = this.vintfs[v];
    if (vi === undefined) return;
    vi.lvcmdqErrMap &= ~(1n << BigInt(lidx));
    if (vi.lvcmdqErrMap === 0n) this.vintfErrMap &= ~(1n << BigInt(v));
  }

  /** Consumes VCMDQ `index` when CMDQV, its VINTF and the queue are enabled and it has no pending error. */
  private consume(index: number): void {
    const q = this.queues[index]!;
    const a = [BigInt(this.alloc[index]!)];
    if ((this.config & 1) === 0 || CMDQV_CMDQ_ALLOC.num(a, 'ALLOCATED') === 0 || (q.config & 1) === 0) return;
    const v = CMDQV_CMDQ_ALLOC.num(a, 'VINTF');
    const vi = this.vintfs[v];
    if (vi === undefined || (vi.config & 1) === 0) return;
    if (((q.gerror ^ q.gerrorn) & 1) !== 0) return;
    const log2Size = Math.min(VCMDQ_BASE.num([q.base], 'LOG2SIZE'), SMMU_IDR1.num([BigInt(this.smmu.idr[1])], 'CMDQS'));
    const base = VCMDQ_BASE.get([q.base], 'ADDR') << 5n;
    const executor = VINTF_CONFIG.num([BigInt(vi.config)], 'HYP_OWN') === 1 ? this.smmu.executor : this.guestExecutor(vi);
    const res = this.smmu.consumeRing({ base, log2Size, prod: queuePointer(q.prod, log2Size), cons: queuePointer(q.cons, log2Size), id: `vcmdq${index}` }, executor);
    if (res.error === CMDQ_ERR.NONE) {
      q.cons = res.cons | (q.cons & 0x7f00_0000);
    } else {
      q.cons = res.cons | (res.error << 24);
      q.gerror ^= 1;
      const lidx = CMDQV_CMDQ_ALLOC.num(a, 'LVCMDQ');
      vi.lvcmdqErrMap |= 1n << BigInt(lidx);
      this.cmdqErrMap |= 1n << BigInt(index);
      this.vintfErrMap |= 1n << BigInt(v);
      if (((this.vintfIntMask >> BigInt(v)) & 1n) === 0n) this.interrupts++;
    }
    if (CMDQV_CONFIG.num([BigInt(this.config)], 'CONS_DRAM_EN') === 1 && q.consIndxBase !== 0n) this.smmu.memory.write32(q.consIndxBase, q.cons);
  }

  /** A guest VINTF's view of the SMMU: restricted opcodes, VMID stamped, vSID → pSID. */
  private guestExecutor(vi: Vintf): CommandExecutor {
    const streams: [number, number][] = [];
    const seen = new Set<number>();
    vi.sidMatch.forEach((m, slot) => {
      const vsid = VINTF_SID_MATCH.num([BigInt(m)], 'VIRT_SID');
      if (VINTF_SID_MATCH.num([BigInt(m)], 'ENABLE') === 1 && !seen.has(vsid)) {
        seen.add(vsid);
        streams.push([vsid, vi.sidReplace[slot]!]);
      }
    });
    // A guest queue's CMD_SYNC completes through CONS only: its MSI write (CS=IRQ) would be a
    // 32-bit DMA to whatever host physical address the guest names, so it is not made.
    const host: CommandExecutor = {
      execute: (dw0, dw1) => {
        const w = [dw0, dw1];
        if (SMMU_CMD.num(w, 'OPCODE') === CMDQ_OP.CMD_SYNC && SMMU_CMD_SYNC.num(w, 'CS') === CMD_SYNC_CS.IRQ) SMMU_CMD_SYNC.set(w, 'CS', CMD_SYNC_CS.NONE);
        return this.smmu.executeCommand(w[0]!, w[1]!);
      },
    };
    return {
      guest: { vmid: VINTF_CONFIG.num([BigInt(vi.config)], 'VMID'), streams, host },
      execute: (dw0, dw1) => {
        const w = [dw0, dw1];
        const op = SMMU_CMD.num(w, 'OPCODE');
        if (!GUEST_OPCODES.has(op)) return CMDQ_ERR.ILL;
        if (op === CMDQ_OP.TLBI_NH_ASID || op === CMDQ_OP.TLBI_NH_VA) {
          SMMU_CMD_TLBI.set(w, 'VMID', VINTF_CONFIG.get([BigInt(vi.config)], 'VMID'));
        } else if (op === CMDQ_OP.ATC_INV) {
          const vsid = SMMU_CMD.get(w, 'SID');
          const slot = vi.sidMatch.findIndex((m) => VINTF_SID_MATCH.num([BigInt(m)], 'ENABLE') === 1 && VINTF_SID_MATCH.get([BigInt(m)], 'VIRT_SID') === vsid);
          if (slot < 0) return CMDQ_ERR.ILL;
          SMMU_CMD.set(w, 'SID', BigInt(vi.sidReplace[slot]!));
        }
        return host.execute(w[0]!, w[1]!);
      },
    };
  }
}

/** Options of {@link Tegra241Smmu}. */
export interface Tegra241SmmuOptions extends SmmuV3Options {
  /** CMDQV sizes. */
  readonly cmdqv?: Tegra241CmdqvOptions;
}

/** An SMMUv3 with a Tegra241 CMDQV whose registers sit right after the SMMU's 128 KiB frame. */
export class Tegra241Smmu extends SmmuV3 {
  /** Kind tag for the machine. */
  override readonly kind = 'tegra241-cmdqv' as const;
  /** The CMDQV. */
  readonly cmdqv: Tegra241Cmdqv;
  /** The CMDQV register frame at `base + SMMU_MMIO_SIZE`. */
  readonly extraMmio: readonly { readonly offset: bigint; readonly size: bigint; readonly device: MmioDevice }[];

  constructor(memory: SmmuV3['memory'], options: Tegra241SmmuOptions = {}) {
    super(memory, options);
    this.cmdqv = new Tegra241Cmdqv(this, options.cmdqv ?? {});
    this.extraMmio = [{ offset: SMMU_MMIO_SIZE, size: this.cmdqv.mmioSize, device: this.cmdqv }];
  }
}
