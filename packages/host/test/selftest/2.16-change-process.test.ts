// §2.16 change_process (fixture change_process, three accounting variants), the steps that
// run in one process: CHANGE_PROCESS refuses non-file mappings and accepts file mappings.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Iommufd, makeGlobals, openIommufd, PAGE, teardown, U, type Globals } from './helpers.js';

describe.each([
  { name: 'account_none', mode: undefined },
  { name: 'account_user', mode: 0n },
  { name: 'account_mm', mode: 1n },
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
  });
});
