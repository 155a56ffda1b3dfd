// Test-side "driver": programs the VT-d model the way Linux's intel iommu.c / pasid.c /
// dmar.c do, using only MMIO registers and structures written to physical memory. Raw
// constants here are the kernel's (DMA_GCMD_*, QI_*, PASID entry bits), spelled out so that
// the tests do not read the model's own layouts back.
import { createMachine, type DmaRequest, type Machine, type PciCapabilities, type VtdIommu, type VtdIommuOptions } from '../src/index.js';
import { expectQueueConsumer, machineQueueConsumers } from './support/consumers.js';

export const VTD_BASE = 0xfed9_0000n;
const GCMD = 0x18;
const GSTS = 0x1c;
export const REG = {
  VER: 0x0, CAP: 0x8, ECAP: 0x10, GCMD, GSTS, RTADDR: 0x20, CCMD: 0x28, FSTS: 0x34, FECTL: 0x38, FEDATA: 0x3c, FEADDR: 0x40,
  FEUADDR: 0x44, IQH: 0x80, IQT: 0x88, IQA: 0x90, ICS: 0x9c, IECTL: 0xa0, IEDATA: 0xa4, IEADDR: 0xa8, IQER: 0xb0, PQH: 0xc0,
  PQT: 0xc8, PQA: 0xd0, PRS: 0xdc, PECTL: 0xe0, PEDATA: 0xe4, PEADDR: 0xe8, IVA: 0xf0, IOTLB: 0xf8, FRCD: 0x220,
} as const;
export const TE = 1 << 31;
export const SRTP = 1 << 30;
export const QIE = 1 << 26;

export interface DeviceSpec {
  readonly bus: number;
  readonly dev: number;
  readonly fn: number;
  readonly capabilities?: PciCapabilities;
}

/** A machine with one VT-d unit and a helper that plays the Linux driver. */
export class LinuxVtd {
  readonly machine: Machine;
  readonly iommu: VtdIommu;
  rootTable = 0n;
  iq = 0n;
  iqTail = 0;
  readonly iqEntries = 256;
  readonly wide: boolean;
  statusPage = 0n;
  prq = 0n;
  private readonly contextTables = new Map<string, bigint>();
  private readonly pasidDirs = new Map<number, bigint>();

  constructor(
    readonly options: VtdIommuOptions = {},
    devices: readonly DeviceSpec[] = [{ bus: 0, dev: 2, fn: 0 }],
    strict = false,
    /** 256-bit descriptors (IQA.DW); default: in scalable mode. */
    wideQueue = options.scalableMode ?? true,
  ) {
    this.machine = createMachine({
      ramBytes: 0x1000_0000n,
      strict,
      queueConsumers: machineQueueConsumers(),
      iommus: [{ kind: 'vtd', base: VTD_BASE, name: 'dmar0', options }],
      devices: devices.map((d) => ({ bdf: { bus: d.bus, dev: d.dev, fn: d.fn }, iommu: 'dmar0', ...(d.capabilities ? { capabilities: d.capabilities } : {}) })),
    });
    expectQueueConsumer(this.machine);
    this.iommu = this.machine.iommus.get('dmar0') as VtdIommu;
    this.wide = wideQueue;
  }

  get mem() {
    return this.machine.memory;
  }
  page(n = 1): bigint {
    return this.mem.allocPages(n)[0];
  }
  r32(off: number): number {
    return Number(this.mem.read32(VTD_BASE + BigInt(off)));
  }
  r64(off: number): bigint {
    return this.mem.read64(VTD_BASE + BigInt(off));
  }
  w32(off: number, v: number): void {
    this.mem.write32(VTD_BASE + BigInt(off), v >>> 0);
  }
  w64(off: number, v: bigint): void {
    this.mem.write64(VTD_BASE + BigInt(off), v);
  }

