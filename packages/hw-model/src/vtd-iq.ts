/**
 * VT-d queued invalidation: every descriptor format declared once as bit fields, and the
 * queue consumer behind the {@link VtdInvalidationQueueConsumer} interface (fetch, decode,
 * validate, dispatch to an executor, advance the head, stop at the first bad descriptor)
 * so that the queue engine's WebAssembly consumer can replace the TypeScript one without a
 * change of behaviour.
 */
import { addr, big, defineFieldLayout, num, readable, readWords, type FieldLayout, type FieldSpec, type StructureMemory } from './vtd-bitfields.js';

const TYPE_FIELDS = [num('TYPE', 0, 3, 0), num('TYPE_HI', 0, 11, 9)] as const;

/** The header every descriptor shares: type[3:0] and type[6:4] in bits 11:9. */
export const VtdDescHeader = defineFieldLayout('inv_dsc_header', 1, TYPE_FIELDS, { uncheckedWords: [0] });

/** Type 0x1: context-cache invalidate. G: 1 global, 2 domain, 3 device (+FM). */
export const VtdCcDesc = defineFieldLayout('cc_inv_dsc', 2, [
  ...TYPE_FIELDS,
  num('G', 0, 5, 4),
  num('DID', 0, 31, 16),
  num('SID', 0, 47, 32),
  num('FM', 0, 49, 48),
]);

/** Type 0x2: IOTLB invalidate. G: 1 global, 2 domain (DSI), 3 page-selective (PSI). */
export const VtdIotlbDesc = defineFieldLayout('iotlb_inv_dsc', 2, [
  ...TYPE_FIELDS,
  num('G', 0, 5, 4),
  num('DW', 0, 6),
  num('DR', 0, 7),
  num('DID', 0, 31, 16),
  num('AM', 1, 5, 0),
  num('IH', 1, 6),
  addr('ADDR', 1, 63, 12),
]);

/** Type 0x3: device-TLB invalidate (requests without PASID). */
export const VtdDevTlbDesc = defineFieldLayout('dev_tlb_inv_dsc', 2, [
  ...TYPE_FIELDS,
  num('PFSID_LO', 0, 15, 12),
  num('MIP', 0, 20, 16),
  num('SID', 0, 47, 32),
  num('PFSID_HI', 0, 63, 52),
  num('S', 1, 0),
  addr('ADDR', 1, 63, 12),
]);

/** Type 0x4: interrupt-entry-cache invalidate. */
export const VtdIecDesc = defineFieldLayout('iec_inv_dsc', 2, [...TYPE_FIELDS, num('G', 0, 4), num('IM', 0, 31, 27), num('IIDX', 0, 47, 32)]);

/** Type 0x5: invalidation wait. */
export const VtdWaitDesc = defineFieldLayout('inv_wait_dsc', 2, [
  ...TYPE_FIELDS,
  num('IF', 0, 4),
  num('SW', 0, 5),
  num('FN', 0, 6),
  num('PD', 0, 7),
  num('SDATA', 0, 63, 32),
  addr('SADDR', 1, 63, 2),
]);

/** Type 0x6: PASID-based IOTLB invalidate. G: 2 all non-global of (DID, PASID), 3 page-selective. */
export const VtdPiotlbDesc = defineFieldLayout('p_iotlb_inv_dsc', 2, [
  ...TYPE_FIELDS,
  num('G', 0, 5, 4),
  num('DID', 0, 31, 16),
  num('PASID', 0, 51, 32),
  num('AM', 1, 5, 0),
  num('IH', 1, 6),
  addr('ADDR', 1, 63, 12),
]);

/** Type 0x7: PASID-cache invalidate. G: 0 all PASIDs of DID, 1 one PASID of DID, 3 global. */
export const VtdPcDesc = defineFieldLayout('pc_inv_dsc', 2, [...TYPE_FIELDS, num('G', 0, 5, 4), num('DID', 0, 31, 16), num('PASID', 0, 51, 32)]);

