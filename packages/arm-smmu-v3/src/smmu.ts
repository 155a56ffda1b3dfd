/**
 * One SMMUv3 instance as the arm-smmu-v3 driver owns it (`struct arm_smmu_device`): probe
 * from the ID registers (`arm_smmu_device_hw_probe`), queue and stream-table allocation,
 * the reset/enable sequence (`arm_smmu_device_reset`), command submission, and the
 * interrupt handlers (GERROR with CMDQ error recovery, event queue, PRI queue).
 */
import { ENXIO, EINVAL, ERANGE, ENOMEM, EOPNOTSUPP } from '@iommufd/uapi';
import type { Device, FaultInjector, HwInfoResult, IommuDevice, IommuUserData, Status } from '@iommufd/driver-api';
import type { ArmVsmmu } from './iommufd.js';
import {
  CMDQ_ERR,
  EVT_ID,
  SMMU_CMD_SYNC,
  SMMU_CR0,
  SMMU_EVENT,
  SMMU_GBPA,
  SMMU_GERROR,
  SMMU_IDR0,
  SMMU_IDR1,
  SMMU_IDR3,
  SMMU_IDR5,
  SMMU_IRQ_CTRL,
  SMMU_L1STD,
  SMMU_PAGE1,
  SMMU_PRIQ,
  SMMU_Q_BASE,
  SMMU_Q_PTR,
  SMMU_REG,
  SMMU_STE,
  SMMU_STRTAB_BASE,
  SMMU_STRTAB_BASE_CFG,
  queueEmpty,
  queueIncrement,
  queueIndex,
  queueEngineFor,
  type PhysicalMemory,
} from '@iommufd/hw-model';
import type { Vsmmu } from '@iommufd/queue-engine';
import { buildCmd, type CmdqEnt } from './cmds.js';
import { CmdqBatch, CommandQueue, type CmdqHost } from './cmdq.js';
import { writeEntry, getSteUsed, type EntryWriter } from './entry-writer.js';
import { makeAbortSte, type SteFeatures } from './ste.js';
import type { ArmSmmuMaster } from './master.js';
import { armSmmuV3Ops } from './ops.js';
import { installPriIopf } from './pri.js';

/** The events `arm_smmu_handle_event` acts on; others are only logged. */
const FORWARDABLE_EVENTS: ReadonlySet<number> = new Set([
  EVT_ID.C_BAD_STE,
  EVT_ID.F_STREAM_DISABLED,
  EVT_ID.C_BAD_SUBSTREAMID,
  EVT_ID.C_BAD_CD,
  EVT_ID.F_TRANSLATION,
  EVT_ID.F_ADDR_SIZE,
  EVT_ID.F_ACCESS,
  EVT_ID.F_PERMISSION,
]);

/** `PRI_RESP_DENY` */
const PRI_RESP_DENY = 0;

/** Thrown when an SMMU cannot be driven (Linux's probe failing with -ENXIO etc.). */
export class ArmSmmuProbeError extends Error {
  /** Always `ArmSmmuProbeError`. */
  override readonly name = 'ArmSmmuProbeError';
  /** The errno Linux's probe returns. */
  readonly errno: number;
  /** An error with the errno Linux's probe would return and what was wrong. */
  constructor(errno: number, message: string) {
    super(message);
    this.errno = errno;
  }
}

/** The PCI endpoint's ATS control, as the driver enables and disables it (`pci_enable_ats`). */
export interface AtsControl {
  /** ATS Enable of the endpoint's ATS capability. */
  atsEnabled: boolean;
}

/**
 * A device behind the SMMU as firmware (IORT) describes it: the name the core will give it
 * and its StreamID. A `PciDevice` of `@iommufd/hw-model` is one as it is (its own ATS control);
 * a plain entry names the endpoint whose ATS control the driver writes.
 */
export interface FirmwareStream {
  /** Device name used with the core (`core.addDevice({ name })`), e.g. `PciDevice.name`. */
  readonly name: string;
  /** Its StreamID. */
  readonly streamId: number;
  /** The endpoint's ATS control register (for a PciDevice: the PciDevice itself). */
  readonly endpoint?: AtsControl;
  /** ATS enable, when this entry is the endpoint itself (a PciDevice). */
  atsEnabled?: boolean;
}

/** Options of {@link armSmmuV3Probe}. */
export interface ArmSmmuV3ProbeOptions {
  /** The machine's physical memory (MMIO and RAM for tables and queues). */
  readonly memory: PhysicalMemory;
  /** Physical base of the SMMU register frame. */
  readonly base: bigint;
  /** Instance name (default `smmu@<base>`). */
  readonly name?: string;
  /** Devices behind the SMMU (pass `machine.devices`: a `PciDevice` fits). */
  readonly streams?: readonly FirmwareStream[];
  /** IORT `CANWBS`: the masters are fully cache coherent (enables nesting without S2FWB). */
  readonly canwbs?: boolean;
  /**
   * Route PRI page requests to the core's I/O page-fault path (FAULT objects) and page
   * responses back as PRI_RESP. Default false: Linux 6.17 denies every PRI request.
   */
  readonly priIopf?: boolean;
  /** An implementation extension built after the structures and reset last (the Tegra241 CMDQV). */
  readonly impl?: (smmu: ArmSmmuV3) => SmmuImpl;
  /**
   * Who converts guest invalidation arrays on the trapped vSMMU path (VMID stamping,
   * vSID → pSID, opcode whitelist): `'engine'` (default) the queue engine of the memory's
   * store when it loads, else TypeScript; `'typescript'` always TypeScript. Same results.
   */
  readonly vsmmuConverter?: 'engine' | 'typescript';
}

