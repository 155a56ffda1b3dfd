/**
 * `IOMMU_TEST_CMD` of the mock platform: the selftest kernel's `iommufd_test()` dispatcher
 * (drivers/iommu/iommufd/selftest.c), one handler per op, each with the kernel's checks in
 * the kernel's order. Mock devices are hot-added to the core on MOCK_DOMAIN and removed when
 * their SELFTEST object is destroyed; accesses live behind an fd, as in the kernel.
 */
import {
  deviceAttachedDomain,
  iommufdAccessCreate,
  iommufdAccessDestroy,
  iommufdAccessPinPages,
  iommufdAccessRw,
  iommufdAccessUnpinPages,
  iommufdDeviceAttach,
  iommufdDeviceBind,
  iommufdDeviceDetach,
  iommufdDeviceReplace,
  iommufdDeviceUnbind,
  type Access,
  type BoundDevice,
  type CoreDevice,
  type IommuCore,
  type IommufdContext,
} from '@iommufd/core';
import type { FaultInjector, IommuDomain } from '@iommufd/driver-api';
import {
  mockDeviceCache,
  mockDomainLookup,
  mockDomainSetDirty,
  MockIommu,
  mockNestedIotlb,
  mockSetDeviceFlags,
  mockTriggerIopf,
  mockTriggerVevent,
  MOCK_IO_PAGE_SIZE,
} from '@iommufd/mock-iommu';
import { E2BIG, EBADFD, EBUSY, EFAULT, EINVAL, EIO, ENOENT, ENOMEM, EOPNOTSUPP } from '@iommufd/uapi';
import type { KernelFile } from '../kernel-types.js';
import type { PlatformContext } from '../platform.js';
import type { HostProcess } from '../process.js';
import * as T from '../selftest-uapi.js';

const PAGE = 4096n;
const ULONG_MAX = (1n << 64n) - 1n;
type Errno = number;

/**
 * The parts of the core's object table the selftest reaches, as the kernel's selftest.c
 * reaches iommufd_private.h. (Structural: the core does not export its internal classes.)
 */
interface CoreObject {
  id: number;
  users: number;
  waitCnt: number;
  readonly pinned: CoreObject[];
  readonly type: string;
  readonly ictx: CtxInternals;
  destroy(): void;
}
interface CtxInternals extends IommufdContext {
  readonly process: { copyFromUser(va: bigint, n: number): Uint8Array | Errno; copyToUser(va: bigint, b: Uint8Array): 0 | Errno };
  allocObject<O extends CoreObject>(obj: O): O | Errno;
  finalize(obj: CoreObject): void;
  abort(obj: CoreObject): void;
  getObject<O = CoreObject>(id: number, type: string): O | Errno;
  putObject(obj: CoreObject): void;
  reserveFd?: never;
}
interface IoasInternals extends CoreObject {
  readonly iopt: {
    reserveIova(start: bigint, last: bigint, owner: object): 0 | Errno;
    addAccess(access: unknown): 0 | Errno;
  };
  readonly accessPins: Map<unknown, Set<unknown>>;
}
interface HwptInternals extends CoreObject {
  readonly domain: IommuDomain;
}
interface IdevInternals extends CoreObject {
  readonly dev: CoreDevice;
}
interface AccessInternals extends CoreObject {
  ioas: IoasInternals | undefined;
  detach(): void;
}

/** A mock device created by MOCK_DOMAIN and the SELFTEST object that owns it. */
interface SelftestIdev extends CoreObject {
  readonly type: 'SELFTEST';
  readonly idev: BoundDevice;
  readonly dev: CoreDevice;
}

/** An access created by CREATE_ACCESS, owned by its fd. */
interface StAccess {
  access: Access;
  readonly items: { id: number; iova: bigint; length: bigint }[];
  nextId: number;
}

const u32 = (v: DataView, at: number) => v.getUint32(at, true);

