/**
 * PCI endpoints with a DMA engine. Every access goes through the {@link DmaTranslator} of
 * the IOMMU the device sits behind, page by page; data moves only through
 * {@link PhysicalMemory}. Devices with ATS keep an address translation cache (ATC) that the
 * IOMMU invalidates with ATC_INV / device-TLB invalidations.
 */
import type { PhysicalMemory } from './memory.js';
import type { DmaEndpoint, DmaFault, DmaTranslator, EndpointRegistry, PageRequestSink } from './translator.js';

/** Bus / device / function of a PCI function. */
export interface Bdf {
  /** Bus number 0..255. */
  readonly bus: number;
  /** Device number 0..31. */
  readonly dev: number;
  /** Function number 0..7. */
  readonly fn: number;
}

/** Optional PCIe capabilities of a device. */
export interface PciCapabilities {
  /** PASID capability: the largest PASID width and the execute / privileged-mode permissions. */
  readonly pasid?: { readonly maxPasidLog2: number; readonly exec: boolean; readonly priv: boolean };
  /** Page Request Interface. */
  readonly pri?: boolean;
  /** Address Translation Services (the device gets an ATC). */
  readonly ats?: boolean;
}

/** Options of {@link PciDevice}. */
export interface PciDeviceOptions {
  /** Bus / device / function. */
  readonly bdf: Bdf;
  /** SMMUv3 StreamID; defaults to the requester ID. */
  readonly streamId?: number;
  /** Capabilities (none by default). */
  readonly capabilities?: PciCapabilities;
  /** ATC capacity in entries (default 64). */
  readonly atcEntries?: number;
}

/** One DMA transfer issued by a device. */
export interface DmaOperation {
  /** First IOVA. */
  readonly iova: bigint;
  /** Bytes to move. */
  readonly length: number;
  /** True: device writes `data` to memory; false: device reads `length` bytes. */
  readonly write: boolean;
  /** The bytes to write (length must equal `length`; zeros when omitted). */
  readonly data?: Uint8Array;
  /** PASID to tag the transactions with (needs the PASID capability). */
  readonly pasid?: number;
  /** Privileged access (needs PASID priv permission when a PASID is used). */
  readonly priv?: boolean;
  /** Instruction fetch. */
  readonly exec?: boolean;
}

/** Outcome of {@link PciDevice.dma}: the data read, or the fault that aborted the transfer. */
export type DmaResult =
  | { readonly ok: true; readonly data?: Uint8Array }
  | { readonly ok: false; readonly fault: DmaFault; readonly bytesDone: number };

/** Thrown when a DMA operation is malformed (not a translation fault). */
export class DmaError extends Error {
  /** Error name for `instanceof`-free checks. */
  override readonly name = 'DmaError';
}

/** One cached translation of the device's ATC. */
export interface AtcEntry {
  /** PASID the entry was fetched for (undefined: no PASID). */
  readonly pasid: number | undefined;
  /** Page-aligned IOVA. */
  readonly iova: bigint;
  /** Size of the translated page. */
  readonly size: bigint;
  /** Translated physical address of `iova`. */
  readonly pa: bigint;
  /** Writes allowed. */
  readonly writable: boolean;
}

/** The device-side address translation cache of an ATS-capable function. */
export class AddressTranslationCache {
  private readonly map = new Map<string, AtcEntry>();
  /** Lookups that hit. */
  hits = 0;
  /** Lookups that missed. */
  misses = 0;

  constructor(
    /** Maximum number of entries (the oldest is evicted beyond it). */
    readonly capacity: number,
  ) {}

  /** The cached entries (oldest first). */
  entries(): AtcEntry[] {
    return [...this.map.values()];
  }

  /** The entry covering `iova` for `pasid`, if cached. */
  lookup(pasid: number | undefined, iova: bigint): AtcEntry | undefined {
    for (const e of this.map.values()) {
      if (e.pasid === pasid && iova >= e.iova && iova < e.iova + e.size) {
        this.hits++;
        return e;
      }
    }
    this.misses++;
    return undefined;
  }

  /** Caches a translation result, evicting the oldest entry when full. */
  insert(e: AtcEntry): void {
    const key = `${e.pasid ?? -1}:${e.iova}`;
    this.map.delete(key);
    if (this.map.size >= this.capacity) {
      const oldest = this.map.keys().next();
      if (!oldest.done) this.map.delete(oldest.value);
    }
    this.map.set(key, e);
  }

