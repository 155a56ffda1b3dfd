// §3 fail_nth: for each call chain, run once clean (must pass), then fail the n-th
// allocation point for n = 1, 2, … until a run reaches no n-th point. After every injected
// run, closing /dev/iommu (and the access fd) must leave no object, pin, ID or domain.
import { FailNth } from '@iommufd/core';
import { describe, expect, it } from 'vitest';
import { createHost } from '../../src/index.js';
import { AP, Iommufd, makeGlobals, PAGE, U, type Globals } from './helpers.js';

/** FIXTURE(basic_fail_nth) plus the process globals. */
interface NthState extends Globals {
  t: Iommufd | undefined;
  accessFd: number;
  /** ⟂ in the catalogue: from here on the n-th allocation fails. */
  enable(): void;
  /** open("/dev/iommu"), recorded in the fixture as the C body does. */
  open(): Iommufd | undefined;
}

type Body = (s: NthState) => boolean;

/** Sanity limit of the kernel harness. */
const MAX_ITERATIONS = 400;
/** iommufd_fail_nth.c's own BUFFER_SIZE (2 MiB), not iommufd.c's 16 pages. */
const NTH_BUFFER_SIZE = 2n << 20n;

async function runNth(body: Body, n: number): Promise<{ ok: boolean; fired: boolean; site: string | undefined }> {
  const host = await createHost({ platform: 'mock', devices: 0 });
  const scratch = new Iommufd(host, -1);
  const g = makeGlobals(scratch, NTH_BUFFER_SIZE);
  const injector = new FailNth(n);
  const s: NthState = {
    ...g,
    t: undefined,
    accessFd: 0,
    enable: () => {
      if (n > 0) host.setFaultInjector(injector);
    },
    open: () => {
      const fd = host.process.open('/dev/iommu');
      if (fd < 0) return undefined;
      s.t = new Iommufd(host, fd);
      return s.t;
    },
  };
  const ok = body(s);
  host.setFaultInjector(undefined);
    // FIXTURE_TEARDOWN: the access fd holds the iommufd open until it closes.
  if (s.accessFd) expect(host.process.close(s.accessFd)).toBe(0);
  if (s.t) expect(s.t.close()).toBe(0);
  for (const { fd, kind } of host.process.fds()) if (kind !== '[memfd]') host.process.close(fd);
  expect(host.pinnedPages).toBe(0);
  expect(host.contexts().every((c) => c.released && c.objects.length === 0)).toBe(true);
  const again = new Iommufd(host, host.process.open('/dev/iommu'));
  expect(again.checkRefs(g.buffer, NTH_BUFFER_SIZE, 0)).toBe(0);
  expect(again.close()).toBe(0);
  return { ok, fired: injector.injected, site: injector.failedSite };
}

function failNth(name: string, body: Body) {
  it(name, async () => {
    expect((await runNth(body, 0)).ok).toBe(true);
    const sites = new Set<string>();
    let n = 1;
    for (; n < MAX_ITERATIONS; n++) {
      const r = await runNth(body, n);
      if (!r.fired) {
        // The run got past every allocation point: it must have succeeded.
        expect(r.ok).toBe(true);
        break;
      }
      if (r.site) sites.add(r.site);
    }
    expect(n).toBeLessThan(MAX_ITERATIONS);
    // At least one allocation point was swept.
    expect(n).toBeGreaterThan(1);
    expect(sites.size).toBeGreaterThan(0);
  });
}

const rw = U.IOMMU_IOAS_MAP_WRITEABLE | U.IOMMU_IOAS_MAP_READABLE;

/** The common opening of the bodies: open, IOAS_ALLOC, and (when given) the temp memory limit. */
function openIoas(s: NthState, limit?: number): { t: Iommufd; id: number } | undefined {
  const t = s.open();
  if (!t) return undefined;
  const ioas = t.call(U.IOMMU_IOAS_ALLOC, U.iommu_ioas_alloc, {});
  if (ioas.rc) return undefined;
  if (limit !== undefined && t.setTempMemoryLimit(limit)) return undefined;
  return { t, id: ioas.out.out_ioas_id };
}

