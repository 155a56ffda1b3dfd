/**
 * Beyond Linux 6.17: a VT-d vIOMMU (reference §7). Linux's intel driver has no
 * `get_viommu_size`/`viommu_init`; this is the design a uAPI proposal would make (see the
 * package README): the vIOMMU sits on a second-stage nesting parent, vDEVICEs carry the
 * guest requester ID, nested domains are allocated from the vIOMMU with the guest DID, raw
 * guest invalidation descriptors are accepted through the vIOMMU's cache invalidation and
 * rewritten with host DIDs and SIDs, and unrecoverable faults of its nested domains are
 * reported as vEVENTs.
 */
import {
  IOMMUFD_VIOMMU,
  containerOf,
  coreMember,
  defineDriverStruct,
  dptr,
  iommuCopyStructFromFullUserArray,
  iommuCopyStructFromUser,
  pointee,
  VIOMMU_STRUCT_SIZE,
  viommuFindDev,
  viommuGetVdevId,
  viommuReportEvent,
  type Device,
  type Errno,
  type IommuDomain,
  type IommuDomainOps,
  type IommufdViommu,
  type IommufdViommuOps,
  type IommuUserData,
  type IommuUserDataArray,
  type Status,
} from '@iommufd/driver-api';
import {
  VTD_DESC,
  VtdDevTlbDesc,
  VtdIotlbDesc,
  VtdPdevTlbDesc,
  VtdPiotlbDesc,
} from '@iommufd/hw-model';
import { defineStruct, u32, u64, array, EINVAL, EIO, EOPNOTSUPP, IOMMU_HWPT_ALLOC_PASID } from '@iommufd/uapi';
import { DmarDomain, infoOf } from './domain.js';
import type { IntelIommu, VtdFaultLogEntry } from './iommu.js';
import { newNestedDomain, nestedDomainOps } from './nested.js';
import type { QiDesc } from './qi.js';

/** `IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP`: the experimental VT-d vIOMMU type (outside Linux's enum, which ends at 2). */
export const IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP = 0x8086;
/** `IOMMU_HWPT_DATA_VTD_S1_VDID_EXP`: nested HWPT data for a vIOMMU: `iommu_hwpt_vtd_s1_vdid`. */
export const IOMMU_HWPT_DATA_VTD_S1_VDID_EXP = 0x8086;
/** `IOMMU_VIOMMU_INVALIDATE_DATA_VTD_QI_EXP`: entries are raw 256-bit guest QI descriptors. */
export const IOMMU_VIOMMU_INVALIDATE_DATA_VTD_QI_EXP = 0x8086;
/** `IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP`: vEVENT records are `iommu_vevent_vtd_fault`. */
export const IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP = 0x8086;
/** `iommu_vevent_vtd_fault.flags`: the request carried a PASID. */
export const IOMMU_VEVENT_VTD_FAULT_PASID_VALID = 1 << 0;
/** `iommu_vevent_vtd_fault.flags`: the request was a read (otherwise a write). */
export const IOMMU_VEVENT_VTD_FAULT_READ = 1 << 1;

/**
 * `struct iommu_hwpt_vtd_s1_vdid` (24 bytes): `iommu_hwpt_vtd_s1` with the guest domain ID
 * where the original has `__reserved`, so the vIOMMU can map guest DIDs to host DIDs.
 */
export const iommu_hwpt_vtd_s1_vdid = defineStruct('iommu_hwpt_vtd_s1_vdid', [u64('flags'), u64('pgtbl_addr'), u32('addr_width'), u32('guest_did')]);

/** `struct iommu_viommu_vtd_invalidate` (32 bytes): one guest invalidation descriptor, little-endian qwords. */
export const iommu_viommu_vtd_invalidate = defineStruct('iommu_viommu_vtd_invalidate', [array('qw', 'u64', 4)]);

/** `struct iommu_vevent_vtd_fault` (24 bytes): an unrecoverable DMA fault of a nested domain. */
export const iommu_vevent_vtd_fault = defineStruct('iommu_vevent_vtd_fault', [u64('addr'), u32('virt_rid'), u32('pasid'), u32('reason'), u32('flags')]);

/** `struct intel_viommu`: the core struct first (VIOMMU_STRUCT_SIZE checks it). */
export const intel_viommu = defineDriverStruct('intel_viommu', [
  coreMember('core', IOMMUFD_VIOMMU),
  dptr('iommu', pointee<IntelIommu>()),
  dptr('s2_parent', pointee<DmarDomain>()),
  dptr('vdid_map', pointee<Map<number, Set<DmarDomain>>>()),
]);

function stateOf(viommu: IommufdViommu): { iommu: IntelIommu; parent: DmarDomain; vdids: Map<number, Set<DmarDomain>> } {
  const v = containerOf(viommu, intel_viommu, 'core');
  return { iommu: v.getPtr('iommu')!, parent: v.getPtr('s2_parent')!, vdids: v.getPtr('vdid_map')! };
}

