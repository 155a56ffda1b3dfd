/**
 * An Intel VT-d remapping unit: the register file (an {@link MmioDevice}) with the GCMD/GSTS
 * handshakes, fault recording, queued invalidation and the page request queue, and the DMA
 * translation port (a {@link DmaTranslator}). Software reaches it only through registers and
 * the structures it writes in memory.
 */
import { readable, readWords, writeWords, type StructureMemory } from './vtd-bitfields.js';
import { createVtdCaches, rangesOverlap, type VtdCaches, type VtdIotlbEntry } from './vtd-caches.js';
import { VTD_FAULT, VTD_QUALIFIED_FAULTS, VtdFaultRecord, vtdFaultName } from './vtd-faults.js';
import {
  VTD_DESC,
  VtdCcDesc,
  VtdDevTlbDesc,
  VtdIotlbDesc,
  VtdPcDesc,
  VtdPdevTlbDesc,
  VtdPgrpRespDesc,
  VtdPiotlbDesc,
  VtdTsInvalidationQueueConsumer,
  VtdDescHeader,
  VtdWaitDesc,
  VTD_IQEI,
  type VtdExecOutcome,
  type VtdInvalidationQueueConsumer,
  type VtdIqConfig,
  type VtdIqExecutor,
} from './vtd-iq.js';
import { encodePageRequest, type VtdPageGroupResponse, type VtdPageRequest } from './vtd-prq.js';
import {
  resolveVtdOptions,
  VTD_ECTL,
  VTD_FSTS,
  VTD_GCMD,
  VTD_ICS,
  VTD_MMIO_SIZE,
  VTD_PRS,
  VTD_REG,
  VtdCcmd,
  VtdIotlbReg,
  VtdFsts,
  VtdIqa,
  VtdIqer,
  VtdIqPointer,
  VtdPqPointer,
  VtdIva,
  VtdOptionsError,
  VtdPqa,
  VtdRtaddr,
  vtdRegisterTable,
  type ResolvedVtdOptions,
  type VtdOptions,
  type VtdRegisterSpec,
} from './vtd-registers.js';
import { lookupContext, vtdTranslate, type VtdTranslateUnit } from './vtd-translate.js';
import { vtdDescriptorEvent, type HardwareObserver } from './observer.js';
import { EngineInvalidationQueueConsumer, modelQueueEngine } from './engine-consumers.js';
import type { IommuFactoryContext } from './machine.js';
import type { MmioDevice } from './memory.js';
import { PAGE_RESPONSE_LOG_LENGTH } from './pci.js';
import type { DmaEndpoint, DmaRequest, DmaTranslation, DmaTranslator, EndpointRegistry } from './translator.js';

/** An interrupt message the unit sent (MSI address/data from the event registers). */
export interface VtdInterrupt {
  /** Which event: fault (FECTL), invalidation completion (IECTL) or page request (PECTL). */
  readonly source: 'fault' | 'invalidation' | 'page-request';
  /** MSI address (upper:lower). */
  readonly address: bigint;
  /** MSI data. */
  readonly data: number;
}

/** Options of {@link VtdIommu}: capabilities plus the host hooks. */
export interface VtdIommuOptions extends VtdOptions {
  /** Called for every interrupt message. */
  readonly onInterrupt?: (irq: VtdInterrupt) => void;
  /** Called for every page-group response the unit delivers to an endpoint. */
  readonly onPageResponse?: (resp: VtdPageGroupResponse) => void;
  /** The invalidation-queue consumer (default: the TypeScript one). */
  readonly queueConsumer?: (config: VtdIqConfig) => VtdInvalidationQueueConsumer;
}

/** What a device-TLB invalidation meets at an endpoint (fault injection). */
export type VtdDeviceTlbErrorKind = 'timeout' | 'completion-error';

const OPTION_NAMES = {
  addressWidth: true, scalableMode: true, firstStage: true, secondStage: true, nested: true, passThrough: true, pasidBits: true,
  pageRequests: true, deviceTlb: true, snoopControl: true, supervisorRequests: true, executeRequests: true,
  secondStageAccessDirty: true, pageRequestDrain: true, cachingMode: true, rwbf: true, firstStage1G: true, firstStage5Level: true,
  secondStageLargePages: true, mamv: true, nd: true, faultRecords: true, version: true, strict: true, cacheCapacity: true,
  onInterrupt: true, onPageResponse: true, queueConsumer: true,
} as const satisfies { readonly [K in keyof Required<VtdIommuOptions>]: true };
const OPTION_KEYS: ReadonlySet<string> = new Set(Object.keys(OPTION_NAMES));

const KIND_PASID_BASED: ReadonlySet<string> = new Set(['first-stage', 'nested', 'pass-through']);

