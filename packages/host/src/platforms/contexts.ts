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
import type { FaultInjector } from '@iommufd/driver-api';
import { ENOMEM } from '@iommufd/uapi';
import type { KernelFile } from '../kernel-types.js';
import type { HostObjectInfo, Platform } from '../platform.js';
import type { ProcessImpl } from '../process.js';
import type { VfioIommufdOps } from '../vfio-cdev.js';

/** What {@link IommufdContexts.list} shows for a context released with nothing left. */
const RELEASED_CLEAN: { released: boolean; objects: HostObjectInfo[] } = Object.freeze({ released: true, objects: Object.freeze([]) as unknown as HostObjectInfo[] });

/** Every context opened on one core, released or not. */
export class IommufdContexts {
  /** Contexts from the first one not known to be released and empty, in open order. */
  private readonly opened: IommufdContext[] = [];
  /**
   * How many contexts before {@link opened} were released holding nothing. They are only
   * counted: a VMM that opens and closes /dev/iommu for every VM must not make the host
   * keep every dead context (and searching them on each VFIO bind) for ever.
   */
  private releasedClean = 0;

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
    this.compact();
    this.opened.push(c);
    return c;
  }

  /**
   * The {@link Platform} members every platform answers from its contexts on `core`:
   * open("/dev/iommu") — ENOMEM when `injector()` fails the file allocation — the VFIO
   * functions, a context's objects and the leak view.
   */
  platformMembers(core: IommuCore, injector: () => FaultInjector | undefined): Pick<Platform, 'openIommufd' | 'vfio' | 'objects' | 'contexts'> {
    return {
      openIommufd: (process: ProcessImpl, vfioCompat: boolean): KernelFile | number => {
        if (injector()?.shouldFail('file-alloc')) return ENOMEM;
        return this.open(core, process.kernel, vfioCompat);
      },
      vfio: this.vfio,
      objects: (file) => this.objects(file),
      contexts: () => this.list(),
    };
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
    this.compact();
    const rest = this.opened.map((c) => ({ released: isReleased(c), objects: objectsOf(c) }));
    return [...new Array<{ released: boolean; objects: HostObjectInfo[] }>(this.releasedClean).fill(RELEASED_CLEAN), ...rest];
  }

  /** Counts (and forgets) the leading contexts that are released and hold no object. */
  private compact(): void {
    let n = 0;
    while (n < this.opened.length && isReleased(this.opened[n]!) && this.opened[n]!.objects().length === 0) n++;
    if (n === 0) return;
    this.opened.splice(0, n);
    this.releasedClean += n;
  }
}

function isReleased(c: IommufdContext): boolean {
  return (c as IommufdContext & { isReleased?: boolean }).isReleased === true;
}

function objectsOf(c: IommufdContext): HostObjectInfo[] {
  return c.objects().map((o) => ({ id: o.id, type: o.type, users: o.users, state: o.state, refs: [...o.refs] }));
}
