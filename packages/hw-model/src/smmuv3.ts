/**
 * Arm SMMUv3 model: the register file (an {@link MmioDevice}) and the translation port (a
 * {@link DmaTranslator}) that walks the stream table, context descriptors and page tables
 * the driver wrote in memory, through a config cache and a TLB that only the architecture's
 * invalidation commands empty (reference/smmuv3.md).
 */
import type { BitFieldReader } from './bitfield.js';
import { HardwareCache } from './cache.js';
import { offsetIn, pageOf } from './address.js';
import { SmmuTlb, type TlbEntry } from './smmuv3-tlb.js';
import { typescriptCommandQueueConsumer, type CommandExecutor, type CommandQueueConsumer, type CommandQueueResult, type CommandRing } from './cmdq.js';
import type { MmioDevice, PhysicalMemory } from './memory.js';
import { queueFull, queueIncrement, queueIndex, queuePointer } from './queue.js';
import {
  CMDQ_ERR,
  CMDQ_OP,
  CMD_SYNC_CS,
  EVENT_RECORD_FIELDS,
  EVT_CLASS,
  EVT_ID,
  SMMU_CD,
  SMMU_CMD,
  SMMU_CMD_ATC_INV,
  SMMU_CMD_CFGI_RANGE,
  SMMU_CMD_PRI_RESP,
  SMMU_CMD_SYNC,
  SMMU_CMD_TLBI,
  SMMU_CR0,
  SMMU_EVENT,
  SMMU_EVENT_FETCH,
  SMMU_GBPA,
  SMMU_GERROR,
  SMMU_IDR0,
  SMMU_IDR1,
  SMMU_IDR3,
  SMMU_IDR5,
  SMMU_IRQ_CTRL,
  SMMU_L1CD,
  SMMU_L1STD,
  SMMU_MMIO_SIZE,
  SMMU_PRIQ,
  SMMU_Q_BASE,
  SMMU_REG,
  SMMU_STE,
  SMMU_STRTAB_BASE_CFG,
  STE_CFG,
  type SmmuEventName,
} from './smmuv3-layouts.js';
import { levelShift, permits, s1StartLevel, walkNumbers, type WalkFailure, type WalkFault, type WalkLeafNumbers, type WalkParams } from './smmuv3-walk.js';
import { smmuCommandEvent, type HardwareObserver } from './observer.js';
import type { DmaEndpoint, DmaFault, DmaRequest, DmaTranslation, DmaTranslator, EndpointRegistry, PageRequest, PageRequestSink } from './translator.js';

/** ID-register and cache options of {@link SmmuV3}. Defaults describe a nesting-capable SMMUv3.1. */
export interface SmmuV3Options {
  /** Stage 1 supported (IDR0.S1P). Default true. */
  readonly stage1?: boolean;
  /** Stage 2 supported (IDR0.S2P). Default true. */
  readonly stage2?: boolean;
  /** ATS (IDR0.ATS). Default true. */
  readonly ats?: boolean;
  /** PRI (IDR0.PRI). Default true. */
  readonly pri?: boolean;
  /** Range invalidation (IDR3.RIL). Default true. */
  readonly ril?: boolean;
  /** Stage-2 forced write-back (IDR3.FWB). Default true. */
  readonly fwb?: boolean;
  /** MSI-capable (IDR0.MSI). Default true. */
  readonly msi?: boolean;
  /** SEV (IDR0.SEV). Default true. */
  readonly sev?: boolean;
  /** EL2 regime (IDR0.HYP). Default false. */
  readonly hyp?: boolean;
  /** 2-level CD tables (IDR0.CD2L). Default true. */
  readonly cd2l?: boolean;
  /** 2-level stream table (IDR0.ST_LEVEL = 1). Default true. */
  readonly twoLevelStreamTable?: boolean;
  /** ASID bits: 8 or 16. Default 16. */
  readonly asidBits?: 8 | 16;
  /** VMID bits: 8 or 16. Default 16. */
  readonly vmidBits?: 8 | 16;
  /** StreamID bits (IDR1.SIDSIZE). Default 16. */
  readonly sidBits?: number;
  /** SubstreamID bits (IDR1.SSIDSIZE). Default 20. */
  readonly ssidBits?: number;
  /** log2 max CMDQ entries (IDR1.CMDQS). Default 19. */
  readonly cmdqLog2?: number;
  /** log2 max EVTQ entries (IDR1.EVTQS). Default 19. */
  readonly evtqLog2?: number;
  /** log2 max PRIQ entries (IDR1.PRIQS). Default 19. */
  readonly priqLog2?: number;
  /** Output address size encoding (IDR5.OAS): 0=32 … 5=48 bits. Default 5. */
  readonly oas?: number;
  /** IIDR value. Default 0x0000043b (Arm, product 0). */
  readonly iidr?: number;
  /** AIDR value. Default 0x01 (SMMUv3.1). */
  readonly aidr?: number;
  /** TLB capacity in entries (bounded mode). Default 256. */
  readonly tlbEntries?: number;
  /** Config cache capacity in entries (bounded mode). Default 64. */
  readonly configEntries?: number;
  /** Caches never evict. Default false. */
  readonly strict?: boolean;
  /** The CMDQ consumer (default: the TypeScript one). */
  readonly commandQueueConsumer?: CommandQueueConsumer;
}

/** Thrown for invalid {@link SmmuV3Options}. */
export class SmmuV3OptionsError extends Error {
  /** Error name for `instanceof`-free checks. */
  override readonly name = 'SmmuV3OptionsError';
}

/** A decoded, validated STE as held in the config cache. */
export interface SteConfig {
  /** The StreamID. */
  readonly sid: number;
  /** STE.Config ({@link STE_CFG}). */
  readonly config: number;
  /** Raw STE words as fetched. */
  readonly words: readonly bigint[];
  /** S1Fmt. */
  readonly s1fmt: number;
  /** S1ContextPtr (byte address). */
  readonly s1ContextPtr: bigint;
  /** S1CDMax. */
  readonly s1cdmax: number;
  /** S1DSS. */
  readonly s1dss: number;
  /** EATS. */
  readonly eats: number;
  /** S2VMID (tags stage-1-only entries too). */
  readonly vmid: number;
  /** Stage-2 walk, when stage 2 is enabled. */
  readonly s2: WalkParams | undefined;
  /** S2R: record stage-2 faults. */
  readonly s2Record: boolean;
}

/** A decoded, validated CD as held in the config cache. */
export interface CdConfig {
  /** StreamID. */
  readonly sid: number;
  /** SubstreamID. */
  readonly ssid: number;
  /** ASID. */
  readonly asid: number;
  /** Raw CD words. */
  readonly words: readonly bigint[];
  /** Stage-1 walk (TTB0); undefined when EPD0 disables it. */
  readonly s1: WalkParams | undefined;
  /** CD.R: record stage-1 faults. */
  readonly record: boolean;
}

/** A config cache entry. */
export type ConfigCacheEntry = { readonly kind: 'ste'; readonly ste: SteConfig } | { readonly kind: 'cd'; readonly cd: CdConfig };

/** Interrupts the model signalled (wired or MSI), by source. */
export interface SmmuInterruptCounts {
  /** Global error interrupts. */
  gerror: number;
  /** Event queue interrupts. */
  evtq: number;
  /** PRI queue interrupts. */
  priq: number;
  /** Wired CMD_SYNC completion interrupts (CS=IRQ without MSI). */
  cmdSync: number;
  /** SEV events from CMD_SYNC (CS=SEV). */
  sev: number;
}

const ALL_PERM = 31;
/** CR0 bit masks, derived from the {@link SMMU_CR0} layout (tested on every translation). */
const CR0_BIT = Object.fromEntries(SMMU_CR0.fields.map(([name, , , lo]) => [name, 1 << lo])) as Record<(typeof SMMU_CR0.fields)[number][0], number>;
/** GERROR bit masks, derived from the {@link SMMU_GERROR} layout. */
const GERROR_BIT = Object.fromEntries(SMMU_GERROR.fields.map(([name, , , lo]) => [name, 1 << lo])) as Record<(typeof SMMU_GERROR.fields)[number][0], number>;
const PAGE = 0x1000n;
/** The BigInt of each page / block size a 4 KiB-granule walk yields (made once, not per TLB fill). */
const SIZE_BIGINT = new Map<number, bigint>([0x1000n, 0x20_0000n, 0x4000_0000n].map((b) => [Number(b), b]));
const sizeBigInt = (size: number): bigint => SIZE_BIGINT.get(size) ?? BigInt(size);
const OAS_BITS = [32, 36, 40, 42, 44, 48, 52] as const;
const EVENT_NAMES = new Map<number, SmmuEventName>(Object.entries(EVT_ID).map(([k, v]) => [v, k as SmmuEventName]));