/** Size of an ATS invalidation: S=0 one page, else the position of the lowest 0 bit of ADDR[63:12]. */
export function atsInvalidationRange(address: bigint, s: number): { base: bigint; size: bigint | undefined } {
  if (s === 0) return { base: address & ~0xfffn, size: 4096n };
  let k = 0n;
  while (k < 52n && ((address >> (12n + k)) & 1n) === 1n) k++;
  if (k >= 51n) return { base: 0n, size: undefined };
  const size = 1n << (12n + k + 1n);
  return { base: address & ~(size - 1n), size };
}

/** An Intel VT-d DMA remapping unit. */
export class VtdIommu implements MmioDevice, DmaTranslator, EndpointRegistry, VtdTranslateUnit {
  /** Model kind (machine factory table key). */
  readonly kind = 'vtd' as const;
  /** Bytes of MMIO space of the register window. */
  readonly mmioSize = BigInt(VTD_MMIO_SIZE);
  /** Capabilities in effect. */
  readonly options: ResolvedVtdOptions;
  /** The translation caches (inspect with `entries()`). */
  readonly caches: VtdCaches;
  /** Page-group responses delivered to endpoints, oldest first (the last {@link PAGE_RESPONSE_LOG_LENGTH}). */
  readonly pageResponses: VtdPageGroupResponse[] = [];
  /** Interrupt messages sent, oldest first. */
  readonly interrupts: VtdInterrupt[] = [];
  /** Told of every descriptor consumed, walk and fault (tracing); undefined: one null check per point. */
  observer: HardwareObserver | undefined = undefined;
  private latchedRoot = 0n;
  private latchedTtm = 0;

  private readonly csr = new Uint8Array(VTD_MMIO_SIZE);
  private readonly csrView = new DataView(this.csr.buffer);
  private readonly rwMask = new Uint8Array(VTD_MMIO_SIZE);
  private readonly w1cMask = new Uint8Array(VTD_MMIO_SIZE);
  private readonly writeOnly = new Uint8Array(VTD_MMIO_SIZE);
  private readonly table: readonly VtdRegisterSpec[];
  private readonly handlers: ReadonlyMap<number, () => void>;
  private readonly consumer: VtdInvalidationQueueConsumer;
  private readonly endpoints = new Map<number, DmaEndpoint>();
  private readonly injected = new Map<number, VtdDeviceTlbErrorKind>();
  private readonly groupIndex = new Map<number, number>();
  private iq: { base: bigint; entries: number; wide: boolean } | undefined;
  private lastWasWait = true;
  private nextFrcd = 0;
  private readonly onInterrupt: ((irq: VtdInterrupt) => void) | undefined;
  private readonly onPageResponse: ((resp: VtdPageGroupResponse) => void) | undefined;

  /**
   * @param mem - the machine memory (tables and queues are read and written through it)
   * @param options - capabilities (CAP/ECAP) and hooks
   */
  constructor(
    /** The memory tables and queues are read from and written to. */
    readonly mem: StructureMemory,
    options: VtdIommuOptions = {},
  ) {
    for (const k of Object.keys(options)) {
      if (!OPTION_KEYS.has(k)) throw new VtdOptionsError(`unknown VT-d option '${k}'; known: ${[...OPTION_KEYS].join(', ')}`);
    }
    this.options = resolveVtdOptions(options);
    this.caches = createVtdCaches(this.options.cacheCapacity, this.options.strict);
    this.table = vtdRegisterTable(this.options);
    this.onInterrupt = options.onInterrupt;
    this.onPageResponse = options.onPageResponse;
    const config: VtdIqConfig = { scalable: this.options.scalableMode, mamv: this.options.mamv, pageRequestDrain: this.options.pageRequestDrain, deviceTlbThrottling: false };
    this.consumer = (options.queueConsumer ?? ((c) => new VtdTsInvalidationQueueConsumer(c)))(config);
    const h = new Map<number, () => void>();
    h.set(VTD_REG.GCMD, () => this.onGcmd());
    h.set(VTD_REG.CCMD, () => this.onCcmd());
    h.set(VTD_REG.FSTS, () => this.onFsts());
    h.set(VTD_REG.FECTL, () => this.onEventControl('fault', VTD_REG.FECTL));
    h.set(VTD_REG.IQT, () => this.onIqt());
    h.set(VTD_REG.IQA, () => this.onIqa());
    h.set(VTD_REG.ICS, () => this.onIcs());
    h.set(VTD_REG.IECTL, () => this.onEventControl('invalidation', VTD_REG.IECTL));
    h.set(VTD_REG.PRS, () => this.onPrs());
    h.set(VTD_REG.PECTL, () => this.onEventControl('page-request', VTD_REG.PECTL));
    h.set(VTD_REG.IOTLB, () => this.onIotlbReg());
    for (let i = 0; i < this.options.faultRecords; i++) h.set(VTD_REG.FRCD + 16 * i + 8, () => this.updatePpf());
    this.handlers = h;
    this.reset();
  }