/** Type 0x8: PASID-based device-TLB invalidate. */
export const VtdPdevTlbDesc = defineFieldLayout('p_dev_tlb_inv_dsc', 2, [
  ...TYPE_FIELDS,
  num('MIP', 0, 8, 4),
  num('PFSID_LO', 0, 15, 12),
  num('SID', 0, 31, 16),
  num('PASID', 0, 51, 32),
  num('PFSID_HI', 0, 63, 52),
  num('G', 1, 0),
  num('S', 1, 11),
  addr('ADDR', 1, 63, 12),
]);

/** Type 0x9: page-group response. RC: 0 success, 1 invalid request, 0xF failure. */
export const VtdPgrpRespDesc = defineFieldLayout('page_grp_resp_dsc', 4, [
  ...TYPE_FIELDS,
  num('P', 0, 4),
  num('PDP', 0, 5),
  num('RC', 0, 15, 12),
  num('RID', 0, 31, 16),
  num('PASID', 0, 51, 32),
  num('LPIG', 1, 2),
  num('PRGI', 1, 11, 3),
  big('PRIV0', 2, 63, 0),
  big('PRIV1', 3, 63, 0),
]);

/** Descriptor type codes. */
export const VTD_DESC = {
  CC: 0x1,
  IOTLB: 0x2,
  DEV_TLB: 0x3,
  IEC: 0x4,
  WAIT: 0x5,
  PIOTLB: 0x6,
  PC: 0x7,
  PDEV_TLB: 0x8,
  PGRP_RESP: 0x9,
} as const;

/**
 * IQER.IQEI codes (numbering as VirtualBox's VT-d model; the kernel only logs IQEI).
 */
export const VTD_IQEI = {
  INFO_NOT_AVAILABLE: 0,
  INVALID_TAIL: 1,
  FETCH_ERROR: 2,
  INVALID_TYPE: 3,
  RESERVED_FIELD: 4,
  INVALID_WIDTH: 5,
  TAIL_MISALIGNED: 6,
  INVALID_TTM: 7,
} as const;

/** A descriptor layout of any field set. */
export type VtdDescriptorLayout = FieldLayout<readonly FieldSpec[]>;

/** Descriptor layouts by type. */
export const VTD_DESC_LAYOUTS: ReadonlyMap<number, VtdDescriptorLayout> = new Map<number, VtdDescriptorLayout>([
  [VTD_DESC.CC, VtdCcDesc],
  [VTD_DESC.IOTLB, VtdIotlbDesc],
  [VTD_DESC.DEV_TLB, VtdDevTlbDesc],
  [VTD_DESC.IEC, VtdIecDesc],
  [VTD_DESC.WAIT, VtdWaitDesc],
  [VTD_DESC.PIOTLB, VtdPiotlbDesc],
  [VTD_DESC.PC, VtdPcDesc],
  [VTD_DESC.PDEV_TLB, VtdPdevTlbDesc],
  [VTD_DESC.PGRP_RESP, VtdPgrpRespDesc],
]);

/** The descriptor types that exist only in scalable mode. */
const SCALABLE_ONLY: ReadonlySet<number> = new Set([VTD_DESC.PIOTLB, VTD_DESC.PC, VTD_DESC.PDEV_TLB, VTD_DESC.PGRP_RESP]);
/** The descriptor types that need a 256-bit queue (the page-group response fits 128 bits without private data). */
const WIDE_ONLY: ReadonlySet<number> = new Set([VTD_DESC.PIOTLB, VTD_DESC.PC, VTD_DESC.PDEV_TLB]);

/** The ring as latched from IQA/IQH/IQT. */
export interface VtdIqRing {
  /** Memory holding the ring. */
  readonly mem: StructureMemory;
  /** Base address (IQA.IQA). */
  readonly base: bigint;
  /** Entries in the ring. */
  readonly entries: number;
  /** 256-bit descriptors (IQA.DW). */
  readonly wide: boolean;
  /** Index of the next descriptor to fetch (IQH). */
  readonly head: number;
  /** Index one past the last descriptor software queued (IQT). */
  readonly tail: number;
}

