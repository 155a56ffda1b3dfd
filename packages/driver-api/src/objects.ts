/**
 * The core structs drivers see (`struct iommufd_viommu`, `struct iommufd_vdevice`,
 * `struct iommufd_hw_queue` of include/linux/iommufd.h), the `*_STRUCT_SIZE` checks and
 * `containerOf`. The core allocates the size the driver reports, fills the core struct at
 * offset 0 and only then calls the driver's init with the core struct; the driver reaches
 * its own fields with `containerOf` (the identity on the allocation, since the core struct is
 * first).
 */
import type { Device, Errno, IommuDevice, IommuDomain, IommufdViommuOps, Status } from './ops.js';
import {
  defineCoreStruct,
  du32,
  du64,
  dptr,
  pointee,
  DriverStructError,
  StructMemory,
  StructView,
  type CoreStructKind,
  type DriverCoreMember,
  type DriverField,
  type DriverStructLayout,
} from './struct.js';
import type { StructSizeOf } from './type-size.js';

/**
 * What a driver helper needs from the core, reached through a core struct's `ictx` (as the
 * kernel's driver.c reaches `viommu->ictx`). Implemented by `@iommufd/core`; drivers call the
 * helper functions of this package, never these methods directly.
 */
export interface IommufdDriverServices {
  /** `iommufd_viommu_find_dev`. */
  viommuFindDev(viommu: IommufdViommu, vdevId: bigint): Device | undefined;
  /** `iommufd_viommu_get_vdev_id`: the virt_id of `dev`'s vDEVICE on `viommu`, or ENOENT. */
  viommuGetVdevId(viommu: IommufdViommu, dev: Device): bigint | Errno;
  /** `iommufd_vdevice_to_device`. */
  vdeviceToDevice(vdev: IommufdVdevice): Device;
  /** `iommufd_viommu_report_event`. */
  viommuReportEvent(viommu: IommufdViommu, type: number, data: Uint8Array): Status;
  /** `iommufd_viommu_alloc_mmap`: the byte offset user space passes to mmap(), or an errno. */
  viommuAllocMmap(viommu: IommufdViommu, mmioAddr: bigint, length: bigint): bigint | Errno;
  /** `iommufd_viommu_destroy_mmap`. */
  viommuDestroyMmap(viommu: IommufdViommu, offset: bigint): void;
  /** `_iommufd_object_depend`: `dependent` pins `depended`. */
  hwQueueDepend(dependent: IommufdHwQueue, depended: IommufdHwQueue): Status;
  /** `_iommufd_object_undepend`. */
  hwQueueUndepend(dependent: IommufdHwQueue, depended: IommufdHwQueue): void;
  /** The context's fault injector decision for a driver allocation point. */
  shouldFail(site: string): boolean;
}

/** The iommufd context as drivers see it (`struct iommufd_ctx *`): opaque but for the helpers. */
export interface IommufdCtx {
  /** The core's implementation of the driver helpers. */
  readonly driverServices: IommufdDriverServices;
}

/** The nesting-parent HWPT a vIOMMU sits on, as drivers see it. */
export interface IommufdHwptPagingRef {
  /** Object ID of the HWPT_PAGING. */
  readonly id: number;
  /** Its (nesting parent, stage-2) domain. */
  readonly domain: IommuDomain;
}

/** The HW queue's internal access, as drivers see it. */
export interface IommufdAccessRef {
  /** Object ID of the internal ACCESS. */
  readonly id: number;
}

/** Layout of `struct iommufd_viommu` (the core part every driver vIOMMU struct starts with). */
export const IOMMUFD_VIOMMU = defineCoreStruct('iommufd_viommu', [
  du32('obj_type'),
  du32('obj_id'),
  dptr('ictx', pointee<IommufdCtx>()),
  dptr('iommu_dev', pointee<IommuDevice>()),
  dptr('hwpt', pointee<IommufdHwptPagingRef>()),
  dptr('ops', pointee<IommufdViommuOps>()),
  dptr('vdevs', pointee<unknown>()),
  dptr('veventqs', pointee<unknown>()),
  du32('type'),
]);