  /** Root table address latched by the last SRTP. */
  get rootTable(): bigint {
    return this.latchedRoot;
  }

  /** RTADDR.TTM latched by the last SRTP (0 legacy, 1 scalable; 2 when scalable mode is not supported). */
  get ttm(): number {
    return this.latchedTtm;
  }

  /** Resets registers (from the reset table), latched state and every cache. */
  reset(): void {
    this.csr.fill(0);
    this.rwMask.fill(0);
    this.w1cMask.fill(0);
    this.writeOnly.fill(0);
    for (const r of this.table) {
      for (let i = 0; i < r.width; i++) {
        const sh = BigInt(8 * i);
        this.csr[r.offset + i] = Number((r.reset >> sh) & 0xffn);
        this.rwMask[r.offset + i] = Number((r.rw >> sh) & 0xffn);
        this.w1cMask[r.offset + i] = Number((r.w1c >> sh) & 0xffn);
        this.writeOnly[r.offset + i] = r.writeOnly === true ? 1 : 0;
      }
    }
    this.latchedRoot = 0n;
    this.latchedTtm = 0;
    this.iq = undefined;
    this.lastWasWait = true;
    this.nextFrcd = 0;
    this.caches.context.clear();
    this.caches.pasid.clear();
    this.caches.iotlb.clear();
  }

  // ---- register file -------------------------------------------------------------------

  /** Reads a register (1/2/4/8 bytes, naturally aligned); outside the window reads all-ones. */
  mmioRead(offset: number, size: 1 | 2 | 4 | 8): bigint {
    if (offset < 0 || offset + size > VTD_MMIO_SIZE || offset % size !== 0) return (1n << BigInt(8 * size)) - 1n;
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(this.writeOnly[offset + i] === 1 ? 0 : this.csr[offset + i]);
    return v;
  }

  /** Writes a register; read-only bits keep their value, RW1C bits clear where 1 is written. */
  mmioWrite(offset: number, size: 1 | 2 | 4 | 8, value: bigint): void {
    if (offset < 0 || offset + size > VTD_MMIO_SIZE || offset % size !== 0) return;
    for (let i = 0; i < size; i++) {
      const b = offset + i;
      const v = Number((value >> BigInt(8 * i)) & 0xffn);
      this.csr[b] = ((this.csr[b] & ~this.rwMask[b]) | (v & this.rwMask[b])) & ~(v & this.w1cMask[b]);
    }
    for (const r of this.table) {
      if (r.offset < offset + size && offset < r.offset + r.width) this.handlers.get(r.offset)?.();
    }
  }

  private get32(off: number): number {
    return this.csrView.getUint32(off, true);
  }
  private set32(off: number, v: number): void {
    this.csrView.setUint32(off, v >>> 0, true);
  }
  private get64(off: number): bigint {
    return this.csrView.getBigUint64(off, true);
  }
  private set64(off: number, v: bigint): void {
    this.csrView.setBigUint64(off, BigInt.asUintN(64, v), true);
  }
  private setBits32(off: number, bits: number, on: boolean): void {
    const v = this.get32(off);
    this.set32(off, on ? v | bits : v & ~bits);
  }

  private onGcmd(): void {
    const cmd = this.get32(VTD_REG.GCMD);
    this.set32(VTD_REG.GCMD, 0);
    let sts = this.get32(VTD_REG.GSTS);
    const changed = (cmd ^ sts) >>> 0;
    if (changed & VTD_GCMD.TE) {
      sts = (cmd & VTD_GCMD.TE) !== 0 ? sts | VTD_GCMD.TE : sts & ~VTD_GCMD.TE;
      this.nextFrcd = 0;
      this.caches.context.clear();
    }
    if (cmd & VTD_GCMD.SRTP) {
      const rt = [this.get64(VTD_REG.RTADDR)];
      this.latchedRoot = VtdRtaddr.f.RTA.get(rt);
      const ttm = VtdRtaddr.f.TTM.get(rt);
      this.latchedTtm = ttm === 1 && !this.options.scalableMode ? 2 : ttm;
      sts |= VTD_GCMD.SRTP;
      // SRTP with ESRTPS-like semantics: every cached translation structure is dropped.
      this.caches.context.clear();
      this.caches.pasid.clear();
      this.caches.iotlb.clear();
    }
    if (cmd & VTD_GCMD.SFL) sts |= VTD_GCMD.SFL;
    if (cmd & VTD_GCMD.SIRTP) sts |= VTD_GCMD.SIRTP;
    if (changed & VTD_GCMD.IRE) sts ^= VTD_GCMD.IRE;
    if (changed & VTD_GCMD.CFI) sts ^= VTD_GCMD.CFI;
    let startQueue = false;
    if (changed & VTD_GCMD.QIE) {
      if (cmd & VTD_GCMD.QIE) {
        const iqa = [this.get64(VTD_REG.IQA)];
        const wide = VtdIqa.f.DW.get(iqa) === 1;
        const qs = VtdIqa.f.QS.get(iqa);
        this.iq = { base: VtdIqa.f.IQA.get(iqa), entries: (4096 << qs) / (wide ? 32 : 16), wide };
        this.lastWasWait = true;
        sts |= VTD_GCMD.QIE;
        startQueue = true;
      } else if (this.iqHead() === this.iqTail() && this.lastWasWait) {
        // Disabling is honoured only on an idle queue whose last descriptor was a wait.
        this.set64(VTD_REG.IQH, 0n);
        this.iq = undefined;
        sts &= ~VTD_GCMD.QIE;
      }
    }
    this.set32(VTD_REG.GSTS, sts);
    if (startQueue) this.processQueue();
  }