/** The IOMMU_TEST_CMD handler of one mock platform. */
export class SelftestCommands {
  private readonly processes = new Map<IommufdContext, HostProcess>();
  /** staccess files (the access fd's file, as `iommfd_test_staccess_fops`). */
  private readonly accessFiles = new WeakMap<KernelFile, StAccess>();
  private mockDevices = 0;
  /** `iommufd_test_memory_limit` (pages per batch; no batching in the model, kept for its checks). */
  memoryLimit = 65536;

  constructor(
    private readonly core: IommuCore,
    private readonly mock: MockIommu,
    private readonly platform: PlatformContext,
    private readonly injector: () => FaultInjector | undefined,
  ) {}

  /** Records which process opened a context (for fd lookups of access fds). */
  register(ctx: IommufdContext, process: HostProcess): void {
    this.processes.set(ctx, process);
  }

  private fail(site: string): boolean {
    return this.injector()?.shouldFail(site) ?? false;
  }

  /**
   * `iommufd_test()`: IOMMU_TEST_CMD's row in the ioctl table has min size
   * offsetofend(last); the struct is copied with copy_struct_from_user, and copied back
   * (min(user size, sizeof)) by handlers that respond.
   */
  dispatch(ctxPublic: IommufdContext, arg: bigint, userSize: number): number {
    const ctx = ctxPublic as CtxInternals;
    const L = T.iommu_test_cmd;
    if (userSize < L.minSize) return -EINVAL;
    const raw = ctx.process.copyFromUser(arg, Math.max(userSize, L.size));
    let bytes: Uint8Array;
    if (typeof raw === 'number') {
      const short = ctx.process.copyFromUser(arg, userSize);
      if (typeof short === 'number') return -EFAULT;
      bytes = new Uint8Array(L.size);
      bytes.set(short.subarray(0, Math.min(userSize, L.size)));
    } else {
      if (raw.subarray(L.size, userSize).some((b) => b !== 0)) return -E2BIG;
      bytes = new Uint8Array(L.size);
      bytes.set(raw.subarray(0, Math.min(userSize, L.size)));
    }
    const respond = (): 0 | Errno => (ctx.process.copyToUser(arg, bytes.subarray(0, Math.min(userSize, L.size))) ? EFAULT : 0);
    const rc = this.op(ctx, bytes, respond);
    return rc ? -rc : 0;
  }

