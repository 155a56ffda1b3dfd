/**
 * Domains (`struct dmar_domain`): first-stage and second-stage paging domains, nested
 * domains over a nesting parent, and the blocking domain; attach / set_dev_pasid /
 * detach with cache tags and PASID entries, map/unmap with the invalidations of Linux 6.17.
 */
import {
  IOMMU_DIRTY_NO_CLEAR,
  IOMMU_WRITE,
  type Device,
  type Errno,
  type IommuDirtyBitmap,
  type IommuDirtyOps,
  type IommuDomain,
  type IommuDomainGeometry,
  type IommuDomainOps,
  type IopfHandler,
  type IommuOps,
  type Status,
} from '@iommufd/driver-api';
import { VTD_PGTT } from '@iommufd/hw-model';
import { EFAULT, EINVAL, ENODEV, ENOSPC, EOPNOTSUPP } from '@iommufd/uapi';
import { cacheTagAssign, cacheTagFlushRange, cacheTagUnassign, type CacheTag } from './cache-tags.js';
import type { DeviceDomainInfo, IntelIommu, VtdFaultLogEntry } from './iommu.js';
import { IOMMU_NO_PASID } from './iommu.js';
import { pasidSetupDirtyTracking, pasidSetupEntry, pasidTearDownEntry, type PasidEntryFields } from './pasid.js';
import { IoPageTable } from './pgtable.js';

/** What kind of translation a domain does. */
export type DmarDomainStage = 'first-stage' | 'second-stage' | 'nested' | 'blocked';

/** `struct iommu_hwpt_vtd_s1` as the driver keeps it (`domain->s1_cfg`). */
export interface VtdS1Config {
  /** IOMMU_VTD_S1_* flags. */
  readonly flags: bigint;
  /** GPA of the guest first-stage root. */
  readonly pgtblAddr: bigint;
  /** 48 or 57. */
  readonly addrWidth: number;
}

const ULONG_MAX = (1n << 64n) - 1n;

/** `info_of(dev)` */
export function infoOf(dev: Device): DeviceDomainInfo | undefined {
  return dev.iommuPriv as DeviceDomainInfo | undefined;
}

/** A VT-d domain. */
export class DmarDomain implements IommuDomain {
  /** Core-set. */
  owner?: IommuOps;
  /** Core-set. */
  cookie?: unknown;
  /** Core-set when the HWPT has a FAULT object. */
  iopfHandler?: IopfHandler | undefined;
  /** Cache tags of every attachment. */
  readonly cacheTags: CacheTag[] = [];
  /** Per-unit DID and its attachment count (`domain->iommu_array`). */
  readonly iommuDids = new Map<IntelIommu, { did: number; refcnt: number }>();
  /** Devices attached at their RID. */
  readonly devices = new Set<DeviceDomainInfo>();
  /** (device, PASID) attachments other than the RID. */
  readonly devPasids = new Set<{ info: DeviceDomainInfo; pasid: number }>();
  /** Nested domains over this nesting parent (for dirty tracking of their entries). */
  readonly nestedChildren = new Set<DmarDomain>();
  /** SSADE state. */
  dirtyTracking = false;
  /** `force_snooping` */
  forceSnooping = false;
  /** Mapped at least once (enforce_cache_coherency must come first). */
  hasMappings = false;
  /** Set on nested domains allocated through a vIOMMU: reports unrecoverable faults as vEVENTs. */
  faultReporter: ((dev: Device, fault: VtdFaultLogEntry) => void) | undefined;

  constructor(
    /** Core domain type. */
    readonly type: 'paging' | 'nested' | 'blocked',
    /** Stage. */
    readonly stage: DmarDomainStage,
    /** Ops table. */
    readonly ops: IommuDomainOps,
    /** Page sizes. */
    readonly pgsizeBitmap: bigint,
    /** IOVA window. */
    readonly geometry: IommuDomainGeometry,
    /** The unit the domain was allocated for (agaw, capabilities). */
    readonly iommu: IntelIommu | undefined,
    /** Its page table (paging domains). */
    readonly pgtable: IoPageTable | undefined,
    /** `agaw` of the page table. */
    readonly agaw: number,
    /** Allocated with NEST_PARENT. */
    readonly nestedParent: boolean,
    /** Dirty-tracking ops (DIRTY_TRACKING allocation). */
    readonly dirtyOps: IommuDirtyOps | undefined,
    /** Parent of a nested domain. */
    readonly s2Domain: DmarDomain | undefined,
    /** Guest stage-1 configuration of a nested domain. */
    readonly s1Cfg: VtdS1Config | undefined,
  ) {}

