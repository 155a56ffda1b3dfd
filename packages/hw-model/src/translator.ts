/**
 * The port between a device's DMA engine and the IOMMU it sits behind. Every IOMMU model
 * (SMMUv3, VT-d) implements {@link DmaTranslator}; {@link PciDevice} calls it page by page.
 */

/** One untranslated (or ATS-translated) device access, as the IOMMU sees it. */
export interface DmaRequest {
  /** PCI requester ID (bus, device and function packed as in PCI: bus in bits 15:8). */
  readonly requesterId: number;
  /** SMMUv3 StreamID of the device. */
  readonly streamId: number;
  /** PASID / SubstreamID, when the transaction carries one. */
  readonly pasid?: number;
  /** Input address (IOVA). */
  readonly iova: bigint;
  /** True for a write. */
  readonly write: boolean;
  /** Instruction fetch. */
  readonly exec?: boolean;
  /** Privileged access. */
  readonly priv?: boolean;
  /** ATS: 'translated' requests carry a PA already; 'untranslated' (default) go through the tables. */
  readonly ats?: 'translated' | 'untranslated';
  /** An ATS Translation Request (the device filling its ATC) rather than an access. */
  readonly translationRequest?: boolean;
}

/** Why an access failed, as the device (and the fault record) sees it. */
export interface DmaFault {
  /** Fault class name: SMMUv3 event name (`F_TRANSLATION`, `C_BAD_STE`, ...) or VT-d reason name. */
  readonly kind: string;
  /** The architectural numeric code of {@link DmaFault.kind} (SMMUv3 event id, VT-d fault reason). */
  readonly code: number;
  /** The faulting input address. */
  readonly iova: bigint;
  /** The faulting access was a write. */
  readonly write: boolean;
  /** An event / fault record was written for this fault. */
  readonly recorded: boolean;
  /** The transaction was stalled rather than terminated. */
  readonly stall?: boolean;
}

/** The outcome of translating one access. */
export type DmaTranslation =
  | { readonly ok: true; readonly pa: bigint; readonly pageSize: bigint; readonly writable: boolean }
  | { readonly ok: false; readonly fault: DmaFault };

/** Anything that translates device accesses: an IOMMU, or identity when there is none. */
export interface DmaTranslator {
  /** Translates one access (the page containing `req.iova`). */
  translate(req: DmaRequest): DmaTranslation;
}

/** A translator for devices not behind an IOMMU: IOVA = PA, 4 KiB pages, always writable. */
export const identityTranslator: DmaTranslator = {
  translate(req: DmaRequest): DmaTranslation {
    return { ok: true, pa: req.iova, pageSize: 4096n, writable: true };
  },
};

/** A device as an IOMMU sees it for ATS invalidation and page-request responses. */
export interface DmaEndpoint {
  /** PCI requester ID. */
  readonly requesterId: number;
  /** SMMUv3 StreamID. */
  readonly streamId: number;
  /**
   * Invalidates the device's ATC for `[address, address + size)` (all PASIDs when `pasid`
   * is undefined); `size` undefined invalidates everything. Returns false when the device
   * did not complete the invalidation (an ATS invalidation timeout).
   */
  atcInvalidate(pasid: number | undefined, address: bigint, size: bigint | undefined): boolean;
  /** Delivers a PRI page-group response (PRI_RESP): 0 deny / invalid, 1 failure, 2 success. */
  pageResponse?(pasid: number | undefined, prgi: number, code: number): void;
}

/** A page request (PCIe PRI) a device sends to its IOMMU. */
export interface PageRequest {
  /** Requester's StreamID. */
  readonly streamId: number;
  /** PASID, when the request carries one. */
  readonly pasid?: number;
  /** Page address. */
  readonly address: bigint;
  /** Page request group index (9 bits). */
  readonly prgi: number;
  /** Last request of the group (a response is expected). */
  readonly last: boolean;
  /** Requested permissions. */
  readonly read: boolean;
  /** Requested permissions. */
  readonly write: boolean;
  /** Requested permissions. */
  readonly exec?: boolean;
  /** Requested permissions. */
  readonly priv?: boolean;
}

/** An IOMMU that accepts PRI page requests. */
export interface PageRequestSink {
  /** Queues a page request; returns false when it was dropped (queue disabled or full). */
  pageRequest(req: PageRequest): boolean;
}

/** An IOMMU that wants to know the endpoints behind it (to reach their ATCs). */
export interface EndpointRegistry {
  /** Called once per device placed behind this IOMMU. */
  registerEndpoint(endpoint: DmaEndpoint): void;
}
