/**
 * The hardware models' observation point for tracing: when an IOMMU's `observer` is set, it
 * is told of every command or invalidation descriptor the IOMMU consumed (whoever consumed
 * the ring: the TypeScript consumers or the WebAssembly queue engine, whose effect records
 * reach the same executors), every table walk a TLB miss caused, and every fault. With no
 * observer each point costs one null check; the event objects are built only when one is set.
 */
import type { BitFieldSpec, BitLayout } from './bitfield.js';
import { CMDQ_ERR, CMDQ_OP, SMMU_COMMAND_LAYOUTS } from './smmuv3-layouts.js';
import { VTD_DESC_LAYOUTS, VtdDescHeader } from './vtd-iq.js';

/** Field values of an event, by the architecture's field name (hex strings for addresses). */
export type HardwareEventFields = Readonly<Record<string, string>>;

/** One command / invalidation descriptor the IOMMU consumed (or stopped at). */
export interface HardwareCommandEvent {
  /** The queue: `cmdq`, `vcmdq<n>` (Tegra241), `iq` (VT-d invalidation queue). */
  readonly queue: string;
  /** SMMUv3 opcode name (`TLBI_NH_VA`, `CMD_SYNC`) or VT-d descriptor name (`iotlb_inv_dsc`). */
  readonly opcode: string;
  /** Its non-zero fields other than the opcode / type (what the command applies to). */
  readonly fields: HardwareEventFields;
  /**
   * Set when the queue stopped at this command: the SMMUv3 CONS.ERR name (`CERROR_ILL`,
   * `CERROR_ABT`, …) or the VT-d queue error (`IQE: …`, `ITE`).
   */
  readonly error?: string;
}

/** One translation-table walk (a TLB / IOTLB miss). */
export interface HardwareWalkEvent {
  /** SMMUv3 StreamID, or the VT-d requester ID. */
  readonly streamId: number;
  /** SubstreamID / PASID the walk was for, when the access carried one. */
  readonly pasid?: number;
  /** Input address (IOVA, or IPA for an SMMUv3 stage-2 walk). */
  readonly iova: bigint;
  /** Which tables: `s1` / `s2` (SMMUv3), `first-stage` / `second-stage` / `nested` / `legacy` (VT-d). */
  readonly stage: string;
  /** Descriptors read from the start level to the leaf (on success). */
  readonly levels?: number;
  /** The leaf: output page base and size, or the fault name the walk ended with. */
  readonly result: { readonly ok: true; readonly pa: bigint; readonly size: bigint } | { readonly ok: false; readonly fault: string };
}

/** A fault the IOMMU raised for a device access. */
export interface HardwareFaultEvent {
  /** Event name: SMMUv3 event (`F_TRANSLATION`, `C_BAD_STE`) or VT-d fault reason name. */
  readonly name: string;
  /** SMMUv3 StreamID, or the VT-d requester ID. */
  readonly streamId: number;
  /** SubstreamID / PASID. */
  readonly pasid?: number;
  /** Faulting input address. */
  readonly iova: bigint;
  /** The access was a write. */
  readonly write: boolean;
  /** A record was written (SMMUv3 EVTQ record, VT-d fault recording register). */
  readonly recorded: boolean;
  /** The access was stalled / turned into a page request rather than terminated. */
  readonly stall: boolean;
}

/** Receives hardware events of one IOMMU model. */
export interface HardwareObserver {
  /** A command / descriptor was consumed, or the queue stopped at it ({@link HardwareCommandEvent.error}). */
  command(event: HardwareCommandEvent): void;
  /** A walk ended. */
  walk(event: HardwareWalkEvent): void;
  /** A fault was raised. */
  fault(event: HardwareFaultEvent): void;
}

const hex = (v: bigint): string => `0x${v.toString(16)}`;

function nonZeroFields(layout: BitLayout<readonly BitFieldSpec[]>, words: ArrayLike<bigint>, skip: ReadonlySet<string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name] of layout.fields) {
    if (skip.has(name)) continue;
    const v = layout.get(words, name);
    if (v !== 0n) out[name] = hex(v);
  }
  return out;
}

const SMMU_OPCODE_NAMES = new Map<number, string>(Object.entries(CMDQ_OP).map(([k, v]) => [v, k]));
const CMDQ_ERR_NAMES = new Map<number, string>(Object.entries(CMDQ_ERR).map(([k, v]) => [v, `CERROR_${k}`]));
const OPCODE_FIELD = new Set(['OPCODE']);

/** The observer event of an SMMUv3 command (dw0, dw1), with a CONS.ERR code when the queue stopped at it. */
export function smmuCommandEvent(queue: string, dw0: bigint, dw1: bigint, error?: number): HardwareCommandEvent {
  const w = [dw0, dw1];
  const op = Number(dw0 & 0xffn);
  const layout = SMMU_COMMAND_LAYOUTS.get(op);
  return {
    queue,
    opcode: SMMU_OPCODE_NAMES.get(op) ?? `opcode 0x${op.toString(16)}`,
    fields: layout === undefined ? { dw0: hex(dw0), dw1: hex(dw1) } : nonZeroFields(layout, w, OPCODE_FIELD),
    ...(error !== undefined && error !== CMDQ_ERR.NONE ? { error: CMDQ_ERR_NAMES.get(error) ?? `CERROR ${error}` } : {}),
  };
}

const VTD_TYPE_FIELDS = new Set(['TYPE', 'TYPE_HI']);
const VTD_DESC_NAMES = new Map<number, string>([...VTD_DESC_LAYOUTS].map(([type, l]) => [type, l.name]));

/** The observer event of a VT-d invalidation descriptor, with the queue error when the queue stopped at it. */
export function vtdDescriptorEvent(words: readonly bigint[], error?: string): HardwareCommandEvent {
  const type = Number(VtdDescHeader.f.TYPE.get(words)) | (Number(VtdDescHeader.f.TYPE_HI.get(words)) << 4);
  const layout = VTD_DESC_LAYOUTS.get(type);
  return {
    queue: 'iq',
    opcode: VTD_DESC_NAMES.get(type) ?? `descriptor type 0x${type.toString(16)}`,
    fields: layout === undefined ? Object.fromEntries(words.map((w, i) => [`qw${i}`, hex(w)])) : nonZeroFields(layout.raw, words, VTD_TYPE_FIELDS),
    ...(error !== undefined ? { error } : {}),
  };
}