  /** `intel_domain_use_piotlb`: FS and nested domains are flushed with PASID-based IOTLB descriptors. */
  get usePiotlb(): boolean {
    return this.stage === 'first-stage' || this.stage === 'nested';
  }

  /** `domain_id_iommu` */
  didOn(iommu: IntelIommu): number | undefined {
    return this.iommuDids.get(iommu)?.did;
  }

  /** `cache_tag_flush_range` for this domain. */
  flushRange(start: bigint, end: bigint, ih: number): void {
    cacheTagFlushRange(this.cacheTags, this.usePiotlb, start, end, ih);
  }
}

/** `domain_attach_iommu`: a refcounted DID per (domain, unit). */
function domainAttachIommu(domain: DmarDomain, iommu: IntelIommu): { did: number } | Errno {
  const cur = domain.iommuDids.get(iommu);
  if (cur !== undefined) {
    cur.refcnt++;
    return { did: cur.did };
  }
  const did = iommu.allocDid();
  if (did === undefined) return ENOSPC;
  domain.iommuDids.set(iommu, { did, refcnt: 1 });
  return { did };
}

/** `domain_detach_iommu` */
function domainDetachIommu(domain: DmarDomain, iommu: IntelIommu): void {
  const cur = domain.iommuDids.get(iommu);
  if (cur === undefined) return;
  if (--cur.refcnt === 0) {
    iommu.freeDid(cur.did);
    domain.iommuDids.delete(iommu);
  }
}

/** `cache_tag_assign_domain`: IOTLB (+DEVTLB) tags, plus NESTING_* tags on a nested domain's parent. */
function cacheTagAssignDomain(domain: DmarDomain, info: DeviceDomainInfo, pasid: number, did: number): void {
  cacheTagAssign(domain.cacheTags, 'IOTLB', info.iommu, did, pasid, undefined);
  if (info.atsEnabled) cacheTagAssign(domain.cacheTags, 'DEVTLB', info.iommu, did, pasid, info);
  const parent = domain.s2Domain;
  if (parent === undefined) return;
  cacheTagAssign(parent.cacheTags, 'NESTING_IOTLB', info.iommu, did, pasid, undefined);
  if (info.atsEnabled) cacheTagAssign(parent.cacheTags, 'NESTING_DEVTLB', info.iommu, did, pasid, info);
}

/** `cache_tag_unassign_domain` */
function cacheTagUnassignDomain(domain: DmarDomain, info: DeviceDomainInfo, pasid: number, did: number): void {
  cacheTagUnassign(domain.cacheTags, 'IOTLB', info.iommu, did, pasid, undefined);
  if (info.atsEnabled) cacheTagUnassign(domain.cacheTags, 'DEVTLB', info.iommu, did, pasid, info);
  const parent = domain.s2Domain;
  if (parent === undefined) return;
  cacheTagUnassign(parent.cacheTags, 'NESTING_IOTLB', info.iommu, did, pasid, undefined);
  if (info.atsEnabled) cacheTagUnassign(parent.cacheTags, 'NESTING_DEVTLB', info.iommu, did, pasid, info);
}

/** `iopf_for_domain_set`: a domain with a fault handler needs PRI (-ENODEV otherwise). */
function iopfForDomainSet(domain: DmarDomain, info: DeviceDomainInfo): Status {
  if (domain.iopfHandler === undefined) return 0;
  if (!info.priSupported) return ENODEV;
  info.iopfRefcount++;
  return 0;
}

/** `iopf_for_domain_remove` */
function iopfForDomainRemove(domain: DmarDomain, info: DeviceDomainInfo): void {
  if (domain.iopfHandler !== undefined && info.iopfRefcount > 0) info.iopfRefcount--;
}

/** `paging_domain_compatible`: may this unit use `domain`'s page table? (-EINVAL if not) */
export function pagingDomainCompatible(domain: DmarDomain, iommu: IntelIommu): Status {
  if (domain.stage === 'first-stage') {
    if (!iommu.smSupported || iommu.ecapField('FLTS') === 0) return EINVAL;
    const has1g = (domain.pgsizeBitmap & (1n << 30n)) !== 0n;
    if (has1g !== (iommu.capField('FS1GP') === 1)) return EINVAL;
  } else if (domain.stage === 'second-stage') {
    if (domain.dirtyOps !== undefined && !iommu.ssadsSupported) return EINVAL;
    if (domain.nestedParent && !iommu.nestedSupported) return EINVAL;
    if (iommu.smSupported && iommu.ecapField('SLTS') === 0) return EINVAL;
    if (domain.forceSnooping && iommu.ecapField('SC') === 0) return EINVAL;
  } else return EINVAL;
  if (domain.agaw > iommu.agaw) return EINVAL;
  return 0;
}