/** `struct arm_smmu_impl_ops`: what an implementation (Tegra241 CMDQV) adds to the driver. */
export interface SmmuImpl {
  /** `device_reset`, run after the SMMU is enabled. */
  deviceReset(): Status;
  /** `get_secondary_cmdq` */
  getSecondaryCmdq(ent: CmdqEnt): CommandQueue | undefined;
  /** The implementation's interrupt handler, run with the SMMU's. */
  serviceInterrupts(): void;
  /** `hw_info` for implementation types. */
  hwInfo(type: number): HwInfoResult | number;
  /** `get_viommu_size` for implementation types. */
  getViommuSize(type: number): number;
  /** `vsmmu_init` for implementation types. */
  vsmmuInit(vsmmu: ArmVsmmu, userData: IommuUserData | undefined): Status;
}

/** The features the driver derived from the ID registers (`ARM_SMMU_FEAT_*`). */
export interface ArmSmmuFeatures extends SteFeatures {
  /** `ARM_SMMU_FEAT_2_LVL_STRTAB`: IDR0.ST_LEVEL and more than 8 StreamID bits. */
  readonly twoLvlStrtab: boolean;
  /** `ARM_SMMU_FEAT_2_LVL_CDTAB` (IDR0.CD2L) */
  readonly twoLvlCdtab: boolean;
  /** `ARM_SMMU_FEAT_PRI` */
  readonly pri: boolean;
  /** `ARM_SMMU_FEAT_ATS` */
  readonly ats: boolean;
  /** `ARM_SMMU_FEAT_SEV` */
  readonly sev: boolean;
  /** `ARM_SMMU_FEAT_MSI` */
  readonly msi: boolean;
  /** `ARM_SMMU_FEAT_HYP` */
  readonly hyp: boolean;
  /** `ARM_SMMU_FEAT_TRANS_S1` */
  readonly transS1: boolean;
  /** `ARM_SMMU_FEAT_TRANS_S2` */
  readonly transS2: boolean;
  /** `ARM_SMMU_FEAT_NESTING`: S1P and S2P, minus the MMU-600/700 errata. */
  readonly nesting: boolean;
  /** `ARM_SMMU_FEAT_RANGE_INV` (IDR3.RIL) */
  readonly rangeInv: boolean;
  /** `ARM_SMMU_FEAT_S2FWB` (IDR3.FWB) */
  readonly s2fwb: boolean;
  /** `ARM_SMMU_FEAT_COHERENCY` (IDR0.COHACC) */
  readonly coherency: boolean;
  /** `ARM_SMMU_FEAT_HD`: hardware dirty state (IDR0.HTTU = 2). */
  readonly hd: boolean;
  /** `ARM_SMMU_FEAT_HA`: hardware access flag. */
  readonly ha: boolean;
  /** `ARM_SMMU_FEAT_STALL_FORCE` */
  readonly stallForce: boolean;
}

/** `STRTAB_SPLIT`: StreamIDs per level-2 table (one PCI bus). */
const STRTAB_SPLIT = 8;
/** `STRTAB_MAX_L1_ENTRIES` */
const STRTAB_MAX_L1_ENTRIES = 1 << 17;
/** `Q_MAX_SZ_SHIFT` (PAGE_SHIFT + MAX_PAGE_ORDER) and the per-queue entry-count caps. */
const Q_MAX_SZ_SHIFT = 22;
const CMDQ_MAX_SZ_SHIFT = Q_MAX_SZ_SHIFT - 4;
const EVTQ_MAX_SZ_SHIFT = Q_MAX_SZ_SHIFT - 5;
const PRIQ_MAX_SZ_SHIFT = Q_MAX_SZ_SHIFT - 4;
/** `CR1` = table and queue walks inner-shareable, write-back. */
const CR1_VALUE = (3 << 10) | (1 << 8) | (1 << 6) | (3 << 4) | (1 << 2) | 1;
/** `CR2_PTM | CR2_RECINVSID` */
const CR2_VALUE = (1 << 2) | (1 << 1);
const OAS_BITS = [32, 36, 40, 42, 44, 48, 52] as const;

/** A queue the SMMU produces into (EVTQ, PRIQ) with the driver's consumer shadow. */
interface ProducerQueue {
  readonly base: bigint;
  readonly log2Size: number;
  readonly entBytes: number;
  readonly prodReg: number;
  readonly consReg: number;
  prod: number;
  cons: number;
}

/** A PRI page request as decoded from the PRIQ, handed to the IOPF path. */
export interface PriPageRequest {
  /** StreamID. */
  readonly sid: number;
  /** SubstreamID (PASID) when the request carries one. */
  readonly ssid: number | undefined;
  /** Page request group index. */
  readonly grpid: number;
  /** Last request of its group (a response is due). */
  readonly last: boolean;
  /** Read access requested. */
  readonly read: boolean;
  /** Write access requested. */
  readonly write: boolean;
  /** Execute access requested. */
  readonly exec: boolean;
  /** Privileged access requested. */
  readonly priv: boolean;
  /** Page address. */
  readonly addr: bigint;
}

/**
 * An SMMUv3 driven by this driver: the `IommuDevice` a host registers with the core
 * (`iommu_device_register`).
 */