  private op(ctx: CtxInternals, b: Uint8Array, respond: () => 0 | Errno): 0 | Errno {
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const op = u32(v, 4);
    const id = u32(v, 8);
    switch (op) {
      case T.IOMMU_TEST_OP_ADD_RESERVED: {
        const p = T.iommu_test_cmd_add_reserved.decode(b);
        return this.addReserved(ctx, id, p.start, p.length);
      }
      case T.IOMMU_TEST_OP_MOCK_DOMAIN:
        return this.mockDomain(ctx, b, 0, respond);
      case T.IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS:
        return this.mockDomain(ctx, b, T.iommu_test_cmd_mock_domain.get(b, 'dev_flags'), respond);
      case T.IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE:
        return this.mockDomainReplace(ctx, id, b, respond);
      case T.IOMMU_TEST_OP_MD_CHECK_MAP: {
        const p = T.iommu_test_cmd_check_map.decode(b);
        return this.checkMap(ctx, id, p.iova, p.length, p.uptr);
      }
      case T.IOMMU_TEST_OP_MD_CHECK_REFS: {
        const p = T.iommu_test_cmd_check_refs.decode(b);
        return this.checkRefs(ctx, p.uptr, p.length, p.refs);
      }
      case T.IOMMU_TEST_OP_CREATE_ACCESS:
        return this.createAccess(ctx, id, b, respond);
      case T.IOMMU_TEST_OP_DESTROY_ACCESS_PAGES:
        return this.destroyAccessPages(ctx, id, T.iommu_test_cmd_destroy_access_pages.get(b, 'access_pages_id'));
      case T.IOMMU_TEST_OP_ACCESS_PAGES:
        return this.accessPages(ctx, id, b, respond);
      case T.IOMMU_TEST_OP_ACCESS_RW: {
        const p = T.iommu_test_cmd_access_rw.decode(b);
        return this.accessRw(ctx, id, p.iova, p.uptr, p.length, p.flags);
      }
      case T.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT: {
        const limit = T.iommu_test_cmd_memory_limit.get(b, 'limit');
        if (limit < 12) return EINVAL;
        this.memoryLimit = limit;
        return 0;
      }
      case T.IOMMU_TEST_OP_ACCESS_REPLACE_IOAS:
        return this.accessReplaceIoas(ctx, id, T.iommu_test_cmd_access_replace_ioas.get(b, 'ioas_id'));
      case T.IOMMU_TEST_OP_DIRTY:
        return this.dirty(ctx, id, b, respond);
      case T.IOMMU_TEST_OP_MD_CHECK_IOTLB: {
        const p = T.iommu_test_cmd_check_iotlb.decode(b);
        return this.checkIotlb(ctx, id, p.iotlb_id, p.iotlb);
      }
      case T.IOMMU_TEST_OP_TRIGGER_IOPF: {
        const p = T.iommu_test_cmd_trigger_iopf.decode(b);
        return this.withIdev(ctx, p.dev_id, (idev) => {
          // iommu_report_device_fault's result is not returned to the test.
          mockTriggerIopf(idev.dev, (dev, pasid) => deviceAttachedDomain(dev as CoreDevice, pasid), {
            pasid: p.pasid,
            grpid: p.grpid,
            perm: p.perm,
            addr: p.addr,
          });
          return 0;
        });
      }
      case T.IOMMU_TEST_OP_DEV_CHECK_CACHE: {
        const p = T.iommu_test_cmd_check_dev_cache.decode(b);
        return this.withIdev(ctx, id, (idev) => {
          if (p.cache_id > T.MOCK_DEV_CACHE_ID_MAX) return EINVAL;
          return mockDeviceCache(idev.dev, p.cache_id) === p.cache ? 0 : EINVAL;
        });
      }
      case T.IOMMU_TEST_OP_TRIGGER_VEVENT:
        return this.withIdev(ctx, T.iommu_test_cmd_trigger_vevent.get(b, 'dev_id'), (idev) => mockTriggerVevent(idev.dev));
      case T.IOMMU_TEST_OP_PASID_ATTACH:
      case T.IOMMU_TEST_OP_PASID_REPLACE:
      case T.IOMMU_TEST_OP_PASID_DETACH:
      case T.IOMMU_TEST_OP_PASID_CHECK_HWPT:
        return this.pasidOp(ctx, op, id, T.iommu_test_cmd_pasid.decode(b));
      default:
        return EOPNOTSUPP;
    }
  }

  // ---- IOAS / domains ------------------------------------------------------------------

  private addReserved(ctx: CtxInternals, ioasId: number, start: bigint, length: bigint): 0 | Errno {
    const ioas = ctx.getObject<IoasInternals>(ioasId, 'IOAS');
    if (typeof ioas === 'number') return ioas;
    const rc = ioas.iopt.reserveIova(start, start + length - 1n, this);
    ctx.putObject(ioas);
    return rc;
  }