/** `intel_iommu_get_viommu_size`: the experimental type on a unit with nesting support. */
export function intelGetViommuSize(dev: Device, viommuType: number): number {
  if (viommuType !== IOMMU_VIOMMU_TYPE_INTEL_VTD_EXP) return 0;
  const iommu = dev.iommu as IntelIommu;
  if (!iommu.nestedSupported) return 0;
  return VIOMMU_STRUCT_SIZE(intel_viommu, 'core');
}

/** `intel_iommu_viommu_init`: the parent must be a second-stage nesting parent of this unit. */
export function intelViommuInit(viommu: IommufdViommu, parentDomain: IommuDomain, userData: IommuUserData | undefined): Status {
  if (userData !== undefined && userData.len !== 0) return EOPNOTSUPP;
  const iommu = viommu.iommuDev as IntelIommu;
  if (!(parentDomain instanceof DmarDomain) || parentDomain.stage !== 'second-stage' || !parentDomain.nestedParent || parentDomain.iommu !== iommu) return EINVAL;
  const v = containerOf(viommu, intel_viommu, 'core');
  v.setPtr('iommu', iommu);
  v.setPtr('s2_parent', parentDomain);
  v.setPtr('vdid_map', new Map());
  viommu.ops = intelViommuOps;
  return 0;
}

/** Nested domains of a vIOMMU also leave its guest-DID table when freed. */
function viommuNestedOps(viommu: IommufdViommu): IommuDomainOps {
  return {
    ...nestedDomainOps,
    free(domain) {
      const d = domain as DmarDomain;
      for (const [vdid, set] of stateOf(viommu).vdids) {
        set.delete(d);
        if (set.size === 0) stateOf(viommu).vdids.delete(vdid);
      }
      nestedDomainOps.free?.(domain);
    },
  };
}

/** `intel_viommu_alloc_domain_nested`: a guest first stage tagged with its guest DID. */
function allocDomainNested(viommu: IommufdViommu, flags: number, userData: IommuUserData): IommuDomain | Errno {
  if ((flags & ~IOMMU_HWPT_ALLOC_PASID) !== 0) return EOPNOTSUPP;
  if (userData.type !== IOMMU_HWPT_DATA_VTD_S1_VDID_EXP) return EOPNOTSUPP;
  const data = iommuCopyStructFromUser(iommu_hwpt_vtd_s1_vdid, userData, IOMMU_HWPT_DATA_VTD_S1_VDID_EXP, 'guest_did');
  if (typeof data === 'number') return data;
  if (data.guest_did > 0xffff) return EINVAL;
  const st = stateOf(viommu);
  const d = newNestedDomain(st.iommu, st.parent, { flags: data.flags, pgtblAddr: data.pgtbl_addr, addrWidth: data.addr_width }, viommuNestedOps(viommu));
  if (typeof d === 'number') return d;
  d.faultReporter = (dev, fault) => reportFault(viommu, dev, fault);
  let set = st.vdids.get(data.guest_did);
  if (set === undefined) st.vdids.set(data.guest_did, (set = new Set()));
  set.add(d);
  return d;
}

/** The vEVENT of an unrecoverable fault: the guest sees its own requester ID. */
function reportFault(viommu: IommufdViommu, dev: Device, fault: VtdFaultLogEntry): void {
  const vrid = viommuGetVdevId(viommu, dev);
  if (typeof vrid === 'number') return;
  let flags = fault.read ? IOMMU_VEVENT_VTD_FAULT_READ : 0;
  if (fault.pasid !== undefined) flags |= IOMMU_VEVENT_VTD_FAULT_PASID_VALID;
  viommuReportEvent(
    viommu,
    IOMMU_VEVENTQ_TYPE_INTEL_VTD_EXP,
    iommu_vevent_vtd_fault.encode({ addr: fault.address, virt_rid: Number(vrid), pasid: fault.pasid ?? 0, reason: fault.reason, flags }),
  );
}