/** What the descriptors may use, from CAP/ECAP and the current mode. */
export interface VtdIqConfig {
  /** Translation is in scalable mode (RTADDR.TTM = 1) or the unit supports it (ECAP.SMTS). */
  readonly scalable: boolean;
  /** CAP.MAMV. */
  readonly mamv: number;
  /** ECAP.PDS. */
  readonly pageRequestDrain: boolean;
  /** ECAP.DIT: device-TLB descriptors may carry a PFSID (reserved otherwise). */
  readonly deviceTlbThrottling: boolean;
}

/** The result of executing a descriptor. */
export type VtdExecOutcome =
  | { readonly kind: 'done' }
  /** A device-TLB invalidation timed out: ITE stops the queue (the wait descriptors behind it are aborted). */
  | { readonly kind: 'timeout'; readonly sid: number };

/** The side effects of descriptors, implemented by the unit (caches, status writes, interrupts). */
export interface VtdIqExecutor {
  /** Executes one validated descriptor of `type` (words as fetched). */
  execute(type: number, words: readonly bigint[]): VtdExecOutcome;
}

/** The outcome of consuming the ring. */
export interface VtdIqConsumeResult {
  /** New head index. */
  readonly head: number;
  /** Descriptors executed. */
  readonly executed: number;
  /** Set when the queue stopped at an invalid descriptor (IQH points at it). */
  readonly error?: { readonly iqei: number; readonly reason: string };
  /** Set when a device-TLB invalidation timed out. */
  readonly timeout?: { readonly sid: number };
}

/**
 * The VT-d invalidation-queue consumer port (the VT-d counterpart of the SMMU's
 * `CommandQueueConsumer`): consume(ring state) → new head / error.
 */
export interface VtdInvalidationQueueConsumer {
  /** The capabilities the consumer validates against. */
  readonly config: VtdIqConfig;
  /** Consumes from the ring's head up to its tail, the first invalid descriptor or a device-TLB time-out. */
  consume(ring: VtdIqRing, executor: VtdIqExecutor): VtdIqConsumeResult;
}

