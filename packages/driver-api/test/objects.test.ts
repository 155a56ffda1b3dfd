import { describe, expect, it } from 'vitest';
import { EINVAL, ENOENT } from '@iommufd/uapi';
import {
  containerOf,
  coreMember,
  darray,
  defineDriverStruct,
  dptr,
  pointee,
  DriverStructError,
  du16,
  du32,
  du64,
  hwQueueDepend,
  IOMMUFD_HW_QUEUE,
  IOMMUFD_VIOMMU,
  iommuShouldFail,
  IommufdHwQueue,
  IommufdViommu,
  StructMemory,
  viommuAllocMmap,
  viommuGetVdevId,
  viommuReportEvent,
  VIOMMU_STRUCT_SIZE,
  type IommufdCtx,
  type IommufdDriverServices,
  type IommuDevice,
  type IommuDomain,
} from '../src/index.js';

const drvViommu = defineDriverStruct('drv_viommu', [
  coreMember('core', IOMMUFD_VIOMMU),
  dptr('s2_parent', pointee<IommuDomain>()),
  du16('vmid'),
  darray('regs', 'u32', 3),
  du64('mmap_offset'),
]);

function services(log: string[]): IommufdDriverServices {
  return {
    viommuFindDev: () => undefined,
    viommuGetVdevId: () => ENOENT,
    vdeviceToDevice: () => {
      throw new Error('unused');
    },
    viommuReportEvent: (_v, type) => {
      log.push(`event ${type}`);
      return 0;
    },
    viommuAllocMmap: (_v, addr, len) => {
      log.push(`mmap ${addr} ${len}`);
      return 0x1000n;
    },
    viommuDestroyMmap: () => undefined,
    hwQueueDepend: () => {
      log.push('depend');
      return 0;
    },
    hwQueueUndepend: () => undefined,
    shouldFail: () => false,
  };
}

function coreViommu(log: string[]): IommufdViommu {
  const mem = new StructMemory(VIOMMU_STRUCT_SIZE(drvViommu, 'core'));
  const v = new IommufdViommu(mem);
  const ictx: IommufdCtx = { driverServices: services(log) };
  const iommu = { name: 'iommu0' } as IommuDevice;
  v.initCore({ id: 5, ictx, iommuDev: iommu, hwpt: { id: 3, domain: {} as IommuDomain }, type: 0xdeadbeef, vdevs: null, veventqs: null });
  return v;
}

describe('core structs and containerOf', () => {
  it('the core fills the core part at offset 0; the driver sees its fields in the same bytes', () => {
    const v = coreViommu([]);
    expect(v.id).toBe(5);
    expect(v.type).toBe(0xdeadbeef);
    expect(v.hwpt.id).toBe(3);
    const drv = containerOf(v, drvViommu, 'core');
    expect(drv.memory).toBe(v.memory);
    drv.set('vmid', 0x1234);
    drv.set('regs', [1, 2, 3]);
    drv.set('mmap_offset', 0x2000n);
    expect(drv.get('vmid')).toBe(0x1234);
    expect(drv.get('regs')).toEqual([1, 2, 3]);
    const off = drvViommu.offsetOf('vmid');
    expect([...v.memory.bytes.subarray(off, off + 2)]).toEqual([0x34, 0x12]);
    // obj_type (VIOMMU = 7) and obj_id at the start of the core struct.
    expect([...v.memory.bytes.subarray(0, 8)]).toEqual([7, 0, 0, 0, 5, 0, 0, 0]);
  });

  it('pointer fields behave as pointers: NULL until set, a non-zero token in the bytes', () => {
    const v = coreViommu([]);
    const drv = containerOf(v, drvViommu, 'core');
    const dom = { type: 'paging' } as IommuDomain;
    expect(drv.getPtr('s2_parent')).toBeUndefined();
    drv.setPtr('s2_parent', dom);
    expect(drv.getPtr('s2_parent')).toBe(dom);
    const at = drvViommu.offsetOf('s2_parent');
    expect(new DataView(v.memory.bytes.buffer).getBigUint64(at, true)).not.toBe(0n);
    drv.setPtr('s2_parent', undefined);
    expect(new DataView(v.memory.bytes.buffer).getBigUint64(at, true)).toBe(0n);
  });

  it('containerOf refuses an allocation smaller than the driver struct', () => {
    const v = new IommufdViommu(new StructMemory(IOMMUFD_VIOMMU.size));
    expect(() => containerOf(v, drvViommu, 'core')).toThrow(DriverStructError);
  });

  it('a core field read before the core set it is a clear error (the pre-6.17 crash)', () => {
    const v = new IommufdViommu(new StructMemory(IOMMUFD_VIOMMU.size));
    expect(() => v.ictx).toThrow(/not set yet/);
  });

  it('rejects duplicate field names', () => {
    expect(() => defineDriverStruct('dup', [du32('a'), du32('a')])).toThrow(/declared twice/);
  });
});

describe('driver helpers', () => {
  it('reach the core through viommu.ictx and keep the kernel argument checks', () => {
    const log: string[] = [];
    const v = coreViommu(log);
    expect(viommuReportEvent(v, 0xbeefbeef, new Uint8Array(0))).toBe(EINVAL);
    expect(viommuReportEvent(v, 0xbeefbeef, new Uint8Array(4))).toBe(0);
    expect(viommuAllocMmap(v, 0x1001n, 0x1000n)).toBe(EINVAL);
    expect(viommuAllocMmap(v, 0x1000n, 0x800n)).toBe(EINVAL);
    expect(viommuAllocMmap(v, 0x1000n, 0n)).toBe(EINVAL);
    expect(viommuAllocMmap(v, 0x1000n, 0x2000n)).toBe(0x1000n);
    expect(viommuGetVdevId(v, {} as never)).toBe(ENOENT);
    expect(log).toEqual([`event ${0xbeefbeef}`, 'mmap 4096 8192']);
  });

  it('hwQueueDepend: same queue or different vIOMMUs are EINVAL', () => {
    const log: string[] = [];
    const v1 = coreViommu(log);
    const v2 = coreViommu(log);
    const q = (v: IommufdViommu) => {
      const hq = new IommufdHwQueue(new StructMemory(IOMMUFD_HW_QUEUE.size));
      hq.initCore({ id: 9, viommu: v, access: { id: 10 }, baseAddr: 0n, length: 4096n, type: 1 });
      return hq;
    };
    const a = q(v1);
    const b = q(v1);
    const c = q(v2);
    expect(hwQueueDepend(a, a)).toBe(EINVAL);
    expect(hwQueueDepend(a, c)).toBe(EINVAL);
    expect(hwQueueDepend(b, a)).toBe(0);
    expect(log).toEqual(['depend']);
  });

  it('iommuShouldFail asks the injector the core registered, false without one', () => {
    const iommu: IommuDevice = { name: 'x', ops: {} as never };
    expect(iommuShouldFail(iommu, 'domain-alloc')).toBe(false);
    iommu.faultInjector = { shouldFail: (site) => site === 'domain-alloc' };
    expect(iommuShouldFail(iommu, 'domain-alloc')).toBe(true);
  });
});