  private onCcmd(): void {
    const w = [this.get64(VTD_REG.CCMD)];
    if (VtdCcmd.f.ICC.get(w) === 0) return;
    const g = VtdCcmd.f.CIRG.get(w);
    // Register-based invalidation is ignored while queued invalidation is enabled.
    if ((this.get32(VTD_REG.GSTS) & VTD_GCMD.QIE) === 0 && g !== 0) {
      this.invalidateContext(g, VtdCcmd.f.DID.get(w), VtdCcmd.f.SID.get(w), VtdCcmd.f.FM.get(w));
      VtdCcmd.f.CAIG.set(w, g);
    }
    VtdCcmd.f.ICC.set(w, 0);
    this.set64(VTD_REG.CCMD, w[0]);
  }

  private onIotlbReg(): void {
    const w = [this.get64(VTD_REG.IOTLB)];
    if (VtdIotlbReg.f.IVT.get(w) === 0) return;
    const g = VtdIotlbReg.f.IIRG.get(w);
    if ((this.get32(VTD_REG.GSTS) & VTD_GCMD.QIE) === 0 && g !== 0) {
      const iva = [this.get64(VTD_REG.IVA)];
      this.invalidateIotlb(g, VtdIotlbReg.f.DID.get(w), VtdIva.f.ADDR.get(iva), VtdIva.f.AM.get(iva));
      VtdIotlbReg.f.IAIG.set(w, g);
    }
    VtdIotlbReg.f.IVT.set(w, 0);
    this.set64(VTD_REG.IOTLB, w[0]);
  }

  private onFsts(): void {
    const f = this.get32(VTD_REG.FSTS);
    if ((f & (VTD_FSTS.PFO | VTD_FSTS.PPF | VTD_FSTS.IQE)) === 0) this.setBits32(VTD_REG.FECTL, VTD_ECTL.IP, false);
    // Clearing IQE / ITE lets hardware resume fetching at IQH (the kernel's recovery relies on it).
    this.processQueue();
  }

  private onEventControl(source: VtdInterrupt['source'], ctl: number): void {
    const v = this.get32(ctl);
    if ((v & VTD_ECTL.IM) === 0 && (v & VTD_ECTL.IP) !== 0) {
      this.set32(ctl, v & ~VTD_ECTL.IP);
      this.sendMsi(source, ctl);
    }
  }

  private onIcs(): void {
    if ((this.get32(VTD_REG.ICS) & VTD_ICS.IWC) === 0) this.setBits32(VTD_REG.IECTL, VTD_ECTL.IP, false);
  }

  private onPrs(): void {
    if ((this.get32(VTD_REG.PRS) & (VTD_PRS.PPR | VTD_PRS.PRO)) === 0) this.setBits32(VTD_REG.PECTL, VTD_ECTL.IP, false);
  }

  private onIqa(): void {
    if (VtdIqa.f.DW.get([this.get64(VTD_REG.IQA)]) === 1 && !this.options.scalableMode) this.raiseIqe(VTD_IQEI.INVALID_WIDTH);
  }

  private onIqt(): void {
    if (this.iq === undefined) return;
    const raw = this.get64(VTD_REG.IQT);
    const qh = VtdIqPointer.f.QH.of(raw);
    if (this.iq.wide && (qh & 1) === 1) {
      this.set64(VTD_REG.IQT, VtdIqPointer.encode({ QH: qh & ~1 })[0]);
      this.raiseIqe(VTD_IQEI.TAIL_MISALIGNED);
      return;
    }
    if (this.iqTail() >= this.iq.entries) {
      this.raiseIqe(VTD_IQEI.INVALID_TAIL);
      return;
    }
    this.processQueue();
  }

