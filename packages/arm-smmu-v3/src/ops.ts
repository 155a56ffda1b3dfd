/**
 * `arm_smmu_ops`: the driver operations shared by every SMMUv3 instance; the instance is
 * found from the device (`dev->iommu->iommu_dev`), as `iommu_get_iommu_dev` does.
 */
import { ENODEV, ENOMEM, EOPNOTSUPP, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_ALLOC_PASID } from '@iommufd/uapi';
import { iommuShouldFail, type Device, type IommuOps } from '@iommufd/driver-api';
import { ArmSmmuDomain, armSmmuBlockedDomain, masterOf, removeMasterDomain } from './domain.js';
import { armSmmuGetViommuSize, armSmmuHwInfo, armVsmmuInit } from './iommufd.js';
import { ArmSmmuMaster } from './master.js';
import { priResponse } from './pri.js';
import type { ArmSmmuV3 } from './smmu.js';

function smmuOf(dev: Device): ArmSmmuV3 {
  return dev.iommu as ArmSmmuV3;
}

/** The arm-smmu-v3 driver's `struct iommu_ops`. */
export const armSmmuV3Ops: IommuOps = {
  name: 'arm-smmu-v3',
  pgsizeBitmap: (1n << 12n) | (1n << 21n) | (1n << 30n),
  blockedDomain: armSmmuBlockedDomain,
  // The guest owns its CD table: PASID faults route to the RID's nested domain.
  userPasidTable: true,

  capable(dev, cap) {
    const master = masterOf(dev);
    switch (cap) {
      case 'CACHE_COHERENCY':
        // A coherent TCU implies coherent TBUs.
        return master.smmu.features.coherency;
      case 'ENFORCE_CACHE_COHERENCY':
        return master.canwbs;
      case 'NOEXEC':
      case 'DEFERRED_FLUSH':
        return true;
      case 'DIRTY_TRACKING':
        return master.smmu.features.hd && master.smmu.features.coherency;
      default:
        return false;
    }
  },

  probeDevice(dev) {
    const smmu = smmuOf(dev);
    const fw = smmu.firmwareStream(dev);
    if (fw === undefined) return ENODEV;
    if (iommuShouldFail(smmu, 'probe-device')) return ENOMEM;
    const master = new ArmSmmuMaster(smmu, dev, fw);
    const st = smmu.insertMaster(master);
    if (st !== 0) return st;
    dev.iommuPriv = master;
    return 0;
  },

  releaseDevice(dev) {
    const master = masterOf(dev);
    if (master === undefined) return;
    // Back to abort before the StreamID is forgotten.
    armSmmuBlockedDomain.ops.attachDev!(armSmmuBlockedDomain, dev);
    removeMasterDomain(master, master.domain, 0);
    master.smmu.removeMaster(master);
    master.freeCdTables();
    dev.iommuPriv = undefined;
  },

  hwInfo(dev, type) {
    const smmu = smmuOf(dev);
    return armSmmuHwInfo(smmu, type, smmu.impl && ((t) => smmu.impl!.hwInfo(t)));
  },

  domainAllocPagingFlags(dev, flags, userData) {
    const master = masterOf(dev);
    const smmu = master.smmu;
    const PAGING_FLAGS = IOMMU_HWPT_ALLOC_DIRTY_TRACKING | IOMMU_HWPT_ALLOC_PASID | IOMMU_HWPT_ALLOC_NEST_PARENT;
    if ((flags & ~PAGING_FLAGS) !== 0) return EOPNOTSUPP;
    if (userData !== undefined) return EOPNOTSUPP;
    let stage: 1 | 2;
    let nestParent = false;
    switch (flags) {
      case 0:
        // Prefer stage 1 when available.
        stage = smmu.features.transS1 ? 1 : 2;
        break;
      case IOMMU_HWPT_ALLOC_NEST_PARENT:
        if (!smmu.features.nesting) return EOPNOTSUPP;
        stage = 2;
        nestParent = true;
        break;
      case IOMMU_HWPT_ALLOC_DIRTY_TRACKING:
      case IOMMU_HWPT_ALLOC_DIRTY_TRACKING | IOMMU_HWPT_ALLOC_PASID:
      case IOMMU_HWPT_ALLOC_PASID:
        if (!smmu.features.transS1) return EOPNOTSUPP;
        // No HTTU in this SMMU: a dirty-tracking table could never report dirty pages.
        if ((flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING) !== 0 && !smmu.features.hd) return EOPNOTSUPP;
        stage = 1;
        break;
      default:
        return EOPNOTSUPP;
    }
    return ArmSmmuDomain.finalise(smmu, stage, nestParent);
  },

  pageResponse(dev, request, code) {
    const master = masterOf(dev);
    priResponse(master.smmu, master, request, code);
  },

  getViommuSize(dev, viommuType) {
    const smmu = masterOf(dev).smmu;
    return armSmmuGetViommuSize(smmu, viommuType, smmu.impl && ((t) => smmu.impl!.getViommuSize(t)));
  },

  viommuInit(viommu, parentDomain, userData) {
    const smmu = viommu.iommuDev as ArmSmmuV3;
    return armVsmmuInit(viommu, parentDomain, userData, smmu.impl && ((v, u) => smmu.impl!.vsmmuInit(v, u)));
  },
};
