/**
 * One DMA remapping unit as the intel driver owns it (`struct intel_iommu`): probe from
 * CAP/ECAP, bring-up in the kernel's order (queued invalidation, root table + SRTP, global
 * flushes, page request queue, fault interrupt, translation enable), per-device scalable-mode
 * context entries and PASID tables, the domain-ID allocator, the fault handler and the
 * page request thread.
 */
import {
  VTD_ECTL,
  VTD_FSTS,
  VTD_GCMD,
  VTD_PRS,
  VTD_REG,
  VtdCap,
  VtdEcap,
  VtdFaultRecord,
  VtdPageRequestDesc,
  VtdContextEntry,
  VtdPasidDirEntry,
  VtdSmContextEntry,
  type PciCapabilities,
  type PhysicalMemory,
  type VtdInterrupt,
} from '@iommufd/hw-model';
import type { Device, Errno, IommuDevice, IommuDomain, IopfPageRequest, Status } from '@iommufd/driver-api';
import { ENODEV } from '@iommufd/uapi';
import { IntelVtdError } from './errors.js';
import {
  CC_GRAN,
  IOTLB_GRAN,
  MAX_AGAW_PFN_WIDTH,
  PC_GRAN,
  QueuedInvalidation,
  qiDescContext,
  qiDescDevIotlb,
  qiDescDevIotlbPasid,
  qiDescFenceWait,
  qiDescIotlb,
  qiDescPageGroupResponse,
  qiDescPasidCache,
  qiDescPiotlb,
  type QiDesc,
} from './qi.js';
import { VtdRegisters } from './regs.js';
import type { DmarDomain } from './domain.js';
import { intelIommuOps } from './ops.js';

/** What the driver needs of a PCI function behind the unit (a hw-model `PciDevice` fits). */
export interface VtdPciEndpoint {
  /** Requester ID: the bus number in bits 15:8, device/function in bits 7:0. */
  readonly requesterId: number;
  /** PCIe capabilities (PASID, PRI, ATS). */
  readonly capabilities: PciCapabilities;
  /** The ATS Enable bit of the function's ATS capability. */
  atsEnabled: boolean;
}

/** MSI vectors the driver programs into the event data registers. */
export const VTD_IRQ = { FAULT: 0x30, PAGE_REQUEST: 0x31 } as const;
/** `PRQ_ORDER`: the page request queue is 2^4 pages (64 KiB). */
export const PRQ_ORDER = 4;
/** `FLPT_DEFAULT_DID`: the DID of pass-through and SVA entries. */
export const FLPT_DEFAULT_DID = 1;
/** `IOMMU_NO_PASID` */
export const IOMMU_NO_PASID = 0;
/** `PASID_PDE_SHIFT`: 64 PASID entries per table. */
const PASID_PDE_SHIFT = 6;
/** The MSI address the driver programs (the local APIC window). */
const MSI_ADDRESS = 0xfee0_0000;

/** `struct device_domain_info`: the driver's per-device state (dev_iommu_priv). */
export interface DeviceDomainInfo {
  /** The core's device. */
  readonly dev: Device;
  /** The unit translating it. */
  readonly iommu: IntelIommu;
  /** The PCI function. */
  readonly endpoint: VtdPciEndpoint;
  /** Bus number. */
  readonly bus: number;
  /** Device/function number. */
  readonly devfn: number;
  /** `PCI_DEVID(bus, devfn)` */
  readonly sid: number;
  /** ATS usable (device ATS and ECAP.DT). */
  readonly atsSupported: boolean;
  /** ATS enabled in the function. */
  atsEnabled: boolean;
  /** ATS invalidate queue depth (`pci_ats_queue_depth`: 32 when the field reads 0). */
  readonly atsQdep: number;
  /** `pfsid`: only meaningful with ECAP.DIT; the physical function's SID for VFs. */
  readonly pfsid: number;
  /** PASID usable (device PASID capability and the unit's PASID support). */
  readonly pasidSupported: boolean;
  /** PRI usable (device PRI, ATS and ECAP.PRS). */
  readonly priSupported: boolean;
  /** Number of domains with a fault handler attached (`iopf_refcount`). */
  iopfRefcount: number;
  /** PASID directory (physical) and its capacity in PASIDs. */
  readonly pasidDir: bigint;
  /** Pages of the PASID directory (2^order, contiguous). */
  readonly pasidDirPages: number;
  /** `pasid_table->max_pasid` */
  readonly maxPasid: number;
  /** PASID tables allocated under the directory. */
  readonly pasidTables: bigint[];
  /** The domain attached at the RID (IOMMU_NO_PASID), when any. */
  domain: DmarDomain | undefined;
  /** Domains attached at other PASIDs. */
  readonly pasidDomains: Map<number, DmarDomain>;
  /** Page requests of a group not yet complete (iommu core's partial list). */
  readonly partialFaults: IopfPageRequest[];
}

