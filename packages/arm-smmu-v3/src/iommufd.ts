/**
 * The iommufd side of the driver (`arm-smmu-v3-iommufd.c`): hw_info, the ARM_SMMUV3 vIOMMU
 * (`get_viommu_size` + `viommu_init`, VMID of the parent S2), nested domains from a guest
 * STE, guest invalidation commands converted and issued on the host CMDQ, and fault events
 * of nested masters forwarded as vEVENTs with the virtual StreamID.
 */
import {
  EBUSY,
  EINVAL,
  EIO,
  ENOMEM,
  EOPNOTSUPP,
  IOMMU_HWPT_DATA_ARM_SMMUV3,
  IOMMU_HW_INFO_TYPE_ARM_SMMUV3,
  IOMMU_HW_INFO_TYPE_DEFAULT,
  IOMMU_VEVENTQ_TYPE_ARM_SMMUV3,
  IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3,
  IOMMU_VIOMMU_TYPE_ARM_SMMUV3,
  iommu_hw_info_arm_smmuv3,
  iommu_hwpt_arm_smmuv3,
  iommu_vevent_arm_smmuv3,
  iommu_viommu_arm_smmuv3_invalidate,
} from '@iommufd/uapi';
import {
  IOMMUFD_VIOMMU,
  VIOMMU_STRUCT_SIZE,
  containerOf,
  coreMember,
  defineDriverStruct,
  dptr,
  du16,
  iommuCopyFullUserArrayBytes,
  iommuCopyStructFromUser,
  iommuShouldFail,
  pointee,
  viommuFindDev,
  viommuGetVdevId,
  viommuReportEvent,
  type Device,
  type Errno,
  type HwInfoResult,
  type IommuDomain,
  type IommuDomainGeometry,
  type IommuDomainOps,
  type IommufdViommu,
  type IommufdViommuOps,
  type IommuUserData,
  type IommuUserDataArray,
  type Status,
} from '@iommufd/driver-api';
import { CMDQ_OP, SMMU_CMD, SMMU_CMD_TLBI, SMMU_EVENT, SMMU_STE, STE_CFG } from '@iommufd/hw-model';
import type { Vsmmu } from '@iommufd/queue-engine';
import type { SmmuCommand } from './cmds.js';
import { CMDQ_BATCH_ENTRIES } from './cmdq.js';
import { ArmSmmuDomain, attachCommit, attachPrepare, domainResolvers, masterOf, type AttachState } from './domain.js';
import type { ArmVmaster } from './master.js';
import type { ArmSmmuV3 } from './smmu.js';
import { makeAbortSte, makeNestedCdTableSte, makeS2DomainSte } from './ste.js';

/** `struct arm_vsmmu`: the ARM_SMMUV3 vIOMMU, the core struct first. */
export const arm_vsmmu = defineDriverStruct('arm_vsmmu', [
  coreMember('core', IOMMUFD_VIOMMU),
  dptr('smmu', pointee<ArmSmmuV3>()),
  dptr('s2_parent', pointee<ArmSmmuDomain>()),
  du16('vmid'),
]);

/** `STRTAB_STE_0_NESTING_ALLOWED`: V, Config, S1Fmt, S1ContextPtr, S1CDMax. */
export const STRTAB_STE_0_NESTING_ALLOWED = 0xf80f_ffff_ffff_ffffn;
/** `STRTAB_STE_1_NESTING_ALLOWED`: S1DSS, S1CIR, S1COR, S1CSH, S1STALLD, EATS. */
export const STRTAB_STE_1_NESTING_ALLOWED = 0x3800_00ffn;
/** `STRTAB_STE_1_EATS` */
const STE_1_EATS = 0x3000_0000n;