/** The PASID entry fields of a paging or nested domain (reference §2.6). */
function pasidFieldsFor(domain: DmarDomain, iommu: IntelIommu, did: number): PasidEntryFields {
  const pwsnp = iommu.coherent ? 1 : 0;
  if (domain.stage === 'first-stage') {
    return {
      PGTT: VTD_PGTT.FIRST_STAGE,
      FSPTPTR: domain.pgtable!.root,
      FSPM: domain.pgtable!.levels === 5 ? 1 : 0,
      DID: did,
      AW: iommu.agaw,
      PWSNP: pwsnp,
      PGSNP: domain.forceSnooping ? 1 : 0,
    };
  }
  if (domain.stage === 'second-stage') {
    return {
      PGTT: VTD_PGTT.SECOND_STAGE,
      SSPTPTR: domain.pgtable!.root,
      AW: domain.agaw,
      DID: did,
      PWSNP: pwsnp,
      SSADE: domain.dirtyTracking ? 1 : 0,
    };
  }
  const s1 = domain.s1Cfg!;
  const s2 = domain.s2Domain!;
  const sre = (s1.flags & 1n) !== 0n;
  return {
    PGTT: VTD_PGTT.NESTED,
    FSPM: s1.addrWidth === 57 ? 1 : 0,
    FSPTPTR: s1.pgtblAddr & ((1n << 64n) - 0x1000n),
    SRE: sre ? 1 : 0,
    WPE: sre && (s1.flags & 4n) !== 0n ? 1 : 0,
    EAFE: (s1.flags & 2n) !== 0n ? 1 : 0,
    PGSNP: s2.forceSnooping ? 1 : 0,
    SSPTPTR: s2.pgtable!.root,
    DID: did,
    AW: s2.agaw,
    PWSNP: pwsnp,
    SSADE: s2.dirtyTracking ? 1 : 0,
  };
}

/** `intel_pasid_setup_nested`'s checks of the guest configuration. */
function nestedConfigCheck(domain: DmarDomain, iommu: IntelIommu): Status {
  const s1 = domain.s1Cfg!;
  if (s1.addrWidth === 57) {
    if (iommu.capField('FS5LP') === 0) return EINVAL;
  } else if (s1.addrWidth !== 48) return EINVAL;
  if ((s1.flags & 1n) !== 0n && iommu.ecapField('SRS') === 0) return EINVAL;
  if ((s1.flags & 2n) !== 0n && iommu.ecapField('EAFS') === 0) return EINVAL;
  return 0;
}

/** `device_block_translation`: tear down the RID entry and forget the attached domain. */
export function deviceBlockTranslation(info: DeviceDomainInfo): void {
  if (info.iommu.smSupported) pasidTearDownEntry(info.iommu, info, IOMMU_NO_PASID);
  else info.iommu.domainContextClear(info);
  const old = info.domain;
  if (old === undefined) return;
  const did = old.didOn(info.iommu);
  if (did !== undefined) cacheTagUnassignDomain(old, info, IOMMU_NO_PASID, did);
  iopfForDomainRemove(old, info);
  domainDetachIommu(old, info.iommu);
  old.devices.delete(info);
  info.domain = undefined;
}

/**
 * The common part of attaching (device, PASID) to a paging or nested domain: compatibility
 * and guest-configuration checks, DID, IOPF, cache tags, then the PASID entry — set up, or
 * replaced in place when `oldDid` names the domain currently there. Undone on failure.
 */