  private sendMsi(source: VtdInterrupt['source'], ctl: number): void {
    const irq: VtdInterrupt = {
      source,
      address: (BigInt(this.get32(ctl + 12)) << 32n) | BigInt(this.get32(ctl + 8)),
      data: this.get32(ctl + 4),
    };
    this.interrupts.push(irq);
    if (this.interrupts.length > 1024) this.interrupts.shift();
    this.onInterrupt?.(irq);
  }

  /** Sets IP and, unless masked, sends the event's MSI (and clears IP). */
  private raiseEvent(source: VtdInterrupt['source'], ctl: number): void {
    const v = this.get32(ctl);
    if ((v & VTD_ECTL.IP) !== 0) return;
    if ((v & VTD_ECTL.IM) !== 0) {
      this.set32(ctl, v | VTD_ECTL.IP);
      return;
    }
    this.sendMsi(source, ctl);
  }

  /** Sets FSTS bits; a fault event fires when none of PPF/PFO/IQE was pending before. */
  private raiseFaultStatus(bits: number): void {
    const before = this.get32(VTD_REG.FSTS);
    this.set32(VTD_REG.FSTS, before | bits);
    if ((before & (VTD_FSTS.PPF | VTD_FSTS.PFO | VTD_FSTS.IQE)) === 0) this.raiseEvent('fault', VTD_REG.FECTL);
  }

  private raiseIqe(iqei: number): void {
    const w = [this.get64(VTD_REG.IQER)];
    VtdIqer.f.IQEI.set(w, iqei);
    this.set64(VTD_REG.IQER, w[0]);
    this.raiseFaultStatus(VTD_FSTS.IQE);
  }

  // ---- fault recording -------------------------------------------------------------------

  private updatePpf(): void {
    let any = false;
    for (let i = 0; i < this.options.faultRecords; i++) {
      if (VtdFaultRecord.f.F.get([0n, this.get64(VTD_REG.FRCD + 16 * i + 8)]) === 1) any = true;
    }
    this.setBits32(VTD_REG.FSTS, VTD_FSTS.PPF, any);
    this.onFsts();
  }

  /** Records a primary fault (§1.6 algorithm); returns whether a record was written. */
  private recordFault(code: number, req: DmaRequest, pasid: number | undefined): boolean {
    const fsts = this.get32(VTD_REG.FSTS);
    if (fsts & VTD_FSTS.PFO) return false;
    const n = this.options.faultRecords;
    for (let i = 0; i < n; i++) {
      const hi = [0n, this.get64(VTD_REG.FRCD + 16 * i + 8)];
      if (VtdFaultRecord.f.F.get(hi) === 1 && VtdFaultRecord.f.SID.get(hi) === req.requesterId) return false;
    }
    const at = VTD_REG.FRCD + 16 * this.nextFrcd;
    if (VtdFaultRecord.f.F.get([0n, this.get64(at + 8)]) === 1) {
      this.raiseFaultStatus(VTD_FSTS.PFO);
      return false;
    }
    const rec = VtdFaultRecord.encode({
      FI: req.iova & VtdFaultRecord.f.FI.mask,
      SID: req.requesterId,
      PRIV: req.priv === true && pasid !== undefined ? 1 : 0,
      EXE: req.exec === true && pasid !== undefined ? 1 : 0,
      PP: pasid !== undefined ? 1 : 0,
      FR: code,
      PV: pasid ?? 0,
      T: req.write ? 0 : 1,
      F: 1,
    });
    this.set64(at, rec[0]);
    this.set64(at + 8, rec[1]);
    if ((fsts & VTD_FSTS.PPF) === 0) {
      const w = [BigInt(fsts)];
      VtdFsts.f.FRI.set(w, this.nextFrcd);
      this.set32(VTD_REG.FSTS, Number(w[0]));
    }
    this.nextFrcd = (this.nextFrcd + 1) % n;
    this.raiseFaultStatus(VTD_FSTS.PPF);
    return true;
  }

  /** {@inheritDoc VtdTranslateUnit.fault} */
  fault(code: number, req: DmaRequest, fpd: boolean, pasid: number | undefined): DmaTranslation {
    const recorded = fpd && VTD_QUALIFIED_FAULTS.has(code) ? false : this.recordFault(code, req, pasid);
    if (this.observer !== undefined) this.observeFault(code, req, pasid, recorded, false);
    return { ok: false, fault: { kind: vtdFaultName(code), code, iova: req.iova, write: req.write, recorded } };
  }

  private observeFault(code: number, req: DmaRequest, pasid: number | undefined, recorded: boolean, stall: boolean): void {
    this.observer!.fault({ name: vtdFaultName(code), streamId: req.requesterId, ...(pasid !== undefined ? { pasid } : {}), iova: req.iova, write: req.write, recorded, stall });
  }