export class ArmSmmuV3 implements IommuDevice, CmdqHost {
  /** Instance name. */
  readonly name: string;
  /** The driver operations (shared by every SMMUv3 instance, as `arm_smmu_ops`). */
  readonly ops = armSmmuV3Ops;
  /** Set by the core at registration. */
  faultInjector?: FaultInjector;
  /** Raw IDR0..IDR5 as read at probe. */
  readonly idr: readonly number[];
  /** IIDR */
  readonly iidr: number;
  /** AIDR */
  readonly aidr: number;
  /** Derived features. */
  readonly features: ArmSmmuFeatures;
  /** `ARM_SMMU_OPT_MSIPOLL` */
  readonly msiPoll: boolean;
  /** `ARM_SMMU_OPT_CMDQ_FORCE_SYNC` */
  readonly forceSync: boolean;
  /** ASID width. */
  readonly asidBits: number;
  /** VMID width. */
  readonly vmidBits: number;
  /** StreamID width. */
  readonly sidBits: number;
  /** SubstreamID width. */
  readonly ssidBits: number;
  /** Input address size of stage-2 (and output of stage-1) tables. */
  readonly ias: number;
  /** Output address size. */
  readonly oas: number;
  /** Page sizes the SMMU's granules allow. */
  readonly pgsizeBitmap: bigint;
  /** IORT CANWBS for every master. */
  readonly canwbs: boolean;
  private readonly vsmmuConverterKind: 'engine' | 'typescript';
  private engineVsmmu: Vsmmu | null | undefined;

  /**
   * The queue engine's vSMMU converter shared by this SMMU's vIOMMUs (each call sets its
   * VMID and streams), or undefined when guest commands are converted in TypeScript.
   */
  vsmmuConverter(): Vsmmu | undefined {
    if (this.engineVsmmu === undefined) {
      const engine = this.vsmmuConverterKind === 'engine' ? queueEngineFor(this.memory.store) : undefined;
      this.engineVsmmu = engine?.createVsmmu({ vmid: 0, streams: [] }) ?? null;
    }
    return this.engineVsmmu ?? undefined;
  }
  /** The main command queue. */
  cmdq!: CommandQueue;
  /** Messages the driver printed (`dev_err`, `dev_warn`, `dev_info`), oldest first. */
  readonly messages: string[] = [];
  /**
   * Receiver of PRI page requests. Linux 6.17 has none (it logs and denies every request);
   * a host may install one to model an IOPF-capable kernel.
   */
  pageRequestSink: ((master: ArmSmmuMaster, req: PriPageRequest) => void) | undefined;

  /** The implementation extension (`smmu->impl_ops`), e.g. the Tegra241 CMDQV. */
  impl: SmmuImpl | undefined;

  private evtq!: ProducerQueue;
  private priq: ProducerQueue | undefined;
  private strtabBase = 0n;
  private strtabCfg = 0;
  private readonly l2Tables = new Map<number, bigint>();
  private numL1Ents = 0;
  private readonly streams = new Map<number, ArmSmmuMaster>();
  private readonly firmware = new Map<string, FirmwareStream>();
  private readonly asids = new Set<number>();
  private readonly vmids = new Set<number>();