function domainAddDevPasid(d: DmarDomain, info: DeviceDomainInfo, pasid: number, oldDid: number | undefined): Status {
  const iommu = info.iommu;
  const compat = pagingDomainCompatible(d.stage === 'nested' ? d.s2Domain! : d, iommu);
  if (compat !== 0) return compat;
  if (d.stage === 'nested') {
    const c = nestedConfigCheck(d, iommu);
    if (c !== 0) return c;
  }
  const attached = domainAttachIommu(d, iommu);
  if (typeof attached === 'number') return attached;
  const did = attached.did;
  const iopf = iopfForDomainSet(d, info);
  if (iopf !== 0) {
    domainDetachIommu(d, iommu);
    return iopf;
  }
  cacheTagAssignDomain(d, info, pasid, did);
  let rc: Status = 0;
  if (iommu.smSupported) rc = pasidSetupEntry(iommu, info, pasid, pasidFieldsFor(d, iommu, did), oldDid);
  else iommu.domainContextMapping(info, did, d.pgtable!.root, d.agaw);
  if (rc !== 0) {
    cacheTagUnassignDomain(d, info, pasid, did);
    iopfForDomainRemove(d, info);
    domainDetachIommu(d, iommu);
  }
  return rc;
}

/** `intel_iommu_attach_device` / `intel_nested_attach_dev`: block, then set up the RID entry. */
function attachDev(domain: IommuDomain, dev: Device): Status {
  const d = domain as DmarDomain;
  const info = infoOf(dev);
  if (info === undefined) return ENODEV;
  const old = info.domain;
  deviceBlockTranslation(info);
  const rc = domainAddDevPasid(d, info, IOMMU_NO_PASID, undefined);
  if (rc !== 0) {
    // A failed attach leaves the device translating through the domain it had (Linux's
    // __iommu_group_set_domain_internal re-attaches group->domain in err_revert); the core
    // here reverts only the devices before the failing one, so the driver restores it.
    if (old !== undefined && domainAddDevPasid(old, info, IOMMU_NO_PASID, undefined) === 0) {
      info.domain = old;
      old.devices.add(info);
    }
    return rc;
  }
  info.domain = d;
  d.devices.add(info);
  return 0;
}

/** `intel_iommu_set_dev_pasid` / `intel_nested_set_dev_pasid`. */
function setDevPasid(domain: IommuDomain, dev: Device, pasid: number, old: IommuDomain | undefined): Status {
  const d = domain as DmarDomain;
  const info = infoOf(dev);
  if (info === undefined) return ENODEV;
  if (!info.iommu.pasidSupported || !info.pasidSupported) return EOPNOTSUPP;
  if (d.stage === 'nested' ? d.s2Domain!.dirtyOps !== undefined : d.dirtyOps !== undefined) return EINVAL;
  const oldD = old as DmarDomain | undefined;
  const rc = domainAddDevPasid(d, info, pasid, oldD?.didOn(info.iommu));
  if (rc !== 0) return rc;
  if (oldD !== undefined) domainRemoveDevPasid(oldD, info, pasid);
  d.devPasids.add({ info, pasid });
  info.pasidDomains.set(pasid, d);
  return 0;
}

/** `domain_remove_dev_pasid` */
function domainRemoveDevPasid(domain: DmarDomain, info: DeviceDomainInfo, pasid: number): void {
  for (const e of domain.devPasids) {
    if (e.info === info && e.pasid === pasid) {
      domain.devPasids.delete(e);
      const did = domain.didOn(info.iommu);
      if (did !== undefined) cacheTagUnassignDomain(domain, info, pasid, did);
      iopfForDomainRemove(domain, info);
      domainDetachIommu(domain, info.iommu);
      break;
    }
  }
  if (info.pasidDomains.get(pasid) === domain) info.pasidDomains.delete(pasid);
}

/** The blocking domain's ops: attach = block the RID; set_dev_pasid = tear the PASID down. */
const blockedOps: IommuDomainOps = {
  attachDev(_domain, dev) {
    const info = infoOf(dev);
    if (info === undefined) return ENODEV;
    deviceBlockTranslation(info);
    return 0;
  },
  setDevPasid(_domain, dev, pasid, old) {
    const info = infoOf(dev);
    if (info === undefined) return ENODEV;
    pasidTearDownEntry(info.iommu, info, pasid);
    if (old !== undefined) domainRemoveDevPasid(old as DmarDomain, info, pasid);
    return 0;
  },
};

/** `blocking_domain` */
export const blockedDomain = new DmarDomain(
  'blocked',
  'blocked',
  blockedOps,
  0n,
  { apertureStart: 0n, apertureEnd: 0n, forceAperture: true },
  undefined,
  undefined,
  0,
  false,
  undefined,
  undefined,
  undefined,
);

