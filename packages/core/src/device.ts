/**
 * Devices (device.c plus the iommu-core group glue): the iommu_group and DMA ownership,
 * DEVICE objects (bind/unbind), attach / replace / detach of a RID or PASID to a HWPT or an
 * IOAS (automatic domains), reserved regions, PASID compatibility.
 */
import {
  EBUSY,
  EFAULT,
  EINVAL,
  EOPNOTSUPP,
  EPERM,
  IOMMU_HW_CAP_DIRTY_TRACKING,
  IOMMU_HW_CAP_PCI_PASID_EXEC,
  IOMMU_HW_CAP_PCI_PASID_PRIV,
  IOMMU_HW_INFO_FLAG_INPUT_TYPE,
  IOMMU_HW_INFO_TYPE_DEFAULT,
  IOMMU_HW_INFO_TYPE_NONE,
  type iommu_hw_info,
} from '@iommufd/uapi';
import type { Device, DevicePasidCap, Errno, IommuDevice, IommuDomain } from '@iommufd/driver-api';
import type { IommufdCtxImpl, Ucmd } from './context.js';
import { IommufdObject, pinObject, unpinObject } from './object.js';
import { HwptNested, HwptPaging, hwptPagingAlloc, setUndoImmediateAttach, type Hwpt } from './hw-pagetable.js';
import type { Ioas } from './ioas.js';
import type { Vdevice } from './vdevice.js';
import { domainLabel, type DriverOpObserver } from './observe.js';

/** The sentinel for the RID (`IOMMU_NO_PASID`) in attach maps. */
const NO_PASID = -1;

/** An iommu_group: devices that share isolation, and its current RID domain. */
export class IommuGroup {
  /** Devices in the group. */
  readonly devices: CoreDevice[] = [];
  /** The DMA owner (an iommufd context) and how many devices it claimed. */
  owner: IommufdCtxImpl | undefined;
  /** Claimed devices of `owner`. */
  ownerCnt = 0;
  /** The domain translating the RIDs of the group (undefined = the default domain). */
  domain: IommuDomain | undefined;
  constructor(readonly id: number) {}
}

/** An endpoint device behind an IOMMU instance, as the core keeps it. */
export class CoreDevice implements Device {
  /** dev_iommu_priv. */
  iommuPriv: unknown;
  /** Domains attached to PASIDs of this device. */
  readonly pasidDomains = new Map<number, IommuDomain>();
  /** The DEVICE object while bound. */
  bound: BoundDevice | undefined;
  constructor(
    /** Device name. */
    readonly name: string,
    /** The IOMMU instance. */
    readonly iommu: IommuDevice,
    /** Its group. */
    readonly group: IommuGroup,
    /** PASID capability. */
    readonly pasid: DevicePasidCap | undefined,
    /** PRI capable. */
    readonly pri: boolean,
    /** ATS capable. */
    readonly ats: boolean,
    /** PCI VF. */
    readonly isVf: boolean,
  ) {}
  /** The iommu_group number. */
  get groupId(): number {
    return this.group.id;
  }
}

/** One PASID (or RID) attachment of a group (`struct iommufd_attach`). */
export interface Attach {
  hwpt: Hwpt;
  readonly devices: Set<BoundDevice>;
}

/** The per-context shadow of an iommu_group (`struct iommufd_group`). */
export class IommufdGroup {
  /** Attachments by PASID (NO_PASID = RID). */
  readonly attach = new Map<number, Attach>();
  /** Bound devices of the group in this context. */
  users = 0;
  constructor(readonly group: IommuGroup) {}
}

/** A DEVICE object (`struct iommufd_device`): a device bound to the context. */
export class BoundDevice extends IommufdObject {
  /** `DEVICE` */
  readonly type = 'DEVICE' as const;
  /** The group shadow. */
  igroup!: IommufdGroup;
  /** The device enforces no-snoop blocking (IOMMU_CAP_ENFORCE_CACHE_COHERENCY). */
  enforceCacheCoherency = false;
  /** The vDEVICE on this device, if any. */
  vdev: Vdevice | undefined;
  /** Unbind in progress (pre_destroy ran). */
  destroying = false;
  /** Holds a reference on the ctx file (every device but the selftest's mock devices). */
  holdsCtx = true;
  constructor(
    ictx: IommufdCtxImpl,
    /** The device. */
    readonly dev: CoreDevice,
  ) {
    super(ictx);
  }