/** `arm_smmu_hw_info` */
export function armSmmuHwInfo(smmu: ArmSmmuV3, type: number, impl?: (type: number) => HwInfoResult | Errno): HwInfoResult | Errno {
  if (type !== IOMMU_HW_INFO_TYPE_DEFAULT && type !== IOMMU_HW_INFO_TYPE_ARM_SMMUV3) {
    return impl !== undefined ? impl(type) : EOPNOTSUPP;
  }
  if (iommuShouldFail(smmu, 'hw-info')) return ENOMEM;
  const idr = [0, 1, 2, 3, 4, 5].map((i) => smmu.readReg(i * 4));
  const data = iommu_hw_info_arm_smmuv3.encode({ flags: 0, __reserved: 0, idr, iidr: smmu.readReg(0x18), aidr: smmu.readReg(0x1c) });
  return { type: IOMMU_HW_INFO_TYPE_ARM_SMMUV3, data };
}

/** `arm_smmu_get_viommu_size` (plain ARM_SMMUV3; an implementation hook handles other types). */
export function armSmmuGetViommuSize(smmu: ArmSmmuV3, viommuType: number, impl?: (type: number) => number): number {
  if (!smmu.features.nesting) return 0;
  if (smmu.forceSync) return 0;
  // The VM must not be able to make DMA non-coherent behind VFIO's back: CANWBS or S2FWB.
  if (!smmu.canwbs && !smmu.features.s2fwb) return 0;
  if (viommuType === IOMMU_VIOMMU_TYPE_ARM_SMMUV3) return VIOMMU_STRUCT_SIZE(arm_vsmmu, 'core');
  return impl !== undefined ? impl(viommuType) : 0;
}

/** The driver's view of a vSMMU. */
export interface ArmVsmmu {
  /** The core vIOMMU. */
  readonly viommu: IommufdViommu;
  /** Its SMMU. */
  readonly smmu: ArmSmmuV3;
  /** The nesting-parent stage-2 domain. */
  readonly s2Parent: ArmSmmuDomain;
  /** The VMID shared with the parent. */
  readonly vmid: number;
}

/** `container_of(viommu, struct arm_vsmmu, core)` */
export function vsmmuOf(viommu: IommufdViommu): ArmVsmmu {
  const v = containerOf(viommu, arm_vsmmu, 'core');
  return { viommu, smmu: v.getPtr('smmu')!, s2Parent: v.getPtr('s2_parent')!, vmid: v.get('vmid') };
}

/**
 * `arm_vsmmu_init`: the parent must be an S2 domain of the same SMMU; the vSMMU shares its
 * VMID. `implInit` handles implementation types (Tegra241 CMDQV).
 */
export function armVsmmuInit(
  viommu: IommufdViommu,
  parent: IommuDomain,
  userData: IommuUserData | undefined,
  implInit?: (vsmmu: ArmVsmmu, userData: IommuUserData | undefined) => Status,
): Status {
  const smmu = viommu.iommuDev as ArmSmmuV3;
  if (!(parent instanceof ArmSmmuDomain) || parent.smmu !== smmu) return EINVAL;
  const v = containerOf(viommu, arm_vsmmu, 'core');
  v.setPtr('smmu', smmu);
  v.setPtr('s2_parent', parent);
  v.set('vmid', parent.vmid);
  if (viommu.type === IOMMU_VIOMMU_TYPE_ARM_SMMUV3) {
    // ops last: the core calls ops.destroy on a failed init only when ops is set.
    viommu.ops = armVsmmuOps;
    return 0;
  }
  if (implInit === undefined) return EOPNOTSUPP;
  return implInit(vsmmuOf(viommu), userData);
}