/** Context of a fault being turned into an event record. */
interface FaultSite {
  readonly req: DmaRequest;
  readonly record: boolean;
  readonly stage2?: boolean;
  readonly cls?: number;
  readonly ipa?: bigint;
  readonly fetchAddr?: bigint;
}

type Outcome<T> = { ok: true; value: T } | { ok: false; fault: DmaFault };

/** An SMMUv3 (register file + translator + queues + caches). */
export class SmmuV3 implements MmioDevice, DmaTranslator, EndpointRegistry, PageRequestSink {
  /** Kind tag for the machine. */
  readonly kind: 'smmuv3' | 'tegra241-cmdqv' = 'smmuv3';
  /** Register-frame size. */
  readonly mmioSize = SMMU_MMIO_SIZE;
  /** The ID registers IDR0..IDR5. */
  readonly idr: readonly [number, number, number, number, number, number];
  /** IIDR. */
  readonly iidr: number;
  /** AIDR. */
  readonly aidr: number;
  /** The config cache (STEs and CDs). */
  readonly configCache: HardwareCache<ConfigCacheEntry>;
  /** The TLB. */
  readonly tlb: SmmuTlb;
  /** Interrupt counters. */
  readonly interrupts: SmmuInterruptCounts = { gerror: 0, evtq: 0, priq: 0, cmdSync: 0, sev: 0 };
  /** Commands executed by the CMDQ (and VCMDQs), by opcode. */
  readonly commandCounts = new Map<number, number>();
  /** Told of every command consumed, walk and fault (tracing); undefined: one null check per point. */
  observer: HardwareObserver | undefined = undefined;
  /** The CMDQ consumer in use. */
  commandQueueConsumer: CommandQueueConsumer;

  /** Register values (32-bit registers as numbers, 64-bit ones as bigint). */
  protected readonly r = {
    cr0: 0,
    cr1: 0,
    cr2: 0,
    gbpa: 0x1000,
    irqCtrl: 0,
    gerror: 0,
    gerrorn: 0,
    gerrorIrqCfg0: 0n,
    gerrorIrqCfg1: 0,
    gerrorIrqCfg2: 0,
    strtabBase: 0n,
    strtabBaseCfg: 0,
    cmdqBase: 0n,
    cmdqProd: 0,
    cmdqCons: 0,
    evtqBase: 0n,
    evtqProd: 0,
    evtqCons: 0,
    evtqIrqCfg0: 0n,
    evtqIrqCfg1: 0,
    evtqIrqCfg2: 0,
    priqBase: 0n,
    priqProd: 0,
    priqCons: 0,
    priqIrqCfg0: 0n,
    priqIrqCfg1: 0,
    priqIrqCfg2: 0,
  };
  private readonly endpoints = new Map<number, DmaEndpoint[]>();
  /** Queues (CommandRing ids) with an ATC_INV that did not complete: their next CMD_SYNC fails. */
  private readonly atcSyncPending = new Set<string>();
  /** The queue whose commands are executing (CMD_SYNC waits only for its own queue's commands). */
  private activeQueue = 'cmdq';
  private readonly s1p: boolean;
  private readonly s2p: boolean;
  private readonly oasBits: number;
  private readonly regs: ReadonlyMap<number, RegisterHandler>;

  constructor(
    /** The memory the SMMU reads tables and queues from. */
    readonly memory: PhysicalMemory,
    /** The options it was built with. */
    readonly options: SmmuV3Options = {},
  ) {
    const o = options;
    checkRange('sidBits', o.sidBits ?? 16, 0, 32);
    checkRange('ssidBits', o.ssidBits ?? 20, 0, 20);
    for (const q of ['cmdqLog2', 'evtqLog2', 'priqLog2'] as const) checkRange(q, o[q] ?? 19, 1, 19);
    checkRange('oas', o.oas ?? 5, 0, 5);
    for (const k of ['asidBits', 'vmidBits'] as const) {
      const v = o[k] ?? 16;
      if (v !== 8 && v !== 16) throw new SmmuV3OptionsError(`${k} must be 8 or 16, got ${v}`);
    }
    this.s1p = o.stage1 ?? true;
    this.s2p = o.stage2 ?? true;
    if (!this.s1p && !this.s2p) throw new SmmuV3OptionsError('an SMMU needs stage 1 or stage 2 (or both); set stage1 or stage2 to true');
    this.oasBits = OAS_BITS[o.oas ?? 5]!;
    const b = (v: boolean | undefined, d: boolean) => ((v ?? d) ? 1 : 0);
    const idr0 = SMMU_IDR0.encode({
      S2P: this.s2p,
      S1P: this.s1p,
      TTF: 2,
      COHACC: 1,
      HYP: b(o.hyp, false),
      ATS: b(o.ats, true),
      ASID16: (o.asidBits ?? 16) === 16,
      MSI: b(o.msi, true),
      SEV: b(o.sev, true),
      PRI: b(o.pri, true),
      VMID16: (o.vmidBits ?? 16) === 16,
      CD2L: b(o.cd2l, true),
      TTENDIAN: 2,
      STALL_MODEL: 1,
      TERM_MODEL: 1,
      ST_LEVEL: b(o.twoLevelStreamTable, true),
    })[0]!;
    const idr1 = SMMU_IDR1.encode({
      SIDSIZE: o.sidBits ?? 16,
      SSIDSIZE: o.ssidBits ?? 20,
      PRIQS: o.priqLog2 ?? 19,
      EVTQS: o.evtqLog2 ?? 19,
      CMDQS: o.cmdqLog2 ?? 19,
    })[0]!;
    const idr3 = SMMU_IDR3.encode({ HAD: 1, FWB: b(o.fwb, true), RIL: b(o.ril, true) })[0]!;
    const idr5 = SMMU_IDR5.encode({ OAS: o.oas ?? 5, GRAN4K: 1 })[0]!;
    this.idr = [Number(idr0), Number(idr1), 0, Number(idr3), 0, Number(idr5)];
    this.iidr = o.iidr ?? 0x43b;
    this.aidr = o.aidr ?? 0x01;
    const strict = o.strict ?? false;
    this.configCache = new HardwareCache('config', { capacity: o.configEntries ?? 64, strict });
    this.tlb = new SmmuTlb({ capacity: o.tlbEntries ?? 256, strict });
    this.commandQueueConsumer = o.commandQueueConsumer ?? typescriptCommandQueueConsumer;
    this.regs = this.registerTable();
    // The ID registers never change after reset: decode the features and masks the command
    // handlers test on every command once.
    this.features = {
      S1P: this.idr0('S1P') === 1,
      S2P: this.idr0('S2P') === 1,
      ATS: this.idr0('ATS') === 1,
      PRI: this.idr0('PRI') === 1,
      HYP: this.idr0('HYP') === 1,
      RIL: SMMU_IDR3.num([BigInt(this.idr[3])], 'RIL') === 1,
    };
    this.idMasks = { asid: this.asidMask, vmid: this.vmidMask };
  }

  /** The IDR features {@link SmmuV3.feature} reports (decoded once: the ID registers are constant). */
  private readonly features: Readonly<Record<'S1P' | 'S2P' | 'ATS' | 'PRI' | 'HYP' | 'RIL', boolean>>;
  /** ASID / VMID masks (decoded once). */
  private readonly idMasks: { readonly asid: number; readonly vmid: number };

  // ---------------------------------------------------------------- features

  /** IDR0 field value. */
  protected idr0(f: Parameters<typeof SMMU_IDR0.num>[1]): number {
    return SMMU_IDR0.num([BigInt(this.idr[0])], f);
  }
  private get asidMask(): number {
    return this.idr0('ASID16') ? 0xffff : 0xff;
  }
  private get vmidMask(): number {
    return this.idr0('VMID16') ? 0xffff : 0xff;
  }
  private get sidBits(): number {
    return SMMU_IDR1.num([BigInt(this.idr[1])], 'SIDSIZE');
  }
  private get ssidBits(): number {
    return SMMU_IDR1.num([BigInt(this.idr[1])], 'SSIDSIZE');
  }
  private qMax(f: 'CMDQS' | 'EVTQS' | 'PRIQS'): number {
    return SMMU_IDR1.num([BigInt(this.idr[1])], f);
  }

  // ---------------------------------------------------------------- registers