  /** `iommufd_device_pre_destroy`: a live vDEVICE becomes a tombstone. */
  override preDestroy(): void {
    this.destroying = true;
    const vdev = this.vdev;
    if (!vdev) return;
    // Hold a users reference for the tombstone removal, as iommufd_device_remove_vdev does.
    vdev.users++;
    this.ictx.tombstoneUser(vdev);
  }

  /** `iommufd_device_destroy`: release DMA ownership and the ctx reference. */
  destroy(): void {
    const g = this.dev.group;
    g.ownerCnt--;
    if (g.ownerCnt === 0) {
      g.owner = undefined;
      g.domain = undefined;
    }
    this.igroup.users--;
    if (this.igroup.users === 0) this.ictx.groups.delete(g.id);
    this.dev.bound = undefined;
    if (this.holdsCtx) this.ictx.putFile();
  }
}

/** `iommufd_device_bind`: a DEVICE for `dev` in `ictx` (the binding driver holds a users ref). */
export function iommufdDeviceBind(
  ictx: IommufdCtxImpl,
  dev: CoreDevice,
  opts: { selftestMockDevice?: boolean } = {},
): { idev: BoundDevice; devId: number } | Errno {
  if (!dev.iommu.ops.capable(dev, 'CACHE_COHERENCY')) return EINVAL;
  const g = dev.group;
  if (g.owner && g.owner !== ictx) return EPERM;
  if (dev.bound) return EBUSY;
  const idev = ictx.allocObject(new BoundDevice(ictx, dev));
  if (typeof idev === 'number') return idev;
  g.owner = ictx;
  g.ownerCnt++;
  // Claiming DMA ownership moves the group to the blocking domain.
  if (g.ownerCnt === 1) g.domain = dev.iommu.ops.blockedDomain;
  let igroup = ictx.groups.get(g.id);
  if (!igroup) {
    igroup = new IommufdGroup(g);
    ictx.groups.set(g.id, igroup);
  }
  igroup.users++;
  idev.igroup = igroup;
  idev.enforceCacheCoherency = dev.iommu.ops.capable(dev, 'ENFORCE_CACHE_COHERENCY');
  dev.bound = idev;
  // A selftest mock device is owned by an object of the ctx itself: it must not keep the
  // ctx open (iommufd_selftest_is_mock_dev in the kernel).
  idev.holdsCtx = !opts.selftestMockDevice;
  if (idev.holdsCtx) ictx.getFile();
  // The driver's reference, dropped by unbind.
  idev.users++;
  ictx.finalize(idev);
  return { idev, devId: idev.id };
}

/** `iommufd_device_unbind` (VFIO fd close): detach is the caller's job, as in VFIO. */
export function iommufdDeviceUnbind(idev: BoundDevice): void {
  for (const pasid of [...idev.igroup.attach.keys()]) {
    const a = idev.igroup.attach.get(pasid);
    if (a?.devices.has(idev)) iommufdDeviceDetach(idev, pasid === NO_PASID ? undefined : pasid);
  }
  idev.ictx.destroyUser(idev);
}

function pasidKey(pasid: number | undefined): number {
  return pasid === undefined ? NO_PASID : pasid;
}

/** The IOAS whose reserved regions a HWPT must respect (its own, or its parent's). */
function ioasOf(hwpt: Hwpt): Ioas {
  return hwpt instanceof HwptPaging ? hwpt.ioas : hwpt.parent.ioas;
}

