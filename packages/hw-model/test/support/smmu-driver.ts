// A minimal driver that programs the SMMU only through registers and memory, in the order
// Linux's arm_smmu_device_reset does (reference §1.4).
import {
  ARM_PTE,
  CMDQ_OP,
  SMMU_CD,
  SMMU_CMD,
  SMMU_CMD_SYNC,
  SMMU_CMD_TLBI,
  SMMU_EVENT,
  SMMU_L1STD,
  SMMU_REG,
  SMMU_STE,
  createMachine,
  type Machine,
  type PhysicalMemory,
  type SmmuV3,
  type SmmuV3Options,
} from '../../src/index.js';
import { expectQueueConsumer, machineQueueConsumers } from './consumers.js';

export const SMMU_BASE = 0x900_0000n;

export interface DriverOptions {
  readonly smmu?: SmmuV3Options;
  readonly twoLevel?: boolean;
  readonly cmdqLog2?: number;
  readonly evtqLog2?: number;
  readonly strict?: boolean;
  readonly devices?: number;
}

export class SmmuDriver {
  readonly machine: Machine;
  readonly mem: PhysicalMemory;
  readonly smmu: SmmuV3;
  strtab = 0n;
  cmdq = 0n;
  evtq = 0n;
  priq = 0n;
  readonly cmdqLog2: number;
  readonly evtqLog2: number;
  evtCons = 0;
  private l2 = new Map<number, bigint>();
  readonly twoLevel: boolean;

  constructor(o: DriverOptions = {}) {
    this.machine = createMachine({
      ramBytes: 0x1000_0000n,
      strict: o.strict ?? false,
      queueConsumers: machineQueueConsumers(),
      iommus: [{ kind: 'smmuv3', name: 'smmu0', base: SMMU_BASE, options: o.smmu ?? {} }],
      devices: Array.from({ length: o.devices ?? 2 }, (_, i) => ({
        bdf: { bus: 0, dev: i + 1, fn: 0 },
        iommu: 'smmu0',
        capabilities: { ats: true, pri: true, pasid: { maxPasidLog2: 20, exec: true, priv: true } },
      })),
    });
    expectQueueConsumer(this.machine);
    this.mem = this.machine.memory;
    this.smmu = this.machine.iommus.get('smmu0') as SmmuV3;
    this.twoLevel = o.twoLevel ?? false;
    this.cmdqLog2 = o.cmdqLog2 ?? 8;
    this.evtqLog2 = o.evtqLog2 ?? 7;
  }

  reg32(off: number): number {
    return this.mem.read32(SMMU_BASE + BigInt(off));
  }
  w32(off: number, v: number): void {
    this.mem.write32(SMMU_BASE + BigInt(off), v);
  }
  w64(off: number, v: bigint): void {
    this.mem.write64(SMMU_BASE + BigInt(off), v);
  }
  setCr0(v: number): void {
    this.w32(SMMU_REG.CR0, v);
    if (this.reg32(SMMU_REG.CR0ACK) !== v) throw new Error('CR0ACK mismatch');
  }