  /** `iommufd_test_mock_domain`: SELFTEST object, mock device, bind, attach, respond, finalize. */
  private mockDomain(ctx: CtxInternals, b: Uint8Array, devFlags: number, respond: () => 0 | Errno): 0 | Errno {
    const known = T.MOCK_FLAGS_DEVICE_NO_DIRTY | T.MOCK_FLAGS_DEVICE_HUGE_IOVA | T.MOCK_FLAGS_DEVICE_PASID;
    if (devFlags & ~known) return EINVAL;
    const shell = {
      id: 0,
      users: 1,
      waitCnt: 1,
      pinned: [] as CoreObject[],
      type: 'SELFTEST' as const,
      ictx: ctx,
      idev: undefined as unknown as BoundDevice,
      dev: undefined as unknown as CoreDevice,
      destroy: () => this.destroyMockDevice(sobj),
    };
    const sobj = ctx.allocObject(shell) as SelftestIdev | Errno;
    if (typeof sobj === 'number') return sobj;
    if (this.fail('mock-dev-alloc')) {
      ctx.abort(sobj);
      return ENOMEM;
    }
    const n = this.mockDevices++;
    const dev = this.core.addDevice({
      name: `iommufd_mock${n}`,
      iommu: this.mock.instance,
      group: 0x10000 + n,
      pasid: devFlags & T.MOCK_FLAGS_DEVICE_PASID ? { maxPasidLog2: T.MOCK_PASID_WIDTH } : undefined,
    });
    mockSetDeviceFlags(dev, devFlags);
    const bound = iommufdDeviceBind(ctx, dev);
    if (typeof bound === 'number') {
      this.core.removeDevice(dev);
      ctx.abort(sobj);
      return bound;
    }
    const attached = iommufdDeviceAttach(bound.idev, undefined, T.iommu_test_cmd.get(b, 'id'));
    if (typeof attached === 'number') {
      iommufdDeviceUnbind(bound.idev);
      this.core.removeDevice(dev);
      ctx.abort(sobj);
      return attached;
    }
    Object.assign(sobj, { idev: bound.idev, dev });
    T.iommu_test_cmd_mock_domain.set(b, 'out_stdev_id', sobj.id);
    T.iommu_test_cmd_mock_domain.set(b, 'out_hwpt_id', attached.ptId);
    T.iommu_test_cmd_mock_domain.set(b, 'out_idev_id', bound.devId);
    const rc = respond();
    if (rc) {
      iommufdDeviceDetach(bound.idev, undefined);
      iommufdDeviceUnbind(bound.idev);
      this.core.removeDevice(dev);
      ctx.abort(sobj);
      return rc;
    }
    ctx.finalize(sobj);
    return 0;
  }

  /** `iommufd_selftest_destroy` for a mock device: detach, unbind, unplug. */
  private destroyMockDevice(sobj: SelftestIdev | Errno): void {
    if (typeof sobj === 'number' || !sobj.idev) return;
    iommufdDeviceDetach(sobj.idev, undefined);
    iommufdDeviceUnbind(sobj.idev);
    this.core.removeDevice(sobj.dev);
  }

  private getSelftest(ctx: CtxInternals, id: number): SelftestIdev | Errno {
    return ctx.getObject<SelftestIdev>(id, 'SELFTEST');
  }

  private mockDomainReplace(ctx: CtxInternals, stdevId: number, b: Uint8Array, respond: () => 0 | Errno): 0 | Errno {
    const sobj = this.getSelftest(ctx, stdevId);
    if (typeof sobj === 'number') return sobj;
    try {
      const r = iommufdDeviceReplace(sobj.idev, undefined, T.iommu_test_cmd_mock_domain_replace.get(b, 'pt_id'));
      if (typeof r === 'number') return r;
      T.iommu_test_cmd_mock_domain_replace.set(b, 'pt_id', r.ptId);
      return respond();
    } finally {
      ctx.putObject(sobj);
    }
  }

  private pasidOp(ctx: CtxInternals, op: number, stdevId: number, p: { pasid: number; pt_id: number }): 0 | Errno {
    const sobj = this.getSelftest(ctx, stdevId);
    if (typeof sobj === 'number') return sobj;
    try {
      switch (op) {
        case T.IOMMU_TEST_OP_PASID_ATTACH: {
          const r = iommufdDeviceAttach(sobj.idev, p.pasid, p.pt_id);
          return typeof r === 'number' ? r : 0;
        }
        case T.IOMMU_TEST_OP_PASID_REPLACE: {
          const r = iommufdDeviceReplace(sobj.idev, p.pasid, p.pt_id);
          return typeof r === 'number' ? r : 0;
        }
        case T.IOMMU_TEST_OP_PASID_DETACH:
          iommufdDeviceDetach(sobj.idev, p.pasid);
          return 0;
        default: {
          // PASID_CHECK_HWPT: hwpt_id 0 means "nothing attached".
          const attached = deviceAttachedDomain(sobj.dev, p.pasid);
          const hwptId = p.pt_id;
          if (!hwptId) return attached ? EINVAL : 0;
          const hwpt = this.getHwpt(ctx, hwptId);
          if (typeof hwpt === 'number') return hwpt;
          ctx.putObject(hwpt);
          return hwpt.domain === attached ? 0 : EINVAL;
        }
      }
    } finally {
      ctx.putObject(sobj);
    }
  }