  /** Drops entries overlapping `[address, address+size)` (all when `size` undefined) of `pasid` (any when undefined). */
  invalidate(pasid: number | undefined, address: bigint, size: bigint | undefined): void {
    for (const [k, e] of this.map) {
      if (pasid !== undefined && e.pasid !== pasid) continue;
      if (size !== undefined && (e.iova + e.size <= address || address + size <= e.iova)) continue;
      this.map.delete(k);
    }
  }
}

/** Encodes a bus/device/function as the 16-bit PCI requester ID. */
export function requesterIdOf(bdf: Bdf): number {
  return ((bdf.bus & 0xff) << 8) | ((bdf.dev & 0x1f) << 3) | (bdf.fn & 7);
}

/** How many page-group responses {@link PciDevice.pageResponses} and the VT-d model keep. */
export const PAGE_RESPONSE_LOG_LENGTH = 1024;

/** A PCI function that issues DMA through the IOMMU it sits behind. */
export class PciDevice implements DmaEndpoint {
  /** Bus / device / function. */
  readonly bdf: Bdf;
  /** Requester ID (the BDF as u16). */
  readonly requesterId: number;
  /** SMMUv3 StreamID. */
  readonly streamId: number;
  /** The device's capabilities. */
  readonly capabilities: PciCapabilities;
  /** The ATC, when the device has ATS. */
  readonly atc: AddressTranslationCache | undefined;
  /** ATS enable (the driver's write to the ATS control register); the ATC is used only when set. */
  atsEnabled = false;
  /** Fault injection: the device never completes ATC invalidations (an ATS invalidation timeout). */
  atcInvalidationTimeout = false;
  /** PRI page-group responses received, oldest first (the last {@link PAGE_RESPONSE_LOG_LENGTH}). */
  readonly pageResponses: { readonly pasid: number | undefined; readonly prgi: number; readonly code: number }[] = [];

  constructor(
    private readonly memory: PhysicalMemory,
    private readonly translator: DmaTranslator,
    options: PciDeviceOptions,
  ) {
    const { bus, dev, fn } = options.bdf;
    if (!inRange(bus, 255) || !inRange(dev, 31) || !inRange(fn, 7)) {
      throw new DmaError(`invalid BDF ${bus}:${dev}.${fn}: bus 0..255, device 0..31, function 0..7`);
    }
    this.bdf = options.bdf;
    this.requesterId = requesterIdOf(options.bdf);
    this.streamId = options.streamId ?? this.requesterId;
    this.capabilities = options.capabilities ?? {};
    this.atc = this.capabilities.ats === true ? new AddressTranslationCache(options.atcEntries ?? 64) : undefined;
    const registry = translator as Partial<EndpointRegistry>;
    if (typeof registry.registerEndpoint === 'function') registry.registerEndpoint(this);
  }

  /** Invalidation from the IOMMU (ATC_INV); false when the device does not complete it. */
  atcInvalidate(pasid: number | undefined, address: bigint, size: bigint | undefined): boolean {
    if (this.atcInvalidationTimeout) return false;
    this.atc?.invalidate(pasid, address, size);
    return true;
  }

  /** A PRI response from the IOMMU (PRI_RESP). */
  pageResponse(pasid: number | undefined, prgi: number, code: number): void {
    this.pageResponses.push({ pasid, prgi, code });
    // A log for inspection, not state: bounded, or a machine running for days grows with every fault.
    if (this.pageResponses.length > PAGE_RESPONSE_LOG_LENGTH) this.pageResponses.shift();
  }

  /**
   * Sends a PRI page request for the page of `iova` (needs the PRI capability). Returns
   * false when the IOMMU dropped it.
   */
  pageRequest(op: { iova: bigint; write: boolean; pasid?: number; prgi: number; last: boolean; exec?: boolean; priv?: boolean }): boolean {
    if (this.capabilities.pri !== true) throw new DmaError(`device ${this.name} has no PRI capability`);
    if (!Number.isInteger(op.prgi) || op.prgi < 0 || op.prgi > 0x1ff) throw new DmaError(`PRG index ${op.prgi} must be 0..511`);
    const sink = this.translator as Partial<PageRequestSink>;
    if (typeof sink.pageRequest !== 'function') return false;
    return sink.pageRequest({
      streamId: this.streamId,
      ...(op.pasid !== undefined ? { pasid: op.pasid } : {}),
      address: op.iova & ~0xfffn,
      prgi: op.prgi,
      last: op.last,
      read: !op.write,
      write: op.write,
      exec: op.exec ?? false,
      priv: op.priv ?? false,
    });
  }