/** A nested domain: a validated guest STE on top of the vSMMU's S2 (`struct arm_smmu_nested_domain`). */
export class ArmSmmuNestedDomain implements IommuDomain {
  /** Always `nested`. */
  readonly type = 'nested' as const;
  /** Nested domain operations. */
  readonly ops: IommuDomainOps = armSmmuNestedOps;
  /** Nested domains map nothing themselves. */
  readonly pgsizeBitmap = 0n;
  /** The parent's aperture. */
  readonly geometry: IommuDomainGeometry;
  /** Core-set. */
  owner?: IommuDomain['owner'];
  /** Core-set. */
  cookie?: unknown;
  /** Core-set. */
  iopfHandler?: IommuDomain['iopfHandler'];
  constructor(
    /** The vSMMU it belongs to. */
    readonly vsmmu: ArmVsmmu,
    /** Guest STE dw0..1, EATS stripped. */
    readonly ste: readonly [bigint, bigint],
    /** The guest asked for ATS on an S1 vSTE. */
    readonly enableAts: boolean,
  ) {
    this.geometry = vsmmu.s2Parent.geometry;
  }
}

domainResolvers.nested = (d) => (d instanceof ArmSmmuNestedDomain ? { parent: d.vsmmu.s2Parent, enableAts: d.enableAts } : undefined);

/** `arm_smmu_validate_vste`: only the nesting-allowed bits, Config abort/bypass/S1, EATS 0/1; EIO otherwise. */
export function validateVste(ste: [bigint, bigint]): { ste: [bigint, bigint]; enableAts: boolean } | Errno {
  if (SMMU_STE.get(ste, 'V') === 0n) return { ste: [0n, 0n], enableAts: false };
  // EIO is reserved for invalid STE data.
  if ((ste[0] & ~STRTAB_STE_0_NESTING_ALLOWED) !== 0n || (ste[1] & ~STRTAB_STE_1_NESTING_ALLOWED) !== 0n) return EIO;
  const cfg = SMMU_STE.num(ste, 'CONFIG');
  if (cfg !== STE_CFG.ABORT && cfg !== STE_CFG.BYPASS && cfg !== STE_CFG.S1_TRANS) return EIO;
  const eats = SMMU_STE.num(ste, 'EATS');
  const out: [bigint, bigint] = [ste[0], ste[1] & ~STE_1_EATS];
  if (eats !== 0 && eats !== 1) return EIO;
  return { ste: out, enableAts: cfg === STE_CFG.S1_TRANS && eats === 1 };
}

/** `arm_vsmmu_alloc_domain_nested` */
function allocDomainNested(viommu: IommufdViommu, flags: number, userData: IommuUserData): IommuDomain | Errno {
  if (flags !== 0) return EOPNOTSUPP;
  const arg = iommuCopyStructFromUser(iommu_hwpt_arm_smmuv3, userData, IOMMU_HWPT_DATA_ARM_SMMUV3, 'ste');
  if (typeof arg === 'number') return arg;
  const v = validateVste([arg.ste[0]!, arg.ste[1]!]);
  if (typeof v === 'number') return v;
  const vsmmu = vsmmuOf(viommu);
  if (iommuShouldFail(vsmmu.smmu, 'domain-alloc')) return ENOMEM;
  return new ArmSmmuNestedDomain(vsmmu, v.ste, v.enableAts);
}

/** `arm_smmu_make_nested_domain_ste`: S1 → nested STE, bypass → the parent's S2 STE, else abort. */
export function makeNestedDomainSte(smmu: ArmSmmuV3, d: ArmSmmuNestedDomain, atsEnabled: boolean): bigint[] {
  let cfg = SMMU_STE.num(d.ste, 'CONFIG');
  // A non-valid guest STE cannot be installed; the hardware gets an abort STE instead.
  if (SMMU_STE.get(d.ste, 'V') === 0n) cfg = STE_CFG.ABORT;
  const opts = { atsEnabled, stallEnabled: false };
  if (cfg === STE_CFG.S1_TRANS) return makeNestedCdTableSte(smmu.features, d.vsmmu.s2Parent.s2Config, d.ste, opts);
  if (cfg === STE_CFG.BYPASS) return makeS2DomainSte(smmu.features, d.vsmmu.s2Parent.s2Config, opts);
  return makeAbortSte();
}

