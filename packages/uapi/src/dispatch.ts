/**
 * The iommufd ioctl table as data (the kernel's `iommufd_ioctl_ops[]` in `main.c`): one row
 * per command 0x80–0x94 with its struct and minimum user size. The core's dispatcher and
 * the typed wrappers both read it, so a min size is stated in exactly one place.
 */
import * as uapi from './iommufd.js';
import type { StructLayout } from './layout.js';

/** The C name of an iommufd ioctl (`'IOMMU_IOAS_MAP'` …). */
export type IommufdIoctlName =
  | 'IOMMU_DESTROY'
  | 'IOMMU_IOAS_ALLOC'
  | 'IOMMU_IOAS_ALLOW_IOVAS'
  | 'IOMMU_IOAS_COPY'
  | 'IOMMU_IOAS_IOVA_RANGES'
  | 'IOMMU_IOAS_MAP'
  | 'IOMMU_IOAS_UNMAP'
  | 'IOMMU_OPTION'
  | 'IOMMU_VFIO_IOAS'
  | 'IOMMU_HWPT_ALLOC'
  | 'IOMMU_GET_HW_INFO'
  | 'IOMMU_HWPT_SET_DIRTY_TRACKING'
  | 'IOMMU_HWPT_GET_DIRTY_BITMAP'
  | 'IOMMU_HWPT_INVALIDATE'
  | 'IOMMU_FAULT_QUEUE_ALLOC'
  | 'IOMMU_IOAS_MAP_FILE'
  | 'IOMMU_VIOMMU_ALLOC'
  | 'IOMMU_VDEVICE_ALLOC'
  | 'IOMMU_IOAS_CHANGE_PROCESS'
  | 'IOMMU_VEVENTQ_ALLOC'
  | 'IOMMU_HW_QUEUE_ALLOC';

/** One row of {@link IOMMUFD_IOCTLS}. */
export interface IommufdIoctl {
  /** Command number (`request & 0xff`), 0x80–0x94. */
  readonly nr: number;
  /** C macro name of the request. */
  readonly name: IommufdIoctlName;
  /** The full request value, `_IO(';', nr)`. */
  readonly request: number;
  /** The struct the argument points to. */
  readonly layout: StructLayout;
  /** Smallest `size` the kernel accepts (`offsetofend` of the table's last field); below it EINVAL. */
  readonly minSize: number;
}

function row(name: IommufdIoctlName, request: number, layout: StructLayout): IommufdIoctl {
  return Object.freeze({ nr: request & 0xff, name, request, layout, minSize: layout.minSize });
}

/** Every iommufd ioctl, indexed by `nr - IOMMUFD_CMD_BASE` (Linux 6.17 has no holes in 0x80–0x94). */
export const IOMMUFD_IOCTLS: readonly IommufdIoctl[] = Object.freeze([
  row('IOMMU_DESTROY', uapi.IOMMU_DESTROY, uapi.iommu_destroy),
  row('IOMMU_IOAS_ALLOC', uapi.IOMMU_IOAS_ALLOC, uapi.iommu_ioas_alloc),
  row('IOMMU_IOAS_ALLOW_IOVAS', uapi.IOMMU_IOAS_ALLOW_IOVAS, uapi.iommu_ioas_allow_iovas),
  row('IOMMU_IOAS_COPY', uapi.IOMMU_IOAS_COPY, uapi.iommu_ioas_copy),
  row('IOMMU_IOAS_IOVA_RANGES', uapi.IOMMU_IOAS_IOVA_RANGES, uapi.iommu_ioas_iova_ranges),
  row('IOMMU_IOAS_MAP', uapi.IOMMU_IOAS_MAP, uapi.iommu_ioas_map),
  row('IOMMU_IOAS_UNMAP', uapi.IOMMU_IOAS_UNMAP, uapi.iommu_ioas_unmap),
  row('IOMMU_OPTION', uapi.IOMMU_OPTION, uapi.iommu_option),
  row('IOMMU_VFIO_IOAS', uapi.IOMMU_VFIO_IOAS, uapi.iommu_vfio_ioas),
  row('IOMMU_HWPT_ALLOC', uapi.IOMMU_HWPT_ALLOC, uapi.iommu_hwpt_alloc),
  row('IOMMU_GET_HW_INFO', uapi.IOMMU_GET_HW_INFO, uapi.iommu_hw_info),
  row('IOMMU_HWPT_SET_DIRTY_TRACKING', uapi.IOMMU_HWPT_SET_DIRTY_TRACKING, uapi.iommu_hwpt_set_dirty_tracking),
  row('IOMMU_HWPT_GET_DIRTY_BITMAP', uapi.IOMMU_HWPT_GET_DIRTY_BITMAP, uapi.iommu_hwpt_get_dirty_bitmap),
  row('IOMMU_HWPT_INVALIDATE', uapi.IOMMU_HWPT_INVALIDATE, uapi.iommu_hwpt_invalidate),
  row('IOMMU_FAULT_QUEUE_ALLOC', uapi.IOMMU_FAULT_QUEUE_ALLOC, uapi.iommu_fault_alloc),
  row('IOMMU_IOAS_MAP_FILE', uapi.IOMMU_IOAS_MAP_FILE, uapi.iommu_ioas_map_file),
  row('IOMMU_VIOMMU_ALLOC', uapi.IOMMU_VIOMMU_ALLOC, uapi.iommu_viommu_alloc),
  row('IOMMU_VDEVICE_ALLOC', uapi.IOMMU_VDEVICE_ALLOC, uapi.iommu_vdevice_alloc),
  row('IOMMU_IOAS_CHANGE_PROCESS', uapi.IOMMU_IOAS_CHANGE_PROCESS, uapi.iommu_ioas_change_process),
  row('IOMMU_VEVENTQ_ALLOC', uapi.IOMMU_VEVENTQ_ALLOC, uapi.iommu_veventq_alloc),
  row('IOMMU_HW_QUEUE_ALLOC', uapi.IOMMU_HW_QUEUE_ALLOC, uapi.iommu_hw_queue_alloc),
]);

/**
 * The table row for a request value, or undefined when the request is not exactly an
 * iommufd ioctl (wrong type or direction bits, or a number outside 0x80–0x94).
 */
export function iommufdIoctlByRequest(request: number): IommufdIoctl | undefined {
  const entry = IOMMUFD_IOCTLS[(request & 0xff) - uapi.IOMMUFD_CMD_BASE];
  return entry !== undefined && entry.request === request >>> 0 ? entry : undefined;
}

/** The table row for an ioctl's C name. */
export function iommufdIoctlByName(name: IommufdIoctlName): IommufdIoctl {
  const entry = IOMMUFD_IOCTLS.find((e) => e.name === name);
  if (!entry) throw new RangeError(`${name} is not an iommufd ioctl`);
  return entry;
}
