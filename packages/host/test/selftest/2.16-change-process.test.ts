// §2.16 change_process (fixture change_process, three accounting variants): CHANGE_PROCESS
// refuses non-file mappings, accepts file mappings, and moves the pinned memory from the
// parent's /proc status (VmPin, and VmLck with MM accounting) to the forked child's.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Iommufd, makeGlobals, openIommufd, PAGE, teardown, U, type Globals } from './helpers.js';

describe.each([
  { name: 'account_none', mode: undefined, mm: false },
  { name: 'account_user', mode: 0n, mm: false },
  { name: 'account_mm', mode: 1n, mm: true },
])('fixture change_process / $name', (v) => {
  let t: Iommufd;
  let g: Globals;
  let ioas: number;
  beforeEach(async () => {
    t = await openIommufd();
    g = makeGlobals(t);
    t.p.credentials.capIpcLock = false;
    if (v.mode !== undefined) expect(t.option(U.IOMMU_OPTION_RLIMIT_MODE, U.IOMMU_OPTION_OP_SET, 0, v.mode).rc).toBe(0);
    ioas = t.ioasAlloc();
    t.mockDomainOk(ioas);
  });
  afterEach(() => {
    t.p.credentials.capIpcLock = true;
    teardown(t, g.buffer);
  });

  it('basic', () => {
    const change = () => t.call(U.IOMMU_IOAS_CHANGE_PROCESS, U.iommu_ioas_change_process, {}).rc;
    const m = t.map(ioas, g.buffer, PAGE);
    expect(m.rc).toBe(0);
    expect(change()).toBe(-U.EINVAL);
    expect(t.unmap(ioas, m.iova, PAGE).rc).toBe(0);
    const mf = t.mapFile(ioas, g.mfd, 0n, PAGE);
    expect(mf.rc).toBe(0);
    expect(change()).toBe(0);

    const parent = t.p;
    const child = parent.fork();
    const nlock = Number(PAGE / 1024n);
    const figures = (p: typeof parent) => [p.status().vmPinKiB, p.status().vmLckKiB];
    // The parent accounts for the pinned page before; the child has nothing.
    expect(figures(parent)).toEqual([nlock, v.mm ? nlock : 0]);
    expect(figures(child)).toEqual([0, 0]);
    expect(t.as(child).call(U.IOMMU_IOAS_CHANGE_PROCESS, U.iommu_ioas_change_process, {}).rc).toBe(0);
    // The child accounts for it after.
    expect(figures(parent)).toEqual([0, 0]);
    expect(figures(child)).toEqual([nlock, v.mm ? nlock : 0]);
    child.exit();
  });
});