  /** arm_smmu_device_reset. */
  bringUp(): void {
    const R = SMMU_REG;
    this.setCr0(0);
    this.w32(R.CR1, 0xd75); // table+queue ISH, WB
    this.w32(R.CR2, 0x6); // PTM | RECINVSID
    if (this.twoLevel) {
      this.strtab = this.mem.allocPages(1)[0]!; // 256 L1 descriptors × SPLIT 8 = 16-bit SIDs
      this.w64(R.STRTAB_BASE, this.strtab | (1n << 62n));
      this.w32(R.STRTAB_BASE_CFG, (1 << 16) | (8 << 6) | 16);
    } else {
      this.strtab = this.mem.allocPages(16)[0]!; // 1024 STEs
      for (let sid = 0; sid < 1024; sid++) this.writeSte(sid, SMMU_STE.encode({ V: 1, CONFIG: 0 }));
      this.w64(R.STRTAB_BASE, this.strtab | (1n << 62n));
      this.w32(R.STRTAB_BASE_CFG, 10);
    }
    this.cmdq = this.mem.allocPages(Math.max(1, (16 << this.cmdqLog2) / 4096))[0]!;
    this.w64(R.CMDQ_BASE, this.cmdq | (1n << 62n) | BigInt(this.cmdqLog2));
    this.w32(R.CMDQ_PROD, 0);
    this.w32(R.CMDQ_CONS, 0);
    this.setCr0(8);
    this.issue([[BigInt(CMDQ_OP.CFGI_STE_RANGE), 31n]], true);
    this.issue([[BigInt(CMDQ_OP.TLBI_NSNH_ALL), 0n]], true);
    this.evtq = this.mem.allocPages(Math.max(1, (32 << this.evtqLog2) / 4096))[0]!;
    this.w64(R.EVTQ_BASE, this.evtq | (1n << 62n) | BigInt(this.evtqLog2));
    this.w32(0x10000 + R.EVTQ_PROD, 0);
    this.w32(0x10000 + R.EVTQ_CONS, 0);
    this.setCr0(8 | 4);
    // PRIQ only when IDR0.PRI, as Linux does.
    const pri = (this.reg32(R.IDR0) & (1 << 16)) !== 0 ? 2 : 0;
    if (pri) {
      this.priq = this.mem.allocPages(1)[0]!;
      this.w64(R.PRIQ_BASE, this.priq | (1n << 62n) | 8n);
      this.w32(0x10000 + R.PRIQ_PROD, 0);
      this.w32(0x10000 + R.PRIQ_CONS, 0);
      this.setCr0(8 | 4 | pri);
    }
    this.setCr0(8 | 4 | pri | 0x10);
    this.w32(R.IRQ_CTRL, 0);
    this.w32(R.IRQ_CTRL, 5 | pri);
    this.setCr0(0x1d | pri);
  }

  steAddr(sid: number): bigint {
    if (!this.twoLevel) return this.strtab + BigInt(sid) * 64n;
    const l1 = sid >> 8;
    let l2 = this.l2.get(l1);
    if (l2 === undefined) {
      l2 = this.mem.allocPages(4)[0]!;
      for (let i = 0; i < 256; i++) this.mem.write(l2 + BigInt(i) * 64n, SMMU_STE.toBytes(SMMU_STE.encode({ V: 1 })));
      this.mem.write64(this.strtab + BigInt(l1) * 8n, SMMU_L1STD.encode({ SPAN: 9, L2PTR: l2 >> 6n })[0]!);
      this.l2.set(l1, l2);
    }
    return l2 + BigInt(sid & 0xff) * 64n;
  }
  writeSte(sid: number, words: bigint[]): void {
    this.mem.write(this.steAddr(sid), SMMU_STE.toBytes(words));
  }

  /** Writes commands at PROD, then PROD (optionally followed by a CMD_SYNC with CS=SEV). */
  issue(cmds: (readonly [bigint, bigint])[], sync = false): void {
    const all = sync ? [...cmds, [SMMU_CMD_SYNC.encode({ OPCODE: CMDQ_OP.CMD_SYNC, CS: 2 })[0]!, 0n] as const] : cmds;
    let prod = this.reg32(SMMU_REG.CMDQ_PROD);
    const mask = (1 << this.cmdqLog2) - 1;
    for (const [a, b] of all) {
      const at = this.cmdq + BigInt((prod & mask) * 16);
      this.mem.write64(at, a);
      this.mem.write64(at + 8n, b);
      prod = (prod + 1) & ((2 << this.cmdqLog2) - 1);
    }
    this.w32(SMMU_REG.CMDQ_PROD, prod);
  }
  cfgiSte(sid: number): void {
    this.issue([SMMU_CMD.encode({ OPCODE: CMDQ_OP.CFGI_STE, SID: sid, LEAF: 1 }) as [bigint, bigint]], true);
  }
  cfgiCd(sid: number, ssid: number): void {
    this.issue([SMMU_CMD.encode({ OPCODE: CMDQ_OP.CFGI_CD, SID: sid, SSID: ssid, LEAF: 1 }) as [bigint, bigint]], true);
  }
  tlbi(op: number, f: Partial<Record<'VMID' | 'ASID' | 'ADDR' | 'NUM' | 'SCALE' | 'TG' | 'TTL' | 'LEAF', bigint | number>>): void {
    this.issue([SMMU_CMD_TLBI.encode({ OPCODE: op, ...f }) as [bigint, bigint]], true);
  }