  /** {@inheritDoc VtdTranslateUnit.pageRequestFault} */
  pageRequestFault(code: number, req: DmaRequest, pasid: number | undefined): DmaTranslation {
    const sid = req.requesterId;
    const index = this.groupIndex.get(sid) ?? 0;
    this.groupIndex.set(sid, (index + 1) & 0x1ff);
    // Reported before the page request, whose handling (and response) follows the fault.
    if (this.observer !== undefined) this.observeFault(code, req, pasid, false, true);
    this.pageRequest({
      requesterId: sid,
      ...(pasid !== undefined ? { pasid } : {}),
      address: req.iova,
      read: !req.write,
      write: req.write,
      exec: req.exec === true,
      priv: req.priv === true,
      lastInGroup: true,
      groupIndex: index,
    });
    return { ok: false, fault: { kind: vtdFaultName(code), code, iova: req.iova, write: req.write, recorded: false, stall: true } };
  }

  // ---- translation -----------------------------------------------------------------------

  /** Translates one device access (DMA remapping disabled: address passes through). */
  translate(req: DmaRequest): DmaTranslation {
    if ((this.get32(VTD_REG.GSTS) & VTD_GCMD.TE) === 0) return { ok: true, pa: req.iova, pageSize: 4096n, writable: true };
    return vtdTranslate(this, req);
  }

  /** Endpoints register so device-TLB invalidations reach their ATCs. */
  registerEndpoint(endpoint: DmaEndpoint): void {
    this.endpoints.set(endpoint.requesterId, endpoint);
  }

  /** Makes the next device-TLB invalidation to `sid` time out (ITE) or complete with an error (ICE). */
  injectDeviceTlbError(sid: number, kind: VtdDeviceTlbErrorKind): void {
    this.injected.set(sid, kind);
  }

  // ---- page requests ---------------------------------------------------------------------

  /**
   * An endpoint's page request (PCIe PRI). Written to the page request queue when the
   * device's context entry has PRE=1; returns false when it was not queued (PRE clear: fault
   * 0x47 recorded; queue full: PRS.PRO).
   */
  pageRequest(r: VtdPageRequest): boolean {
    const probe: DmaRequest = { requesterId: r.requesterId, streamId: r.requesterId, iova: r.address, write: r.write, ...(r.pasid !== undefined ? { pasid: r.pasid } : {}) };
    if (this.ttm !== 1 || (this.get32(VTD_REG.GSTS) & VTD_GCMD.TE) === 0) return false;
    const ctx = lookupContext(this, r.requesterId);
    if ('fail' in ctx) {
      this.fault(ctx.fail, probe, ctx.fpd, r.pasid);
      return false;
    }
    if (ctx.sm?.PRE !== 1) {
      this.fault(VTD_FAULT.SM_PRE_CLEAR, probe, false, r.pasid);
      return false;
    }
    const pqa = [this.get64(VTD_REG.PQA)];
    const size = 4096n << BigInt(VtdPqa.f.PQS.get(pqa));
    const tail = (BigInt(VtdPqPointer.f.PQ.of(this.get64(VTD_REG.PQT))) * 32n) % size;
    const head = (BigInt(VtdPqPointer.f.PQ.of(this.get64(VTD_REG.PQH))) * 32n) % size;
    if ((tail + 32n) % size === head) {
      const prs = this.get32(VTD_REG.PRS);
      this.set32(VTD_REG.PRS, prs | VTD_PRS.PRO);
      return false;
    }
    writeWords(this.mem, VtdPqa.f.PQA.get(pqa) + tail, encodePageRequest(r));
    this.set64(VTD_REG.PQT, VtdPqPointer.encode({ PQ: Number((tail + 32n) % size) / 32 })[0]);
    const prs = this.get32(VTD_REG.PRS);
    this.set32(VTD_REG.PRS, prs | VTD_PRS.PPR);
    if ((prs & VTD_PRS.PPR) === 0) this.raiseEvent('page-request', VTD_REG.PECTL);
    return true;
  }

  // ---- queued invalidation ---------------------------------------------------------------

  /** IQH/IQT count 16-byte units; a 256-bit descriptor is two of them. */
  private iqUnits(): number {
    return this.iq?.wide === true ? 2 : 1;
  }
  private iqHead(): number {
    return VtdIqPointer.f.QH.of(this.get64(VTD_REG.IQH)) / this.iqUnits();
  }
  private iqTail(): number {
    return Math.floor(VtdIqPointer.f.QH.of(this.get64(VTD_REG.IQT)) / this.iqUnits());
  }
  private setIqHead(index: number): void {
    this.set64(VTD_REG.IQH, VtdIqPointer.encode({ QH: index * this.iqUnits() })[0]);
  }

