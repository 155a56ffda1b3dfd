/**
 * Paging domains (`struct arm_smmu_domain`): stage 1 (ASID, CD) or stage 2 (VMID), their io
 * page tables, TLB and ATC invalidation, and the attach state machine shared with nested
 * domains (`arm_smmu_attach_prepare` / `arm_smmu_attach_commit`).
 */
import { EBUSY, EINVAL, ENOMEM, ENOSPC } from '@iommufd/uapi';
import { iommuShouldFail, type Device, type IommuDomain, type IommuDomainGeometry, type IommuDomainOps, type Status } from '@iommufd/driver-api';
import { ArmLpaeIoPgtable, ARM_LPAE_MAIR } from './io-pgtable-arm.js';
import { atcInvCmd, type ArmSmmuMaster, type ArmVmaster } from './master.js';
import type { ArmSmmuV3 } from './smmu.js';
import { S1DSS, makeAbortSte, makeCdtableSte, makeS1Cd, makeS2DomainSte, type S2Config } from './ste.js';

/** `CMDQ_TLBI_RANGE_NUM_MAX` */
const TLBI_RANGE_NUM_MAX = 31n;

/** One attachment of a master to a domain (`struct arm_smmu_master_domain`). */
export interface MasterDomain {
  readonly master: ArmSmmuMaster;
  readonly ssid: number;
  /** Attached through a nested domain with ATS: any S2 change flushes the whole ATC. */
  readonly nestedAtsFlush: boolean;
}

/** A stage-1 or stage-2 paging domain of one SMMU. */
export class ArmSmmuDomain implements IommuDomain {
  /** Always `paging`. */
  readonly type = 'paging' as const;
  /** The domain operations. */
  readonly ops: IommuDomainOps = armSmmuDomainOps;
  /** Page sizes of the io page table. */
  readonly pgsizeBitmap: bigint;
  /** `[0, 2^ias)` */
  readonly geometry: IommuDomainGeometry;
  /** No HTTU in the modelled SMMUs: dirty tracking is never offered. */
  readonly dirtyOps = undefined;
  /** Core-set. */
  owner?: IommuDomain['owner'];
  /** Core-set. */
  cookie?: unknown;
  /** Core-set. */
  iopfHandler?: IommuDomain['iopfHandler'];
  /** Masters (and nested attachments through this S2) using the domain. */
  readonly devices: MasterDomain[] = [];
  /** Set by `enforceCacheCoherency`: only CANWBS masters may attach afterwards. */
  enforceCacheCoherency = false;

  private constructor(
    /** The SMMU it was finalised for. */
    readonly smmu: ArmSmmuV3,
    /** 1 = ASID-tagged stage 1, 2 = VMID-tagged stage 2. */
    readonly stage: 1 | 2,
    /** The io page table. */
    readonly pgtbl: ArmLpaeIoPgtable,
    /** ASID (stage 1) or 0. */
    readonly asid: number,
    /** VMID (stage 2) or 0. */
    readonly vmid: number,
    /** Allocated with NEST_PARENT: a vIOMMU's stage 2. */
    readonly nestParent: boolean,
  ) {
    this.pgsizeBitmap = pgtbl.pgsizeBitmap & smmu.pgsizeBitmap;
    this.geometry = { apertureStart: 0n, apertureEnd: (1n << BigInt(pgtbl.cfg.ias)) - 1n, forceAperture: true };
  }

  /**
   * `arm_smmu_domain_finalise`: the io page table, then the ASID or VMID. Returns ENOMEM when
   * an allocation fails (or fault injection says so), ENOSPC when IDs run out.
   */
  static finalise(smmu: ArmSmmuV3, stage: 1 | 2, nestParent: boolean): ArmSmmuDomain | number {
    if (iommuShouldFail(smmu, 'domain-alloc')) return ENOMEM;
    let pgtbl: ArmLpaeIoPgtable;
    try {
      pgtbl =
        stage === 1
          ? new ArmLpaeIoPgtable(smmu.memory, { stage: 1, ias: 48, oas: smmu.ias, coherentWalk: smmu.features.coherency })
          : new ArmLpaeIoPgtable(smmu.memory, {
              stage: 2,
              ias: smmu.ias,
              oas: smmu.oas,
              coherentWalk: smmu.features.coherency,
              s2fwb: smmu.features.s2fwb && nestParent,
            });
    } catch {
      return ENOMEM;
    }
    const id = stage === 1 ? smmu.allocAsid() : smmu.allocVmid();
    if (id === undefined) {
      pgtbl.free();
      return ENOSPC;
    }
    return new ArmSmmuDomain(smmu, stage, pgtbl, stage === 1 ? id : 0, stage === 2 ? id : 0, nestParent);
  }