  /**
   * Issues one DMA transfer, split at translation-page boundaries. A fault aborts the
   * transfer (bytes before it have moved, as on real hardware).
   */
  dma(op: DmaOperation): DmaResult {
    if (!Number.isInteger(op.length) || op.length < 0) throw new DmaError(`DMA length must be a non-negative integer, got ${op.length}`);
    if (op.data !== undefined && op.data.length !== op.length) {
      throw new DmaError(`DMA data is ${op.data.length} bytes but length is ${op.length}; pass matching data`);
    }
    if (op.iova < 0n || op.iova + BigInt(op.length) > 1n << 64n) throw new DmaError(`DMA range 0x${op.iova.toString(16)}+${op.length} is outside the 64-bit address space`);
    if (op.pasid !== undefined) {
      const cap = this.capabilities.pasid;
      if (cap === undefined) throw new DmaError(`device ${this.name} has no PASID capability; omit pasid`);
      if (!Number.isInteger(op.pasid) || op.pasid < 0 || op.pasid >= 2 ** cap.maxPasidLog2) {
        throw new DmaError(`PASID ${op.pasid} exceeds the device's ${cap.maxPasidLog2}-bit PASID width`);
      }
    }
    const out = op.write ? undefined : new Uint8Array(op.length);
    let done = 0;
    while (done < op.length) {
      const iova = op.iova + BigInt(done);
      const t = this.translateOne(iova, op);
      if (!t.ok) return { ok: false, fault: t.fault, bytesDone: done };
      const inPage = Number(t.pageSize - (iova & (t.pageSize - 1n)));
      const chunk = Math.min(op.length - done, inPage);
      if (op.write) this.memory.write(t.pa, op.data?.subarray(done, done + chunk) ?? new Uint8Array(chunk));
      else out!.set(this.memory.read(t.pa, chunk), done);
      done += chunk;
    }
    return out === undefined ? { ok: true } : { ok: true, data: out };
  }

  /** `bus:dev.fn` in the usual hex notation. */
  get name(): string {
    const h = (n: number, w: number) => n.toString(16).padStart(w, '0');
    return `${h(this.bdf.bus, 2)}:${h(this.bdf.dev, 2)}.${this.bdf.fn}`;
  }

  private translateOne(iova: bigint, op: DmaOperation): { ok: true; pa: bigint; pageSize: bigint } | { ok: false; fault: DmaFault } {
    const useAtc = this.atc !== undefined && this.atsEnabled;
    if (useAtc) {
      const hit = this.atc!.lookup(op.pasid, iova);
      if (hit !== undefined && (!op.write || hit.writable)) {
        // A translated transaction: the IOMMU still checks that the stream may use ATS.
        const pa = hit.pa + (iova - hit.iova);
        const chk = this.translator.translate({
          requesterId: this.requesterId,
          streamId: this.streamId,
          iova: pa,
          write: op.write,
          ats: 'translated',
          ...(op.pasid !== undefined ? { pasid: op.pasid } : {}),
        });
        if (!chk.ok) return chk;
        return { ok: true, pa, pageSize: hit.size };
      }
    }
    const t = this.translator.translate({
      requesterId: this.requesterId,
      streamId: this.streamId,
      iova,
      write: op.write,
      ...(useAtc ? { translationRequest: true } : {}),
      ...(op.pasid !== undefined ? { pasid: op.pasid } : {}),
      ...(op.exec !== undefined ? { exec: op.exec } : {}),
      ...(op.priv !== undefined ? { priv: op.priv } : {}),
    });
    if (!t.ok) return t;
    const base = iova & ~(t.pageSize - 1n);
    if (useAtc) this.atc!.insert({ pasid: op.pasid, iova: base, size: t.pageSize, pa: t.pa - (iova - base), writable: t.writable });
    return { ok: true, pa: t.pa, pageSize: t.pageSize };
  }
}

function inRange(n: number, max: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= max;
}