/** Options of {@link probeIntelIommu}. */
export interface IntelIommuProbeOptions {
  /** The machine's physical memory (the register window must be an MMIO region in it). */
  readonly memory: PhysicalMemory;
  /** Physical base address of the unit's registers (the DRHD's register base). */
  readonly base: bigint;
  /** Name of the instance (default `dmar0`). */
  readonly name?: string;
}

/** A fault record the fault handler read out of FRCD (what `dmar_fault_do_one` prints). */
export interface VtdFaultLogEntry {
  /** Fault reason. */
  readonly reason: number;
  /** Requester ID. */
  readonly sid: number;
  /** Faulting page address. */
  readonly address: bigint;
  /** PASID, when the record had one. */
  readonly pasid: number | undefined;
  /** True for a read (or atomic), false for a write. */
  readonly read: boolean;
}

/** A DMA remapping unit driven by the intel-vtd driver; registered with the core as an `IommuDevice`. */
export class IntelIommu implements IommuDevice {
  /** Instance name. */
  readonly name: string;
  /** The driver's ops (shared by every unit). */
  readonly ops = intelIommuOps;
  /** Set by the core at registration. */
  faultInjector?: IommuDevice['faultInjector'];
  /** Raw CAP register. */
  readonly cap: bigint;
  /** Raw ECAP register. */
  readonly ecap: bigint;
  /** Register access. */
  readonly regs: VtdRegisters;
  /** Physical memory. */
  readonly mem: PhysicalMemory;
  /** The invalidation queue. */
  readonly qi: QueuedInvalidation;
  /** Root table (physical). */
  readonly rootTable: bigint;
  /** Page request queue base (physical), when ECAP.PRS. */
  readonly prq: bigint | undefined;
  /** `iommu->agaw`: levels − 2 of the widest second-stage table. */
  readonly agaw: number;
  /** `ilog2(iommu->iommu.max_pasids)`: ECAP.PSS + 1 with PASID support, else 0. */
  readonly maxPasidLog2: number;
  /** Unrecoverable faults read by the fault handler, oldest first. */
  readonly faultLog: VtdFaultLogEntry[] = [];
  /** Page requests answered by the driver itself (bad requests), as descriptors. */
  readonly badPageRequests: QiDesc[] = [];
  private gcmd = 0;
  private readonly didsInUse = new Set<number>();
  private readonly contextTables = new Map<number, bigint>();
  private readonly endpoints = new Map<string, VtdPciEndpoint>();
  /** `device_rbtree`: probed devices by requester ID. */
  readonly devices = new Map<number, DeviceDomainInfo>();

