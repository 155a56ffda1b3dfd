/**
 * The core's observation point for driver op calls: when {@link IommuCore.observer} is set,
 * every call the core makes into a driver (`domainAllocPagingFlags`, `attachDev`,
 * `mapPages`, `viommuInit`, `cacheInvalidateUser`, `hwQueueInitPhys`, …) is reported before
 * it runs and after it returns. The core wraps its own call sites, so drivers need not know;
 * with no observer each site costs one null check (the arguments are not even built).
 */
import type { Device, IommuDomain } from '@iommufd/driver-api';
import type { IommufdObject } from './object.js';

/** What a driver op call is reported with: object IDs, device names and the values that matter. */
export type DriverOpArgs = Readonly<Record<string, string | number>>;

/**
 * Receives driver op calls. Calls nest like the ops do (a `mapPages` failure inside an
 * ioctl's `opBegin`/`opEnd` pair may be followed by an `unmapPages` pair); every
 * `opBegin` is matched by one `opEnd` unless the driver throws.
 */
export interface DriverOpObserver {
  /** The core is about to call driver op `op` (the Linux op name). */
  opBegin(op: string, args: DriverOpArgs): void;
  /**
   * The op returned: `errno` 0 on success, else the positive errno it failed with; `value`
   * for ops that return an amount (`unmapPages`: bytes unmapped; `getViommuSize`,
   * `getHwQueueSize`: the size the core then allocates).
   */
  opEnd(op: string, errno: number, value?: number): void;
}

/**
 * How a domain is named in op arguments: the ID of the HWPT the core attached it to, else
 * its type (`blocked`, `identity`: the driver's static domains).
 */
export function domainLabel(domain: IommuDomain | undefined): string | number {
  if (domain === undefined) return 'none';
  const hwpt = domain.cookie as IommufdObject | undefined;
  return typeof hwpt?.id === 'number' ? hwpt.id : domain.type;
}

/** How a device is named in op arguments: its name (`0000:00:01.0`, `mock0`). */
export const deviceLabel = (dev: Device): string => dev.name;

/** An op's result as {@link DriverOpObserver.opEnd} takes it: an errno for an errno, else 0. */
export const opStatus = (r: unknown): number => (typeof r === 'number' ? r : 0);