  constructor(
    /** Machine memory. */
    readonly memory: PhysicalMemory,
    /** Register frame base. */
    readonly base: bigint,
    opts: ArmSmmuV3ProbeOptions,
  ) {
    this.name = opts.name ?? `smmu@${base.toString(16)}`;
    this.canwbs = opts.canwbs ?? false;
    this.vsmmuConverterKind = opts.vsmmuConverter ?? 'engine';
    for (const s of opts.streams ?? []) this.firmware.set(s.name, s);
    const idr = [0, 1, 2, 3, 4, 5].map((i) => this.readReg(SMMU_REG.IDR0 + 4 * i));
    this.idr = idr;
    this.iidr = this.readReg(SMMU_REG.IIDR);
    this.aidr = this.readReg(SMMU_REG.AIDR);
    const i0 = [BigInt(idr[0]!)];
    const i1 = [BigInt(idr[1]!)];
    const i3 = [BigInt(idr[3]!)];
    const i5 = [BigInt(idr[5]!)];
    const f0 = (n: Parameters<typeof SMMU_IDR0.num>[1]) => SMMU_IDR0.num(i0, n);
    // 2-level stream tables only help past one bus of StreamIDs.
    const sidBits = SMMU_IDR1.num(i1, 'SIDSIZE');
    const ttf = f0('TTF');
    if ((ttf & 2) === 0) throw new ArmSmmuProbeError(ENXIO, 'AArch64 table format not supported');
    if (f0('TTENDIAN') === 3) throw new ArmSmmuProbeError(ENXIO, 'unknown/unsupported TT endianness (big-endian only)');
    const stall = f0('STALL_MODEL');
    const transS1 = f0('S1P') === 1;
    const transS2 = f0('S2P') === 1;
    if (!transS1 && !transS2) throw new ArmSmmuProbeError(ENXIO, 'no translation support!');
    const httu = f0('HTTU');
    // MMU-700 (errata 2268618, 2812531) and MMU-600 r0/r1 (erratum 1209401) cannot nest.
    const product = (this.iidr >>> 20) & 0xfff;
    const variant = (this.iidr >>> 16) & 0xf;
    const implementer = this.iidr & 0xfff;
    const mmu700 = implementer === 0x43b && product === 0x487;
    const mmu600Early = implementer === 0x43b && product === 0x483 && variant < 2;
    const coherency = f0('COHACC') === 1;
    const msi = f0('MSI') === 1;
    this.features = {
      twoLvlStrtab: f0('ST_LEVEL') === 1 && sidBits > STRTAB_SPLIT,
      twoLvlCdtab: f0('CD2L') === 1,
      pri: f0('PRI') === 1,
      ats: f0('ATS') === 1,
      sev: f0('SEV') === 1,
      msi,
      hyp: f0('HYP') === 1,
      e2h: false,
      stalls: stall === 0 || stall === 2,
      stallForce: stall === 2,
      transS1,
      transS2,
      nesting: transS1 && transS2 && !mmu700 && !mmu600Early,
      rangeInv: SMMU_IDR3.num(i3, 'RIL') === 1,
      s2fwb: SMMU_IDR3.num(i3, 'FWB') === 1,
      coherency,
      ha: httu >= 1,
      hd: httu === 2,
      attrTypesOvr: SMMU_IDR1.num(i1, 'ATTR_TYPES_OVR') === 1,
    };
    this.msiPoll = msi && coherency;
    this.forceSync = mmu700;
    this.asidBits = f0('ASID16') === 1 ? 16 : 8;
    this.vmidBits = f0('VMID16') === 1 ? 16 : 8;
    if (SMMU_IDR1.num(i1, 'TABLES_PRESET') === 1 || SMMU_IDR1.num(i1, 'QUEUES_PRESET') === 1 || SMMU_IDR1.num(i1, 'REL') === 1) {
      throw new ArmSmmuProbeError(ENXIO, 'embedded implementation not supported');
    }
    const cmdqShift = Math.min(CMDQ_MAX_SZ_SHIFT, SMMU_IDR1.num(i1, 'CMDQS'));
    // One batch plus its SYNC must fit.
    if (cmdqShift <= 6) throw new ArmSmmuProbeError(ENXIO, 'command queue size <= 64 entries not supported');
    const evtqShift = Math.min(EVTQ_MAX_SZ_SHIFT, SMMU_IDR1.num(i1, 'EVTQS'));
    const priqShift = Math.min(PRIQ_MAX_SZ_SHIFT, SMMU_IDR1.num(i1, 'PRIQS'));
    this.sidBits = sidBits;
    this.ssidBits = SMMU_IDR1.num(i1, 'SSIDSIZE');
    let pg = 0n;
    if (SMMU_IDR5.num(i5, 'GRAN4K')) pg |= (1n << 12n) | (1n << 21n) | (1n << 30n);
    if (SMMU_IDR5.num(i5, 'GRAN16K')) pg |= (1n << 14n) | (1n << 25n);
    if (SMMU_IDR5.num(i5, 'GRAN64K')) pg |= (1n << 16n) | (1n << 29n);
    this.pgsizeBitmap = pg;
    const oasEnc = SMMU_IDR5.num(i5, 'OAS');
    this.oas = OAS_BITS[oasEnc] ?? 48;
    // AArch32 table support implies a 40-bit IPA; the IPA always covers the whole PA space.
    this.ias = Math.max(ttf === 3 ? 40 : 0, this.oas);
    this.initStructures(cmdqShift, evtqShift, priqShift);
    if (opts.impl !== undefined) this.impl = opts.impl(this);
    if (opts.priIopf === true) installPriIopf(this);
    this.reset();
  }

  // ------------------------------------------------------------------ MMIO

  /** 32-bit read of register `offset`. */
  readReg(offset: number): number {
    return this.memory.read32(this.base + BigInt(offset));
  }
  /** 32-bit write of register `offset`. */
  writeReg(offset: number, value: number): void {
    this.memory.write32(this.base + BigInt(offset), value >>> 0);
  }
  private writeReg64(offset: number, value: bigint): void {
    this.memory.write64(this.base + BigInt(offset), value);
  }
  /** `arm_smmu_write_reg_sync`: write, then poll the ACK register for the value. */
  private writeRegSync(value: number, reg: number, ack: number): Status {
    this.writeReg(reg, value);
    for (let i = 0; i < 4; i++) if (this.readReg(ack) === value >>> 0) return 0;
    this.log(`timeout waiting for 0x${ack.toString(16)} to become 0x${value.toString(16)}`);
    return ENXIO;
  }
  /** `dev_err` & co. */
  log(message: string): void {
    this.messages.push(message);
  }

  // ------------------------------------------------------------------ init

  private allocQueue(shift: number, entBytes: number): bigint {
    const bytes = BigInt(entBytes) << BigInt(shift);
    const pages = Number((bytes + 4095n) / 4096n);
    // Queues are naturally aligned to their size (Q_BASE has no low address bits).
    return this.memory.allocPages(pages, { align: bytes > 4096n ? bytes : 4096n })[0]!;
  }

  /** An EVTQ/PRIQ: ring in RAM, PROD/CONS used through register page 1 as Linux does. */
  private producerQueue(shift: number, entBytes: number, prodReg: number, consReg: number): ProducerQueue {
    const base = this.allocQueue(shift, entBytes);
    return { base, log2Size: shift, entBytes, prodReg: SMMU_PAGE1 + prodReg, consReg: SMMU_PAGE1 + consReg, prod: 0, cons: 0 };
  }

