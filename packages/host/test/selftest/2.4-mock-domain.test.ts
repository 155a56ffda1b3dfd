// §2.4 Mapping checked against the mock IO page table (fixture iommufd_mock_domain).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  AP,
  BUFFER_SIZE,
  checkMockIova,
  MAP_PRIVATE,
  MAP_SHARED,
  MOCK_DOMAIN_VARIANTS,
  MOCK_PAGE,
  mockDomainFixture,
  PAGE,
  PROT_RW,
  teardown,
  U,
  type MockDomainFixture,
} from './helpers.js';

describe.each(MOCK_DOMAIN_VARIANTS)('fixture iommufd_mock_domain / $name', (v) => {
  let f: MockDomainFixture;
  beforeEach(async () => {
    f = await mockDomainFixture(v);
  });
  afterEach(() => teardown(f.t, f.buffer));

  it('basic', () => {
    const p = f.t.p;
    const size = f.mmapBufSize;
    if (v.file) {
      const r = f.t.mapFile(f.ioas, f.mfd, 0n, PAGE);
      expect(r.rc).toBe(0);
      checkMockIova(f, f.mfdBuffer, r.iova, PAGE);
      const tmp = p.memfdCreate('tmp', size);
      expect(p.mmap(size, PROT_RW, MAP_SHARED, tmp) > 0n).toBe(true);
      expect(f.t.mapFile(f.ioas, tmp, 0n, size + 1n).rc).toBe(-U.EINVAL);
      expect(p.ftruncate(tmp, 0)).toBe(0);
      expect(f.t.mapFile(f.ioas, tmp, 0n, size).rc).toBe(-U.EINVAL);
      expect(p.close(tmp)).toBe(0);
    } else {
      const r = f.t.map(f.ioas, f.buffer, PAGE);
      expect(r.rc).toBe(0);
      checkMockIova(f, f.buffer, r.iova, PAGE);
      const buf = p.mmap(size, PROT_RW, f.mmapFlags);
      expect(p.munmap(buf + size / 2n, size / 2n)).toBe(0);
      expect(f.t.map(f.ioas, buf, size).rc).toBe(-U.EFAULT);
      expect(p.munmap(buf, size / 2n)).toBe(0);
      expect(f.t.map(f.ioas, buf, size).rc).toBe(-U.EFAULT);
    }
  });

  it('ro_unshare', () => {
    // A private writable file mapping pinned read-only: the pin must already have broken
    // COW, so writing the page afterwards leaves the PFN the IOMMU maps unchanged.
    const p = f.t.p;
    const exe = p.memfdCreate('exe', PAGE);
    const buf = p.mmap(PAGE, PROT_RW, MAP_PRIVATE, exe);
    p.close(exe);
    const r = f.t.map(f.ioas, buf, PAGE, { flags: U.IOMMU_IOAS_MAP_READABLE });
    expect(r.rc).toBe(0);
    checkMockIova(f, buf, r.iova, PAGE);
    expect(p.poke(buf, new Uint8Array(Number(PAGE)).fill(1))).toBe(0);
    checkMockIova(f, buf, r.iova, PAGE);
    expect(p.munmap(buf, PAGE)).toBe(0);
  });

  const sweep = (withCopy: boolean) => {
    const p = f.t.p;
    const size = f.mmapBufSize;
    const step = v.hugepages ? size / 16n : MOCK_PAGE;
    let mfd = -1;
    let buf: bigint;
    if (v.file) {
      mfd = p.memfdCreate('sweep', size);
      buf = p.mmap(size, PROT_RW, MAP_SHARED, mfd);
    } else {
      buf = p.mmap(size, PROT_RW, f.mmapFlags);
    }
    expect(f.t.checkRefs(buf, size, 0)).toBe(0);
    for (let start = 0n; start < size; start += step) {
      for (let end = v.hugepages ? size : start + MOCK_PAGE; end < size; end += MOCK_PAGE) {
        const length = end - start;
        const m = v.file ? f.t.mapFile(f.ioas, mfd, start, length) : f.t.map(f.ioas, buf + start, length);
        expect(m.rc).toBe(0);
        let stdev = 0;
        const oldHwpt = f.hwptIds[1];
        if (withCopy) {
          const d = f.t.mockDomainOk(f.ioas);
          stdev = d.stdev;
          f.hwptIds[1] = d.hwpt;
        }
        checkMockIova(f, buf + start, m.iova, length);
        const first = (start / PAGE) * PAGE;
        expect(f.t.checkRefs(buf + first, (end / PAGE) * PAGE - first, 1)).toBe(0);
        if (withCopy) {
          expect(f.t.destroy(stdev)).toBe(0);
          f.hwptIds[1] = oldHwpt;
        }
        expect(f.t.unmap(f.ioas, m.iova, length).rc).toBe(0);
      }
    }
    expect(f.t.checkRefs(buf, size, 0)).toBe(0);
    expect(p.munmap(buf, size)).toBe(0);
    if (v.file) expect(p.close(mfd)).toBe(0);
  };

  it('all_aligns', () => sweep(false));
  it('all_aligns_copy', () => sweep(true));

  it('user_copy', () => {
    const buf = v.file ? f.mfdBuffer : f.buffer;
    const mapInto = (ioas: number) => (v.file ? f.t.mapFile(ioas, f.mfd, 0n, BUFFER_SIZE) : f.t.map(ioas, buf, BUFFER_SIZE));
    const ioas = f.t.ioasAlloc();
    let src = mapInto(ioas);
    expect(src.rc).toBe(0);
    const access = f.t.createAccess(ioas, U.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);
    expect(access.rc).toBe(0);
    expect(f.t.accessPages(access.fd, src.iova, BUFFER_SIZE, buf).rc).toBe(0);
    expect(f.t.copy(f.ioas, ioas, src.iova, BUFFER_SIZE, AP).rc).toBe(0);
    checkMockIova(f, buf, AP, BUFFER_SIZE);

    const newIoas = f.t.ioasAlloc();
    src = mapInto(newIoas);
    expect(src.rc).toBe(0);
    expect(f.t.accessReplaceIoas(access.fd, newIoas)).toBe(0);
    expect(f.t.unmap(f.ioas, AP, BUFFER_SIZE).rc).toBe(0);
    expect(f.t.destroy(ioas)).toBe(0);

    const pages = f.t.accessPages(access.fd, src.iova, BUFFER_SIZE, buf);
    expect(pages.rc).toBe(0);
    expect(f.t.copy(f.ioas, newIoas, src.iova, BUFFER_SIZE, AP).rc).toBe(0);
    checkMockIova(f, buf, AP, BUFFER_SIZE);
    expect(f.t.destroyAccessPages(access.fd, pages.id)).toBe(0);
    expect(f.t.p.close(access.fd)).toBe(0);
    expect(f.t.destroy(newIoas)).toBe(0);
  });

  it('replace', () => {
    const ioas = f.t.ioasAlloc();
    expect(f.t.replace(f.stdevIds[0], ioas).rc).toBe(0);
    // The auto domain died with its last device.
    if (v.mockDomains === 1) expect(f.t.replace(f.stdevIds[0], f.hwptIds[0]).rc).toBe(-U.ENOENT);
    expect(f.t.replace(f.stdevIds[0], ioas).rc).toBe(0);
    if (v.mockDomains >= 2) {
      expect(f.t.replace(f.stdevIds[0], f.hwptIds[1]).rc).toBe(0);
      expect(f.t.replace(f.stdevIds[0], f.hwptIds[1]).rc).toBe(0);
      expect(f.t.replace(f.stdevIds[0], f.hwptIds[0]).rc).toBe(0);
    }
    expect(f.t.replace(f.stdevIds[0], f.ioas).rc).toBe(0);
    expect(f.t.destroy(ioas)).toBe(0);
  });

  it('alloc_hwpt', () => {
    for (let i = 0; i < v.mockDomains; i++) {
      expect(f.t.hwptAlloc(f.idevIds[i], f.ioas, ~U.IOMMU_HWPT_ALLOC_NEST_PARENT >>> 0).rc).toBe(-U.EOPNOTSUPP);
      const h0 = f.t.hwptAlloc(f.idevIds[i], f.ioas, 0);
      const h1 = f.t.hwptAlloc(f.idevIds[i], f.ioas, U.IOMMU_HWPT_ALLOC_NEST_PARENT);
      expect([h0.rc, h1.rc]).toEqual([0, 0]);
      expect(f.t.replace(f.stdevIds[i], h0.id).rc).toBe(0);
      expect(f.t.destroy(h0.id)).toBe(-U.EBUSY);
      expect(f.t.replace(f.stdevIds[i], h1.id).rc).toBe(0);
      expect(f.t.destroy(h1.id)).toBe(-U.EBUSY);
      expect(f.t.replace(f.stdevIds[i], f.ioas).rc).toBe(0);
      expect(f.t.destroy(h1.id)).toBe(0);
      const d = f.t.mockDomainOk(h0.id);
      expect(d.hwpt).toBe(h0.id);
      expect(f.t.destroy(d.stdev)).toBe(0);
      expect(f.t.destroy(h0.id)).toBe(0);
    }
  });
});
