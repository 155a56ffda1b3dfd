/**
 * The iommu core glue: registered IOMMU instances, devices and their groups, and the
 * /dev/iommu opens. This is the facade the host (the rest of the simulated kernel) calls.
 */
import type { DevicePasidCap, IommuDevice, IommufdDriverServices } from '@iommufd/driver-api';
import { IommufdCtxImpl, type IommufdContext } from './context.js';
import { CoreDevice, IommuGroup } from './device.js';
import { driverServices } from './driver.js';
import { dispatchIoctl, type TestCommandHandler } from './main.js';
import { IommufdError, type DirectMap, type FaultInjector, type KernelProcess } from './kernel.js';
import type { DriverOpObserver } from './observe.js';

/** Options of {@link IommuCore}. */
export interface IommuCoreOptions {
  /** fail_nth-style fault injection for every allocation point (core and drivers). */
  faultInjection?: FaultInjector;
  /**
   * The selftest kernel's IOMMU_TEST_CMD (nr 0xa0) handler. When set, the dispatch table
   * extends to 0xa0 (holes 0x95–0x9f answer ENOTTY). Returns 0/positive or -errno.
   */
  testCommand?: (ctx: IommufdContext, arg: bigint, userSize: number) => number;
  /**
   * The direct map of RAM. In-kernel accesses read pinned pages through it when they cannot
   * use the source process's memory (that process has exited, or another one asks); without
   * it those accesses fail with EFAULT.
   */
  directMap?: DirectMap;
}

/** What {@link IommuCore.addDevice} takes. */
export interface DeviceDescription {
  /** Device name. */
  name: string;
  /** The IOMMU instance translating it (registered with {@link IommuCore.registerIommu}). */
  iommu: IommuDevice;
  /** iommu_group number; devices with the same number share a group. */
  group: number;
  /** PASID capability. */
  pasid?: { maxPasidLog2: number; exec?: boolean; priv?: boolean };
  /** PRI capable. */
  pri?: boolean;
  /** ATS capable. */
  ats?: boolean;
  /** PCI virtual function. */
  isVf?: boolean;
  /** Accepted for the host contract; coherency is what the driver's `capable()` reports. */
  cacheCoherent?: boolean;
}

/** The core: IOMMU instances, devices, and iommufd contexts. */
export class IommuCore {
  /** The fault injector every allocation point asks. */
  faultInjector: FaultInjector | undefined;
  /** Told of every driver op the core calls (tracing); undefined: no observation, no cost. */
  observer: DriverOpObserver | undefined;
  private readonly instances = new Set<IommuDevice>();
  private readonly groups = new Map<number, IommuGroup>();
  private readonly devices: CoreDevice[] = [];
  private readonly contexts = new Set<IommufdCtxImpl>();
  private readonly testCommand: TestCommandHandler | undefined;
  /** The direct map of RAM ({@link IommuCoreOptions.directMap}). */
  readonly directMap: DirectMap | undefined;

  /** Creates a core with no instances. */
  constructor(options: IommuCoreOptions = {}) {
    this.faultInjector = options.faultInjection;
    this.directMap = options.directMap;
    const tc = options.testCommand;
    this.testCommand = tc ? (ctx, arg, size) => tc(ctx, arg, size) : undefined;
  }

  /** `iommu_device_register`. */
  registerIommu(instance: IommuDevice): void {
    if (this.instances.has(instance)) throw new IommufdError(`IOMMU instance ${instance.name} is already registered`);
    this.instances.add(instance);
    instance.faultInjector = { shouldFail: (site) => this.faultInjector?.shouldFail(site) ?? false };
  }

  /** Adds a device behind a registered instance, probing it with the driver. */
  addDevice(desc: DeviceDescription): CoreDevice {
    if (!this.instances.has(desc.iommu)) {
      throw new IommufdError(`device ${desc.name}: IOMMU instance ${desc.iommu.name} is not registered (call registerIommu first)`);
    }
    let group = this.groups.get(desc.group);
    if (!group) {
      group = new IommuGroup(desc.group);
      this.groups.set(desc.group, group);
    }
    const pasid: DevicePasidCap | undefined = desc.pasid
      ? { maxPasidLog2: desc.pasid.maxPasidLog2, exec: desc.pasid.exec ?? false, priv: desc.pasid.priv ?? false }
      : undefined;
    const dev = new CoreDevice(desc.name, desc.iommu, group, pasid, desc.pri ?? false, desc.ats ?? false, desc.isVf ?? false);
    const rc = desc.iommu.ops.probeDevice?.(dev) ?? 0;
    if (rc) throw new IommufdError(`device ${desc.name}: the driver's probeDevice failed with errno ${rc}`);
    group.devices.push(dev);
    this.devices.push(dev);
    return dev;
  }

  /** Removes a device that is not bound (hot unplug). */
  removeDevice(dev: CoreDevice): void {
    if (dev.bound) throw new IommufdError(`device ${dev.name} is still bound to an iommufd: unbind it first`);
    dev.iommu.ops.releaseDevice?.(dev);
    const g = dev.group;
    g.devices.splice(g.devices.indexOf(dev), 1);
    if (!g.devices.length) this.groups.delete(g.id);
    this.devices.splice(this.devices.indexOf(dev), 1);
  }

  /** open("/dev/iommu") (or "/dev/vfio/vfio" with `vfioCompat`). */
  open(process: KernelProcess, opts: { vfioCompat?: boolean } = {}): IommufdContext {
    const ctx = new IommufdCtxImpl(this, process, opts);
    this.contexts.add(ctx);
    return ctx;
  }

  /** Contexts not yet released. */
  get openContexts(): number {
    return this.contexts.size;
  }

  /** @internal The ioctl dispatcher of a context. */
  dispatch(ctx: IommufdCtxImpl, request: number, arg: bigint): number {
    return dispatchIoctl(ctx, request, arg, this.testCommand);
  }

  /** @internal Driver helpers for a context. */
  driverServicesFor(ctx: IommufdCtxImpl): IommufdDriverServices {
    return driverServices(ctx);
  }

  /** @internal Called when a context finished its release. */
  contextReleased(ctx: IommufdCtxImpl): void {
    this.contexts.delete(ctx);
  }
}
