// §2.1 Basic ioctl framing (fixture `iommufd`): simple_close, cmd_fail, cmd_length,
// cmd_ex_fail, global_options.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Iommufd, openIommufd, teardown, U } from './helpers.js';

describe('fixture iommufd', () => {
  let t: Iommufd;
  beforeEach(async () => {
    t = await openIommufd();
  });
  afterEach(() => teardown(t));

  it('simple_close', () => {
    expect(t.host.objects(t.fd)).toEqual([]);
  });

  it('cmd_fail: unknown id, NULL argument, ioctl below the command base', () => {
    expect(t.destroy(0)).toBe(-U.ENOENT);
    expect(t.p.ioctl(t.fd, U.IOMMU_DESTROY, 0n)).toBe(-U.EFAULT);
    expect(t.raw(U._IO(U.IOMMUFD_TYPE, U.IOMMUFD_CMD_BASE - 1), U.iommu_destroy.encode({ size: 8 }))).toBe(-U.ENOTTY);
  });

  // The 16 ioctls the kernel test covers, each with its struct followed by one extra byte.
  const covered = [
    'IOMMU_DESTROY',
    'IOMMU_GET_HW_INFO',
    'IOMMU_HWPT_ALLOC',
    'IOMMU_HWPT_INVALIDATE',
    'IOMMU_IOAS_ALLOC',
    'IOMMU_IOAS_IOVA_RANGES',
    'IOMMU_IOAS_ALLOW_IOVAS',
    'IOMMU_IOAS_MAP',
    'IOMMU_IOAS_COPY',
    'IOMMU_IOAS_UNMAP',
    'IOMMU_OPTION',
    'IOMMU_VFIO_IOAS',
    'IOMMU_IOAS_MAP_FILE',
    'IOMMU_VIOMMU_ALLOC',
    'IOMMU_VDEVICE_ALLOC',
    'IOMMU_IOAS_CHANGE_PROCESS',
  ] as const;
  const expectedMin: Record<(typeof covered)[number], [number, number]> = {
    IOMMU_DESTROY: [8, 8],
    IOMMU_GET_HW_INFO: [32, 40],
    IOMMU_HWPT_ALLOC: [24, 48],
    IOMMU_HWPT_INVALIDATE: [32, 32],
    IOMMU_IOAS_ALLOC: [12, 12],
    IOMMU_IOAS_IOVA_RANGES: [32, 32],
    IOMMU_IOAS_ALLOW_IOVAS: [24, 24],
    IOMMU_IOAS_MAP: [40, 40],
    IOMMU_IOAS_COPY: [40, 40],
    IOMMU_IOAS_UNMAP: [24, 24],
    IOMMU_OPTION: [24, 24],
    IOMMU_VFIO_IOAS: [12, 12],
    IOMMU_IOAS_MAP_FILE: [40, 40],
    IOMMU_VIOMMU_ALLOC: [24, 40],
    IOMMU_VDEVICE_ALLOC: [24, 24],
    IOMMU_IOAS_CHANGE_PROCESS: [8, 8],
  };

  for (const name of covered) {
    it(`cmd_length: ${name}`, () => {
      const { request, layout, minSize } = U.iommufdIoctlByName(name);
      expect([minSize, layout.size]).toEqual(expectedMin[name]);
      const setSize = (b: Uint8Array, n: number) => new DataView(b.buffer).setUint32(0, n, true);
      const cmd = new Uint8Array(layout.size + 1);
      cmd[layout.size] = 0xff;
      setSize(cmd, minSize - 1);
      expect(t.raw(request, cmd)).toBe(-U.EINVAL);
      setSize(cmd, layout.size + 1);
      expect(t.raw(request, cmd)).toBe(-U.E2BIG);
      setSize(cmd, layout.size);
      const rc = t.raw(request, cmd);
      setSize(cmd, layout.size + 1);
      cmd[layout.size] = 0;
      expect(t.raw(request, cmd)).toBe(rc < 0 ? rc : 0);
    });
  }

  it('cmd_ex_fail: a longer struct must have a zero tail', () => {
    const cmd = new Uint8Array(16);
    const v = new DataView(cmd.buffer);
    v.setUint32(0, 16, true);
    expect(t.raw(U.IOMMU_DESTROY, cmd)).toBe(-U.ENOENT);
    v.setBigUint64(8, 1n, true);
    expect(t.raw(U.IOMMU_DESTROY, cmd)).toBe(-U.E2BIG);
    v.setUint32(0, 8, true);
    expect(t.raw(U.IOMMU_DESTROY, cmd)).toBe(-U.ENOENT);
    v.setUint32(0, 7, true);
    expect(t.raw(U.IOMMU_DESTROY, cmd)).toBe(-U.EINVAL);
  });

  it('global_options: RLIMIT_MODE get/set, HUGE_PAGES needs an object', () => {
    const { IOMMU_OPTION_RLIMIT_MODE: RL, IOMMU_OPTION_HUGE_PAGES: HP, IOMMU_OPTION_OP_GET: GET, IOMMU_OPTION_OP_SET: SET } = U;
    expect(t.option(RL, GET, 0)).toEqual({ rc: 0, val64: 0n });
    expect(t.option(RL, SET, 0, 1n).rc).toBe(0);
    expect(t.option(RL, SET, 0, 2n).rc).toBe(-U.EINVAL);
    expect(t.option(RL, GET, 0)).toEqual({ rc: 0, val64: 1n });
    expect(t.option(RL, SET, 0, 0n).rc).toBe(0);
    expect(t.option(HP, GET, 0).rc).toBe(-U.ENOENT);
    expect(t.option(HP, SET, 0).rc).toBe(-U.ENOENT);
  });
});