  /** Use {@link probeIntelIommu}. */
  constructor(opts: IntelIommuProbeOptions) {
    this.name = opts.name ?? 'dmar0';
    this.mem = opts.memory;
    this.regs = new VtdRegisters(opts.memory, opts.base);
    this.cap = this.regs.read64(VTD_REG.CAP);
    this.ecap = this.regs.read64(VTD_REG.ECAP);
    if (this.ecapField('QI') === 0) throw new IntelVtdError(`${this.name}: ECAP.QI is 0; this driver needs queued invalidation (as Linux does for scalable mode)`);
    const sagaw = this.capField('SAGAW');
    let agaw = -1;
    // __iommu_calculate_agaw(iommu, 57): the widest supported AGAW not above 57 bits.
    for (let a = 3; a >= 0; a--) {
      if ((sagaw >> a) & 1) {
        agaw = a;
        break;
      }
    }
    if (agaw < 0 && !this.smSupported) throw new IntelVtdError(`${this.name}: CAP.SAGAW=0x${sagaw.toString(16)} supports no address width`);
    this.agaw = agaw < 0 ? 2 : agaw;
    this.maxPasidLog2 = this.pasidSupported ? this.ecapField('PSS') + 1 : 0;
    // Bring-up, in init_dmars order.
    const iqPages = this.smSupported ? 2 : 1;
    const iq = this.mem.allocPages(iqPages)[0]!;
    const status = this.mem.allocPages(1)[0]!;
    this.qi = new QueuedInvalidation(this.regs, this.mem, iq, this.smSupported, status, (sid) => this.devices.has(sid));
    this.regs.write32(VTD_REG.IQT, 0);
    this.regs.write64(VTD_REG.IQA, iq | (this.smSupported ? (1n << 11n) | 1n : 0n));
    this.setGcmd(VTD_GCMD.QIE, true);
    this.rootTable = this.mem.allocPages(1)[0]!;
    this.setRootEntry();
    if (this.ecapField('PRS') === 1 && this.smSupported) {
      this.prq = this.mem.allocPages(1 << PRQ_ORDER)[0]!;
      this.regs.write64(VTD_REG.PQH, 0n);
      this.regs.write64(VTD_REG.PQT, 0n);
      this.regs.write64(VTD_REG.PQA, this.prq | BigInt(PRQ_ORDER));
      this.regs.write32(VTD_REG.PEDATA, VTD_IRQ.PAGE_REQUEST);
      this.regs.write32(VTD_REG.PEADDR, MSI_ADDRESS);
      this.regs.write32(VTD_REG.PEUADDR, 0);
      this.regs.write32(VTD_REG.PECTL, 0);
    } else this.prq = undefined;
    this.regs.write32(VTD_REG.FEDATA, VTD_IRQ.FAULT);
    this.regs.write32(VTD_REG.FEADDR, MSI_ADDRESS);
    this.regs.write32(VTD_REG.FEUADDR, 0);
    this.regs.write32(VTD_REG.FECTL, 0);
    this.dmarFault();
    this.setGcmd(VTD_GCMD.TE, true);
  }

  /** A CAP field by its kernel name. */
  capField(name: keyof typeof VtdCap.f): number {
    return VtdCap.f[name].of(this.cap);
  }
  /** An ECAP field by its kernel name. */
  ecapField(name: keyof typeof VtdEcap.f): number {
    return VtdEcap.f[name].of(this.ecap);
  }
  /** `sm_supported` */
  get smSupported(): boolean {
    return this.ecapField('SMTS') === 1;
  }
  /** `pasid_supported` */
  get pasidSupported(): boolean {
    return this.smSupported && this.ecapField('PASID') === 1;
  }
  /** `nested_supported` */
  get nestedSupported(): boolean {
    return this.smSupported && this.ecapField('NEST') === 1;
  }
  /** `ssads_supported` */
  get ssadsSupported(): boolean {
    return this.smSupported && this.ecapField('SLADS') === 1 && this.ecapField('SMPWC') === 1;
  }
  /** Paging-structure coherency (SMPWC in scalable mode). */
  get coherent(): boolean {
    return this.smSupported ? this.ecapField('SMPWC') === 1 : this.ecapField('C') === 1;
  }
  /** `cap_mgaw` */
  get mgaw(): number {
    return this.capField('MGAW') + 1;
  }
  /** Number of domain IDs (`cap_ndoms`). */
  get ndoms(): number {
    return 2 ** (4 + 2 * this.capField('ND'));
  }

  /** Writes GCMD = shadow ± `bit` and polls GSTS (`IOMMU_WAIT_OP`). */
  private setGcmd(bit: number, on: boolean): void {
    this.gcmd = on ? (this.gcmd | bit) >>> 0 : (this.gcmd & ~bit) >>> 0;
    this.regs.write32(VTD_REG.GCMD, this.gcmd);
    const sts = this.regs.read32(VTD_REG.GSTS);
    if (((sts & bit) !== 0) !== on) throw new IntelVtdError(`${this.name}: GSTS did not follow GCMD bit 0x${bit.toString(16)}`);
  }