/** `iommufd_hwpt_pasid_compat` and the FAULT/PRI rule. */
function attachCompatible(idev: BoundDevice, hwpt: Hwpt, pasid: number | undefined): 0 | Errno {
  const igroup = idev.igroup;
  if (pasid === undefined) {
    if (!hwpt.pasidCompat) {
      for (const k of igroup.attach.keys()) if (k !== NO_PASID) return EINVAL;
    }
  } else {
    if (!hwpt.pasidCompat) return EINVAL;
    const rid = igroup.attach.get(NO_PASID);
    if (rid && !rid.hwpt.pasidCompat) return EINVAL;
  }
  if (hwpt.fault && idev.dev.isVf && idev.dev.pri) return EINVAL;
  return 0;
}

/** The driver's `attach_dev` (EINVAL when the domain has none), reported to the core's observer. */
function attachDev(obs: DriverOpObserver | undefined, domain: IommuDomain, dev: CoreDevice): 0 | Errno {
  obs?.opBegin('attachDev', { domain: domainLabel(domain), device: dev.name });
  const rc = domain.ops.attachDev?.(domain, dev) ?? EINVAL;
  obs?.opEnd('attachDev', rc);
  return rc;
}

/** The driver's `set_dev_pasid` (the caller checked it exists), reported to the core's observer. */
function setDevPasid(obs: DriverOpObserver | undefined, domain: IommuDomain, dev: CoreDevice, pasid: number, old: IommuDomain | undefined): 0 | Errno {
  obs?.opBegin('setDevPasid', { domain: domainLabel(domain), device: dev.name, pasid, old: domainLabel(old) });
  const rc = domain.ops.setDevPasid!(domain, dev, pasid, old);
  obs?.opEnd('setDevPasid', rc);
  return rc;
}

/** Driver attach of `domain` for the whole group (RID) or one PASID. */
function driverAttach(idev: BoundDevice, domain: IommuDomain, pasid: number | undefined, old: IommuDomain | undefined): 0 | Errno {
  const dev = idev.dev;
  const obs = idev.ictx.core.observer;
  if (pasid === undefined) {
    const done: CoreDevice[] = [];
    for (const d of dev.group.devices) {
      const rc = attachDev(obs, domain, d);
      if (rc) {
        const back = dev.group.domain;
        if (back) for (const x of done) attachDev(obs, back, x);
        return rc;
      }
      done.push(d);
    }
    dev.group.domain = domain;
    return 0;
  }
  // PASIDs beyond the device's width are refused (devices without PASID are skipped).
  const width = devicePasidLog2(dev);
  if (width > 0 && pasid >= 2 ** width) return EINVAL;
  if (!domain.ops.setDevPasid) return EOPNOTSUPP;
  const rc = setDevPasid(obs, domain, dev, pasid, old);
  if (rc) return rc;
  dev.pasidDomains.set(pasid, domain);
  return 0;
}

/** `ilog2(dev->iommu->max_pasids)`: the smaller of the device's and the instance's PASID width. */
export function devicePasidLog2(dev: CoreDevice): number {
  const d = dev.pasid?.maxPasidLog2 ?? 0;
  const i = dev.iommu.maxPasidLog2 ?? 0;
  return Math.min(d, i);
}

/** Reserve the device's regions in the IOAS of a paging attachment (RID only). */
function attachReserved(idev: BoundDevice, hwpt: Hwpt, pasid: number | undefined): 0 | Errno {
  // find_hwpt_paging: a nested HWPT reserves in its parent's IOAS.
  if (pasid !== undefined) return 0;
  const regions = idev.dev.iommu.ops.getResvRegions?.(idev.dev) ?? [];
  return ioasOf(hwpt).iopt.enforceDeviceRegions(idev.dev, regions);
}

function releaseReserved(idev: BoundDevice, hwpt: Hwpt, pasid: number | undefined): void {
  if (pasid !== undefined) return;
  ioasOf(hwpt).iopt.removeReserved(idev.dev);
}