  /** The stage-2 STE fields of this domain. */
  get s2Config(): S2Config {
    return { vmid: this.vmid, vtcr: this.pgtbl.tcr, ttb: this.pgtbl.pgd, s2fwb: this.pgtbl.cfg.s2fwb === true };
  }

  /** `arm_smmu_tlb_inv_range_domain`: TLBI of `[iova, iova+size)` (range ops with RIL), then the ATC. */
  tlbInvRange(iova: bigint, size: bigint, granule: bigint, leaf: boolean): void {
    const base = this.stage === 1 ? { opcode: 'TLBI_NH_VA' as const, asid: this.asid } : { opcode: 'TLBI_S2_IPA' as const, vmid: this.vmid };
    this.tlbInvRangeCmds(base, iova, size, granule, leaf);
    // A nest parent's change reaches every nested S1 translation tagged with its VMID.
    if (this.nestParent) this.smmu.issueCmdWithSync({ opcode: 'TLBI_NH_ALL', vmid: this.vmid });
    // Not leaf-only: a whole table may have been zapped.
    this.atcInvDomain(iova, size);
  }

  /** `__arm_smmu_tlb_inv_range` */
  private tlbInvRangeCmds(
    base: { opcode: 'TLBI_NH_VA'; asid: number } | { opcode: 'TLBI_S2_IPA'; vmid: number },
    start: bigint,
    size: bigint,
    granule: bigint,
    leaf: boolean,
  ): void {
    if (size === 0n) return;
    const end = start + size;
    let iova = start;
    let invRange = granule;
    let numPages = 0n;
    let tg = 0;
    let ttl = 0;
    const ril = this.smmu.features.rangeInv;
    const tgShift = lowestBit(this.pgsizeBitmap);
    if (ril) {
      numPages = size >> BigInt(tgShift);
      // Page size 12/14/16 (log2) → TG 1/2/3.
      tg = (tgShift - 10) / 2;
      if (leaf) ttl = 4 - Math.floor((log2(granule) - 3) / (tgShift - 3));
      else if ((numPages & TLBI_RANGE_NUM_MAX) === 1n) numPages++;
    }
    const b = this.smmu.batch();
    while (iova < end) {
      let num = 0;
      let scale = 0;
      if (ril) {
        scale = lowestBit(numPages);
        const chunks = (numPages >> BigInt(scale)) & TLBI_RANGE_NUM_MAX;
        num = Number(chunks) - 1;
        invRange = chunks << BigInt(scale + tgShift);
        numPages -= chunks << BigInt(scale);
      }
      b.add({ ...base, addr: iova, leaf, num, scale, tg, ttl });
      iova += invRange;
    }
    b.submit();
  }

  /** `arm_smmu_tlb_inv_context`: everything of the ASID / VMID, then the ATC. */
  tlbInvContext(): void {
    if (this.stage === 1) this.smmu.issueCmdWithSync({ opcode: 'TLBI_NH_ASID', asid: this.asid, vmid: 0 });
    else this.smmu.issueCmdWithSync({ opcode: 'TLBI_S12_VMALL', vmid: this.vmid });
    this.atcInvDomain(0n, 0n);
  }

  /** `arm_smmu_atc_inv_domain` */
  atcInvDomain(iova: bigint, size: bigint): void {
    const ats = this.devices.filter((md) => md.master.atsEnabled);
    if (ats.length === 0) return;
    const b = this.smmu.batch();
    for (const md of ats) {
      for (const sid of md.master.streams) {
        b.add(md.nestedAtsFlush ? atcInvCmd(sid, 0, 0n, 0n) : atcInvCmd(sid, md.ssid, iova, size));
      }
    }
    b.submit();
  }
}

function lowestBit(v: bigint): number {
  if (v === 0n) return 0;
  let n = 0;
  while (((v >> BigInt(n)) & 1n) === 0n) n++;
  return n;
}
function log2(v: bigint): number {
  return v.toString(2).length - 1;
}

/** `to_smmu_domain_devices`: the paging domain whose device list an attachment joins. */
export type DevicesDomainOf = (domain: IommuDomain | undefined) => ArmSmmuDomain | undefined;

/** Resolves nested domains to their S2 parent (set by the iommufd side). */
export const domainResolvers: { nested: (d: IommuDomain) => { parent: ArmSmmuDomain; enableAts: boolean } | undefined } = {
  nested: () => undefined,
};

/** The paging domain whose `devices` list a master joins for `domain`. */
export function toSmmuDomainDevices(domain: IommuDomain | undefined): ArmSmmuDomain | undefined {
  if (domain instanceof ArmSmmuDomain) return domain;
  if (domain?.type === 'nested') return domainResolvers.nested(domain)?.parent;
  return undefined;
}

/** `struct arm_smmu_attach_state` */
export interface AttachState {
  readonly master: ArmSmmuMaster;
  readonly oldDomain: IommuDomain | undefined;
  readonly ssid: number;
  disableAts: boolean;
  atsEnabled: boolean;
  vmaster?: ArmVmaster | undefined;
}

