/**
 * HW_QUEUE objects (viommu.c): guest queue memory pinned through an internal ACCESS on the
 * nesting parent's IOAS, checked physically contiguous, then `hwQueueInitPhys`.
 */
import { EFAULT, EINVAL, ENOMEM, EOPNOTSUPP, EOVERFLOW, ERANGE, IOMMU_HW_QUEUE_TYPE_DEFAULT, type iommu_hw_queue_alloc } from '@iommufd/uapi';
import { IOMMUFD_HW_QUEUE, IommufdHwQueue, StructMemory, type Errno } from '@iommufd/driver-api';
import type { IommufdCtxImpl, Ucmd } from './context.js';
import { IommufdObject, pinObject, unpinObject } from './object.js';
import { accessCreate, accessPinPages, type Access } from './access.js';
import { PAGE_SIZE, ULONG_MAX } from './io-pagetable.js';
import { allocUcmd, type Viommu } from './viommu.js';

type Cmd<L> = L extends { decode(b: Uint8Array): infer V } ? V : never;

/** A HW_QUEUE object. */
export class HwQueue extends IommufdObject {
  /** `HW_QUEUE` */
  readonly type = 'HW_QUEUE' as const;
  /** The `struct iommufd_hw_queue` at offset 0 of the driver-sized allocation. */
  readonly core: IommufdHwQueue;
  /** The vIOMMU (pinned). */
  viommu: Viommu | undefined;
  /** The internal access pinning the memory. */
  access: Access | undefined;
  constructor(ictx: IommufdCtxImpl, size: number) {
    super(ictx);
    this.core = new IommufdHwQueue(new StructMemory(size));
  }

  /** `iommufd_hw_queue_destroy`: each step only if it was reached. */
  destroy(): void {
    this.core.destroy?.(this.core);
    this.core.destroy = undefined;
    if (this.access) {
      const a = this.access;
      this.access = undefined;
      a.detach();
      this.ictx.destroyUser(a);
    }
    if (this.viommu) unpinObject(this, this.viommu);
    this.viommu = undefined;
  }
}

/** The HwQueue object behind a driver-visible core struct. */
export const hwQueueOfCore = new WeakMap<IommufdHwQueue, HwQueue>();

/** IOMMU_HW_QUEUE_ALLOC */
export function iommufdHwQueueAlloc(ucmd: Ucmd<Cmd<typeof iommu_hw_queue_alloc>>): 0 | Errno {
  const cmd = ucmd.cmd;
  const ictx = ucmd.ictx;
  if (cmd.flags || cmd.type === IOMMU_HW_QUEUE_TYPE_DEFAULT) return EOPNOTSUPP;
  if (!cmd.length) return EINVAL;
  if (cmd.nesting_parent_iova + cmd.length - 1n > ULONG_MAX) return EOVERFLOW;
  const viommu = ictx.getObject<Viommu>(cmd.viommu_id, 'VIOMMU');
  if (typeof viommu === 'number') return viommu;
  try {
    const vops = viommu.core.ops;
    if (!vops || !vops.getHwQueueSize || !vops.hwQueueInitPhys) return EOPNOTSUPP;
    const sizeObs = ictx.core.observer;
    sizeObs?.opBegin('getHwQueueSize', { viommu: viommu.id, type: cmd.type });
    const size = vops.getHwQueueSize(viommu.core, cmd.type);
    sizeObs?.opEnd('getHwQueueSize', 0, size);
    if (!size) return EOPNOTSUPP;
    if (size < IOMMUFD_HW_QUEUE.size) return EOPNOTSUPP;
    const hwq = allocUcmd(ucmd, new HwQueue(ictx, size));
    if (typeof hwq === 'number') return hwq;
    hwQueueOfCore.set(hwq.core, hwq);

    const aligned = cmd.nesting_parent_iova & ~(PAGE_SIZE - 1n);
    const offset = cmd.nesting_parent_iova - aligned;
    const span = offset + cmd.length + PAGE_SIZE - 1n;
    if (span > ULONG_MAX) return ERANGE;
    const npages = span / PAGE_SIZE;
    // The internal access takes the next ID and is finalized (visible, undestroyable).
    const access = accessCreate(ictx, viommu.hwpt.ioas.id, { needsPin: true, unmap: () => undefined }, true);
    if (typeof access === 'number') return access;
    hwq.access = access;
    const pfns = accessPinPages(access, aligned, npages * PAGE_SIZE, false, true);
    if (typeof pfns === 'number') return pfns;
    for (let i = 1; i < pfns.length; i++) if (pfns[i] !== pfns[0]! + BigInt(i)) return EFAULT;
    const basePa = pfns[0]! * PAGE_SIZE + offset;

    hwq.viommu = viommu;
    pinObject(hwq, viommu);
    hwq.core.initCore({
      id: hwq.id,
      viommu: viommu.core,
      access: { id: access.id },
      baseAddr: cmd.nesting_parent_iova,
      length: cmd.length,
      type: cmd.type,
    });
    if (ictx.shouldFail('driver-init')) return ENOMEM;
    const obs = ictx.core.observer;
    obs?.opBegin('hwQueueInitPhys', { hwQueue: hwq.id, viommu: viommu.id, type: cmd.type, index: cmd.index, basePa: `0x${basePa.toString(16)}`, length: `0x${cmd.length.toString(16)}` });
    const rc = vops.hwQueueInitPhys(hwq.core, cmd.index, basePa);
    obs?.opEnd('hwQueueInitPhys', rc);
    if (rc) return rc;
    cmd.out_hw_queue_id = hwq.id;
    return ucmd.respond();
  } finally {
    ictx.putObject(viommu);
  }
}
