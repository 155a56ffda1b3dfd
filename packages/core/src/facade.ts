/**
 * The VFIO-cdev-facing entry points that take the public context type (the host holds an
 * {@link IommufdContext}, the implementation is the core's).
 */
import type { Errno } from './kernel.js';
import type { IommufdContext, IommufdCtxImpl } from './context.js';
import { iommufdDeviceBind as bind, type BoundDevice, type CoreDevice } from './device.js';

/**
 * `iommufd_device_bind`: binds `dev` to the context; `devId` is the DEVICE object ID. The
 * binding holds a reference on the ctx file, except for the selftest's mock devices
 * (`selftestMockDevice`), which are owned by a SELFTEST object of the ctx itself.
 */
export function iommufdDeviceBind(
  ctx: IommufdContext,
  dev: CoreDevice,
  opts: { selftestMockDevice?: boolean } = {},
): { idev: BoundDevice; devId: number } | Errno {
  return bind(ctx as IommufdCtxImpl, dev, opts);
}
