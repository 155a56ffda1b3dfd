/**
 * `@iommufd/queue-engine`: consumes SMMUv3 CMDQ / Tegra241 VCMDQ and VT-d invalidation
 * rings that live in physical memory, with a WebAssembly engine and a TypeScript twin.
 *
 * @packageDocumentation
 */
export { PAGE_SHIFT, PAGE_SIZE, PhysicalStore, PhysicalStoreFullError } from './physical-store.js';
export type { PhysicalStoreOptions } from './physical-store.js';
export {
  createQueueEngine, QueueEngine, QueueEngineError, EngineQueue, SmmuQueue, InvalidationQueue, Vsmmu,
} from './engine.js';
export type {
  EngineImpl, QueueEngineOptions, StopReason, QueueCommonOptions, SmmuQueueOptions, InvalidationQueueOptions,
  RamPredicate, VsmmuOptions, VsmmuResult,
} from './engine.js';
export { EFFECT_KINDS, EffectBatch } from './effects.js';
export type { EngineCore } from './engine-ts.js';
export type { CacheEffects, Effect, EffectField, EffectKind, InvalidationFault } from './effects.js';
export {
  FX_RECORD_SIZE, FX_VTD_BASE, CERROR_NONE, CERROR_ILL, CERROR_ABT, CERROR_ATC_INV_SYNC, CONS_ERR_SHIFT, CONS_ERR_MASK,
  CMDQ_OP_PREFETCH_CFG, CMDQ_OP_PREFETCH_ADDR, CMDQ_OP_CFGI_STE, CMDQ_OP_CFGI_STE_RANGE, CMDQ_OP_CFGI_CD,
  CMDQ_OP_CFGI_CD_ALL, CMDQ_OP_TLBI_NH_ALL, CMDQ_OP_TLBI_NH_ASID, CMDQ_OP_TLBI_NH_VA, CMDQ_OP_TLBI_NH_VAA,
  CMDQ_OP_TLBI_EL3_ALL, CMDQ_OP_TLBI_EL3_VA, CMDQ_OP_TLBI_EL2_ALL, CMDQ_OP_TLBI_EL2_ASID, CMDQ_OP_TLBI_EL2_VA,
  CMDQ_OP_TLBI_EL2_VAA, CMDQ_OP_TLBI_S12_VMALL, CMDQ_OP_TLBI_S2_IPA, CMDQ_OP_TLBI_NSNH_ALL, CMDQ_OP_ATC_INV,
  CMDQ_OP_PRI_RESP, CMDQ_OP_RESUME, CMDQ_OP_STALL_TERM, CMDQ_OP_CMD_SYNC, VSMMU_BATCH,
  FSTS_IQE, FSTS_ICE, FSTS_ITE, IQEI_INVALID_TAIL, IQEI_FETCH, IQEI_INVALID_TYPE, IQEI_RESERVED, IQEI_INVALID_WIDTH,
  IQEI_TAIL_MISALIGNED, QI_CC_TYPE, QI_IOTLB_TYPE, QI_DIOTLB_TYPE, QI_IEC_TYPE, QI_IWD_TYPE, QI_EIOTLB_TYPE,
  QI_PC_TYPE, QI_DEIOTLB_TYPE, QI_PGRP_RESP_TYPE,
} from './abi.js';
export { VSMMU_MIX_VMID, vsmmuMixStreams, generateVsmmuMix, fnv1a64, VsmmuMixRun } from './vsmmu-mix.js';
export type { VsmmuMixCounts, VsmmuMixOutcome } from './vsmmu-mix.js';
