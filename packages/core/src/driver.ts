/**
 * What drivers may call (driver.c): the core side of the `@iommufd/driver-api` helpers,
 * reached through `viommu.ictx.driverServices`.
 */
import { EINVAL, ENOENT } from '@iommufd/uapi';
import type { Device, IommufdDriverServices } from '@iommufd/driver-api';
import type { IommufdCtxImpl } from './context.js';
import { pinObject, unpinObject } from './object.js';
import { viommuOfCore } from './viommu.js';
import { hwQueueOfCore } from './hw-queue.js';
import { viommuReportEvent } from './eventq.js';

/** The driver helper implementation for one context. */
export function driverServices(ictx: IommufdCtxImpl): IommufdDriverServices {
  return {
    viommuFindDev(core, vdevId) {
      return viommuOfCore.get(core)?.vdevs.get(vdevId)?.idev.dev;
    },
    viommuGetVdevId(core, dev: Device) {
      const viommu = viommuOfCore.get(core);
      for (const [virtId, vdev] of viommu?.vdevs ?? []) if (vdev.idev.dev === dev) return virtId;
      return ENOENT;
    },
    vdeviceToDevice(vdev) {
      const dev = vdev.view.getPtr('idev');
      if (!dev) throw new Error('vdevice_to_device before the core set vdev->idev');
      return dev;
    },
    viommuReportEvent(core, type, data) {
      const viommu = viommuOfCore.get(core);
      if (!viommu) return EINVAL;
      return viommuReportEvent(viommu, type, data);
    },
    viommuAllocMmap(core, mmioAddr, length) {
      const viommu = viommuOfCore.get(core);
      if (!viommu) return EINVAL;
      return ictx.allocMmap(viommu, mmioAddr, length);
    },
    viommuDestroyMmap(core, offset) {
      const viommu = viommuOfCore.get(core);
      if (viommu) ictx.destroyMmap(viommu, offset);
    },
    hwQueueDepend(dependent, depended) {
      const a = hwQueueOfCore.get(dependent);
      const b = hwQueueOfCore.get(depended);
      if (!a || !b || a === b) return EINVAL;
      pinObject(a, b);
      return 0;
    },
    hwQueueUndepend(dependent, depended) {
      const a = hwQueueOfCore.get(dependent);
      const b = hwQueueOfCore.get(depended);
      if (a && b && a.pinned.includes(b)) unpinObject(a, b);
    },
    shouldFail(site) {
      return ictx.shouldFail(site);
    },
  };
}
