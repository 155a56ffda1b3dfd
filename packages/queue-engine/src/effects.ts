/**
 * Effect records: what executing a command or descriptor does to the hardware's caches and
 * to the outside world (MSI / status writes), as compact 32-byte records the engine writes
 * into an effect buffer in linear memory. The hardware model applies them in batches
 * through {@link CacheEffects}. The layout of every kind is declared once here, as data.
 */
import {
  FX_RECORD_SIZE, FX_VTD_BASE,
  CMDQ_OP_PREFETCH_CFG, CMDQ_OP_PREFETCH_ADDR, CMDQ_OP_CFGI_STE, CMDQ_OP_CFGI_STE_RANGE, CMDQ_OP_CFGI_CD,
  CMDQ_OP_CFGI_CD_ALL, CMDQ_OP_TLBI_NH_ALL, CMDQ_OP_TLBI_NH_ASID, CMDQ_OP_TLBI_NH_VA, CMDQ_OP_TLBI_NH_VAA,
  CMDQ_OP_TLBI_EL3_ALL, CMDQ_OP_TLBI_EL3_VA, CMDQ_OP_TLBI_EL2_ALL, CMDQ_OP_TLBI_EL2_ASID, CMDQ_OP_TLBI_EL2_VA,
  CMDQ_OP_TLBI_EL2_VAA, CMDQ_OP_TLBI_S12_VMALL, CMDQ_OP_TLBI_S2_IPA, CMDQ_OP_TLBI_NSNH_ALL, CMDQ_OP_ATC_INV,
  CMDQ_OP_PRI_RESP, CMDQ_OP_RESUME, CMDQ_OP_STALL_TERM, CMDQ_OP_CMD_SYNC,
  QI_CC_TYPE, QI_IOTLB_TYPE, QI_DIOTLB_TYPE, QI_IEC_TYPE, QI_IWD_TYPE, QI_EIOTLB_TYPE, QI_PC_TYPE,
  QI_DEIOTLB_TYPE, QI_PGRP_RESP_TYPE,
} from './abi.js';

/** One field of an effect record: bits [lo + width − 1 : lo] of u64 word `word` (1..3). */
export interface EffectField {
  /** Field name (camelCase of the architecture's name). */
  readonly name: string;
  /** Which u64 word of the record (w1, w2 or w3; w0 holds kind and position). */
  readonly word: 1 | 2 | 3;
  /** Lowest bit. */
  readonly lo: number;
  /** Width in bits. */
  readonly width: number;
}

/** The declaration of one effect kind. */
export interface EffectKind {
  /** Kind number: the SMMU opcode, or 0x100 + the VT-d descriptor type. */
  readonly kind: number;
  /** Linux name of the command / descriptor. */
  readonly name: string;
  /** Its fields. */
  readonly fields: readonly EffectField[];
}

const f = (name: string, word: 1 | 2 | 3, lo: number, width: number): EffectField => ({ name, word, lo, width });
const SID = f('sid', 1, 0, 32);
const SSID = f('ssid', 1, 32, 20);
const SSV = f('ssv', 1, 52, 1);
const VMID = f('vmid', 1, 0, 16);
const ASID = f('asid', 1, 16, 16);
const ADDR = f('addr', 2, 0, 64);
// TLBI range fields: dw1[11:0] as-is (Leaf 0, TTL 9:8, TG 11:10), NUM and SCALE from dw0.
const RANGE = [f('leaf', 3, 0, 1), f('ttl', 3, 8, 2), f('tg', 3, 10, 2), f('num', 3, 16, 5), f('scale', 3, 24, 5)];
const VA = [ADDR, ...RANGE];