  /** `iommu_set_root_entry`: RTADDR (+SMT), SRTP handshake, then the global flushes unless ESRTPS. */
  private setRootEntry(): void {
    this.regs.write64(VTD_REG.RTADDR, this.rootTable | (this.smSupported ? 1n << 10n : 0n));
    this.regs.write32(VTD_REG.GCMD, (this.gcmd | VTD_GCMD.SRTP) >>> 0);
    if ((this.regs.read32(VTD_REG.GSTS) & VTD_GCMD.SRTP) === 0) throw new IntelVtdError(`${this.name}: GSTS.RTPS not set after SRTP`);
    if (this.capField('ESRTPS') === 1) return;
    this.qi.submitSync([qiDescContext(0, 0, 0, CC_GRAN.GLOBAL)]);
    if (this.smSupported) this.qi.submitSync([qiDescPasidCache(0, PC_GRAN.GLOBAL, 0)]);
    this.qi.submitSync([this.descIotlb(0, 0n, 0, IOTLB_GRAN.GLOBAL)]);
  }

  /** `qi_desc_iotlb` with this unit's drain capabilities. */
  descIotlb(did: number, addr: bigint, am: number, gran: number): QiDesc {
    return qiDescIotlb({ drd: this.capField('DRD') === 1, dwd: this.capField('DWD') === 1 }, did, addr, am, gran);
  }

  /** `iommu_flush_write_buffer`: a WBF handshake when CAP.RWBF. */
  flushWriteBuffer(): void {
    if (this.capField('RWBF') === 0) return;
    this.regs.write32(VTD_REG.GCMD, (this.gcmd | VTD_GCMD.WBF) >>> 0);
  }

  // ---- domain IDs ----------------------------------------------------------------------

  /** `ida_alloc_range(&iommu->domain_ida, IDA_START_DID, cap_ndoms - 1)`: the lowest free DID ≥ 2 (undefined when exhausted). */
  allocDid(): number | undefined {
    for (let did = 2; did < this.ndoms; did++) {
      if (!this.didsInUse.has(did)) {
        this.didsInUse.add(did);
        return did;
      }
    }
    return undefined;
  }
  /** Returns a DID to the allocator. */
  freeDid(did: number): void {
    this.didsInUse.delete(did);
  }
  /** DIDs currently allocated (inspection). */
  get allocatedDids(): readonly number[] {
    return [...this.didsInUse].sort((a, b) => a - b);
  }

  // ---- devices -------------------------------------------------------------------------

  /**
   * Tells the driver which PCI function a core device named `name` is (the DMAR scope /
   * PCI enumeration of a real system). Must precede the core's `addDevice`.
   */
  addPciDevice(name: string, endpoint: VtdPciEndpoint): void {
    if (this.endpoints.has(name)) throw new IntelVtdError(`${this.name}: a PCI device named '${name}' is already registered`);
    for (const e of this.endpoints.values()) {
      if (e.requesterId === endpoint.requesterId) throw new IntelVtdError(`${this.name}: requester ID 0x${endpoint.requesterId.toString(16)} is already registered`);
    }
    this.endpoints.set(name, endpoint);
  }

  /** `iommu_context_addr(iommu, bus, devfn, alloc)`: the context entry's physical address. */
  private contextAddr(bus: number, devfn: number, alloc: boolean): bigint | undefined {
    // Scalable-mode entries are 32 bytes: devfn 0..127 in the lower table, 128..255 in the upper.
    const upper = this.smSupported && devfn >= 0x80;
    const key = (bus << 1) | (upper ? 1 : 0);
    let table = this.contextTables.get(key);
    if (table === undefined) {
      if (!alloc) return undefined;
      table = this.mem.allocPages(1)[0]!;
      this.contextTables.set(key, table);
      this.mem.write64(this.rootTable + BigInt(bus * 16 + (upper ? 8 : 0)), table | 1n);
    }
    const idx = this.smSupported ? devfn & 0x7f : devfn;
    return table + BigInt(idx * (this.smSupported ? 32 : 16));
  }