  /** Programs `*Q_BASE` (RWA, ADDR, LOG2SIZE) and the driver's PROD/CONS of a producer queue. */
  private writeQueueRegs(q: ProducerQueue, baseReg: number): void {
    this.writeReg64(baseReg, SMMU_Q_BASE.encode({ RA: 1, ADDR: q.base >> 5n, LOG2SIZE: q.log2Size })[0]!);
    this.writeReg(q.prodReg, q.prod);
    this.writeReg(q.consReg, q.cons);
  }

  /** `arm_smmu_init_structures`: queues and the stream table. */
  private initStructures(cmdqShift: number, evtqShift: number, priqShift: number): void {
    this.cmdq = new CommandQueue(this, this.allocQueue(cmdqShift, 16), cmdqShift, SMMU_REG.CMDQ_PROD, SMMU_REG.CMDQ_CONS);
    this.evtq = this.producerQueue(evtqShift, 32, SMMU_REG.EVTQ_PROD, SMMU_REG.EVTQ_CONS);
    if (this.features.pri) this.priq = this.producerQueue(priqShift, 16, SMMU_REG.PRIQ_PROD, SMMU_REG.PRIQ_CONS);
    if (this.features.twoLvlStrtab) {
      const lastL1 = ((1 << this.sidBits) - 1) >>> STRTAB_SPLIT;
      this.numL1Ents = Math.min(lastL1 + 1, STRTAB_MAX_L1_ENTRIES);
      if (this.numL1Ents <= lastL1) this.log(`2-level strtab only covers ${Math.log2(this.numL1Ents) + STRTAB_SPLIT}/${this.sidBits} bits of SID`);
      const bytes = BigInt(this.numL1Ents * 8);
      this.strtabBase = this.memory.allocPages(Number((bytes + 4095n) / 4096n), { align: bytes > 4096n ? bytes : 4096n })[0]!;
      this.strtabCfg = Number(SMMU_STRTAB_BASE_CFG.encode({ FMT: 1, LOG2SIZE: Math.log2(this.numL1Ents) + STRTAB_SPLIT, SPLIT: STRTAB_SPLIT })[0]!);
    } else {
      const ents = 1 << this.sidBits;
      const bytes = BigInt(ents * 64);
      this.strtabBase = this.memory.allocPages(Number((bytes + 4095n) / 4096n), { align: bytes > 4096n ? bytes : 4096n })[0]!;
      this.initInitialStes(this.strtabBase, ents);
      this.strtabCfg = Number(SMMU_STRTAB_BASE_CFG.encode({ FMT: 0, LOG2SIZE: this.sidBits })[0]!);
    }
  }

  /** `arm_smmu_init_initial_stes`: every StreamID aborts (disable_bypass) until a master is attached. */
  private initInitialStes(base: bigint, n: number): void {
    const bytes = SMMU_STE.toBytes(makeAbortSte());
    for (let i = 0; i < n; i++) this.memory.write(base + BigInt(i * 64), bytes);
  }

  /** `arm_smmu_device_reset` (reference §1.4). */
  private reset(): void {
    const R = SMMU_REG;
    if (SMMU_CR0.num([BigInt(this.readReg(R.CR0))], 'SMMUEN') === 1) {
      this.log('SMMU currently enabled! Resetting...');
      this.writeReg(R.GBPA, Number(SMMU_GBPA.encode({ ABORT: 1, UPDATE: 1 })[0]!));
    }
    this.writeRegSync(0, R.CR0, R.CR0ACK);
    this.writeReg(R.CR1, CR1_VALUE);
    this.writeReg(R.CR2, CR2_VALUE);
    this.writeReg64(R.STRTAB_BASE, SMMU_STRTAB_BASE.encode({ RA: 1, ADDR: this.strtabBase >> 6n })[0]!);
    this.writeReg(R.STRTAB_BASE_CFG, this.strtabCfg);
    this.writeReg64(R.CMDQ_BASE, this.cmdq.qBase);
    this.writeReg(R.CMDQ_PROD, this.cmdq.prod);
    this.writeReg(R.CMDQ_CONS, this.cmdq.cons);
    const en = { CMDQEN: 1, EVTQEN: 0, PRIQEN: 0, ATSCHK: 0, SMMUEN: 0 };
    const cr0 = () => Number(SMMU_CR0.encode(en)[0]!);
    this.writeRegSync(cr0(), R.CR0, R.CR0ACK);
    this.issueCmdWithSync({ opcode: 'CFGI_ALL' });
    if (this.features.hyp) this.issueCmdWithSync({ opcode: 'TLBI_EL2_ALL' });
    this.issueCmdWithSync({ opcode: 'TLBI_NSNH_ALL' });
    this.writeQueueRegs(this.evtq, R.EVTQ_BASE);
    en.EVTQEN = 1;
    this.writeRegSync(cr0(), R.CR0, R.CR0ACK);
    if (this.priq !== undefined) {
      this.writeQueueRegs(this.priq, R.PRIQ_BASE);
      en.PRIQEN = 1;
      this.writeRegSync(cr0(), R.CR0, R.CR0ACK);
    }
    if (this.features.ats) {
      en.ATSCHK = 1;
      this.writeRegSync(cr0(), R.CR0, R.CR0ACK);
    }
    this.setupIrqs();
    en.SMMUEN = 1;
    this.writeRegSync(cr0(), R.CR0, R.CR0ACK);
    if (this.impl !== undefined) {
      const st = this.impl.deviceReset();
      if (st !== 0) throw new ArmSmmuProbeError(st, `implementation reset failed (${st})`);
    }
  }

