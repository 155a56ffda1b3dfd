// §2.2 VFIO compatibility: the type1 container ioctls /dev/iommu answers
// (fixtures iommufd and vfio_compat_mock_domain).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AP, BUFFER_SIZE, HUGEPAGE, Iommufd, makeGlobals, MAP_ANONYMOUS, MAP_HUGETLB, MAP_POPULATE, MAP_SHARED, openIommufd, PAGE, prng, PROT_RW, teardown, U, type Globals } from './helpers.js';

const RW = U.VFIO_DMA_MAP_FLAG_READ | U.VFIO_DMA_MAP_FLAG_WRITE;

type VfioLayout = typeof U.vfio_iommu_type1_dma_map | typeof U.vfio_iommu_type1_dma_unmap | typeof U.vfio_iommu_type1_info;

function vfioCall<L extends VfioLayout>(t: Iommufd, request: number, layout: L, value: Record<string, number | bigint>) {
  const bytes = layout.encode({ argsz: layout.size, ...value } as never);
  const rc = t.p.ioctl(t.fd, request, bytes);
  return { rc, out: layout.decode(bytes) as ReturnType<L['decode']> };
}

const shuffle = (a: bigint[], rand: () => number) => {
  for (let i = 0; i < a.length; i++) {
    const other = rand() % (a.length - i);
    [a[i], a[other]] = [a[other], a[i]];
  }
};

describe('fixture iommufd', () => {
  let t: Iommufd;
  let g: Globals;
  beforeEach(async () => {
    t = await openIommufd();
    g = makeGlobals(t);
  });
  afterEach(() => teardown(t, g.buffer));

  it('simple_ioctls', () => {
    expect(t.p.ioctl(t.fd, U.VFIO_GET_API_VERSION, 0n)).toBe(U.VFIO_API_VERSION);
    expect(t.p.ioctl(t.fd, U.VFIO_CHECK_EXTENSION, BigInt(U.VFIO_TYPE1v2_IOMMU))).toBe(1);
  });

  it('unmap_cmd', () => {
    const base = { iova: AP, size: PAGE };
    expect(vfioCall(t, U.VFIO_IOMMU_UNMAP_DMA, U.vfio_iommu_type1_dma_unmap, { ...base, argsz: 1 }).rc).toBe(-U.EINVAL);
    expect(vfioCall(t, U.VFIO_IOMMU_UNMAP_DMA, U.vfio_iommu_type1_dma_unmap, { ...base, flags: 1 << 31 }).rc).toBe(-U.EINVAL);
    expect(vfioCall(t, U.VFIO_IOMMU_UNMAP_DMA, U.vfio_iommu_type1_dma_unmap, base).rc).toBe(-U.ENODEV);
  });

  it('map_cmd', () => {
    const base = { iova: AP, size: PAGE, vaddr: g.buffer };
    expect(vfioCall(t, U.VFIO_IOMMU_MAP_DMA, U.vfio_iommu_type1_dma_map, { ...base, argsz: 1 }).rc).toBe(-U.EINVAL);
    expect(vfioCall(t, U.VFIO_IOMMU_MAP_DMA, U.vfio_iommu_type1_dma_map, { ...base, flags: 1 << 31 }).rc).toBe(-U.EINVAL);
    expect(vfioCall(t, U.VFIO_IOMMU_MAP_DMA, U.vfio_iommu_type1_dma_map, { ...base, flags: RW }).rc).toBe(-U.ENODEV);
  });

  it('info_cmd', () => {
    expect(vfioCall(t, U.VFIO_IOMMU_GET_INFO, U.vfio_iommu_type1_info, { argsz: 1 }).rc).toBe(-U.EINVAL);
    expect(vfioCall(t, U.VFIO_IOMMU_GET_INFO, U.vfio_iommu_type1_info, {}).rc).toBe(-U.ENODEV);
  });

  it('set_iommu_cmd', () => {
    expect(t.p.ioctl(t.fd, U.VFIO_SET_IOMMU, BigInt(U.VFIO_TYPE1v2_IOMMU))).toBe(-U.ENODEV);
    expect(t.p.ioctl(t.fd, U.VFIO_SET_IOMMU, BigInt(U.VFIO_TYPE1_IOMMU))).toBe(-U.ENODEV);
  });

  it('vfio_ioas', () => {
    const op = (o: number, ioas_id = 0) => t.call(U.IOMMU_VFIO_IOAS, U.iommu_vfio_ioas, { op: o, ioas_id });
    expect(op(U.IOMMU_VFIO_IOAS_GET).rc).toBe(-U.ENODEV);
    expect(op(U.IOMMU_VFIO_IOAS_SET).rc).toBe(-U.ENOENT);
    const ioas = t.ioasAlloc();
    expect(op(U.IOMMU_VFIO_IOAS_SET, ioas).rc).toBe(0);
    const got = op(U.IOMMU_VFIO_IOAS_GET);
    expect([got.rc, got.out.ioas_id]).toEqual([0, ioas]);
    expect(op(U.IOMMU_VFIO_IOAS_CLEAR).rc).toBe(0);
    expect(op(U.IOMMU_VFIO_IOAS_GET).rc).toBe(-U.ENODEV);
  });
});

