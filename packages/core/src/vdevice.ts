/**
 * vDEVICE objects (viommu.c): a device's virtual ID on a vIOMMU, with the optional
 * driver-sized struct (`vdevice_size` + `vdevice_init`).
 */
import { EEXIST, EINVAL, ENOENT, ENOMEM, EOPNOTSUPP, type iommu_vdevice_alloc } from '@iommufd/uapi';
import { IOMMUFD_VDEVICE, IommufdVdevice, StructMemory, type Errno } from '@iommufd/driver-api';
import type { IommufdCtxImpl, Ucmd } from './context.js';
import { IommufdObject, pinObject, unpinObject } from './object.js';
import type { BoundDevice } from './device.js';
import type { Viommu } from './viommu.js';
import { ULONG_MAX } from './io-pagetable.js';

type Cmd<L> = L extends { decode(b: Uint8Array): infer V } ? V : never;

/** A VDEVICE object. */
export class Vdevice extends IommufdObject {
  /** `VDEVICE` */
  readonly type = 'VDEVICE' as const;
  /** The `struct iommufd_vdevice` at offset 0 of the allocation. */
  readonly core: IommufdVdevice;
  /** The vIOMMU (pinned). */
  viommu!: Viommu;
  /** The device (get-style reference: users + wait_cnt). */
  idev!: BoundDevice;
  /** virt_id. */
  virtId = 0n;
  constructor(ictx: IommufdCtxImpl, size: number) {
    super(ictx);
    this.core = new IommufdVdevice(new StructMemory(size));
  }

  /** `iommufd_vdevice_abort`: driver destroy, vdevs slot, vIOMMU pin, device link. */
  override abort(): void {
    const viommu = this.viommu;
    if (!viommu) return;
    this.core.destroy?.(this.core);
    this.core.destroy = undefined;
    if (viommu.vdevs.get(this.virtId) === this) viommu.vdevs.delete(this.virtId);
    unpinObject(this, viommu);
    if (this.idev) this.idev.vdev = undefined;
  }

  /** `iommufd_vdevice_destroy`: abort, then drop the device reference. */
  destroy(): void {
    const idev = this.idev;
    this.abort();
    this.viommu = undefined as unknown as Viommu;
    if (idev) this.ictx.putObject(idev);
  }
}

/** IOMMU_VDEVICE_ALLOC */
export function iommufdVdeviceAlloc(ucmd: Ucmd<Cmd<typeof iommu_vdevice_alloc>>): 0 | Errno {
  const cmd = ucmd.cmd;
  const ictx = ucmd.ictx;
  if (cmd.virt_id > ULONG_MAX) return EINVAL;
  const viommu = ictx.getObject<Viommu>(cmd.viommu_id, 'VIOMMU');
  if (typeof viommu === 'number') return viommu;
  let keepIdev = false;
  const idev = ictx.getObject<BoundDevice>(cmd.dev_id, 'DEVICE');
  try {
    if (typeof idev === 'number') return idev;
    if (viommu.iommuDev !== idev.dev.iommu) return EINVAL;
    if (idev.destroying) return ENOENT;
    if (idev.vdev) return EEXIST;
    const vops = viommu.core.ops;
    let size = IOMMUFD_VDEVICE.size;
    if (vops?.vdeviceSize) {
      if (vops.vdeviceSize < IOMMUFD_VDEVICE.size || !vops.vdeviceInit) return EOPNOTSUPP;
      size = vops.vdeviceSize;
    }
    const vdev = ictx.allocObject(new Vdevice(ictx, size));
    if (typeof vdev === 'number') return vdev;
    vdev.virtId = cmd.virt_id;
    vdev.viommu = viommu;
    pinObject(vdev, viommu);
    // The lookup's users + wait_cnt reference on the device is kept by the vDEVICE.
    vdev.idev = idev;
    idev.vdev = vdev;
    vdev.core.initCore({ id: vdev.id, viommu: viommu.core, dev: idev.dev, virtId: cmd.virt_id });
    if (viommu.vdevs.has(cmd.virt_id)) {
      vdev.idev = undefined as unknown as BoundDevice;
      idev.vdev = undefined;
      ictx.abortAndDestroy(vdev);
      return EEXIST;
    }
    viommu.vdevs.set(cmd.virt_id, vdev);
    if (vops?.vdeviceInit) {
      const obs = ictx.core.observer;
      let rc: number = ENOMEM;
      if (!ictx.shouldFail('driver-init')) {
        obs?.opBegin('vdeviceInit', { vdevice: vdev.id, viommu: viommu.id, device: idev.dev.name, virtId: `0x${cmd.virt_id.toString(16)}` });
        rc = vops.vdeviceInit(vdev.core);
        obs?.opEnd('vdeviceInit', rc);
      }
      if (rc) {
        ictx.abortAndDestroy(vdev);
        return rc;
      }
    }
    cmd.out_vdevice_id = vdev.id;
    const rc = ucmd.respond();
    if (rc) {
      ictx.abortAndDestroy(vdev);
      return rc;
    }
    ictx.finalize(vdev);
    keepIdev = true;
    return 0;
  } finally {
    if (typeof idev !== 'number' && !keepIdev) ictx.putObject(idev);
    ictx.putObject(viommu);
  }
}