  /** `intel_iommu_probe_device`: PASID table, scalable-mode context entry, ATS enable. */
  probeDevice(dev: Device): DeviceDomainInfo | Errno {
    const endpoint = this.endpoints.get(dev.name);
    if (endpoint === undefined) return ENODEV;
    const sid = endpoint.requesterId;
    const caps = endpoint.capabilities;
    const atsSupported = this.ecapField('DT') === 1 && caps.ats === true && dev.ats;
    const pasidSupported = this.pasidSupported && caps.pasid !== undefined && caps.pasid.maxPasidLog2 > 0 && dev.pasid !== undefined;
    const priSupported = atsSupported && this.ecapField('PRS') === 1 && caps.pri === true && dev.pri;
    // intel_pasid_alloc_table: the directory is at least one page (512 entries = 32768 PASIDs).
    const devMax = pasidSupported ? 2 ** (caps.pasid?.maxPasidLog2 ?? 0) : 1 << PASID_PDE_SHIFT;
    const dirBytes = Math.max(8, devMax >> (PASID_PDE_SHIFT - 3));
    const dirPages = Math.max(1, Math.ceil(dirBytes / 4096));
    const order = Math.ceil(Math.log2(dirPages));
    // Legacy mode has no PASID tables: the context entry is written per attached domain.
    const pasidDir = this.smSupported ? this.mem.allocPages(1 << order)[0]! : 0n;
    const maxPasid = this.smSupported ? 2 ** (order + 12 + 3) : 0;
    const info: DeviceDomainInfo = {
      dev,
      iommu: this,
      endpoint,
      bus: sid >> 8,
      devfn: sid & 0xff,
      sid,
      atsSupported,
      atsEnabled: false,
      atsQdep: 32,
      pfsid: sid,
      pasidSupported,
      priSupported,
      iopfRefcount: 0,
      pasidDir,
      pasidDirPages: this.smSupported ? 1 << order : 0,
      maxPasid,
      pasidTables: [],
      domain: undefined,
      pasidDomains: new Map(),
      partialFaults: [],
    };
    if (this.smSupported) this.setupSmContext(info);
    this.devices.set(sid, info);
    if (atsSupported) {
      endpoint.atsEnabled = true;
      info.atsEnabled = true;
    }
    return info;
  }

  /** `context_entry_set_pasid_table` + the caching-mode flush of `device_pasid_table_setup`. */
  private setupSmContext(info: DeviceDomainInfo): void {
    const at = this.contextAddr(info.bus, info.devfn, true)!;
    const maxPde = info.maxPasid >> PASID_PDE_SHIFT;
    const pds = Math.log2(maxPde);
    const words = VtdSmContextEntry.encode({
      P: 1,
      FPD: 0,
      DTE: info.atsSupported ? 1 : 0,
      PASIDE: info.pasidSupported ? 1 : 0,
      PRE: info.priSupported ? 1 : 0,
      PDTS: pds < 7 ? 0 : pds - 7,
      PASIDDIRPTR: info.pasidDir,
      RID_PASID: IOMMU_NO_PASID,
    });
    // Fields first, then the present bit (qw0 last).
    for (let w = 3; w >= 0; w--) this.mem.write64(at + BigInt(w * 8), words[w] ?? 0n);
    if (this.capField('CM') === 1) {
      this.qi.submitSync([qiDescContext(0, info.sid, 0, CC_GRAN.DEVICE)]);
      this.qi.submitSync([qiDescPasidCache(0, PC_GRAN.GLOBAL, 0)]);
      this.qi.submitSync([this.descIotlb(0, 0n, 0, IOTLB_GRAN.DSI)]);
    }
  }

  /**
   * `domain_context_mapping_one` (legacy mode): a 128-bit context entry with the domain's
   * DID, second-stage root and AW; TT = device-TLB when ATS is usable. An already present
   * entry is left alone (the kernel returns 0). Caching mode invalidates the non-present
   * entry hardware may have cached (under DID 0); otherwise a write-buffer flush.
   */
  domainContextMapping(info: DeviceDomainInfo, did: number, root: bigint, agaw: number): void {
    const at = this.contextAddr(info.bus, info.devfn, true)!;
    if (VtdContextEntry.f.P.of(this.mem.read64(at)) === 1) return;
    const words = VtdContextEntry.encode({ P: 1, FPD: 0, TT: info.atsSupported ? 1 : 0, SSPTPTR: root, AW: agaw, DID: did });
    this.mem.write64(at + 8n, words[1]!);
    this.mem.write64(at, words[0]!);
    if (this.capField('CM') === 1) {
      this.qi.submitSync([qiDescContext(0, info.sid, 0, CC_GRAN.DEVICE)]);
      this.qi.submitSync([this.descIotlb(did, 0n, 0, IOTLB_GRAN.DSI)]);
    } else this.flushWriteBuffer();
  }