  private getHwpt(ctx: CtxInternals, id: number): HwptInternals | Errno {
    const obj = ctx.getObject<HwptInternals>(id, 'ANY');
    if (typeof obj === 'number') return obj;
    if (obj.type !== 'HWPT_PAGING' && obj.type !== 'HWPT_NESTED') {
      ctx.putObject(obj);
      return ENOENT;
    }
    return obj;
  }

  /** get_md_pagetable: a HWPT_PAGING whose domain is the mock's. */
  private withMockPaging(ctx: CtxInternals, id: number, fn: (domain: IommuDomain) => 0 | Errno): 0 | Errno {
    const hwpt = ctx.getObject<HwptInternals>(id, 'HWPT_PAGING');
    if (typeof hwpt === 'number') return hwpt;
    try {
      if (hwpt.domain.owner !== this.mock.ops || hwpt.domain.type !== 'paging') return EINVAL;
      return fn(hwpt.domain);
    } finally {
      ctx.putObject(hwpt);
    }
  }

  private withIdev(ctx: CtxInternals, id: number, fn: (idev: IdevInternals) => 0 | Errno): 0 | Errno {
    const idev = ctx.getObject<IdevInternals>(id, 'DEVICE');
    if (typeof idev === 'number') return idev;
    try {
      return fn(idev);
    } finally {
      ctx.putObject(idev);
    }
  }

  private userPhys(ctx: CtxInternals, va: bigint): bigint | Errno {
    const proc = this.processes.get(ctx);
    if (!proc) return EFAULT;
    const pa = proc.mm.translate(va, 'read', true);
    return typeof pa === 'bigint' ? pa : EFAULT;
  }

  /** MD_CHECK_MAP: every mock page at `iova` maps the physical page behind `uptr`. */
  private checkMap(ctx: CtxInternals, id: number, iova: bigint, length: bigint, uptr: bigint): 0 | Errno {
    if (iova % MOCK_IO_PAGE_SIZE || length % MOCK_IO_PAGE_SIZE || uptr % MOCK_IO_PAGE_SIZE || uptr + length > ULONG_MAX) return EINVAL;
    return this.withMockPaging(ctx, id, (domain) => {
      for (let off = 0n; off < length; off += MOCK_IO_PAGE_SIZE) {
        const pa = this.userPhys(ctx, uptr + off);
        if (typeof pa === 'number') return pa;
        const pte = mockDomainLookup(domain, iova + off);
        if (!pte || pte.pa !== pa) return EINVAL;
      }
      return 0;
    });
  }

  /** MD_CHECK_REFS: each page's long-term pin count equals `refs` (EIO otherwise). */
  private checkRefs(ctx: CtxInternals, uptr: bigint, length: bigint, refs: number): 0 | Errno {
    if (length % PAGE || uptr % PAGE || uptr + length > ULONG_MAX) return EINVAL;
    const proc = this.processes.get(ctx);
    if (!proc) return EFAULT;
    for (let off = 0n; off < length; off += PAGE) {
      const pa = proc.mm.translate(uptr + off, 'read', true);
      if (typeof pa !== 'bigint') return EFAULT;
      if (this.platform.refs.pinCount(pa / PAGE) !== refs) return EIO;
    }
    return 0;
  }

