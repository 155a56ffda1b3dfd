/**
 * `IOMMU_TEST_CMD` of the mock platform: the selftest kernel's `iommufd_test()` dispatcher
 * (drivers/iommu/iommufd/selftest.c), one handler per op, each with the kernel's checks in
 * the kernel's order. Mock devices are hot-added to the core on MOCK_DOMAIN and removed when
 * their SELFTEST object is destroyed; accesses live behind an fd, as in the kernel.
 */
import {
  deviceAttachedDomain,
  IommufdObject,
  iommufdAccessCreate,
  iommufdAccessReplace,
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
  type Hwpt,
  type Ioas,
  type IommuCore,
  type IommufdContext,
  type IommufdCtxImpl,
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
import type { ProcessImpl } from '../process.js';
import * as U from '@iommufd/uapi';

const PAGE = 4096n;
const ULONG_MAX = (1n << 64n) - 1n;
type Errno = number;

/**
 * `IOMMUFD_OBJ_SELFTEST` of a mock device (`struct selftest_obj`, TYPE_IDEV): destroying it
 * detaches, unbinds and unplugs the device.
 */
class SelftestDevice extends IommufdObject {
  readonly type = 'SELFTEST' as const;
  /** Set once the device is bound (before finalize: only finalized objects can be looked up). */
  idev!: BoundDevice;
  dev!: CoreDevice;
  constructor(
    ictx: IommufdCtxImpl,
    private readonly unplug: (dev: CoreDevice) => void,
  ) {
    super(ictx);
  }

  /** `iommufd_selftest_destroy`. */
  destroy(): void {
    const { idev, dev } = this;
    if (!(idev as BoundDevice | undefined)) return;
    iommufdDeviceDetach(idev, undefined);
    // Give back the ctx reference the DEVICE's destroy drops (see mockDomain).
    this.ictx.getFile();
    iommufdDeviceUnbind(idev);
    // Unplug only what the core really unbound: a device the core kept bound stays, and the
    // leak checks of whoever closes the context report it.
    if (!dev.bound) this.unplug(dev);
  }
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
  // Weak: a context released long ago must not be kept alive by the selftest state.
  private readonly processes = new WeakMap<IommufdContext, ProcessImpl>();
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
  register(ctx: IommufdContext, process: ProcessImpl): void {
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
    const ctx = ctxPublic as IommufdCtxImpl;
    const L = U.iommu_test_cmd;
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

  private op(ctx: IommufdCtxImpl, b: Uint8Array, respond: () => 0 | Errno): 0 | Errno {
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const op = u32(v, 4);
    const id = u32(v, 8);
    switch (op) {
      case U.IOMMU_TEST_OP_ADD_RESERVED: {
        const p = U.IOMMU_TEST_CMD_LAYOUTS.add_reserved.decode(b);
        return this.addReserved(ctx, id, p.start, p.length);
      }
      case U.IOMMU_TEST_OP_MOCK_DOMAIN:
        return this.mockDomain(ctx, b, 0, respond);
      case U.IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS:
        return this.mockDomain(ctx, b, U.IOMMU_TEST_CMD_LAYOUTS.mock_domain_flags.get(b, 'dev_flags'), respond);
      case U.IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE:
        return this.mockDomainReplace(ctx, id, b, respond);
      case U.IOMMU_TEST_OP_MD_CHECK_MAP: {
        const p = U.IOMMU_TEST_CMD_LAYOUTS.check_map.decode(b);
        return this.checkMap(ctx, id, p.iova, p.length, p.uptr);
      }
      case U.IOMMU_TEST_OP_MD_CHECK_REFS: {
        const p = U.IOMMU_TEST_CMD_LAYOUTS.check_refs.decode(b);
        return this.checkRefs(ctx, p.uptr, p.length, p.refs);
      }
      case U.IOMMU_TEST_OP_CREATE_ACCESS:
        return this.createAccess(ctx, id, b, respond);
      case U.IOMMU_TEST_OP_DESTROY_ACCESS_PAGES:
        return this.destroyAccessPages(ctx, id, U.IOMMU_TEST_CMD_LAYOUTS.destroy_access_pages.get(b, 'access_pages_id'));
      case U.IOMMU_TEST_OP_ACCESS_PAGES:
        return this.accessPages(ctx, id, b, respond);
      case U.IOMMU_TEST_OP_ACCESS_RW: {
        const p = U.IOMMU_TEST_CMD_LAYOUTS.access_rw.decode(b);
        return this.accessRw(ctx, id, p.iova, p.uptr, p.length, p.flags);
      }
      case U.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT: {
        const limit = U.IOMMU_TEST_CMD_LAYOUTS.memory_limit.get(b, 'limit');
        if (limit < 12) return EINVAL;
        this.memoryLimit = limit;
        return 0;
      }
      case U.IOMMU_TEST_OP_ACCESS_REPLACE_IOAS:
        return this.accessReplaceIoas(ctx, id, U.IOMMU_TEST_CMD_LAYOUTS.access_replace_ioas.get(b, 'ioas_id'));
      case U.IOMMU_TEST_OP_DIRTY:
        return this.dirty(ctx, id, b, respond);
      case U.IOMMU_TEST_OP_MD_CHECK_IOTLB: {
        const p = U.IOMMU_TEST_CMD_LAYOUTS.check_iotlb.decode(b);
        return this.checkIotlb(ctx, id, p['check_iotlb.id'], p.iotlb);
      }
      case U.IOMMU_TEST_OP_TRIGGER_IOPF: {
        const p = U.IOMMU_TEST_CMD_LAYOUTS.trigger_iopf.decode(b);
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
      case U.IOMMU_TEST_OP_DEV_CHECK_CACHE: {
        const p = U.IOMMU_TEST_CMD_LAYOUTS.check_dev_cache.decode(b);
        return this.withIdev(ctx, id, (idev) => {
          if (p['check_dev_cache.id'] > U.MOCK_DEV_CACHE_ID_MAX) return EINVAL;
          return mockDeviceCache(idev.dev, p['check_dev_cache.id']) === p.cache ? 0 : EINVAL;
        });
      }
      case U.IOMMU_TEST_OP_TRIGGER_VEVENT:
        return this.withIdev(ctx, U.IOMMU_TEST_CMD_LAYOUTS.trigger_vevent.get(b, 'dev_id'), (idev) => mockTriggerVevent(idev.dev));
      case U.IOMMU_TEST_OP_PASID_ATTACH:
      case U.IOMMU_TEST_OP_PASID_REPLACE:
      case U.IOMMU_TEST_OP_PASID_DETACH:
      case U.IOMMU_TEST_OP_PASID_CHECK_HWPT:
        return this.pasidOp(ctx, op, id, U.IOMMU_TEST_CMD_LAYOUTS.pasid_attach.decode(b));
      default:
        return EOPNOTSUPP;
    }
  }

  // ---- IOAS / domains ------------------------------------------------------------------

  private addReserved(ctx: IommufdCtxImpl, ioasId: number, start: bigint, length: bigint): 0 | Errno {
    const ioas = ctx.getObject<Ioas>(ioasId, 'IOAS');
    if (typeof ioas === 'number') return ioas;
    const rc = ioas.iopt.reserveIova(start, start + length - 1n, this);
    ctx.putObject(ioas);
    return rc;
  }

  /** `iommufd_test_mock_domain`: SELFTEST object, mock device, bind, attach, respond, finalize. */
  private mockDomain(ctx: IommufdCtxImpl, b: Uint8Array, devFlags: number, respond: () => 0 | Errno): 0 | Errno {
    const known = U.MOCK_FLAGS_DEVICE_NO_DIRTY | U.MOCK_FLAGS_DEVICE_HUGE_IOVA | U.MOCK_FLAGS_DEVICE_PASID;
    if (devFlags & ~known) return EINVAL;
    const sobj = ctx.allocObject(new SelftestDevice(ctx, (d) => this.core.removeDevice(d)));
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
      pasid: devFlags & U.MOCK_FLAGS_DEVICE_PASID ? { maxPasidLog2: U.MOCK_PASID_WIDTH } : undefined,
    });
    mockSetDeviceFlags(dev, devFlags);
    const bound = iommufdDeviceBind(ctx, dev);
    if (typeof bound === 'number') {
      this.core.removeDevice(dev);
      ctx.abort(sobj);
      return bound;
    }
    const attached = iommufdDeviceAttach(bound.idev, undefined, U.iommu_test_cmd.get(b, 'id'));
    if (typeof attached === 'number') {
      iommufdDeviceUnbind(bound.idev);
      this.core.removeDevice(dev);
      ctx.abort(sobj);
      return attached;
    }
    // iommufd_device_bind takes no ctx reference for a selftest mock device (it is owned by
    // an object of the ctx itself, so it must not keep the ctx open).
    ctx.putFile();
    sobj.idev = bound.idev;
    sobj.dev = dev;
    U.IOMMU_TEST_CMD_LAYOUTS.mock_domain_flags.set(b, 'out_stdev_id', sobj.id);
    U.IOMMU_TEST_CMD_LAYOUTS.mock_domain_flags.set(b, 'out_hwpt_id', attached.ptId);
    U.IOMMU_TEST_CMD_LAYOUTS.mock_domain_flags.set(b, 'out_idev_id', bound.devId);
    const rc = respond();
    if (rc) {
      iommufdDeviceDetach(bound.idev, undefined);
      ctx.getFile();
      iommufdDeviceUnbind(bound.idev);
      this.core.removeDevice(dev);
      ctx.abort(sobj);
      return rc;
    }
    ctx.finalize(sobj);
    return 0;
  }

  private getSelftest(ctx: IommufdCtxImpl, id: number): SelftestDevice | Errno {
    return ctx.getObject<SelftestDevice>(id, 'SELFTEST');
  }

  private mockDomainReplace(ctx: IommufdCtxImpl, stdevId: number, b: Uint8Array, respond: () => 0 | Errno): 0 | Errno {
    const sobj = this.getSelftest(ctx, stdevId);
    if (typeof sobj === 'number') return sobj;
    try {
      const r = iommufdDeviceReplace(sobj.idev, undefined, U.IOMMU_TEST_CMD_LAYOUTS.mock_domain_replace.get(b, 'pt_id'));
      if (typeof r === 'number') return r;
      U.IOMMU_TEST_CMD_LAYOUTS.mock_domain_replace.set(b, 'pt_id', r.ptId);
      return respond();
    } finally {
      ctx.putObject(sobj);
    }
  }

  private pasidOp(ctx: IommufdCtxImpl, op: number, stdevId: number, p: { pasid: number; pt_id: number }): 0 | Errno {
    const sobj = this.getSelftest(ctx, stdevId);
    if (typeof sobj === 'number') return sobj;
    try {
      switch (op) {
        case U.IOMMU_TEST_OP_PASID_ATTACH: {
          const r = iommufdDeviceAttach(sobj.idev, p.pasid, p.pt_id);
          return typeof r === 'number' ? r : 0;
        }
        case U.IOMMU_TEST_OP_PASID_REPLACE: {
          const r = iommufdDeviceReplace(sobj.idev, p.pasid, p.pt_id);
          return typeof r === 'number' ? r : 0;
        }
        case U.IOMMU_TEST_OP_PASID_DETACH:
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

  private getHwpt(ctx: IommufdCtxImpl, id: number): Hwpt | Errno {
    const obj = ctx.getObject<Hwpt>(id, 'ANY');
    if (typeof obj === 'number') return obj;
    if (obj.type !== 'HWPT_PAGING' && obj.type !== 'HWPT_NESTED') {
      ctx.putObject(obj);
      return ENOENT;
    }
    return obj;
  }

  /** get_md_pagetable: a HWPT_PAGING whose domain is the mock's. */
  private withMockPaging(ctx: IommufdCtxImpl, id: number, fn: (domain: IommuDomain) => 0 | Errno): 0 | Errno {
    const hwpt = ctx.getObject<Hwpt>(id, 'HWPT_PAGING');
    if (typeof hwpt === 'number') return hwpt;
    try {
      if (hwpt.domain.owner !== this.mock.ops || hwpt.domain.type !== 'paging') return EINVAL;
      return fn(hwpt.domain);
    } finally {
      ctx.putObject(hwpt);
    }
  }

  private withIdev(ctx: IommufdCtxImpl, id: number, fn: (idev: BoundDevice) => 0 | Errno): 0 | Errno {
    const idev = ctx.getObject<BoundDevice>(id, 'DEVICE');
    if (typeof idev === 'number') return idev;
    try {
      return fn(idev);
    } finally {
      ctx.putObject(idev);
    }
  }

  private userPhys(ctx: IommufdCtxImpl, va: bigint): bigint | Errno {
    const proc = this.processes.get(ctx);
    if (!proc) return EFAULT;
    const pa = proc.mm.translate(va, 'read', true);
    return typeof pa === 'bigint' ? pa : EFAULT;
  }

  /** MD_CHECK_MAP: every mock page at `iova` maps the physical page behind `uptr`. */
  private checkMap(ctx: IommufdCtxImpl, id: number, iova: bigint, length: bigint, uptr: bigint): 0 | Errno {
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
  private checkRefs(ctx: IommufdCtxImpl, uptr: bigint, length: bigint, refs: number): 0 | Errno {
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

  private dirty(ctx: IommufdCtxImpl, id: number, b: Uint8Array, respond: () => 0 | Errno): 0 | Errno {
    const p = U.IOMMU_TEST_CMD_LAYOUTS.dirty.decode(b);
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
      U.IOMMU_TEST_CMD_LAYOUTS.dirty.set(b, 'out_nr_dirty', count);
      return respond();
    });
  }

  private checkIotlb(ctx: IommufdCtxImpl, id: number, slot: number, value: number): 0 | Errno {
    const hwpt = ctx.getObject<Hwpt>(id, 'HWPT_NESTED');
    if (typeof hwpt === 'number') return hwpt;
    try {
      if (slot > U.MOCK_NESTED_DOMAIN_IOTLB_ID_MAX) return EINVAL;
      return mockNestedIotlb(hwpt.domain, slot) === value ? 0 : EINVAL;
    } finally {
      ctx.putObject(hwpt);
    }
  }

  // ---- accesses --------------------------------------------------------------------------

  private createAccess(ctx: IommufdCtxImpl, ioasId: number, b: Uint8Array, respond: () => 0 | Errno): 0 | Errno {
    const flags = U.IOMMU_TEST_CMD_LAYOUTS.create_access.get(b, 'flags');
    if (flags & ~U.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES) return EINVAL;
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
      needsPin: (flags & U.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES) !== 0,
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
    U.IOMMU_TEST_CMD_LAYOUTS.create_access.set(b, 'out_access_fd', fd);
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
  private staccess(ctx: IommufdCtxImpl, fd: number): StAccess | Errno {
    const of = this.processes.get(ctx)?.fileOf(fd);
    const st = of ? this.accessFiles.get(of.file) : undefined;
    return st ?? EBADFD;
  }

  private destroyAccessPages(ctx: IommufdCtxImpl, fd: number, itemId: number): 0 | Errno {
    const st = this.staccess(ctx, fd);
    if (typeof st === 'number') return st;
    const item = st.items.find((i) => i.id === itemId);
    if (!item) return ENOENT;
    iommufdAccessUnpinPages(st.access, item.iova, item.length);
    st.items.splice(st.items.indexOf(item), 1);
    return 0;
  }

  private accessPages(ctx: IommufdCtxImpl, fd: number, b: Uint8Array, respond: () => 0 | Errno): 0 | Errno {
    const p = U.IOMMU_TEST_CMD_LAYOUTS.access_pages.decode(b);
    if (p.length > 16n << 20n) return ENOMEM;
    if (p.flags & ~U.MOCK_FLAGS_ACCESS_WRITE) return EOPNOTSUPP;
    const st = this.staccess(ctx, fd);
    if (typeof st === 'number') return st;
    if (st.access.iovaAlignment !== PAGE) return EOPNOTSUPP;
    if (this.fail('pages-array-alloc')) return ENOMEM;
    const pfns = iommufdAccessPinPages(st.access, p.iova, p.length, (p.flags & U.MOCK_FLAGS_ACCESS_WRITE) !== 0);
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
    U.IOMMU_TEST_CMD_LAYOUTS.access_pages.set(b, 'out_access_pages_id', item.id);
    const rc = respond();
    if (rc) {
      st.items.pop();
      undo();
    }
    return rc;
  }

  private accessRw(ctx: IommufdCtxImpl, fd: number, iova: bigint, uptr: bigint, length: bigint, flags: number): 0 | Errno {
    if (length > 16n << 20n) return ENOMEM;
    if (flags & ~(U.MOCK_ACCESS_RW_WRITE | U.MOCK_ACCESS_RW_SLOW_PATH)) return EOPNOTSUPP;
    const st = this.staccess(ctx, fd);
    if (typeof st === 'number') return st;
    if (this.fail('rw-buffer-alloc')) return ENOMEM;
    const write = (flags & U.MOCK_ACCESS_RW_WRITE) !== 0;
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

  /** ACCESS_REPLACE_IOAS (`iommufd_access_replace`; the access's unmap op drops the items). */
  private accessReplaceIoas(ctx: IommufdCtxImpl, fd: number, ioasId: number): 0 | Errno {
    const st = this.staccess(ctx, fd);
    if (typeof st === 'number') return st;
    return iommufdAccessReplace(st.access, ioasId);
  }
}