describe('fixture basic_fail_nth', () => {
  // Cover ioas.c
  failNth('basic', (s) => {
    s.enable();
    const o = openIoas(s);
    if (!o) return false;
    const { t, id } = o;
    if (t.iovaRanges(id, 10).rc) return false;
    if (t.allowIovas(id, [[16n * 1024n, NTH_BUFFER_SIZE + 16n * 1024n * 600n - 1n]])) return false;
    const m = t.map(id, s.buffer, NTH_BUFFER_SIZE, { flags: rw });
    if (m.rc) return false;
    if (t.copy(id, id, m.iova, 160n, undefined, rw).rc) return false;
    if (t.unmap(id, m.iova, NTH_BUFFER_SIZE).rc) return false;
    // The failure path of unmapping nothing; its result does not matter.
    t.unmap(id, m.iova, NTH_BUFFER_SIZE);
    return true;
  });

  const mapDomain = (file: boolean) => (s: NthState) => {
    const o = openIoas(s, 32);
    if (!o) return false;
    const { t, id } = o;
    s.enable();
    let d = t.mockDomain(id);
    if (d.rc) return false;
    const m = file ? t.mapFile(id, s.mfd, 0n, 262144n) : t.map(id, s.buffer, 262144n);
    if (m.rc) return false;
    if (t.destroy(d.stdev)) return false;
    d = t.mockDomain(id);
    return d.rc === 0;
  };
  // iopt_area_fill_domains() and iopt_area_fill_domain()
  failNth('map_domain', mapDomain(false));
  failNth('map_file_domain', mapDomain(true));

  failNth('map_two_domains', (s) => {
    const o = openIoas(s, 32);
    if (!o) return false;
    const { t, id } = o;
    const d1 = t.mockDomain(id);
    if (d1.rc) return false;
    s.enable();
    const d2 = t.mockDomain(id);
    if (d2.rc) return false;
    if (t.map(id, s.buffer, 262144n).rc) return false;
    if (t.destroy(d1.stdev) || t.destroy(d2.stdev)) return false;
    if (t.mockDomain(id).rc) return false;
    return t.mockDomain(id).rc === 0;
  });

  failNth('access_rw', (s) => {
    const o = openIoas(s, 32);
    if (!o) return false;
    const { t, id } = o;
    const m = t.map(id, s.buffer, 262144n);
    if (m.rc) return false;
    s.enable();
    const a = t.createAccess(id, 0);
    if (a.rc) return false;
    s.accessFd = a.fd;
    const tmp = t.alloc(64n);
    for (const flags of [0, U.MOCK_ACCESS_RW_WRITE, U.MOCK_ACCESS_RW_SLOW_PATH, U.MOCK_ACCESS_RW_SLOW_PATH | U.MOCK_ACCESS_RW_WRITE]) {
      if (t.accessRw(a.fd, m.iova, tmp, 64n, flags)) return false;
    }
    const big = t.alloc(4096n * 8n);
    if (t.accessRw(a.fd, m.iova, big, 4096n * 8n, U.MOCK_ACCESS_RW_SLOW_PATH)) return false;
    if (t.p.close(a.fd)) return false;
    s.accessFd = 0;
    return true;
  });

  const accessPin = (withDomain: boolean) => (s: NthState) => {
    const o = openIoas(s, 32);
    if (!o) return false;
    const { t, id } = o;
    let stdev = 0;
    if (withDomain) {
      const d = t.mockDomain(id);
      if (d.rc) return false;
      stdev = d.stdev;
    }
    const m = t.map(id, s.buffer, NTH_BUFFER_SIZE);
    if (m.rc) return false;
    const a = t.createAccess(id, U.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);
    if (a.rc) return false;
    s.accessFd = a.fd;
    s.enable();
    const pages = t.accessPages(a.fd, m.iova, NTH_BUFFER_SIZE, s.buffer);
    if (pages.rc) return false;
    if (t.destroyAccessPages(a.fd, pages.id)) return false;
    if (t.p.close(a.fd)) return false;
    s.accessFd = 0;
    return !withDomain || t.destroy(stdev) === 0;
  };
  // pages.c access functions, iopt_pages_fill_xarray()
  failNth('access_pin', accessPin(false));
  failNth('access_pin_domain', accessPin(true));
});
