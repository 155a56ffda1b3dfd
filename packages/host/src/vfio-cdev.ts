/**
 * The VFIO device cdev (`/dev/vfio/devices/vfioN`, drivers/vfio/device_cdev.c + vfio-pci):
 * VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_ATTACH_IOMMUFD_PT and VFIO_DEVICE_DETACH_IOMMUFD_PT
 * with the kernel's argsz / flags / errno rules, and unbind on the last close.
 */
import { copyStructFromUserAt, EBADF, EBADFD, EFAULT, EINVAL, ENOTTY } from '@iommufd/uapi';
import type { OpenFile } from './fd-table.js';
import type { Errno, KernelFile, KernelProcess } from './kernel-types.js';
import {
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_ATTACH_PASID,
  VFIO_DEVICE_BIND_FLAG_TOKEN,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
  VFIO_DEVICE_DETACH_PASID,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_device_detach_iommufd_pt,
} from '@iommufd/uapi';
import type { ProcessImpl } from './process.js';

/** What the VFIO cdev needs from iommufd (the core's VFIO-facing functions, as opaque handles). */
export interface VfioIommufdOps<Dev, Idev> {
  /** Whether an open file is a /dev/iommu context (iommufd_ctx_from_file). */
  isIommufd(file: KernelFile): boolean;
  bind(ctx: KernelFile, dev: Dev): { idev: Idev; devId: number } | Errno;
  attach(idev: Idev, pasid: number | undefined, ptId: number): { ptId: number } | Errno;
  replace(idev: Idev, pasid: number | undefined, ptId: number): { ptId: number } | Errno;
  detach(idev: Idev, pasid: number | undefined): void;
  unbind(idev: Idev): void;
}

/** State of a bound device, for inspection. */
export interface VfioBinding {
  readonly devId: number;
  /** Attached page table per PASID (`undefined` key = the RID). */
  readonly attached: ReadonlyMap<number | undefined, number>;
}

/** One open of a VFIO device cdev (a `vfio_device_file`). */
export class VfioDeviceFile<Dev, Idev> implements KernelFile {
  readonly kind = '[vfio-device]';
  private bound: { idev: Idev; devId: number; ctxFile: OpenFile } | undefined;
  private readonly attached = new Map<number | undefined, number>();
  /** The process whose ioctl is running (`current`): whose memory and fd table it uses. */
  private current: ProcessImpl;

  constructor(
    readonly path: string,
    private readonly device: Dev,
    private readonly process: ProcessImpl,
    private readonly ops: VfioIommufdOps<Dev, Idev>,
    private readonly openState: { open: boolean },
    /** The host process behind a kernel view (a forked child calls on its copy of the fd). */
    private readonly processOf: (kernel: KernelProcess) => ProcessImpl | undefined = () => undefined,
  ) {
    this.current = process;
  }

  /** The current binding, if any. */
  get binding(): VfioBinding | undefined {
    return this.bound ? { devId: this.bound.devId, attached: new Map(this.attached) } : undefined;
  }

  /** The iommufd bound device handle (host-internal). */
  get idev(): Idev | undefined {
    return this.bound?.idev;
  }

  ioctl(request: number, arg: bigint, caller?: KernelProcess): number {
    const previous = this.current;
    this.current = (caller && this.processOf(caller)) ?? this.process;
    try {
      return this.dispatch(request, arg);
    } finally {
      this.current = previous;
    }
  }

  private dispatch(request: number, arg: bigint): number {
    if (request === VFIO_DEVICE_BIND_IOMMUFD) return this.bindIommufd(arg);
    // Every other ioctl of a cdev fd needs a successful bind first.
    if (!this.bound) return -EINVAL;
    if (request === VFIO_DEVICE_ATTACH_IOMMUFD_PT) return this.attachPt(arg);
    if (request === VFIO_DEVICE_DETACH_IOMMUFD_PT) return this.detachPt(arg);
    return -ENOTTY;
  }

  release(): void {
    if (!this.bound) return;
    // vfio_df_unbind_iommufd: PASIDs first, then the RID, then the device object.
    const { idev, ctxFile } = this.bound;
    for (const pasid of [...this.attached.keys()].filter((p) => p !== undefined)) this.ops.detach(idev, pasid);
    if (this.attached.has(undefined)) this.ops.detach(idev, undefined);
    this.attached.clear();
    this.ops.unbind(idev);
    this.bound = undefined;
    this.openState.open = false;
    ctxFile.put();
  }