const kinds: EffectKind[] = [
  { kind: CMDQ_OP_PREFETCH_CFG, name: 'PREFETCH_CONFIG', fields: [SID, SSID, SSV] },
  { kind: CMDQ_OP_PREFETCH_ADDR, name: 'PREFETCH_ADDR', fields: [SID, SSID, SSV, ADDR, f('size', 3, 0, 5)] },
  { kind: CMDQ_OP_CFGI_STE, name: 'CFGI_STE', fields: [SID, f('leaf', 3, 0, 1)] },
  { kind: CMDQ_OP_CFGI_STE_RANGE, name: 'CFGI_STE_RANGE', fields: [SID, f('range', 3, 0, 5)] },
  { kind: CMDQ_OP_CFGI_CD, name: 'CFGI_CD', fields: [SID, SSID, SSV, f('leaf', 3, 0, 1)] },
  { kind: CMDQ_OP_CFGI_CD_ALL, name: 'CFGI_CD_ALL', fields: [SID] },
  { kind: CMDQ_OP_TLBI_NH_ALL, name: 'TLBI_NH_ALL', fields: [VMID] },
  { kind: CMDQ_OP_TLBI_NH_ASID, name: 'TLBI_NH_ASID', fields: [VMID, ASID] },
  { kind: CMDQ_OP_TLBI_NH_VA, name: 'TLBI_NH_VA', fields: [VMID, ASID, ...VA] },
  { kind: CMDQ_OP_TLBI_NH_VAA, name: 'TLBI_NH_VAA', fields: [VMID, ...VA] },
  { kind: CMDQ_OP_TLBI_EL3_ALL, name: 'TLBI_EL3_ALL', fields: [] },
  { kind: CMDQ_OP_TLBI_EL3_VA, name: 'TLBI_EL3_VA', fields: VA },
  { kind: CMDQ_OP_TLBI_EL2_ALL, name: 'TLBI_EL2_ALL', fields: [] },
  { kind: CMDQ_OP_TLBI_EL2_ASID, name: 'TLBI_EL2_ASID', fields: [ASID] },
  { kind: CMDQ_OP_TLBI_EL2_VA, name: 'TLBI_EL2_VA', fields: [ASID, ...VA] },
  { kind: CMDQ_OP_TLBI_EL2_VAA, name: 'TLBI_EL2_VAA', fields: VA },
  { kind: CMDQ_OP_TLBI_S12_VMALL, name: 'TLBI_S12_VMALL', fields: [VMID] },
  { kind: CMDQ_OP_TLBI_S2_IPA, name: 'TLBI_S2_IPA', fields: [VMID, ...VA] },
  { kind: CMDQ_OP_TLBI_NSNH_ALL, name: 'TLBI_NSNH_ALL', fields: [] },
  { kind: CMDQ_OP_ATC_INV, name: 'ATC_INV', fields: [SID, SSID, SSV, f('global', 1, 53, 1), ADDR, f('size', 3, 0, 6)] },
  { kind: CMDQ_OP_PRI_RESP, name: 'PRI_RESP', fields: [SID, SSID, SSV, f('prgi', 3, 0, 9), f('resp', 3, 12, 2)] },
  { kind: CMDQ_OP_RESUME, name: 'RESUME', fields: [SID, f('stag', 3, 0, 16), f('action', 3, 16, 2)] },
  { kind: CMDQ_OP_STALL_TERM, name: 'STALL_TERM', fields: [SID] },
  {
    kind: CMDQ_OP_CMD_SYNC, name: 'CMD_SYNC',
    fields: [f('cs', 1, 0, 2), f('msh', 1, 4, 2), f('msiAttr', 1, 8, 4), f('msiData', 1, 32, 32), f('msiAddr', 2, 0, 64)],
  },
  {
    kind: FX_VTD_BASE + QI_CC_TYPE, name: 'QI_CC',
    fields: [f('granularity', 1, 0, 2), f('fm', 1, 8, 2), f('did', 1, 16, 16), f('sid', 1, 32, 16)],
  },
  {
    kind: FX_VTD_BASE + QI_IOTLB_TYPE, name: 'QI_IOTLB',
    fields: [f('granularity', 1, 0, 2), f('drainWrites', 1, 2, 1), f('drainReads', 1, 3, 1), f('did', 1, 16, 16), ADDR, f('am', 3, 0, 6), f('ih', 3, 6, 1)],
  },
  {
    kind: FX_VTD_BASE + QI_DIOTLB_TYPE, name: 'QI_DEV_IOTLB',
    fields: [f('sid', 1, 0, 16), f('pfsid', 1, 16, 16), f('mip', 1, 32, 5), ADDR, f('size', 3, 0, 1)],
  },
  {
    kind: FX_VTD_BASE + QI_IEC_TYPE, name: 'QI_IEC',
    fields: [f('indexSelective', 1, 0, 1), f('im', 1, 8, 5), f('iidx', 1, 16, 16)],
  },
  {
    kind: FX_VTD_BASE + QI_IWD_TYPE, name: 'QI_IWD',
    fields: [f('interruptFlag', 1, 0, 1), f('statusWrite', 1, 1, 1), f('fence', 1, 2, 1), f('pageDrain', 1, 3, 1), f('statusData', 1, 32, 32), f('statusAddr', 2, 0, 64)],
  },
  {
    kind: FX_VTD_BASE + QI_EIOTLB_TYPE, name: 'QI_PASID_IOTLB',
    fields: [f('granularity', 1, 0, 2), f('did', 1, 16, 16), f('pasid', 1, 32, 20), ADDR, f('am', 3, 0, 6), f('ih', 3, 6, 1)],
  },
  {
    kind: FX_VTD_BASE + QI_PC_TYPE, name: 'QI_PASID_CACHE',
    fields: [f('granularity', 1, 0, 2), f('did', 1, 16, 16), f('pasid', 1, 32, 20)],
  },
  {
    kind: FX_VTD_BASE + QI_DEIOTLB_TYPE, name: 'QI_PASID_DEV_IOTLB',
    fields: [f('sid', 1, 0, 16), f('pfsid', 1, 16, 16), f('pasid', 1, 32, 20), f('mip', 1, 56, 5), ADDR, f('global', 3, 0, 1), f('size', 3, 1, 1)],
  },
  {
    kind: FX_VTD_BASE + QI_PGRP_RESP_TYPE, name: 'QI_PGRP_RESP',
    fields: [
      f('rid', 1, 0, 16), f('code', 1, 16, 4), f('pasidPresent', 1, 20, 1), f('privatePresent', 1, 21, 1), f('lpig', 1, 22, 1),
      f('prgi', 1, 23, 9), f('pasid', 1, 32, 20), f('private0', 2, 0, 64), f('private1', 3, 0, 64),
    ],
  },
];