  /** `domain_context_clear_one` + `intel_context_flush_no_pasid` (legacy mode). */
  domainContextClear(info: DeviceDomainInfo): void {
    const at = this.contextAddr(info.bus, info.devfn, false);
    if (at === undefined) return;
    const did = VtdContextEntry.f.DID.get([this.mem.read64(at), this.mem.read64(at + 8n)]);
    if (VtdContextEntry.f.P.of(this.mem.read64(at)) === 0) return;
    this.mem.write64(at, 0n);
    this.mem.write64(at + 8n, 0n);
    this.qi.submitSync([qiDescContext(did, info.sid, 0, CC_GRAN.DEVICE)]);
    this.qi.submitSync([this.descIotlb(did, 0n, 0, IOTLB_GRAN.DSI)]);
    this.devtlbInvalidationWithPasid(info, IOMMU_NO_PASID);
  }

  /** The context entry bytes of a device (inspection). */
  contextEntry(sid: number): Uint8Array {
    const at = this.contextAddr(sid >> 8, sid & 0xff, false);
    return at === undefined ? new Uint8Array(this.smSupported ? 32 : 16) : this.mem.read(at, this.smSupported ? 32 : 16);
  }

  /** `intel_iommu_release_device`: context entry cleared and flushed, PASID tables freed. */
  releaseDevice(info: DeviceDomainInfo): void {
    if (this.smSupported) {
      const at = this.contextAddr(info.bus, info.devfn, false);
      if (at !== undefined) {
        for (let w = 0; w < 4; w++) this.mem.write64(at + BigInt(w * 8), 0n);
        this.qi.submitSync([qiDescContext(0, info.sid, 0, CC_GRAN.DEVICE)]);
        this.devtlbInvalidationWithPasid(info, IOMMU_NO_PASID);
      }
    } else this.domainContextClear(info);
    if (info.atsEnabled) {
      info.endpoint.atsEnabled = false;
      info.atsEnabled = false;
    }
    const dir = Array.from({ length: info.pasidDirPages }, (_, i) => info.pasidDir + BigInt(i) * 4096n);
    this.mem.freePages([...info.pasidTables, ...dir]);
    info.pasidTables.length = 0;
    this.devices.delete(info.sid);
  }

  /**
   * `intel_pasid_get_entry`: the PASID entry's physical address (allocating its table, as the
   * kernel does, unless `alloc` is false), or undefined beyond max_pasid or without a table.
   */
  pasidEntryAddr(info: DeviceDomainInfo, pasid: number, alloc = true): bigint | undefined {
    if (pasid >= info.maxPasid) return undefined;
    const dirSlot = info.pasidDir + BigInt((pasid >> PASID_PDE_SHIFT) * 8);
    let table = VtdPasidDirEntry.f.PASIDPTPTR.of(this.mem.read64(dirSlot));
    if (VtdPasidDirEntry.f.P.of(this.mem.read64(dirSlot)) === 0) {
      if (!alloc) return undefined;
      table = this.mem.allocPages(1)[0]!;
      info.pasidTables.push(table);
      this.mem.write64(dirSlot, VtdPasidDirEntry.encode({ P: 1, PASIDPTPTR: table })[0]!);
    }
    return table + BigInt((pasid & 0x3f) * 64);
  }

  // ---- flushes shared by PASID-entry changes ---------------------------------------------

  /** `devtlb_invalidation_with_pasid`: a whole-range device-TLB flush when ATS is on. */
  devtlbInvalidationWithPasid(info: DeviceDomainInfo, pasid: number): void {
    if (!info.atsEnabled) return;
    this.qi.submitSync([
      pasid === IOMMU_NO_PASID
        ? qiDescDevIotlb(info.sid, this.pfsidOf(info), info.atsQdep, 0n, MAX_AGAW_PFN_WIDTH)
        : qiDescDevIotlbPasid(info.sid, this.pfsidOf(info), pasid, info.atsQdep, 0n, MAX_AGAW_PFN_WIDTH),
    ]);
  }

  /** PFSID is carried only when ECAP.DIT says the field is defined. */
  pfsidOf(info: DeviceDomainInfo): number {
    return this.ecapField('DIT') === 1 ? info.pfsid : 0;
  }

