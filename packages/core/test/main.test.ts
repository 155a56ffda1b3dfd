import { describe, expect, it } from 'vitest';
import {
  E2BIG,
  EBUSY,
  EFAULT,
  EINVAL,
  ENOENT,
  ENOTTY,
  EOPNOTSUPP,
  EPERM,
  IOMMU_DESTROY,
  IOMMU_IOAS_ALLOC,
  IOMMU_OPTION,
  IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_OP_GET,
  IOMMU_OPTION_OP_SET,
  IOMMU_OPTION_RLIMIT_MODE,
  iommu_destroy,
  iommu_ioas_alloc,
  iommu_option,
} from '@iommufd/uapi';
import { IOMMUFD_DISPATCH, iommufdDeviceBind, iommufdDeviceUnbind } from '../src/index.js';
import { bindOrThrow, setup } from './harness.js';

function ioasAlloc(env: ReturnType<typeof setup>): number {
  const r = env.ioctl(iommu_ioas_alloc, IOMMU_IOAS_ALLOC, {});
  expect(r.rc).toBe(0);
  return r.out.out_ioas_id;
}

describe('dispatch table', () => {
  it('is data: one row per ioctl 0x80-0x94 with layout, min size and handler', () => {
    expect(IOMMUFD_DISPATCH).toHaveLength(21);
    expect(IOMMUFD_DISPATCH.map((r) => r.nr)).toEqual(Array.from({ length: 21 }, (_, i) => 0x80 + i));
    const hwpt = IOMMUFD_DISPATCH.find((r) => r.name === 'IOMMU_HWPT_ALLOC')!;
    expect([hwpt.layout.size, hwpt.minSize]).toEqual([48, 24]);
    expect(IOMMUFD_DISPATCH.every((r) => typeof r.handler === 'function')).toBe(true);
  });

  it('applies the size-extensibility rule', () => {
    const env = setup();
    // Below min: EINVAL.
    expect(env.ioctl(iommu_ioas_alloc, IOMMU_IOAS_ALLOC, {}, { size: 8 }).rc).toBe(-EINVAL);
    // Longer with a non-zero tail: E2BIG; with a zero tail: accepted.
    expect(env.ioctl(iommu_ioas_alloc, IOMMU_IOAS_ALLOC, {}, { size: 16, tail: new Uint8Array([0, 0, 0, 1]) }).rc).toBe(-E2BIG);
    const ok = env.ioctl(iommu_ioas_alloc, IOMMU_IOAS_ALLOC, {}, { size: 16 });
    expect(ok.rc).toBe(0);
    expect(ok.out.out_ioas_id).toBe(1);
  });

  it('answers ENOTTY for unknown and wrongly encoded requests, EFAULT for a bad pointer', () => {
    const env = setup();
    expect(env.ctx.ioctl!(0x3b99, env.scratch)).toBe(-ENOTTY);
    // The right nr with direction bits is not the table's request.
    expect(env.ctx.ioctl!(IOMMU_IOAS_ALLOC | 0x4000_0000, env.scratch)).toBe(-ENOTTY);
    expect(env.ctx.ioctl!(IOMMU_IOAS_ALLOC, 0x10n)).toBe(-EFAULT);
    // nr < 0x80 goes to the VFIO compat handler: VFIO_GET_API_VERSION = 0.
    expect(env.ctx.ioctl!(0x3b64, 0n)).toBe(0);
    expect(env.ctx.ioctl!(0x3b65, 3n)).toBe(1);
    // VFIO_IOMMU_ENABLE is not emulated; GET_INFO needs the compat IOAS.
    expect(env.ctx.ioctl!(0x3b73, env.scratch)).toBe(-ENOTTY);
    env.proc.copyToUser(env.scratch, new Uint8Array(16));
    expect(env.ctx.ioctl!(0x3b70, env.scratch)).toBe(-EINVAL);
    env.proc.copyToUser(env.scratch, new Uint8Array([24, 0, 0, 0]));
    expect(env.ctx.ioctl!(0x3b70, env.scratch)).toBe(-19);
  });
});