/**
 * `arm_smmu_attach_prepare`: decides ATS and joins the new domain's device list before any STE
 * changes. `vmaster` gives the nested master's vSID reporter, an errno, or undefined for none (a non-translating vSTE).
 */
export function attachPrepare(state: AttachState, newDomain: IommuDomain, vmaster?: () => ArmVmaster | number | undefined): Status {
  const master = state.master;
  const smmuDomain = toSmmuDomainDevices(newDomain);
  // ATS needs page tables: never with the blocked/identity domains.
  if (smmuDomain !== undefined) {
    state.atsEnabled = !state.disableAts && master.atsSupported;
    if (newDomain.type === 'nested' && vmaster !== undefined) {
      const vm = vmaster();
      if (typeof vm === 'number') return vm;
      state.vmaster = vm;
    }
    if (smmuDomain.enforceCacheCoherency && !master.canwbs) return EINVAL;
    const nestedAtsFlush = newDomain.type === 'nested' ? (domainResolvers.nested(newDomain)?.enableAts ?? false) : false;
    smmuDomain.devices.push({ master, ssid: state.ssid, nestedAtsFlush });
  }
  if (!state.atsEnabled && master.atsEnabled) master.setEndpointAts(false);
  return 0;
}

/** `arm_smmu_attach_commit`: ATS on/off with the ATC flushes, then leave the old domain's list. */
export function attachCommit(state: AttachState, newDomain: IommuDomain): void {
  const master = state.master;
  if (state.ssid === 0) master.vmaster = newDomain.type === 'nested' ? state.vmaster : undefined;
  if (state.atsEnabled && !master.atsEnabled) {
    // The ATC must be empty before ATS is enabled at the endpoint.
    master.atcInvMaster(0);
    master.setEndpointAts(true);
  } else if (state.atsEnabled && master.atsEnabled) {
    // The translation changed: both domains invalidate until the old one is left.
    master.atcInvMaster(state.ssid);
  } else if (!state.atsEnabled && master.atsEnabled) {
    master.atcInvMaster(0);
  }
  master.atsEnabled = state.atsEnabled;
  removeMasterDomain(master, state.oldDomain, state.ssid);
  if (state.ssid === 0) master.domain = newDomain;
}

/** `arm_smmu_remove_master_domain` */
export function removeMasterDomain(master: ArmSmmuMaster, domain: IommuDomain | undefined, ssid: number): void {
  const d = toSmmuDomainDevices(domain);
  if (d === undefined || domain === undefined) return;
  const nestedAtsFlush = domain.type === 'nested' ? (domainResolvers.nested(domain)?.enableAts ?? false) : false;
  const i = d.devices.findIndex((md) => md.master === master && md.ssid === ssid && md.nestedAtsFlush === nestedAtsFlush);
  if (i >= 0) d.devices.splice(i, 1);
}

/** The master of a device (`dev_iommu_priv_get`). */
export function masterOf(dev: Device): ArmSmmuMaster {
  return dev.iommuPriv as ArmSmmuMaster;
}

/** `arm_smmu_attach_dev` for paging domains. */
function attachDev(domain: IommuDomain, dev: Device): Status {
  const d = domain as ArmSmmuDomain;
  const master = masterOf(dev);
  if (d.smmu !== master.smmu) return EINVAL;
  let cdptr: bigint | undefined;
  if (d.stage === 1) {
    cdptr = master.allocCdPtr(0);
    if (cdptr === undefined) return ENOMEM;
  } else if (master.ssidsInUse) {
    return EBUSY;
  }
  const state: AttachState = { master, oldDomain: master.domain, ssid: 0, disableAts: false, atsEnabled: false };
  const st = attachPrepare(state, domain);
  if (st !== 0) return st;
  const f = master.smmu.features;
  if (d.stage === 1) {
    const cd = makeS1Cd(d.pgtbl.tcr, { asid: d.asid, ttb: d.pgtbl.pgd, mair: ARM_LPAE_MAIR, stallEnabled: false, hd: false });
    master.writeCdEntry(0, cdptr!, cd);
    master.installSte(makeCdtableSte(f, master.cdTableRef!, { atsEnabled: state.atsEnabled, s1dss: S1DSS.SSID0, stallEnabled: false }));
  } else {
    master.installSte(makeS2DomainSte(f, d.s2Config, { atsEnabled: state.atsEnabled, stallEnabled: false }));
    master.clearCd(0);
  }
  attachCommit(state, domain);
  return 0;
}