describe.each([
  { name: 'Ver1v2', version: U.VFIO_TYPE1v2_IOMMU },
  { name: 'Ver1v0', version: U.VFIO_TYPE1_IOMMU },
])('fixture vfio_compat_mock_domain / $name', (v) => {
  let t: Iommufd;
  let g: Globals;
  let ioas: number;
  beforeEach(async () => {
    t = await openIommufd();
    g = makeGlobals(t);
    ioas = t.ioasAlloc();
    t.mockDomainOk(ioas);
    expect(t.call(U.IOMMU_VFIO_IOAS, U.iommu_vfio_ioas, { op: U.IOMMU_VFIO_IOAS_SET, ioas_id: ioas }).rc).toBe(0);
    expect(t.p.ioctl(t.fd, U.VFIO_SET_IOMMU, BigInt(v.version))).toBe(0);
  });
  afterEach(() => teardown(t, g.buffer));

  it('simple_close', () => {
    expect(t.host.objects(t.fd).filter((o) => o.type === 'IOAS').map((o) => o.id)).toEqual([ioas]);
  });

  it('option_huge_pages', () => {
    expect(t.option(U.IOMMU_OPTION_HUGE_PAGES, U.IOMMU_OPTION_OP_GET, ioas, 3n)).toEqual({ rc: 0, val64: v.version === U.VFIO_TYPE1_IOMMU ? 0n : 1n });
  });

  it('map', () => {
    const map = (vaddr: bigint, iova: bigint, size: bigint) => vfioCall(t, U.VFIO_IOMMU_MAP_DMA, U.vfio_iommu_type1_dma_map, { flags: RW, vaddr, iova, size }).rc;
    const unmap = (iova: bigint, size: bigint, flags = 0) => vfioCall(t, U.VFIO_IOMMU_UNMAP_DMA, U.vfio_iommu_type1_dma_unmap, { iova, size, flags });
    expect(map(g.buffer, AP, BUFFER_SIZE)).toBe(0);
    let u = unmap(AP, BUFFER_SIZE);
    expect([u.rc, u.out.size]).toEqual([0, BUFFER_SIZE]);
    expect(map(g.buffer, AP, BUFFER_SIZE)).toBe(0);
    expect(unmap(AP, BUFFER_SIZE, U.VFIO_DMA_UNMAP_FLAG_ALL).rc).toBe(-U.EINVAL);
    u = unmap(0n, 0n, U.VFIO_DMA_UNMAP_FLAG_ALL);
    expect([u.rc, u.out.size]).toEqual([0, BUFFER_SIZE]);
    const iovas: bigint[] = [];
    for (let i = 0n; i < BUFFER_SIZE / PAGE; i++) {
      iovas.push(AP + i * PAGE);
      expect(map(g.buffer + i * PAGE, AP + i * PAGE, PAGE)).toBe(0);
    }
    shuffle(iovas, prng(3));
    for (const iova of iovas) expect(unmap(iova, PAGE).rc).toBe(0);
  });

  it('huge_map', () => {
    const size = HUGEPAGE * 2n;
    const buf = t.p.mmap(size, PROT_RW, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE);
    expect(vfioCall(t, U.VFIO_IOMMU_MAP_DMA, U.vfio_iommu_type1_dma_map, { flags: RW, vaddr: buf, iova: AP, size }).rc).toBe(0);
    const piece = size / 16n;
    const iovas = Array.from({ length: 16 }, (_, i) => AP + BigInt(i) * piece);
    shuffle(iovas, prng(5));
    // type1 may cut a mapping up, type1v2 never does.
    for (const iova of iovas) {
      const rc = vfioCall(t, U.VFIO_IOMMU_UNMAP_DMA, U.vfio_iommu_type1_dma_unmap, { iova, size: piece }).rc;
      expect(rc).toBe(v.version === U.VFIO_TYPE1_IOMMU ? 0 : -U.ENOENT);
    }
  });
});