describe('object table', () => {
  it('hands out the lowest free ID from 1 and reuses destroyed IDs', () => {
    const env = setup();
    expect([ioasAlloc(env), ioasAlloc(env), ioasAlloc(env)]).toEqual([1, 2, 3]);
    expect(env.ioctl(iommu_destroy, IOMMU_DESTROY, { id: 2 }).rc).toBe(0);
    expect(ioasAlloc(env)).toBe(2);
    expect(env.ctx.objects().map((o) => [o.id, o.type, o.users, o.state])).toEqual([
      [1, 'IOAS', 1, 'live'],
      [2, 'IOAS', 1, 'live'],
      [3, 'IOAS', 1, 'live'],
    ]);
  });

  it('IOMMU_DESTROY: ENOENT for unknown IDs, EBUSY for a bound DEVICE', () => {
    const env = setup();
    expect(env.ioctl(iommu_destroy, IOMMU_DESTROY, { id: 0 }).rc).toBe(-ENOENT);
    expect(env.ioctl(iommu_destroy, IOMMU_DESTROY, { id: 7 }).rc).toBe(-ENOENT);
    const b = bindOrThrow(env.ctx, env.devs[0]!);
    expect(env.ioctl(iommu_destroy, IOMMU_DESTROY, { id: b.devId }).rc).toBe(-EBUSY);
    iommufdDeviceUnbind(b.idev);
    expect(env.ctx.objects()).toEqual([]);
  });

  it('release sweeps every object once the last file reference is gone', () => {
    const env = setup();
    ioasAlloc(env);
    const b = bindOrThrow(env.ctx, env.devs[0]!);
    env.ctx.release();
    // A bound device holds the ctx file: nothing is torn down yet.
    expect(env.ctx.objects()).toHaveLength(2);
    iommufdDeviceUnbind(b.idev);
    expect(env.ctx.objects()).toEqual([]);
    expect(env.core.openContexts).toBe(0);
  });
});

describe('selftest mock devices', () => {
  it('do not keep the ctx open, while a VFIO-bound device does', () => {
    const mockEnv = setup();
    expect(typeof iommufdDeviceBind(mockEnv.ctx, mockEnv.devs[0]!, { selftestMockDevice: true })).toBe('object');
    mockEnv.ctx.release();
    expect(mockEnv.core.openContexts).toBe(0);
    const vfioEnv = setup();
    expect(typeof iommufdDeviceBind(vfioEnv.ctx, vfioEnv.devs[0]!)).toBe('object');
    vfioEnv.ctx.release();
    expect(vfioEnv.core.openContexts).toBe(1);
  });
});

describe('IOMMU_OPTION', () => {
  it('RLIMIT_MODE: GET, SET needs CAP_SYS_RESOURCE and an empty ctx; only val64 is copied back', () => {
    const env = setup();
    let r = env.ioctl(iommu_option, IOMMU_OPTION, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET, val64: 5n });
    expect(r.rc).toBe(0);
    expect(r.out.val64).toBe(0n);
    r = env.ioctl(iommu_option, IOMMU_OPTION, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 2n });
    expect(r.rc).toBe(-EINVAL);
    r = env.ioctl(iommu_option, IOMMU_OPTION, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 1n });
    expect(r.rc).toBe(0);
    r = env.ioctl(iommu_option, IOMMU_OPTION, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET, object_id: 0 });
    expect(r.out.val64).toBe(1n);
    ioasAlloc(env);
    r = env.ioctl(iommu_option, IOMMU_OPTION, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 0n });
    expect(r.rc).toBe(-EBUSY);
    env.proc.caps.CAP_SYS_RESOURCE = false;
    r = env.ioctl(iommu_option, IOMMU_OPTION, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 0n });
    expect(r.rc).toBe(-EPERM);
    r = env.ioctl(iommu_option, IOMMU_OPTION, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET, object_id: 1 });
    expect(r.rc).toBe(-EOPNOTSUPP);
  });

  it('checks __reserved, option and op first; HUGE_PAGES looks up the IOAS', () => {
    const env = setup();
    expect(env.ioctl(iommu_option, IOMMU_OPTION, { option_id: 0, __reserved: 1 }).rc).toBe(-EOPNOTSUPP);
    expect(env.ioctl(iommu_option, IOMMU_OPTION, { option_id: 2 }).rc).toBe(-EOPNOTSUPP);
    expect(env.ioctl(iommu_option, IOMMU_OPTION, { option_id: IOMMU_OPTION_HUGE_PAGES, op: 0, object_id: 9 }).rc).toBe(-ENOENT);
    const id = ioasAlloc(env);
    const get = env.ioctl(iommu_option, IOMMU_OPTION, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, object_id: id });
    expect([get.rc, get.out.val64]).toEqual([0, 1n]);
    expect(env.ioctl(iommu_option, IOMMU_OPTION, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_SET, object_id: id, val64: 0n }).rc).toBe(0);
    const get2 = env.ioctl(iommu_option, IOMMU_OPTION, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET, object_id: id });
    expect(get2.out.val64).toBe(0n);
    expect(env.ioctl(iommu_option, IOMMU_OPTION, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_SET, object_id: id, val64: 3n }).rc).toBe(-EINVAL);
    expect(env.ioctl(iommu_option, IOMMU_OPTION, { option_id: IOMMU_OPTION_HUGE_PAGES, op: 2, object_id: id }).rc).toBe(-EOPNOTSUPP);
  });
});