/** Layout of `struct iommufd_vdevice`. */
export const IOMMUFD_VDEVICE = defineCoreStruct('iommufd_vdevice', [
  du32('obj_type'),
  du32('obj_id'),
  dptr('viommu', pointee<IommufdViommu>()),
  dptr('idev', pointee<Device>()),
  du64('virt_id'),
  dptr('destroy', pointee<(vdev: IommufdVdevice) => void>()),
]);

/** Layout of `struct iommufd_hw_queue`. */
export const IOMMUFD_HW_QUEUE = defineCoreStruct('iommufd_hw_queue', [
  du32('obj_type'),
  du32('obj_id'),
  dptr('viommu', pointee<IommufdViommu>()),
  dptr('access', pointee<IommufdAccessRef>()),
  du64('base_addr'),
  du64('length'),
  du32('type'),
  dptr('destroy', pointee<(hwQueue: IommufdHwQueue) => void>()),
]);

/** `enum iommufd_object_type` value of VIOMMU. */
const OBJ_VIOMMU = 7;
/** `enum iommufd_object_type` value of VDEVICE. */
const OBJ_VDEVICE = 8;
/** `enum iommufd_object_type` value of HW_QUEUE. */
const OBJ_HW_QUEUE = 10;

function required<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new DriverStructError(`${what} is not set yet: the core sets it before calling the driver's init`);
  return v;
}

/**
 * `struct iommufd_viommu`: the core part of a vIOMMU allocation. The core creates it over
 * the allocation and sets every field before `viommuInit`; the driver sets only `ops`.
 */
export class IommufdViommu {
  /** The core struct's view at offset 0 of the allocation. */
  readonly view: StructView<typeof IOMMUFD_VIOMMU.specs>;
  /** Wraps an allocation of at least `sizeof(struct iommufd_viommu)` bytes. */
  constructor(readonly memory: StructMemory) {
    this.view = new StructView(memory, IOMMUFD_VIOMMU);
  }
  /** Object ID in the iommufd context. */
  get id(): number {
    return this.view.get('obj_id');
  }
  /** The owning context. */
  get ictx(): IommufdCtx {
    return required(this.view.getPtr('ictx'), 'viommu.ictx');
  }
  /** The physical IOMMU instance. */
  get iommuDev(): IommuDevice {
    return required(this.view.getPtr('iommu_dev'), 'viommu.iommu_dev');
  }
  /** The nesting-parent HWPT_PAGING. */
  get hwpt(): IommufdHwptPagingRef {
    return required(this.view.getPtr('hwpt'), 'viommu.hwpt');
  }
  /** `enum iommu_viommu_type` */
  get type(): number {
    return this.view.get('type');
  }
  /** The driver's vIOMMU ops (set by `viommuInit`). */
  get ops(): IommufdViommuOps | undefined {
    return this.view.getPtr('ops');
  }
  set ops(ops: IommufdViommuOps | undefined) {
    this.view.setPtr('ops', ops);
  }
  /** Sets the core fields (the core calls this once, before `viommuInit`). */
  initCore(fields: { id: number; ictx: IommufdCtx; iommuDev: IommuDevice; hwpt: IommufdHwptPagingRef; type: number; vdevs: unknown; veventqs: unknown }): void {
    this.view.set('obj_type', OBJ_VIOMMU);
    this.view.set('obj_id', fields.id);
    this.view.setPtr('ictx', fields.ictx);
    this.view.setPtr('iommu_dev', fields.iommuDev);
    this.view.setPtr('hwpt', fields.hwpt);
    this.view.setPtr('vdevs', fields.vdevs);
    this.view.setPtr('veventqs', fields.veventqs);
    this.view.set('type', fields.type);
  }
}