/** Every effect kind, keyed by kind number. */
export const EFFECT_KINDS: ReadonlyMap<number, EffectKind> = new Map(kinds.map((k) => [k.kind, k]));

/** A decoded effect record. */
export interface Effect {
  /** Kind number (SMMU opcode, or 0x100 + VT-d descriptor type). */
  readonly kind: number;
  /** The kind's Linux name, e.g. `TLBI_NH_VA`, `QI_IWD`. */
  readonly name: string;
  /** Where the command came from: SMMU CONS value (index + wrap), or VT-d descriptor index. */
  readonly position: number;
  /** Field values by name (u64 fields are bigint). */
  readonly fields: Readonly<Record<string, bigint>>;
}

/** A batch of effect records in the engine's memory, valid until the next engine call. */
export class EffectBatch {
  /**
   * @param memory - the engine's memory
   * @param offset - byte offset of the first record
   * @param count - number of records
   */
  constructor(
    private readonly memory: WebAssembly.Memory,
    readonly offset: number,
    readonly count: number,
  ) {}

  /** The kind number of record `i`. */
  kind(i: number): number {
    return new DataView(this.memory.buffer).getUint16(this.at(i), true);
  }

  /** u64 word `w` (0..3) of record `i`. */
  word(i: number, w: 0 | 1 | 2 | 3): bigint {
    return new DataView(this.memory.buffer).getBigUint64(this.at(i) + w * 8, true);
  }

  /** Record `i` decoded through {@link EFFECT_KINDS}. */
  get(i: number): Effect {
    const w0 = this.word(i, 0);
    const kind = Number(w0 & 0xffffn);
    const decl = EFFECT_KINDS.get(kind);
    if (!decl) throw new RangeError(`effect record ${i} has unknown kind 0x${kind.toString(16)}`);
    const words = [w0, this.word(i, 1), this.word(i, 2), this.word(i, 3)];
    const fields: Record<string, bigint> = {};
    for (const fd of decl.fields) fields[fd.name] = (words[fd.word]! >> BigInt(fd.lo)) & ((1n << BigInt(fd.width)) - 1n);
    return { kind, name: decl.name, position: Number(w0 >> 32n), fields };
  }

  /** All records decoded. */
  toArray(): Effect[] {
    return Array.from({ length: this.count }, (_, i) => this.get(i));
  }

  /** A copy of the raw bytes of the batch. */
  bytes(): Uint8Array {
    return new Uint8Array(this.memory.buffer, this.offset, this.count * FX_RECORD_SIZE).slice();
  }

  private at(i: number): number {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) throw new RangeError(`effect index ${i} outside 0..${this.count - 1}`);
    return this.offset + i * FX_RECORD_SIZE;
  }
}

/**
 * Reported by a {@link CacheEffects} sink for an ATC / device-TLB invalidation of the batch
 * that did not complete: `'timeout'` becomes CERROR_ATC_INV_SYNC on the next CMD_SYNC (SMMU)
 * or FSTS.ITE at the next wait descriptor (VT-d, ITESID = sid); `'completion-error'` is VT-d
 * FSTS.ICE (ICESID = sid), processing continues.
 */
export interface InvalidationFault {
  /** What went wrong. */
  readonly kind: 'timeout' | 'completion-error';
  /** Source id of the device that failed (VT-d ITESID / ICESID). */
  readonly sid: number;
}

/**
 * The narrow interface through which a consumed queue acts on the hardware model: the
 * engine calls `applyEffects` with each batch, in queue order, before a CMD_SYNC / wait
 * descriptor that follows ATC / device-TLB invalidations, when the buffer is full, and at
 * the end of a consume call. The sink performs the invalidations on its caches and the
 * MSI / status writes of CMD_SYNC and wait descriptors (their targets may be MMIO, so the
 * engine does not write them itself).
 */
export interface CacheEffects {
  /** Applies a batch; returns a fault when a device-TLB invalidation of the batch failed. */
  applyEffects(batch: EffectBatch): InvalidationFault | undefined;
}