  private processQueue(): void {
    const iq = this.iq;
    if (iq === undefined || (this.get32(VTD_REG.GSTS) & VTD_GCMD.QIE) === 0) return;
    if ((this.get32(VTD_REG.FSTS) & (VTD_FSTS.IQE | VTD_FSTS.ITE)) !== 0) return;
    const tail = this.iqTail();
    if (tail >= iq.entries || tail === this.iqHead()) return;
    const res = this.consumer.consume({ mem: this.mem, base: iq.base, entries: iq.entries, wide: iq.wide, head: this.iqHead(), tail }, this.executor);
    this.setIqHead(res.head);
    if (this.observer !== undefined && (res.error !== undefined || res.timeout !== undefined)) this.observeStoppedDescriptor(res.head, res.error?.reason);
    if (res.error !== undefined) this.raiseIqe(res.error.iqei);
    else if (res.timeout !== undefined) this.abortAfterTimeout(res.timeout.sid, res.head, tail);
  }

  /**
   * Reports the descriptor the queue stopped at (IQE: the one at IQH; ITE: the device-TLB
   * invalidation just before it), read back from the ring whichever consumer ran.
   */
  private observeStoppedDescriptor(head: number, iqeReason: string | undefined): void {
    const iq = this.iq!;
    const width = iq.wide ? 32 : 16;
    const slot = iqeReason !== undefined ? head : (head + iq.entries - 1) % iq.entries;
    const at = iq.base + BigInt(slot * width);
    const words = readable(this.mem, at, width) ? readWords(this.mem, at, width / 8) : [0n, 0n];
    this.observer!.command(vtdDescriptorEvent(words, iqeReason !== undefined ? `IQE: ${iqeReason}` : 'ITE'));
  }

  /** ITE: the wait descriptors pending behind a timed-out device-TLB invalidation are aborted. */
  private abortAfterTimeout(sid: number, from: number, tail: number): void {
    const iq = this.iq!;
    const width = iq.wide ? 32n : 16n;
    let head = from;
    while (head !== tail) {
      const type = VtdDescHeader.f.TYPE.of(this.mem.read64(iq.base + BigInt(head) * width));
      head = (head + 1) % iq.entries;
      if (type === VTD_DESC.WAIT) break;
    }
    this.setIqHead(head);
    const w = [this.get64(VTD_REG.IQER)];
    VtdIqer.f.ITESID.set(w, sid);
    this.set64(VTD_REG.IQER, w[0]);
    this.raiseFaultStatus(VTD_FSTS.ITE);
  }

  private readonly executor: VtdIqExecutor = {
    execute: (type, words) => {
      const out = this.executeDescriptor(type, words);
      // A device-TLB invalidation that timed out is reported with the ITE that stops the queue.
      if (this.observer !== undefined && out.kind !== 'timeout') this.observer.command(vtdDescriptorEvent(words));
      this.lastWasWait = type === VTD_DESC.WAIT;
      return out;
    },
  };

  private invalidateContext(g: number, did: number, sid: number, fm: number): void {
    const c = this.caches.context;
    if (g === 1) c.clear();
    // Scalable-mode context entries carry no DID: domain-selective acts globally.
    else if (g === 2) c.invalidate((e) => e.scalable || e.did === did);
    else if (g === 3) {
      const m = ~[0, 4, 6, 7][fm];
      c.invalidate((e) => (e.sid & m) === (sid & m));
    }
  }

  private invalidateIotlb(g: number, did: number, address: bigint, am: number): void {
    const t = this.caches.iotlb;
    if (g === 1) t.clear();
    else if (g === 2) t.invalidate((e) => e.did === did);
    else if (g === 3) {
      const len = 4096n << BigInt(am);
      const start = address & ~(len - 1n);
      // Type-2 PSI also drops every first-stage and nested entry of the domain (QEMU, reference §2.11).
      t.invalidate((e) => e.did === did && (e.kind === 'first-stage' || e.kind === 'nested' || rangesOverlap(e.iova, e.size, start, len)));
    }
  }

  private invalidatePasidIotlb(g: number, did: number, pasid: number, address: bigint, am: number): void {
    const match = (e: VtdIotlbEntry): boolean => e.did === did && e.pasid === pasid && KIND_PASID_BASED.has(e.kind);
    if (g === 2) this.caches.iotlb.invalidate((e) => match(e) && !e.global);
    else {
      const len = 4096n << BigInt(am);
      const start = address & ~(len - 1n);
      this.caches.iotlb.invalidate((e) => match(e) && rangesOverlap(e.iova, e.size, start, len));
    }
  }

  private deviceTlbInvalidate(sid: number, pasid: number | undefined, address: bigint, s: number): VtdExecOutcome {
    const injected = this.injected.get(sid);
    this.injected.delete(sid);
    const ep = this.endpoints.get(sid);
    if (ep === undefined || injected === 'timeout') return { kind: 'timeout', sid };
    const r = atsInvalidationRange(address, s);
    ep.atcInvalidate(pasid, r.base, r.size);
    if (injected === 'completion-error') {
      const w = [this.get64(VTD_REG.IQER)];
      VtdIqer.f.ICESID.set(w, sid);
      this.set64(VTD_REG.IQER, w[0]);
      this.raiseFaultStatus(VTD_FSTS.ICE);
    }
    return { kind: 'done' };
  }