  /** Register reads (page 1 aliases page 0; 64-bit registers readable as 32-bit halves). */
  mmioRead(offset: number, size: 1 | 2 | 4 | 8): bigint {
    const off = offset & 0xffff;
    if (size < 4) return 0n; // narrower than 32 bits is not a valid SMMU access
    const h = this.regs.get(off);
    if (size === 8) {
      if (h?.width === 8) return h.read();
      return (this.mmioRead(offset, 4) | (this.mmioRead(offset + 4, 4) << 32n)) & 0xffff_ffff_ffff_ffffn;
    }
    if (h !== undefined) return h.read() & 0xffff_ffffn;
    const lo = this.regs.get(off - 4);
    if (lo?.width === 8) return (lo.read() >> 32n) & 0xffff_ffffn;
    return BigInt(PRIMECELL_ID.get(off) ?? 0);
  }

  /** Register writes (merging 32-bit halves of 64-bit registers). */
  mmioWrite(offset: number, size: 1 | 2 | 4 | 8, value: bigint): void {
    const off = offset & 0xffff;
    if (size < 4) return;
    const h = this.regs.get(off);
    if (size === 8) {
      if (h?.width === 8) return h.write?.(value);
      this.mmioWrite(offset, 4, value & 0xffff_ffffn);
      this.mmioWrite(offset + 4, 4, value >> 32n);
      return;
    }
    if (h !== undefined) {
      if (h.width === 8) h.write?.((h.read() & ~0xffff_ffffn) | value);
      else h.write?.(value);
      return;
    }
    const lo = this.regs.get(off - 4);
    if (lo?.width === 8) lo.write?.((lo.read() & 0xffff_ffffn) | (value << 32n));
  }

  /** One row per register: width, read, write (reset values live in {@link SmmuV3.r}). */
  private registerTable(): Map<number, RegisterHandler> {
    const r = this.r;
    const n = (v: bigint) => Number(v & 0xffff_ffffn);
    const ro32 = (get: () => number): RegisterHandler => ({ width: 4, read: () => BigInt(get() >>> 0) });
    const rw32 = (get: () => number, set: (v: number) => void): RegisterHandler => ({ width: 4, read: () => BigInt(get() >>> 0), write: (v) => set(n(v)) });
    const rw64 = (get: () => bigint, set: (v: bigint) => void): RegisterHandler => ({ width: 8, read: get, write: set });
    const qBaseMask = 0x400f_ffff_ffff_ffffn; // RA + ADDR[51:5] + LOG2SIZE
    const irqCfg0Mask = 0x000f_ffff_ffff_fffcn;
    const S = SMMU_REG;
    return new Map<number, RegisterHandler>([
      [S.IDR0, ro32(() => this.idr[0])],
      [S.IDR1, ro32(() => this.idr[1])],
      [S.IDR2, ro32(() => this.idr[2])],
      [S.IDR3, ro32(() => this.idr[3])],
      [S.IDR4, ro32(() => this.idr[4])],
      [S.IDR5, ro32(() => this.idr[5])],
      [S.IIDR, ro32(() => this.iidr)],
      [S.AIDR, ro32(() => this.aidr)],
      [S.CR0, rw32(() => r.cr0, (v) => this.writeCr0(v))],
      // The model applies CR0 changes at once, so the ACK mirrors CR0 on the next read.
      [S.CR0ACK, ro32(() => r.cr0)],
      [S.CR1, rw32(() => r.cr1, (v) => (r.cr1 = v & 0xfff))],
      [S.CR2, rw32(() => r.cr2, (v) => (r.cr2 = v & 0x7))],
      [S.STATUSR, ro32(() => 0)],
      [
        S.GBPA,
        rw32(
          () => r.gbpa,
          (v) => {
            // Only a write with UPDATE set takes effect; UPDATE reads 0 once applied (at once here).
            if (SMMU_GBPA.num([BigInt(v)], 'UPDATE') === 1) r.gbpa = v & 0x001f_3f00;
          },
        ),
      ],
      [S.IRQ_CTRL, rw32(() => r.irqCtrl, (v) => (r.irqCtrl = v & 7))],
      [S.IRQ_CTRLACK, ro32(() => r.irqCtrl)],
      [S.GERROR, ro32(() => r.gerror)],
      [S.GERRORN, rw32(() => r.gerrorn, (v) => this.writeGerrorn(v))],
      [S.GERROR_IRQ_CFG0, rw64(() => r.gerrorIrqCfg0, (v) => (r.gerrorIrqCfg0 = v & irqCfg0Mask))],
      [S.GERROR_IRQ_CFG1, rw32(() => r.gerrorIrqCfg1, (v) => (r.gerrorIrqCfg1 = v))],
      [S.GERROR_IRQ_CFG2, rw32(() => r.gerrorIrqCfg2, (v) => (r.gerrorIrqCfg2 = v & 0x3f))],
      [S.STRTAB_BASE, rw64(() => r.strtabBase, (v) => (r.strtabBase = v & 0x400f_ffff_ffff_ffc0n))],
      [S.STRTAB_BASE_CFG, rw32(() => r.strtabBaseCfg, (v) => (r.strtabBaseCfg = v & 0x3_07ff))],
      [S.CMDQ_BASE, rw64(() => r.cmdqBase, (v) => (r.cmdqBase = v & qBaseMask))],
      [
        S.CMDQ_PROD,
        rw32(
          () => r.cmdqProd,
          (v) => {
            r.cmdqProd = v & 0xf_ffff;
            this.consumeCommandQueue();
          },
        ),
      ],
      [
        S.CMDQ_CONS,
        rw32(
          () => r.cmdqCons,
          (v) => {
            // CONS is owned by the SMMU while the queue is enabled.
            if (!this.cr0('CMDQEN')) r.cmdqCons = v & 0x7f0f_ffff;
          },
        ),
      ],
      [S.EVTQ_BASE, rw64(() => r.evtqBase, (v) => (r.evtqBase = v & qBaseMask))],
      [S.EVTQ_PROD, rw32(() => r.evtqProd, (v) => !this.cr0('EVTQEN') && (r.evtqProd = v & 0x800f_ffff))],
      [S.EVTQ_CONS, rw32(() => r.evtqCons, (v) => (r.evtqCons = v & 0x800f_ffff))],
      [S.EVTQ_IRQ_CFG0, rw64(() => r.evtqIrqCfg0, (v) => (r.evtqIrqCfg0 = v & irqCfg0Mask))],
      [S.EVTQ_IRQ_CFG1, rw32(() => r.evtqIrqCfg1, (v) => (r.evtqIrqCfg1 = v))],
      [S.EVTQ_IRQ_CFG2, rw32(() => r.evtqIrqCfg2, (v) => (r.evtqIrqCfg2 = v & 0x3f))],
      [S.PRIQ_BASE, rw64(() => r.priqBase, (v) => (r.priqBase = v & qBaseMask))],
      [S.PRIQ_PROD, rw32(() => r.priqProd, (v) => !this.cr0('PRIQEN') && (r.priqProd = v & 0x800f_ffff))],
      [S.PRIQ_CONS, rw32(() => r.priqCons, (v) => (r.priqCons = v & 0x800f_ffff))],
      [S.PRIQ_IRQ_CFG0, rw64(() => r.priqIrqCfg0, (v) => (r.priqIrqCfg0 = v & irqCfg0Mask))],
      [S.PRIQ_IRQ_CFG1, rw32(() => r.priqIrqCfg1, (v) => (r.priqIrqCfg1 = v))],
      [S.PRIQ_IRQ_CFG2, rw32(() => r.priqIrqCfg2, (v) => (r.priqIrqCfg2 = v & 0x3f))],
    ]);
  }

  private cr0(f: keyof typeof CR0_BIT): boolean {
    return (this.r.cr0 & CR0_BIT[f]) !== 0;
  }

  private writeCr0(v: number): void {
    const pri = this.idr0('PRI') === 1;
    this.r.cr0 = v & (pri ? 0x1f : 0x1d);
    this.consumeCommandQueue();
  }

  private writeGerrorn(v: number): void {
    this.r.gerrorn = v & 0x1fd;
    // Acknowledging CMDQ_ERR lets the SMMU resume at CONS.
    this.consumeCommandQueue();
  }

  /** Toggles the GERROR bits of `mask` that are not already active and signals the interrupt. */
  raiseGlobalError(mask: number): void {
    const active = this.r.gerror ^ this.r.gerrorn;
    const fresh = mask & ~active & 0x1fd;
    if (fresh === 0) return;
    this.r.gerror ^= fresh;
    if (SMMU_IRQ_CTRL.num([BigInt(this.r.irqCtrl)], 'GERROR_IRQEN')) this.signal('gerror', this.r.gerrorIrqCfg0, this.r.gerrorIrqCfg1);
  }

  private signal(kind: 'gerror' | 'evtq' | 'priq', msiAddr: bigint, msiData: number): void {
    this.interrupts[kind]++;
    // Programmed MSI: a 32-bit write of the data to the doorbell.
    if (msiAddr !== 0n && this.idr0('MSI')) this.memory.write32(msiAddr, msiData);
  }