  /** iommu_set_root_entry + dmar_enable_qi + PRQ setup + iommu_enable_translation. */
  bringUp(opts: { te?: boolean } = {}): void {
    const sm = this.options.scalableMode ?? true;
    this.rootTable = this.page();
    this.w64(REG.RTADDR, this.rootTable | (sm ? 1n << 10n : 0n));
    this.w32(GCMD, SRTP);
    if ((this.r32(GSTS) & SRTP) === 0) throw new Error('RTPS not set');
    // dmar_enable_qi: IQT = 0, IQA = base | DW | QS, then QIE.
    this.iq = this.page(this.wide ? 2 : 1);
    this.statusPage = this.page();
    this.w32(REG.IQT, 0);
    this.w64(REG.IQA, this.iq | (this.wide ? (1n << 11n) | 1n : 0n));
    this.w32(GCMD, QIE);
    if ((this.r32(GSTS) & QIE) === 0) throw new Error('QIES not set');
    this.w32(REG.FEDATA, 0x41);
    this.w32(REG.FEADDR, 0xfee0_0000);
    this.w32(REG.FECTL, 0);
    this.w32(REG.IEDATA, 0x42);
    this.w32(REG.IEADDR, 0xfee0_1000);
    this.w32(REG.IECTL, 0);
    if (sm) {
      this.prq = this.page(16);
      this.w64(REG.PQH, 0n);
      this.w64(REG.PQT, 0n);
      this.w64(REG.PQA, this.prq | 4n);
      this.w32(REG.PEDATA, 0x43);
      this.w32(REG.PEADDR, 0xfee0_2000);
      this.w32(REG.PECTL, 0);
    }
    if (opts.te ?? true) {
      this.w32(GCMD, (this.r32(GSTS) & QIE) | TE);
      if ((this.r32(GSTS) & TE) === 0) throw new Error('TES not set');
    }
  }

  /** Scalable context entry for bus/devfn pointing at a PASID directory (allocated per device). */
  smContext(bus: number, devfn: number, f: { dte?: boolean; pre?: boolean; paside?: boolean; pdts?: number; fpd?: boolean; ridPasid?: number } = {}): bigint {
    const upper = devfn >= 128;
    const key = `${bus}/${upper}`;
    let ct = this.contextTables.get(key);
    if (ct === undefined) {
      ct = this.page();
      this.contextTables.set(key, ct);
      const rootAt = this.rootTable + BigInt(bus) * 16n + (upper ? 8n : 0n);
      this.mem.write64(rootAt, ct | 1n);
    }
    const sid = (bus << 8) | devfn;
    let dir = this.pasidDirs.get(sid);
    if (dir === undefined) {
      dir = this.page();
      this.pasidDirs.set(sid, dir);
    }
    const pdts = f.pdts ?? 7; // 2^(7+7) directory entries → PASIDs up to 2^20
    const lo = 1n | (f.fpd ? 2n : 0n) | (f.dte ? 4n : 0n) | (f.paside ? 8n : 0n) | (f.pre ? 16n : 0n) | (BigInt(pdts) << 9n) | dir;
    const at = ct + BigInt(devfn & 0x7f) * 32n;
    this.mem.write64(at + 8n, BigInt(f.ridPasid ?? 0));
    this.mem.write64(at, lo);
    return at;
  }

  /** The address of the 64-byte PASID entry (allocating the PASID table on demand). */
  pasidEntryAddr(sid: number, pasid: number): bigint {
    const dir = this.pasidDirs.get(sid);
    if (dir === undefined) throw new Error('no context for sid');
    const de = dir + BigInt(pasid >> 6) * 8n;
    let table = this.mem.read64(de) & ~0xfffn;
    if (table === 0n) {
      table = this.page();
      this.mem.write64(de, table | 1n);
    }
    return table + BigInt(pasid & 0x3f) * 64n;
  }

  /** pasid.c: write fields with P clear, then set P last. qw0..qw3 as given. */
  setPasidEntry(sid: number, pasid: number, qw: readonly bigint[]): bigint {
    const at = this.pasidEntryAddr(sid, pasid);
    for (let i = 7; i >= 0; i--) this.mem.write64(at + BigInt(i * 8), i === 0 ? qw[0] & ~1n : (qw[i] ?? 0n));
    this.mem.write64(at, qw[0] | 1n);
    return at;
  }

  /** A PASID entry image for each PGTT (pasid.c's intel_pasid_setup_*). */
  static pasidEntry(p: { pgtt: 1 | 2 | 3 | 4; did: number; aw?: number; ssptptr?: bigint; fsptptr?: bigint; fspm?: number; sre?: boolean; wpe?: boolean; ssade?: boolean; fpd?: boolean }): bigint[] {
    const qw0 = 1n | (p.fpd ? 2n : 0n) | (BigInt(p.aw ?? 2) << 2n) | (BigInt(p.pgtt) << 6n) | (p.ssade ? 1n << 9n : 0n) | (p.ssptptr ?? 0n);
    const qw1 = BigInt(p.did) | (1n << 23n);
    const qw2 = (p.sre ? 1n : 0n) | (BigInt(p.fspm ?? 0) << 2n) | (p.wpe ? 1n << 4n : 0n) | (p.fsptptr ?? 0n);
    return [qw0, qw1, qw2, 0n, 0n, 0n, 0n, 0n];
  }