  /** Pops the event records written since the last call. */
  events(): bigint[][] {
    const out: bigint[][] = [];
    const prod = this.reg32(0x10000 + SMMU_REG.EVTQ_PROD) & ((2 << this.evtqLog2) - 1);
    const mask = (1 << this.evtqLog2) - 1;
    while (this.evtCons !== prod) {
      out.push(SMMU_EVENT.fromBytes(this.mem.read(this.evtq + BigInt((this.evtCons & mask) * 32), 32)));
      this.evtCons = (this.evtCons + 1) & ((2 << this.evtqLog2) - 1);
    }
    this.w32(0x10000 + SMMU_REG.EVTQ_CONS, this.evtCons);
    return out;
  }
}

/** Writes 4 KiB-granule tables. `toPa` maps a table address (IPA for nested S1) to its PA. */
export class PageTables {
  readonly root: bigint;
  constructor(
    private readonly mem: PhysicalMemory,
    readonly stage: 1 | 2,
    readonly startLevel: number,
    private readonly alloc: () => bigint,
    private readonly toPa: (a: bigint) => bigint = (a) => a,
    rootPages = 1,
  ) {
    this.root = alloc();
    for (let i = 1; i < rootPages; i++) alloc();
  }

  /** Maps one page or block; `perm` r/w (S2 S2AP) or w (S1: AP[2] clear) and more. */
  map(ia: bigint, oa: bigint, level = 3, o: { write?: boolean; read?: boolean; af?: boolean; el0?: boolean; ng?: boolean; xn?: boolean } = {}): void {
    let table = this.root;
    for (let l = this.startLevel; l < level; l++) {
      const shift = BigInt(12 + 9 * (3 - l));
      const idxBits = l === this.startLevel ? 13n : 9n;
      const at = this.toPa(table) + ((ia >> shift) & ((1n << idxBits) - 1n)) * 8n;
      let d = this.mem.read64(at);
      if ((d & 3n) !== 3n) {
        const next = this.alloc();
        d = ARM_PTE.encode({ VALID: 1, TABLE: 1, OA: next >> 12n })[0]!;
        this.mem.write64(at, d);
      }
      table = ARM_PTE.get([d], 'OA') << 12n;
    }
    const shift = BigInt(12 + 9 * (3 - level));
    const idxBits = level === this.startLevel ? 13n : 9n;
    const at = this.toPa(table) + ((ia >> shift) & ((1n << idxBits) - 1n)) * 8n;
    const write = o.write ?? true;
    const ap = this.stage === 2 ? ((o.read ?? true) ? 1 : 0) | (write ? 2 : 0) : (write ? 0 : 2) | ((o.el0 ?? true) ? 1 : 0);
    this.mem.write64(
      at,
      ARM_PTE.encode({ VALID: 1, TABLE: level === 3 ? 1 : 0, AP: ap, AF: (o.af ?? true) ? 1 : 0, NG: (o.ng ?? this.stage === 1) ? 1 : 0, XN: o.xn ?? false, OA: oa >> 12n })[0]!,
    );
  }
}