  // ---------------------------------------------------------------- command queue

  /** Consumes the CMDQ if it is enabled and not stopped by an unacknowledged CMDQ_ERR. */
  protected consumeCommandQueue(): void {
    const r = this.r;
    if (!this.cr0('CMDQEN')) return;
    if (((r.gerror ^ r.gerrorn) & 1) !== 0) return;
    const log2Size = Math.min(SMMU_Q_BASE.num([r.cmdqBase], 'LOG2SIZE'), this.qMax('CMDQS'));
    const base = SMMU_Q_BASE.get([r.cmdqBase], 'ADDR') << 5n;
    const res = this.consumeRing({ base, log2Size, prod: queuePointer(r.cmdqProd, log2Size), cons: queuePointer(r.cmdqCons, log2Size), id: 'cmdq' }, this.executor);
    if (res.error !== CMDQ_ERR.NONE) {
      r.cmdqCons = res.cons | (res.error << 24);
      this.raiseGlobalError(GERROR_BIT.CMDQ_ERR);
    } else {
      r.cmdqCons = res.cons | (r.cmdqCons & 0x7f00_0000);
    }
  }

  /**
   * @internal Runs the consumer on one of this SMMU's command rings (the CMDQ or a VCMDQ);
   * while it runs, ATC_INV / CMD_SYNC completion is tracked for that ring alone.
   */
  consumeRing(ring: CommandRing & { readonly id: string }, executor: CommandExecutor): CommandQueueResult {
    const outer = this.activeQueue;
    this.activeQueue = ring.id;
    try {
      const res = this.commandQueueConsumer.consume(ring, this.memory, executor);
      if (this.observer !== undefined && res.error !== CMDQ_ERR.NONE) this.observeStoppedCommand(ring, res);
      return res;
    } finally {
      this.activeQueue = outer;
    }
  }

  /**
   * Reports the command a queue stopped at, read back from its ring slot: whichever consumer
   * ran (the queue engine rejects a command without handing it to the executor), the slot
   * at CONS holds it.
   */
  private observeStoppedCommand(ring: CommandRing & { readonly id: string }, res: CommandQueueResult): void {
    const at = ring.base + BigInt(queueIndex(res.cons, ring.log2Size) * 16);
    const readable = this.memory.isRam(at, 16);
    this.observer!.command(smmuCommandEvent(ring.id, readable ? this.memory.read64(at) : 0n, readable ? this.memory.read64(at + 8n) : 0n, res.error));
  }

  /** Executes commands of the main CMDQ (all opcodes of reference §3.2). */
  readonly executor: CommandExecutor = { execute: (dw0, dw1) => this.executeCommand(dw0, dw1) };

  /** Executes one command; returns a CONS.ERR code. */
  executeCommand(dw0: bigint, dw1: bigint): number {
    const op = Number(dw0 & 0xffn);
    const handler = COMMANDS[op];
    // Every command issued from the non-secure queue with SSec set is illegal.
    if (handler === undefined || CMD_SSEC.test(dw0)) return CMDQ_ERR.ILL;
    const err = handler(this, [dw0, dw1]);
    if (err === CMDQ_ERR.NONE) {
      this.commandCounts.set(op, (this.commandCounts.get(op) ?? 0) + 1);
      if (this.observer !== undefined) this.observer.command(smmuCommandEvent(this.activeQueue, dw0, dw1));
    }
    return err;
  }

  /** @internal Drops cached STEs and CDs of StreamIDs first..first+count-1 (CFGI_STE, CFGI_STE_RANGE). */
  cmdCfgi(first: number, count: number): void {
    const last = first + count - 1;
    this.configCache.invalidate((e) => {
      const sid = e.kind === 'ste' ? e.ste.sid : e.cd.sid;
      return sid >= first && sid <= last;
    });
  }
  /** @internal Drops cached CDs of a StreamID: one SubstreamID, or all when undefined (CFGI_CD, CFGI_CD_ALL). */
  cmdCfgiCd(sid: number, ssid: number | undefined): void {
    this.configCache.invalidate((e) => e.kind === 'cd' && e.cd.sid === sid && (ssid === undefined || e.cd.ssid === ssid));
  }
  /** @internal Drops the TLB entries a TLBI command's scope matches. */
  cmdTlbi(match: (e: TlbEntry) => boolean): void {
    this.tlb.invalidate(match);
  }
  /** @internal Forwards ATC_INV to the devices of a StreamID; remembers an incomplete one for the next CMD_SYNC. */
  cmdAtcInv(sid: number, pasid: number | undefined, address: bigint, size: bigint | undefined): void {
    for (const ep of this.endpoints.get(sid) ?? []) if (!ep.atcInvalidate(pasid, address, size)) this.atcSyncPending.add(this.activeQueue);
  }
  /**
   * @internal Reports and forgets an ATC_INV that did not complete (the engine consumer
   * carries it to the next CMD_SYNC of the same queue itself).
   */
  takeAtcSyncPending(): boolean {
    return this.atcSyncPending.delete(this.activeQueue);
  }
  /** @internal Delivers PRI_RESP to the devices of a StreamID. */
  cmdPriResp(sid: number, pasid: number | undefined, prgi: number, code: number): void {
    for (const ep of this.endpoints.get(sid) ?? []) ep.pageResponse?.(pasid, prgi, code);
  }
  /** @internal Completes a CMD_SYNC (MSI write, SEV or nothing); CERROR_ATC_INV_SYNC after an incomplete ATC_INV. */
  cmdSync(w: bigint[]): number {
    const cs = SMMU_CMD_SYNC.num(w, 'CS');
    // A reserved CS is a malformed command (CERROR_ILL, found when it is decoded) and leaves
    // the earlier ATC_INV outstanding; a well-formed SYNC completes only after earlier ATC
    // invalidations of its queue did.
    if (cs !== CMD_SYNC_CS.NONE && cs !== CMD_SYNC_CS.IRQ && cs !== CMD_SYNC_CS.SEV) return CMDQ_ERR.ILL;
    if (this.atcSyncPending.delete(this.activeQueue)) return CMDQ_ERR.ATC_INV_SYNC;
    if (cs === CMD_SYNC_CS.IRQ) {
      if (this.idr0('MSI')) {
        const addr = SMMU_CMD_SYNC.get(w, 'MSIADDR') << 2n;
        if (this.memory.regionAt(addr) === undefined) this.raiseGlobalError(GERROR_BIT.MSI_CMDQ_ABT_ERR);
        else this.memory.write32(addr, SMMU_CMD_SYNC.num(w, 'MSIDATA'));
      } else this.interrupts.cmdSync++;
    } else if (cs === CMD_SYNC_CS.SEV) this.interrupts.sev++;
    return CMDQ_ERR.NONE;
  }
  /** @internal Whether the ID registers advertise a feature. */
  feature(f: 'S1P' | 'S2P' | 'ATS' | 'PRI' | 'HYP' | 'RIL'): boolean {
    return this.features[f];
  }
  /** @internal ASID / VMID masks (8 or 16 bits, per IDR0). */
  get masks(): { readonly asid: number; readonly vmid: number } {
    return this.idMasks;
  }

  // ---------------------------------------------------------------- event and PRI queues

  /** Appends a 32-byte event record; false when it was dropped (EVTQ off, full or unwritable). */
  writeEvent(words: readonly bigint[]): boolean {
    if (!this.cr0('EVTQEN')) return false;
    return this.produce(OUTPUT_QUEUES.evtq, SMMU_EVENT.toBytes(words));
  }

  /**
   * Writes one record at PROD of an SMMU-produced queue: on overflow the record is lost (and
   * PROD.OVFLG signals it); a write that is not to RAM raises the queue's GERROR abort bit.
   */
  private produce(q: OutputQueue, record: Uint8Array): boolean {
    const r = this.r;
    const base = r[q.base];
    const log2 = Math.min(SMMU_Q_BASE.num([base], 'LOG2SIZE'), this.qMax(q.maxField));
    if (queueFull(r[q.prod], r[q.cons], log2)) {
      // A lost record toggles PROD.OVFLG unless an overflow is already pending
      // (OVFLG != CONS.OVACKFLG until software acknowledges it).
      if (((r[q.prod] ^ r[q.cons]) & 0x8000_0000) === 0) r[q.prod] ^= 0x8000_0000;
      return false;
    }
    const at = (SMMU_Q_BASE.get([base], 'ADDR') << 5n) + BigInt(queueIndex(r[q.prod], log2) * record.length);
    if (!this.memory.isRam(at, record.length)) {
      this.raiseGlobalError(GERROR_BIT[q.abortBit]);
      return false;
    }
    this.memory.write(at, record);
    r[q.prod] = queueIncrement(r[q.prod], log2) | (r[q.prod] & 0x8000_0000);
    if (SMMU_IRQ_CTRL.num([BigInt(r.irqCtrl)], q.irqEnable)) this.signal(q.irq, r[q.msiAddr], r[q.msiData]);
    return true;
  }