/** Checks one fetched descriptor; returns the IQEI code and reason when it is invalid. */
export function validateVtdDescriptor(words: readonly bigint[], wide: boolean, config: VtdIqConfig): { iqei: number; reason: string } | undefined {
  const type = VtdDescHeader.f.TYPE.get(words);
  const typeHi = VtdDescHeader.f.TYPE_HI.get(words);
  const layout = VTD_DESC_LAYOUTS.get(type);
  if (typeHi !== 0 || layout === undefined) return { iqei: VTD_IQEI.INVALID_TYPE, reason: `unknown descriptor type 0x${(typeHi * 16 + type).toString(16)}` };
  if (SCALABLE_ONLY.has(type) && !config.scalable) return { iqei: VTD_IQEI.INVALID_TYPE, reason: `${layout.name} needs scalable mode` };
  if (WIDE_ONLY.has(type) && !wide) return { iqei: VTD_IQEI.INVALID_WIDTH, reason: `${layout.name} needs 256-bit descriptors (IQA.DW=1)` };
  if (layout.hasReservedBits(words.slice(0, 2))) return { iqei: VTD_IQEI.RESERVED_FIELD, reason: `${layout.name}: reserved bits set` };
  // The upper half of a 256-bit slot is reserved, except a page-group response's private data (PDP).
  const privateData = type === VTD_DESC.PGRP_RESP && VtdPgrpRespDesc.f.PDP.get(words) === 1;
  if (wide && !privateData && (words[2] !== 0n || words[3] !== 0n)) {
    return { iqei: VTD_IQEI.RESERVED_FIELD, reason: `${layout.name}: upper 128 bits of a 256-bit slot must be zero` };
  }
  if ((type === VTD_DESC.DEV_TLB || type === VTD_DESC.PDEV_TLB) && !config.deviceTlbThrottling) {
    const l = type === VTD_DESC.DEV_TLB ? VtdDevTlbDesc : VtdPdevTlbDesc;
    if (l.f.PFSID_LO.get(words) !== 0 || l.f.PFSID_HI.get(words) !== 0) return { iqei: VTD_IQEI.RESERVED_FIELD, reason: `${layout.name}: PFSID set but ECAP.DIT is 0` };
  }
  switch (type) {
    case VTD_DESC.CC:
      if (VtdCcDesc.f.G.get(words) === 0) return { iqei: VTD_IQEI.RESERVED_FIELD, reason: 'cc_inv_dsc: granularity 0 is reserved' };
      break;
    case VTD_DESC.IOTLB: {
      const g = VtdIotlbDesc.f.G.get(words);
      if (g === 0) return { iqei: VTD_IQEI.RESERVED_FIELD, reason: 'iotlb_inv_dsc: granularity 0 is reserved' };
      if (g === 3 && VtdIotlbDesc.f.AM.get(words) > config.mamv) return { iqei: VTD_IQEI.RESERVED_FIELD, reason: `iotlb_inv_dsc: AM above CAP.MAMV=${config.mamv}` };
      break;
    }
    case VTD_DESC.PIOTLB: {
      const g = VtdPiotlbDesc.f.G.get(words);
      if (g < 2) return { iqei: VTD_IQEI.RESERVED_FIELD, reason: `p_iotlb_inv_dsc: granularity ${g} is reserved` };
      if (g === 3 && VtdPiotlbDesc.f.AM.get(words) > config.mamv) return { iqei: VTD_IQEI.RESERVED_FIELD, reason: `p_iotlb_inv_dsc: AM above CAP.MAMV=${config.mamv}` };
      break;
    }
    case VTD_DESC.PC:
      if (VtdPcDesc.f.G.get(words) === 2) return { iqei: VTD_IQEI.RESERVED_FIELD, reason: 'pc_inv_dsc: granularity 2 is reserved' };
      break;
    case VTD_DESC.WAIT:
      if (VtdWaitDesc.f.PD.get(words) === 1 && !config.pageRequestDrain) return { iqei: VTD_IQEI.RESERVED_FIELD, reason: 'inv_wait_dsc: PD set but ECAP.PDS is 0' };
      break;
  }
  return undefined;
}

/** The TypeScript invalidation-queue consumer (the queue engine's twin). */
export class VtdTsInvalidationQueueConsumer implements VtdInvalidationQueueConsumer {
  /** @param config - the capabilities descriptors are validated against */
  constructor(
    /** The capabilities descriptors are validated against. */
    readonly config: VtdIqConfig,
  ) {}

  /** {@inheritDoc VtdInvalidationQueueConsumer.consume} */
  consume(ring: VtdIqRing, executor: VtdIqExecutor): VtdIqConsumeResult {
    const width = ring.wide ? 32n : 16n;
    let head = ring.head;
    let executed = 0;
    while (head !== ring.tail) {
      const at = ring.base + BigInt(head) * width;
      if (!readable(ring.mem, at, Number(width))) return { head, executed, error: { iqei: VTD_IQEI.FETCH_ERROR, reason: `descriptor address 0x${at.toString(16)} is not memory` } };
      const words = readWords(ring.mem, at, ring.wide ? 4 : 2);
      if (!ring.wide) words.push(0n, 0n);
      const bad = validateVtdDescriptor(words, ring.wide, this.config);
      if (bad !== undefined) return { head, executed, error: bad };
      const out = executor.execute(VtdDescHeader.f.TYPE.get(words), words);
      executed++;
      head = (head + 1) % ring.entries;
      if (out.kind === 'timeout') return { head, executed, timeout: { sid: out.sid } };
    }
    return { head, executed };
  }
}