  private dirty(ctx: CtxInternals, id: number, b: Uint8Array, respond: () => 0 | Errno): 0 | Errno {
    const p = T.iommu_test_cmd_dirty.decode(b);
    if (!p.page_size || !p.length || p.iova % p.page_size || p.length % p.page_size || !p.uptr) return EINVAL;
    return this.withMockPaging(ctx, id, (domain) => {
      if (!(domain as IommuDomain & { dirtyTracking?: boolean }).dirtyTracking) return EINVAL;
      const max = Number(p.length / p.page_size);
      const bits = ctx.process.copyFromUser(p.uptr, Math.ceil(max / 8));
      if (typeof bits === 'number') return EFAULT;
      let count = 0n;
      for (let i = 0; i < max; i++) {
        if (!((bits[i >> 3] >> (i & 7)) & 1)) continue;
        if (mockDomainSetDirty(domain, p.iova + BigInt(i) * p.page_size, p.page_size) > 0) count++;
      }
      T.iommu_test_cmd_dirty.set(b, 'out_nr_dirty', count);
      return respond();
    });
  }

  private checkIotlb(ctx: CtxInternals, id: number, slot: number, value: number): 0 | Errno {
    const hwpt = ctx.getObject<HwptInternals>(id, 'HWPT_NESTED');
    if (typeof hwpt === 'number') return hwpt;
    try {
      if (slot > T.MOCK_NESTED_DOMAIN_IOTLB_ID_MAX) return EINVAL;
      return mockNestedIotlb(hwpt.domain, slot) === value ? 0 : EINVAL;
    } finally {
      ctx.putObject(hwpt);
    }
  }

  // ---- accesses --------------------------------------------------------------------------

  private createAccess(ctx: CtxInternals, ioasId: number, b: Uint8Array, respond: () => 0 | Errno): 0 | Errno {
    const flags = T.iommu_test_cmd_create_access.get(b, 'flags');
    if (flags & ~T.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES) return EINVAL;
    const proc = this.processes.get(ctx);
    if (!proc) return EFAULT;
    const fd = proc.kernel.reserveFd();
    if (fd < 0 || this.fail('fd-alloc')) {
      if (fd >= 0) proc.kernel.releaseFd(fd);
      return ENOMEM;
    }
    if (this.fail('staccess-alloc')) {
      proc.kernel.releaseFd(fd);
      return ENOMEM;
    }
    const st: StAccess = { access: undefined as unknown as Access, items: [], nextId: 0 };
    const created = iommufdAccessCreate(ctx, ioasId, {
      needsPin: (flags & T.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES) !== 0,
      // iommufd_test_access_unmap: drop every item inside the unmapped range.
      unmap: (iova, length) => {
        const last = iova + length - 1n;
        for (const item of [...st.items]) {
          if (item.iova > last || item.iova + item.length - 1n < iova) continue;
          iommufdAccessUnpinPages(st.access, item.iova, item.length);
          st.items.splice(st.items.indexOf(item), 1);
        }
      },
    });
    if (typeof created === 'number') {
      proc.kernel.releaseFd(fd);
      return created;
    }
    st.access = created.access;
    T.iommu_test_cmd_create_access.set(b, 'out_access_fd', fd);
    const rc = respond();
    if (rc) {
      iommufdAccessDestroy(st.access);
      proc.kernel.releaseFd(fd);
      return rc;
    }
    const file: KernelFile = {
      kind: '[iommufd_test_staccess]',
      release: () => {
        for (const item of st.items) iommufdAccessUnpinPages(st.access, item.iova, item.length);
        st.items.length = 0;
        iommufdAccessDestroy(st.access);
      },
    };
    this.accessFiles.set(file, st);
    proc.kernel.installFd(fd, file);
    return 0;
  }

  /** iommufd_access_get: the staccess behind an fd, or EBADFD. */
  private staccess(ctx: CtxInternals, fd: number): StAccess | Errno {
    const of = this.processes.get(ctx)?.fileOf(fd);
    const st = of ? this.accessFiles.get(of.file) : undefined;
    return st ?? EBADFD;
  }

  private destroyAccessPages(ctx: CtxInternals, fd: number, itemId: number): 0 | Errno {
    const st = this.staccess(ctx, fd);
    if (typeof st === 'number') return st;
    const item = st.items.find((i) => i.id === itemId);
    if (!item) return ENOENT;
    iommufdAccessUnpinPages(st.access, item.iova, item.length);
    st.items.splice(st.items.indexOf(item), 1);
    return 0;
  }