  /** A PRI page request from a device: queued in the PRIQ when PRI is enabled. */
  pageRequest(req: PageRequest): boolean {
    if (!this.idr0('PRI') || !this.cr0('PRIQEN')) return false;
    const rec = SMMU_PRIQ.encode({
      SID: req.streamId,
      SSID: req.pasid ?? 0,
      SSID_V: req.pasid !== undefined,
      PERM_PRIV: req.priv ?? false,
      PERM_EXEC: req.exec ?? false,
      PERM_READ: req.read,
      PERM_WRITE: req.write,
      PRG_LAST: req.last,
      PRG_IDX: req.prgi,
      ADDR: req.address >> 12n,
    });
    return this.produce(OUTPUT_QUEUES.priq, SMMU_PRIQ.toBytes(rec));
  }

  /** Registers a device behind this SMMU (ATC_INV and PRI_RESP reach it by StreamID). */
  registerEndpoint(endpoint: DmaEndpoint): void {
    const list = this.endpoints.get(endpoint.streamId) ?? [];
    list.push(endpoint);
    this.endpoints.set(endpoint.streamId, list);
  }

  // ---------------------------------------------------------------- translation

  /** Translates one device access (reference §2 and §2.6). */
  translate(req: DmaRequest): DmaTranslation {
    if (!this.cr0('SMMUEN')) {
      if (SMMU_GBPA.num([BigInt(this.r.gbpa)], 'ABORT')) return abort('GBPA_ABORT', req);
      return { ok: true, pa: req.iova, pageSize: PAGE, writable: true };
    }
    // CR0.ATSCHK = 0 is the fast mode: translated traffic passes with no stream table lookup.
    if (req.ats === 'translated' && !this.cr0('ATSCHK')) return { ok: true, pa: req.iova, pageSize: PAGE, writable: true };
    const steR = this.streamConfig(req);
    if (!steR.ok) return steR;
    const ste = steR.value;
    const translating = ste.config >= STE_CFG.S1_TRANS;
    if (ste.config === STE_CFG.ABORT) return abort('STE_ABORT', req);
    if (req.ats === 'translated') {
      if (!translating || ste.eats === 0) return this.fault('F_TRANSL_FORBIDDEN', { req, record: true });
      return { ok: true, pa: req.iova, pageSize: PAGE, writable: true };
    }
    if (req.translationRequest === true && (!translating || ste.eats === 0)) return this.fault('F_BAD_ATS_TREQ', { req, record: true });
    if (ste.config === STE_CFG.BYPASS) {
      if (req.pasid !== undefined) return this.fault('C_BAD_SUBSTREAMID', { req, record: true });
      return { ok: true, pa: req.iova, pageSize: PAGE, writable: true };
    }
    const s1 = (ste.config & 1) === 1;
    let cd: CdConfig | undefined;
    if (s1) {
      let ssid: number | undefined;
      if (req.pasid === undefined) {
        if (ste.s1cdmax === 0 || ste.s1dss === 2) ssid = 0;
        else if (ste.s1dss === 0) return this.fault('F_STREAM_DISABLED', { req, record: true });
        else ssid = undefined; // S1DSS bypass: stage 1 skipped for non-substream traffic
      } else {
        if (ste.s1cdmax === 0 || req.pasid >= 2 ** ste.s1cdmax || (ste.s1dss === 2 && req.pasid === 0)) {
          return this.fault('C_BAD_SUBSTREAMID', { req, record: true });
        }
        ssid = req.pasid;
      }
      if (ssid !== undefined) {
        const cdR = this.contextDescriptor(req, ste, ssid);
        if (!cdR.ok) return cdR;
        cd = cdR.value;
      }
    } else if (req.pasid !== undefined) {
      return this.fault('C_BAD_SUBSTREAMID', { req, record: true });
    }
    if (cd === undefined && ste.s2 === undefined) return { ok: true, pa: req.iova, pageSize: PAGE, writable: true };
    return this.translateAddress(req, ste, cd);
  }

  private translateAddress(req: DmaRequest, ste: SteConfig, cd: CdConfig | undefined): DmaTranslation {
    const priv = req.priv ?? false;
    const exec = req.exec ?? false;
    const stage: TlbEntry['stage'] = cd === undefined ? 's2' : ste.s2 === undefined ? 's1' : 'nested';
    const asid = cd === undefined ? -1 : cd.asid;
    let entry = this.tlb.lookupPage(stage, ste.vmid, asid, pageOf(req.iova));
    if (entry === undefined) {
      const built = this.fill(req, ste, cd, stage);
      if (!built.ok) return built;
      entry = built.value;
    }
    if (!permits(entry.s1perm, 1, req.write, exec, priv) && stage !== 's2') {
      return this.fault('F_PERMISSION', { req, record: cd!.record, cls: EVT_CLASS.IN });
    }
    if (!permits(entry.s2perm, 2, req.write, exec, priv)) {
      const ipa = entry.ipa === undefined ? req.iova : entry.ipa + (req.iova - entry.iova);
      return this.fault('F_PERMISSION', { req, record: ste.s2Record, stage2: true, cls: EVT_CLASS.IN, ipa });
    }
    return {
      ok: true,
      pa: entry.oa + (req.iova - entry.iova),
      pageSize: entry.size,
      writable: permits(entry.s1perm, 1, true, false, true) && permits(entry.s2perm, 2, true, false, true),
    };
  }

  /** Walks (stage 1, stage 2 or both) and caches the result. */
  private fill(req: DmaRequest, ste: SteConfig, cd: CdConfig | undefined, stage: TlbEntry['stage']): Outcome<TlbEntry> {
    const iova = req.iova;
    if (cd === undefined) {
      // Stage 2 only: the input is an IPA that must fit the SMMU's IAS first.
      if (iova >> BigInt(this.oasBits) !== 0n) return this.fault('F_ADDR_SIZE', { req, record: ste.s2Record });
      const s2 = this.stage2(req, ste, iova, EVT_CLASS.IN);
      if (!s2.ok) return s2;
      return { ok: true, value: s2.value };
    }
    if (cd.s1 === undefined) return this.fault('F_TRANSLATION', { req, record: cd.record, cls: EVT_CLASS.IN });
    // Stage-1 inputs are below 2^48 (T0SZ >= 16) and a larger IOVA faults in the walk before
    // any arithmetic: the walk and the entry are computed in Numbers.
    const ia = Number(iova);
    const tableAddress = ste.s2 === undefined ? undefined : (ipa: number): number | WalkFailure => this.stage2TableAddress(ste, ipa);
    const w = walkNumbers(this.memory, cd.s1, ia, tableAddress);
    if (this.observer !== undefined) this.observeWalk(req.streamId, req.pasid, 's1', iova, cd.s1.startLevel, w);
    if (!w.ok) return this.walkFault(req, ste, cd, w.fault);
    let size = w.size;
    let oa = w.oa + offsetIn(ia, w.size);
    let s2perm = ALL_PERM;
    const ipa = oa;
    if (ste.s2 !== undefined) {
      const s2 = this.stage2(req, ste, oa, EVT_CLASS.IN);
      if (!s2.ok) return s2;
      const s2size = Number(s2.value.size);
      if (s2size < size) size = s2size;
      oa = Number(s2.value.oa) + (oa - Number(s2.value.iova));
      s2perm = s2.value.s2perm;
    }
    const offset = offsetIn(ia, size);
    const e: TlbEntry = {
      stage,
      vmid: ste.vmid,
      asid: cd.asid,
      global: w.global,
      iova: BigInt(ia - offset),
      size: sizeBigInt(size),
      oa: BigInt(oa - offset),
      ...(stage === 'nested' ? { ipa: BigInt(ipa - offset) } : {}),
      s1perm: w.perm,
      s2perm,
    };
    this.tlb.insert(e);
    return { ok: true, value: e };
  }

  /** A stage-1 table address (an IPA) translated through stage 2, for a nested walk. */
  private stage2TableAddress(ste: SteConfig, ipa: number): number | WalkFailure {
    const t = this.stage2Raw(ste, ipa);
    if (!t.ok) return { ok: false, fault: { ...t.fault, tableIpa: BigInt(ipa) } };
    return Number(t.value.oa) + (ipa - Number(t.value.iova));
  }