/** Converts one guest descriptor into host descriptors, or an errno (EIO: not forwardable; EINVAL: malformed). */
function convertGuestDescriptor(viommu: IommufdViommu, qw: readonly bigint[]): QiDesc[] | Errno {
  const st = stateOf(viommu);
  const iommu = st.iommu;
  const type = Number(qw[0]! & 0xfn);
  if (((qw[0]! >> 9n) & 7n) !== 0n) return EIO;
  const mamv = iommu.capField('MAMV');
  const rewriteForGuestDid = (vdid: number | undefined, pasid: number | undefined, build: (did: number, pasid: number) => QiDesc): QiDesc[] => {
    const out: QiDesc[] = [];
    for (const [g, set] of st.vdids) {
      if (vdid !== undefined && g !== vdid) continue;
      for (const d of set) {
        for (const tag of d.cacheTags) {
          if (tag.type !== 'IOTLB' || tag.iommu !== iommu) continue;
          if (pasid !== undefined && tag.pasid !== pasid) continue;
          out.push(build(tag.did, tag.pasid));
        }
      }
    }
    return out;
  };
  const withWords = (w: bigint[]): QiDesc => [w[0] ?? 0n, w[1] ?? 0n, 0n, 0n];
  switch (type) {
    case VTD_DESC.IOTLB: {
      if (qw[2] !== 0n || qw[3] !== 0n || VtdIotlbDesc.hasReservedBits(qw)) return EINVAL;
      const g = VtdIotlbDesc.f.G.get(qw);
      if (g === 0 || (g === 3 && VtdIotlbDesc.f.AM.get(qw) > mamv)) return EINVAL;
      // Guest DID → the host DID of every nested domain carrying it; global → all of this vIOMMU's.
      return rewriteForGuestDid(g === 1 ? undefined : VtdIotlbDesc.f.DID.get(qw), undefined, (did) => {
        const w = [qw[0]!, qw[1]!];
        VtdIotlbDesc.f.G.set(w, g === 1 ? 2 : g);
        VtdIotlbDesc.f.DID.set(w, did);
        VtdIotlbDesc.f.DR.set(w, iommu.capField('DRD'));
        VtdIotlbDesc.f.DW.set(w, iommu.capField('DWD'));
        return withWords(w);
      });
    }
    case VTD_DESC.PIOTLB: {
      if (qw[2] !== 0n || qw[3] !== 0n || VtdPiotlbDesc.hasReservedBits(qw)) return EINVAL;
      const g = VtdPiotlbDesc.f.G.get(qw);
      if (g < 2 || (g === 3 && VtdPiotlbDesc.f.AM.get(qw) > mamv)) return EINVAL;
      return rewriteForGuestDid(VtdPiotlbDesc.f.DID.get(qw), VtdPiotlbDesc.f.PASID.get(qw), (did) => {
        const w = [qw[0]!, qw[1]!];
        VtdPiotlbDesc.f.DID.set(w, did);
        return withWords(w);
      });
    }
    case VTD_DESC.DEV_TLB:
    case VTD_DESC.PDEV_TLB: {
      const layout = type === VTD_DESC.DEV_TLB ? VtdDevTlbDesc : VtdPdevTlbDesc;
      if (qw[2] !== 0n || qw[3] !== 0n || layout.hasReservedBits(qw)) return EINVAL;
      // The guest names its own requester ID; only a vDEVICE of this vIOMMU resolves.
      const dev = viommuFindDev(viommu, BigInt(layout.f.SID.get(qw)));
      if (dev === undefined) return EIO;
      const info = infoOf(dev);
      if (info === undefined) return EIO;
      if (!info.atsEnabled) return [];
      const w = [qw[0]!, qw[1]!];
      layout.f.SID.set(w, info.sid);
      const pfsid = iommu.pfsidOf(info);
      layout.f.PFSID_LO.set(w, pfsid & 0xf);
      layout.f.PFSID_HI.set(w, pfsid >> 4);
      layout.f.MIP.set(w, info.atsQdep >= 32 ? 0 : info.atsQdep);
      return [withWords(w)];
    }
    default:
      // Context/PASID caches and waits belong to the VMM's emulation; IEC and responses are not the guest's to send.
      return EIO;
  }
}

/** `intel_viommu_cache_invalidate`: guest descriptors rewritten and issued one entry at a time. */
function cacheInvalidate(viommu: IommufdViommu, array: IommuUserDataArray): Status {
  if (array.type !== IOMMU_VIOMMU_INVALIDATE_DATA_VTD_QI_EXP) {
    array.entryNum = 0;
    return EINVAL;
  }
  if (array.entryNum === 0) return 0;
  const entries = iommuCopyStructFromFullUserArray(iommu_viommu_vtd_invalidate, array, IOMMU_VIOMMU_INVALIDATE_DATA_VTD_QI_EXP);
  if (typeof entries === 'number') {
    array.entryNum = 0;
    return entries;
  }
  const iommu = stateOf(viommu).iommu;
  let done = 0;
  let rc: Status = 0;
  for (const e of entries) {
    const host = convertGuestDescriptor(viommu, e.qw);
    if (typeof host === 'number') {
      rc = host;
      break;
    }
    if (host.length > 0 && iommu.qi.submitSync(host) !== 0) {
      rc = EIO;
      break;
    }
    done++;
  }
  array.entryNum = done;
  return rc;
}

/** `vdevice_init`: the virtual ID is the guest requester ID (16 bits). */
function vdeviceInit(vdev: Parameters<NonNullable<IommufdViommuOps['vdeviceInit']>>[0]): Status {
  return vdev.virtId > 0xffffn ? EINVAL : 0;
}

/** The experimental VT-d vIOMMU's ops. */
export const intelViommuOps: IommufdViommuOps = {
  destroy(viommu) {
    stateOf(viommu).vdids.clear();
  },
  allocDomainNested,
  cacheInvalidate,
  vdeviceInit,
};