  private accessPages(ctx: CtxInternals, fd: number, b: Uint8Array, respond: () => 0 | Errno): 0 | Errno {
    const p = T.iommu_test_cmd_access_pages.decode(b);
    if (p.length > 16n << 20n) return ENOMEM;
    if (p.flags & ~T.MOCK_FLAGS_ACCESS_WRITE) return EOPNOTSUPP;
    const st = this.staccess(ctx, fd);
    if (typeof st === 'number') return st;
    if (st.access.iovaAlignment !== PAGE) return EOPNOTSUPP;
    if (this.fail('pages-array-alloc')) return ENOMEM;
    const pfns = iommufdAccessPinPages(st.access, p.iova, p.length, (p.flags & T.MOCK_FLAGS_ACCESS_WRITE) !== 0);
    if (typeof pfns === 'number') return pfns;
    const undo = () => iommufdAccessUnpinPages(st.access, p.iova, p.length);
    if (p.uptr) {
      // The pinned pages must be the ones behind uptr (iommufd_test_check_pages: EBUSY).
      const base = p.uptr - (p.iova % PAGE);
      for (let i = 0; i < pfns.length; i++) {
        const pa = this.userPhys(ctx, base + BigInt(i) * PAGE);
        if (typeof pa === 'number') {
          undo();
          return pa;
        }
        if (pa / PAGE !== pfns[i]) {
          undo();
          return EBUSY;
        }
      }
    }
    if (this.fail('access-item-alloc')) {
      undo();
      return ENOMEM;
    }
    const item = { id: st.nextId++, iova: p.iova, length: p.length };
    st.items.push(item);
    T.iommu_test_cmd_access_pages.set(b, 'out_access_pages_id', item.id);
    const rc = respond();
    if (rc) {
      st.items.pop();
      undo();
    }
    return rc;
  }

  private accessRw(ctx: CtxInternals, fd: number, iova: bigint, uptr: bigint, length: bigint, flags: number): 0 | Errno {
    if (length > 16n << 20n) return ENOMEM;
    if (flags & ~(T.MOCK_ACCESS_RW_WRITE | T.MOCK_ACCESS_RW_SLOW_PATH)) return EOPNOTSUPP;
    const st = this.staccess(ctx, fd);
    if (typeof st === 'number') return st;
    if (this.fail('rw-buffer-alloc')) return ENOMEM;
    const write = (flags & T.MOCK_ACCESS_RW_WRITE) !== 0;
    let tmp: Uint8Array = new Uint8Array(Number(length));
    if (write) {
      const got = ctx.process.copyFromUser(uptr, Number(length));
      if (typeof got === 'number') return EFAULT;
      tmp = got;
    }
    const rc = iommufdAccessRw(st.access, iova, tmp, write);
    if (rc) return rc;
    if (!write && ctx.process.copyToUser(uptr, tmp)) return EFAULT;
    return 0;
  }

  /** ACCESS_REPLACE_IOAS (`iommufd_access_replace`): drop every pin, move to the new IOAS. */
  private accessReplaceIoas(ctx: CtxInternals, fd: number, ioasId: number): 0 | Errno {
    const st = this.staccess(ctx, fd);
    if (typeof st === 'number') return st;
    const access = st.access as unknown as AccessInternals;
    const next = ctx.getObject<IoasInternals>(ioasId, 'IOAS');
    if (typeof next === 'number') return next;
    try {
      if (access.ioas === next) return 0;
      const rc = next.iopt.addAccess(access);
      if (rc) return rc;
      // The owner is told everything went away, as the kernel's change_ioas does.
      for (const item of [...st.items]) iommufdAccessUnpinPages(st.access, item.iova, item.length);
      st.items.length = 0;
      access.detach();
      access.ioas = next;
      next.users++;
      access.pinned.push(next);
      next.accessPins.set(access, new Set());
      return 0;
    } finally {
      ctx.putObject(next);
    }
  }
}