/** `iommufd_hw_pagetable_attach`: one device joins a group attachment. */
export function hwptAttach(hwpt: Hwpt, idev: BoundDevice, pasid: number | undefined): 0 | Errno {
  const igroup = idev.igroup;
  const key = pasidKey(pasid);
  const attach = igroup.attach.get(key);
  // Kernel order: the device slot is claimed first (a second attach of the same device is
  // EBUSY whatever the HWPT), then the group's HWPT must match, then reserved regions; the
  // FAULT/PASID compatibility is checked only by the first attach of the group.
  if (attach?.devices.has(idev)) return EBUSY;
  if (attach && attach.hwpt !== hwpt) return EINVAL;
  let rc = attachReserved(idev, hwpt, pasid);
  if (rc) return rc;
  if (!attach) {
    rc = attachCompatible(idev, hwpt, pasid) || driverAttach(idev, hwpt.domain, pasid, undefined);
    if (rc) {
      releaseReserved(idev, hwpt, pasid);
      return rc;
    }
    igroup.attach.set(key, { hwpt, devices: new Set([idev]) });
  } else attach.devices.add(idev);
  pinObject(idev, hwpt);
  idev.users++;
  return 0;
}

/** `iommufd_hw_pagetable_detach`: returns the HWPT the device left. */
function hwptDetach(idev: BoundDevice, pasid: number | undefined): Hwpt | undefined {
  const igroup = idev.igroup;
  const key = pasidKey(pasid);
  const attach = igroup.attach.get(key);
  if (!attach || !attach.devices.has(idev)) return undefined;
  const hwpt = attach.hwpt;
  attach.devices.delete(idev);
  if (attach.devices.size === 0) {
    igroup.attach.delete(key);
    const blocked = idev.dev.iommu.ops.blockedDomain;
    const obs = idev.ictx.core.observer;
    if (pasid === undefined) {
      for (const d of idev.dev.group.devices) attachDev(obs, blocked, d);
      idev.dev.group.domain = blocked;
    } else {
      if (blocked.ops.setDevPasid) setDevPasid(obs, blocked, idev.dev, pasid, hwpt.domain);
      idev.dev.pasidDomains.delete(pasid);
    }
  }
  releaseReserved(idev, hwpt, pasid);
  hwpt.fault?.autoRespond(idev, hwpt);
  idev.users--;
  return hwpt;
}

/** Drops a device's reference on a HWPT; an automatic HWPT dies with its last device. */
function hwptPut(ictx: IommufdCtxImpl, idev: BoundDevice, hwpt: Hwpt): void {
  if (hwpt instanceof HwptPaging && hwpt.autoDomain) {
    const i = idev.pinned.indexOf(hwpt);
    if (i >= 0) idev.pinned.splice(i, 1);
    ictx.putAndTryDestroy(hwpt);
  } else unpinObject(idev, hwpt);
}

type AttachFn = (idev: BoundDevice, pasid: number | undefined, hwpt: Hwpt) => Hwpt | undefined | Errno;

/** `iommufd_device_auto_get_domain`: reuse a compatible automatic HWPT of the IOAS or make one. */
function autoGetDomain(idev: BoundDevice, pasid: number | undefined, ioas: Ioas, attachFn: AttachFn): { hwpt: Hwpt; old: Hwpt | undefined } | Errno {
  const ictx = idev.ictx;
  for (const hwpt of [...ioas.hwptList]) {
    if (!hwpt.autoDomain) continue;
    const r = attachFn(idev, pasid, hwpt);
    if (typeof r === 'number') {
      // EINVAL from attach means "incompatible domain": try the next one.
      if (r === EINVAL) continue;
      return r;
    }
    return { hwpt, old: r };
  }
  // Only a plain attach attaches before the domain joins the IOAS (immediate_attach); a
  // replace allocates a complete HWPT first and moves the device onto it afterwards, so a
  // failure on either side leaves the device where it was.
  const immediate = attachFn === doAttach;
  const r = hwptPagingAlloc(ictx, ioas, idev, pasid, 0, immediate, undefined, attachFn);
  if (typeof r === 'number') return r;
  let old = r.old;
  if (!immediate) {
    const moved = attachFn(idev, pasid, r.hwpt);
    if (typeof moved === 'number') {
      ictx.abortAndDestroy(r.hwpt);
      return moved;
    }
    old = moved;
  }
  r.hwpt.autoDomain = true;
  ictx.finalize(r.hwpt);
  return { hwpt: r.hwpt, old };
}