  /** Legacy root + context entry (TT, AW, DID, SSPTPTR). */
  legacyContext(bus: number, devfn: number, f: { tt: number; aw: number; did: number; ssptptr: bigint; fpd?: boolean }): bigint {
    const key = `${bus}/legacy`;
    let ct = this.contextTables.get(key);
    if (ct === undefined) {
      ct = this.page();
      this.contextTables.set(key, ct);
      this.mem.write64(this.rootTable + BigInt(bus) * 16n, ct | 1n);
    }
    const at = ct + BigInt(devfn) * 16n;
    this.mem.write64(at + 8n, BigInt(f.aw) | (BigInt(f.did) << 8n));
    this.mem.write64(at, 1n | (f.fpd ? 2n : 0n) | (BigInt(f.tt) << 2n) | f.ssptptr);
    return at;
  }

  /** qi_submit_sync: descriptors + a wait(SW, QI_DONE) into the status page; returns the status. */
  submit(descs: readonly (readonly bigint[])[], waitFlags = 0n): number {
    const width = this.wide ? 32n : 16n;
    const status = this.statusPage + BigInt(this.iqTail) * 4n;
    this.mem.write32(status, 1); // QI_IN_USE
    const all = [...descs, [0x5n | (1n << 5n) | waitFlags | (2n << 32n), status, 0n, 0n]];
    for (const d of all) {
      const at = this.iq + BigInt(this.iqTail) * width;
      for (let i = 0; i < (this.wide ? 4 : 2); i++) this.mem.write64(at + BigInt(i * 8), d[i] ?? 0n);
      this.iqTail = (this.iqTail + 1) % this.iqEntries;
    }
    this.w32(REG.IQT, this.iqTail << (this.wide ? 5 : 4));
    return Number(this.mem.read32(status));
  }

  /** Raw enqueue without a wait descriptor. */
  enqueue(descs: readonly (readonly bigint[])[]): void {
    const width = this.wide ? 32n : 16n;
    for (const d of descs) {
      const at = this.iq + BigInt(this.iqTail) * width;
      for (let i = 0; i < (this.wide ? 4 : 2); i++) this.mem.write64(at + BigInt(i * 8), d[i] ?? 0n);
      this.iqTail = (this.iqTail + 1) % this.iqEntries;
    }
    this.w32(REG.IQT, this.iqTail << (this.wide ? 5 : 4));
  }

  /** The 16-byte FRCD[i] as bytes. */
  frcd(i: number): [bigint, bigint] {
    return [this.r64(REG.FRCD + 16 * i), this.r64(REG.FRCD + 16 * i + 8)];
  }
}

/** Kernel descriptor builders (QI_* macros of iommu.h). */
export const QI = {
  ccGlobal: (): bigint[] => [0x1n | (1n << 4n), 0n],
  ccDevice: (did: number, sid: number, fm = 0): bigint[] => [0x1n | (3n << 4n) | (BigInt(did) << 16n) | (BigInt(sid) << 32n) | (BigInt(fm) << 48n), 0n],
  iotlbGlobal: (): bigint[] => [0x2n | (1n << 4n), 0n],
  iotlbDsi: (did: number): bigint[] => [0x2n | (2n << 4n) | (BigInt(did) << 16n), 0n],
  iotlbPsi: (did: number, addr: bigint, am: number, ih = false): bigint[] => [0x2n | (3n << 4n) | (BigInt(did) << 16n), addr | BigInt(am) | (ih ? 64n : 0n)],
  piotlbAll: (did: number, pasid: number): bigint[] => [0x6n | (2n << 4n) | (BigInt(did) << 16n) | (BigInt(pasid) << 32n), 0n],
  piotlbPsi: (did: number, pasid: number, addr: bigint, am: number): bigint[] => [0x6n | (3n << 4n) | (BigInt(did) << 16n) | (BigInt(pasid) << 32n), addr | BigInt(am)],
  pcPasid: (did: number, pasid: number): bigint[] => [0x7n | (1n << 4n) | (BigInt(did) << 16n) | (BigInt(pasid) << 32n), 0n],
  pcDomain: (did: number): bigint[] => [0x7n | (BigInt(did) << 16n), 0n],
  pcGlobal: (): bigint[] => [0x7n | (3n << 4n), 0n],
  devTlb: (sid: number, addr: bigint, mask: number): bigint[] => {
    // qi_flush_dev_iotlb: for mask > 0, OR (2^(12+mask-1) - 1) into the address and set S.
    const a = mask > 0 ? (addr | ((1n << BigInt(12 + mask - 1)) - 1n)) & ~0xfffn : addr;
    return [0x3n | (BigInt(sid) << 32n), a | (mask > 0 ? 1n : 0n)];
  },
  pdevTlb: (sid: number, pasid: number, addr: bigint, mask: number): bigint[] => {
    const a = mask > 0 ? (addr | ((1n << BigInt(12 + mask - 1)) - 1n)) & ~0xfffn : addr;
    return [0x8n | (BigInt(sid) << 16n) | (BigInt(pasid) << 32n), a | (mask > 0 ? 1n << 11n : 0n)];
  },
  pageResponse: (rid: number, pasid: number | undefined, code: number, prgi: number): bigint[] => [
    0x9n | (pasid !== undefined ? 16n : 0n) | (BigInt(code) << 12n) | (BigInt(rid) << 16n) | (BigInt(pasid ?? 0) << 32n),
    BigInt(prgi) << 3n,
  ],
} as const;