  /** `arm_smmu_setup_irqs`: wired interrupts (no MSI domain), so the MSI doorbells are cleared. */
  private setupIrqs(): void {
    const R = SMMU_REG;
    this.writeRegSync(0, R.IRQ_CTRL, R.IRQ_CTRLACK);
    this.writeReg64(R.GERROR_IRQ_CFG0, 0n);
    this.writeReg64(R.EVTQ_IRQ_CFG0, 0n);
    if (this.features.pri) this.writeReg64(R.PRIQ_IRQ_CFG0, 0n);
    const irqen = Number(SMMU_IRQ_CTRL.encode({ EVTQ_IRQEN: 1, GERROR_IRQEN: 1, PRIQ_IRQEN: this.features.pri })[0]!);
    this.writeRegSync(irqen, R.IRQ_CTRL, R.IRQ_CTRLACK);
  }

  // ------------------------------------------------------------------ commands

  /** `arm_smmu_get_cmdq`: an implementation's secondary queue (Tegra241 VINTF0) or the main CMDQ. */
  getCmdq(ent: CmdqEnt): CommandQueue {
    return this.impl?.getSecondaryCmdq(ent) ?? this.cmdq;
  }
  /** `arm_smmu_cmdq_issue_cmd`: one command, no SYNC. */
  issueCmd(ent: CmdqEnt): Status {
    return this.getCmdq(ent).issueCmdlist([buildCmd(ent)], false);
  }
  /** `arm_smmu_cmdq_issue_cmd_with_sync` */
  issueCmdWithSync(ent: CmdqEnt): Status {
    return this.getCmdq(ent).issueCmdlist([buildCmd(ent)], true);
  }
  /** `arm_smmu_cmdq_batch_init` */
  batch(): CmdqBatch {
    return new CmdqBatch((ent) => this.getCmdq(ent), this.forceSync);
  }

  // ------------------------------------------------------------------ IDs

  private allocId(set: Set<number>, bits: number): number | undefined {
    for (let id = 1; id < 1 << bits; id++) {
      if (!set.has(id)) {
        set.add(id);
        return id;
      }
    }
    return undefined;
  }
  /** ASID allocation (1 .. 2^asid_bits − 1, lowest free). */
  allocAsid(): number | undefined {
    return this.allocId(this.asids, this.asidBits);
  }
  /** Frees an ASID. */
  freeAsid(asid: number): void {
    this.asids.delete(asid);
  }
  /** VMID allocation (1 .. 2^vmid_bits − 1; VMID 0 stays for S1/bypass STEs). */
  allocVmid(): number | undefined {
    return this.allocId(this.vmids, this.vmidBits);
  }
  /** Frees a VMID. */
  freeVmid(vmid: number): void {
    this.vmids.delete(vmid);
  }
  /** `ilog2(iommu.max_pasids)`: Linux sets `max_pasids = 1 << ssid_bits` at probe. */
  get maxPasidLog2(): number {
    return this.ssidBits;
  }
  /** The ASIDs allocated now, ascending: what a leak check after closing every fd expects empty. */
  get asidsInUse(): readonly number[] {
    return [...this.asids].sort((a, b) => a - b);
  }
  /** The VMIDs allocated now, ascending. */
  get vmidsInUse(): readonly number[] {
    return [...this.vmids].sort((a, b) => a - b);
  }

  // ------------------------------------------------------------------ stream table

  /** The firmware description of `dev` (IORT): its StreamIDs, or undefined when unknown. */
  firmwareStream(dev: Device): FirmwareStream | undefined {
    return this.firmware.get(dev.name);
  }

  /** Adds firmware descriptions after probe (hot-plugged devices). */
  addFirmwareStreams(streams: readonly FirmwareStream[]): void {
    for (const s of streams) this.firmware.set(s.name, s);
  }

  /** `arm_smmu_init_sid_strtab`: makes sure the STE of `sid` exists (allocating its L2 table). */
  initSidStrtab(sid: number): Status {
    if (sid < 0 || sid >= 2 ** this.sidBits) return ERANGE;
    if (!this.features.twoLvlStrtab) return 0;
    const l1 = sid >>> STRTAB_SPLIT;
    if (l1 >= this.numL1Ents) return ERANGE;
    if (this.l2Tables.has(l1)) return 0;
    let l2: bigint;
    try {
      l2 = this.memory.allocPages(((1 << STRTAB_SPLIT) * 64) / 4096)[0]!;
    } catch {
      this.log(`failed to allocate l2 stream table for SID ${sid}`);
      return ENOMEM;
    }
    this.initInitialStes(l2, 1 << STRTAB_SPLIT);
    this.memory.write64(this.strtabBase + BigInt(l1 * 8), SMMU_L1STD.encode({ SPAN: STRTAB_SPLIT + 1, L2PTR: l2 >> 6n })[0]!);
    this.l2Tables.set(l1, l2);
    return 0;
  }

  /** Physical address of the STE of `sid` (`arm_smmu_get_step_for_sid`). */
  steAddress(sid: number): bigint {
    if (!this.features.twoLvlStrtab) return this.strtabBase + BigInt(sid) * 64n;
    const l2 = this.l2Tables.get(sid >>> STRTAB_SPLIT);
    if (l2 === undefined) throw new RangeError(`SID ${sid} has no level-2 stream table; insert its master first`);
    return l2 + BigInt(sid & ((1 << STRTAB_SPLIT) - 1)) * 64n;
  }