  /** `intel_iommu_drain_pasid_prq`: handle queued requests of (SID, PASID), then the drain batch. */
  drainPasidPrq(info: DeviceDomainInfo, pasid: number, did: number): void {
    if (info.iopfRefcount === 0 || this.prq === undefined) return;
    this.prqEventThread();
    const descs: QiDesc[] = [
      qiDescFenceWait(),
      pasid === IOMMU_NO_PASID ? this.descIotlb(did, 0n, 0, IOTLB_GRAN.DSI) : qiDescPiotlb(did, pasid, 0n, -1n, 0),
      pasid === IOMMU_NO_PASID
        ? qiDescDevIotlb(info.sid, this.pfsidOf(info), info.atsQdep, 0n, MAX_AGAW_PFN_WIDTH)
        : qiDescDevIotlbPasid(info.sid, this.pfsidOf(info), pasid, info.atsQdep, 0n, MAX_AGAW_PFN_WIDTH),
    ];
    for (let tries = 0; tries < 4; tries++) {
      this.qi.submitSync(descs, { drain: this.ecapField('PDS') === 1 });
      if ((this.regs.read32(VTD_REG.PRS) & VTD_PRS.PRO) === 0) return;
      this.prqEventThread();
    }
  }

  // ---- interrupts ------------------------------------------------------------------------

  /**
   * The interrupt entry point: route the unit's MSI (from the machine's interrupt hook) to
   * the fault handler or the page request thread by its vector.
   */
  handleInterrupt(irq: Pick<VtdInterrupt, 'data'>): void {
    if (irq.data === VTD_IRQ.FAULT) this.dmarFault();
    else if (irq.data === VTD_IRQ.PAGE_REQUEST) this.prqEventThread();
  }

  /** `dmar_fault`: read every pending FRCD, log it, clear it; then clear PFO/PPF. */
  dmarFault(): void {
    const fsts = this.regs.read32(VTD_REG.FSTS);
    const frcd = this.capField('FRO') * 16;
    const nfr = this.capField('NFR') + 1;
    if (fsts & VTD_FSTS.PPF) {
      let idx = (fsts >> 8) & 0xff;
      for (let n = 0; n < nfr; n++) {
        const off = frcd + idx * 16;
        const hi = this.regs.read64(off + 8);
        const words = [this.regs.read64(off), hi];
        if (VtdFaultRecord.f.F.get(words) === 0) break;
        const pp = VtdFaultRecord.f.PP.get(words) === 1;
        const entry: VtdFaultLogEntry = {
          reason: VtdFaultRecord.f.FR.get(words),
          sid: VtdFaultRecord.f.SID.get(words),
          address: VtdFaultRecord.f.FI.get(words) as bigint,
          pasid: pp ? VtdFaultRecord.f.PV.get(words) : undefined,
          read: VtdFaultRecord.f.T.get(words) === 1,
        };
        this.faultLog.push(entry);
        if (this.faultLog.length > 4096) this.faultLog.shift();
        // Beyond Linux: a nested domain of a VT-d vIOMMU forwards the fault as a vEVENT.
        const info = this.devices.get(entry.sid);
        const domain = info === undefined ? undefined : entry.pasid !== undefined && entry.pasid !== IOMMU_NO_PASID ? info.pasidDomains.get(entry.pasid) : info.domain;
        if (info !== undefined) domain?.faultReporter?.(info.dev, entry);
        // Clear F by writing 1 to bit 31 of the record's top dword.
        this.regs.write32(off + 12, 0x8000_0000);
        idx = (idx + 1) % nfr;
      }
    }
    this.regs.write32(VTD_REG.FSTS, VTD_FSTS.PFO | VTD_FSTS.PPF | (1 << 7));
  }

  /** `prq_event_thread`: read page requests from head to tail, report or reject each, advance PQH. */
  prqEventThread(): void {
    const prq = this.prq;
    if (prq === undefined) return;
    this.regs.write32(VTD_REG.PRS, VTD_PRS.PPR);
    const ringMask = (4096n << BigInt(PRQ_ORDER)) - 0x20n;
    const tail = this.regs.read64(VTD_REG.PQT) & ringMask;
    let head = this.regs.read64(VTD_REG.PQH) & ringMask;
    while (head !== tail) {
      const w = [0, 1, 2, 3].map((i) => this.mem.read64(prq + head + BigInt(i * 8)));
      this.handleOnePageRequest(VtdPageRequestDesc.decode(w));
      head = (head + 0x20n) & ringMask;
    }
    this.regs.write64(VTD_REG.PQH, tail);
    if (this.regs.read32(VTD_REG.PRS) & VTD_PRS.PRO) {
      const h = this.regs.read64(VTD_REG.PQH) & ringMask;
      const t = this.regs.read64(VTD_REG.PQT) & ringMask;
      if (h === t) {
        for (const info of this.devices.values()) info.partialFaults.length = 0;
        this.regs.write32(VTD_REG.PRS, VTD_PRS.PRO);
      }
    }
  }