/** `intel_iommu_map_pages` */
function mapPages(domain: IommuDomain, iova: bigint, paddr: bigint, pgsize: bigint, pgcount: number, prot: number): { mapped: bigint; status: Status } {
  const d = domain as DmarDomain;
  const size = pgsize * BigInt(pgcount);
  if (((iova | paddr) & (pgsize - 1n)) !== 0n) return { mapped: 0n, status: EINVAL };
  // Erratum 772415/SPR17: a nesting parent must not hold read-only mappings.
  if (d.nestedParent && (prot & IOMMU_WRITE) === 0) return { mapped: 0n, status: EINVAL };
  if (iova + size - 1n > d.geometry.apertureEnd) return { mapped: 0n, status: EFAULT };
  const freelist: bigint[] = [];
  const rc = d.pgtable!.map(iova, paddr, size, prot, d.forceSnooping && d.stage === 'second-stage', freelist);
  if (freelist.length > 0) {
    // Small-page tables replaced by a superpage may still be cached as paging structures.
    d.flushRange(iova, iova + size - 1n, 0);
    d.pgtable!.freeTables(freelist);
  }
  if (rc !== 0) return { mapped: 0n, status: rc };
  d.hasMappings = true;
  // iotlb_sync_map: caching mode makes hardware cache non-present entries (not for first stage).
  const iommu = d.iommu!;
  if (iommu.capField('CM') === 1 && d.stage !== 'first-stage') d.flushRange(iova, iova + size - 1n, 0);
  else iommu.flushWriteBuffer();
  return { mapped: size, status: 0 };
}

/** `intel_iommu_unmap_pages` + `intel_iommu_tlb_sync`. */
function unmapPages(domain: IommuDomain, iova: bigint, pgsize: bigint, pgcount: number): bigint {
  const d = domain as DmarDomain;
  const pt = d.pgtable!;
  let size = pgsize * BigInt(pgcount);
  // The kernel unmaps a whole large page when asked for part of it.
  const leaf = pt.leafSizeAt(iova);
  if (size < leaf) size = leaf;
  const freelist = pt.unmap(iova, iova + size - 1n);
  d.flushRange(iova, iova + size - 1n, freelist.length === 0 ? 1 : 0);
  pt.freeTables(freelist);
  return size;
}

function iovaToPhys(domain: IommuDomain, iova: bigint): bigint {
  return (domain as DmarDomain).pgtable?.iovaToPhys(iova) ?? 0n;
}

/** `intel_iommu_enforce_cache_coherency`: needs ECAP.SC and no mapping yet on a second-stage domain. */
function enforceCacheCoherency(domain: IommuDomain): boolean {
  const d = domain as DmarDomain;
  const iommu = d.iommu!;
  if (iommu.ecapField('SC') === 0) return false;
  if (d.stage === 'second-stage' && d.hasMappings) return false;
  d.forceSnooping = true;
  return true;
}

/** `intel_iommu_domain_free`: tables freed; a nested domain unlinks from its parent. */
function freeDomain(domain: IommuDomain): void {
  const d = domain as DmarDomain;
  d.pgtable?.destroy();
  d.s2Domain?.nestedChildren.delete(d);
}

/** `intel_iommu_set_dirty_tracking`: SSADE on every entry of the domain and its nested children. */
function setDirtyTracking(domain: IommuDomain, enabled: boolean): Status {
  const d = domain as DmarDomain;
  if (d.dirtyTracking === enabled) return 0;
  const done: Array<{ info: DeviceDomainInfo; pasid: number }> = [];
  const targets: Array<{ info: DeviceDomainInfo; pasid: number }> = [];
  for (const info of d.devices) targets.push({ info, pasid: IOMMU_NO_PASID });
  for (const child of d.nestedChildren) for (const info of child.devices) targets.push({ info, pasid: IOMMU_NO_PASID });
  for (const t of targets) {
    const rc = pasidSetupDirtyTracking(t.info.iommu, t.info, t.pasid, enabled);
    if (rc !== 0) {
      for (const u of done) pasidSetupDirtyTracking(u.info.iommu, u.info, u.pasid, !enabled);
      return rc;
    }
    done.push(t);
  }
  d.dirtyTracking = enabled;
  return 0;
}

/** `intel_iommu_read_and_clear_dirty` (+ the IOTLB flush iommufd's gather would do). */
function readAndClearDirty(domain: IommuDomain, iova: bigint, size: bigint, flags: number, dirty: IommuDirtyBitmap): Status {
  const d = domain as DmarDomain;
  if (!d.dirtyTracking) return EINVAL;
  const cleared = d.pgtable!.readAndClearDirty(iova, size, (flags & IOMMU_DIRTY_NO_CLEAR) !== 0, (a, l) => dirty.record(a, l));
  // Cleared D bits only take effect once cached translations that already set them are gone.
  if (cleared) d.flushRange(iova, iova + size - 1n, 0);
  return 0;
}