/** `struct iommufd_vdevice`: the core part of a vDEVICE allocation. */
export class IommufdVdevice {
  /** The core struct's view at offset 0 of the allocation. */
  readonly view: StructView<typeof IOMMUFD_VDEVICE.specs>;
  /** Wraps an allocation of at least `sizeof(struct iommufd_vdevice)` bytes. */
  constructor(readonly memory: StructMemory) {
    this.view = new StructView(memory, IOMMUFD_VDEVICE);
  }
  /** Object ID in the iommufd context. */
  get id(): number {
    return this.view.get('obj_id');
  }
  /** The vIOMMU this vDEVICE belongs to. */
  get viommu(): IommufdViommu {
    return required(this.view.getPtr('viommu'), 'vdev.viommu');
  }
  /** The virtual ID (vSID, vRID, vDeviceID). */
  get virtId(): bigint {
    return this.view.get('virt_id');
  }
  /** Optional driver callback run at destroy/abort (set in `vdeviceInit`). */
  get destroy(): ((vdev: IommufdVdevice) => void) | undefined {
    return this.view.getPtr('destroy');
  }
  set destroy(fn: ((vdev: IommufdVdevice) => void) | undefined) {
    this.view.setPtr('destroy', fn);
  }
  /** Sets the core fields (the core calls this once, before `vdeviceInit`). */
  initCore(fields: { id: number; viommu: IommufdViommu; dev: Device; virtId: bigint }): void {
    this.view.set('obj_type', OBJ_VDEVICE);
    this.view.set('obj_id', fields.id);
    this.view.setPtr('viommu', fields.viommu);
    this.view.setPtr('idev', fields.dev);
    this.view.set('virt_id', fields.virtId);
  }
}

/** `struct iommufd_hw_queue`: the core part of a HW queue allocation. */
export class IommufdHwQueue {
  /** The core struct's view at offset 0 of the allocation. */
  readonly view: StructView<typeof IOMMUFD_HW_QUEUE.specs>;
  /** Wraps an allocation of at least `sizeof(struct iommufd_hw_queue)` bytes. */
  constructor(readonly memory: StructMemory) {
    this.view = new StructView(memory, IOMMUFD_HW_QUEUE);
  }
  /** Object ID in the iommufd context. */
  get id(): number {
    return this.view.get('obj_id');
  }
  /** The vIOMMU this queue belongs to. */
  get viommu(): IommufdViommu {
    return required(this.view.getPtr('viommu'), 'hw_queue.viommu');
  }
  /** The internal ACCESS pinning the queue memory. */
  get access(): IommufdAccessRef {
    return required(this.view.getPtr('access'), 'hw_queue.access');
  }
  /** Guest physical (nesting-parent IOVA) base address given by user space. */
  get baseAddr(): bigint {
    return this.view.get('base_addr');
  }
  /** Queue length in bytes. */
  get length(): bigint {
    return this.view.get('length');
  }
  /** `enum iommu_hw_queue_type` */
  get type(): number {
    return this.view.get('type');
  }
  /** Optional driver callback run at destroy (set in `hwQueueInitPhys`). */
  get destroy(): ((hwQueue: IommufdHwQueue) => void) | undefined {
    return this.view.getPtr('destroy');
  }
  set destroy(fn: ((hwQueue: IommufdHwQueue) => void) | undefined) {
    this.view.setPtr('destroy', fn);
  }
  /** Sets the core fields (the core calls this once, before `hwQueueInitPhys`). */
  initCore(fields: { id: number; viommu: IommufdViommu; access: IommufdAccessRef; baseAddr: bigint; length: bigint; type: number }): void {
    this.view.set('obj_type', OBJ_HW_QUEUE);
    this.view.set('obj_id', fields.id);
    this.view.setPtr('viommu', fields.viommu);
    this.view.setPtr('access', fields.access);
    this.view.set('base_addr', fields.baseAddr);
    this.view.set('length', fields.length);
    this.view.set('type', fields.type);
  }
}

/**
 * A driver struct layout whose first field is the core member `M` of core struct kind `S`
 * (offset 0, exact core type): the condition `VIOMMU_STRUCT_SIZE` & co. enforce at compile time.
 */
export type CoreFirstLayout<M extends string, S extends CoreStructKind> = DriverStructLayout<
  readonly [DriverCoreMember<M, S>, ...DriverField[]]
>;

/**
 * `VIOMMU_STRUCT_SIZE(drv_struct, member)` at the type level: the byte size of `L`; `tsc`
 * rejects `L` unless its first field (offset 0) is `M` of type `struct iommufd_viommu`.
 */