  private bindIommufd(arg: bigint): number {
    const L = vfio_device_bind_iommufd;
    const head = this.current.kernel.copyFromUser(arg, 4);
    if (typeof head === 'number') return -EFAULT;
    const argsz = L.get(head, 'argsz');
    if (argsz < L.minSize) return -EINVAL;
    // copy_struct_from_user: bytes beyond what the kernel knows must be zero.
    const bind = copyStructFromUserAt(L, (va, n) => this.current.kernel.copyFromUser(va, n), arg, argsz);
    if (typeof bind === 'number') return -bind;
    if (bind.iommufd < 0 || bind.flags & ~VFIO_DEVICE_BIND_FLAG_TOKEN) return -EINVAL;
    if (this.bound) return -EINVAL;
    if (bind.flags & VFIO_DEVICE_BIND_FLAG_TOKEN) {
      const uuid = this.current.kernel.copyFromUser(bind.token_uuid_ptr, 16);
      if (typeof uuid === 'number') return -EFAULT;
      // vfio-pci accepts a VF token only for SR-IOV PFs/VFs; the host's devices are neither.
      return -EINVAL;
    }
    const ctxFile = this.current.fileOf(bind.iommufd);
    if (!ctxFile) return -EBADF;
    if (!this.ops.isIommufd(ctxFile.file)) return -EBADFD;
    // vfio_df_open: a cdev may hold the device open only once at a time.
    if (this.openState.open) return -EINVAL;
    const r = this.ops.bind(ctxFile.file, this.device);
    if (typeof r === 'number') return -r;
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, r.devId, true);
    if (this.current.kernel.copyToUser(arg + BigInt(L.offsetOf('out_devid')), out) !== 0) {
      this.ops.unbind(r.idev);
      return -EFAULT;
    }
    // The bound device keeps the iommufd open (iommufd_ctx_get) until unbind.
    ctxFile.get();
    this.bound = { idev: r.idev, devId: r.devId, ctxFile };
    this.openState.open = true;
    return 0;
  }

  private attachPt(arg: bigint): number {
    const L = vfio_device_attach_iommufd_pt;
    const minsz = L.offsetOfEnd('pt_id');
    const raw = this.current.kernel.copyFromUser(arg, minsz);
    if (typeof raw === 'number') return -EFAULT;
    const argsz = L.get(raw, 'argsz');
    const flags = L.get(raw, 'flags');
    let ptId = L.get(raw, 'pt_id');
    if (argsz < minsz || flags & ~VFIO_DEVICE_ATTACH_PASID) return -EINVAL;
    let pasid: number | undefined;
    if (flags & VFIO_DEVICE_ATTACH_PASID) {
      const xend = L.offsetOfEnd('pasid');
      if (argsz < xend) return -EINVAL;
      const p = this.current.kernel.copyFromUser(arg + BigInt(minsz), xend - minsz);
      if (typeof p === 'number') return -EFAULT;
      pasid = new DataView(p.buffer, p.byteOffset).getUint32(0, true);
    }
    const idev = this.bound!.idev;
    const replacing = this.attached.has(pasid);
    const r = replacing ? this.ops.replace(idev, pasid, ptId) : this.ops.attach(idev, pasid, ptId);
    if (typeof r === 'number') return -r;
    ptId = r.ptId;
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, ptId, true);
    if (this.current.kernel.copyToUser(arg + BigInt(L.offsetOf('pt_id')), out) !== 0) {
      this.ops.detach(idev, pasid);
      this.attached.delete(pasid);
      return -EFAULT;
    }
    this.attached.set(pasid, ptId);
    return 0;
  }

  private detachPt(arg: bigint): number {
    const L = vfio_device_detach_iommufd_pt;
    const minsz = L.offsetOfEnd('flags');
    const raw = this.current.kernel.copyFromUser(arg, minsz);
    if (typeof raw === 'number') return -EFAULT;
    const argsz = L.get(raw, 'argsz');
    const flags = L.get(raw, 'flags');
    if (argsz < minsz || flags & ~VFIO_DEVICE_DETACH_PASID) return -EINVAL;
    let pasid: number | undefined;
    if (flags & VFIO_DEVICE_DETACH_PASID) {
      const xend = L.offsetOfEnd('pasid');
      if (argsz < xend) return -EINVAL;
      const p = this.current.kernel.copyFromUser(arg + BigInt(minsz), xend - minsz);
      if (typeof p === 'number') return -EFAULT;
      pasid = new DataView(p.buffer, p.byteOffset).getUint32(0, true);
    }
    // Detaching what is not attached is a no-op; vfio tracks it and skips the call.
    if (this.attached.has(pasid)) {
      this.ops.detach(this.bound!.idev, pasid);
      this.attached.delete(pasid);
    }
    return 0;
  }
}