/** Dirty-tracking ops of second-stage domains allocated with DIRTY_TRACKING. */
export const intelDirtyOps: IommuDirtyOps = { setDirtyTracking, readAndClearDirty };

/** `intel_fs_paging_domain_ops` / `intel_ss_paging_domain_ops` (same entry points here). */
export const pagingDomainOps: IommuDomainOps = {
  attachDev,
  setDevPasid,
  mapPages,
  unmapPages,
  iovaToPhys,
  enforceCacheCoherency,
  free: freeDomain,
};

/** Attach / PASID attach / free of nested domains (their cache invalidation is in nested.ts). */
export const nestedAttachOps: Pick<IommuDomainOps, 'attachDev' | 'setDevPasid' | 'free'> = { attachDev, setDevPasid, free: freeDomain };

/** `__DOMAIN_MAX_ADDR(gaw)` */
function domainMaxAddr(gaw: number): bigint {
  return (1n << BigInt(gaw)) - 1n;
}

/** `intel_iommu_domain_alloc_first_stage` */
export function allocFirstStage(iommu: IntelIommu, flags: number): DmarDomain | Errno {
  if ((flags & ~(1 << 3)) !== 0) return EOPNOTSUPP;
  if (!iommu.smSupported || iommu.ecapField('FLTS') === 0) return EOPNOTSUPP;
  // First stage is 4-level unless the unit has 5-level first-stage paging and a 57-bit AGAW.
  const levels = iommu.agaw >= 3 && iommu.capField('FS5LP') === 1 ? 5 : 4;
  const gaw = Math.min(levels === 5 ? 57 : 48, iommu.mgaw);
  const has1g = iommu.capField('FS1GP') === 1;
  const pgsize = (1n << 12n) | (1n << 21n) | (has1g ? 1n << 30n : 0n);
  const pt = new IoPageTable(iommu.mem, 'first-stage', levels, new Set(has1g ? [1, 2, 3] : [1, 2]));
  return new DmarDomain(
    'paging',
    'first-stage',
    pagingDomainOps,
    pgsize,
    // Canonical addresses only: the aperture stops below the sign bit.
    { apertureStart: 0n, apertureEnd: domainMaxAddr(gaw - 1), forceAperture: true },
    iommu,
    pt,
    levels - 2,
    false,
    undefined,
    undefined,
    undefined,
  );
}

/** `intel_iommu_domain_alloc_second_stage` */
export function allocSecondStage(iommu: IntelIommu, flags: number): DmarDomain | Errno {
  const NEST_PARENT = 1 << 0;
  const DIRTY = 1 << 1;
  const PASID = 1 << 3;
  if ((flags & ~(NEST_PARENT | DIRTY | PASID)) !== 0) return EOPNOTSUPP;
  if (((flags & NEST_PARENT) !== 0 && !iommu.nestedSupported) || ((flags & DIRTY) !== 0 && !iommu.ssadsSupported)) return EOPNOTSUPP;
  if (iommu.smSupported && iommu.ecapField('SLTS') === 0) return EOPNOTSUPP;
  const levels = iommu.agaw + 2;
  const gaw = Math.min(30 + 9 * iommu.agaw, iommu.mgaw);
  const sllps = iommu.capField('SLLPS');
  const leaf = new Set([1]);
  let pgsize = 1n << 12n;
  if (sllps & 1) {
    leaf.add(2);
    pgsize |= 1n << 21n;
  }
  if (sllps & 2) {
    leaf.add(3);
    pgsize |= 1n << 30n;
  }
  const pt = new IoPageTable(iommu.mem, 'second-stage', levels, leaf);
  return new DmarDomain(
    'paging',
    'second-stage',
    pagingDomainOps,
    pgsize,
    { apertureStart: 0n, apertureEnd: domainMaxAddr(gaw), forceAperture: true },
    iommu,
    pt,
    iommu.agaw,
    (flags & NEST_PARENT) !== 0,
    (flags & DIRTY) !== 0 ? intelDirtyOps : undefined,
    undefined,
    undefined,
  );
}

/** `ULONG_MAX` for callers building full-range flushes. */
export { ULONG_MAX };
