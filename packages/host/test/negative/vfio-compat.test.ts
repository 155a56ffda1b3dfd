// §2.1/§3.7 the VFIO type1 container ioctls /dev/iommu answers (vfio_compat.c): argsz and
// flag checks, ENODEV without a compat IOAS (IOMMU_VFIO_IOAS), then the IOAS rules; UNMAP_DMA
// copies `size` (= bytes unmapped) back even when it fails after the compat IOAS lookup.
import { PAGE, table, U, U64_MAX, UNMAPPED, withU64, type Env, type Row } from './harness.js';

type X = { ioas: number; va: bigint };
/** A compat IOAS (IOMMU_VFIO_IOAS SET) with two pages mapped at the preset's base. */
const compat = (e: Env): X => {
  const ioas = e.ioas();
  e.ok(U.IOMMU_VFIO_IOAS, U.iommu_vfio_ioas, { op: U.IOMMU_VFIO_IOAS_SET, ioas_id: ioas });
  e.map(ioas, 2n * PAGE, e.prof.base);
  return { ioas, va: e.alloc(2n * PAGE) };
};
const int = (n: number) => ({ va: BigInt(n) });
const RW = U.VFIO_DMA_MAP_FLAG_READ | U.VFIO_DMA_MAP_FLAG_WRITE;

table('VFIO type1 compat: CHECK_EXTENSION / SET_IOMMU / unknown', U.VFIO_SET_IOMMU, [
  { name: 'vfio_compat: CHECK_EXTENSION VFIO_DMA_CC_IOMMU without a compat IOAS → ENODEV', request: U.VFIO_CHECK_EXTENSION, arg: () => int(U.VFIO_DMA_CC_IOMMU), errno: U.ENODEV },
  { name: 'vfio_compat: SET_IOMMU of an unsupported type (SPAPR) → EINVAL (wins over ENODEV)', arg: () => int(U.VFIO_SPAPR_TCE_IOMMU), errno: U.EINVAL },
  { name: 'vfio_compat: SET_IOMMU NOIOMMU outside no-iommu mode → EINVAL', arg: () => int(U.VFIO_NOIOMMU_IOMMU), errno: U.EINVAL },
  { name: 'vfio_compat: SET_IOMMU TYPE1v2 without a compat IOAS → ENODEV', arg: () => int(U.VFIO_TYPE1v2_IOMMU), errno: U.ENODEV },
  {
    name: 'vfio_compat: SET_IOMMU TYPE1 (disable large pages) with a domain and a mapping → EINVAL',
    setup: (e) => {
      const s = compat(e);
      e.attach(0, s.ioas);
      return s;
    },
    arg: () => int(U.VFIO_TYPE1_IOMMU),
    errno: U.EINVAL,
  },
  { name: 'vfio_compat: VFIO_IOMMU_DIRTY_PAGES is not supported → ENOTTY', request: U.VFIO_IOMMU_DIRTY_PAGES, arg: () => int(0), errno: U.ENOTTY },
  { name: 'vfio_compat: VFIO_IOMMU_ENABLE (SPAPR only) → ENOTTY', request: U.VFIO_IOMMU_ENABLE, arg: () => int(0), errno: U.ENOTTY },
] satisfies Row<Partial<X>>[]);

const MAP = U.vfio_iommu_type1_dma_map;
const map = (value: Record<string, number | bigint>) => ({ layout: MAP, value: { argsz: MAP.size, flags: RW, size: PAGE, ...value } });

table('VFIO_IOMMU_MAP_DMA', U.VFIO_IOMMU_MAP_DMA, [
  { name: 'vfio_compat: the struct unreadable → EFAULT', arg: () => ({ va: UNMAPPED }), errno: U.EFAULT },
  { name: 'vfio_compat: argsz < minsz → EINVAL', arg: () => map({ argsz: MAP.size - 1 }), errno: U.EINVAL },
  { name: 'vfio_compat: an unsupported flag (VADDR) → EINVAL (wins over ENODEV)', arg: () => map({ flags: U.VFIO_DMA_MAP_FLAG_VADDR }), errno: U.EINVAL },
  { name: 'vfio_compat: no compat IOAS → ENODEV', arg: (e) => map({ vaddr: e.alloc(PAGE), iova: e.prof.base }), errno: U.ENODEV },
  { name: 'vfio_compat: size 0 → EINVAL', setup: compat, arg: (e, s) => map({ vaddr: s.va!, iova: e.prof.base + 4n * PAGE, size: 0n }), errno: U.EINVAL },
  { name: 'vfio_compat: vaddr + size overflows → EOVERFLOW', setup: compat, arg: (e) => map({ vaddr: U64_MAX - PAGE + 1n, size: 2n * PAGE, iova: e.prof.base + 4n * PAGE }), errno: U.EOVERFLOW },
  { name: 'vfio_compat: iova overlaps a mapping → EEXIST', setup: compat, arg: (e, s) => map({ vaddr: s.va!, iova: e.prof.base + PAGE }), errno: U.EEXIST },
  {
    name: 'vfio_compat: an unaligned iova with a domain attached → EINVAL',
    setup: (e) => {
      const s = compat(e);
      e.attach(0, s.ioas);
      return s;
    },
    arg: (e, s) => map({ vaddr: s.va!, iova: e.prof.base + 4n * PAGE + 1n }),
    errno: U.EINVAL,
  },
] satisfies Row<Partial<X>>[]);