/** What Linux writes into a stage-1 CD (arm_smmu_make_s1_cd) for a 48-bit VA. */
export function s1Cd(ttb: bigint, asid: number, extra: Partial<Record<string, bigint | number | boolean>> = {}): bigint[] {
  return SMMU_CD.encode({ T0SZ: 16, TG0: 0, IR0: 1, OR0: 1, SH0: 3, EPD1: 1, V: 1, IPS: 5, AA64: 1, R: 1, A: 1, ASET: 1, ASID: asid, TTB0: ttb >> 4n, ...extra });
}

/** The S2 part of an STE (arm_smmu_make_s2_domain_ste) for a 48-bit IPA starting at level 0. */
export function s2Ste(ttb: bigint, vmid: number, config = 6): Partial<Record<string, bigint | number | boolean>> {
  return { V: 1, CONFIG: config, S2VMID: vmid, S2T0SZ: 16, S2SL0: 2, S2IR0: 1, S2OR0: 1, S2SH0: 3, S2TG: 0, S2PS: 5, S2AA64: 1, S2PTW: 1, S2R: 1, S2TTB: ttb >> 4n };
}

/**
 * Guest RAM for nested tests: `pages` host pages mapped by a stage-2 table at IPA `base`, and
 * an allocator of guest pages (IPAs) for guest tables and CDs.
 */
export class GuestRam {
  static readonly BASE = 0x8000_0000n;
  readonly s2: PageTables;
  readonly host: bigint[];
  private next = 0;

  constructor(
    private readonly mem: PhysicalMemory,
    readonly pages: number,
    writable: (i: number) => boolean = () => true,
  ) {
    this.s2 = new PageTables(mem, 2, 0, () => mem.allocPages(1)[0]!);
    this.host = mem.allocPages(pages);
    this.host.forEach((pa, i) => this.s2.map(this.ipa(i), pa, 3, { write: writable(i) }));
  }

  /** IPA of guest page `i`. */
  ipa(i: number): bigint {
    return GuestRam.BASE + BigInt(i) * 0x1000n;
  }
  /** Host PA of a guest IPA, or undefined outside guest RAM. */
  pa(ipa: bigint): bigint | undefined {
    const i = Number((ipa - GuestRam.BASE) >> 12n);
    return ipa >= GuestRam.BASE && i < this.pages ? this.host[i]! + (ipa & 0xfffn) : undefined;
  }
  /** Host PA of a guest IPA that must be guest RAM. */
  toPa = (ipa: bigint): bigint => {
    const pa = this.pa(ipa);
    if (pa === undefined) throw new Error(`IPA 0x${ipa.toString(16)} is outside guest RAM`);
    return pa;
  };
  /** Next free guest page (IPA), for guest tables. */
  alloc = (): bigint => this.ipa(this.next++);
  /** A guest stage-1 table tree whose tables live in guest RAM. */
  stage1(): PageTables {
    return new PageTables(this.mem, 1, 0, this.alloc, this.toPa);
  }
}

/** A driver with one S1 domain (ASID 1) on SID 8 mapping IOVA 0x10_0000 → a data page. */
export function s1Setup(opts: ConstructorParameters<typeof SmmuDriver>[0] = {}) {
  const d = new SmmuDriver(opts);
  d.bringUp();
  const alloc = () => d.mem.allocPages(1)[0]!;
  const pt = new PageTables(d.mem, 1, 0, alloc);
  const data = alloc();
  pt.map(0x10_0000n, data);
  const cdTable = alloc();
  d.mem.write(cdTable, SMMU_CD.toBytes(s1Cd(pt.root, 1)));
  d.writeSte(8, SMMU_STE.encode({ V: 1, CONFIG: 5, S1CONTEXTPTR: cdTable >> 6n, S1DSS: 0, S1CIR: 1, S1COR: 1, S1CSH: 3, EATS: 1 }));
  d.cfgiSte(8);
  const dev = d.machine.devices[0]!;
  // Device 00:01.0 has requester ID 8 = StreamID 8.
  return { d, pt, data, cdTable, dev, alloc };
}