/** `arm_vmaster_report_event`: the raw record with StreamID replaced by the vSID. */
function vmasterReporter(viommu: IommufdViommu, vsid: bigint): ArmVmaster {
  return {
    vsid,
    report: (words) => {
      const vevt = [...words];
      SMMU_EVENT.set(vevt, 'SID', vsid);
      return viommuReportEvent(viommu, IOMMU_VEVENTQ_TYPE_ARM_SMMUV3, iommu_vevent_arm_smmuv3.encode({ evt: vevt }));
    },
  };
}

/** `arm_smmu_attach_dev_nested` */
function attachDevNested(domain: IommuDomain, dev: Device): Status {
  const d = domain as ArmSmmuNestedDomain;
  const master = masterOf(dev);
  if (d.vsmmu.smmu !== master.smmu) return EINVAL;
  if (master.ssidsInUse) return EBUSY;
  // The VM drives the endpoint's ATS state: follow the guest's EATS.
  const state: AttachState = { master, oldDomain: master.domain, ssid: 0, disableAts: !d.enableAts, atsEnabled: false };
  const st = attachPrepare(state, domain, () => {
    const vsid = viommuGetVdevId(d.vsmmu.viommu, dev);
    if (typeof vsid !== 'number') return vmasterReporter(d.vsmmu.viommu, vsid);
    // arm_smmu_attach_prepare_vmaster: a translating vSTE needs the vSID (CD/ATS
    // invalidations, vEVENTs); an abort or bypass vSTE attaches without a vDEVICE (GBPA).
    return SMMU_STE.num(d.ste, 'CONFIG') === STE_CFG.S1_TRANS ? vsid : undefined;
  });
  if (st !== 0) return st;
  master.installSte(makeNestedDomainSte(master.smmu, d, state.atsEnabled));
  attachCommit(state, domain);
  return 0;
}

/** `arm_smmu_nested_ops` */
export const armSmmuNestedOps: IommuDomainOps = {
  attachDev: attachDevNested,
  free() {},
};

/** `arm_vsmmu_vsid_to_sid`: the physical StreamID of the vDEVICE with virtual ID `vsid`. */
function vsidToSid(vsmmu: ArmVsmmu, vsid: number): number | undefined {
  const dev = viommuFindDev(vsmmu.viommu, BigInt(vsid));
  if (dev === undefined) return undefined;
  // PCI devices with a single StreamID only.
  return masterOf(dev).streams[0];
}

/**
 * `arm_vsmmu_convert_user_cmd`: stamps the vSMMU's VMID into TLBIs (NSNH_ALL becomes NH_ALL
 * of that VMID), replaces the vSID of ATC_INV / CFGI_CD / CFGI_CD_ALL by the pSID; every
 * other opcode, and an unknown vSID, is EIO.
 */
export function convertUserCmd(vsmmu: ArmVsmmu, cmd: readonly [bigint, bigint]): SmmuCommand | Errno {
  const w = [cmd[0], cmd[1]];
  switch (SMMU_CMD.num(w, 'OPCODE')) {
    case CMDQ_OP.TLBI_NSNH_ALL:
      return [SMMU_CMD_TLBI.encode({ OPCODE: CMDQ_OP.TLBI_NH_ALL, VMID: vsmmu.vmid })[0]!, 0n];
    case CMDQ_OP.TLBI_NH_VA:
    case CMDQ_OP.TLBI_NH_VAA:
    case CMDQ_OP.TLBI_NH_ALL:
    case CMDQ_OP.TLBI_NH_ASID:
      SMMU_CMD_TLBI.set(w, 'VMID', vsmmu.vmid);
      return [w[0]!, w[1]!];
    case CMDQ_OP.ATC_INV:
    case CMDQ_OP.CFGI_CD:
    case CMDQ_OP.CFGI_CD_ALL: {
      const sid = vsidToSid(vsmmu, SMMU_CMD.num(w, 'SID'));
      if (sid === undefined) return EIO;
      SMMU_CMD.set(w, 'SID', sid);
      return [w[0]!, w[1]!];
    }
    default:
      return EIO;
  }
}