  private handleOnePageRequest(req: ReturnType<typeof VtdPageRequestDesc.decode>): void {
    const address = req.ADDR as bigint;
    const canonical = address < 1n << 47n || address >= 0xffff_8000_0000_0000n;
    const bad =
      !canonical || (req.PM === 1 && (req.RD === 1 || req.WR === 1)) || (req.EXE === 1 && req.RD === 1);
    // A stop marker (last in group, neither read nor write) needs no response.
    if (!bad && req.LPIG === 1 && req.RD === 0 && req.WR === 0) return;
    const info = bad ? undefined : this.devices.get(req.RID);
    if (info === undefined) {
      if (req.LPIG === 1) {
        const d = qiDescPageGroupResponse(req.RID, req.PASID_PRESENT === 1 ? req.PASID : undefined, 1, req.PRGI);
        this.badPageRequests.push(d);
        this.qi.submitSync([d]);
      }
      return;
    }
    let flags = 0;
    if (req.LPIG === 1) flags |= 2;
    if (req.PASID_PRESENT === 1) flags |= 1 | 8;
    let perm = 0;
    if (req.RD === 1) perm |= 1;
    if (req.WR === 1) perm |= 2;
    if (req.EXE === 1) perm |= 4;
    if (req.PM === 1) perm |= 8;
    this.reportDeviceFault(info, { flags, pasid: req.PASID, grpid: req.PRGI, perm, addr: address });
  }

  /**
   * `iommu_report_device_fault` (iommu core): collect a group until its last page, route it
   * to the domain attached at the request's PASID (the RID's when it has none) and call its
   * fault handler; a group nobody handles is answered INVALID.
   */
  private reportDeviceFault(info: DeviceDomainInfo, fault: IopfPageRequest): void {
    if ((fault.flags & 2) === 0) {
      info.partialFaults.push(fault);
      return;
    }
    const group: IopfPageRequest[] = [];
    for (let i = 0; i < info.partialFaults.length; ) {
      const f = info.partialFaults[i]!;
      if (f.grpid === fault.grpid) {
        group.push(f);
        info.partialFaults.splice(i, 1);
      } else i++;
    }
    group.push(fault);
    // find_fault_handler: a PASID-tagged group goes to the domain attached at that PASID
    // (PASID 0 is the RID's); without user_pasid_table there is no fallback to the RID.
    const domain: IommuDomain | undefined =
      (fault.flags & 1) !== 0 && fault.pasid !== IOMMU_NO_PASID ? info.pasidDomains.get(fault.pasid) : info.domain;
    const handler = domain?.iopfHandler;
    let rc: Status = 1;
    if (domain !== undefined && handler !== undefined) rc = handler({ dev: info.dev, faults: group, domain });
    if (rc !== 0) this.pageResponse(info, fault, 1);
  }

  /** `intel_iommu_page_response`: one page-group response descriptor. */
  pageResponse(info: DeviceDomainInfo, request: IopfPageRequest, code: number): void {
    const pasid = (request.flags & 1) !== 0 ? request.pasid : undefined;
    this.qi.submitSync([qiDescPageGroupResponse(info.sid, pasid, code, request.grpid)]);
  }
}

/**
 * Probes and brings up the VT-d unit whose registers are at `opts.base`: reads CAP/ECAP,
 * enables queued invalidation, installs the root table (scalable mode when ECAP.SMTS), sets
 * up the page request queue and fault event, and enables translation. Register the result
 * with the core (`registerIommu`), tell it the PCI functions behind it
 * ({@link IntelIommu.addPciDevice}) and route its interrupts to
 * {@link IntelIommu.handleInterrupt}.
 */
export function probeIntelIommu(opts: IntelIommuProbeOptions): IntelIommu {
  return new IntelIommu(opts);
}
