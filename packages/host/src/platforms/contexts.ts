/**
 * The /dev/iommu contexts a platform has opened on its core, and what every platform
 * answers from them: the VFIO cdev's iommufd functions, a context's objects, the leak view.
 */
import {
  iommufdDeviceAttach,
  iommufdDeviceBind,
  iommufdDeviceDetach,
  iommufdDeviceReplace,
  iommufdDeviceUnbind,
  type BoundDevice,
  type CoreDevice,
  type IommuCore,
  type IommufdContext,
  type KernelProcess,
} from '@iommufd/core';
import type { KernelFile } from '../kernel-types.js';
import type { HostObjectInfo } from '../platform.js';
import type { VfioIommufdOps } from '../vfio-cdev.js';

/** Every context opened on one core, released or not. */
export class IommufdContexts {
  private readonly opened: IommufdContext[] = [];

  /** What the VFIO cdevs call: the core's VFIO-facing functions over this core's contexts. */
  readonly vfio: VfioIommufdOps<unknown, unknown> = {
    isIommufd: (file) => this.has(file),
    bind: (c, dev) => iommufdDeviceBind(c as IommufdContext, dev as CoreDevice),
    attach: (idev, pasid, pt) => iommufdDeviceAttach(idev as BoundDevice, pasid, pt),
    replace: (idev, pasid, pt) => iommufdDeviceReplace(idev as BoundDevice, pasid, pt),
    detach: (idev, pasid) => iommufdDeviceDetach(idev as BoundDevice, pasid),
    unbind: (idev) => iommufdDeviceUnbind(idev as BoundDevice),
  };

  /** open("/dev/iommu") on `core` (`vfioCompat` for "/dev/vfio/vfio"). */
  open(core: IommuCore, process: KernelProcess, vfioCompat: boolean): IommufdContext {
    const c = core.open(process, { vfioCompat });
    this.opened.push(c);
    return c;
  }

  /** Whether `file` is one of these contexts (iommufd_ctx_from_file). */
  has(file: KernelFile): boolean {
    return this.opened.includes(file as IommufdContext);
  }

  /** The objects of a context, or undefined when `file` is not one of these contexts. */
  objects(file: KernelFile): HostObjectInfo[] | undefined {
    return this.has(file) ? objectsOf(file as IommufdContext) : undefined;
  }

  /** Every context with whether its last close ran and the objects it still holds. */
  list(): { released: boolean; objects: HostObjectInfo[] }[] {
    return this.opened.map((c) => ({ released: (c as IommufdContext & { isReleased?: boolean }).isReleased === true, objects: objectsOf(c) }));
  }
}

function objectsOf(c: IommufdContext): HostObjectInfo[] {
  return c.objects().map((o) => ({ id: o.id, type: o.type, users: o.users, state: o.state, refs: [...o.refs] }));
}