/**
 * {@link convertUserCmd} entry by entry over the kernel copy of the array (16 bytes per
 * command), in place, stopping at the first refused command; returns how many were converted.
 */
function convertUserCmds(vsmmu: ArmVsmmu, bytes: Uint8Array): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.length / 16;
  for (let i = 0; i < n; i++) {
    const c = convertUserCmd(vsmmu, [view.getBigUint64(i * 16, true), view.getBigUint64(i * 16 + 8, true)]);
    if (typeof c !== 'object') return i;
    view.setBigUint64(i * 16, c[0], true);
    view.setBigUint64(i * 16 + 8, c[1], true);
  }
  return n;
}

const SID_OPCODES: ReadonlySet<number> = new Set([CMDQ_OP.ATC_INV, CMDQ_OP.CFGI_CD, CMDQ_OP.CFGI_CD_ALL]);

/**
 * The same conversion by the queue engine's vSMMU, in place: its vSID → pSID table holds
 * exactly the vDEVICEs the array names (looked up as {@link vsidToSid} does), its VMID the
 * vSMMU's.
 */
function convertUserCmdsWithEngine(vsmmu: ArmVsmmu, engine: Vsmmu, bytes: Uint8Array): number {
  const streams = new Map<number, number>();
  const looked = new Set<number>();
  for (let at = 0; at < bytes.length; at += 16) {
    if (!SID_OPCODES.has(bytes[at]!)) continue;
    // dw0[63:32], little-endian, read from the bytes (a DataView would move a small array out of the JS heap).
    const vsid = (bytes[at + 4]! | (bytes[at + 5]! << 8) | (bytes[at + 6]! << 16) | (bytes[at + 7]! << 24)) >>> 0;
    if (looked.has(vsid)) continue;
    looked.add(vsid);
    const sid = vsidToSid(vsmmu, vsid);
    if (sid !== undefined) streams.set(vsid, sid);
  }
  engine.setVmid(vsmmu.vmid);
  engine.setStreams(streams);
  return engine.convert(bytes);
}

/**
 * `arm_vsmmu_cache_invalidate`: copies the whole array, converts command by command (in the
 * queue engine when the SMMU has one, see the `vsmmuConverter` probe option) and
 * issues every 63 converted commands (or the rest) with a CMD_SYNC on the main CMDQ, each
 * batch written into the ring straight from the converted array.
 * `entryNum` becomes the number of commands handled (the failing index on EIO).
 */
export function armVsmmuCacheInvalidate(viommu: IommufdViommu, array: IommuUserDataArray): Status {
  const vsmmu = vsmmuOf(viommu);
  const cmds = iommuCopyFullUserArrayBytes(iommu_viommu_arm_smmuv3_invalidate, array, IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3);
  if (typeof cmds === 'number') {
    array.entryNum = 0;
    return cmds;
  }
  const engine = vsmmu.smmu.vsmmuConverter();
  const done = engine !== undefined ? convertUserCmdsWithEngine(vsmmu, engine, cmds) : convertUserCmds(vsmmu, cmds);
  const total = array.entryNum;
  let last = 0;
  let cur = 0;
  let ret: Status = 0;
  while (cur !== total) {
    // A refused command stops the walk; the commands converted since the last batch are not issued.
    if (cur === done) {
      ret = EIO;
      break;
    }
    cur++;
    if (cur !== total && cur - last !== CMDQ_BATCH_ENTRIES - 1) continue;
    const st = vsmmu.smmu.cmdq.issueCmdlist(cmds.subarray(last * 16, cur * 16), true);
    if (st !== 0) {
      cur--;
      ret = st;
      break;
    }
    last = cur;
  }
  array.entryNum = cur;
  return ret;
}

/** `arm_vsmmu_ops` */
export const armVsmmuOps: IommufdViommuOps = {
  allocDomainNested,
  cacheInvalidate: armVsmmuCacheInvalidate,
};
