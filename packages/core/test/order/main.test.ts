// Error order of the ioctls that live in main.c (main.ts): the dispatcher itself,
// IOMMU_DESTROY and IOMMU_OPTION (iommufd-core.md §1.3, §2, §3.2).
import { describe, expect, it } from 'vitest';
import {
  E2BIG,
  EBUSY,
  EINVAL,
  ENOENT,
  ENOTTY,
  EOPNOTSUPP,
  EPERM,
  IOMMU_DESTROY,
  IOMMU_IOAS_MAP,
  IOMMU_OPTION,
  IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_OP_GET,
  IOMMU_OPTION_OP_SET,
  IOMMU_OPTION_RLIMIT_MODE,
  iommu_destroy,
  iommu_ioas_map,
  iommu_option,
} from '@iommufd/uapi';
import { expectErrorOrder, setup } from '../harness.js';
import { BASE, orderEnv } from './env.js';

describe('error order: dispatch', () => {
  it('request encoding, then size < min, then the non-zero tail, then the handler', () => {
    const e = setup();
    const bytes = iommu_ioas_map.encode({ size: 8, flags: 0x10 });
    e.proc.copyToUser(e.scratch, bytes);
    expect(e.ctx.ioctl!(0xc0283b85, e.scratch)).toBe(-ENOTTY);
    expect(e.ctx.ioctl!(IOMMU_IOAS_MAP, e.scratch)).toBe(-EINVAL);
    const long = new Uint8Array(48);
    iommu_ioas_map.encode({ size: 48, flags: 0x10 }, long);
    long[44] = 1;
    e.proc.copyToUser(e.scratch, long);
    expect(e.ctx.ioctl!(IOMMU_IOAS_MAP, e.scratch)).toBe(-E2BIG);
    long[44] = 0;
    e.proc.copyToUser(e.scratch, long);
    expect(e.ctx.ioctl!(IOMMU_IOAS_MAP, e.scratch)).toBe(-EOPNOTSUPP);
  });
});

describe('error order: IOMMU_DESTROY and IOMMU_OPTION', () => {
  it('IOMMU_DESTROY: ENOENT for what is not live, EBUSY while referenced', () => {
    const e = orderEnv();
    const last = expectErrorOrder(e, iommu_destroy, IOMMU_DESTROY, { id: 99 }, [
      { check: 'not live', errno: ENOENT, fix: { id: e.ioas } },
      { check: 'IOAS with an automatic HWPT', errno: EBUSY, fix: { id: e.devIds[1]! } },
      { check: 'DEVICE', errno: EBUSY, fix: {} },
    ]);
    expect(last?.id).toBe(e.devIds[1]);
  });

  it('IOMMU_OPTION RLIMIT_MODE: __reserved, option, object_id, op, capability, empty ctx, value', () => {
    const e = setup();
    e.proc.caps.CAP_SYS_RESOURCE = false;
    expectErrorOrder(e, iommu_option, IOMMU_OPTION, { __reserved: 1, option_id: 9, object_id: 1, op: 9, val64: 2n }, [
      { check: '__reserved', errno: EOPNOTSUPP, fix: { __reserved: 0 } },
      { check: 'unknown option', errno: EOPNOTSUPP, fix: { option_id: IOMMU_OPTION_RLIMIT_MODE } },
      { check: 'object_id≠0', errno: EOPNOTSUPP, fix: { object_id: 0 } },
      { check: 'unknown op', errno: EOPNOTSUPP, fix: { op: IOMMU_OPTION_OP_SET } },
      { check: 'CAP_SYS_RESOURCE', errno: EPERM, fix: {} },
    ]);
    e.proc.caps.CAP_SYS_RESOURCE = true;
    // The scratch context has no object yet: the value is checked; then any object is EBUSY.
    expect(e.ioctl(iommu_option, IOMMU_OPTION, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 2n }).rc).toBe(-EINVAL);
    const o = orderEnv();
    expect(o.ioctl(iommu_option, IOMMU_OPTION, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 2n }).rc).toBe(-EBUSY);
  });

  it('IOMMU_OPTION HUGE_PAGES: the IOAS lookup comes before the op, then the value', () => {
    const e = orderEnv();
    e.map(0x1000n, BASE);
    const last = expectErrorOrder(e, iommu_option, IOMMU_OPTION, { option_id: IOMMU_OPTION_HUGE_PAGES, object_id: 99, op: 9, val64: 2n }, [
      { check: 'IOAS lookup', errno: ENOENT, fix: { object_id: e.ioas } },
      { check: 'unknown op', errno: EOPNOTSUPP, fix: { op: IOMMU_OPTION_OP_SET } },
      { check: 'value not 0/1', errno: EINVAL, fix: { val64: 0n } },
      { check: 'disable with a domain attached and a mapping', errno: EINVAL, fix: { op: IOMMU_OPTION_OP_GET } },
    ]);
    expect(e.ioctl(iommu_option, IOMMU_OPTION, last).out.val64).toBe(1n);
  });
});
