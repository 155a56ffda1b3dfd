/**
 * The VFIO type1 container ioctls /dev/iommu also answers (vfio_compat.c), for request
 * numbers below the iommufd range.
 */
import { ENODEV, ENOTTY } from '@iommufd/uapi';
import type { IommufdCtxImpl } from './context.js';
import type { HwptPaging } from './hw-pagetable.js';

/** `VFIO_GET_API_VERSION` = `_IO(';', 100)`. */
export const VFIO_GET_API_VERSION = 0x3b64;
/** `VFIO_CHECK_EXTENSION` = `_IO(';', 101)`; the argument is the extension number. */
export const VFIO_CHECK_EXTENSION = 0x3b65;
/** `VFIO_API_VERSION` */
export const VFIO_API_VERSION = 0;

const VFIO_TYPE1_IOMMU = 1;
const VFIO_TYPE1V2_IOMMU = 3;
const VFIO_DMA_CC_IOMMU = 4;
const VFIO_UNMAP_ALL = 9;

/** `iommufd_vfio_ioctl`: 0/positive or -errno; unknown → ENOTTY. */
export function vfioCompatIoctl(ictx: IommufdCtxImpl, request: number, arg: bigint): number {
  switch (request >>> 0) {
    case VFIO_GET_API_VERSION:
      return VFIO_API_VERSION;
    case VFIO_CHECK_EXTENSION:
      return checkExtension(ictx, Number(arg));
    default:
      return -ENOTTY;
  }
}

function checkExtension(ictx: IommufdCtxImpl, type: number): number {
  switch (type) {
    case VFIO_TYPE1_IOMMU:
    case VFIO_TYPE1V2_IOMMU:
    case VFIO_UNMAP_ALL:
      return 1;
    case VFIO_DMA_CC_IOMMU: {
      // Coherent only if every domain of the compat IOAS enforces cache coherency.
      const ioas = ictx.vfioIoas;
      if (!ioas) return -ENODEV;
      return ioas.hwptList.every((h: HwptPaging) => h.enforceCacheCoherency) ? 1 : 0;
    }
    default:
      return 0;
  }
}