  /** Stage-2 translation of `ipa` with fault reporting (CLASS `cls`). */
  private stage2(req: DmaRequest, ste: SteConfig, ipa: bigint | number, cls: number): Outcome<TlbEntry> {
    const t = this.stage2Raw(ste, Number(ipa));
    if (!t.ok) {
      const f = t.fault;
      if (f.id === EVT_ID.F_WALK_EABT) return this.fault('F_WALK_EABT', { req, record: true, stage2: true, cls, fetchAddr: f.fetchAddr! });
      return this.fault(EVENT_NAMES.get(f.id)!, { req, record: ste.s2Record, stage2: true, cls, ipa: BigInt(ipa) });
    }
    return t;
  }

  /**
   * Stage-2 translation of `ipa` through the TLB (no fault reporting). `ipa` is a Number: an
   * IPA below 2^48 is exact, and a larger one faults against S2T0SZ before it is used.
   */
  private stage2Raw(ste: SteConfig, ipa: number): { ok: true; value: TlbEntry } | WalkFailure {
    const hit = ipa >= 0 && ipa < 2 ** 53 ? this.tlb.lookupPage('s2', ste.vmid, -1, Math.floor(ipa / 4096)) : undefined;
    if (hit !== undefined) return { ok: true, value: hit };
    const w = walkNumbers(this.memory, ste.s2!, ipa, undefined);
    if (this.observer !== undefined) this.observeWalk(ste.sid, undefined, 's2', BigInt(ipa), ste.s2!.startLevel, w);
    if (!w.ok) return w;
    const e: TlbEntry = { stage: 's2', vmid: ste.vmid, asid: -1, global: false, iova: BigInt(ipa - offsetIn(ipa, w.size)), size: sizeBigInt(w.size), oa: BigInt(w.oa), s1perm: ALL_PERM, s2perm: w.perm };
    this.tlb.insert(e);
    return { ok: true, value: e };
  }

  private observeWalk(sid: number, ssid: number | undefined, stage: 's1' | 's2', ia: bigint, startLevel: number, w: WalkLeafNumbers | WalkFailure): void {
    this.observer!.walk({
      streamId: sid,
      ...(ssid !== undefined ? { pasid: ssid } : {}),
      iova: ia,
      stage,
      ...(w.ok ? { levels: w.level - startLevel + 1 } : {}),
      result: w.ok ? { ok: true, pa: BigInt(w.oa), size: BigInt(w.size) } : { ok: false, fault: EVENT_NAMES.get(w.fault.id) ?? `event 0x${w.fault.id.toString(16)}` },
    });
  }

  private walkFault(req: DmaRequest, ste: SteConfig, cd: CdConfig, f: WalkFault): { ok: false; fault: DmaFault } {
    if (f.tableIpa !== undefined) {
      // Stage-2 fault while translating a stage-1 table address (CLASS = TT).
      if (f.id === EVT_ID.F_WALK_EABT) return this.fault('F_WALK_EABT', { req, record: true, stage2: true, cls: EVT_CLASS.TT, fetchAddr: f.fetchAddr! });
      return this.fault(EVENT_NAMES.get(f.id)!, { req, record: ste.s2Record, stage2: true, cls: EVT_CLASS.TT, ipa: f.tableIpa });
    }
    if (f.id === EVT_ID.F_WALK_EABT) return this.fault('F_WALK_EABT', { req, record: true, cls: EVT_CLASS.TT, fetchAddr: f.fetchAddr! });
    return this.fault(EVENT_NAMES.get(f.id)!, { req, record: cd.record, cls: EVT_CLASS.IN });
  }

  // ---------------------------------------------------------------- configuration

  /** The STE of `req.streamId`: config cache, else fetched, validated and cached. */
  private streamConfig(req: DmaRequest): Outcome<SteConfig> {
    const cached = this.configCache.get(req.streamId);
    // Kept small so that it inlines into translate() and the hit's wrapper is never allocated.
    if (cached !== undefined && cached.kind === 'ste') return { ok: true, value: cached.ste };
    return this.fetchStreamConfig(req);
  }

  /** The STE of `req.streamId` fetched from the stream table, validated and cached. */
  private fetchStreamConfig(req: DmaRequest): Outcome<SteConfig> {
    const sid = req.streamId;
    const cfg = [BigInt(this.r.strtabBaseCfg)];
    const log2 = Math.min(SMMU_STRTAB_BASE_CFG.num(cfg, 'LOG2SIZE'), this.sidBits);
    const base = this.r.strtabBase & 0x000f_ffff_ffff_ffc0n;
    if (sid < 0 || sid >= 2 ** log2) return this.fault('C_BAD_STREAMID', { req, record: true });
    let steAddr: bigint;
    if (SMMU_STRTAB_BASE_CFG.num(cfg, 'FMT') === 1) {
      const split = SMMU_STRTAB_BASE_CFG.num(cfg, 'SPLIT');
      const l1Addr = base + BigInt(Math.floor(sid / 2 ** split) * 8);
      if (!this.memory.isRam(l1Addr, 8)) return this.fault('F_STE_FETCH', { req, record: true, fetchAddr: l1Addr });
      const l1 = [this.memory.read64(l1Addr)];
      const span = SMMU_L1STD.num(l1, 'SPAN');
      const l2Index = sid % 2 ** split;
      if (span === 0 || l2Index >= 2 ** (span - 1)) return this.fault('C_BAD_STREAMID', { req, record: true });
      steAddr = (SMMU_L1STD.get(l1, 'L2PTR') << 6n) + BigInt(l2Index * 64);
    } else {
      steAddr = base + BigInt(sid) * 64n;
    }
    if (!this.memory.isRam(steAddr, 64)) return this.fault('F_STE_FETCH', { req, record: true, fetchAddr: steAddr });
    const words = SMMU_STE.fromBytes(this.memory.read(steAddr, 64));
    const ste = this.decodeSte(sid, words);
    if (ste === undefined) return this.fault('C_BAD_STE', { req, record: true });
    this.configCache.set(sid, { kind: 'ste', ste });
    return { ok: true, value: ste };
  }

  /** Validates an STE (QEMU decode_ste + the architecture); undefined = C_BAD_STE. */
  private decodeSte(sid: number, w: bigint[]): SteConfig | undefined {
    const f = SMMU_STE.decode(w);
    if (f.V === 0n) return undefined;
    const config = Number(f.CONFIG);
    if (config !== STE_CFG.ABORT && config < STE_CFG.BYPASS) return undefined;
    const s1 = config >= STE_CFG.S1_TRANS && (config & 1) === 1;
    const s2 = config >= STE_CFG.S1_TRANS && (config & 2) === 2;
    if ((s1 && !this.s1p) || (s2 && !this.s2p)) return undefined;
    const s1cdmax = Number(f.S1CDMAX);
    if (s1) {
      if (s1cdmax > this.ssidBits) return undefined;
      if (f.S1FMT === 3n || (f.S1FMT !== 0n && this.idr0('CD2L') === 0)) return undefined;
    }
    let s2p: WalkParams | undefined;
    if (s2) {
      const ps = Math.min(OAS_BITS[Math.min(Number(f.S2PS), 6)]!, this.oasBits, 48);
      const iaBits = 64 - Number(f.S2T0SZ);
      const sl0 = Number(f.S2SL0);
      const startLevel = 2 - sl0;
      if (f.S2AA64 === 0n || f.S2TG !== 0n || sl0 === 3 || f.S2ENDI === 1n || f.S2S === 1n || f.S2HA === 1n || f.S2HD === 1n) return undefined;
      if (f.S2PS > 6n || iaBits < 25 || iaBits > ps) return undefined;
      const startBits = iaBits - levelShift(startLevel);
      // At most 16 concatenated tables at the start level.
      if (startBits < 1 || startBits > 13) return undefined;
      const ttb = f.S2TTB << 4n;
      if (ttb >> BigInt(ps) !== 0n) return undefined;
      s2p = { stage: 2, ttb, iaBits, startLevel, oaBits: ps, affd: f.S2AFFD === 1n };
    }
    if (f.EATS === 3n) return undefined;
    return {
      sid,
      config,
      words: w,
      s1fmt: Number(f.S1FMT),
      s1ContextPtr: f.S1CONTEXTPTR << 6n,
      s1cdmax,
      s1dss: Number(f.S1DSS),
      eats: Number(f.EATS),
      vmid: Number(f.S2VMID) & this.vmidMask,
      s2: s2p,
      s2Record: f.S2R === 1n,
    };
  }