export type VIOMMU_STRUCT_SIZE<L extends CoreFirstLayout<M, 'iommufd_viommu'>, M extends string> = StructSizeOf<L['specs']>;
/** `VDEVICE_STRUCT_SIZE` at the type level (first field `M` of type `struct iommufd_vdevice`). */
export type VDEVICE_STRUCT_SIZE<L extends CoreFirstLayout<M, 'iommufd_vdevice'>, M extends string> = StructSizeOf<L['specs']>;
/** `HW_QUEUE_STRUCT_SIZE` at the type level (first field `M` of type `struct iommufd_hw_queue`). */
export type HW_QUEUE_STRUCT_SIZE<L extends CoreFirstLayout<M, 'iommufd_hw_queue'>, M extends string> = StructSizeOf<L['specs']>;

function checkedSize(layout: DriverStructLayout, member: string, kind: CoreStructKind): number {
  // The same two checks as the kernel's BUILD_BUG_ON_ZERO terms, for callers without types.
  const first = layout.specs[0];
  if (!first || first.name !== member) {
    throw new DriverStructError(`${layout.name}: the core member ${member} must be the first field (offset 0)`);
  }
  if (first.kind !== 'struct' || first.struct.coreKind !== kind) {
    throw new DriverStructError(`${layout.name}.${member} must be of type struct ${kind}`);
  }
  return layout.size;
}

/** The byte size a driver's `getViommuSize` returns for its vIOMMU struct `layout`. */
export function VIOMMU_STRUCT_SIZE<L extends CoreFirstLayout<M, 'iommufd_viommu'>, M extends string>(
  layout: L,
  member: M,
): VIOMMU_STRUCT_SIZE<L, M> {
  return checkedSize(layout, member, 'iommufd_viommu') as VIOMMU_STRUCT_SIZE<L, M>;
}
/** The byte size a driver's `vdeviceSize` declares for its vDEVICE struct `layout`. */
export function VDEVICE_STRUCT_SIZE<L extends CoreFirstLayout<M, 'iommufd_vdevice'>, M extends string>(
  layout: L,
  member: M,
): VDEVICE_STRUCT_SIZE<L, M> {
  return checkedSize(layout, member, 'iommufd_vdevice') as VDEVICE_STRUCT_SIZE<L, M>;
}
/** The byte size a driver's `getHwQueueSize` returns for its HW queue struct `layout`. */
export function HW_QUEUE_STRUCT_SIZE<L extends CoreFirstLayout<M, 'iommufd_hw_queue'>, M extends string>(
  layout: L,
  member: M,
): HW_QUEUE_STRUCT_SIZE<L, M> {
  return checkedSize(layout, member, 'iommufd_hw_queue') as HW_QUEUE_STRUCT_SIZE<L, M>;
}

/** The core struct kind of each core struct class. */
export type CoreKindOf<C> = C extends IommufdViommu
  ? 'iommufd_viommu'
  : C extends IommufdVdevice
    ? 'iommufd_vdevice'
    : C extends IommufdHwQueue
      ? 'iommufd_hw_queue'
      : never;

/**
 * `container_of(core, struct drv, member)`: the driver's typed view of the allocation the
 * core struct lives in. The core member is at offset 0, so this is the same allocation.
 */
export function containerOf<
  C extends IommufdViommu | IommufdVdevice | IommufdHwQueue,
  F extends readonly [DriverCoreMember<M, CoreKindOf<C>>, ...DriverField[]],
  M extends string,
>(core: C, layout: DriverStructLayout<F>, member: M): StructView<F> {
  const kind: CoreStructKind =
    core instanceof IommufdViommu ? 'iommufd_viommu' : core instanceof IommufdVdevice ? 'iommufd_vdevice' : 'iommufd_hw_queue';
  checkedSize(layout, member, kind);
  if (core.memory.bytes.byteLength < layout.size) {
    throw new DriverStructError(
      `${layout.name} is ${layout.size} bytes but the core allocated ${core.memory.bytes.byteLength}: report the size with the *_STRUCT_SIZE helper`,
    );
  }
  return new StructView(core.memory, layout);
}