const UNMAP = U.vfio_iommu_type1_dma_unmap;
const unmap = (value: Record<string, number | bigint>) => ({ layout: UNMAP, value: { argsz: UNMAP.size, ...value } });
/** `size` copied back as the bytes unmapped (0). */
const sizeZero = (sent: Uint8Array) => withU64(sent, UNMAP.offsetOf('size'), 0n);

table('VFIO_IOMMU_UNMAP_DMA', U.VFIO_IOMMU_UNMAP_DMA, [
  { name: 'vfio_compat: the struct unreadable → EFAULT', arg: () => ({ va: UNMAPPED }), errno: U.EFAULT },
  { name: 'vfio_compat: argsz < minsz → EINVAL', arg: () => unmap({ argsz: UNMAP.size - 1, size: PAGE }), errno: U.EINVAL },
  { name: 'vfio_compat: GET_DIRTY_BITMAP (obsolete) → EINVAL (wins over ENODEV)', arg: () => unmap({ flags: U.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, size: PAGE }), errno: U.EINVAL },
  { name: 'vfio_compat: no compat IOAS → ENODEV', arg: () => unmap({ size: PAGE }), errno: U.ENODEV },
  { name: 'vfio_compat: UNMAP_ALL with iova≠0 → EINVAL, nothing copied back', setup: compat, arg: () => unmap({ flags: U.VFIO_DMA_UNMAP_FLAG_ALL, iova: PAGE }), errno: U.EINVAL },
  { name: 'vfio_compat: UNMAP_ALL with size≠0 → EINVAL, nothing copied back', setup: compat, arg: () => unmap({ flags: U.VFIO_DMA_UNMAP_FLAG_ALL, size: PAGE }), errno: U.EINVAL },
  { name: 'vfio_compat: size 0 → EINVAL, size copied back as 0', setup: compat, arg: (e) => unmap({ iova: e.prof.base, size: 0n }), errno: U.EINVAL, copyBack: sizeZero },
  { name: 'vfio_compat: iova + size − 1 overflows → EOVERFLOW, size copied back as 0', setup: compat, arg: () => unmap({ iova: U64_MAX - PAGE, size: 4n * PAGE }), errno: U.EOVERFLOW, copyBack: sizeZero },
  { name: 'vfio_compat (TYPE1v2): part of a mapping → ENOENT, size copied back as 0', setup: compat, arg: (e) => unmap({ iova: e.prof.base, size: PAGE }), errno: U.ENOENT, copyBack: sizeZero },
  { name: 'vfio_compat: nothing mapped there → ENOENT, size copied back as 0', setup: compat, arg: (e) => unmap({ iova: e.prof.base + 8n * PAGE, size: PAGE }), errno: U.ENOENT, copyBack: sizeZero },
] satisfies Row<Partial<X>>[]);

const INFO = U.vfio_iommu_type1_info;

table('VFIO_IOMMU_GET_INFO', U.VFIO_IOMMU_GET_INFO, [
  { name: 'vfio_compat: the struct unreadable → EFAULT', arg: () => ({ va: UNMAPPED }), errno: U.EFAULT },
  { name: 'vfio_compat: argsz < minsz → EINVAL', arg: () => ({ layout: INFO, value: { argsz: 8 } }), errno: U.EINVAL },
  { name: 'vfio_compat: no compat IOAS → ENODEV', arg: () => ({ layout: INFO, value: { argsz: INFO.size } }), errno: U.ENODEV },
] satisfies Row<Partial<X>>[]);