/** `iommufd_device_change_pt`: resolve `ptId` (HWPT or IOAS) and attach or replace. */
function changePt(idev: BoundDevice, pasid: number | undefined, ptId: number, doAttach: AttachFn): { ptId: number } | Errno {
  const ictx = idev.ictx;
  const pt = ictx.getObject(ptId, 'ANY');
  if (typeof pt === 'number') return pt;
  try {
    let hwpt: Hwpt;
    let old: Hwpt | undefined;
    if (pt instanceof HwptPaging || pt instanceof HwptNested) {
      const r = doAttach(idev, pasid, pt);
      if (typeof r === 'number') return r;
      hwpt = pt;
      old = r;
    } else if (pt.type === 'IOAS') {
      const r = autoGetDomain(idev, pasid, pt as Ioas, doAttach);
      if (typeof r === 'number') return r;
      hwpt = r.hwpt;
      old = r.old;
    } else return EINVAL;
    if (old) hwptPut(ictx, idev, old);
    return { ptId: hwpt.id };
  } finally {
    ictx.putObject(pt);
  }
}

const doAttach: AttachFn = (idev, pasid, hwpt) => {
  const rc = hwptAttach(hwpt, idev, pasid);
  return rc ? rc : undefined;
};

/** `iommufd_hw_pagetable_replace`: move a device from its current HWPT to `hwpt`. */
const doReplace: AttachFn = (idev, pasid, hwpt) => {
  const igroup = idev.igroup;
  const key = pasidKey(pasid);
  const attach = igroup.attach.get(key);
  if (!attach || !attach.devices.has(idev)) return EINVAL;
  const old = attach.hwpt;
  if (old === hwpt) return undefined;
  // Reserved regions move only when the IOAS changes; as in the kernel they are claimed
  // before the new HWPT's FAULT/PASID compatibility is checked.
  const moveIoas = pasid === undefined && ioasOf(old) !== ioasOf(hwpt);
  let rc: 0 | Errno = 0;
  if (moveIoas) {
    rc = attachReserved(idev, hwpt, pasid);
    if (rc) return rc;
  }
  rc = attachCompatible(idev, hwpt, pasid) || driverAttach(idev, hwpt.domain, pasid, old.domain);
  if (rc) {
    if (moveIoas) releaseReserved(idev, hwpt, pasid);
    return rc;
  }
  if (moveIoas) releaseReserved(idev, old, pasid);
  old.fault?.autoRespond(idev, old);
  attach.hwpt = hwpt;
  // Every device of the group moves: each keeps one reference on the attached HWPT.
  for (const d of attach.devices) {
    if (d === idev) continue;
    pinObject(d, hwpt);
    hwptPut(d.ictx, d, old);
  }
  pinObject(idev, hwpt);
  return old;
};

// Immediate attach is only ever a plain attach (nothing to restore but the detach).
setUndoImmediateAttach((idev, pasid) => {
  const hwpt = hwptDetach(idev, pasid);
  if (hwpt) unpinObject(idev, hwpt);
});

/**
 * The core's name for a caller's PASID: Linux's `IOMMU_NO_PASID` is 0, so PASID 0 from the
 * uAPI (VFIO_DEVICE_ATTACH_PASID, IOMMU_TEST_OP_PASID_ATTACH) names the RID itself, never a
 * separate PASID a driver would program over the RID's own entry (VT-d RID_PASID, the SMMU's
 * substream 0).
 */
function ridOrPasid(pasid: number | undefined): number | undefined {
  return pasid === 0 ? undefined : pasid;
}

/**
 * `iommufd_device_attach`: attach the RID (pasid undefined or 0, `IOMMU_NO_PASID`) or a
 * PASID to an IOAS or HWPT.
 */
export function iommufdDeviceAttach(idev: BoundDevice, pasid: number | undefined, ptId: number): { ptId: number } | Errno {
  return changePt(idev, ridOrPasid(pasid), ptId, doAttach);
}

/** `iommufd_device_replace` (pasid 0 is the RID, as in attach). */
export function iommufdDeviceReplace(idev: BoundDevice, pasid: number | undefined, ptId: number): { ptId: number } | Errno {
  return changePt(idev, ridOrPasid(pasid), ptId, doReplace);
}