/** The page-table operations of paging domains (`arm_smmu_ops.default_domain_ops`). */
export const armSmmuDomainOps: IommuDomainOps = {
  attachDev,
  setDevPasid,
  mapPages(domain, iova, paddr, pgsize, pgcount, prot) {
    return (domain as ArmSmmuDomain).pgtbl.mapPages(iova, paddr, pgsize, pgcount, prot);
  },
  unmapPages(domain, iova, pgsize, pgcount) {
    const d = domain as ArmSmmuDomain;
    // iommu_unmap = unmap_pages gathering leaf pages, then iotlb_sync over the gathered range.
    const unmapped = d.pgtbl.unmapPages(iova, pgsize, pgcount, {
      flushWalk: (a, size, granule) => d.tlbInvRange(a, size, granule, false),
    });
    if (unmapped !== 0n) d.tlbInvRange(iova, unmapped, pgsize, true);
    return unmapped;
  },
  iovaToPhys(domain, iova) {
    return (domain as ArmSmmuDomain).pgtbl.iovaToPhys(iova);
  },
  enforceCacheCoherency(domain) {
    const d = domain as ArmSmmuDomain;
    const ok = d.devices.every((md) => md.master.canwbs);
    d.enforceCacheCoherency = ok;
    return ok;
  },
  free(domain) {
    const d = domain as ArmSmmuDomain;
    // free_io_pgtable_ops flushes everything first.
    d.tlbInvContext();
    d.pgtbl.free();
    if (d.stage === 1) d.smmu.freeAsid(d.asid);
    else d.smmu.freeVmid(d.vmid);
  },
};

/** `arm_smmu_blocked_domain`: an abort STE. */
export const armSmmuBlockedDomain: IommuDomain = {
  type: 'blocked',
  pgsizeBitmap: 0n,
  geometry: { apertureStart: 0n, apertureEnd: 0n, forceAperture: true },
  ops: {
    attachDev(_domain, dev) {
      const master = masterOf(dev);
      const state: AttachState = { master, oldDomain: master.domain, ssid: 0, disableAts: false, atsEnabled: false };
      let ste = makeAbortSte();
      if (master.ssidsInUse) {
        // PASIDs keep the CD table; RID traffic terminates (S1DSS), PASIDs may still use ATS.
        ste = makeCdtableSte(master.smmu.features, master.cdTableRef!, { atsEnabled: master.atsSupported, s1dss: S1DSS.TERMINATE, stallEnabled: false });
        state.atsEnabled = master.atsSupported;
      }
      attachPrepare(state, armSmmuBlockedDomain);
      master.installSte(ste);
      attachCommit(state, armSmmuBlockedDomain);
      master.clearCd(0);
      return 0;
    },
    setDevPasid(_domain, dev, pasid, old) {
      // `arm_smmu_blocking_set_dev_pasid`: drop the PASID's CD, flush its ATC, leave the old domain.
      const master = masterOf(dev);
      master.clearCd(pasid);
      if (master.atsEnabled) master.atcInvMaster(pasid);
      removeMasterDomain(master, old, pasid);
      // The last PASID gone: the RID's STE no longer needs the CD table.
      if (!master.ssidsInUse) armSmmuBlockedDomain.ops.attachDev!(armSmmuBlockedDomain, dev);
      return 0;
    },
  },
};

/** `arm_smmu_s1_set_dev_pasid` + `arm_smmu_set_pasid`: an S1 domain at a PASID of a master whose RID is blocked or S1. */
function setDevPasid(domain: IommuDomain, dev: Device, pasid: number, old: IommuDomain | undefined): Status {
  const d = domain as ArmSmmuDomain;
  const master = masterOf(dev);
  if (d.smmu !== master.smmu || d.stage !== 1) return EINVAL;
  const sidDomain = master.domain ?? armSmmuBlockedDomain;
  if (!master.cdInSte && sidDomain.type !== 'identity' && sidDomain.type !== 'blocked') return EINVAL;
  const cdptr = master.allocCdPtr(pasid);
  if (cdptr === undefined) return ENOMEM;
  const state: AttachState = { master, oldDomain: old, ssid: pasid, disableAts: false, atsEnabled: false };
  const st = attachPrepare(state, domain);
  if (st !== 0) return st;
  master.writeCdEntry(pasid, cdptr, makeS1Cd(d.pgtbl.tcr, { asid: d.asid, ttb: d.pgtbl.pgd, mair: ARM_LPAE_MAIR, stallEnabled: false, hd: false }));
  // `arm_smmu_update_ste`: a CD-table STE whose RID traffic follows the RID's domain.
  if (!(master.cdInSte && master.steAtsEnabled === state.atsEnabled)) {
    const s1dss = sidDomain.type === 'identity' ? S1DSS.BYPASS : S1DSS.TERMINATE;
    master.installSte(makeCdtableSte(master.smmu.features, master.cdTableRef!, { atsEnabled: state.atsEnabled, s1dss, stallEnabled: false }));
  }
  attachCommit(state, domain);
  return 0;
}
