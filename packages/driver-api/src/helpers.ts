/**
 * The helpers a driver may call (the kernel's `drivers/iommu/iommufd/driver.c`). Each one
 * reaches the core through a core field (`viommu->ictx`), which is why drivers may only use
 * them once the core has initialized the core struct — i.e. inside `viommuInit` and later,
 * never before: the reason `get_viommu_size` + `viommu_init` replaced `viommu_alloc`.
 */
import { EINVAL } from '@iommufd/uapi';
import type { Device, Errno, IommuDevice, Status } from './ops.js';
import type { IommufdHwQueue, IommufdVdevice, IommufdViommu } from './objects.js';

/**
 * `iommufd_viommu_find_dev(viommu, vdev_id)`: the physical device of the vDEVICE with virtual
 * ID `vdevId` on `viommu`, or `undefined`.
 */
export function viommuFindDev(viommu: IommufdViommu, vdevId: bigint): Device | undefined {
  return viommu.ictx.driverServices.viommuFindDev(viommu, vdevId);
}

/** `iommufd_viommu_get_vdev_id(viommu, dev, &vdev_id)`: the virtual ID, or ENOENT. */
export function viommuGetVdevId(viommu: IommufdViommu, dev: Device): bigint | Errno {
  return viommu.ictx.driverServices.viommuGetVdevId(viommu, dev);
}

/** `iommufd_vdevice_to_device(vdev)`: the physical device behind a vDEVICE. */
export function vdeviceToDevice(vdev: IommufdVdevice): Device {
  return vdev.viommu.ictx.driverServices.vdeviceToDevice(vdev);
}

/**
 * `iommufd_viommu_report_event(viommu, type, data, len)`: queue a vEVENT on the vIOMMU's
 * vEVENTQ of `type`. Empty data → EINVAL; no vEVENTQ of that type → EOPNOTSUPP (dropped);
 * a full queue records a lost event (0); a failed record allocation → ENOMEM (lost).
 */
export function viommuReportEvent(viommu: IommufdViommu, type: number, data: Uint8Array): Status {
  if (data.byteLength === 0) return EINVAL;
  return viommu.ictx.driverServices.viommuReportEvent(viommu, type, data);
}

/**
 * `iommufd_viommu_alloc_mmap(viommu, mmio_addr, length, &offset)`: make `length` bytes of
 * MMIO at physical `mmioAddr` mmap-able through the iommufd; returns the mmap offset
 * (never 0). Address or length not page aligned, or length 0 → EINVAL.
 */
export function viommuAllocMmap(viommu: IommufdViommu, mmioAddr: bigint, length: bigint): bigint | Errno {
  const pageMask = 0xfffn;
  if ((mmioAddr & pageMask) !== 0n || (length & pageMask) !== 0n || length === 0n) return EINVAL;
  return viommu.ictx.driverServices.viommuAllocMmap(viommu, mmioAddr, length);
}

/** `iommufd_viommu_destroy_mmap(viommu, offset)`: remove a region from the mmap space. */
export function viommuDestroyMmap(viommu: IommufdViommu, offset: bigint): void {
  viommu.ictx.driverServices.viommuDestroyMmap(viommu, offset);
}

/**
 * `iommufd_hw_queue_depend(dependent, depended, member)`: `dependent` pins `depended`, so
 * `depended` cannot be destroyed first (EBUSY). Same queue or different vIOMMUs → EINVAL.
 */
export function hwQueueDepend(dependent: IommufdHwQueue, depended: IommufdHwQueue): Status {
  if (dependent === depended) return EINVAL;
  if (dependent.viommu !== depended.viommu) return EINVAL;
  return dependent.viommu.ictx.driverServices.hwQueueDepend(dependent, depended);
}

/** `iommufd_hw_queue_undepend(dependent, depended, member)`: drop a {@link hwQueueDepend} pin. */
export function hwQueueUndepend(dependent: IommufdHwQueue, depended: IommufdHwQueue): void {
  if (dependent === depended || dependent.viommu !== depended.viommu) return;
  dependent.viommu.ictx.driverServices.hwQueueUndepend(dependent, depended);
}

/**
 * The fault-injection hook for driver allocation points (the kernel's
 * `iommufd_should_fail()`): true when the core's fail_nth injector wants the allocation at
 * `site` to fail. Always false for an instance not registered with a core.
 */
export function iommuShouldFail(iommu: IommuDevice, site: string): boolean {
  return iommu.faultInjector?.shouldFail(site) ?? false;
}

/** `PAGE_SIZE` of the modelled kernel (4 KiB). */
export const PAGE_SIZE = 4096n;