  /** The STE words of `sid` as they are in memory. */
  readSte(sid: number): bigint[] {
    return SMMU_STE.fromBytes(this.memory.read(this.steAddress(sid), 64));
  }

  /** `arm_smmu_write_ste`: hitless update of one STE with CFGI_STE + SYNC steps, then a prefetch. */
  writeSte(sid: number, target: readonly bigint[]): void {
    const at = this.steAddress(sid);
    const writer: EntryWriter = {
      getUsed: getSteUsed,
      writeQword: (i, v) => this.memory.write64(at + BigInt(i * 8), v),
      sync: () => {
        this.issueCmdWithSync({ opcode: 'CFGI_STE', sid, leaf: true });
      },
    };
    writeEntry(writer, this.readSte(sid), target);
    // It's likely the new STE is used soon.
    this.issueCmd({ opcode: 'PREFETCH_CFG', sid });
  }

  /** Registers a master's StreamIDs (`arm_smmu_insert_master`). */
  insertMaster(master: ArmSmmuMaster): Status {
    for (const sid of master.streams) {
      if (this.streams.has(sid)) {
        this.log(`SID ${sid} is already in use`);
        for (const s of master.streams) if (this.streams.get(s) === master) this.streams.delete(s);
        return EINVAL;
      }
      const st = this.initSidStrtab(sid);
      if (st !== 0) {
        for (const s of master.streams) if (this.streams.get(s) === master) this.streams.delete(s);
        return st;
      }
      this.streams.set(sid, master);
    }
    return 0;
  }
  /** `arm_smmu_remove_master` */
  removeMaster(master: ArmSmmuMaster): void {
    for (const sid of master.streams) if (this.streams.get(sid) === master) this.streams.delete(sid);
  }
  /** `arm_smmu_find_master` */
  findMaster(sid: number): ArmSmmuMaster | undefined {
    return this.streams.get(sid);
  }

  // ------------------------------------------------------------------ interrupts

  /**
   * Runs the interrupt handlers whose condition is pending, as the CPU would on the SMMU's
   * wired lines: GERROR (active = GERROR ^ GERRORN), EVTQ and PRIQ (PROD ≠ CONS). The host
   * calls this after device activity; the CMDQ calls it while waiting for a CMD_SYNC.
   */
  serviceInterrupts(): void {
    const gerror = this.readReg(SMMU_REG.GERROR);
    const gerrorn = this.readReg(SMMU_REG.GERRORN);
    if (((gerror ^ gerrorn) & 0x1fd) !== 0) this.gerrorHandler();
    this.impl?.serviceInterrupts();
    this.evtqThread();
    if (this.priq !== undefined) this.priqThread();
  }

  /** `arm_smmu_gerror_handler` */
  private gerrorHandler(): void {
    const gerror = this.readReg(SMMU_REG.GERROR);
    const gerrorn = this.readReg(SMMU_REG.GERRORN);
    const active = (gerror ^ gerrorn) & 0x1fd;
    if (active === 0) return;
    this.log(`unexpected global error reported (0x${active.toString(16)}), this could be serious`);
    const bit = (n: (typeof SMMU_GERROR.fields)[number][0]) => (active >> SMMU_GERROR.fields.find((f) => f[0] === n)![3]) & 1;
    if (bit('SFM_ERR')) {
      this.log('device has entered Service Failure Mode!');
      this.writeRegSync(0, SMMU_REG.CR0, SMMU_REG.CR0ACK);
    }
    if (bit('MSI_GERROR_ABT_ERR')) this.log('GERROR MSI write aborted');
    if (bit('MSI_PRIQ_ABT_ERR')) this.log('PRIQ MSI write aborted');
    if (bit('MSI_EVTQ_ABT_ERR')) this.log('EVTQ MSI write aborted');
    if (bit('MSI_CMDQ_ABT_ERR')) this.log('CMDQ MSI write aborted');
    if (bit('PRIQ_ABT_ERR')) this.log('PRIQ write aborted -- events may have been lost');
    if (bit('EVTQ_ABT_ERR')) this.log('EVTQ write aborted -- events may have been lost');
    if (bit('CMDQ_ERR')) this.cmdqSkipErr(this.cmdq);
    this.writeReg(SMMU_REG.GERRORN, gerror);
  }

  /**
   * `__arm_smmu_cmdq_skip_err`: an illegal command is overwritten in memory by a CMD_SYNC so
   * the SMMU resumes at CONS once GERRORN is acknowledged; a fetch abort is simply retried,
   * an ATC invalidation timeout leaves the SYNC in place to be retried.
   */
  cmdqSkipErr(q: CommandQueue): void {
    const cons = this.readReg(q.consReg);
    const err = SMMU_Q_PTR.num([BigInt(cons)], 'ERR');
    const names = ['CERROR_NONE', 'CERROR_ILL', 'CERROR_ABT', 'CERROR_ATC_INV_SYNC'];
    this.log(`CMDQ error (cons 0x${cons.toString(16)}): ${names[err] ?? 'Unknown'}`);
    if (err === CMDQ_ERR.ABT) {
      this.log('retrying command fetch');
      return;
    }
    if (err === CMDQ_ERR.NONE || err === CMDQ_ERR.ATC_INV_SYNC) return;
    const at = q.slot(cons & ((2 << q.log2Size) - 1));
    const bad = [this.memory.read64(at), this.memory.read64(at + 8n)];
    this.log(`skipping command in error state: 0x${bad[0]!.toString(16).padStart(16, '0')} 0x${bad[1]!.toString(16).padStart(16, '0')}`);
    // Convert the erroneous command into a CMD_SYNC (CS=SEV, or NONE on busy-polled queues).
    const sync = [...buildCmd({ opcode: 'CMD_SYNC' })];
    if (q.busyPolling) SMMU_CMD_SYNC.set(sync, 'CS', 0);
    this.memory.write64(at, sync[0]!);
    this.memory.write64(at + 8n, sync[1]!);
  }

