/**
 * `@iommufd/arm-smmu-v3`: the arm-smmu-v3 iommufd driver for the SMMUv3 model — probe and
 * bring-up from the ID registers, stream table and hitless STE/CD updates, CMDQ with
 * CMD_SYNC and error recovery, stage-1/stage-2 paging domains on AArch64 io page tables, and
 * the iommufd vIOMMU side (hw_info, nested domains from guest STEs, invalidation
 * conversion, vEVENT forwarding).
 *
 * @packageDocumentation
 */
export { ArmSmmuProbeError, ArmSmmuV3, armSmmuV3Probe } from './smmu.js';
export type { ArmSmmuFeatures, ArmSmmuV3ProbeOptions, AtsControl, FirmwareStream, PriPageRequest } from './smmu.js';
export { armSmmuV3Ops } from './ops.js';
export { ArmSmmuDomain, armSmmuBlockedDomain } from './domain.js';
export { ArmSmmuMaster } from './master.js';
export {
  ArmSmmuNestedDomain,
  STRTAB_STE_0_NESTING_ALLOWED,
  STRTAB_STE_1_NESTING_ALLOWED,
  arm_vsmmu,
  convertUserCmd,
  validateVste,
} from './iommufd.js';
export type { ArmVsmmu } from './iommufd.js';
export { buildCmd, ATC_INV_SIZE_ALL } from './cmds.js';
export type { CmdqEnt, SmmuCommand, TlbiFields } from './cmds.js';
export { CMDQ_BATCH_ENTRIES } from './cmdq.js';
export { ArmLpaeIoPgtable, ARM_LPAE_MAIR, IOMMU_PRIV } from './io-pgtable-arm.js';
export type { ArmLpaeTcr, IoPgtableCfg } from './io-pgtable-arm.js';
export { makeAbortSte, makeBypassSte, makeCdtableSte, makeNestedCdTableSte, makeS1Cd, makeS2DomainSte, S1DSS } from './ste.js';
export { Tegra241Cmdqv, tegra241CmdqvImpl, tegra241_vcmdq, tegra241_vintf, tegra241_vintf_sid } from './tegra241-cmdqv.js';
export type { SmmuImpl } from './smmu.js';
