/**
 * The iommufd context (`struct iommufd_ctx`, one per open of /dev/iommu) and its object
 * table: an allocating map with IDs from 1 to 0x7fffffff, each slot empty, reserved
 * (allocated-not-finalized, or a tombstone) or live.
 */
import { EBUSY, ENOENT, ENOMEM, EINVAL, ENXIO, EPERM } from '@iommufd/uapi';
import type { IommufdCtx, IommufdDriverServices } from '@iommufd/driver-api';
import type { Errno, KernelFile, KernelProcess, MmapRegion } from './kernel.js';
import type { IommufdObject, ObjectTypeName } from './object.js';
import type { IommuCore } from './core.js';
import type { IommufdGroup } from './device.js';
import type { Ioas } from './ioas.js';

/** One object as {@link IommufdContext.objects} reports it. */
export interface ObjectInfo {
  /** Object ID. */
  readonly id: number;
  /** Object type. */
  readonly type: ObjectTypeName;
  /** `users` count (1 = only the map's reference: destroyable). */
  readonly users: number;
  /** `reserved`: allocated but not finalized, or a tombstone. */
  readonly state: 'live' | 'reserved';
  /** IDs of the objects this one holds a long-term reference on. */
  readonly refs: readonly number[];
}

/** An open /dev/iommu: the dispatcher (`ioctl`), the MMIO mmap path and inspection. */
export interface IommufdContext extends KernelFile {
  /** Every occupied ID slot, lowest ID first. */
  objects(): readonly ObjectInfo[];
  /**
   * The /dev/iommu ioctl (`arg` = user VA of the struct): 0 / positive or -errno. `caller` is
   * the process issuing it (the kernel's `current`: whose memory is copied and pinned, whose
   * fd table gets new fds, whom IOAS_CHANGE_PROCESS moves the accounting to); without it,
   * the process that opened the file.
   */
  ioctl(request: number, arg: bigint, caller?: KernelProcess): number;
}

/** `iommufd_object_remove` flags. */
export const REMOVE_WAIT = 1 << 0;
/** Leave the ID reserved (a tombstone) instead of freeing it. */
export const REMOVE_OBJ_TOMBSTONE = 1 << 1;

/** The largest object ID (the map's 31-bit limit). */
export const MAX_OBJECT_ID = 0x7fffffff;

/** `IOPT_PAGES_ACCOUNT_*` / ctx account modes. */
export type AccountMode = 0 | 1 | 2;
/** No accounting (CAP_IPC_LOCK). */
export const ACCOUNT_NONE: AccountMode = 0;
/** Per-user RLIMIT_MEMLOCK. */
export const ACCOUNT_USER: AccountMode = 1;
/** Per-mm locked_vm (VFIO type1 behaviour). */
export const ACCOUNT_MM: AccountMode = 2;

interface MmapEntry {
  readonly owner: IommufdObject;
  readonly physAddr: bigint;
  readonly length: bigint;
}

/** The per-call state of an ioctl (`struct iommufd_ucmd`). */
export interface Ucmd<T = Record<string, unknown>> {
  /** The context. */
  readonly ictx: IommufdCtxImpl;
  /** User VA of the struct. */
  readonly arg: bigint;
  /** The user's `size` field. */
  readonly userSize: number;
  /** The decoded kernel-size struct (copy-back writes it out again). */
  readonly cmd: T;
  /** The ucmd-style object allocated in this ioctl, finalized or destroyed by the dispatcher. */
  newObj?: IommufdObject | undefined;
  /** Copies `cmd` back to user space (`iommufd_ucmd_respond`): 0 or EFAULT. */
  respond(): 0 | Errno;
}

const RESERVED = Symbol('reserved');

/** The context implementation. Created by {@link IommuCore.open}. */
export class IommufdCtxImpl implements IommufdContext, IommufdCtx {
  /** File kind for the fd table. */
  readonly kind = '[iommufd]';
  private readonly slots = new Map<number, IommufdObject | typeof RESERVED>();
  /** Shadows of iommu_groups with a bound device (`ctx->groups`). */
  readonly groups = new Map<number, IommufdGroup>();
  private readonly mmaps = new Map<bigint, MmapEntry>();
  /** ctx-level pin accounting mode. */
  accountMode: AccountMode;
  /** The VFIO-compat IOAS (IOMMU_VFIO_IOAS). */
  vfioIoas: Ioas | undefined;
  /**
   * References on the ctx's file: the opener's fd, each bound device, each event-queue fd.
   * The teardown of `iommufd_fops_release` runs when the last one is dropped.
   */
  private fileRefs = 1;
  private released = false;
  /** The helpers drivers call (driver.c). */
  readonly driverServices: IommufdDriverServices;

  /** Opens a context for `process` (`vfioCompat`: opened as /dev/vfio/vfio, MM accounting). */
  constructor(
    /** The core that owns the devices and drivers. */
    readonly core: IommuCore,
    /**
     * `current` for the core: the process that opened the file, or the caller of the ioctl
     * in progress. New mappings pin through (and account to) the process current at map time.
     */
    public process: KernelProcess,
    opts: { vfioCompat?: boolean } = {},
  ) {
    this.accountMode = opts.vfioCompat ? ACCOUNT_MM : ACCOUNT_NONE;
    this.driverServices = core.driverServicesFor(this);
  }