  /** The CD of (`sid`, `ssid`): config cache, else fetched (through stage 2 when nested). */
  private contextDescriptor(req: DmaRequest, ste: SteConfig, ssid: number): Outcome<CdConfig> {
    // CD keys are negative so they never collide with STE keys (the StreamID).
    const key = -(ste.sid * 2 ** 20 + ssid) - 1;
    const cached = this.configCache.get(key);
    // Kept small so that it inlines into translate() and the hit's wrapper is never allocated.
    if (cached !== undefined && cached.kind === 'cd') return { ok: true, value: cached.cd };
    return this.fetchContextDescriptor(req, ste, ssid, key);
  }

  /** The CD of (`sid`, `ssid`) fetched (through stage 2 when nested), validated and cached under `key`. */
  private fetchContextDescriptor(req: DmaRequest, ste: SteConfig, ssid: number, key: number): Outcome<CdConfig> {
    const toPa = (ipa: bigint): Outcome<bigint> => {
      if (ste.s2 === undefined) return { ok: true, value: ipa };
      const t = this.stage2(req, ste, ipa, EVT_CLASS.CD);
      if (!t.ok) return t;
      return { ok: true, value: t.value.oa + (ipa - t.value.iova) };
    };
    let cdIpa: bigint;
    if (ste.s1fmt === 0) {
      cdIpa = ste.s1ContextPtr + BigInt(ssid) * 64n;
    } else {
      const leafBits = ste.s1fmt === 1 ? 6 : 10;
      const l1 = toPa(ste.s1ContextPtr + BigInt(Math.floor(ssid / 2 ** leafBits) * 8));
      if (!l1.ok) return l1;
      if (!this.memory.isRam(l1.value, 8)) return this.fault('F_CD_FETCH', { req, record: true, fetchAddr: l1.value });
      const l1d = [this.memory.read64(l1.value)];
      if (SMMU_L1CD.get(l1d, 'V') === 0n) return this.fault('C_BAD_SUBSTREAMID', { req, record: true });
      cdIpa = (SMMU_L1CD.get(l1d, 'L2PTR') << 12n) + BigInt((ssid % 2 ** leafBits) * 64);
    }
    const cdPa = toPa(cdIpa);
    if (!cdPa.ok) return cdPa;
    if (!this.memory.isRam(cdPa.value, 64)) return this.fault('F_CD_FETCH', { req, record: true, fetchAddr: cdPa.value });
    const words = SMMU_CD.fromBytes(this.memory.read(cdPa.value, 64));
    const cd = this.decodeCd(ste.sid, ssid, words);
    if (cd === undefined) return this.fault('C_BAD_CD', { req, record: true });
    this.configCache.set(key, { kind: 'cd', cd });
    return { ok: true, value: cd };
  }

  /** Validates a CD (QEMU's bad-CD rules); undefined = C_BAD_CD. */
  private decodeCd(sid: number, ssid: number, w: bigint[]): CdConfig | undefined {
    const f = SMMU_CD.decode(w);
    // TERM_MODEL = 1 requires A = 1; no stall, no HTTU, little-endian only, 4 KiB granule only.
    if (f.V === 0n || f.AA64 === 0n || f.A === 0n || f.S === 1n || f.HA === 1n || f.HD === 1n || f.ENDI === 1n) return undefined;
    const t0sz = Number(f.T0SZ);
    if (t0sz < 16 || t0sz > 39 || f.TG0 !== 0n || f.IPS > 6n) return undefined;
    const ips = Math.min(OAS_BITS[Number(f.IPS)]!, this.oasBits, 48);
    const ttb = f.TTB0 << 4n;
    if (ttb >> BigInt(ips) !== 0n) return undefined;
    const iaBits = 64 - t0sz;
    const s1: WalkParams | undefined = f.EPD0 === 1n ? undefined : { stage: 1, ttb, iaBits, startLevel: s1StartLevel(iaBits), oaBits: ips, affd: f.AFFD === 1n };
    return { sid, ssid, asid: Number(f.ASID) & this.asidMask, words: w, s1, record: f.R === 1n };
  }

  // ---------------------------------------------------------------- faults

  /** Builds the event record of a fault, writes it when recordable, and returns the device's view. */
  private fault(name: SmmuEventName, site: FaultSite): { ok: false; fault: DmaFault } {
    const id = EVT_ID[name];
    const req = site.req;
    // Translation faults of an ATS Translation Request are answered in the completion, not recorded.
    const atsSilent = req.translationRequest === true && id >= EVT_ID.F_TRANSLATION && id <= EVT_ID.F_PERMISSION;
    const all: Record<string, bigint | number | boolean> = {
      SID: req.streamId,
      SSV: req.pasid !== undefined,
      SSID: req.pasid ?? 0,
      RNW: !req.write,
      PNU: req.priv ?? false,
      IND: req.exec ?? false,
      S2: site.stage2 ?? false,
      CLASS: site.cls ?? 0,
      TTRNW: site.cls === EVT_CLASS.TT,
      INPUT_ADDR: req.iova,
      IPA: site.ipa !== undefined ? site.ipa >> 12n : 0n,
      FETCH_ADDR: site.fetchAddr !== undefined ? site.fetchAddr >> 3n : 0n,
    };
    const values: Record<string, bigint | number | boolean> = { ID: id };
    for (const f of EVENT_RECORD_FIELDS[name] ?? []) if (f in all) values[f] = all[f]!;
    const layout = site.fetchAddr !== undefined ? SMMU_EVENT_FETCH : SMMU_EVENT;
    const words = layout.encode(values);
    const recorded = site.record && !atsSilent && this.writeEvent(words);
    if (this.observer !== undefined) {
      this.observer.fault({ name, streamId: req.streamId, ...(req.pasid !== undefined ? { pasid: req.pasid } : {}), iova: req.iova, write: req.write, recorded, stall: false });
    }
    return { ok: false, fault: { kind: name, code: id, iova: req.iova, write: req.write, recorded, stall: false } };
  }
}

/** The registers of a queue the SMMU produces into (event queue, PRI queue). */
interface OutputQueue {
  readonly base: 'evtqBase' | 'priqBase';
  readonly prod: 'evtqProd' | 'priqProd';
  readonly cons: 'evtqCons' | 'priqCons';
  readonly maxField: 'EVTQS' | 'PRIQS';
  readonly abortBit: 'EVTQ_ABT_ERR' | 'PRIQ_ABT_ERR';
  readonly irqEnable: 'EVTQ_IRQEN' | 'PRIQ_IRQEN';
  readonly irq: 'evtq' | 'priq';
  readonly msiAddr: 'evtqIrqCfg0' | 'priqIrqCfg0';
  readonly msiData: 'evtqIrqCfg1' | 'priqIrqCfg1';
}
const OUTPUT_QUEUES: Record<'evtq' | 'priq', OutputQueue> = {
  evtq: { base: 'evtqBase', prod: 'evtqProd', cons: 'evtqCons', maxField: 'EVTQS', abortBit: 'EVTQ_ABT_ERR', irqEnable: 'EVTQ_IRQEN', irq: 'evtq', msiAddr: 'evtqIrqCfg0', msiData: 'evtqIrqCfg1' },
  priq: { base: 'priqBase', prod: 'priqProd', cons: 'priqCons', maxField: 'PRIQS', abortBit: 'PRIQ_ABT_ERR', irqEnable: 'PRIQ_IRQEN', irq: 'priq', msiAddr: 'priqIrqCfg0', msiData: 'priqIrqCfg1' },
};

interface RegisterHandler {
  readonly width: 4 | 8;
  read(): bigint;
  write?(v: bigint): void;
}

function abort(kind: string, req: DmaRequest): { ok: false; fault: DmaFault } {
  return { ok: false, fault: { kind, code: 0, iova: req.iova, write: req.write, recorded: false } };
}

function checkRange(name: string, v: number, lo: number, hi: number): void {
  if (!Number.isInteger(v) || v < lo || v > hi) throw new SmmuV3OptionsError(`${name} must be an integer in ${lo}..${hi}, got ${v}`);
}

/** Arm CoreLink MMU-600 peripheral/component ID registers (as QEMU presents them). */
const PRIMECELL_ID = new Map<number, number>([
  [0xfd0, 0x04],
  [0xfe0, 0x84],
  [0xfe4, 0xb4],
  [0xfe8, 0xf0],
  [0xfec, 0x10],
  [0xff0, 0x0d],
  [0xff4, 0xf0],
  [0xff8, 0x05],
  [0xffc, 0xb1],
]);

/**
 * The address range a TLBI covers: [start, end). Without RIL the range fields are RES0 and
 * ignored; TG = 0 is a single-address invalidation.
 */