/** `iommufd_device_detach`: a no-op when not attached (pasid 0 is the RID, as in attach). */
export function iommufdDeviceDetach(idev: BoundDevice, pasid: number | undefined): void {
  const hwpt = hwptDetach(idev, ridOrPasid(pasid));
  if (hwpt) hwptPut(idev.ictx, idev, hwpt);
}

/** The domain currently translating `dev` (RID, or a PASID). */
export function deviceAttachedDomain(dev: CoreDevice, pasid?: number): IommuDomain | undefined {
  return pasid === undefined ? dev.group.domain : dev.pasidDomains.get(pasid);
}



type Cmd<L> = L extends { decode(b: Uint8Array): infer V } ? V : never;

/** The piece size of the user buffer clearing in IOMMU_GET_HW_INFO. */
const CLEAR_CHUNK = 0x10000;

/** IOMMU_GET_HW_INFO (device.c `iommufd_get_hw_info`). */
export function iommufdGetHwInfo(ucmd: Ucmd<Cmd<typeof iommu_hw_info>>): 0 | Errno {
  const cmd = ucmd.cmd;
  const ictx = ucmd.ictx;
  if (cmd.flags & ~IOMMU_HW_INFO_FLAG_INPUT_TYPE) return EOPNOTSUPP;
  if (cmd.__reserved.some((b) => b !== 0)) return EOPNOTSUPP;
  if (!(cmd.flags & IOMMU_HW_INFO_FLAG_INPUT_TYPE)) cmd.in_data_type = cmd.out_data_type = IOMMU_HW_INFO_TYPE_DEFAULT;
  const idev = ictx.getObject<BoundDevice>(cmd.dev_id, 'DEVICE');
  if (typeof idev === 'number') return idev;
  try {
    const dev = idev.dev;
    const ops = dev.iommu.ops;
    let data: Uint8Array = new Uint8Array(0);
    let outType = IOMMU_HW_INFO_TYPE_NONE;
    if (ops.hwInfo) {
      const r = ops.hwInfo(dev, cmd.in_data_type);
      if (typeof r === 'number') return r;
      // A driver reporting type NONE is buggy (WARN_ON_ONCE).
      if (r.type === IOMMU_HW_INFO_TYPE_NONE) return EOPNOTSUPP;
      data = r.data;
      outType = r.type;
    }
    // copy_to_user of min(len) bytes, then clear_user of the rest of the user's buffer, in
    // bounded pieces: a 4 GiB data_len must fault where the memory ends, not allocate 4 GiB.
    const copyLen = Math.min(cmd.data_len, data.byteLength);
    if (copyLen && ictx.process.copyToUser(cmd.data_uptr, data.subarray(0, copyLen))) return EFAULT;
    const zeros = new Uint8Array(Math.min(cmd.data_len - copyLen, CLEAR_CHUNK));
    for (let off = copyLen; off < cmd.data_len; off += zeros.length) {
      const n = Math.min(zeros.length, cmd.data_len - off);
      if (ictx.process.copyToUser(cmd.data_uptr + BigInt(off), zeros.subarray(0, n))) return EFAULT;
    }
    cmd.data_len = data.byteLength;
    cmd.in_data_type = outType;
    cmd.out_data_type = outType;
    cmd.out_capabilities = ops.capable(dev, 'DIRTY_TRACKING') ? BigInt(IOMMU_HW_CAP_DIRTY_TRACKING) : 0n;
    cmd.out_max_pasid_log2 = 0;
    if (dev.pasid && devicePasidLog2(dev)) {
      cmd.out_max_pasid_log2 = devicePasidLog2(dev);
      if (dev.pasid.exec) cmd.out_capabilities |= BigInt(IOMMU_HW_CAP_PCI_PASID_EXEC);
      if (dev.pasid.priv) cmd.out_capabilities |= BigInt(IOMMU_HW_CAP_PCI_PASID_PRIV);
    }
    return ucmd.respond();
  } finally {
    ictx.putObject(idev);
  }
}