  /** The core's fail_nth decision for an allocation point. */
  shouldFail(site: string): boolean {
    return this.core.faultInjector?.shouldFail(site) ?? false;
  }

  // ---- object table ------------------------------------------------------------------

  /**
   * `_iommufd_object_alloc`: reserves the lowest free ID for `obj` (users = wait_cnt = 1).
   * ENOMEM when the allocation or the ID fails.
   */
  allocObject<T extends IommufdObject>(obj: T): T | Errno {
    if (this.shouldFail('object-alloc')) return ENOMEM;
    if (this.shouldFail('id-alloc')) return ENOMEM;
    let id = 1;
    while (this.slots.has(id)) id++;
    if (id > MAX_OBJECT_ID) return ENOMEM;
    obj.id = id;
    this.slots.set(id, RESERVED);
    this.reservedTypes.set(id, obj.type);
    return obj;
  }

  /** `iommufd_object_finalize`: reserved → live. */
  finalize(obj: IommufdObject): void {
    this.slots.set(obj.id, obj);
    this.reservedTypes.delete(obj.id);
  }

  /** `iommufd_object_abort`: free the ID (no destroy op). */
  abort(obj: IommufdObject): void {
    this.slots.delete(obj.id);
    this.reservedTypes.delete(obj.id);
    obj.users--;
  }

  /** `iommufd_object_abort_and_destroy`: release the file, run abort (or destroy), free the ID. */
  abortAndDestroy(obj: IommufdObject): void {
    if (obj.file) {
      const f = obj.file;
      obj.file = undefined;
      f.release();
    }
    if (obj.abort) obj.abort();
    else obj.destroy();
    this.abort(obj);
  }

  /** `iommufd_get_object(id, type)`: a live object with a users + wait_cnt reference, or ENOENT. */
  getObject<T extends IommufdObject = IommufdObject>(id: number, type: ObjectTypeName | 'ANY'): T | Errno {
    const obj = this.slots.get(id);
    if (obj === undefined || obj === RESERVED) return ENOENT;
    if (type !== 'ANY' && obj.type !== type) return ENOENT;
    if (obj.users === 0 || obj.waitCnt === 0) return ENOENT;
    obj.users++;
    obj.waitCnt++;
    return obj as T;
  }

  /** `iommufd_put_object`. */
  putObject(obj: IommufdObject): void {
    obj.users--;
    obj.waitCnt--;
  }

  /** Whether `id` is a live object (for inspection). */
  isLive(id: number): boolean {
    const o = this.slots.get(id);
    return o !== undefined && o !== RESERVED;
  }

  /**
   * `iommufd_object_remove(ictx, to_destroy, id, flags)`. With `toDestroy` the caller's
   * users reference is dropped. EBUSY unless only the map's reference remains.
   */
  removeObject(toDestroy: IommufdObject | undefined, id: number, flags: number): 0 | Errno {
    let obj: IommufdObject | undefined = toDestroy;
    if (!obj) {
      const s = this.slots.get(id);
      if (s === undefined || s === RESERVED) return ENOENT;
      obj = s;
    }
    let waited = false;
    if (flags & REMOVE_WAIT) {
      // Kernel-initiated destroy: drop the map's wait_cnt, let pre_destroy shed the
      // short-term holders (a vDEVICE on a DEVICE), and wait for zero.
      obj.waitCnt--;
      if (obj.waitCnt !== 0) obj.preDestroy?.();
      if (obj.waitCnt !== 0) {
        obj.waitCnt++;
        if (toDestroy) obj.users--;
        return EBUSY;
      }
      waited = true;
    }
    if (toDestroy) obj.users--;
    else if (this.slots.get(id) !== obj) {
      if (waited) obj.waitCnt++;
      return ENOENT;
    }
    if (obj.users !== 1) {
      // The caller's reference stays dropped: put_and_try_destroy keeps a busy object.
      if (waited) obj.waitCnt++;
      return EBUSY;
    }
    obj.users = 0;
    if (flags & REMOVE_OBJ_TOMBSTONE) {
      this.slots.set(obj.id, RESERVED);
      this.reservedTypes.set(obj.id, obj.type);
    } else this.slots.delete(obj.id);
    if (this.vfioIoas === (obj as unknown)) this.vfioIoas = undefined;
    if (!waited) obj.waitCnt--;
    obj.destroy();
    return 0;
  }

  /** `iommufd_object_destroy_user`: remove with REMOVE_WAIT (device unbind, access destroy). */
  destroyUser(obj: IommufdObject): 0 | Errno {
    return this.removeObject(obj, obj.id, REMOVE_WAIT);
  }

  /** `iommufd_object_tombstone_user`: remove leaving the ID reserved until close. */
  tombstoneUser(obj: IommufdObject): 0 | Errno {
    return this.removeObject(obj, obj.id, REMOVE_WAIT | REMOVE_OBJ_TOMBSTONE);
  }