/** Writes x86-style first-stage tables mapping `iova` → `pa` (page size by level). */
export function mapFs(v: LinuxVtd, root: bigint, iova: bigint, pa: bigint, o: { levels: number; leafLevel?: number; write?: boolean; user?: boolean; xlate?: (gpa: bigint) => bigint; ad?: boolean }): void {
  const leafLevel = o.leafLevel ?? 1;
  const x = o.xlate ?? ((g: bigint) => g);
  const ad = o.ad ?? true;
  let table = root;
  for (let level = o.levels; level > leafLevel; level--) {
    const at = x(table) + ((iova >> BigInt(12 + 9 * (level - 1))) & 511n) * 8n;
    let e = v.mem.read64(at);
    if ((e & 1n) === 0n) {
      e = v.page() | 0x7n | (ad ? 0x20n : 0n);
      v.mem.write64(at, e);
    }
    table = e & 0x000f_ffff_ffff_f000n;
  }
  const at = x(table) + ((iova >> BigInt(12 + 9 * (leafLevel - 1))) & 511n) * 8n;
  const leaf = pa | 1n | (o.write !== false ? 2n : 0n) | (o.user !== false ? 4n : 0n) | (ad ? 0x20n : 0n) | (ad && o.write !== false ? 0x40n : 0n) | (leafLevel > 1 ? 0x80n : 0n);
  v.mem.write64(at, leaf);
}

/** Writes VT-d second-stage tables mapping `gpa` → `hpa`. */
export function mapSs(v: LinuxVtd, root: bigint, gpa: bigint, hpa: bigint, o: { levels: number; leafLevel?: number; read?: boolean; write?: boolean }): void {
  const leafLevel = o.leafLevel ?? 1;
  let table = root;
  for (let level = o.levels; level > leafLevel; level--) {
    const at = table + ((gpa >> BigInt(12 + 9 * (level - 1))) & 511n) * 8n;
    let e = v.mem.read64(at);
    if ((e & 3n) === 0n) {
      e = v.page() | 0x3n;
      v.mem.write64(at, e);
    }
    table = e & 0x000f_ffff_ffff_f000n;
  }
  const at = table + ((gpa >> BigInt(12 + 9 * (leafLevel - 1))) & 511n) * 8n;
  v.mem.write64(at, hpa | (o.read !== false ? 1n : 0n) | (o.write !== false ? 2n : 0n) | (leafLevel > 1 ? 0x80n : 0n));
}

export function sidOf(bus: number, dev: number, fn: number): number {
  return (bus << 8) | (dev << 3) | fn;
}

export const SID = sidOf(0, 2, 0);
export const DEVFN = 0x10;
/** Guest-physical view for nested tests: all RAM is visible at GPA = HPA + 2^40. */
export const GPA_OFF = 1n << 40n;

export function req(iova: bigint, write = false, extra: Partial<DmaRequest> = {}): DmaRequest {
  return { requesterId: SID, streamId: SID, iova, write, ...extra };
}

/** Maps the whole RAM 1:1 at GPA_OFF in a second-stage table with 1 GiB leaves (levels 4 or 5). */
export function s2Identity(v: LinuxVtd, levels: number): bigint {
  const root = v.page();
  mapSs(v, root, GPA_OFF + 0x4000_0000n, 0x4000_0000n, { levels, leafLevel: 3 });
  return root;
}

/** First-stage tables of a guest: table pointers hold GPAs (HPA + 2^40). */
export function mapFsGuest(v: LinuxVtd, rootHpa: bigint, iova: bigint, dataHpa: bigint, levels: number): void {
  let table = rootHpa;
  for (let level = levels; level > 1; level--) {
    const at = table + ((iova >> BigInt(12 + 9 * (level - 1))) & 511n) * 8n;
    const next = v.page();
    v.mem.write64(at, (next + GPA_OFF) | 0x27n);
    table = next;
  }
  v.mem.write64(table + ((iova >> 12n) & 511n) * 8n, (dataHpa + GPA_OFF) | 0x67n);
}

