/** `intel_iommu_ops`: the driver's entry points as the core calls them. */
import {
  iommuShouldFail,
  type Device,
  type Errno,
  type HwInfoResult,
  type IommuCap,
  type IommuDomain,
  type IommuOps,
  type IommuUserData,
  type IopfPageRequest,
  type Status,
} from '@iommufd/driver-api';
import {
  ENODEV,
  ENOMEM,
  EOPNOTSUPP,
  IOMMU_HW_INFO_TYPE_DEFAULT,
  IOMMU_HW_INFO_TYPE_INTEL_VTD,
  IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17,
  iommu_hw_info_vtd,
} from '@iommufd/uapi';
import { allocFirstStage, allocSecondStage, blockedDomain, deviceBlockTranslation, infoOf } from './domain.js';
import type { IntelIommu } from './iommu.js';
import { intelIommuDomainAllocNested } from './nested.js';
import { intelGetViommuSize, intelViommuInit } from './viommu.js';

function unitOf(dev: Device): IntelIommu {
  return dev.iommu as IntelIommu;
}

/** `intel_iommu_capable` */
function capable(dev: Device, cap: IommuCap): boolean {
  const iommu = unitOf(dev);
  switch (cap) {
    case 'CACHE_COHERENCY':
    case 'DEFERRED_FLUSH':
      return true;
    case 'ENFORCE_CACHE_COHERENCY':
      return iommu.ecapField('SC') === 1;
    case 'DIRTY_TRACKING':
      return iommu.ssadsSupported;
    case 'PCI_ATS_SUPPORTED':
      return infoOf(dev)?.atsSupported ?? false;
    default:
      return false;
  }
}

/** `intel_iommu_probe_device` */
function probeDevice(dev: Device): Status {
  const r = unitOf(dev).probeDevice(dev);
  if (typeof r === 'number') return r;
  dev.iommuPriv = r;
  return 0;
}

/** `intel_iommu_release_device` */
function releaseDevice(dev: Device): void {
  const info = infoOf(dev);
  if (info === undefined) return;
  for (const pasid of [...info.pasidDomains.keys()]) {
    blockedDomain.ops.setDevPasid?.(blockedDomain, dev, pasid, info.pasidDomains.get(pasid));
  }
  deviceBlockTranslation(info);
  info.iommu.releaseDevice(info);
  dev.iommuPriv = undefined;
}

/** `intel_iommu_hw_info` */
function hwInfo(dev: Device, type: number): HwInfoResult | Errno {
  if (type !== IOMMU_HW_INFO_TYPE_DEFAULT && type !== IOMMU_HW_INFO_TYPE_INTEL_VTD) return EOPNOTSUPP;
  const iommu = unitOf(dev);
  if (iommuShouldFail(iommu, 'hw-info')) return ENOMEM;
  return {
    type: IOMMU_HW_INFO_TYPE_INTEL_VTD,
    // The erratum flag is reported on every platform, as the kernel does.
    data: iommu_hw_info_vtd.encode({ flags: IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17, __reserved: 0, cap_reg: iommu.cap, ecap_reg: iommu.ecap }),
  };
}

/** `intel_iommu_domain_alloc_paging_flags`: first stage when possible, else second stage. */
function domainAllocPagingFlags(dev: Device, flags: number, userData: IommuUserData | undefined): IommuDomain | Errno {
  if (infoOf(dev) === undefined) return ENODEV;
  if (userData !== undefined) return EOPNOTSUPP;
  const iommu = unitOf(dev);
  const fs = allocFirstStage(iommu, flags);
  if (fs !== EOPNOTSUPP) {
    if (typeof fs !== 'number' && iommuShouldFail(iommu, 'domain-alloc')) {
      fs.pgtable?.destroy();
      return ENOMEM;
    }
    return fs;
  }
  const ss = allocSecondStage(iommu, flags);
  if (typeof ss !== 'number' && iommuShouldFail(iommu, 'domain-alloc')) {
    ss.pgtable?.destroy();
    return ENOMEM;
  }
  return ss;
}

/** `intel_iommu_page_response` */
function pageResponse(dev: Device, request: IopfPageRequest, code: number): void {
  const info = infoOf(dev);
  if (info === undefined) return;
  info.iommu.pageResponse(info, request, code);
}

/** The intel-vtd driver's operations, shared by every {@link IntelIommu}. */
export const intelIommuOps: IommuOps = {
  name: 'intel-iommu',
  capable,
  probeDevice,
  releaseDevice,
  hwInfo,
  domainAllocPagingFlags,
  domainAllocNested: (dev, parent, flags, userData) => intelIommuDomainAllocNested(unitOf(dev), parent, flags, userData),
  getViommuSize: intelGetViommuSize,
  viommuInit: intelViommuInit,
  pgsizeBitmap: (1n << 12n) | (1n << 21n) | (1n << 30n),
  blockedDomain,
  pageResponse,
};
