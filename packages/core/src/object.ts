/**
 * The base object (`struct iommufd_object`) and its reference counts. `users` is the
 * long-term count (the map holds one; pins add one each); `waitCnt` the short-term count
 * that destroy waits on (the map holds one; `getObject` adds one with each `users`).
 */
import type { IommufdCtxImpl } from './context.js';

/** `enum iommufd_object_type` names. */
export type ObjectTypeName =
  | 'DEVICE'
  | 'HWPT_PAGING'
  | 'HWPT_NESTED'
  | 'IOAS'
  | 'ACCESS'
  | 'FAULT'
  | 'VIOMMU'
  | 'VDEVICE'
  | 'VEVENTQ'
  | 'HW_QUEUE'
  | 'SELFTEST';

/** `enum iommufd_object_type` values. */
export const OBJECT_TYPE_VALUE: Readonly<Record<ObjectTypeName, number>> = {
  DEVICE: 1,
  HWPT_PAGING: 2,
  HWPT_NESTED: 3,
  IOAS: 4,
  ACCESS: 5,
  FAULT: 6,
  VIOMMU: 7,
  VDEVICE: 8,
  VEVENTQ: 9,
  HW_QUEUE: 10,
  SELFTEST: 11,
};

/** One object of an iommufd context. Subclasses are the object kinds, one file each. */
export abstract class IommufdObject {
  /** ID in the context's table (0 until allocated). */
  id = 0;
  /** Long-term references (the map's, pins, the fd's, the binding driver's). */
  users = 1;
  /** Short-term references (the map's plus one per `getObject`). */
  waitCnt = 1;
  /** Objects this one holds a long-term reference on (for inspection and teardown checks). */
  readonly pinned: IommufdObject[] = [];
  /** Object type. */
  abstract readonly type: ObjectTypeName;
  /** Creates an object of context `ictx` (not yet in the table). */
  constructor(readonly ictx: IommufdCtxImpl) {}
  /** The type's `destroy` op: release everything the object holds. */
  abstract destroy(): void;
  /** The type's `abort` op, when the type has one (HWPTs, VDEVICE, VEVENTQ). */
  abort?(): void;
  /** The type's `pre_destroy` op (DEVICE only). */
  preDestroy?(): void;
  /** The anon file of types with a `file_offset` (FAULT, VEVENTQ), released on abort. */
  file?: { release(): void } | undefined;
}

/** Takes a long-term reference of `holder` on `target` (`refcount_inc(&target->users)`). */
export function pinObject(holder: IommufdObject, target: IommufdObject): void {
  target.users++;
  holder.pinned.push(target);
}

/** Drops a reference taken by {@link pinObject}. */
export function unpinObject(holder: IommufdObject, target: IommufdObject): void {
  const i = holder.pinned.indexOf(target);
  if (i >= 0) holder.pinned.splice(i, 1);
  target.users--;
}
