// Error order of the VFIO type1 container ioctls /dev/iommu answers (vfio-compat.ts,
// vfio_compat.c): argsz, flags, the compat IOAS (ENODEV), then the IOAS rules.
import { describe, expect, it } from 'vitest';
import {
  EEXIST,
  EFAULT,
  EINVAL,
  ENODEV,
  ENOENT,
  EOVERFLOW,
  IOMMU_VFIO_IOAS,
  IOMMU_VFIO_IOAS_SET,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SET_IOMMU,
  VFIO_SPAPR_TCE_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  iommu_vfio_ioas,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
} from '@iommufd/uapi';
import { BASE, orderEnv, U64_MAX } from './env.js';

type Env = ReturnType<typeof orderEnv>;
type Layout = typeof vfio_iommu_type1_dma_map | typeof vfio_iommu_type1_dma_unmap | typeof vfio_iommu_type1_info;

/** The argsz-struct twin of expectErrorOrder (these structs have no `size` header). */
function order<L extends Layout>(e: Env, layout: L, request: number, start: Record<string, number | bigint>, steps: [string, number, Record<string, number | bigint>, (() => void)?][]) {
  const arg = e.proc.mmap(4096n);
  let value = start;
  for (const [check, errno, fix, before] of steps) {
    before?.();
    const objects = e.ctx.objects().map((o) => ({ id: o.id, users: o.users }));
    e.proc.copyToUser(arg, layout.encode(value as never));
    const rc = e.ctx.ioctl!(request, arg);
    expect({ check, rc }).toEqual({ check, rc: errno ? -errno : 0 });
    expect({ check, objects: e.ctx.objects().map((o) => ({ id: o.id, users: o.users })) }).toEqual({ check, objects });
    value = { ...value, ...fix };
  }
  return { value, arg };
}

function setCompat(e: Env): void {
  expect(e.ioctl(iommu_vfio_ioas, IOMMU_VFIO_IOAS, { op: IOMMU_VFIO_IOAS_SET, ioas_id: e.ioas }).rc).toBe(0);
}

describe('error order: VFIO type1 compat', () => {
  it('VFIO_IOMMU_MAP_DMA: copy, argsz, flags, compat IOAS, then the IOAS map rules', () => {
    const e = orderEnv();
    e.map(0x1000n, BASE);
    const va = e.proc.mmap(0x2000n);
    const { value, arg } = order(e, vfio_iommu_type1_dma_map, VFIO_IOMMU_MAP_DMA, { argsz: 8, flags: VFIO_DMA_MAP_FLAG_VADDR, vaddr: U64_MAX - 0xfffn, iova: BASE, size: 0x2000n }, [
      ['argsz < minsz', EINVAL, { argsz: vfio_iommu_type1_dma_map.size }],
      ['unsupported flag', EINVAL, { flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE }],
      ['no compat IOAS', ENODEV, {}],
      ['vaddr + size overflows', EOVERFLOW, { vaddr: va }, () => setCompat(e)],
      ['overlaps a mapping', EEXIST, { iova: BASE + 0x10000n }],
    ]);
    e.proc.copyToUser(arg, vfio_iommu_type1_dma_map.encode(value as never));
    expect(e.ctx.ioctl!(VFIO_IOMMU_MAP_DMA, arg)).toBe(0);
    expect(e.ctx.ioctl!(VFIO_IOMMU_MAP_DMA, 0x10n)).toBe(-EFAULT);
  });

  it('VFIO_IOMMU_UNMAP_DMA: argsz, flags, compat IOAS, UNMAP_ALL rules, length, coverage', () => {
    const e = orderEnv();
    e.map(0x2000n, BASE);
    const { value, arg } = order(e, vfio_iommu_type1_dma_unmap, VFIO_IOMMU_UNMAP_DMA, { argsz: 8, flags: VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, iova: BASE, size: 0x1000n }, [
      ['argsz < minsz', EINVAL, { argsz: vfio_iommu_type1_dma_unmap.size }],
      ['unsupported flag', EINVAL, { flags: VFIO_DMA_UNMAP_FLAG_ALL }],
      ['no compat IOAS', ENODEV, {}],
      ['UNMAP_ALL with iova/size', EINVAL, { flags: 0, size: 0n }, () => setCompat(e)],
      ['size 0', EINVAL, { size: 0x1000n }],
      ['part of a mapping (TYPE1v2 never splits)', ENOENT, { size: 0x2000n }],
    ]);
    e.proc.copyToUser(arg, vfio_iommu_type1_dma_unmap.encode(value as never));
    expect(e.ctx.ioctl!(VFIO_IOMMU_UNMAP_DMA, arg)).toBe(0);
  });

  it('VFIO_IOMMU_GET_INFO and VFIO_SET_IOMMU: argsz / type before ENODEV', () => {
    const e = orderEnv();
    order(e, vfio_iommu_type1_info, VFIO_IOMMU_GET_INFO, { argsz: 8 }, [
      ['argsz < minsz', EINVAL, { argsz: vfio_iommu_type1_info.size }],
      ['no compat IOAS', ENODEV, {}],
    ]);
    expect(e.ctx.ioctl!(VFIO_SET_IOMMU, BigInt(VFIO_SPAPR_TCE_IOMMU))).toBe(-EINVAL);
    expect(e.ctx.ioctl!(VFIO_SET_IOMMU, BigInt(VFIO_TYPE1v2_IOMMU))).toBe(-ENODEV);
    setCompat(e);
    expect(e.ctx.ioctl!(VFIO_SET_IOMMU, BigInt(VFIO_TYPE1v2_IOMMU))).toBe(0);
  });
});
