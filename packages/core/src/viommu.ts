/**
 * vIOMMU objects (viommu.c), exactly as the 6.17 seed: the driver only reports a size; the
 * core allocates that many bytes, initializes every core field, and only then calls
 * `viommuInit`, so driver helpers that read core fields are safe inside it.
 */
import { EBUSY, EINVAL, ENOMEM, EOPNOTSUPP, IOMMU_VIOMMU_TYPE_DEFAULT, type iommu_viommu_alloc } from '@iommufd/uapi';
import { IOMMUFD_VIOMMU, IommufdViommu, StructMemory, type Errno, type IommuDevice, type IommuUserData } from '@iommufd/driver-api';
import type { IommufdCtxImpl, Ucmd } from './context.js';
import { IommufdObject, pinObject, unpinObject } from './object.js';
import type { BoundDevice } from './device.js';
import type { HwptPaging } from './hw-pagetable.js';
import type { Vdevice } from './vdevice.js';
import type { Veventq } from './eventq.js';

type Cmd<L> = L extends { decode(b: Uint8Array): infer V } ? V : never;

/** A VIOMMU object: the core object around the driver's struct allocation. */
export class Viommu extends IommufdObject {
  /** `VIOMMU` */
  readonly type = 'VIOMMU' as const;
  /** The `struct iommufd_viommu` at offset 0 of the driver-sized allocation. */
  readonly core: IommufdViommu;
  /** Nesting parent (pinned once the core fields are set). */
  hwpt!: HwptPaging;
  /** Physical IOMMU instance. */
  iommuDev!: IommuDevice;
  /** vDEVICEs by virt_id (`viommu->vdevs`). */
  readonly vdevs = new Map<bigint, Vdevice>();
  /** vEVENTQs (`viommu->veventqs`). */
  readonly veventqs: Veventq[] = [];
  constructor(ictx: IommufdCtxImpl, size: number) {
    super(ictx);
    this.core = new IommufdViommu(new StructMemory(size));
  }

  /** `iommufd_viommu_destroy`: driver destroy only if the driver set `ops`. */
  destroy(): void {
    this.core.ops?.destroy?.(this.core);
    if (this.hwpt) unpinObject(this, this.hwpt);
    this.vdevs.clear();
  }
}

/** The Viommu object behind a driver-visible core struct. */
export const viommuOfCore = new WeakMap<IommufdViommu, Viommu>();

/**
 * `_iommufd_object_alloc_ucmd`: the dispatcher finalizes the object on success and
 * abort-and-destroys it on failure.
 */
export function allocUcmd<T extends IommufdObject>(ucmd: Ucmd<unknown>, obj: T): T | Errno {
  if (ucmd.newObj) return EBUSY;
  if (obj.abort) return EOPNOTSUPP;
  const r = ucmd.ictx.allocObject(obj);
  if (typeof r === 'number') return r;
  ucmd.newObj = r;
  return r;
}

/** IOMMU_VIOMMU_ALLOC */
export function iommufdViommuAlloc(ucmd: Ucmd<Cmd<typeof iommu_viommu_alloc>>): 0 | Errno {
  const cmd = ucmd.cmd;
  const ictx = ucmd.ictx;
  if (cmd.flags || cmd.type === IOMMU_VIOMMU_TYPE_DEFAULT) return EOPNOTSUPP;
  const idev = ictx.getObject<BoundDevice>(cmd.dev_id, 'DEVICE');
  if (typeof idev === 'number') return idev;
  try {
    const ops = idev.dev.iommu.ops;
    if (!ops.getViommuSize || !ops.viommuInit) return EOPNOTSUPP;
    const sizeObs = ictx.core.observer;
    sizeObs?.opBegin('getViommuSize', { device: idev.dev.name, type: cmd.type });
    const size = ops.getViommuSize(idev.dev, cmd.type);
    // The size the core is about to allocate: the seed contract made visible in traces.
    sizeObs?.opEnd('getViommuSize', 0, size);
    if (!size) return EOPNOTSUPP;
    // A size below the core struct is a driver bug (WARN_ON_ONCE in the kernel).
    if (size < IOMMUFD_VIOMMU.size) return EOPNOTSUPP;
    const hwpt = ictx.getObject<HwptPaging>(cmd.hwpt_id, 'HWPT_PAGING');
    if (typeof hwpt === 'number') return hwpt;
    try {
      if (!hwpt.nestParent) return EINVAL;
      const viommu = allocUcmd(ucmd, new Viommu(ictx, size));
      if (typeof viommu === 'number') return viommu;
      viommuOfCore.set(viommu.core, viommu);
      // Every core field is set before the driver runs.
      viommu.hwpt = hwpt;
      pinObject(viommu, hwpt);
      viommu.iommuDev = idev.dev.iommu;
      viommu.core.initCore({
        id: viommu.id,
        ictx,
        iommuDev: idev.dev.iommu,
        hwpt: { id: hwpt.id, domain: hwpt.domain },
        type: cmd.type,
        vdevs: viommu.vdevs,
        veventqs: viommu.veventqs,
      });
      if (ictx.shouldFail('driver-init')) return ENOMEM;
      const userData: IommuUserData = { type: cmd.type, uptr: cmd.data_uptr, len: cmd.data_len, user: ictx.process };
      const obs = ictx.core.observer;
      obs?.opBegin('viommuInit', { viommu: viommu.id, device: idev.dev.name, parent: hwpt.id, type: cmd.type, dataLen: cmd.data_len });
      const rc = ops.viommuInit(viommu.core, hwpt.domain, cmd.data_len ? userData : undefined);
      obs?.opEnd('viommuInit', rc);
      if (rc) return rc;
      // A driver that did not set ops is buggy (WARN_ON_ONCE).
      if (!viommu.core.ops) return EOPNOTSUPP;
      cmd.out_viommu_id = viommu.id;
      return ucmd.respond();
    } finally {
      ictx.putObject(hwpt);
    }
  } finally {
    ictx.putObject(idev);
  }
}
