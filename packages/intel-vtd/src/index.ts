/**
 * `@iommufd/intel-vtd`: the intel-vtd iommufd driver and an experimental VT-d vIOMMU.
 *
 * @packageDocumentation
 */
export { IntelVtdError } from './errors.js';
export { FLPT_DEFAULT_DID, IntelIommu, IOMMU_NO_PASID, PRQ_ORDER, probeIntelIommu, VTD_IRQ } from './iommu.js';
export type { DeviceDomainInfo, IntelIommuProbeOptions, VtdFaultLogEntry, VtdPciEndpoint } from './iommu.js';
export { intelIommuOps } from './ops.js';
export { blockedDomain, DmarDomain } from './domain.js';
export type { DmarDomainStage, VtdS1Config } from './domain.js';
export { calculatePsiAlignedAddress } from './cache-tags.js';
export type { CacheTag, CacheTagType } from './cache-tags.js';
export { pasidEntryBytes } from './pasid.js';
export {
  CC_GRAN,
  IOTLB_GRAN,
  MAX_AGAW_PFN_WIDTH,
  PC_GRAN,
  QI_DONE,
  QI_LENGTH,
  QueuedInvalidation,
  qiDescContext,
  qiDescDevIotlb,
  qiDescDevIotlbPasid,
  qiDescFenceWait,
  qiDescIotlb,
  qiDescPageGroupResponse,
  qiDescPasidCache,
  qiDescPiotlb,
} from './qi.js';
export type { QiBatch, QiDesc, QiSubmitOptions } from './qi.js';
export { IoPageTable, levelSize } from './pgtable.js';
export type { PageTableFormat } from './pgtable.js';
export { VtdRegisters } from './regs.js';
export {
  intel_viommu,
  intelGetViommuSize,
  intelViommuInit,
  intelViommuOps,
  iommu_hwpt_vtd_s1_vdid,
  iommu_vevent_vtd_fault,
  iommu_viommu_vtd_invalidate,
  IOMMU_HWPT_DATA_VTD_S1_VDID_EXP,
  IOMMU_VEVENT_VTD_FAULT_PASID_VALID,
  IOMMU_VEVENT_VTD_FAULT_READ,
  IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP,
  IOMMU_VIOMMU_INVALIDATE_DATA_VTD_QI_EXP,
  IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP,
} from './viommu.js';