  private executeDescriptor(type: number, w: readonly bigint[]): VtdExecOutcome {
    const done: VtdExecOutcome = { kind: 'done' };
    switch (type) {
      case VTD_DESC.CC:
        this.invalidateContext(VtdCcDesc.f.G.get(w), VtdCcDesc.f.DID.get(w), VtdCcDesc.f.SID.get(w), VtdCcDesc.f.FM.get(w));
        return done;
      case VTD_DESC.IOTLB:
        this.invalidateIotlb(VtdIotlbDesc.f.G.get(w), VtdIotlbDesc.f.DID.get(w), VtdIotlbDesc.f.ADDR.get(w), VtdIotlbDesc.f.AM.get(w));
        return done;
      case VTD_DESC.DEV_TLB:
        return this.deviceTlbInvalidate(VtdDevTlbDesc.f.SID.get(w), undefined, VtdDevTlbDesc.f.ADDR.get(w), VtdDevTlbDesc.f.S.get(w));
      case VTD_DESC.WAIT: {
        if (VtdWaitDesc.f.SW.get(w) === 1) this.mem.write32(VtdWaitDesc.f.SADDR.get(w), VtdWaitDesc.f.SDATA.get(w));
        if (VtdWaitDesc.f.IF.get(w) === 1 && (this.get32(VTD_REG.ICS) & VTD_ICS.IWC) === 0) {
          this.setBits32(VTD_REG.ICS, VTD_ICS.IWC, true);
          this.raiseEvent('invalidation', VTD_REG.IECTL);
        }
        return done;
      }
      case VTD_DESC.PIOTLB:
        this.invalidatePasidIotlb(VtdPiotlbDesc.f.G.get(w), VtdPiotlbDesc.f.DID.get(w), VtdPiotlbDesc.f.PASID.get(w), VtdPiotlbDesc.f.ADDR.get(w), VtdPiotlbDesc.f.AM.get(w));
        return done;
      case VTD_DESC.PC: {
        const g = VtdPcDesc.f.G.get(w);
        const did = VtdPcDesc.f.DID.get(w);
        const pasid = VtdPcDesc.f.PASID.get(w);
        if (g === 3) this.caches.pasid.clear();
        else this.caches.pasid.invalidate((e) => e.did === did && (g === 0 || e.pasid === pasid));
        return done;
      }
      case VTD_DESC.PDEV_TLB:
        return this.deviceTlbInvalidate(
          VtdPdevTlbDesc.f.SID.get(w),
          VtdPdevTlbDesc.f.G.get(w) === 1 ? undefined : VtdPdevTlbDesc.f.PASID.get(w),
          VtdPdevTlbDesc.f.ADDR.get(w),
          VtdPdevTlbDesc.f.S.get(w),
        );
      case VTD_DESC.PGRP_RESP: {
        const resp: VtdPageGroupResponse = {
          requesterId: VtdPgrpRespDesc.f.RID.get(w),
          ...(VtdPgrpRespDesc.f.P.get(w) === 1 ? { pasid: VtdPgrpRespDesc.f.PASID.get(w) } : {}),
          code: VtdPgrpRespDesc.f.RC.get(w),
          groupIndex: VtdPgrpRespDesc.f.PRGI.get(w),
        };
        this.pageResponses.push(resp);
        if (this.pageResponses.length > PAGE_RESPONSE_LOG_LENGTH) this.pageResponses.shift();
        this.onPageResponse?.(resp);
        return done;
      }
      default:
        // IEC (0x4): the model has no interrupt-remapping table to cache.
        return done;
    }
  }
}

/**
 * The machine factory row for `kind: 'vtd'`: the description's `options` are
 * {@link VtdIommuOptions}; the machine's strict mode wins over an option of false.
 */
export function createVtdIommu(context: IommuFactoryContext): VtdIommu {
  const options = (context.description.options ?? {}) as VtdIommuOptions;
  // The queue engine consumes the invalidation queue unless the options name a consumer.
  const engine = options.queueConsumer === undefined ? modelQueueEngine(context.memory, context.queueConsumers, context.queueEngine) : undefined;
  const queueConsumer = engine === undefined ? options.queueConsumer : (config: VtdIqConfig) => new EngineInvalidationQueueConsumer(engine, context.memory, config);
  return new VtdIommu(context.memory, { ...options, strict: context.strict || options.strict === true, ...(queueConsumer !== undefined ? { queueConsumer } : {}) });
}