function tlbiRange(s: SmmuV3, w: bigint[]): { start: bigint; end: bigint } {
  const addr = field(TLBI.ADDR, w) << 12n;
  const tg = s.feature('RIL') ? num(TLBI.TG, w) : 0;
  if (tg === 0) return { start: addr, end: addr + 1n };
  const granule = 1n << BigInt(12 + 2 * (tg - 1));
  const pages = BigInt(num(TLBI.NUM, w) + 1) << BigInt(num(TLBI.SCALE, w));
  const start = addr & ~(granule - 1n);
  return { start, end: start + pages * granule };
}

function overlaps(e: TlbEntry, r: { start: bigint; end: bigint }): boolean {
  return e.iova < r.end && r.start < e.iova + e.size;
}

type CommandHandler = (s: SmmuV3, w: bigint[]) => number;
const OK = CMDQ_ERR.NONE;
const ILL = CMDQ_ERR.ILL;
/** Precompiled readers of the fields every TLBI reads (no name lookup per command). */
const TLBI = {
  ADDR: SMMU_CMD_TLBI.reader('ADDR'),
  TG: SMMU_CMD_TLBI.reader('TG'),
  NUM: SMMU_CMD_TLBI.reader('NUM'),
  SCALE: SMMU_CMD_TLBI.reader('SCALE'),
  VMID: SMMU_CMD_TLBI.reader('VMID'),
  ASID: SMMU_CMD_TLBI.reader('ASID'),
};
/** Readers of the ATC_INV fields. */
const ATC = {
  SIZE: SMMU_CMD_ATC_INV.reader('SIZE'),
  SSV: SMMU_CMD_ATC_INV.reader('SSV'),
  GLOBAL: SMMU_CMD_ATC_INV.reader('GLOBAL'),
  ADDR: SMMU_CMD_ATC_INV.reader('ADDR'),
  SID: SMMU_CMD_ATC_INV.reader('SID'),
  SSID: SMMU_CMD_ATC_INV.reader('SSID'),
};
const CMD_SSEC = SMMU_CMD.reader('SSEC');
const CMD_SID = SMMU_CMD.reader('SID');
const CMD_SSID = SMMU_CMD.reader('SSID');
const field = (r: BitFieldReader, w: readonly bigint[]): bigint => r.get(w[r.word]!);
const num = (r: BitFieldReader, w: readonly bigint[]): number => Number(r.get(w[r.word]!));
const vmidOf = (s: SmmuV3, w: bigint[]) => num(TLBI.VMID, w) & s.masks.vmid;
const asidOf = (s: SmmuV3, w: bigint[]) => num(TLBI.ASID, w) & s.masks.asid;
const isS1 = (e: TlbEntry) => e.stage !== 's2';
const needs = (f: 'S1P' | 'S2P', h: CommandHandler): CommandHandler => (s, w) => (s.feature(f) ? h(s, w) : ILL);

/** The opcode table (reference §3.2, invalidation scopes per §7.1). */
const COMMAND_TABLE = new Map<number, CommandHandler>([
  [CMDQ_OP.PREFETCH_CONFIG, () => OK],
  [CMDQ_OP.PREFETCH_ADDR, () => OK],
  [
    CMDQ_OP.CFGI_STE,
    (s, w) => {
      s.cmdCfgi(SMMU_CMD.num(w, 'SID'), 1);
      return OK;
    },
  ],
  [
    CMDQ_OP.CFGI_STE_RANGE,
    (s, w) => {
      const range = SMMU_CMD_CFGI_RANGE.num(w, 'RANGE');
      const span = 2 ** (range + 1);
      const sid = SMMU_CMD.num(w, 'SID');
      s.cmdCfgi(sid - (sid % span), span);
      return OK;
    },
  ],
  [
    CMDQ_OP.CFGI_CD,
    needs('S1P', (s, w) => {
      s.cmdCfgiCd(num(CMD_SID, w), num(CMD_SSID, w));
      return OK;
    }),
  ],
  [
    CMDQ_OP.CFGI_CD_ALL,
    needs('S1P', (s, w) => {
      s.cmdCfgiCd(SMMU_CMD.num(w, 'SID'), undefined);
      return OK;
    }),
  ],
  [
    CMDQ_OP.TLBI_NH_ALL,
    needs('S1P', (s, w) => {
      const vmid = vmidOf(s, w);
      // Without stage 2 there are no VMIDs: NH_ALL is everything.
      s.cmdTlbi((e) => isS1(e) && (!s.feature('S2P') || e.vmid === vmid));
      return OK;
    }),
  ],
  [
    CMDQ_OP.TLBI_NH_ASID,
    needs('S1P', (s, w) => {
      const vmid = vmidOf(s, w);
      const asid = asidOf(s, w);
      s.cmdTlbi((e) => isS1(e) && e.vmid === vmid && e.asid === asid && !e.global);
      return OK;
    }),
  ],
  [
    CMDQ_OP.TLBI_NH_VA,
    needs('S1P', (s, w) => {
      const vmid = vmidOf(s, w);
      const asid = asidOf(s, w);
      const r = tlbiRange(s, w);
      s.cmdTlbi((e) => isS1(e) && e.vmid === vmid && (e.asid === asid || e.global) && overlaps(e, r));
      return OK;
    }),
  ],
  [
    CMDQ_OP.TLBI_NH_VAA,
    needs('S1P', (s, w) => {
      const vmid = vmidOf(s, w);
      const r = tlbiRange(s, w);
      s.cmdTlbi((e) => isS1(e) && e.vmid === vmid && overlaps(e, r));
      return OK;
    }),
  ],
  // EL2/EL3 entries are never created (STRW = EL2 and secure streams are not modelled), so
  // these are accepted with nothing to remove (as QEMU and the queue engine do).
  [CMDQ_OP.TLBI_EL3_ALL, () => OK],
  [CMDQ_OP.TLBI_EL3_VA, () => OK],
  [CMDQ_OP.TLBI_EL2_ALL, () => OK],
  [CMDQ_OP.TLBI_EL2_ASID, () => OK],
  [CMDQ_OP.TLBI_EL2_VA, () => OK],
  [CMDQ_OP.TLBI_EL2_VAA, () => OK],
  [
    CMDQ_OP.TLBI_S12_VMALL,
    needs('S2P', (s, w) => {
      const vmid = vmidOf(s, w);
      s.cmdTlbi((e) => e.vmid === vmid);
      return OK;
    }),
  ],
  [
    CMDQ_OP.TLBI_S2_IPA,
    needs('S2P', (s, w) => {
      const vmid = vmidOf(s, w);
      const r = tlbiRange(s, w);
      // Only stage-2 entries: combined nested entries need TLBI_NH_ALL (Linux issues both).
      s.cmdTlbi((e) => e.stage === 's2' && e.vmid === vmid && overlaps(e, r));
      return OK;
    }),
  ],
  [
    CMDQ_OP.TLBI_NSNH_ALL,
    (s) => {
      s.cmdTlbi(() => true);
      return OK;
    },
  ],
  [
    CMDQ_OP.ATC_INV,
    (s, w) => {
      if (!s.feature('ATS')) return ILL;
      // Size 52 and above means the whole ATC.
      const size = num(ATC.SIZE, w);
      const ssv = ATC.SSV.test(w[ATC.SSV.word]!) && !ATC.GLOBAL.test(w[ATC.GLOBAL.word]!);
      const bytes = size >= 52 ? undefined : 0x1000n << BigInt(size);
      const addr = field(ATC.ADDR, w) << 12n;
      s.cmdAtcInv(num(ATC.SID, w), ssv ? num(ATC.SSID, w) : undefined, bytes === undefined ? 0n : addr & ~(bytes - 1n), bytes);
      return OK;
    },
  ],
  [
    CMDQ_OP.PRI_RESP,
    (s, w) => {
      // Without PRI there is no device waiting for a response: nothing to deliver.
      if (!s.feature('PRI')) return OK;
      const resp = SMMU_CMD_PRI_RESP.num(w, 'RESP');
      const ssv = SMMU_CMD_PRI_RESP.num(w, 'SSV') === 1;
      s.cmdPriResp(SMMU_CMD_PRI_RESP.num(w, 'SID'), ssv ? SMMU_CMD_PRI_RESP.num(w, 'SSID') : undefined, SMMU_CMD_PRI_RESP.num(w, 'PRGI'), resp);
      return OK;
    },
  ],
  // STALL_MODEL = 1 (no stalls): there is never a stalled transaction to resume or terminate.
  [CMDQ_OP.RESUME, () => OK],
  [CMDQ_OP.STALL_TERM, () => OK],
  [CMDQ_OP.CMD_SYNC, (s, w) => s.cmdSync(w)],
]);

/** {@link COMMAND_TABLE} indexed by the 8-bit opcode (an array lookup per command). */
const COMMANDS: readonly (CommandHandler | undefined)[] = Array.from({ length: 256 }, (_, op) => COMMAND_TABLE.get(op));
