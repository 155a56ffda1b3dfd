/**
 * Nested domains (nested.c): a guest first-stage table (`iommu_hwpt_vtd_s1`) over a
 * second-stage nesting parent, and `IOMMU_HWPT_INVALIDATE` of `iommu_hwpt_vtd_s1_invalidate`
 * entries turned into cache-tag flushes.
 */
import { iommuCopyStructFromUser, iommuCopyStructFromUserArray, iommuShouldFail, type Errno, type IommuDomain, type IommuDomainOps, type IommuUserData, type IommuUserDataArray, type Status } from '@iommufd/driver-api';
import {
  EINVAL,
  ENOMEM,
  EOPNOTSUPP,
  IOMMU_HWPT_ALLOC_PASID,
  IOMMU_HWPT_DATA_VTD_S1,
  IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
  IOMMU_VTD_INV_FLAGS_LEAF,
  iommu_hwpt_vtd_s1,
  iommu_hwpt_vtd_s1_invalidate,
} from '@iommufd/uapi';
import { DmarDomain, nestedAttachOps, type VtdS1Config } from './domain.js';
import type { IntelIommu } from './iommu.js';

const U64_MAX = (1n << 64n) - 1n;

/** `intel_nested_flush_cache`: [addr, addr + npages·4 KiB − 1] in u64 arithmetic, U64_MAX pages = all. */
export function intelNestedFlushCache(domain: DmarDomain, addr: bigint, npages: bigint, ih: number): void {
  const end = npages === U64_MAX ? U64_MAX : BigInt.asUintN(64, addr + BigInt.asUintN(64, npages << 12n) - 1n);
  domain.flushRange(addr, end, ih);
}

/** `intel_nested_cache_invalidate_user` */
function cacheInvalidateUser(domain: IommuDomain, array: IommuUserDataArray): Status {
  const d = domain as DmarDomain;
  let processed = 0;
  let ret: Status = 0;
  if (array.type !== IOMMU_HWPT_INVALIDATE_DATA_VTD_S1) ret = EINVAL;
  else {
    for (let index = 0; index < array.entryNum; index++) {
      const inv = iommuCopyStructFromUserArray(iommu_hwpt_vtd_s1_invalidate, array, IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, index, '__reserved');
      if (typeof inv === 'number') {
        ret = inv;
        break;
      }
      if ((inv.flags & ~IOMMU_VTD_INV_FLAGS_LEAF) !== 0 || inv.__reserved !== 0) {
        ret = EOPNOTSUPP;
        break;
      }
      if ((inv.addr & 0xfffn) !== 0n || (inv.npages === U64_MAX && inv.addr !== 0n)) {
        ret = EINVAL;
        break;
      }
      intelNestedFlushCache(d, inv.addr, inv.npages, inv.flags & IOMMU_VTD_INV_FLAGS_LEAF);
      processed++;
    }
  }
  array.entryNum = processed;
  return ret;
}

/** `intel_nested_domain_ops` */
export const nestedDomainOps: IommuDomainOps = { ...nestedAttachOps, cacheInvalidateUser };

/** `intel_iommu_domain_alloc_nested`, with the checks and errno of nested.c in their order. */
export function intelIommuDomainAllocNested(iommu: IntelIommu, parent: IommuDomain, flags: number, userData: IommuUserData): DmarDomain | Errno {
  if (!iommu.nestedSupported || (flags & ~IOMMU_HWPT_ALLOC_PASID) !== 0) return EOPNOTSUPP;
  if (userData.type !== IOMMU_HWPT_DATA_VTD_S1) return EOPNOTSUPP;
  if (!(parent instanceof DmarDomain) || parent.stage !== 'second-stage' || !parent.nestedParent) return EINVAL;
  const vtd = iommuCopyStructFromUser(iommu_hwpt_vtd_s1, userData, IOMMU_HWPT_DATA_VTD_S1, '__reserved');
  if (typeof vtd === 'number') return vtd;
  return newNestedDomain(iommu, parent, { flags: vtd.flags, pgtblAddr: vtd.pgtbl_addr, addrWidth: vtd.addr_width }, nestedDomainOps);
}

/** The `kzalloc` + initialisation part of nested allocation, shared with the vIOMMU path. */
export function newNestedDomain(iommu: IntelIommu, parent: DmarDomain, s1: VtdS1Config, ops: IommuDomainOps): DmarDomain | Errno {
  if (iommuShouldFail(iommu, 'domain-alloc')) return ENOMEM;
  const domain = new DmarDomain(
    'nested',
    'nested',
    ops,
    0n,
    parent.geometry,
    iommu,
    undefined,
    parent.agaw,
    false,
    undefined,
    parent,
    s1,
  );
  parent.nestedChildren.add(domain);
  return domain;
}
