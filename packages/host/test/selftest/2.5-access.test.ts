// §2.5 In-kernel access / pinning (fixture iommufd_ioas).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  AP,
  BUFFER_SIZE,
  HUGEPAGE,
  IOAS_VARIANTS,
  ioasFixture,
  ioasTeardown,
  MAP_ANONYMOUS,
  MAP_HUGETLB,
  MAP_POPULATE,
  MAP_SHARED,
  MOCK_PAGE,
  PAGE,
  prng,
  PROT_RW,
  U,
  type IoasFixture,
} from './helpers.js';

describe.each(IOAS_VARIANTS)('fixture iommufd_ioas / $name', (v) => {
  let f: IoasFixture;
  beforeEach(async () => {
    f = await ioasFixture(v);
  });
  afterEach(() => ioasTeardown(f));

  it('access_domain_destory', () => {
    const size = 2n * HUGEPAGE;
    const buf = f.t.p.mmap(size, PROT_RW, MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE);
    expect(f.t.map(f.ioas, buf, size, { iova: f.baseIova }).rc).toBe(0);
    const access = f.t.createAccess(f.ioas, U.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);
    expect(access.rc).toBe(0);
    const pages = f.t.accessPages(access.fd, f.baseIova + PAGE, PAGE, buf + PAGE);
    expect(pages.rc).toBe(0);
    // Unpinning across a huge page while the access holds part of it.
    if (f.stdev) expect(f.t.destroy(f.stdev)).toBe(0);
    expect(f.t.destroyAccessPages(access.fd, pages.id)).toBe(0);
    expect(f.t.p.close(access.fd)).toBe(0);
    expect(f.t.p.munmap(buf, size)).toBe(0);
  });

  it('access_pin', () => {
    const access = f.t.createAccess(f.ioas, U.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);
    expect(access.rc).toBe(0);
    for (let npages = 1n; npages < BUFFER_SIZE / PAGE; npages++) {
      const len = npages * PAGE;
      expect(f.t.map(f.ioas, f.buffer, BUFFER_SIZE, { iova: AP }).rc).toBe(0);
      let a = f.t.accessPages(access.fd, AP, len, f.buffer);
      expect(a.rc).toBe(0);
      expect(f.t.destroyAccessPages(access.fd, a.id)).toBe(0);
      // Two users of the same pages
      a = f.t.accessPages(access.fd, AP, len, f.buffer);
      const b = f.t.accessPages(access.fd, AP, len, f.buffer);
      expect([a.rc, b.rc]).toEqual([0, 0]);
      expect(f.t.destroyAccessPages(access.fd, b.id)).toBe(0);
      expect(f.t.destroyAccessPages(access.fd, a.id)).toBe(0);
      // A new domain is filled while an access holds pins
      a = f.t.accessPages(access.fd, AP, len, f.buffer);
      expect(a.rc).toBe(0);
      const d = f.t.mockDomainOk(f.ioas);
      expect(f.t.checkMap(d.hwpt, AP, BUFFER_SIZE, f.buffer)).toBe(0);
      expect(f.t.destroy(d.stdev)).toBe(0);
      expect(f.t.destroyAccessPages(access.fd, a.id)).toBe(0);
      expect(f.t.unmap(f.ioas, AP, BUFFER_SIZE).rc).toBe(0);
    }
    expect(f.t.p.close(access.fd)).toBe(0);
  });

  it('access_pin_unmap', () => {
    const access = f.t.createAccess(f.ioas, U.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);
    expect(f.t.map(f.ioas, f.buffer, BUFFER_SIZE, { iova: AP }).rc).toBe(0);
    const a = f.t.accessPages(access.fd, AP, BUFFER_SIZE, f.buffer);
    expect(a.rc).toBe(0);
    // The unmap calls the access's unmap op, which drops the item.
    expect(f.t.unmap(f.ioas, AP, BUFFER_SIZE).rc).toBe(0);
    expect(f.t.destroyAccessPages(access.fd, a.id)).toBe(-U.ENOENT);
  });

  /** check_access_rw: byte-exact reads and writes through the access around a page edge. */
  const checkAccessRw = (accessFd: number, iova: bigint, defFlags: number) => {
    const p = f.t.p;
    const rand = prng(7);
    const fill = new Uint8Array(Number(BUFFER_SIZE));
    for (let i = 0; i < fill.length; i++) fill[i] = rand() & 0xff;
    p.poke(f.buffer, fill);
    const tmp = f.t.alloc(64n);
    for (let at = iova + PAGE - 50n; at < iova + PAGE + 50n; at++) {
      for (let length = 1n; length < 64n; length++) {
        expect(f.t.accessRw(accessFd, at, tmp, length, defFlags)).toBe(0);
        expect(p.peek(tmp, Number(length))).toEqual(p.peek(f.buffer + (at - iova), Number(length)));
        const data = new Uint8Array(64);
        for (let i = 0; i < 64; i++) data[i] = rand() & 0xff;
        p.poke(tmp, data);
        expect(f.t.accessRw(accessFd, at, tmp, length, defFlags | U.MOCK_ACCESS_RW_WRITE)).toBe(0);
        expect(p.peek(f.buffer + (at - iova), Number(length))).toEqual(data.subarray(0, Number(length)));
      }
    }
    const whole = f.t.alloc(BUFFER_SIZE);
    expect(f.t.accessRw(accessFd, iova, whole, BUFFER_SIZE, defFlags)).toBe(0);
    expect(p.peek(whole, Number(BUFFER_SIZE))).toEqual(p.peek(f.buffer, Number(BUFFER_SIZE)));
  };

  it('access_rw', () => {
    const access = f.t.createAccess(f.ioas, 0);
    expect(access.rc).toBe(0);
    const m = f.t.map(f.ioas, f.buffer, BUFFER_SIZE);
    expect(m.rc).toBe(0);
    checkAccessRw(access.fd, m.iova, 0);
    checkAccessRw(access.fd, m.iova, U.MOCK_ACCESS_RW_SLOW_PATH);
    expect(f.t.unmap(f.ioas, m.iova, BUFFER_SIZE).rc).toBe(0);
    expect(f.t.p.close(access.fd)).toBe(0);
  });

  /** A forked child maps `buffer` (shared with the parent) at AP through its copy of the fd. */
  const forkAndMap = () => {
    const child = f.t.p.fork();
    expect(f.t.as(child).map(f.ioas, f.buffer, BUFFER_SIZE, { iova: AP }).rc).toBe(0);
    return child;
  };

  it('fork_gone', () => {
    const access = f.t.createAccess(f.ioas, 0);
    expect(access.rc).toBe(0);
    // A mapping made by another mm: the child maps through its copy of the fd, then exits.
    forkAndMap().exit();
    if (f.stdev) {
      // Everything was pinned in the child for the existing domain: the new one is filled
      // from those pages, and the access reaches them although their process is gone.
      expect(f.t.mockDomain(f.ioas).rc).toBe(0);
      checkAccessRw(access.fd, AP, 0);
    } else {
      // Nothing was pinned, and the pages cannot be pinned from a process that has exited.
      expect(f.t.mockDomain(f.ioas).rc).toBe(-U.EFAULT);
    }
    expect(f.t.p.close(access.fd)).toBe(0);
  });

  it('fork_present', () => {
    const access = f.t.createAccess(f.ioas, 0);
    expect(access.rc).toBe(0);
    const child = forkAndMap();
    // The child is still there: the new domain pins from its memory.
    expect(f.t.mockDomain(f.ioas).rc).toBe(0);
    checkAccessRw(access.fd, AP, 0);
    child.exit();
    expect(f.t.p.close(access.fd)).toBe(0);
  });

  it('access_rw_unaligned', () => {
    const access = f.t.createAccess(f.ioas, 0);
    const iova = f.baseIova + MOCK_PAGE;
    expect(f.t.map(f.ioas, f.buffer, BUFFER_SIZE, { iova }).rc).toBe(0);
    checkAccessRw(access.fd, iova, 0);
    expect(f.t.unmap(f.ioas, iova, BUFFER_SIZE).rc).toBe(0);
    expect(f.t.p.close(access.fd)).toBe(0);
  });
});