  private drain(q: ProducerQueue, handle: (words: bigint[]) => void): boolean {
    const ptr = (v: number) => v & ((2 << q.log2Size) - 1);
    let any = false;
    for (;;) {
      const prodReg = this.readReg(q.prodReg);
      const overflow = SMMU_Q_PTR.num([BigInt(prodReg)], 'OVFLG') !== SMMU_Q_PTR.num([BigInt(q.prod)], 'OVFLG');
      q.prod = prodReg;
      if (overflow) this.log(`${q.entBytes === 32 ? 'EVTQ' : 'PRIQ'} overflow detected -- events lost`);
      if (queueEmpty(ptr(q.prod), ptr(q.cons), q.log2Size)) break;
      while (!queueEmpty(ptr(q.prod), ptr(q.cons), q.log2Size)) {
        const at = q.base + BigInt(queueIndex(q.cons, q.log2Size) * q.entBytes);
        const words = Array.from({ length: q.entBytes / 8 }, (_, i) => this.memory.read64(at + BigInt(i * 8)));
        q.cons = queueIncrement(ptr(q.cons), q.log2Size) | (q.cons & 0x8000_0000);
        this.writeReg(q.consReg, q.cons);
        any = true;
        handle(words);
      }
    }
    // Acknowledge any overflow: we believe we are up to speed (`queue_sync_cons_ovf`).
    q.cons = (q.cons & 0x7fff_ffff) | (q.prod & 0x8000_0000);
    this.writeReg(q.consReg, q.cons);
    return any;
  }

  /** `arm_smmu_evtq_thread` */
  private evtqThread(): void {
    this.drain(this.evtq, (words) => {
      const st = this.handleEvent(words);
      if (st !== 0) this.log(`event 0x${SMMU_EVENT.num(words, 'ID').toString(16).padStart(2, '0')} received: ${words.map((w) => `0x${w.toString(16).padStart(16, '0')}`).join(' ')}`);
    });
  }

  /** `arm_smmu_handle_event`: 0 when a consumer took the event. */
  private handleEvent(words: readonly bigint[]): Status {
    const id = SMMU_EVENT.num(words, 'ID');
    // Only these events name a fault a user (or a nested guest) can act on.
    if (!FORWARDABLE_EVENTS.has(id)) return EOPNOTSUPP;
    const master = this.findMaster(SMMU_EVENT.num(words, 'SID'));
    if (master === undefined) return EINVAL;
    if (SMMU_EVENT.num(words, 'STALL') === 1) return EOPNOTSUPP;
    if (master.vmaster !== undefined && SMMU_EVENT.num(words, 'S2') === 0) return master.vmaster.report(words);
    // Stage-2 faults stay with the host ("pinned"), never forwarded.
    return EOPNOTSUPP;
  }

  /** `arm_smmu_priq_thread` */
  private priqThread(): void {
    this.drain(this.priq!, (w) => this.handlePpr(w));
  }

  /** `arm_smmu_handle_ppr`: into the IOPF path, else a failure response (Linux denies). */
  private handlePpr(w: readonly bigint[]): void {
    const f = SMMU_PRIQ.decode(w);
    const sid = Number(f.SID);
    const req: PriPageRequest = {
      sid,
      ssid: f.SSID_V === 1n ? Number(f.SSID) : undefined,
      grpid: Number(f.PRG_IDX),
      last: f.PRG_LAST === 1n,
      read: f.PERM_READ === 1n,
      write: f.PERM_WRITE === 1n,
      exec: f.PERM_EXEC === 1n,
      priv: f.PERM_PRIV === 1n,
      addr: f.ADDR << 12n,
    };
    const master = this.findMaster(sid);
    if (master !== undefined && this.pageRequestSink !== undefined) {
      this.pageRequestSink(master, req);
      return;
    }
    this.log(`unexpected PRI request received: sid 0x${sid.toString(16)}.0x${(req.ssid ?? 0).toString(16)}: [${req.grpid}${req.last ? 'L' : ''}] ${req.priv ? '' : 'un'}privileged ${req.read ? 'R' : ''}${req.write ? 'W' : ''}${req.exec ? 'X' : ''} 0x${req.addr.toString(16).padStart(16, '0')}`);
    if (req.last) {
      // An unhandled last request is denied so the device does not wait forever.
      this.issueCmd({ opcode: 'PRI_RESP', sid, ssid: req.ssid ?? 0, substreamValid: req.ssid !== undefined, grpid: req.grpid, resp: PRI_RESP_DENY });
    }
  }
}

/**
 * Probes the SMMUv3 at `opts.base`: reads the ID registers, allocates the queues and the
 * stream table in machine RAM and runs Linux's reset sequence. The result is the
 * `IommuDevice` to register with the core. Throws {@link ArmSmmuProbeError} when the hardware
 * cannot be driven.
 */
export function armSmmuV3Probe(opts: ArmSmmuV3ProbeOptions): ArmSmmuV3 {
  return new ArmSmmuV3(opts.memory, opts.base, opts);
}