  /** `iommufd_object_put_and_try_destroy`: destroy if the caller's reference was the last user. */
  putAndTryDestroy(obj: IommufdObject): void {
    this.removeObject(obj, obj.id, 0);
  }

  /** Every live object of `type`, lowest ID first. */
  allOfType<T extends IommufdObject>(type: ObjectTypeName): T[] {
    const out: T[] = [];
    for (const id of [...this.slots.keys()].sort((a, b) => a - b)) {
      const o = this.slots.get(id);
      if (o !== undefined && o !== RESERVED && o.type === type) out.push(o as T);
    }
    return out;
  }

  /** Number of occupied slots (live or reserved). */
  get objectCount(): number {
    return this.slots.size;
  }

  /** {@inheritDoc IommufdContext.objects} */
  objects(): readonly ObjectInfo[] {
    const out: ObjectInfo[] = [];
    for (const id of [...this.slots.keys()].sort((a, b) => a - b)) {
      const o = this.slots.get(id);
      if (o === RESERVED || o === undefined) {
        out.push({ id, type: this.reservedTypes.get(id) ?? 'SELFTEST', users: 0, state: 'reserved', refs: [] });
      } else {
        out.push({ id, type: o.type, users: o.users, state: 'live', refs: o.pinned.map((p) => p.id) });
      }
    }
    return out;
  }

  /** Types of reserved slots (allocations in flight and tombstones), for inspection. */
  private readonly reservedTypes = new Map<number, ObjectTypeName>();


  // ---- file lifetime -----------------------------------------------------------------

  /** Takes a reference on the ctx's file (a bound device, an event-queue fd). */
  getFile(): void {
    this.fileRefs++;
  }

  /** Drops a reference on the ctx's file; the last one runs the release teardown. */
  putFile(): void {
    this.fileRefs--;
    if (this.fileRefs === 0) this.teardown();
  }

  /** The opener's last close of the /dev/iommu fd. */
  release(): void {
    this.putFile();
  }

  /** Whether the context has been torn down. */
  get isReleased(): boolean {
    return this.released;
  }

  /**
   * `iommufd_fops_release`: sweep destroying every live object whose only user is the map,
   * until a sweep finds none; then drop tombstones.
   */
  private teardown(): void {
    if (this.released) return;
    this.released = true;
    for (;;) {
      let destroyed = false;
      let live = false;
      for (const [id, o] of [...this.slots]) {
        if (o === RESERVED) continue;
        live = true;
        if (o.users === 1) {
          this.removeObject(undefined, id, 0);
          destroyed = true;
        }
      }
      if (!live || !destroyed) break;
    }
    for (const [id, o] of [...this.slots]) if (o === RESERVED) this.slots.delete(id);
    this.reservedTypes.clear();
    this.core.contextReleased(this);
  }

  // ---- ioctl and mmap ----------------------------------------------------------------

  /** The /dev/iommu ioctl: 0 / positive or -errno; `process` is `caller` while it runs. */
  ioctl(request: number, arg: bigint, caller?: KernelProcess): number {
    if (!caller || caller === this.process) return this.core.dispatch(this, request, arg);
    const opener = this.process;
    this.process = caller;
    try {
      return this.core.dispatch(this, request, arg);
    } finally {
      this.process = opener;
    }
  }

  /**
   * `_iommufd_alloc_mmap`: a page-aligned range in the offset space, never at offset 0.
   */
  allocMmap(owner: IommufdObject, physAddr: bigint, length: bigint): bigint | Errno {
    if (this.shouldFail('mmap-alloc')) return ENOMEM;
    const entries = [...this.mmaps.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
    let offset = 0x1000n;
    for (const [start, e] of entries) {
      if (offset + length <= start) break;
      if (start + e.length > offset) offset = start + e.length;
    }
    this.mmaps.set(offset, { owner, physAddr, length });
    return offset;
  }

  /** `_iommufd_destroy_mmap`. */
  destroyMmap(owner: IommufdObject, offset: bigint): void {
    const e = this.mmaps.get(offset);
    if (e && e.owner === owner) this.mmaps.delete(offset);
  }

  /**
   * `iommufd_fops_mmap`: exact (offset, length) of a registered region; each mapping holds a
   * users reference on the owner until munmap.
   */
  mmap(length: bigint, prot: number, flags: number, offset: bigint): MmapRegion | Errno {
    const PROT_EXEC = 4;
    const MAP_SHARED = 1;
    if ((length & 0xfffn) !== 0n) return EINVAL;
    if (!(flags & MAP_SHARED)) return EINVAL;
    if (prot & PROT_EXEC) return EPERM;
    const e = this.mmaps.get(offset);
    if (!e || e.owner.users === 0) return ENXIO;
    if (e.length !== length) return ENXIO;
    // The VMA pins the owner and, through vm_file, the ctx file.
    e.owner.users++;
    this.getFile();
    let closed = false;
    return {
      physAddr: e.physAddr,
      length: e.length,
      close: () => {
        if (closed) return;
        closed = true;
        e.owner.users--;
        this.putFile();
      },
    };
  }
}
